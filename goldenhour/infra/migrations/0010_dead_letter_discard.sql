-- A dead letter that can never be applied (a malformed record, a test's leftover) is discarded by
-- an operator with a reason, so the open count can come back to zero; it is kept, never deleted.
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_status_check;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_status_check
    CHECK (status IN ('dead', 'replayed', 'discarded'));
ALTER TABLE dead_letters ADD COLUMN discarded_at timestamptz;
ALTER TABLE dead_letters ADD COLUMN discarded_by text;
ALTER TABLE dead_letters ADD COLUMN discard_reason text;
