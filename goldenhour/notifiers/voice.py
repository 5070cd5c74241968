"""Voice channel: one Twilio call per attempt that reads the alert out and takes `1` on the
keypad as an acknowledgement (the TwiML and the keypad are services/twilio_webhooks.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog

from goldenhour.notifiers.base import OutboundMessage, RetryableSendError, SendResult
from goldenhour.notifiers.sms import TwilioSms, earliest_copy, last_headers, provider_now

log = structlog.get_logger(__name__)

# Every progress event, so the call's Twilio SID reaches its row within a second of the create
# (the "initiated" callback), which is what lets a retry after a timeout find the call.
CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]
# A call's status words mapped onto the message words the dispatcher and notifiers/status.py
# speak: a call is "delivered" once someone answered and heard it.
_CALL_STATUS = {
    "queued": "sent",
    "initiated": "sent",
    "ringing": "sent",
    "in-progress": "sent",
    "completed": "delivered",
    "busy": "failed",
    "no-answer": "failed",
    "failed": "failed",
    "canceled": "failed",
}
VOICE_PATH = "/api/v1/webhooks/twilio/voice"
# How long a call's callbacks may take to record it on its row (Twilio's "initiated" one comes
# within a second; a loaded API has been seen to take 86 s). A call younger than this that no
# row owns may be any message's to that number, so no message claims it, nor rings again, yet.
CALLBACK_WAIT = timedelta(seconds=120)
# How soon a message that waits on such a call looks again, at most.
LOOK_AGAIN_S = 5.0

RecordedSid = Callable[[str], Awaitable[str | None]]
# Of these CallSids, those some message row already owns.
OwnedSids = Callable[[list[str]], Awaitable[set[str]]]


class CallbacksAwaited(RetryableSendError):
    """A call to the message's number awaits its callbacks: look again in `look_again_s`."""

    def __init__(self, message: str, look_again_s: float) -> None:
        super().__init__(message)
        self.look_again_s = look_again_s


@dataclass(frozen=True)
class Listed:
    """One call to a number, as Twilio lists it."""

    sid: str
    created: datetime


@dataclass(frozen=True)
class Attribution:
    """What a look at the unowned calls to a number decides for one message."""

    action: Literal["claim", "wait", "none"]
    sid: str | None = None  # claim: the call that is the message's
    wait_s: float = 0.0  # wait: until the youngest unowned call is past the callback wait


def attribute(
    calls: Sequence[Listed], owned: set[str], now: datetime, wait: timedelta = CALLBACK_WAIT
) -> Attribution:
    """Whether a message whose own callbacks recorded no call may take one of `calls` (those
    to its number since it was written) as its own.

    A call some row owns is that row's. An unowned call younger than `wait` may still be
    another message's whose callbacks are late: nobody decides until it is older, else a
    message could take another's call (which then rings twice, and this one never). An
    unowned call older than that had its callbacks lost (the API down): the earliest is taken,
    since re-placing it would ring the contact once per retry."""
    unowned = [c for c in calls if c.sid not in owned]
    if not unowned:
        return Attribution("none")
    youngest = max(c.created for c in unowned)
    if now - youngest < wait:
        return Attribution("wait", wait_s=(youngest + wait - now).total_seconds())
    return Attribution("claim", sid=min(unowned, key=lambda c: c.created).sid)


def call_status(reported: str) -> str | None:
    """Our message status for a Twilio call status, or None when the word is unknown."""
    return _CALL_STATUS.get(reported.lower())


def voice_urls(public_url: str, notification_id: str) -> tuple[str, str]:
    """The TwiML URL and the status-callback URL of the call for one message."""
    base = public_url.rstrip("/") + VOICE_PATH
    return f"{base}?n={notification_id}", f"{base}/status?n={notification_id}"


class TwilioVoice(TwilioSms):
    """Channel that places calls with Twilio: the same client, base URL, timeout and error
    translation as the SMS channel (it is that channel, speaking to the Calls API)."""

    name = "voice"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        public_url: str,
        api_base_url: str | None = None,
        timeout: float = 10.0,
        recorded_sid: RecordedSid | None = None,
        owned_sids: OwnedSids | None = None,
        ring_timeout_s: int = 30,
        callback_wait: timedelta = CALLBACK_WAIT,
    ) -> None:
        super().__init__(account_sid, auth_token, from_number, api_base_url, timeout)
        self.public_url = public_url
        self.ring_timeout_s = ring_timeout_s
        # The CallSid a callback recorded on the message's row (None: not known yet).
        self._recorded_sid = recorded_sid
        self._owned_sids = owned_sids
        self.callback_wait = callback_wait

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Place one call; 429/5xx/network → Retryable, other 4xx → Permanent."""
        url, callback = voice_urls(self.public_url, msg.notification_id)
        created = await self._call(
            "call_create",
            self._twilio().calls.create_async(
                to=msg.to,
                from_=self.from_number,
                url=url,
                method="POST",
                status_callback=callback,
                status_callback_event=CALL_EVENTS,
                status_callback_method="POST",
                timeout=self.ring_timeout_s,
            ),
        )
        log.info("voice.placed", sid=created.sid, notification_id=msg.notification_id)
        return SendResult(provider_id=str(created.sid), status="sent")

    async def poll(self, provider_id: str) -> str | None:
        """The call's status in message words ("sent", "delivered", "failed"), None if
        Twilio does not know the SID."""
        fetched = await self._fetch("call_fetch", self._twilio().calls(provider_id).fetch_async())
        return call_status(str(fetched.status)) if fetched is not None and fetched.status else None

    async def find_sent(self, msg: OutboundMessage) -> str | None:
        """SID of the call already placed for msg, else None.

        A Twilio call resource echoes neither its Url nor its StatusCallback, so a listing
        cannot tell two calls to one number apart. The marker is the CallSid that the call's
        own callbacks (which carry `?n=<notification id>`) recorded on the row: the "initiated"
        callback arrives within a second of the create, well inside the wait before a retry
        looks. A recorded SID is confirmed with Twilio before it is trusted. Without one, a
        call no row owns is this message's only once its callbacks are overdue (`attribute`);
        until then CallbacksAwaited says to look again shortly."""
        if self._recorded_sid is None:
            return None
        sid = await self._recorded_sid(msg.notification_id)
        if sid is not None and await self.poll(sid) is not None:
            log.info("voice.found_placed", sid=sid, notification_id=msg.notification_id)
            return sid
        return await self._unowned_call(msg)

    async def _unowned_call(self, msg: OutboundMessage) -> str | None:
        """A call to msg's number, placed since msg was written, that is msg's by `attribute`;
        raises CallbacksAwaited while a call to that number may still be recorded by its own
        callbacks."""
        if self._owned_sids is None or msg.tried_for is None:
            return None
        kwargs: dict[str, Any] = {"to": msg.to, "from_": self.from_number, "page_size": 50}

        async def scan() -> list[Listed]:
            listed = []
            stream = await self._twilio().calls.stream_async(**kwargs)
            since = earliest_copy(msg.tried_for, last_headers())
            async for c in stream:
                if since is not None and c.date_created is not None and c.date_created < since:
                    break
                # A call Twilio lists without its creation time is taken as just placed.
                created = c.date_created or datetime.now(UTC)
                listed.append(Listed(str(c.sid), created.astimezone(UTC)))
            return listed

        calls = await self._call("call_list", scan())
        owned = await self._owned_sids([c.sid for c in calls]) if calls else set()
        # Ages by Twilio's own clock (its answer's Date), as the calls' times are: a dispatcher
        # whose clock runs ahead must not see a young call as overdue.
        found = attribute(calls, owned, provider_now(last_headers()), self.callback_wait)
        if found.action == "wait":
            log.info(
                "voice.awaiting_callbacks",
                notification_id=msg.notification_id,
                wait_s=round(found.wait_s, 1),
            )
            raise CallbacksAwaited(
                "a call to this number awaits its callbacks",
                look_again_s=min(max(found.wait_s, 0.5), LOOK_AGAIN_S),
            )
        if found.sid is not None:
            log.info("voice.found_unowned", sid=found.sid, notification_id=msg.notification_id)
        return found.sid
