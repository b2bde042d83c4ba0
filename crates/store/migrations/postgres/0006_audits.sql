-- Device Defender audit state: each account's audit configuration, audit tasks and the
-- findings they produced; mirrors migrations/sqlite/0006_audits.sql column for column
-- (see there for the why of each table and index). Text compares in byte order
-- (COLLATE "C") as on SQLite.

CREATE TABLE audit_configurations (
    account_id         TEXT COLLATE "C" NOT NULL,
    region             TEXT COLLATE "C" NOT NULL,
    role_arn           TEXT COLLATE "C",
    checks_json        TEXT COLLATE "C" NOT NULL,
    notifications_json TEXT COLLATE "C" NOT NULL,
    updated_at_ms      BIGINT NOT NULL,
    PRIMARY KEY (account_id, region)
);

CREATE TABLE audit_tasks (
    account_id           TEXT COLLATE "C" NOT NULL,
    region               TEXT COLLATE "C" NOT NULL,
    task_id              TEXT COLLATE "C" NOT NULL,
    task_type            TEXT COLLATE "C" NOT NULL,
    status               TEXT COLLATE "C" NOT NULL,
    scheduled_audit_name TEXT COLLATE "C",
    started_at_ms        BIGINT NOT NULL,
    finished_at_ms       BIGINT,
    checks_json          TEXT COLLATE "C" NOT NULL,
    version              BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, task_id)
);

-- ListAuditTasks, newest first, within a time range.
CREATE INDEX audit_tasks_by_start
    ON audit_tasks (account_id, region, started_at_ms, task_id);
-- The in-progress limit; partial, so queries spell `status = 'IN_PROGRESS'` literally.
CREATE INDEX audit_tasks_in_progress
    ON audit_tasks (account_id, region, task_type)
    WHERE status = 'IN_PROGRESS';
-- The retention purge finds old tasks across all scopes.
CREATE INDEX audit_tasks_for_purge
    ON audit_tasks (started_at_ms);

-- No foreign key to audit_tasks: findings are written in bulk while their task runs,
-- and the purge removes a task's findings before the task itself, so a key would only
-- add a lookup (and a key-share lock on the task) per inserted row.
CREATE TABLE audit_findings (
    account_id      TEXT COLLATE "C" NOT NULL,
    region          TEXT COLLATE "C" NOT NULL,
    finding_id      TEXT COLLATE "C" NOT NULL,
    task_id         TEXT COLLATE "C" NOT NULL,
    check_name      TEXT COLLATE "C" NOT NULL,
    task_start_ms   BIGINT NOT NULL,
    finding_time_ms BIGINT NOT NULL,
    resource_key    TEXT COLLATE "C" NOT NULL,
    is_suppressed   BOOLEAN NOT NULL,
    body_json       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, region, finding_id)
);

-- ListAuditFindings of one task (and the purge, task by task), in finding order.
CREATE INDEX audit_findings_by_task
    ON audit_findings (account_id, region, task_id, finding_time_ms, finding_id);
-- ListAuditFindings over a time range.
CREATE INDEX audit_findings_by_time
    ON audit_findings (account_id, region, finding_time_ms, finding_id);
