-- A watcher's clock whose firing keeps failing is counted like a failing alert, so its retries
-- back off and the operations contacts hear of it.
ALTER TABLE watch_timers ADD COLUMN clock_failures integer NOT NULL DEFAULT 0;
ALTER TABLE watch_timers ADD COLUMN last_clock_error text;
