"""Twilio's callbacks: delivery status of our SMS, and SMS replies (`ACK 4821`)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import structlog
from fastapi import APIRouter, HTTPException, Request, Response, status
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from notifiers.status import apply_status, provider_status
from services.acks import acknowledge

log = structlog.get_logger(__name__)
router = APIRouter()

ACK_REPLY = re.compile(r"^\s*ACK\s*[#:]?\s*(\d{4,8})\s*$", re.IGNORECASE)


async def _signed_form(request: Request) -> dict[str, str]:
    """The callback's form fields, or 403 unless Twilio's signature over them is valid."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    url = request.app.state.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    validator = RequestValidator(request.app.state.settings.twilio_auth_token)
    signature = request.headers.get("x-twilio-signature", "")
    if not signature or not validator.validate(url, form, signature):
        log.warning("twilio.bad_signature", path=request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="invalid X-Twilio-Signature")
    return form


@router.post("/webhooks/twilio/status")
async def delivery_status(request: Request) -> Response:
    """Record a delivery status against our message (named in the callback URL) or its SID."""
    form = await _signed_form(request)
    sid, reported = form.get("MessageSid", ""), form.get("MessageStatus", "")
    ours = provider_status(reported)
    if not sid or ours is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"missing MessageSid or unknown MessageStatus {reported!r}",
        )
    try:
        notification_id = (
            uuid.UUID(request.query_params["n"]) if "n" in request.query_params else None
        )
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="bad notification id") from None
    error = form.get("ErrorCode")
    await apply_status(
        request.app.state.pool,
        ours,
        f"provider error {error}" if error else None,
        notification_id=notification_id,
        provider_id=sid,
    )
    return Response(status_code=status.HTTP_200_OK)


def _twiml(text: str) -> Response:
    reply = MessagingResponse()
    reply.message(text)
    return Response(content=str(reply), media_type="application/xml")


@router.post("/webhooks/twilio/inbound")
async def inbound_sms(request: Request) -> Response:
    """An SMS reply: `ACK <code>` acknowledges the alert that contact was told of."""
    form = await _signed_form(request)
    sender, body = form.get("From", ""), form.get("Body", "")
    config = request.app.state.config
    contacts = config.contacts_by_phone(sender)
    match = ACK_REPLY.match(body)
    if not contacts:
        log.warning("sms.unknown_sender")
        return _twiml("Golden Hour: this number is not in the directory. Call your duty desk.")
    if match is None:
        return _twiml(
            "Golden Hour: to acknowledge an alert reply ACK and the code in the alert, "
            "e.g. ACK 4821."
        )
    code = match.group(1)
    pool = request.app.state.pool
    async with pool.acquire() as conn:
        alert = await conn.fetchrow(
            """
            SELECT a.alert_id, a.child_id, n.contact_id, n.org_code FROM alerts a
            JOIN notifications n ON n.alert_id = a.alert_id
            WHERE a.ack_code = $1 AND a.status <> 'resolved' AND n.contact_id = ANY($2)
            LIMIT 1
            """,
            code,
            [c.id for _, c in contacts],
        )
        if alert is None:
            return _twiml(
                f"Golden Hour: no open alert sent to you has code {code}. "
                "Check the code in the alert and reply ACK <code>."
            )
        await acknowledge(
            conn,
            alert["alert_id"],
            org_code=alert["org_code"],
            user_id=None,
            contact_id=alert["contact_id"],
            via="sms",
            now=datetime.now(UTC),
            alerts_topic=request.app.state.topics.alerts,
        )
    return _twiml(
        f"Golden Hour: acknowledged case {alert['child_id']}. Others can see you "
        "are acting. Thank you."
    )
