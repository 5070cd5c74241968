-- A child's missing and away episodes, for the statutory return and the golden-hour figures.
-- Derived, never edited: intake rebuilds a child's rows from its events in the transaction
-- that records each event, so a late or repeated event gives the same rows.
-- `goldenhour report rebuild-episodes` rebuilds every child's (once after upgrading).
CREATE TABLE episodes (
    child_id        text        NOT NULL,
    started_at      timestamptz NOT NULL,   -- the first report's last_seen_at
    ended_at        timestamptz,            -- child.located's located_at; NULL while open
    classification  text        NOT NULL CHECK (classification IN ('missing', 'away')),
    -- Who looked after the child when the episode started: its SSDA903 return carries it.
    local_authority text        NOT NULL,
    care_home       text,
    interview_at    timestamptz,            -- the return interview's completed_at
    reports         uuid[]      NOT NULL,
    located_by      uuid,
    -- From child.identified: the return's CHILD and DOB columns, never in a message.
    ssda903_id      text,
    date_of_birth   date,
    date_of_birth_estimated boolean NOT NULL DEFAULT false,
    PRIMARY KEY (child_id, started_at),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX episodes_authority_idx ON episodes (local_authority, started_at);
CREATE INDEX episodes_care_home_idx ON episodes (care_home, started_at);
