//! The schema migrations of both engines, embedded in the binary. A new version is one
//! file per dialect under `migrations/` (their DDL differs) and one line here.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{Db, DbResult, Dialect, Fail};
use crate::StoreError;

/// One version's SQL for each engine.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

macro_rules! migration {
    ($version:literal, $file:literal) => {
        Migration {
            version: $version,
            sqlite: include_str!(concat!("../migrations/sqlite/", $file)),
            postgres: include_str!(concat!("../migrations/postgres/", $file)),
        }
    };
}

/// In ascending version order. Append only: an applied migration is never edited, since
/// databases in the field already ran it.
pub(crate) const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_init.sql"),
    migration!(2, "0002_work.sql"),
    migration!(3, "0003_things.sql"),
    migration!(4, "0004_policies.sql"),
    migration!(5, "0005_certificates.sql"),
    migration!(6, "0006_audits.sql"),
    migration!(7, "0007_suppressions.sql"),
    migration!(8, "0008_scheduled_audits.sql"),
    migration!(9, "0009_crls.sql"),
    migration!(10, "0010_mitigation_tasks.sql"),
    migration!(11, "0011_mitigation_locality.sql"),
    migration!(12, "0012_finding_heads.sql"),
    migration!(13, "0013_connections.sql"),
    migration!(14, "0014_gateway.sql"),
    migration!(15, "0015_iam.sql"),
];

/// The migrations a database at schema `current` still needs; an error if it is newer
/// than this build knows (an older build must not write to a schema it does not know).
pub(crate) fn pending(
    current: i64,
) -> Result<impl Iterator<Item = &'static Migration>, StoreError> {
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > latest {
        return Err(StoreError::Internal(format!(
            "database schema version {current} is newer than this build supports ({latest})"
        )));
    }
    Ok(MIGRATIONS.iter().filter(move |m| m.version > current))
}

/// Brings the schema up to date inside the caller's transaction, which runs alone (the
/// engine's lock: SQLite's `BEGIN IMMEDIATE`, PostgreSQL's advisory lock), so when
/// several processes start on a fresh database at once exactly one migrates and the
/// others then see the result and do nothing. `failed` words a migration's own failure
/// (each engine knows which of its errors are an outage rather than a broken migration).
pub(crate) async fn apply_pending(db: &Db<'_>, failed: impl Fn(i64, Fail) -> Fail) -> DbResult<()> {
    let (table, sql): (&str, fn(&Migration) -> &'static str) = match db.dialect() {
        Dialect::Sqlite => (
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version       INTEGER NOT NULL PRIMARY KEY,
                 applied_at_ms INTEGER NOT NULL
             )",
            |m| m.sqlite,
        ),
        Dialect::Postgres => (
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version       BIGINT NOT NULL PRIMARY KEY,
                 applied_at_ms BIGINT NOT NULL
             )",
            |m| m.postgres,
        ),
    };
    db.batch(table).await?;
    let current: i64 = db
        .value(
            sql!("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"),
            &[],
        )
        .await?
        .unwrap_or(0);
    for migration in pending(current)? {
        let version = migration.version;
        tracing::info!(version, "applying storage migration");
        db.batch(sql(migration))
            .await
            .map_err(|e| failed(version, e))?;
        db.execute(
            sql!("INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)"),
            &[&version, &now_ms()],
        )
        .await?;
    }
    Ok(())
}

/// When a migration was applied.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_unique() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert!(MIGRATIONS.first().is_some_and(|m| m.version == 1));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let latest = MIGRATIONS.last().map_or(0, |m| m.version);
        assert_eq!(pending(0).map(Iterator::count).ok(), Some(MIGRATIONS.len()));
        assert_eq!(pending(latest).map(Iterator::count).ok(), Some(0));
        assert!(pending(latest + 1).is_err());
    }
}
