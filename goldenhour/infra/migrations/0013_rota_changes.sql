-- What a rota's managers changed about who is on call: overrides that add, remove or replace a
-- person over [start_at, end_at), swaps (a replacement over one shift, proposed and then taken),
-- and temporary schedules that replace the pattern for their range. A change is never deleted,
-- only withdrawn, so the audit trail of who was on call when stays whole.
CREATE TABLE rota_changes (
    change_id   uuid        PRIMARY KEY,
    rota_id     text        NOT NULL,
    org_code    text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('override', 'swap', 'temporary')),
    action      text        CHECK (action IN ('add', 'remove', 'replace')),
    member      text,
    by_member   text,
    -- A temporary schedule's own shifts: [{"start": …, "end": …, "member": …}].
    shifts      jsonb,
    start_at    timestamptz NOT NULL,
    end_at      timestamptz NOT NULL,
    status      text        NOT NULL CHECK (status IN ('proposed', 'active', 'withdrawn')),
    reason      text,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    taken_by    text,
    taken_at    timestamptz,
    withdrawn_by text,
    withdrawn_at timestamptz,
    CHECK (end_at > start_at),
    CHECK ((kind = 'temporary') = (shifts IS NOT NULL)),
    CHECK (kind = 'temporary' OR (action IS NOT NULL AND member IS NOT NULL)),
    -- A swap proposed names whose shift it is; its taker comes when it is taken (and a
    -- proposal withdrawn never had one).
    CHECK (kind = 'temporary' OR (action = 'replace') = (by_member IS NOT NULL)
           OR (kind = 'swap' AND status <> 'active' AND by_member IS NULL))
);
-- Resolution reads the changes active at an instant, the rota page those of a range.
CREATE INDEX rota_changes_live_idx ON rota_changes (end_at, start_at) WHERE status = 'active';
CREATE INDEX rota_changes_rota_idx ON rota_changes (rota_id, end_at);

-- The person of a rota briefed at a handover: once per (rota, instant, contact), whichever
-- worker saw the handover first.
CREATE TABLE rota_handovers (
    rota_id     text        NOT NULL,
    at          timestamptz NOT NULL,
    contact_id  text        NOT NULL,
    alerts      integer     NOT NULL,
    briefed_at  timestamptz NOT NULL,
    PRIMARY KEY (rota_id, at, contact_id)
);

-- Someone who holds an alert without a message of its own: the incoming person of a rota
-- briefed at a handover. Reminders and the stand-down reach them as they reach those told, and
-- their reply with the alert's code acknowledges it.
CREATE TABLE alert_holders (
    alert_id    uuid        NOT NULL REFERENCES alerts (alert_id),
    contact_id  text        NOT NULL,
    org_code    text        NOT NULL,
    channel     text        NOT NULL,
    since       timestamptz NOT NULL,
    why         text        NOT NULL,
    PRIMARY KEY (alert_id, contact_id, channel)
);
CREATE INDEX alert_holders_contact_idx ON alert_holders (contact_id);
