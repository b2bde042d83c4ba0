-- The by-task index of findings also carries each finding's suppression and resource
-- key, so a mitigation stage reads its chunk of findings from the index alone.
--
-- Why: a chunk is a thousand consecutive findings in listing order (finding id order),
-- but the rows were written in the order the audit judged the certificates, so reading
-- each row was a random page read: about 11 ms a chunk, a third of a million-finding
-- task's time. The index grows by the resource key (about 170 bytes for a device
-- certificate); the stage needs nothing else of the row unless it filters by reason code
-- or publishes the finding.

DROP INDEX audit_findings_by_task;
CREATE INDEX audit_findings_by_task
    ON audit_findings (account_id, region, task_id, finding_time_ms, finding_id, check_name,
                       is_suppressed, resource_key);
