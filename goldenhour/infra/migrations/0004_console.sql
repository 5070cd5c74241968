-- The console: sign-in, sessions, single-use acknowledgement links, "escalate now", live board.

-- Console passwords, set by `goldenhour users set-password`; argon2id hashes only.
CREATE TABLE user_passwords (
    user_id     text PRIMARY KEY,
    hash        text        NOT NULL,
    set_at      timestamptz NOT NULL DEFAULT now()
);

-- A signed-in browser. The cookie holds a random token; only its SHA-256 is kept here.
CREATE TABLE console_sessions (
    token_sha256 text PRIMARY KEY,
    user_id      text        NOT NULL,
    org_code     text        NOT NULL,
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry_idx ON console_sessions (expires_at);

-- Failed sign-ins, counted per user name and per address over a sliding window. Kept in the
-- database so every API replica sees the same count.
CREATE TABLE login_failures (
    id      bigserial PRIMARY KEY,
    key     text        NOT NULL,
    at      timestamptz NOT NULL
);
CREATE INDEX login_failures_key_idx ON login_failures (key, at);

-- An acknowledgement link is single-use: its notification is written here when it is used.
CREATE TABLE ack_link_uses (
    notification_id uuid PRIMARY KEY REFERENCES notifications (notification_id),
    used_at         timestamptz NOT NULL
);

-- "Escalate now" from the console: the clock fires the next pending step at once.
ALTER TABLE alerts ADD COLUMN escalate_requested_at timestamptz;
ALTER TABLE alerts ADD COLUMN escalate_requested_by text;

-- The live board: any change to an alert, its messages or its acknowledgements is announced
-- with the alert's id; the API's listeners pass it on to the browsers watching.
CREATE FUNCTION board_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('goldenhour_board', NEW.alert_id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER alerts_board AFTER INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION board_changed();
CREATE TRIGGER notifications_board AFTER INSERT OR UPDATE OF status ON notifications
    FOR EACH ROW EXECUTE FUNCTION board_changed();
CREATE TRIGGER acknowledgements_board AFTER INSERT ON acknowledgements
    FOR EACH ROW EXECUTE FUNCTION board_changed();
