//! Versioned schema migrations, embedded in the binary and applied in order.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::error::sql_err;
use crate::migrations::{now_ms, pending};
use crate::{StoreError, StoreResult};

/// Brings the schema up to date. The check and the migrations share one
/// `BEGIN IMMEDIATE` transaction, so when several processes open a fresh file at once
/// exactly one migrates and the others then see the result and do nothing.
pub(super) fn run(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version       INTEGER NOT NULL PRIMARY KEY,
             applied_at_ms INTEGER NOT NULL
         )",
    )
    .map_err(sql_err)?;
    let current = current_version(&tx)?;
    for migration in pending(current)? {
        apply(&tx, migration.version, migration.sqlite)?;
    }
    tx.commit().map_err(sql_err)
}

fn current_version(tx: &Transaction<'_>) -> StoreResult<i64> {
    tx.query_row("SELECT MAX(version) FROM schema_migrations", [], |row| {
        row.get::<_, Option<i64>>(0)
    })
    .map(|v| v.unwrap_or(0))
    .map_err(sql_err)
}

fn apply(tx: &Transaction<'_>, version: i64, sql: &str) -> StoreResult<()> {
    tracing::info!(version, "applying storage migration");
    tx.execute_batch(sql)
        .map_err(|e| StoreError::Internal(format!("migration {version} failed: {e}")))?;
    tx.execute(
        "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, ?2)",
        (version, now_ms()),
    )
    .map_err(sql_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::MIGRATIONS;

    #[test]
    fn rerun_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        run(&mut conn).unwrap();
        let applied: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(applied, MIGRATIONS.len() as i64);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (999, 0)",
            [],
        )
        .unwrap();
        assert!(matches!(run(&mut conn), Err(StoreError::Internal(m)) if m.contains("999")));
    }

    /// 0011 splits certificates into rows and states: a database made before it keeps
    /// every certificate, its state and its things.
    #[test]
    fn certificate_states_keep_existing_certificates() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        {
            let tx = conn.transaction().unwrap();
            tx.execute_batch(
                "CREATE TABLE schema_migrations (
                     version INTEGER NOT NULL PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
            )
            .unwrap();
            for m in MIGRATIONS.iter().filter(|m| m.version <= 10) {
                apply(&tx, m.version, m.sqlite).unwrap();
            }
            tx.execute_batch(
                "INSERT INTO things VALUES ('a', 'r', 'thing', 'tid', 'arn:thing', NULL, NULL,
                     1, 0, 0);
                 INSERT INTO certificates (account_id, region, id, arn, pem, status,
                     certificate_mode, owned_by, generation_id, customer_version, subject,
                     issuer, subject_der, issuer_der, serial_number, not_before_ms,
                     not_after_ms, key_algorithm, public_key, created_at_ms, updated_at_ms)
                 VALUES
                     ('a', 'r', 'c1', 'arn:c1', 'pem1', 'ACTIVE', 'DEFAULT', 'a', 'g1', 3,
                      'CN=1', 'CN=ca', x'01', x'02', '1', 0, 10, 'EC', x'03', 5, 7),
                     ('a', 'r', 'c2', 'arn:c2', 'pem2', 'REVOKED', 'DEFAULT', 'a', 'g2', 1,
                      'CN=2', 'CN=ca', x'01', x'02', '2', 0, 10, 'EC', x'03', 6, 6);
                 INSERT INTO thing_principals VALUES ('a', 'r', 'thing', 'c2', 0, 9);",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        run(&mut conn).unwrap();
        let rows: Vec<(String, String, String, i64, i64, String)> = conn
            .prepare(
                "SELECT s.id, s.status, s.generation_id, s.customer_version, s.updated_at_ms,
                     c.pem
                 FROM certificate_states s JOIN certificates c ON c.row_id = s.row_id
                 ORDER BY s.id",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (
                    "c1".into(),
                    "ACTIVE".into(),
                    "g1".into(),
                    3,
                    7,
                    "pem1".into()
                ),
                (
                    "c2".into(),
                    "REVOKED".into(),
                    "g2".into(),
                    1,
                    6,
                    "pem2".into()
                ),
            ]
        );
        // The attachment survived, and still keeps its certificate's state from going.
        assert!(conn
            .execute("DELETE FROM certificate_states WHERE id = 'c2'", [])
            .is_err());
        conn.execute("DELETE FROM certificate_states WHERE id = 'c1'", [])
            .unwrap();
    }
}
