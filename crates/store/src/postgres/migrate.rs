//! Versioned schema migrations, embedded in the binary and applied in order.

use std::time::{SystemTime, UNIX_EPOCH};

use deadpool_postgres::ClientWrapper;

use super::error::{classify, describe, Fail};
use crate::StoreError;

/// `(version, sql)`, in ascending version order. Append only: an applied migration is
/// never edited, since databases in the field already ran it. The versions match the
/// SQLite engine's, migration for migration.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_work.sql")),
    (3, include_str!("../../migrations/postgres/0003_things.sql")),
    (
        4,
        include_str!("../../migrations/postgres/0004_policies.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_certificates.sql"),
    ),
    (6, include_str!("../../migrations/postgres/0006_audits.sql")),
    (
        7,
        include_str!("../../migrations/postgres/0007_suppressions.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_scheduled_audits.sql"),
    ),
    (9, include_str!("../../migrations/postgres/0009_crls.sql")),
    (
        10,
        include_str!("../../migrations/postgres/0010_mitigation_tasks.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_mitigation_locality.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_finding_heads.sql"),
    ),
];

/// Key of the transaction-scoped advisory lock that serialises migrations ("PALISADE"
/// in ASCII). It lies outside the 32-bit range that `hashtext`-derived keys occupy and
/// uses the one-key form, so it cannot collide with the engine's row-group locks.
const MIGRATION_LOCK: i64 = 0x5041_4C49_5341_4445;

/// Brings the schema up to date. The lock, the check and the migrations share one
/// transaction, so when several processes start on a fresh database at once exactly
/// one migrates and the others then see the result and do nothing.
pub(super) async fn run(client: &mut ClientWrapper) -> Result<(), Fail> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version       BIGINT NOT NULL PRIMARY KEY,
             applied_at_ms BIGINT NOT NULL
         )",
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > latest {
        // An older build must not write to a schema it does not know.
        return Err(StoreError::Internal(format!(
            "database schema version {current} is newer than this build supports ({latest})"
        ))
        .into());
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tracing::info!(version, "applying storage migration");
        tx.batch_execute(sql)
            .await
            .map_err(|e| match classify(&e) {
                // Losing the database midway is an outage, not a broken migration.
                StoreError::Unavailable(_) => Fail::Pg(e),
                _ => Fail::Store(StoreError::Internal(format!(
                    "migration {version} failed: {}",
                    describe(&e)
                ))),
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)",
            &[version, &now_ms()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_unique() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(MIGRATIONS.first().is_some_and(|(v, _)| *v == 1));
    }

    #[test]
    fn lock_key_is_outside_the_hashtext_range() {
        assert!(MIGRATION_LOCK > i64::from(u32::MAX));
    }
}
