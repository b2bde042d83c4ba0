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
