-- Acknowledgement codes sent by SMS: every reply is recorded here before its code is checked,
-- so concurrent guesses cannot race past the limit, and every API replica counts the same.
-- A row with no alert counts against the phone number; a row with an alert counts against
-- that alert (one per alert the number was told of). A right code deletes its attempt's rows.
CREATE TABLE ack_attempts (
    id         bigserial   PRIMARY KEY,
    attempt    uuid        NOT NULL,
    phone      text        NOT NULL,
    alert_id   uuid,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ack_attempts_phone_idx ON ack_attempts (phone, at) WHERE alert_id IS NULL;
CREATE INDEX ack_attempts_alert_idx ON ack_attempts (alert_id, at) WHERE alert_id IS NOT NULL;
CREATE INDEX ack_attempts_attempt_idx ON ack_attempts (attempt);
CREATE INDEX ack_attempts_at_idx ON ack_attempts (at);

-- Twilio callbacks already acted on, by a digest of their URL and signed form: a replay (or
-- Twilio's own retry of one that succeeded) has no second effect. Kept for a day.
CREATE TABLE twilio_callbacks (
    digest      bytea       PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX twilio_callbacks_received_idx ON twilio_callbacks (received_at);
