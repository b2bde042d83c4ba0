//! Versioned schema migrations, embedded in the binary and applied in order.

use deadpool_postgres::ClientWrapper;

use super::error::{classify, describe, Fail};
use crate::migrations::{now_ms, pending};
use crate::StoreError;

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
    for migration in pending(current)? {
        let version = migration.version;
        tracing::info!(version, "applying storage migration");
        tx.batch_execute(migration.postgres)
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
            &[&version, &now_ms()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_key_is_outside_the_hashtext_range() {
        assert!(MIGRATION_LOCK > i64::from(u32::MAX));
    }
}
