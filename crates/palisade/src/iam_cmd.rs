//! `palisade iam import FILE...`: IAM and Amazon Cognito data, as the AWS CLI prints it,
//! straight into the database, whether or not a server runs on it (docs/IMPORT.md).

use std::path::PathBuf;

use anyhow::{Context, Result};
use palisade_engine::EngineError;
use serde_json::json;

use crate::fleet_cmd::engine_and_scope;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The files: AWS CLI output of get-account-authorization-details,
    /// get-service-last-accessed-details, list-identity-pools, get-identity-pool-roles.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The 12-digit account the data belongs to.
    #[arg(long)]
    account_id: String,
    /// The role a get-service-last-accessed-details file is about (its output does not
    /// say).
    #[arg(long)]
    role_arn: Option<String>,
    /// The region the data belongs to [default: the config file's, else us-east-1].
    #[arg(long, env = "PALISADE_REGION")]
    region: Option<String>,
    #[command(flatten)]
    store: crate::StoreArgs,
}

pub async fn import(args: ImportArgs) -> Result<()> {
    let mut files = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        files.push((path.display().to_string(), text));
    }
    let (engine, scope) =
        engine_and_scope(&args.account_id, args.region.as_deref(), &args.store).await?;
    let summary = engine
        .import_iam(&scope, &files, args.role_arn.as_deref())
        .await
        .map_err(|e| match e {
            EngineError::InvalidRequest(m) => anyhow::anyhow!("nothing imported: {m}"),
            other => anyhow::Error::new(other).context("storing the IAM data"),
        })?;
    println!(
        "{}",
        json!({
            "roles": summary.roles,
            "managedPolicies": summary.managed_policies,
            "lastAccessedReports": summary.last_accessed_reports,
            "identityPoolLists": summary.identity_pool_lists,
            "identityPools": summary.identity_pools,
        })
    );
    Ok(())
}
