//! Row mapping, one function per table. Each table's column list lives beside its
//! mapping function as a macro (so it can be spliced into SQL literals with `concat!`),
//! which keeps the positional reads below in step with every query's SELECT list.

use rusqlite::Row;

macro_rules! audit_configuration_columns {
    () => {
        "role_arn, checks_json, notifications_json, updated_at_ms"
    };
}

pub(super) fn audit_configuration(
    row: &Row<'_>,
) -> rusqlite::Result<crate::AuditConfigurationRecord> {
    Ok(crate::AuditConfigurationRecord {
        role_arn: row.get(0)?,
        checks_json: row.get(1)?,
        notifications_json: row.get(2)?,
        updated_at_ms: row.get(3)?,
    })
}

macro_rules! audit_task_columns {
    () => {
        "task_id, task_type, status, scheduled_audit_name, started_at_ms, finished_at_ms, \
         checks_json, version"
    };
}

pub(super) fn audit_task(row: &Row<'_>) -> rusqlite::Result<crate::AuditTaskRecord> {
    Ok(crate::AuditTaskRecord {
        task_id: row.get(0)?,
        task_type: row.get(1)?,
        status: row.get(2)?,
        scheduled_audit_name: row.get(3)?,
        started_at_ms: row.get(4)?,
        finished_at_ms: row.get(5)?,
        checks_json: row.get(6)?,
        version: row.get(7)?,
    })
}

macro_rules! audit_finding_columns {
    () => {
        "finding_id, task_id, check_name, task_start_ms, finding_time_ms, resource_key, \
         is_suppressed, body_json"
    };
}

pub(super) fn audit_finding(row: &Row<'_>) -> rusqlite::Result<crate::AuditFindingRecord> {
    Ok(crate::AuditFindingRecord {
        finding_id: row.get(0)?,
        task_id: row.get(1)?,
        check_name: row.get(2)?,
        task_start_ms: row.get(3)?,
        finding_time_ms: row.get(4)?,
        resource_key: row.get(5)?,
        is_suppressed: row.get(6)?,
        body_json: row.get(7)?,
    })
}
