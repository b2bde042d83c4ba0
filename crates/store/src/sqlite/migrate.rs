//! Versioned schema migrations, embedded in the binary and applied in order.

use std::sync::Mutex;

use rusqlite::Connection;

use super::{rollback, settle};
use crate::db::{Db, Fail};
use crate::migrations::apply_pending;
use crate::{StoreError, StoreResult};

/// Brings the schema up to date (`crate::migrations::apply_pending`) in one
/// `BEGIN IMMEDIATE` transaction on `conn`.
pub(super) fn run(conn: &Mutex<Connection>) -> StoreResult<()> {
    let db = Db::Lite(conn);
    let migrated = settle(async {
        db.batch("BEGIN IMMEDIATE").await?;
        apply_pending(&db, |version, e| match e {
            Fail::Lite(e) => Fail::Store(StoreError::Internal(format!(
                "migration {version} failed: {e}"
            ))),
            other => other,
        })
        .await?;
        db.batch("COMMIT").await
    });
    if migrated.is_err() {
        rollback(
            &conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }
    migrated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::MIGRATIONS;

    #[test]
    fn rerun_is_a_no_op() {
        let conn = Mutex::new(Connection::open_in_memory().unwrap());
        run(&conn).unwrap();
        run(&conn).unwrap();
        let conn = conn.into_inner().unwrap();
        let applied: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(applied, MIGRATIONS.len() as i64);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let conn = Mutex::new(Connection::open_in_memory().unwrap());
        run(&conn).unwrap();
        conn.lock()
            .unwrap()
            .execute(
                "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (999, 0)",
                [],
            )
            .unwrap();
        assert!(matches!(run(&conn), Err(StoreError::Internal(m)) if m.contains("999")));
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
                tx.execute_batch(m.sqlite).unwrap();
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, 0)",
                    [m.version],
                )
                .unwrap();
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
        let conn = Mutex::new(conn);
        run(&conn).unwrap();
        let conn = conn.into_inner().unwrap();
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
