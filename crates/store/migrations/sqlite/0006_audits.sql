-- Device Defender audit state: each account's audit configuration, audit tasks and the
-- findings they produced; mirrored column for column by migrations/postgres/0006_audits.sql.
--
-- The nested parts (per-check configuration, a task's per-check progress, the body of
-- a finding) are JSON owned by the engine; only what is filtered, ordered or limited on
-- is a column.

-- One configuration per account and region (UpdateAccountAuditConfiguration).
CREATE TABLE audit_configurations (
    account_id         TEXT   NOT NULL,
    region             TEXT   NOT NULL,
    role_arn           TEXT,
    checks_json        TEXT   NOT NULL,
    notifications_json TEXT   NOT NULL,
    updated_at_ms      BIGINT NOT NULL,
    PRIMARY KEY (account_id, region)
);

CREATE TABLE audit_tasks (
    account_id           TEXT   NOT NULL,
    region               TEXT   NOT NULL,
    task_id              TEXT   NOT NULL,
    task_type            TEXT   NOT NULL,
    status               TEXT   NOT NULL,
    scheduled_audit_name TEXT,
    started_at_ms        BIGINT NOT NULL,
    finished_at_ms       BIGINT,
    checks_json          TEXT   NOT NULL,
    -- Every update is conditional on the version it read, so a cancel and the runner's
    -- progress never overwrite each other.
    version              BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, task_id)
);

-- ListAuditTasks, newest first, within a time range.
CREATE INDEX audit_tasks_by_start
    ON audit_tasks (account_id, region, started_at_ms, task_id);
-- The in-progress limit counts a scope's running tasks of one type on every create.
-- Partial: only the few running tasks are in it, whatever the history holds. Queries
-- must spell `status = 'IN_PROGRESS'` literally for the planner to pick it.
CREATE INDEX audit_tasks_in_progress
    ON audit_tasks (account_id, region, task_type)
    WHERE status = 'IN_PROGRESS';
-- The retention purge finds old tasks across all scopes.
CREATE INDEX audit_tasks_for_purge
    ON audit_tasks (started_at_ms);

-- No foreign key to audit_tasks: findings are written in bulk while their task runs,
-- and the purge removes a task's findings before the task itself, so a key would only
-- add a lookup per inserted row. task_start_ms is the task's start, copied so finding
-- filters need no join.
CREATE TABLE audit_findings (
    account_id      TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    finding_id      TEXT    NOT NULL,
    task_id         TEXT    NOT NULL,
    check_name      TEXT    NOT NULL,
    task_start_ms   BIGINT  NOT NULL,
    finding_time_ms BIGINT  NOT NULL,
    resource_key    TEXT    NOT NULL,
    is_suppressed   BOOLEAN NOT NULL,
    body_json       TEXT    NOT NULL,
    PRIMARY KEY (account_id, region, finding_id)
);

-- ListAuditFindings of one task (and the purge, task by task), in finding order.
CREATE INDEX audit_findings_by_task
    ON audit_findings (account_id, region, task_id, finding_time_ms, finding_id);
-- ListAuditFindings over a time range.
CREATE INDEX audit_findings_by_time
    ON audit_findings (account_id, region, finding_time_ms, finding_id);
