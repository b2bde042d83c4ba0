//! Row mapping, one function per table. Each table's column list lives beside its
//! mapping function as a macro (so it can be spliced into SQL literals with `concat!`),
//! which keeps the positional reads below in step with every query's SELECT list.

use tokio_postgres::Row;

use super::error::Fail;

/// Maps every row with `f`, stopping at the first failure.
pub(super) fn all<T>(rows: &[Row], f: fn(&Row) -> Result<T, Fail>) -> Result<Vec<T>, Fail> {
    rows.iter().map(f).collect()
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
