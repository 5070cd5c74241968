"""Every request runs under a correlation id (see infra/tracing.py): the caller's
`X-Request-Id` when it sends a plausible one, a new one otherwise, answered back in the same
header so the caller can quote it. Pure ASGI, outermost, so a refusal by a limit carries it too."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from goldenhour.infra import tracing

_HEADER = tracing.HTTP_HEADER.encode()


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == _HEADER),
            None,
        )
        correlation_id = tracing.accept(given)

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, correlation_id.encode())]}
            await send(message)

        with tracing.bound(correlation_id):
            await self.app(scope, receive, answer)
