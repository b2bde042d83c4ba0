//! Row mapping, one function per table. Each table's column list lives beside its
//! mapping function as a macro (so it can be spliced into SQL literals with `concat!`),
//! which keeps the positional reads below in step with every query's SELECT list.

use rusqlite::Row;

use crate::{Credential, MitigationActionRecord, Tag};

macro_rules! credential_columns {
    () => {
        "access_key_id, secret_access_key, account_id, created_at_ms"
    };
}

pub(super) fn credential(row: &Row<'_>) -> rusqlite::Result<Credential> {
    Ok(Credential {
        access_key_id: row.get(0)?,
        secret_access_key: row.get(1)?,
        account_id: row.get(2)?,
        created_at_ms: row.get(3)?,
    })
}

macro_rules! action_columns {
    () => {
        "name, id, arn, action_type, role_arn, params_json, created_at_ms, updated_at_ms"
    };
}

pub(super) fn mitigation_action(row: &Row<'_>) -> rusqlite::Result<MitigationActionRecord> {
    Ok(MitigationActionRecord {
        name: row.get(0)?,
        id: row.get(1)?,
        arn: row.get(2)?,
        action_type: row.get(3)?,
        role_arn: row.get(4)?,
        params_json: row.get(5)?,
        created_at_ms: row.get(6)?,
        updated_at_ms: row.get(7)?,
    })
}

macro_rules! tag_columns {
    () => {
        "tag_key, tag_value"
    };
}

pub(super) fn tag(row: &Row<'_>) -> rusqlite::Result<Tag> {
    Ok(Tag {
        key: row.get(0)?,
        value: row.get(1)?,
    })
}

macro_rules! work_columns {
    () => {
        "id, queue, payload, attempts, run_after_ms, lease_owner, lease_expires_at_ms"
    };
}

pub(super) fn work_item(row: &Row<'_>) -> rusqlite::Result<crate::WorkItem> {
    Ok(crate::WorkItem {
        id: row.get(0)?,
        queue: row.get(1)?,
        payload: row.get(2)?,
        attempts: row.get(3)?,
        run_after_ms: row.get(4)?,
        lease_owner: row.get(5)?,
        lease_expires_at_ms: row.get(6)?,
    })
}

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

macro_rules! audit_suppression_columns {
    () => {
        "check_name, resource_key, resource_json, expiration_ms, suppress_indefinitely, \
         description, client_request_token, created_at_ms, updated_at_ms"
    };
}

pub(super) fn audit_suppression(row: &Row<'_>) -> rusqlite::Result<crate::AuditSuppressionRecord> {
    Ok(crate::AuditSuppressionRecord {
        check_name: row.get(0)?,
        resource_key: row.get(1)?,
        resource_json: row.get(2)?,
        expiration_ms: row.get(3)?,
        suppress_indefinitely: row.get(4)?,
        description: row.get(5)?,
        client_request_token: row.get(6)?,
        created_at_ms: row.get(7)?,
        updated_at_ms: row.get(8)?,
    })
}
