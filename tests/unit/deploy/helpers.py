"""What the deployment tests share: where the files are, and what a secret looks like."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH|_SID$|_KEY$|_KEY_|DATABASE_URL")
"""Variables whose value is a credential (a database URL carries its password)."""

_SECRET_LITERALS = [
    re.compile(r"\bAC[0-9a-f]{32}\b"),  # a Twilio account SID
    re.compile(r"\b[0-9a-f]{32,}\b"),  # a Twilio auth token, a hex key
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"://[^/\s:@]+:(?!\$\{|<)[^@\s/]+@"),  # a URL with a literal password in it
    re.compile(r"\b(gh|sk|pk|xox[abp])_[A-Za-z0-9_-]{16,}"),  # API-key-shaped prefixes
]
_RANDOM_RUN = re.compile(r"[A-Za-z0-9+/_=-]{32,}")


def looks_like_secret(value: str) -> bool:
    """A literal that looks like a credential: a known shape, or a long random-looking run."""
    if any(p.search(value) for p in _SECRET_LITERALS):
        return True
    for run in _RANDOM_RUN.findall(value):
        # Long runs of letters alone (words joined by dashes) are names, not keys.
        if re.search(r"\d", run) and re.search(r"[A-Za-z]", run):
            return True
    return False


INTERPOLATION = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(:?[-?][^}]*)?\}$")
"""A whole value taken from the environment (`${NAME}`, `${NAME:?why}`), never a literal."""


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a parsed YAML document (keys too), with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", str(key)
            yield from strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def plain(node: Any) -> Any:
    """A copy without YAML's shared anchors, so changing one service changes no other."""
    return json.loads(json.dumps(node))
