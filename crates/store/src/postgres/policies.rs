//! What the mitigation stages, not on the seam yet, still call on their own
//! transaction; the shared code in `crate::policies` does the work.

use deadpool_postgres::Transaction;

use super::error::Fail;
use crate::db::Db;
use crate::{
    policies, NewPolicyVersion, PolicyOutcome, PolicyRecord, PolicyVersionRecord, Scope,
    V2LoggingOptionsRecord,
};

pub(super) async fn create_policy_version_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
    version: &NewPolicyVersion,
    max_versions: usize,
) -> Result<PolicyOutcome<(PolicyRecord, PolicyVersionRecord)>, Fail> {
    policies::create_policy_version_in(&Db::PgTx(tx), scope, name, version, max_versions).await
}

pub(super) async fn put_v2_logging_options_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    options: &V2LoggingOptionsRecord,
) -> Result<(), Fail> {
    policies::put_v2_logging_options_in(&Db::PgTx(tx), scope, options).await
}
