//! Versioned schema migrations, embedded in the binary and applied in order.

use deadpool_postgres::ClientWrapper;

use super::error::{classify, describe, Fail};
use crate::db::Db;
use crate::migrations::apply_pending;
use crate::StoreError;

/// Key of the transaction-scoped advisory lock that serialises migrations ("PALISADE"
/// in ASCII). It lies outside the 32-bit range that `hashtext`-derived keys occupy and
/// uses the one-key form, so it cannot collide with the engine's row-group locks.
const MIGRATION_LOCK: i64 = 0x5041_4C49_5341_4445;

/// Brings the schema up to date (`crate::migrations::apply_pending`) in one transaction
/// that first takes the migration lock.
pub(super) async fn run(client: &mut ClientWrapper) -> Result<(), Fail> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    apply_pending(&Db::PgTx(&tx), |version, e| match e {
        // Losing the database midway is an outage, not a broken migration.
        Fail::Pg(e) if !matches!(classify(&e), StoreError::Unavailable(_)) => Fail::Store(
            StoreError::Internal(format!("migration {version} failed: {}", describe(&e))),
        ),
        other => other,
    })
    .await?;
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
