"""Who is calling: a bearer API key resolved to one user of one organisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, status

from goldenhour.contracts.config import GoldenHourConfig, Organisation, OrgKind, User, hash_api_key


@dataclass(frozen=True)
class Caller:
    """The authenticated user and the organisation the key belongs to."""

    org: Organisation
    user: User

    @property
    def actor(self) -> str:
        return f"user:{self.user.id}"


# Where a request keeps the owner of its API key once looked up: the rate limit and the
# route's authentication both need it, and the key is hashed once.
_KEY_OWNER = "goldenhour.api_key_owner"


def key_owner(
    config: GoldenHourConfig, state: dict[str, Any], key: str
) -> tuple[Organisation, User] | None:
    """The organisation and user `key` belongs to (None: nobody's), remembered in the
    request's `state` so a second ask for the same key does not hash it again."""
    remembered = state.get(_KEY_OWNER)
    # Both keys come from this request's own header: nothing secret to time.
    if remembered is not None and remembered[0] == key:
        return remembered[1]
    found = config.user_for_key_hash(hash_api_key(key))
    state[_KEY_OWNER] = (key, found)
    return found


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def authenticate(request: Request) -> Caller:
    """FastAPI dependency: the caller of a request, or 401/403.

    `async` although it never awaits: a plain `def` would be run in the thread pool, a thread
    hop on every request for a dictionary lookup."""
    config: GoldenHourConfig = request.app.state.config
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _unauthorised("missing credentials: send 'Authorization: Bearer <api key>'")
    found = key_owner(config, request.scope.setdefault("state", {}), key.strip())
    if found is None:
        raise _unauthorised("unknown API key")
    org, user = found
    # The firewall: the directory already refuses such keys; a key that slipped in reads nothing.
    if org.kind == OrgKind.immigration_enforcement:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="this organisation may not read or submit child data"
        )
    return Caller(org=org, user=user)
