-- Placement-risk watchers: clocks that raise an alert when they run out.

-- One pending clock per child and kind; due clocks are claimed by index, like alerts.
CREATE TABLE watch_timers (
    id          bigserial PRIMARY KEY,
    child_id    text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN
                    ('identification', 'checkin', 'curfew', 'return_interview')),
    due_at      timestamptz NOT NULL,
    status      text        NOT NULL CHECK (status IN ('pending', 'fired', 'cancelled')),
    data        jsonb       NOT NULL DEFAULT '{}',
    armed_at    timestamptz NOT NULL,
    decided_at  timestamptz,
    reason      text
);
CREATE UNIQUE INDEX watch_timers_one_pending_idx ON watch_timers (child_id, kind)
    WHERE status = 'pending';
CREATE INDEX watch_timers_due_idx ON watch_timers (due_at) WHERE status = 'pending';
CREATE INDEX watch_timers_child_idx ON watch_timers (child_id, armed_at DESC);

-- What an alert of a kind other than "missing" is about, for its messages and the timeline.
ALTER TABLE alerts ADD COLUMN facts jsonb NOT NULL DEFAULT '{}';

ALTER TABLE children ADD COLUMN last_checkin_at timestamptz;

CREATE TABLE risk_signals (
    event_id    uuid PRIMARY KEY,
    child_id    text        NOT NULL,
    kind        text        NOT NULL,
    detail      text,
    occurred_at timestamptz NOT NULL,
    risk_before text        NOT NULL,
    risk_after  text        NOT NULL
);
CREATE INDEX risk_signals_child_idx ON risk_signals (child_id, occurred_at DESC);
