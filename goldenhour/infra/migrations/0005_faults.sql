-- Nothing lost under faults: where each outbox row landed in Kafka, dead letters, leaders'
-- heartbeats, failing alerts, and messages to the operations contacts.

-- The relay records where the broker put each row, so the reconciler can tell a row that is
-- still waiting in the log from one the broker lost (a new cluster, a truncated partition).
ALTER TABLE outbox ADD COLUMN event_id uuid;
ALTER TABLE outbox ADD COLUMN kafka_cluster text;
ALTER TABLE outbox ADD COLUMN kafka_partition integer;
ALTER TABLE outbox ADD COLUMN kafka_offset bigint;
ALTER TABLE outbox ADD COLUMN publish_count integer NOT NULL DEFAULT 0;
UPDATE outbox o SET event_id = (convert_from(o.payload, 'UTF8')::jsonb #>> '{event,event_id}')::uuid
WHERE o.event_id IS NULL;
CREATE INDEX outbox_event_idx ON outbox (event_id);

-- The reconciler's cursor: every outbox row below it is applied or dead-lettered.
CREATE TABLE reconcile_cursor (
    name      text PRIMARY KEY,
    outbox_id bigint      NOT NULL,
    moved_at  timestamptz NOT NULL DEFAULT now()
);

-- A record a consumer could never apply: it does not parse, has an unknown schema_version, fails
-- validation, or its handler raises on it every time. Kept with its raw bytes until replayed.
CREATE TABLE dead_letters (
    id             bigserial PRIMARY KEY,
    consumer       text        NOT NULL,
    topic          text        NOT NULL,
    kafka_partition integer,
    kafka_offset   bigint,
    key            bytea,
    raw            bytea       NOT NULL,
    event_id       uuid,
    child_id       text,
    reason         text        NOT NULL CHECK (reason IN ('parse', 'schema', 'validation', 'handler')),
    error          text        NOT NULL,
    status         text        NOT NULL DEFAULT 'dead' CHECK (status IN ('dead', 'replayed')),
    failed_at      timestamptz NOT NULL DEFAULT now(),
    replayed_at    timestamptz,
    replayed_by    text
);
-- One open dead letter per event and consumer: a redelivered poison event is not counted twice.
CREATE UNIQUE INDEX dead_letters_one_open_idx ON dead_letters (consumer, event_id)
    WHERE status = 'dead' AND event_id IS NOT NULL;
CREATE INDEX dead_letters_open_idx ON dead_letters (failed_at) WHERE status = 'dead';
CREATE INDEX dead_letters_event_idx ON dead_letters (event_id) WHERE event_id IS NOT NULL;

-- Leaders (the outbox relay, the reconciler) beat here by the database's clock, so a leader that
-- hangs is seen by every replica, not only one that dies.
CREATE TABLE leader_heartbeats (
    role     text PRIMARY KEY,
    holder   text        NOT NULL,
    beat_at  timestamptz NOT NULL
);

-- Workers beat while they hold their partitions; a stale beat is a worker that stopped.
ALTER TABLE worker_readiness ADD COLUMN beat_at timestamptz NOT NULL DEFAULT now();

-- An alert whose processing keeps failing: counted, retried with backoff, shown to operators.
ALTER TABLE alerts ADD COLUMN clock_failures integer NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN last_clock_error text;

-- Messages to the operations contacts (a dead letter, an alert that keeps failing) belong to no
-- alert or child; they are still sent once, by the dispatcher, like every other message.
ALTER TABLE notifications ALTER COLUMN alert_id DROP NOT NULL;
ALTER TABLE notifications ALTER COLUMN child_id DROP NOT NULL;
CREATE UNIQUE INDEX notifications_operations_idx ON notifications (step_key, contact_id, channel)
    WHERE alert_id IS NULL;

CREATE OR REPLACE FUNCTION board_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.alert_id IS NOT NULL THEN
        PERFORM pg_notify('goldenhour_board', NEW.alert_id::text);
    END IF;
    RETURN NULL;
END $$;
