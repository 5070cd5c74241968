"""Turning posted console forms into intake events, and validation errors into plain words."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request
from pydantic import ValidationError


def form_time(request: Request, value: object, default: datetime) -> str:
    """A `datetime-local` field (the config's zone) as ISO 8601; blank means `default`.

    A value that is not a time is passed on as typed, so the event's own validation names it.
    """
    text = str(value or "").strip()
    if not text:
        return default.isoformat()
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        return text
    if naive.tzinfo is not None:
        return naive.isoformat()
    return naive.replace(tzinfo=request.app.state.config.tz).isoformat()


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Field name → what is wrong with it, for the form to show beside the field."""
    out: dict[str, str] = {}
    for e in exc.errors(include_url=False, include_input=False):
        out.setdefault(str(e["loc"][-1]) if e["loc"] else "form", e["msg"])
    return out
