"""The failover loop of the dispatcher process: a contact whose SMS the provider has not taken
is called (and emailed); a contact no channel reached is reported to a person.

Every decision is by the database's clock and lands as message rows keyed by (alert, step,
contact, channel), which the dispatcher's sweep sends: N replicas running this loop at once
insert each row once (ON CONFLICT DO NOTHING), and only the replica whose insert took writes the
audit line."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from prometheus_client import Counter

from goldenhour.contracts.alert_kinds import policy_for_alert
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.oncall import on_duty_contacts
from goldenhour.infra import rota_changes, tracing
from goldenhour.infra.ack_links import AckLinks
from goldenhour.infra.backoff import delay
from goldenhour.infra.db import audit
from goldenhour.infra.dead_letters import OPERATIONS_ORG
from goldenhour.infra.notifications import Outgoing, mark_told, queue
from goldenhour.notifiers import db
from goldenhour.notifiers import failover_rules as rules
from goldenhour.wording import messages

log = structlog.get_logger(__name__)

FAILOVERS = Counter(
    "goldenhour_failovers_total", "Messages added because an SMS was not accepted", ["channel"]
)
UNREACHABLE = Counter(
    "goldenhour_unreachable_told_total", "Contacts reported unreachable to a person"
)
LOOP_FAILURES = Counter("goldenhour_failover_loop_failures_total", "Failover passes that raised")

ACTOR = "system:dispatcher"
Row = tuple[str, str, str, str, str, str]  # contact_id, org_code, channel, address, subject, body


class Failover:
    """Calls and emails contacts whose SMS is stuck; reports contacts nobody reached."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: GoldenHourConfig,
        ack_links: AckLinks | None = None,
        every_s: float = 1.0,
        pass_bound_s: float = 20.0,
    ) -> None:
        self.pool = pool
        self.config = config
        self.ack_links = ack_links
        self.every_s = every_s
        self.pass_bound_s = pass_bound_s
        self.last_pass_at: float | None = None  # time.monotonic() of the last completed pass
        self.last_error: str | None = None
        self._rng = random.Random()
        self._nobody_to_tell: set[rules.Group] = set()  # logged once each

    async def run_forever(self) -> None:
        """One pass a second; survives any failure of a pass and backs off while they repeat."""
        failures = 0
        while True:
            try:
                async with asyncio.timeout(self.pass_bound_s):
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive whatever one pass meets
                failures += 1
                LOOP_FAILURES.inc()
                self.last_error = repr(exc)[:300]
                if failures == 1 or failures % 30 == 0:
                    log.warning("failover.pass_failed", error=self.last_error, failures=failures)
                await asyncio.sleep(max(self.every_s, delay(failures, 0.5, 10.0, self._rng)))
                continue
            if failures:
                log.info("failover.recovered", failures=failures)
            failures, self.last_error = 0, None
            self.last_pass_at = time.monotonic()
            await asyncio.sleep(self.every_s)

    def problem(self, stale_after_s: float = 30.0) -> str | None:
        """Why the loop cannot be counted on now (no pass completed lately), or None."""
        if self.last_pass_at is None:
            return f"no failover pass completed yet ({self.last_error or 'starting'})"
        age = time.monotonic() - self.last_pass_at
        if age > stale_after_s:
            return f"last failover pass completed {age:.0f}s ago ({self.last_error or 'stuck'})"
        return None

    async def run_once(self) -> tuple[int, int]:
        """One pass: (messages added by failover, contacts reported unreachable)."""
        delivery = self.config.delivery
        async with self.pool.acquire() as conn:
            now: datetime = await conn.fetchval(db.NOW)
            # Only a (step, contact) with a message unanswered this long can need either.
            soonest = min(delivery.sms_failover_after, delivery.unreachable_after)
            rows = await conn.fetch(db.UNANSWERED, soonest)
            groups = rules.grouped(map(_message, rows))
            due = [
                m
                for group in groups.values()
                for m in group
                if rules.needs_failover(m, group, now, delivery.sms_failover_after)
            ]
            alerts = await self._alerts(conn, {m.alert_id for m in due})
            added = 0
            for sms in due:
                if alerts[sms.alert_id]["status"] == "open":  # acknowledged: someone acts
                    added += await self._fail_over(conn, alerts[sms.alert_id], sms, now)
            if added:  # the new rows are part of their contact's story from here on
                rows = await conn.fetch(db.UNANSWERED, soonest)
                groups = rules.grouped(map(_message, rows))
            is_open = {r["alert_id"]: r["alert_status"] == "open" for r in rows}
            found = [
                u
                for (alert_id, _, _), group in groups.items()
                if (
                    u := rules.unreachable(
                        group, now, delivery.unreachable_after, is_open[alert_id]
                    )
                )
                is not None
            ]
            if not found:
                return added, 0
            alerts = await self._alerts(conn, {u.group[0] for u in found})
            notices = await conn.fetch(db.UNREACHABLE_NOTICES, list(alerts))
            noticed = {(r["alert_id"], r["step_key"]) for r in notices}
            told = 0
            for u in found:
                alert_id, _, contact_id = u.group
                if (alert_id, rules.unreachable_step(contact_id)) in noticed:
                    # Told once per alert and contact; later failures are covered by that notice.
                    await mark_told(conn, list(u.covers), now)
                    continue
                told += await self._tell(conn, alerts[alert_id], u, now)
                noticed.add((alert_id, rules.unreachable_step(contact_id)))
            return added, told

    async def _alerts(self, conn: asyncpg.Connection, ids: set[uuid.UUID]) -> dict[uuid.UUID, Any]:
        if not ids:
            return {}
        rows = await conn.fetch(db.ALERTS, list(ids))
        return {r["alert_id"]: r for r in rows}

    async def _insert(
        self,
        conn: asyncpg.Connection,
        alert: asyncpg.Record,
        step_key: str,
        now: datetime,
        failover_of: uuid.UUID | None,
        rows: list[tuple[uuid.UUID, Row]],
    ) -> list[asyncpg.Record]:
        outgoing = [
            Outgoing(step_key, *row, failover_of=failover_of, notification_id=nid)
            for nid, row in rows
        ]
        # Part of the alert's story: under the id of the report that opened it.
        with tracing.bound(alert["correlation_id"]):
            return await queue(conn, alert["alert_id"], alert["child_id"], outgoing, now)

    async def _fail_over(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, sms: rules.Message, now: datetime
    ) -> int:
        """A call (and an email) for the contact of a stuck SMS; the number of rows added."""
        found = self.config.contact(sms.contact_id)
        if found is None:  # left the directory since: the SMS's own number is all there is
            log.warning("failover.unknown_contact", contact_id=sms.contact_id)
            return 0
        org, contact = found
        facts = messages.alert_facts(alert, self.config)
        policy = policy_for_alert(self.config, alert["kind"], alert["risk_level"])
        tz = self.config.tz
        spoken = messages.voice_alert(facts, sms.step_key, now, tz, policy.renotify_max)
        rows: list[tuple[uuid.UUID, Row]] = [
            (uuid.uuid4(), (contact.id, org.code, "voice", contact.phone, "", spoken))
        ]
        email_id = uuid.uuid4()
        link = self.ack_links.url(email_id) if self.ack_links else None
        subject, body = messages.email_alert(
            facts, sms.step_key, now, tz, policy.renotify_max, link
        )
        rows.append((email_id, (contact.id, org.code, "email", str(contact.email), subject, body)))
        async with conn.transaction():
            added = await self._insert(conn, alert, sms.step_key, now, sms.notification_id, rows)
            why = (
                f"the SMS failed: {sms.last_error or 'no reason given'}"
                if sms.status == "failed"
                else f"the SMS was not accepted within {self.config.delivery.sms_failover_after}"
            )
            for r in added:
                await audit(
                    conn,
                    "notification.failover",
                    alert["child_id"],
                    alert["alert_id"],
                    {
                        "notification_id": str(r["notification_id"]),
                        "failover_of": str(sms.notification_id),
                        "channel": r["channel"],
                        "contact_id": sms.contact_id,
                        "step_key": sms.step_key,
                        "reason": why,
                    },
                    actor=ACTOR,
                )
        for r in added:
            FAILOVERS.labels(r["channel"]).inc()
            log.warning(
                "notification.failover",
                alert_id=str(alert["alert_id"]),
                child_id=alert["child_id"],
                notification_id=str(r["notification_id"]),
                failover_of=str(sms.notification_id),
                channel=r["channel"],
                step_key=sms.step_key,
            )
        return len(added)

    def _recipients(
        self, alert: asyncpg.Record, contact_id: str, now: datetime, changes: dict
    ) -> list[tuple[str, str, str, str]]:
        """Who hears that contact_id was not reached: the child's local authority's duty
        managers on call (every one where no rota says) and the operations contacts, never the
        contact itself, so an unreachable duty manager is reported to the others, or to the
        rota's fallback when they were the one on call. (contact_id, org, phone, email)."""
        found: dict[str, tuple[str, str, str, str]] = {}
        la = self.config.org(alert["local_authority"])
        duty = [
            c
            for c in on_duty_contacts(self.config, la, "duty_manager", now, changes)
            if c.id != contact_id
        ]
        rota = next((r for r in la.rotas if r.role == "duty_manager"), None) if la else None
        if la is not None and not duty and rota is not None and rota.fallback != contact_id:
            duty = [c for c in la.contacts if c.id == rota.fallback]
        for c in duty:
            found[c.id] = (c.id, la.code if la else "", c.phone, str(c.email))
        for op in self.config.operations:
            if op.id != contact_id:
                found.setdefault(op.id, (op.id, OPERATIONS_ORG, op.phone, str(op.email)))
        return list(found.values())

    def _notice(self, alert: asyncpg.Record, u: rules.Unreachable) -> tuple[str, str, str]:
        """SMS body, email subject and body saying who could not be reached and why: the
        contact's organisation and role and the case reference, never the child's name."""
        contact_id = u.group[2]
        found = self.config.contact(contact_id)
        if found is not None:
            org, contact = found
            who = f"{org.name or org.code} {contact.role.replace('_', ' ')}"
        else:
            who = f"contact {contact_id}"
        case = alert["child_id"]
        what = f"{alert['kind'].replace('_', ' ')} alert, {alert['risk_level']} risk"
        if u.reached:
            head = f"a message to {who} about case {case} failed for good"
            ask = "Another channel reached them; check their details in the directory."
        else:
            head = f"could not reach {who} about case {case}"
            ask = "Please reach them another way now."
        sms = f"GOLDEN HOUR: {head} ({what}). {ask} Tried: {u.why}"
        subject = f"Golden Hour: {head}"
        body = (
            f"Golden Hour: {head} ({what}).\n\n{ask}\n\n"
            f"Step: {u.group[1]}\nWhat was tried: {u.why}\n"
            f"Alert: {alert['alert_id']}\n"
        )
        return messages_fit(sms), subject[:200], body

    async def _tell(
        self, conn: asyncpg.Connection, alert: asyncpg.Record, u: rules.Unreachable, now: datetime
    ) -> int:
        """The notice for one contact, by SMS and email to each recipient; 1 if this pass
        sent it, 0 if another replica did or there is nobody to tell."""
        alert_id, step_key, contact_id = u.group
        bound = log.bind(alert_id=str(alert_id), child_id=alert["child_id"], contact_id=contact_id)
        changes = await rota_changes.for_resolving(conn, self.config, now)
        recipients = self._recipients(alert, contact_id, now, changes)
        if not recipients:
            if u.group not in self._nobody_to_tell:
                self._nobody_to_tell.add(u.group)
                bound.error("contact.unreachable_nobody_to_tell", step_key=step_key, why=u.why)
            return 0
        sms, subject, body = self._notice(alert, u)
        rows: list[tuple[uuid.UUID, Row]] = []
        for rid, org_code, phone, email in recipients:
            rows.append((uuid.uuid4(), (rid, org_code, "sms", phone, "", sms)))
            rows.append((uuid.uuid4(), (rid, org_code, "email", email, subject, body)))
        notice = rules.unreachable_step(contact_id)
        async with conn.transaction():
            added = await self._insert(conn, alert, notice, now, None, rows)
            await mark_told(conn, list(u.covers), now)
            if added:
                await audit(
                    conn,
                    "contact.unreachable",
                    alert["child_id"],
                    alert_id,
                    {
                        "contact_id": contact_id,
                        "step_key": step_key,
                        "reached": u.reached,
                        "why": u.why,
                        "told": sorted({r["contact_id"] for r in added}),
                        "notifications": [str(n) for n in u.covers],
                    },
                    actor=ACTOR,
                )
        if not added:
            return 0
        UNREACHABLE.inc()
        bound.error(
            "contact.unreachable",
            step_key=step_key,
            reached=u.reached,
            why=u.why,
            told=len({r["contact_id"] for r in added}),
        )
        return 1


def messages_fit(text: str, limit: int = 1500) -> str:
    """An SMS body inside Twilio's 1600-character limit."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _message(r: asyncpg.Record) -> rules.Message:
    return rules.Message(
        notification_id=r["notification_id"],
        alert_id=r["alert_id"],
        step_key=r["step_key"],
        contact_id=r["contact_id"],
        channel=r["channel"],
        status=r["status"],
        created_at=r["created_at"],
        failover_of=r["failover_of"],
        last_error=r["last_error"],
    )
