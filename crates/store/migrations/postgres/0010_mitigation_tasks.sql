-- Audit mitigation actions tasks; mirrors migrations/sqlite/0010_mitigation_tasks.sql
-- column for column (see there for the why of each table and index). Text compares in
-- byte order (COLLATE "C") as on SQLite.

CREATE TABLE mitigation_tasks (
    account_id           TEXT COLLATE "C" NOT NULL,
    region               TEXT COLLATE "C" NOT NULL,
    task_id              TEXT COLLATE "C" NOT NULL,
    client_request_token TEXT COLLATE "C" NOT NULL,
    status               TEXT COLLATE "C" NOT NULL,
    started_at_ms        BIGINT NOT NULL,
    finished_at_ms       BIGINT,
    audit_task_id        TEXT COLLATE "C",
    body_json            TEXT COLLATE "C" NOT NULL,
    chunks_remaining     BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, task_id)
);

CREATE INDEX mitigation_tasks_by_start
    ON mitigation_tasks (account_id, region, started_at_ms, task_id);
CREATE INDEX mitigation_tasks_by_audit
    ON mitigation_tasks (account_id, region, audit_task_id, started_at_ms, task_id)
    WHERE audit_task_id IS NOT NULL;
CREATE INDEX mitigation_tasks_in_progress
    ON mitigation_tasks (account_id, region)
    WHERE status = 'IN_PROGRESS';
CREATE INDEX mitigation_tasks_for_purge
    ON mitigation_tasks (started_at_ms);

CREATE TABLE mitigation_task_findings (
    account_id TEXT COLLATE "C" NOT NULL,
    region     TEXT COLLATE "C" NOT NULL,
    task_id    TEXT COLLATE "C" NOT NULL,
    finding_id TEXT COLLATE "C" NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (account_id, region, task_id, finding_id)
);

CREATE TABLE mitigation_task_stats (
    account_id TEXT COLLATE "C" NOT NULL,
    region     TEXT COLLATE "C" NOT NULL,
    task_id    TEXT COLLATE "C" NOT NULL,
    check_name TEXT COLLATE "C" NOT NULL,
    total      BIGINT NOT NULL,
    succeeded  BIGINT NOT NULL,
    failed     BIGINT NOT NULL,
    skipped    BIGINT NOT NULL,
    canceled   BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, task_id, check_name)
);

CREATE TABLE mitigation_executions (
    account_id     TEXT COLLATE "C" NOT NULL,
    region         TEXT COLLATE "C" NOT NULL,
    task_id        TEXT COLLATE "C" NOT NULL,
    finding_id     TEXT COLLATE "C" NOT NULL,
    action_index   INTEGER NOT NULL,
    status         TEXT COLLATE "C" NOT NULL,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT,
    error_code     TEXT COLLATE "C",
    message        TEXT COLLATE "C",
    PRIMARY KEY (account_id, region, task_id, finding_id, action_index)
);
