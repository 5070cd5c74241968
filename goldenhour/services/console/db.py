"""The console's statements over the tables it owns (sessions, sign-in failures, passwords,
used acknowledgement links) and its care home reads, each named for what it does.

The board's and the case page's reads of the alerts are the API's, in `goldenhour.services.db`."""

from __future__ import annotations

# --- passwords --------------------------------------------------------------------------------

SET_PASSWORD = """
INSERT INTO user_passwords (user_id, hash) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET hash = EXCLUDED.hash, set_at = now()
"""

PASSWORD_HASH = "SELECT hash FROM user_passwords WHERE user_id = $1"

# --- sign-in failures -------------------------------------------------------------------------

LOCK_LOGIN_KEY = "SELECT pg_advisory_xact_lock(hashtext($1))"

LOGIN_FAILURES_SINCE = """
SELECT key, count(*) AS n FROM login_failures WHERE key = ANY($1) AND at > $2 GROUP BY key
"""

RECORD_LOGIN_FAILURE = "INSERT INTO login_failures (key, at) VALUES ($1, $2) RETURNING id"

PRUNE_LOGIN_FAILURES = "DELETE FROM login_failures WHERE at < $1"

FORGET_LOGIN_FAILURES = "DELETE FROM login_failures WHERE id = ANY($1)"

# $1 is "user:<id>": the user name from every address, and from each one ("user:<id>@<address>").
FORGET_USER_LOGIN_FAILURES = (
    "DELETE FROM login_failures WHERE key = $1 OR starts_with(key, $1 || '@')"
)

# --- sessions ---------------------------------------------------------------------------------

START_SESSION = """
INSERT INTO console_sessions (token_sha256, user_id, org_code, csrf_token, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""

PRUNE_SESSIONS = "DELETE FROM console_sessions WHERE expires_at < $1"

END_SESSION = "DELETE FROM console_sessions WHERE token_sha256 = $1"

END_USER_SESSIONS = "DELETE FROM console_sessions WHERE user_id = $1"

LIVE_SESSION = """
SELECT user_id, csrf_token, expires_at FROM console_sessions
WHERE token_sha256 = $1 AND expires_at > $2
"""

# --- care home forms --------------------------------------------------------------------------

# Each child placed at the home now, its last check-in, and its live missing alert if any.
CHILDREN_AT_HOME = """
SELECT p.child_id, p.placement_id, c.risk_level,
       (SELECT max(e.received_at) FROM events e WHERE e.child_id = p.child_id
          AND e.type = 'checkin.recorded') AS last_checkin_at,
       a.alert_id, a.anchor_at
FROM placements p JOIN children c USING (child_id)
LEFT JOIN alerts a ON a.child_id = p.child_id AND a.kind = 'missing'
                  AND a.status <> 'resolved'
WHERE p.care_home = $1 AND p.ended_at IS NULL
ORDER BY p.child_id
"""

PLACEMENT_AT_HOME = """
SELECT placement_id FROM placements WHERE child_id = $1 AND care_home = $2 AND ended_at IS NULL
"""

# --- the email acknowledgement link -----------------------------------------------------------

LINKED_MESSAGE = """
SELECT n.notification_id, n.contact_id, n.org_code, a.alert_id, a.child_id, a.kind, a.status,
       a.risk_level, a.anchor_at, a.last_seen_location, a.resolution,
       u.used_at
FROM notifications n JOIN alerts a USING (alert_id)
LEFT JOIN ack_link_uses u ON u.notification_id = n.notification_id
WHERE n.notification_id = $1
"""

# Nothing when the link was used already: a link acknowledges once.
USE_ACK_LINK = """
INSERT INTO ack_link_uses (notification_id, used_at) VALUES ($1, $2)
ON CONFLICT DO NOTHING RETURNING true
"""
