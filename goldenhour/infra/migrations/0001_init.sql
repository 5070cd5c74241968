-- Golden Hour: the system of record.
-- Kafka carries events; every fact the system acts on is here first.

CREATE TABLE events (
    event_id     uuid PRIMARY KEY,
    type         text        NOT NULL,
    child_id     text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    org_code     text        NOT NULL,
    user_id      text        NOT NULL,
    data         jsonb       NOT NULL
);
CREATE INDEX events_child_idx ON events (child_id, received_at);

-- Transactional outbox: written in the same transaction as the event, relayed to Kafka.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    topic        text        NOT NULL,
    key          text        NOT NULL,
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- Consumers record each event_id they applied, in the same transaction as its effects.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE children (
    child_id          text PRIMARY KEY,
    local_authority   text        NOT NULL,
    risk_level        text        NOT NULL,
    exploitation_types text[]     NOT NULL DEFAULT '{}',
    description       jsonb       NOT NULL DEFAULT '{}',
    identified_at     timestamptz NOT NULL,
    return_interview_due_at timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE placements (
    placement_id      text PRIMARY KEY,
    child_id          text        NOT NULL REFERENCES children (child_id),
    care_home         text        NOT NULL,
    risk              jsonb       NOT NULL DEFAULT '{}',
    checkin_interval_minutes integer,
    curfew            text,
    started_at        timestamptz NOT NULL,
    ended_at          timestamptz,
    end_reason        text
);
CREATE UNIQUE INDEX placements_one_current_idx ON placements (child_id) WHERE ended_at IS NULL;

CREATE TABLE alerts (
    alert_id          uuid PRIMARY KEY,
    child_id          text        NOT NULL,
    kind              text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    risk_level        text        NOT NULL,
    policy            text        NOT NULL,
    anchor_at         timestamptz NOT NULL,   -- last_seen_at: the clock's zero
    last_seen_location text,
    circumstances     text,
    clothing          text,
    placement_id      text,
    care_home         text,
    local_authority   text        NOT NULL,
    ack_code          text        NOT NULL,
    opened_at         timestamptz NOT NULL,
    first_fired_at    timestamptz,
    renotify_done     integer     NOT NULL DEFAULT 0,
    next_due_at       timestamptz,            -- the timer: NULL when nothing is pending
    acknowledged_at   timestamptz,
    resolved_at       timestamptz,
    resolution        text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- One live alert per child and kind; a second report updates it.
CREATE UNIQUE INDEX alerts_one_live_idx ON alerts (child_id, kind) WHERE status <> 'resolved';
-- Due work is claimed by this index, never by scanning.
CREATE INDEX alerts_due_idx ON alerts (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE UNIQUE INDEX alerts_live_code_idx ON alerts (ack_code) WHERE status <> 'resolved';
CREATE INDEX alerts_child_idx ON alerts (child_id, opened_at DESC);

CREATE TABLE alert_steps (
    alert_id      uuid        NOT NULL REFERENCES alerts (alert_id),
    step_key      text        NOT NULL,      -- s0, s1 … for policy steps; r1 … for re-notifications
    due_at        timestamptz NOT NULL,
    status        text        NOT NULL CHECK (status IN ('fired', 'skipped', 'cancelled')),
    decided_at    timestamptz NOT NULL,
    detail        text,
    PRIMARY KEY (alert_id, step_key)
);

CREATE TABLE notifications (
    notification_id uuid PRIMARY KEY,
    alert_id        uuid        NOT NULL REFERENCES alerts (alert_id),
    child_id        text        NOT NULL,
    step_key        text        NOT NULL,
    contact_id      text        NOT NULL,
    org_code        text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('sms', 'email')),
    address         text        NOT NULL,
    subject         text        NOT NULL DEFAULT '',
    body            text        NOT NULL,
    status          text        NOT NULL CHECK (status IN
                        ('pending', 'sending', 'sent', 'delivered', 'failed', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    provider_id     text,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    delivered_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The idempotency key: one message per (alert, step, contact, channel), whatever restarts.
    UNIQUE (alert_id, step_key, contact_id, channel)
);
CREATE INDEX notifications_pending_idx ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_inflight_idx ON notifications (lease_until) WHERE status = 'sending';
CREATE INDEX notifications_sent_idx ON notifications (sent_at) WHERE status = 'sent';
CREATE INDEX notifications_provider_idx ON notifications (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX notifications_alert_idx ON notifications (alert_id, created_at);

CREATE TABLE acknowledgements (
    id            bigserial PRIMARY KEY,
    alert_id      uuid        NOT NULL REFERENCES alerts (alert_id),
    org_code      text        NOT NULL,
    user_id       text,
    contact_id    text,
    via           text        NOT NULL,
    acknowledged_at timestamptz NOT NULL
);
CREATE INDEX acknowledgements_alert_idx ON acknowledgements (alert_id);

-- Append-only: no UPDATE or DELETE is ever issued against it.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,      -- "user:<id>", "contact:<id>", "system:<component>"
    action      text        NOT NULL,
    child_id    text,
    alert_id    uuid,
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_alert_idx ON audit_log (alert_id) WHERE alert_id IS NOT NULL;

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Workers announce here when they hold their Kafka partitions and are taking work.
CREATE TABLE worker_readiness (
    part      text        NOT NULL,
    pid       integer     NOT NULL,
    host      text        NOT NULL,
    ready_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (part, host, pid)
);
