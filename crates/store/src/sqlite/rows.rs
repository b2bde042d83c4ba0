//! Row mapping, one function per table. Each table's column list lives beside its
//! mapping function as a macro (so it can be spliced into SQL literals with `concat!`),
//! which keeps the positional reads below in step with every query's SELECT list.

use rusqlite::Row;

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
