"""Twilio's callbacks: delivery status of our SMS and calls, SMS replies (`ACK 482193`), and the
TwiML a call reads out with the keypad answer (`1` acknowledges)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, HTTPException, Request, Response, status
from structlog.typing import FilteringBoundLogger
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from goldenhour.notifiers.status import apply_status, provider_status
from goldenhour.notifiers.voice import VOICE_PATH, call_status
from goldenhour.services import db
from goldenhour.services.ack_codes import PER_NUMBER, check_reply
from goldenhour.services.acks import acknowledge, acknowledge_by_message
from goldenhour.services.twilio_replays import first_delivery

log = structlog.get_logger(__name__)
router = APIRouter()

# The answer to a callback Twilio reads: a TwiML document.
TWIML = {
    "response_class": Response,
    "responses": {200: {"content": {"application/xml": {}}, "description": "TwiML"}},
}

_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Any run of digits is a try at a code (a wrong length is a wrong code, and counts as one).
ACK_REPLY = re.compile(r"^\s*ACK\s*[#:]?\s*(\d{1,12})\s*$", re.IGNORECASE)
# Twilio's callback forms are a few hundred bytes; a large one is refused before it is read.
MAX_FORM_BYTES = 16 * 1024
# What a call says around the alert: a person who picks up hears it twice before the goodbye.
VOICE_GOODBYE = "No key was pressed. Golden Hour will keep trying. Goodbye."
VOICE_ACKNOWLEDGED = (
    "Thank you. The alert is acknowledged: the other agencies can see you are acting. Goodbye."
)
VOICE_CLOSED = "Golden Hour: this alert is closed. No action is needed. Goodbye."
VOICE_UNKNOWN_KEY = "That key does not acknowledge the alert. Here it is again."
SMS_TOO_MANY = (
    "Golden Hour: too many wrong codes; acknowledge in the console or call your duty desk."
)


@dataclass(frozen=True)
class SignedCallback:
    """A callback whose signature held: the URL Twilio signed and its form fields."""

    url: str
    form: dict[str, str]


def _refuse_unless_twilio_on(request: Request) -> tuple[str, ...]:
    """The auth tokens to check signatures with (primary, then the secondary of a rotation);
    403 when Twilio is switched off (or has no token), so a signature is never checked
    against an empty key."""
    settings = request.app.state.settings
    if not settings.twilio_ready:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Twilio is switched off")
    return settings.twilio_auth_tokens


def signature_holds(
    tokens: tuple[str, ...], url: str, form: dict[str, str], signature: str
) -> bool:
    """Whether Twilio's signature over `url` and `form` was made with any of `tokens`: while
    the auth token is rotated, Twilio may sign with either until the old one is revoked."""
    return any(RequestValidator(t).validate(url, form, signature) for t in tokens if t.strip())


async def _small_body(request: Request) -> bytes:
    """The body, or 413 once it is larger than any Twilio form (by its length or as read).

    Kept beside the app's body cap (services.http_limits), which is four times larger and runs
    before any route: this one is Twilio's own size, and is met only after the signature header
    is seen, so an unsigned form under the app's cap is refused 403, whatever its size."""
    declared = request.headers.get("content-length")
    too_large = HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"a Twilio callback is at most {MAX_FORM_BYTES} bytes",
    )
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise too_large
    return bytes(body)


async def _signed_form(request: Request) -> SignedCallback:
    """The callback's form fields, or 403 unless Twilio's signature over them is valid. The
    header and the size are checked before a byte of the form is parsed."""
    tokens = _refuse_unless_twilio_on(request)
    signature = request.headers.get("x-twilio-signature", "")
    if not signature:
        log.warning("twilio.no_signature", path=request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing X-Twilio-Signature")
    body = await _small_body(request)
    form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    url = request.app.state.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not signature_holds(tokens, url, form, signature):
        log.warning("twilio.bad_signature", path=request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="invalid X-Twilio-Signature")
    return SignedCallback(url, form)


async def _once(
    request: Request,
    act: Callable[[dict[str, str]], Awaitable[Response]],
    replayed: Callable[[dict[str, str]], Awaitable[Response]],
) -> Response:
    """Act on a signed callback the first time it arrives; a replay gets `replayed`, with no
    effect (Twilio retries callbacks itself, so a replay is never an error)."""
    callback = await _signed_form(request)
    async with first_delivery(request.app.state.pool, callback.url, callback.form) as first:
        if first:
            return await act(callback.form)
    log.info("twilio.replayed", path=request.url.path)
    return await replayed(callback.form)


async def _ok(_: dict[str, str]) -> Response:
    return Response(status_code=status.HTTP_200_OK)


async def _no_reply(_: dict[str, str]) -> Response:
    return _twiml(None)


async def _hang_up(_: dict[str, str]) -> Response:
    reply = VoiceResponse()
    reply.hangup()
    return _voice(reply)


def _reported(
    form: dict[str, str], resource: str, ours_for: Callable[[str], str | None]
) -> tuple[str, str, str]:
    """A status callback's SID and its status, as Twilio words it and as ours; 400 when the SID
    is missing or the status unknown. The fields are `<resource>Sid` and `<resource>Status`."""
    sid, reported = form.get(f"{resource}Sid", ""), form.get(f"{resource}Status", "")
    ours = ours_for(reported)
    if not sid or ours is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"missing {resource}Sid or unknown {resource}Status {reported!r}",
        )
    return sid, reported, ours


@router.post("/webhooks/twilio/status", response_class=Response)
async def delivery_status(request: Request) -> Response:
    """Record a delivery status against our message (named in the callback URL) or its SID."""
    return await _once(request, lambda form: _delivery_status(request, form), _ok)


async def _delivery_status(request: Request, form: dict[str, str]) -> Response:
    sid, _, ours = _reported(form, "Message", provider_status)
    notification_id = _notification_id(request, required=False)
    error = form.get("ErrorCode")
    await apply_status(
        request.app.state.pool,
        ours,
        f"provider error {error}" if error else None,
        notification_id=notification_id,
        provider_id=sid,
    )
    return Response(status_code=status.HTTP_200_OK)


def _notification_id(request: Request, required: bool = True) -> uuid.UUID | None:
    """The message named by the callback URL's `?n=`; 400 when it is malformed (or missing,
    when required)."""
    given = request.query_params.get("n")
    if given is None:
        if required:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="missing notification id n")
        return None
    try:
        return uuid.UUID(given)
    except ValueError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=f"bad notification id {given!r}"
        ) from None


def _twiml(text: str | None) -> Response:
    """A reply SMS, or (None) an answer that sends none."""
    reply = MessagingResponse()
    if text is not None:
        reply.message(text)
    return Response(content=str(reply), media_type="application/xml")


@router.post("/webhooks/twilio/inbound", **TWIML)
async def inbound_sms(request: Request) -> Response:
    """An SMS reply: `ACK <code>` acknowledges the alert that contact was told of."""
    return await _once(request, lambda form: _inbound(request, form), _no_reply)


async def _inbound(request: Request, form: dict[str, str]) -> Response:
    sender, body = form.get("From", ""), form.get("Body", "")
    contacts = request.app.state.config.contacts_by_phone(sender)
    match = ACK_REPLY.match(body)
    if not contacts:
        log.warning("sms.unknown_sender")
        return _twiml("Golden Hour: this number is not in the directory. Call your duty desk.")
    if match is None:
        return _twiml(
            "Golden Hour: to acknowledge an alert reply ACK and the code in the alert, "
            "e.g. ACK 482193."
        )
    code = match.group(1)
    contact_ids = [c.id for _, c in contacts]
    async with request.app.state.pool.acquire() as conn:
        verdict = await check_reply(conn, sender, code, contact_ids)
        if verdict.outcome == "limited":
            log.warning("sms.ack_limited", contacts=contact_ids, per_number=PER_NUMBER)
            return _twiml(SMS_TOO_MANY)
        if verdict.alert is None:
            log.info("sms.ack_wrong_code", contacts=contact_ids)
            return _twiml(
                f"Golden Hour: no open alert sent to you has code {code}. "
                "Check the code in the alert and reply ACK <code>."
            )
        alert = verdict.alert
        await acknowledge(
            conn,
            alert.alert_id,
            org_code=alert.org_code,
            user_id=None,
            contact_id=alert.contact_id,
            via="sms",
            now=datetime.now(UTC),
            alerts_topic=request.app.state.topics.alerts,
        )
    return _twiml(
        f"Golden Hour: acknowledged case {alert.child_id}. Others can see you "
        "are acting. Thank you."
    )


def _voice(reply: VoiceResponse) -> Response:
    return Response(content=str(reply), media_type="application/xml")


async def _call_row(request: Request) -> dict:
    """The message row of the call the callback URL names, with its alert's state; 404 when no
    call has that id."""
    notification_id = _notification_id(request)
    row = await request.app.state.pool.fetchrow(db.VOICE_CALL, notification_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no call {notification_id}")
    return dict(row)


def _call_log(row: dict) -> FilteringBoundLogger:
    """The log, bound to the call's alert, child and message."""
    return log.bind(
        alert_id=str(row["alert_id"]),
        child_id=row["child_id"],
        notification_id=str(row["notification_id"]),
    )


def _read_out(request: Request, row: dict, preface: str | None = None) -> Response:
    """The alert read out twice inside a one-key <Gather>, then a goodbye."""
    reply = VoiceResponse()
    keypad = request.app.state.settings.public_url.rstrip("/") + f"{VOICE_PATH}/keypad"
    gather = reply.gather(
        num_digits=1, action=f"{keypad}?n={row['notification_id']}", method="POST", timeout=10
    )
    if preface:
        gather.say(preface)
    # XML 1.0 has no place for control characters, which free text may carry: left in, Twilio
    # plays an application error instead of the alert, and the call still ends `completed`.
    script = _NOT_XML.sub(" ", row["body"])
    gather.say(script)
    gather.pause(length=1)
    gather.say(script)
    reply.say(VOICE_GOODBYE)
    return _voice(reply)


@router.post("/webhooks/twilio/voice", **TWIML)
async def voice_twiml(request: Request) -> Response:
    """What the call for one message says (its stored body: case reference, risk, last seen;
    never a name), with the keypad prompt."""
    return await _once(request, lambda form: _voice_twiml(request, form), _hang_up)


async def _voice_twiml(request: Request, form: dict[str, str]) -> Response:
    row = await _call_row(request)
    bound = _call_log(row)
    sid = form.get("CallSid", "")
    if sid:
        # The call connected: record its SID, so a retry after a lost create answer finds it.
        await apply_status(
            request.app.state.pool,
            "sent",
            None,
            notification_id=row["notification_id"],
            provider_id=sid,
        )
    if row["alert_status"] in (None, "resolved"):
        bound.info("voice.read_closed", call_sid=sid)
        reply = VoiceResponse()
        reply.say(VOICE_CLOSED)
        reply.hangup()
        return _voice(reply)
    bound.info("voice.read_out", call_sid=sid)
    return _read_out(request, row)


@router.post("/webhooks/twilio/voice/keypad", **TWIML)
async def voice_keypad(request: Request) -> Response:
    """A key pressed during the call: `1` acknowledges the alert as the contact called."""
    return await _once(
        request,
        lambda form: _voice_keypad(request, form),
        lambda form: _keypad_again(request, form),
    )


async def _keypad_again(request: Request, form: dict[str, str]) -> Response:
    """The same key pressed again in the same call (its form is the same): another key hears
    the alert again, as the first time did; `1` has had its effect and is not repeated."""
    if form.get("Digits", "") == "1":
        return await _hang_up(form)
    row = await _call_row(request)
    return _read_out(request, row, VOICE_UNKNOWN_KEY)


async def _voice_keypad(request: Request, form: dict[str, str]) -> Response:
    row = await _call_row(request)
    bound = _call_log(row)
    digits = form.get("Digits", "")
    if digits != "1":
        bound.info("voice.other_key", digits=digits[:8])
        return _read_out(request, row, VOICE_UNKNOWN_KEY)
    async with request.app.state.pool.acquire() as conn:
        result = await acknowledge_by_message(
            conn,
            row,
            via="voice",
            now=datetime.now(UTC),
            alerts_topic=request.app.state.topics.alerts,
        )
    reply = VoiceResponse()
    if result is None or result.status == "resolved":
        reply.say(VOICE_CLOSED)
    else:
        bound.info("voice.acknowledged", new=result.new)
        reply.say(VOICE_ACKNOWLEDGED)
    reply.hangup()
    return _voice(reply)


@router.post("/webhooks/twilio/voice/status", response_class=Response)
async def voice_status(request: Request) -> Response:
    """A call's progress: answered and heard → delivered; busy, no answer, failed → failed."""
    return await _once(request, lambda form: _voice_status(request, form), _ok)


async def _voice_status(request: Request, form: dict[str, str]) -> Response:
    notification_id = _notification_id(request)
    sid, reported, ours = _reported(form, "Call", call_status)
    error = None
    if ours == "failed":
        error = f"call {reported}" + (
            f" (provider error {form['ErrorCode']})" if form.get("ErrorCode") else ""
        )
    await apply_status(
        request.app.state.pool, ours, error, notification_id=notification_id, provider_id=sid
    )
    return Response(status_code=status.HTTP_200_OK)
