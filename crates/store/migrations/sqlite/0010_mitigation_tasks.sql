-- Audit mitigation actions tasks: the tasks, the finding ids their targets name, their
-- per-check statistics and the executions they ran; mirrored column for column by
-- migrations/postgres/0010_mitigation_tasks.sql.
--
-- The target, the check-to-actions mapping and the snapshot of the action definitions
-- are JSON owned by the engine (body_json); only what is filtered, ordered or counted
-- on is a column.

CREATE TABLE mitigation_tasks (
    account_id           TEXT   NOT NULL,
    region               TEXT   NOT NULL,
    task_id              TEXT   NOT NULL,
    client_request_token TEXT   NOT NULL,
    status               TEXT   NOT NULL,
    started_at_ms        BIGINT NOT NULL,
    finished_at_ms       BIGINT,
    -- target.auditTaskId, for the auditTaskId and findingId filters of the listing.
    audit_task_id        TEXT,
    body_json            TEXT   NOT NULL,
    -- Chunks (work items) not finished yet: the stage that finishes the last one ends
    -- the task, in the same transaction.
    chunks_remaining     BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, task_id)
);

-- ListAuditMitigationActionsTasks, newest first, within a time range.
CREATE INDEX mitigation_tasks_by_start
    ON mitigation_tasks (account_id, region, started_at_ms, task_id);
-- The same listing with the auditTaskId filter.
CREATE INDEX mitigation_tasks_by_audit
    ON mitigation_tasks (account_id, region, audit_task_id, started_at_ms, task_id)
    WHERE audit_task_id IS NOT NULL;
-- The in-progress limit counts a scope's running tasks on every start. Partial, so
-- queries spell `status = 'IN_PROGRESS'` literally for the planner to pick it.
CREATE INDEX mitigation_tasks_in_progress
    ON mitigation_tasks (account_id, region)
    WHERE status = 'IN_PROGRESS';
-- The retention purge finds old tasks across all scopes.
CREATE INDEX mitigation_tasks_for_purge
    ON mitigation_tasks (started_at_ms);

-- target.findingIds, in the order given (position). The primary key answers the
-- listing's findingId filter, a lookup per task of the time range (a scope holds few
-- tasks: at most 10 running, the rest purged after 90 days).
CREATE TABLE mitigation_task_findings (
    account_id TEXT    NOT NULL,
    region     TEXT    NOT NULL,
    task_id    TEXT    NOT NULL,
    finding_id TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (account_id, region, task_id, finding_id)
);

-- taskStatistics: one row per check, counters added to once per stage.
CREATE TABLE mitigation_task_stats (
    account_id TEXT   NOT NULL,
    region     TEXT   NOT NULL,
    task_id    TEXT   NOT NULL,
    check_name TEXT   NOT NULL,
    total      BIGINT NOT NULL,
    succeeded  BIGINT NOT NULL,
    failed     BIGINT NOT NULL,
    skipped    BIGINT NOT NULL,
    canceled   BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, task_id, check_name)
);

-- One row per (finding, action) run: kept small (no names or ids of the action, which
-- the task's body has), since a big task writes a million. WITHOUT ROWID: the rows live
-- in the primary key's tree, so each insert writes one tree instead of a table and an
-- index.
CREATE TABLE mitigation_executions (
    account_id     TEXT    NOT NULL,
    region         TEXT    NOT NULL,
    task_id        TEXT    NOT NULL,
    finding_id     TEXT    NOT NULL,
    action_index   INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    started_at_ms  BIGINT  NOT NULL,
    finished_at_ms BIGINT,
    error_code     TEXT,
    message        TEXT,
    PRIMARY KEY (account_id, region, task_id, finding_id, action_index)
) WITHOUT ROWID;
