//! Row mapping, one function per table. Each table's column list lives beside its
//! mapping function as a macro (so it can be spliced into SQL literals with `concat!`),
//! which keeps the positional reads below in step with every query's SELECT list.

use tokio_postgres::Row;

use super::error::Fail;

/// Maps every row with `f`, stopping at the first failure.
pub(super) fn all<T>(rows: &[Row], f: fn(&Row) -> Result<T, Fail>) -> Result<Vec<T>, Fail> {
    rows.iter().map(f).collect()
}

macro_rules! audit_configuration_columns {
    () => {
        "role_arn, checks_json, notifications_json, updated_at_ms"
    };
}

pub(super) fn audit_configuration(row: &Row) -> Result<crate::AuditConfigurationRecord, Fail> {
    Ok(crate::AuditConfigurationRecord {
        role_arn: row.try_get(0)?,
        checks_json: row.try_get(1)?,
        notifications_json: row.try_get(2)?,
        updated_at_ms: row.try_get(3)?,
    })
}

macro_rules! audit_task_columns {
    () => {
        "task_id, task_type, status, scheduled_audit_name, started_at_ms, finished_at_ms, \
         checks_json, version"
    };
}

pub(super) fn audit_task(row: &Row) -> Result<crate::AuditTaskRecord, Fail> {
    Ok(crate::AuditTaskRecord {
        task_id: row.try_get(0)?,
        task_type: row.try_get(1)?,
        status: row.try_get(2)?,
        scheduled_audit_name: row.try_get(3)?,
        started_at_ms: row.try_get(4)?,
        finished_at_ms: row.try_get(5)?,
        checks_json: row.try_get(6)?,
        version: row.try_get(7)?,
    })
}

macro_rules! audit_finding_columns {
    () => {
        "finding_id, task_id, check_name, task_start_ms, finding_time_ms, resource_key, \
         is_suppressed, body_json"
    };
}

pub(super) fn audit_finding(row: &Row) -> Result<crate::AuditFindingRecord, Fail> {
    Ok(crate::AuditFindingRecord {
        finding_id: row.try_get(0)?,
        task_id: row.try_get(1)?,
        check_name: row.try_get(2)?,
        task_start_ms: row.try_get(3)?,
        finding_time_ms: row.try_get(4)?,
        resource_key: row.try_get(5)?,
        is_suppressed: row.try_get(6)?,
        body_json: row.try_get(7)?,
    })
}
