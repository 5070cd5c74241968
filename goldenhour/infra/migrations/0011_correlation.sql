-- The correlation id of the request that caused each row (see infra/tracing.py): an outbox row
-- carries it to Kafka, an alert keeps its opening report's for the steps it fires later, and a
-- message row for the dispatcher's log lines and the provider call. Nullable: rows before it,
-- and rows no request caused, have none.
ALTER TABLE outbox ADD COLUMN correlation_id text;
ALTER TABLE alerts ADD COLUMN correlation_id text;
ALTER TABLE notifications ADD COLUMN correlation_id text;
