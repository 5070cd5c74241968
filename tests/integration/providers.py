"""The local providers' credentials and numbers the integration tests share, and a stand-in for
our own Twilio webhook endpoints (fixtures built on them are in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from twilio.request_validator import RequestValidator

from goldenhour.dev.waiting import eventually

ACCOUNT = "AC" + "2e" * 16
TOKEN = "local-auth-token"
FROM = "+447700900000"
PHONE = "+447700900001"
# Nothing listens here: status callbacks fail fast, so a row stays `sent` until re-polled.
PUBLIC_URL = "http://127.0.0.1:9/gh"


@dataclass(frozen=True)
class Post:
    """One POST the local Twilio made to our endpoints."""

    url: str
    path: str
    form: dict[str, str]
    signature: str

    def signed_with(self, token: str) -> bool:
        return RequestValidator(token).validate(self.url, self.form, self.signature)


def empty_twiml(path: str, form: dict[str, str]) -> str | None:
    return "<Response/>"


class TwilioEndpoints:
    """Our Twilio webhook endpoints stood in for: records every POST and answers it with the
    TwiML `answer(path, form)` gives (None: an empty 200)."""

    def __init__(self, answer: Callable[[str, dict[str, str]], str | None] = empty_twiml) -> None:
        self.answer = answer
        self.posts: list[Post] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        self.posts.append(Post(str(request.url), request.path, form, signature))
        twiml = self.answer(request.path, form)
        if twiml is None:
            return web.Response()
        return web.Response(text=twiml, content_type="application/xml")

    async def wait(self, count: int, timeout: float = 3) -> list[Post]:
        """The posts once there are at least `count` of them."""
        await eventually(lambda: len(self.posts) >= count, timeout, f"{count} posts to our hooks")
        return self.posts
