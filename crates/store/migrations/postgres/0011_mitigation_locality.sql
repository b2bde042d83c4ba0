-- SQLite's 0011 adds the check to the by-task index of findings, so the per-check count
-- of StartAuditMitigationActionsTask reads the index alone; the same here, where an
-- index-only scan can do the same once the visibility map is set.
DROP INDEX audit_findings_by_task;
CREATE INDEX audit_findings_by_task
    ON audit_findings (account_id, region, task_id, finding_time_ms, finding_id, check_name);

-- SQLite's 0011 also moves a device certificate's status, generation id, version and update
-- time into a narrow table ordered by certificate id, so that a mitigation task's
-- stage of neighbouring certificates dirties a few dozen pages instead of one page per
-- certificate. PostgreSQL keeps 0005's shape: its certificates stay one table (the
-- SQLite throughput target is what the split serves).
COMMENT ON TABLE certificates IS
    'Device certificates; unlike SQLite (migration 0011), state and row stay together.';
