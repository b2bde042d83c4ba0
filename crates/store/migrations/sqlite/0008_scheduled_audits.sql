-- Scheduled audits (CreateScheduledAudit); mirrored column for column by
-- migrations/postgres/0008_scheduled_audits.sql.
--
-- The engine computes each schedule's next occurrence; the scheduler finds due
-- schedules of every account by it and starts a run with a compare-and-set on it.
CREATE TABLE scheduled_audits (
    account_id    TEXT   NOT NULL,
    region        TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    arn           TEXT   NOT NULL,
    frequency     TEXT   NOT NULL,
    day_of_week   TEXT,
    day_of_month  TEXT,
    -- The target check names, JSON owned by the engine.
    checks_json   TEXT   NOT NULL,
    -- When the timing rules were last set: earlier occurrences never run, and
    -- BIWEEKLY counts its fortnights from here.
    anchor_ms     BIGINT NOT NULL,
    next_run_ms   BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name)
);

-- The scheduler's tick asks every second which schedules of any account are due.
CREATE INDEX scheduled_audits_due
    ON scheduled_audits (next_run_ms, account_id, region, name);
