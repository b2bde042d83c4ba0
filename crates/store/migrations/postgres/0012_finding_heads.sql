-- SQLite's 0012 adds each finding's suppression and resource key to the by-task index,
-- so a mitigation stage reads its chunk of findings from the index alone; the same here,
-- as included columns, for an index-only scan once the visibility map is set.
DROP INDEX audit_findings_by_task;
CREATE INDEX audit_findings_by_task
    ON audit_findings (account_id, region, task_id, finding_time_ms, finding_id, check_name)
    INCLUDE (is_suppressed, resource_key);
