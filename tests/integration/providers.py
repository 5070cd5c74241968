"""The local providers' credentials and numbers the integration tests share (fixtures built on
them are in conftest.py)."""

from __future__ import annotations

ACCOUNT = "AC" + "2e" * 16
TOKEN = "local-auth-token"
FROM = "+447700900000"
PHONE = "+447700900001"
# Nothing listens here: status callbacks fail fast, so a row stays `sent` until re-polled.
PUBLIC_URL = "http://127.0.0.1:9/gh"
