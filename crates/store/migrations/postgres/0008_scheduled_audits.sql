-- Scheduled audits; mirrors migrations/sqlite/0008_scheduled_audits.sql column for
-- column (see there for the why of each column and index). Text compares in byte
-- order (COLLATE "C") as on SQLite, so ListScheduledAudits pages the same way.
CREATE TABLE scheduled_audits (
    account_id    TEXT COLLATE "C" NOT NULL,
    region        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    arn           TEXT COLLATE "C" NOT NULL,
    frequency     TEXT COLLATE "C" NOT NULL,
    day_of_week   TEXT COLLATE "C",
    day_of_month  TEXT COLLATE "C",
    checks_json   TEXT COLLATE "C" NOT NULL,
    anchor_ms     BIGINT NOT NULL,
    next_run_ms   BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name)
);

CREATE INDEX scheduled_audits_due
    ON scheduled_audits (next_run_ms, account_id, region, name);
