//! Row mapping, one function per table. Each table's column list lives beside its
//! mapping function as a macro (so it can be spliced into SQL literals with `concat!`),
//! which keeps the positional reads below in step with every query's SELECT list.

use tokio_postgres::Row;

use super::error::Fail;
use crate::{Credential, MitigationActionRecord, StoreError, Tag, WorkItem};

macro_rules! credential_columns {
    () => {
        "access_key_id, secret_access_key, account_id, created_at_ms"
    };
}

pub(super) fn credential(row: &Row) -> Result<Credential, Fail> {
    Ok(Credential {
        access_key_id: row.try_get(0)?,
        secret_access_key: row.try_get(1)?,
        account_id: row.try_get(2)?,
        created_at_ms: row.try_get(3)?,
    })
}

macro_rules! action_columns {
    () => {
        "name, id, arn, action_type, role_arn, params_json, created_at_ms, updated_at_ms"
    };
}

pub(super) fn mitigation_action(row: &Row) -> Result<MitigationActionRecord, Fail> {
    Ok(MitigationActionRecord {
        name: row.try_get(0)?,
        id: row.try_get(1)?,
        arn: row.try_get(2)?,
        action_type: row.try_get(3)?,
        role_arn: row.try_get(4)?,
        params_json: row.try_get(5)?,
        created_at_ms: row.try_get(6)?,
        updated_at_ms: row.try_get(7)?,
    })
}

macro_rules! tag_columns {
    () => {
        "tag_key, tag_value"
    };
}

pub(super) fn tag(row: &Row) -> Result<Tag, Fail> {
    Ok(Tag {
        key: row.try_get(0)?,
        value: row.try_get(1)?,
    })
}

macro_rules! work_columns {
    () => {
        "id, queue, payload, attempts, run_after_ms, lease_owner, lease_expires_at_ms"
    };
}

pub(super) fn work_item(row: &Row) -> Result<WorkItem, Fail> {
    let attempts: i32 = row.try_get(3)?;
    Ok(WorkItem {
        id: row.try_get(0)?,
        queue: row.try_get(1)?,
        payload: row.try_get(2)?,
        attempts: u32::try_from(attempts).map_err(|_| {
            Fail::Store(StoreError::Internal(format!(
                "work item has a negative attempt count ({attempts})"
            )))
        })?,
        run_after_ms: row.try_get(4)?,
        lease_owner: row.try_get(5)?,
        lease_expires_at_ms: row.try_get(6)?,
    })
}

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

macro_rules! audit_suppression_columns {
    () => {
        "check_name, resource_key, resource_json, expiration_ms, suppress_indefinitely, \
         description, client_request_token, created_at_ms, updated_at_ms"
    };
}

pub(super) fn audit_suppression(row: &Row) -> Result<crate::AuditSuppressionRecord, Fail> {
    Ok(crate::AuditSuppressionRecord {
        check_name: row.try_get(0)?,
        resource_key: row.try_get(1)?,
        resource_json: row.try_get(2)?,
        expiration_ms: row.try_get(3)?,
        suppress_indefinitely: row.try_get(4)?,
        description: row.try_get(5)?,
        client_request_token: row.try_get(6)?,
        created_at_ms: row.try_get(7)?,
        updated_at_ms: row.try_get(8)?,
    })
}
