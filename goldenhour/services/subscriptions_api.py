"""GET/POST/DELETE /subscriptions: an organisation's subscriptions to its neighbours' shared alerts.

Scoped to the caller's organisation: any of its users may list them; only its duty managers and
admins may create or delete one. An `immigration_enforcement` organisation can never subscribe
(DESIGN.md rule 3): it holds no key, and the create path refuses it all the same.

An organisation subscribes only to authorities that list it as a neighbour, the rule the shared
alerts feed reads by. Naming any other is 403, not 422: the request is well formed and the
authority exists, but the caller may not have its alerts, and no change to the request would
make it so (only the authority listing the caller as a neighbour would).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError

from goldenhour.contracts.api import ErrorBody
from goldenhour.contracts.config import GoldenHourConfig, OrgKind, UserRole
from goldenhour.contracts.shared import SubscriptionRequest, SubscriptionView
from goldenhour.infra import subscriptions
from goldenhour.infra.db import audit
from goldenhour.infra.webhook_urls import WebhookUrlError, check_webhook_url
from goldenhour.services import db
from goldenhour.services.auth import Caller, authenticate

router = APIRouter()

MANAGERS = frozenset({UserRole.duty_manager, UserRole.admin})
"""The roles that may create or delete their organisation's subscriptions."""


@dataclass(frozen=True)
class Plan:
    """A subscription request checked against the directory, ready to store."""

    source_authorities: list[str]
    contacts: list[str]
    channels: list[str]
    webhook_url: str | None


def _invalid(loc: tuple[str | int, ...], message: str, kind: str) -> RequestValidationError:
    """A 422 in the same shape as the app's validation errors, located at the field at fault."""
    return RequestValidationError([{"loc": ("body", *loc), "msg": message, "type": kind}])


def _unique(items: Iterable[str]) -> list[str]:
    """The items as plain strings, each once, in their first order."""
    return list(dict.fromkeys(str(item) for item in items))


def check_may_manage(caller: Caller) -> None:
    """403 unless the caller may create or delete its organisation's subscriptions."""
    if caller.org.kind == OrgKind.immigration_enforcement:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="an immigration_enforcement organisation may never subscribe to shared alerts",
        )
    if not MANAGERS.intersection(caller.user.roles):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"only a duty manager or admin of {caller.org.code} may create or delete"
            " its subscriptions",
        )


def neighbours_of(config: GoldenHourConfig, org_code: str) -> list[str]:
    """The local authorities that list `org_code` as a neighbour, in directory order."""
    return [
        o.code
        for o in config.organisations
        if o.kind == OrgKind.local_authority and org_code in o.neighbours and o.code != org_code
    ]


def plan_subscription(config: GoldenHourConfig, caller: Caller, body: SubscriptionRequest) -> Plan:
    """Check a request against the caller's rights and the directory: 403 or 422, else a Plan.

    The webhook URL's addresses are checked apart (`check_webhook_url`): that needs DNS.
    """
    check_may_manage(caller)
    own = caller.org.code

    if body.source_authorities is None:
        sources = neighbours_of(config, own)
        if not sources:
            raise _invalid(
                ("source_authorities",),
                f"no authority lists you ({own}) as a neighbour; name source_authorities",
                "no_neighbours",
            )
    else:
        sources = _unique(body.source_authorities)
        for i, code in enumerate(sources):
            org = config.org(code)
            if org is None:
                raise _invalid(
                    ("source_authorities", i),
                    f"{code} is not an organisation in the directory",
                    "unknown_authority",
                )
            if org.kind != OrgKind.local_authority:
                raise _invalid(
                    ("source_authorities", i),
                    f"{code} is a {org.kind}, not a local_authority",
                    "not_an_authority",
                )
            if code == own:
                raise _invalid(
                    ("source_authorities", i),
                    f"{code} is your own organisation: subscribe to other authorities",
                    "own_authority",
                )
            if own not in org.neighbours:
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN,
                    detail=f"source_authorities[{i}]: {code} does not list {own} as a neighbour;"
                    " an organisation may subscribe only to the shared alerts of authorities"
                    " that list it as a neighbour",
                )
        if not sources:
            raise _invalid(
                ("source_authorities",),
                "source_authorities is empty: name at least one authority, or leave it out"
                " for the authorities that list you as a neighbour",
                "no_sources",
            )

    deliver = body.deliver
    contacts = _unique(deliver.contacts)
    channels = _unique(deliver.channels)
    for i, contact_id in enumerate(contacts):
        found = config.contact(contact_id)
        if found is None or found[0].code != own:
            raise _invalid(
                ("deliver", "contacts", i),
                f"{contact_id} is not a contact of {own}: name your own organisation's contacts",
                "not_your_contact",
            )
    if contacts and not channels:
        raise _invalid(
            ("deliver", "channels"),
            "contacts need channels: name sms and/or email",
            "channels_missing",
        )
    if channels and not contacts:
        raise _invalid(
            ("deliver", "contacts"),
            "channels need contacts: name which of your contacts receive them",
            "contacts_missing",
        )
    webhook_url = str(deliver.webhook_url) if deliver.webhook_url is not None else None
    if not contacts and webhook_url is None:
        raise _invalid(
            ("deliver",),
            "nothing to deliver to: name contacts with channels, a webhook_url, or both",
            "no_delivery",
        )
    return Plan(sources, contacts, channels, webhook_url)


def _view(row: asyncpg.Record, secret: str | None = None) -> SubscriptionView:
    data: dict[str, Any] = dict(row)
    data.pop("webhook_secret", None)
    note = None
    if data["status"] == "disabled":
        when = data["disabled_at"].isoformat() if data.get("disabled_at") else "an unknown time"
        note = (
            f"disabled at {when} after {data['consecutive_failures']} consecutive failed"
            " deliveries; delete it and subscribe again"
        )
    return SubscriptionView.model_validate({**data, "webhook_secret": secret, "note": note})


@router.post("/subscriptions", status_code=status.HTTP_201_CREATED, response_model=SubscriptionView)
async def create_subscription(
    request: Request, body: SubscriptionRequest, caller: Caller = Depends(authenticate)
) -> SubscriptionView:
    """Subscribe the caller's organisation; the webhook secret is in this answer and no other."""
    plan = plan_subscription(request.app.state.config, caller, body)
    if plan.webhook_url is not None:
        try:
            await check_webhook_url(
                plan.webhook_url, request.app.state.settings.webhook_allow_private
            )
        except WebhookUrlError as exc:
            raise _invalid(("deliver", "webhook_url"), str(exc), "webhook_url") from None
    subscription_id = uuid.uuid4()
    secret = secrets.token_urlsafe(32) if plan.webhook_url is not None else None
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        row = await subscriptions.create(
            conn,
            subscription_id=subscription_id,
            org_code=caller.org.code,
            created_by=caller.user.id,
            source_authorities=plan.source_authorities,
            min_risk=str(body.min_risk),
            exploitation_types=_unique(body.exploitation_types),
            contacts=plan.contacts,
            channels=plan.channels,
            webhook_url=plan.webhook_url,
            webhook_secret=secret,
            at=datetime.now(UTC),
        )
        await audit(
            conn,
            "subscription.created",
            None,
            None,
            {
                "subscription_id": str(subscription_id),
                "org_code": caller.org.code,
                "source_authorities": plan.source_authorities,
                "min_risk": str(body.min_risk),
                "exploitation_types": row["exploitation_types"],
                "contacts": plan.contacts,
                "channels": plan.channels,
                "webhook_url": plan.webhook_url,
            },
            actor=caller.actor,
        )
    return _view(row, secret)


@router.get(
    "/subscriptions",
    response_model=list[SubscriptionView],
    response_model_exclude={"__all__": {"webhook_secret"}},
)
async def list_subscriptions(
    request: Request, caller: Caller = Depends(authenticate)
) -> list[SubscriptionView]:
    """The caller's organisation's subscriptions that are not deleted, oldest first; no secrets."""
    rows = await request.app.state.pool.fetch(db.ORG_SUBSCRIPTIONS, caller.org.code)
    return [_view(r) for r in rows]


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        404: {
            "model": ErrorBody,
            "description": "No such subscription of the caller's organisation",
        }
    },
)
async def delete_subscription(
    request: Request, subscription_id: uuid.UUID, caller: Caller = Depends(authenticate)
) -> Response:
    """Delete one of the caller's organisation's subscriptions; nothing more is delivered to it."""
    check_may_manage(caller)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        if not await subscriptions.delete(conn, subscription_id, caller.org.code):
            # Another organisation's subscription gets the same answer as a missing one.
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such subscription")
        await audit(
            conn,
            "subscription.deleted",
            None,
            None,
            {"subscription_id": str(subscription_id), "org_code": caller.org.code},
            actor=caller.actor,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
