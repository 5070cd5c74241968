"""What the local Twilio and SMTP servers of a chaos run received, and its Twilio server.

The harness judges "sent twice" and "never sent" by what the providers received, not by the
system's own records. The Twilio server is the project's local one, whose message list here also
carries each SMS's StatusCallback URL: its `?n=` names the notification the SMS was sent for.
The SMTP server prints one JSON line per accepted mail; they are kept in a file and read at
the end.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
from aiohttp import web

from goldenhour.dev import twilio_local
from goldenhour.dev.twilio_local import LocalTwilio


@dataclass(frozen=True)
class ReceivedSms:
    """One SMS the Twilio server accepted."""

    to: str
    body: str
    notification_id: str | None  # from the StatusCallback's ?n=, None if it had none
    received_at: float


class RecordingTwilio(LocalTwilio):
    """LocalTwilio whose `/_local/messages` also lists each message's StatusCallback."""

    async def _ctl_messages(self, request: web.Request) -> web.Response:
        rows = [
            {"to": m.to, "body": m.body, "cb": m.status_callback, "at": m.received_at}
            for m in self.messages
        ]
        return web.json_response({"messages": rows})


def notification_of(callback: str | None) -> str | None:
    """The notification id in a StatusCallback URL (`…/status?n=<id>`)."""
    if not callback:
        return None
    found = parse_qs(urlparse(callback).query).get("n")
    return found[0] if found else None


@dataclass(frozen=True)
class ReceivedCall:
    """One voice call the Twilio server accepted."""

    to: str
    notification_id: str | None  # from the StatusCallback's ?n=, None if it had none
    received_at: float


def _first(record: dict, *names: str) -> object:
    return next((record[n] for n in names if record.get(n) is not None), None)


async def received_calls(base_url: str) -> list[ReceivedCall]:
    """Every call the Twilio server at `base_url` accepted, oldest first; none when the server
    has no Calls API."""
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.get(f"{base_url}/_local/calls")
        if r.status_code == 404:
            return []
        r.raise_for_status()
    body = r.json()
    rows = body.get("calls", []) if isinstance(body, dict) else body
    calls = []
    for c in rows:
        callback = _first(c, "cb", "status_callback", "StatusCallback")
        at = _first(c, "at", "received_at")
        calls.append(
            ReceivedCall(
                str(c.get("to", "")),
                notification_of(str(callback) if callback else None),
                float(at) if isinstance(at, int | float) else 0.0,
            )
        )
    return calls


async def received_sms(base_url: str) -> list[ReceivedSms]:
    """Every SMS the Twilio server at `base_url` accepted, oldest first."""
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.get(f"{base_url}/_local/messages")
        r.raise_for_status()
    return [
        ReceivedSms(m["to"], m["body"], notification_of(m["cb"]), m["at"])
        for m in r.json()["messages"]
    ]


def received_mail(path: Path) -> list[dict]:
    """Every mail the SMTP server printed (one JSON line each) into `path`."""
    mails = []
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as lines:
        for line in lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if "message_id" in record:
                    mails.append(record)
    return mails


def main(argv: list[str] | None = None) -> None:
    """`python -m goldenhour.chaos.providers --port P --account-sid S --auth-token T`: the
    Twilio server of a chaos run, which lists each message's StatusCallback."""
    twilio_local.main(argv, RecordingTwilio, "the local Twilio server of a chaos run")


if __name__ == "__main__":
    main()
