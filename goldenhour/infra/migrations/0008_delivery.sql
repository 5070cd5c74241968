-- Once and on time through provider outages: fenced leases, voice calls, failover, stable steps.

-- A voice call is a message like any other: one per (alert, step, contact), sent once.
ALTER TABLE notifications DROP CONSTRAINT notifications_channel_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_channel_check
    CHECK (channel IN ('sms', 'email', 'webhook', 'voice'));

-- The fencing token: every claim (first send, retry or take-over) increments it, and the send
-- and every mark present the value their claim returned, so a holder whose lease was taken over
-- can neither mark the row nor, once it sees the token moved, send.
ALTER TABLE notifications ADD COLUMN claim bigint NOT NULL DEFAULT 0;
-- The message this one fails over from (a call or email after an SMS that was not accepted).
ALTER TABLE notifications ADD COLUMN failover_of uuid REFERENCES notifications (notification_id);
-- When the last attempt's outcome was ambiguous (a timeout after the request was written): the
-- provider is not asked whether it has the message before this, lest it is still being created.
ALTER TABLE notifications ADD COLUMN look_after timestamptz;
-- When the dispatcher gave up on a message because its step no longer matters, or failed it for
-- good; and when a person was told that the contact could not be reached.
ALTER TABLE notifications ADD COLUMN unreachable_told_at timestamptz;
-- The failover loop reads only messages unanswered (or failed) and not yet reported.
CREATE INDEX notifications_unanswered_idx ON notifications (created_at)
    WHERE status IN ('pending', 'sending', 'failed') AND unreachable_told_at IS NULL
      AND alert_id IS NOT NULL;
-- Each channel sweeps its own due rows, so an email backlog never hides a due SMS.
CREATE INDEX notifications_pending_channel_idx ON notifications (channel, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX notifications_inflight_channel_idx ON notifications (channel, lease_until)
    WHERE status = 'sending';

-- The policy that decided each step: a stable step id is only meaningful with its policy.
ALTER TABLE alert_steps ADD COLUMN policy text;

-- The last-seen time as the reporter gave it, when it was ahead of the time the report was
-- accepted (a phone with a fast clock): the clock is anchored at the earlier of the two.
ALTER TABLE alerts ADD COLUMN reported_last_seen_at timestamptz;
-- When the alert's current policy came into force (a risk change): a step of it due before then
-- is a catch-up, and tells no contact the alert already told on that channel.
ALTER TABLE alerts ADD COLUMN policy_since timestamptz;
-- The policies (by digest) that computed the alert's next wake: a deploy that inserts a step
-- wakes the alerts planned under other policies at once, rather than at their next wake.
ALTER TABLE alerts ADD COLUMN planned_with text;
