"""The API's statements over the tables it owns (events, children, placements,
acknowledgements, the outbox) and its reads of the alerts, each named for what it does.

The alerts row itself is written by its owner, `goldenhour.streams.alert_commands`; audit
lines by `goldenhour.infra.db.audit`."""

from __future__ import annotations

# The relay listens here; a commit that queued an outbox row wakes it at once.
OUTBOX_CHANNEL = "goldenhour_outbox"
NOTIFY_OUTBOX = "NOTIFY goldenhour_outbox"

DATABASE_NOW = "SELECT now()"

# --- intake ---------------------------------------------------------------------------------

# The event and its outbox row in one round trip; nothing when the id is known.
RECORD_EVENT = """
WITH e AS (
    INSERT INTO events (event_id, type, child_id, occurred_at, received_at, org_code, user_id, data)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (event_id) DO NOTHING RETURNING event_id
), o AS (
    INSERT INTO outbox (topic, key, payload, event_id) SELECT $9, $3, $10, $1 FROM e
)
SELECT count(*) = 1 FROM e
"""

LOCK_CHILD_WITH_PLACEMENT = """
SELECT c.local_authority, p.care_home, p.placement_id FROM children c
LEFT JOIN placements p ON p.child_id = c.child_id AND p.ended_at IS NULL
WHERE c.child_id = $1 FOR UPDATE OF c
"""

EVENT_RECORDED_ALREADY = """
SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1 AND org_code = $2
    AND type = $3 AND child_id = $4)
"""

IDENTIFY_CHILD = """
INSERT INTO children (child_id, local_authority, risk_level, exploitation_types,
                      description, identified_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (child_id) DO NOTHING
RETURNING child_id
"""

LOCK_CURRENT_PLACEMENT = """
SELECT 1 FROM placements WHERE child_id = $1 AND ended_at IS NULL FOR UPDATE
"""

TRANSFER_CHILD = """
UPDATE children SET local_authority = $2, updated_at = now() WHERE child_id = $1
"""

SUPERSEDE_PLACEMENTS = """
UPDATE placements SET ended_at = $2, end_reason = 'superseded'
WHERE child_id = $1 AND ended_at IS NULL
"""

# The WHERE keeps an upsert from taking a placement id from the child that holds it.
START_PLACEMENT = """
INSERT INTO placements (placement_id, child_id, care_home, risk,
                        checkin_interval_minutes, curfew, started_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (placement_id) DO UPDATE SET care_home = EXCLUDED.care_home,
    risk = EXCLUDED.risk, checkin_interval_minutes = EXCLUDED.checkin_interval_minutes,
    curfew = EXCLUDED.curfew, ended_at = NULL
WHERE placements.child_id = EXCLUDED.child_id
RETURNING placement_id
"""

SET_CHILD_RISK = """
UPDATE children SET risk_level = $2, updated_at = now() WHERE child_id = $1
"""

END_PLACEMENT = """
UPDATE placements SET ended_at = $2, end_reason = $3 WHERE placement_id = $1
"""

# --- acknowledgements -----------------------------------------------------------------------

LOCK_ALERT = "SELECT alert_id, child_id, status FROM alerts WHERE alert_id = $1 FOR UPDATE"

ACKNOWLEDGED_ALREADY = """
SELECT true FROM acknowledgements WHERE alert_id = $1
    AND user_id IS NOT DISTINCT FROM $2 AND contact_id IS NOT DISTINCT FROM $3
"""

RECORD_ACKNOWLEDGEMENT = """
INSERT INTO acknowledgements (alert_id, org_code, user_id, contact_id, via, acknowledged_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""

QUEUE_OUTBOX_ROW = "INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)"

# --- reading alerts -------------------------------------------------------------------------

ALERT_BY_ID = "SELECT * FROM alerts WHERE alert_id = $1"

ALERT_AGENCIES = "SELECT local_authority, care_home, placement_id FROM alerts WHERE alert_id = $1"

# The rule of `access.may_see` in the query, not row by row: $2 national, $3 the caller's
# organisation, $4 the authorities it polices.
VISIBLE_ALERTS = """
SELECT * FROM alerts a
WHERE a.status = ANY($1)
    AND ($2 OR a.local_authority = $3 OR a.care_home = $3 OR a.local_authority = ANY($4))
ORDER BY a.opened_at DESC LIMIT $5
"""

# The same rule over $1..$3, then the board's filters ($4 authority, $5 risk, $6 acknowledged).
BOARD_ALERTS = """
SELECT a.* FROM alerts a
WHERE a.status <> 'resolved'
    AND ($1 OR a.local_authority = $2 OR a.care_home = $2 OR a.local_authority = ANY($3))
    AND ($4::text IS NULL OR a.local_authority = $4)
    AND ($5::text IS NULL OR a.risk_level = $5)
    AND ($6::boolean IS NULL OR (a.status = 'acknowledged') = $6)
ORDER BY a.opened_at DESC LIMIT $7
"""

ALERT_STEPS = "SELECT * FROM alert_steps WHERE alert_id = $1 ORDER BY decided_at, due_at, step_key"

ALERT_NOTIFICATIONS = """
SELECT * FROM notifications WHERE alert_id = $1 ORDER BY created_at, step_key, contact_id, channel
"""

ALERT_ACKNOWLEDGEMENTS = (
    "SELECT * FROM acknowledgements WHERE alert_id = $1 ORDER BY acknowledged_at"
)

BOARD_NOTIFICATIONS = """
SELECT alert_id, contact_id, channel, status FROM notifications
WHERE alert_id = ANY($1) AND subscription_id IS NULL ORDER BY created_at
"""

BOARD_FIRED_STEPS = """
SELECT alert_id, step_key FROM alert_steps WHERE alert_id = ANY($1) AND status = 'fired'
"""

BOARD_ACKNOWLEDGEMENTS = """
SELECT alert_id, user_id, contact_id FROM acknowledgements WHERE alert_id = ANY($1)
ORDER BY acknowledged_at
"""

# What the child's record heard from a minute before the alert opened until it closed.
CASE_EVENTS = """
SELECT type, occurred_at, received_at, org_code, user_id, data FROM events
WHERE child_id = $1 AND received_at >= $2::timestamptz - interval '1 minute'
    AND received_at <= COALESCE($3::timestamptz, now())
ORDER BY received_at
"""
