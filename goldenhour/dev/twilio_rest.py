"""What the local Twilio server's Messages and Calls halves share: the REST base path, error
bodies, dates, paging, outages and signed callbacks."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import structlog
from aiohttp import web
from twilio.request_validator import RequestValidator

log = structlog.get_logger(__name__)

API = "/2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# The REST operations an outage can take down.
OPS = ("create", "list", "fetch", "call_create", "call_list", "call_fetch")


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio dates are RFC 2822 in GMT."""
    return format_datetime(moment) if moment else None


def twilio_error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """Twilio's legacy (not RFC 9457) error JSON, so the library raises TwilioRestException."""
    info = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": info, "status": status}
    return web.json_response(body, status=status, headers=headers)


def unavailable(status: int, retry_after: float | None) -> web.Response:
    """The error of a provider refusing work for now: 429 or a 5xx, with Retry-After if given."""
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    text = "Too Many Requests" if status == 429 else "Service unavailable"
    return twilio_error(status, 20429 if status == 429 else 20500, text, headers)


def not_found(request: web.Request) -> web.Response:
    return twilio_error(404, 20404, f"The requested resource {request.path} was not found")


class RestBase:
    """The state and helpers LocalTwilio's Messages and Calls halves both use."""

    account_sid: str
    callback_delay: float
    _validator: RequestValidator
    _callbacks_enabled: bool
    _list_lag: float
    # op -> (time.monotonic() the outage ends, status, Retry-After)
    _outages: dict[str, tuple[float, int, float | None]]
    _tasks: set[asyncio.Task[None]]
    _session: aiohttp.ClientSession | None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background; `stop()` cancels what is still running."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _callback_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the local Twilio server is not started")
        return self._session

    async def _post_signed(
        self, session: aiohttp.ClientSession, url: str, params: dict[str, str]
    ) -> tuple[int, str]:
        """POST a form signed with X-Twilio-Signature for exactly this URL."""
        headers = {"X-Twilio-Signature": self._validator.compute_signature(url, params)}
        async with session.post(url, data=params, headers=headers) as resp:
            return resp.status, await resp.text()

    def _injected_outage(self, op: str) -> web.Response | None:
        """The error an outage of `op` answers now, or None when `op` is up."""
        outage = self._outages.get(op)
        if outage is None:
            return None
        ends, status, retry_after = outage
        if time.monotonic() >= ends:
            self._outages.pop(op, None)
            return None
        log.info("twilio_local.outage", op=op, status=status)
        return unavailable(status, retry_after)

    def _listed(self, received_at: float) -> bool:
        """Whether a resource created at received_at shows in list results yet."""
        return time.time() - received_at >= self._list_lag

    def _page(
        self, kind: str, oldest_first: Sequence[Any], matches: Callable[[Any], bool], q: Any
    ) -> web.Response:
        """One page of a list answer, newest first, with Twilio's paging links.

        As Twilio's, the next page's link carries a cursor (`PageToken`), here the position
        the page stopped at, so paging through a long list costs each page its own size and a
        scan that finds what it wants early reads no further."""
        try:
            page, size = int(q.get("Page", 0)), min(int(q.get("PageSize", 50)), 1000)
            token = q.get("PageToken")
            start = len(oldest_first) if token is None else int(token.removeprefix("PI"))
        except ValueError:
            return twilio_error(400, 20001, "Invalid query parameter")
        filters = {k: v for k, v in q.items() if k not in ("Page", "PageSize", "PageToken")}
        uri = f"{API}/Accounts/{self.account_sid}/{kind}.json"

        def page_uri(n: int, **token: Any) -> str:
            return f"{uri}?{urlencode({**filters, 'PageSize': size, 'Page': n, **token})}"

        # Without a cursor (a first page, or a client asking for a page by its number), the
        # pages before are counted out.
        skip = 0 if token is not None else page * size
        chunk: list[Any] = []
        at = min(max(start, 0), len(oldest_first))
        while at > 0 and len(chunk) < size:
            at -= 1
            if matches(oldest_first[at]):
                if skip:
                    skip -= 1
                else:
                    chunk.append(oldest_first[at])
        return web.json_response(
            {
                kind.lower(): [item.resource() for item in chunk],
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1, PageToken=f"PI{at}") if at > 0 else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "page": page,
                "page_size": size,
                "start": page * size,
                "end": page * size + max(len(chunk) - 1, 0),
                "uri": page_uri(page),
            }
        )
