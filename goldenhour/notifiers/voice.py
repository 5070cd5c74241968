"""Voice channel: one Twilio call per attempt that reads the alert out and takes `1` on the
keypad as an acknowledgement (the TwiML and the keypad are services/twilio_webhooks.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

import structlog

from goldenhour.notifiers.base import OutboundMessage, SendResult
from goldenhour.notifiers.sms import CLOCK_MARGIN, TwilioSms

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

RecordedSid = Callable[[str], Awaitable[str | None]]
# Of these CallSids, those some message row already owns.
OwnedSids = Callable[[list[str]], Awaitable[set[str]]]


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
    ) -> None:
        super().__init__(account_sid, auth_token, from_number, api_base_url, timeout)
        self.public_url = public_url
        self.ring_timeout_s = ring_timeout_s
        # The CallSid a callback recorded on the message's row (None: not known yet).
        self._recorded_sid = recorded_sid
        self._owned_sids = owned_sids

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
        looks. A recorded SID is confirmed with Twilio before it is trusted."""
        if self._recorded_sid is None:
            return None
        sid = await self._recorded_sid(msg.notification_id)
        if sid is not None and await self.poll(sid) is not None:
            log.info("voice.found_placed", sid=sid, notification_id=msg.notification_id)
            return sid
        return await self._unowned_call(msg)

    async def _unowned_call(self, msg: OutboundMessage) -> str | None:
        """A call to msg's number, placed since msg was written, that no message row owns: its
        callbacks never came (the API restarting, Twilio queueing the call), and it is msg's.
        Re-placing it instead would ring the contact once per retry."""
        if self._owned_sids is None or msg.sent_since is None:
            return None
        since = msg.sent_since.astimezone(UTC) - CLOCK_MARGIN
        kwargs: dict[str, Any] = {"to": msg.to, "from_": self.from_number, "page_size": 50}

        async def scan() -> list[str]:
            sids = []
            async for c in await self._twilio().calls.stream_async(**kwargs):
                if c.date_created is not None and c.date_created < since:
                    break
                sids.append(str(c.sid))
            return sids

        sids = await self._call("call_list", scan())
        owned = await self._owned_sids(sids) if sids else set()
        unowned = [sid for sid in sids if sid not in owned]
        if not unowned:
            return None
        log.info("voice.found_unowned", sid=unowned[-1], notification_id=msg.notification_id)
        return unowned[-1]  # the earliest: Twilio lists newest first
