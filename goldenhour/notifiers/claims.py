"""The dispatcher's SQL: claims, the fence before a send, and every mark of a message row.

One clock: every lease and due time is the database's `now()`, never a dispatcher's own, so
two dispatchers whose clocks disagree see the same leases. Every claim (first send, retry,
take-over) increments `claim` and returns it; the fence and every mark present it, so a holder
whose lease was taken over can neither mark the row nor, once it sees that, send.
"""

from __future__ import annotations

from goldenhour.notifiers.status import audited_change

# The row, its alert's state (whether the step still matters) and the database's now.
_WITH_ALERT = """
SELECT c.*, a.status AS alert_status, now() AS db_now
FROM c LEFT JOIN alerts a ON a.alert_id = c.alert_id
"""

# $3: the sweep's now (itself read from the database), or NULL for the database's now.
CLAIM_DUE = (
    """
WITH c AS (
    UPDATE notifications SET status = 'sending', attempts = attempts + 1, claim = claim + 1,
           lease_until = now() + make_interval(secs => $2), updated_at = now()
    WHERE notification_id = $1 AND status = 'pending'
      AND next_attempt_at <= COALESCE($3, now())
    RETURNING *
)"""
    + _WITH_ALERT
)

# A lease that ran out (its dispatcher died or stalled mid-send) is taken over by one claimer,
# and not before the provider has had time to finish what an ambiguous attempt started. What
# the dead holder's attempt did is unknown: `look_after` records that, so this and every later
# attempt asks the provider first, even when this one's look fails.
CLAIM_EXPIRED = (
    """
WITH c AS (
    UPDATE notifications SET attempts = attempts + 1, claim = claim + 1,
           lease_until = now() + make_interval(secs => $2), updated_at = now(),
           look_after = COALESCE(look_after, now())
    WHERE notification_id = $1 AND status = 'sending' AND lease_until < COALESCE($3, now())
      AND (look_after IS NULL OR look_after <= COALESCE($3, now()))
    RETURNING *
)"""
    + _WITH_ALERT
)

# Candidates only, per channel (the partial indexes of 0008): each is claimed when a slot of
# its channel is free, so no lease runs out while its message waits its turn, and a backlog on
# one channel never hides a due message of another. Those already queued here are left out.
DUE = """
SELECT notification_id FROM notifications
WHERE status = 'pending' AND channel = $1 AND next_attempt_at <= $2
  AND NOT (notification_id = ANY($4::uuid[]))
ORDER BY next_attempt_at LIMIT $3
"""
EXPIRED = """
SELECT notification_id FROM notifications
WHERE status = 'sending' AND channel = $1 AND lease_until < $2
  AND (look_after IS NULL OR look_after <= $2)
  AND NOT (notification_id = ANY($4::uuid[]))
ORDER BY lease_until LIMIT $3
"""
STALE_SENT = """
UPDATE notifications SET updated_at = now() WHERE notification_id IN (
    SELECT notification_id FROM notifications WHERE status = 'sent'
      AND updated_at < $1 AND channel = ANY($2)
    ORDER BY updated_at LIMIT 200 FOR UPDATE SKIP LOCKED)
RETURNING notification_id, channel, provider_id
"""

# Just before the provider is called: the claim must still be current and its lease unexpired
# by the database's clock; the lease is stretched to outlast the send, so nobody takes over a
# request still on its way.
FENCE = """
UPDATE notifications SET lease_until = GREATEST(lease_until, now() + make_interval(secs => $3)),
       updated_at = now()
WHERE notification_id = $1 AND claim = $2 AND status = 'sending' AND lease_until > now()
RETURNING lease_until
"""

# A delivery callback may have overtaken the send: never move a status backwards.
MARK_SENT = audited_change(
    """UPDATE notifications SET provider_id = $2, lease_until = NULL,
        status = CASE WHEN status = 'sending' THEN $3 ELSE status END,
        sent_at = COALESCE(sent_at, now()),
        delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
        updated_at = now()
    WHERE notification_id = $1 AND claim = $5""",
    "system:dispatcher",
    "'notification.sent'",
    "$4::jsonb",
)


def _mark_ended(status: str) -> str:
    """The fenced mark ending a message's tries as `status`, audited `notification.<status>`."""
    return audited_change(
        f"""UPDATE notifications SET status = '{status}', lease_until = NULL, last_error = $2,
            updated_at = now()
        WHERE notification_id = $1 AND claim = $4 AND status = 'sending'""",
        "system:dispatcher",
        f"'notification.{status}'",
        "$3::jsonb",
    )


MARK_FAILED = _mark_ended("failed")
MARK_CANCELLED = _mark_ended("cancelled")
# $4: seconds before the provider may be asked about this attempt (an ambiguous outcome), else
# NULL to keep what an earlier attempt set; no try comes before that either.
MARK_RETRY = """
UPDATE notifications SET status = 'pending', lease_until = NULL, last_error = $2,
       look_after = COALESCE(now() + make_interval(secs => $4), look_after),
       next_attempt_at = GREATEST(now() + make_interval(secs => $3),
                                  COALESCE(now() + make_interval(secs => $4), look_after, now())),
       updated_at = now()
WHERE notification_id = $1 AND claim = $5 AND status = 'sending'
RETURNING next_attempt_at, look_after
"""
