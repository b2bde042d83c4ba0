//! The account's logging options.

use palisade_store_macros::engines;

use crate::db::{Db, DbResult, Row, Sql};
use crate::{Scope, StoreResult};

/// The account's v1 logging options (SetLoggingOptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingOptionsRecord {
    pub role_arn: String,
    /// A log level as on the wire (`ERROR`, ...), if one was given.
    pub log_level: Option<String>,
    pub updated_at_ms: i64,
}

/// The account's v2 logging options (SetV2LoggingOptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2LoggingOptionsRecord {
    pub role_arn: Option<String>,
    /// A log level as on the wire (`ERROR`, ...), if one was given.
    pub default_log_level: Option<String>,
    pub disable_all_logs: bool,
    /// The `eventConfigurations` list as the engine encoded it; opaque to the store.
    pub event_configurations_json: Option<String>,
    pub updated_at_ms: i64,
}

macro_rules! logging_options_columns {
    () => {
        "role_arn, log_level, updated_at_ms"
    };
}

fn logging_options(row: &Row<'_>) -> DbResult<LoggingOptionsRecord> {
    Ok(from_row!(row => LoggingOptionsRecord { role_arn, log_level, updated_at_ms }))
}

macro_rules! v2_logging_options_columns {
    () => {
        "role_arn, default_log_level, disable_all_logs, event_configurations, updated_at_ms"
    };
}

fn v2_logging_options(row: &Row<'_>) -> DbResult<V2LoggingOptionsRecord> {
    Ok(from_row!(row => V2LoggingOptionsRecord {
        role_arn, default_log_level, disable_all_logs, event_configurations_json, updated_at_ms
    }))
}

/// Per-account (and region) logging options. AWS keeps v1 and v2 apart, and so do
/// these: setting one never changes the other. An account that never set them has
/// none (`None`).
#[engines]
pub trait LoggingStore: Send + Sync {
    /// Replaces the v1 options.
    async fn put_logging_options(
        &self,
        scope: &Scope,
        options: &LoggingOptionsRecord,
    ) -> StoreResult<()> {
        let (scope, options) = (scope.clone(), options.clone());
        self.write_one(async move |db| {
            db.execute(
                sql!(
                    "INSERT INTO logging_options (account_id, region, ",
                    logging_options_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5)",
                    " ON CONFLICT (account_id, region) DO UPDATE SET",
                    " role_arn = excluded.role_arn,",
                    " log_level = excluded.log_level,",
                    " updated_at_ms = excluded.updated_at_ms"
                ),
                &[
                    &scope.account_id,
                    &scope.region,
                    &options.role_arn,
                    &options.log_level,
                    &options.updated_at_ms,
                ],
            )
            .await
            .map(drop)
        })
        .await
    }

    async fn get_logging_options(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<LoggingOptionsRecord>> {
        self.read(async |db| {
            db.query_opt(
                sql!(
                    "SELECT ",
                    logging_options_columns!(),
                    " FROM logging_options WHERE account_id = $1 AND region = $2"
                ),
                &[&scope.account_id, &scope.region],
                logging_options,
            )
            .await
        })
        .await
    }

    /// Replaces the v2 options.
    async fn put_v2_logging_options(
        &self,
        scope: &Scope,
        options: &V2LoggingOptionsRecord,
    ) -> StoreResult<()> {
        let (scope, options) = (scope.clone(), options.clone());
        self.write_one(async move |db| put_v2_logging_options_in(db, &scope, &options).await)
            .await
    }

    async fn get_v2_logging_options(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<V2LoggingOptionsRecord>> {
        self.read(async |db| {
            db.query_opt(
                sql!(
                    "SELECT ",
                    v2_logging_options_columns!(),
                    " FROM v2_logging_options WHERE account_id = $1 AND region = $2"
                ),
                &[&scope.account_id, &scope.region],
                v2_logging_options,
            )
            .await
        })
        .await
    }
}

/// Replaces the scope's v2 logging options, on its own or inside the caller's
/// transaction; the ENABLE_IOT_LOGGING mitigation uses it too.
pub(crate) async fn put_v2_logging_options_in(
    db: &Db<'_>,
    scope: &Scope,
    options: &V2LoggingOptionsRecord,
) -> DbResult<()> {
    db.execute(
        PUT_V2_LOGGING_OPTIONS,
        &[
            &scope.account_id,
            &scope.region,
            &options.role_arn,
            &options.default_log_level,
            &options.disable_all_logs,
            &options.event_configurations_json,
            &options.updated_at_ms,
        ],
    )
    .await
    .map(drop)
}

/// Also run by sqlite/policies.rs, on the rusqlite transaction of the mitigation
/// stages that are not on the seam yet (parameters as in [`put_v2_logging_options_in`]).
pub(crate) const PUT_V2_LOGGING_OPTIONS: &Sql<'static> = sql!(
    "INSERT INTO v2_logging_options (account_id, region, ",
    v2_logging_options_columns!(),
    ")",
    " VALUES ($1, $2, $3, $4, $5, $6, $7)",
    " ON CONFLICT (account_id, region) DO UPDATE SET",
    " role_arn = excluded.role_arn,",
    " default_log_level = excluded.default_log_level,",
    " disable_all_logs = excluded.disable_all_logs,",
    " event_configurations = excluded.event_configurations,",
    " updated_at_ms = excluded.updated_at_ms"
);
