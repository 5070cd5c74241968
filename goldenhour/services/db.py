"""The API's statements over the tables it owns (placements, acknowledgements, the outbox
relay's bookkeeping, SMS code tries, Twilio callbacks) and its reads of the rest, each named for
what it does. The console's own statements are in `goldenhour.services.console.db`.

The tables the API shares are written by their owners, whose functions it calls: the alerts
row by `goldenhour.streams.alert_commands`, the child's record by `goldenhour.streams.children`,
events and outbox rows by `goldenhour.infra.outbox`, subscriptions by
`goldenhour.infra.subscriptions`, audit lines by `goldenhour.infra.db.audit`."""

from __future__ import annotations

# The relay listens here; a commit that queued an outbox row wakes it at once.
OUTBOX_CHANNEL = "goldenhour_outbox"
NOTIFY_OUTBOX = "NOTIFY goldenhour_outbox"

DATABASE_NOW = "SELECT now()"

# --- intake ---------------------------------------------------------------------------------


LOCK_CHILD_WITH_PLACEMENT = """
SELECT c.local_authority, p.care_home, p.placement_id FROM children c
LEFT JOIN placements p ON p.child_id = c.child_id AND p.ended_at IS NULL
WHERE c.child_id = $1 FOR UPDATE OF c
"""

EVENT_RECORDED_ALREADY = """
SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1 AND org_code = $2
    AND type = $3 AND child_id = $4)
"""


LOCK_CURRENT_PLACEMENT = """
SELECT 1 FROM placements WHERE child_id = $1 AND ended_at IS NULL FOR UPDATE
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

# --- the outbox relay and its leadership ----------------------------------------------------

TRY_ADVISORY_LOCK = "SELECT pg_try_advisory_lock($1)"

BEAT_LEADER = """
INSERT INTO leader_heartbeats (role, holder, beat_at) VALUES ($1, $2, now())
ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, beat_at = excluded.beat_at
"""

UNPUBLISHED_BATCH = """
SELECT id, topic, key, payload, correlation_id FROM outbox WHERE published_at IS NULL
ORDER BY id LIMIT $1
"""


# The relay's last beat anywhere, and the parts some worker holds partitions for now.
READINESS = """
SELECT extract(epoch FROM now() - (SELECT beat_at FROM leader_heartbeats WHERE role = $1))::float8
           AS relay_age_s,
       ARRAY(SELECT DISTINCT part FROM worker_readiness
             WHERE beat_at > now() - make_interval(secs => $2)) AS parts
"""

# --- the reconciler -------------------------------------------------------------------------

RECONCILE_CURSOR = "SELECT outbox_id FROM reconcile_cursor WHERE name = $1"

# Intake rows ($4 the topic) after the cursor $1, at most $2, each with whether consumer $3
# applied its event or it was dead-lettered.
RECONCILE_WINDOW = """
SELECT o.id, o.event_id,
       extract(epoch FROM now() - o.created_at)::float8 AS age_s,
       extract(epoch FROM now() - o.published_at)::float8 AS published_age_s,
       o.kafka_cluster, o.kafka_partition, o.kafka_offset,
       (EXISTS (SELECT 1 FROM processed_events p
                WHERE p.consumer = $3 AND p.event_id = o.event_id)
        OR EXISTS (SELECT 1 FROM dead_letters d
                   WHERE d.event_id = o.event_id AND d.status = 'dead')) AS done
FROM outbox o
WHERE o.id > $1 AND o.event_id IS NOT NULL AND o.topic = $4
ORDER BY o.id
LIMIT $2
"""

# The cursor only moves forward, whichever of two sweeps commits last.
MOVE_RECONCILE_CURSOR = """
INSERT INTO reconcile_cursor (name, outbox_id) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE
SET outbox_id = GREATEST(reconcile_cursor.outbox_id, excluded.outbox_id), moved_at = now()
"""


# --- SMS acknowledgement codes --------------------------------------------------------------

# Messages that told a contact of the alert itself, not of something around it: a shared
# alert (or its stand-down) reaches a neighbour's subscriber, a stand-down reaches everyone
# told, and a report that someone was unreachable reaches the people who must chase them.
# None of those makes the recipient one of the alert's own responders.
ALERTS_TOLD_TO = """
SELECT DISTINCT ON (t.alert_id) t.alert_id, a.child_id, a.ack_code, t.contact_id, t.org_code
FROM (
    SELECT n.alert_id, n.contact_id, n.org_code, n.created_at AS first FROM notifications n
    WHERE n.contact_id = ANY($1)
      AND n.subscription_id IS NULL AND n.channel <> 'webhook'
      AND n.step_key <> 'stand_down' AND n.step_key NOT LIKE 'share%'
      AND n.step_key NOT LIKE 'unreachable.%' AND n.step_key NOT LIKE 'operations:%'
    UNION ALL
    -- Briefed at a rota's handover: they hold the alert as if its steps had told them.
    SELECT h.alert_id, h.contact_id, h.org_code, h.since FROM alert_holders h
    WHERE h.contact_id = ANY($1)
) AS t JOIN alerts a ON a.alert_id = t.alert_id
WHERE a.status <> 'resolved'
ORDER BY t.alert_id, t.first
"""

# Tries of one number (or at one alert) are counted one at a time, each after its own is
# written, so of any number of concurrent tries exactly the first few are checked. Locks
# are taken in one order, so two replies told of the same alerts never wait on each other.
SERIALISE_ACK_TRIES = """
SELECT pg_advisory_xact_lock(hashtextextended('ack_attempts:' || k, 0))
FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) AS keys
"""

RECORD_NUMBER_TRY = "INSERT INTO ack_attempts (attempt, phone, alert_id) VALUES ($1, $2, NULL)"

COUNT_NUMBER_TRIES = """
SELECT count(*) FROM ack_attempts
WHERE phone = $1 AND alert_id IS NULL AND at > now() - $2::interval
"""

RECORD_ALERT_TRIES = """
INSERT INTO ack_attempts (attempt, phone, alert_id) SELECT $1, $2, unnest($3::uuid[])
"""

COUNT_ALERT_TRIES = """
SELECT alert_id, count(*) AS tries FROM ack_attempts
WHERE alert_id = ANY($1) AND at > now() - $2::interval GROUP BY alert_id
"""

FORGET_ACK_TRY = "DELETE FROM ack_attempts WHERE attempt = $1"

PRUNE_ACK_TRIES = "DELETE FROM ack_attempts WHERE at < now() - $1::interval"

# --- Twilio callbacks -----------------------------------------------------------------------

CLAIM_CALLBACK = """
INSERT INTO twilio_callbacks (digest) VALUES ($1) ON CONFLICT (digest) DO NOTHING RETURNING true
"""

RELEASE_CALLBACK = "DELETE FROM twilio_callbacks WHERE digest = $1"

PRUNE_CALLBACKS = "DELETE FROM twilio_callbacks WHERE received_at < now() - $1::interval"

# A voice call's message; its alert's status tells whether the alert is still open to read.
VOICE_CALL = """
SELECT n.notification_id, n.alert_id, n.child_id, n.contact_id, n.org_code, n.body,
       a.status AS alert_status
FROM notifications n LEFT JOIN alerts a ON a.alert_id = n.alert_id
WHERE n.notification_id = $1 AND n.channel = 'voice'
"""

# --- a child's record -----------------------------------------------------------------------

CHILD_BY_ID = "SELECT * FROM children WHERE child_id = $1"

CURRENT_PLACEMENT = "SELECT * FROM placements WHERE child_id = $1 AND ended_at IS NULL"

CHILD_OPEN_ALERTS = """
SELECT * FROM alerts WHERE child_id = $1 AND status <> 'resolved' ORDER BY opened_at DESC
"""

CHILD_EPISODES = """
SELECT * FROM alerts WHERE child_id = $1 AND kind = 'missing'
ORDER BY anchor_at DESC, opened_at DESC
"""

# Missing episodes whose anchor falls between $2 and $3.
CHILD_EPISODES_BETWEEN = """
SELECT count(*) FROM alerts WHERE child_id = $1 AND kind = 'missing'
    AND anchor_at >= $2 AND anchor_at <= $3
"""

CHILD_RISK_SIGNALS = "SELECT * FROM risk_signals WHERE child_id = $1 ORDER BY occurred_at DESC"

CHILD_PENDING_CLOCKS = """
SELECT kind, due_at FROM watch_timers WHERE child_id = $1 AND status = 'pending'
ORDER BY due_at, kind
"""

# --- subscriptions and shared alerts --------------------------------------------------------


ORG_SUBSCRIPTIONS = """
SELECT * FROM subscriptions WHERE org_code = $1 AND status <> 'deleted'
ORDER BY created_at, subscription_id
"""


SHARED_ALERTS_FEED = """
SELECT * FROM shared_alerts WHERE source_authority = ANY($1)
ORDER BY updated_at DESC, shared_id LIMIT $2
"""

SHARED_ALERT = "SELECT * FROM shared_alerts WHERE shared_id = $1 AND source_authority = ANY($2)"
