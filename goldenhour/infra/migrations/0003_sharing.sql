-- Neighbouring authorities: subscriptions and the data-minimised shared alerts they receive.

CREATE TABLE subscriptions (
    subscription_id      uuid PRIMARY KEY,
    org_code             text        NOT NULL,
    created_by           text        NOT NULL,
    source_authorities   text[]      NOT NULL,
    min_risk             text        NOT NULL DEFAULT 'low'
                             CHECK (min_risk IN ('low', 'medium', 'high')),
    exploitation_types   text[]      NOT NULL DEFAULT '{}',   -- empty: every type
    contacts             text[]      NOT NULL DEFAULT '{}',
    channels             text[]      NOT NULL DEFAULT '{}',
    webhook_url          text,
    webhook_secret       text,       -- signs each delivery; shown to the subscriber once
    status               text        NOT NULL DEFAULT 'active'
                             CHECK (status IN ('active', 'disabled', 'deleted')),
    consecutive_failures integer     NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    disabled_at          timestamptz,
    deleted_at           timestamptz
);
CREATE INDEX subscriptions_org_idx ON subscriptions (org_code) WHERE status <> 'deleted';
CREATE INDEX subscriptions_source_idx ON subscriptions USING gin (source_authorities)
    WHERE status = 'active';

-- One shared alert per alert; its payload holds only the allow-listed fields.
CREATE TABLE shared_alerts (
    shared_id        uuid PRIMARY KEY,
    alert_id         uuid        NOT NULL UNIQUE REFERENCES alerts (alert_id),
    source_authority text        NOT NULL,
    msg_type         text        NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
    version          integer     NOT NULL DEFAULT 1,
    payload          jsonb       NOT NULL,
    published_at     timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX shared_alerts_source_idx ON shared_alerts (source_authority, updated_at DESC);

-- A delivery to a subscriber's webhook is a message like any other, with its own channel.
ALTER TABLE notifications DROP CONSTRAINT notifications_channel_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_channel_check
    CHECK (channel IN ('sms', 'email', 'webhook'));
ALTER TABLE notifications ADD COLUMN subscription_id uuid REFERENCES subscriptions (subscription_id);
