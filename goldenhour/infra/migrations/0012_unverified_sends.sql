-- When a message was first handed to its provider (the first fence), so that a look for an
-- earlier attempt's copy searches only from then; since when the looks have kept failing; and
-- how many times it was sent again although the provider could not say whether an earlier
-- attempt had reached it (each a possible second copy, which operators and the chaos checks
-- can tell apart from an unexplained one).
ALTER TABLE notifications ADD COLUMN tried_at timestamptz;
ALTER TABLE notifications ADD COLUMN look_failed_at timestamptz;
ALTER TABLE notifications ADD COLUMN unverified_sends integer NOT NULL DEFAULT 0;
