//! `palisade credentials ...`: works on the database directly, whether or not a server
//! runs on it; running servers find new keys on their first use.

use anyhow::{bail, Context, Result};
use palisade_engine::clock::{Clock, SystemClock};
use palisade_engine::credentials;
use serde_json::json;

use crate::config::StoreChoice;
use crate::store;

pub async fn create(choice: &StoreChoice, account_id: &str) -> Result<()> {
    credentials::validate_account_id(account_id).map_err(anyhow::Error::msg)?;
    let store = store::open(choice).await?;
    let cred =
        credentials::generate(account_id, SystemClock.now_ms()).map_err(anyhow::Error::msg)?;
    store
        .create_credential(&cred)
        .await
        .context("storing the credential")?;
    println!(
        "{}",
        json!({
            "accessKeyId": cred.access_key_id,
            "secretAccessKey": cred.secret_access_key,
            "accountId": cred.account_id,
        })
    );
    Ok(())
}

pub async fn list(choice: &StoreChoice) -> Result<()> {
    let store = store::open(choice).await?;
    for c in store.list_credentials().await? {
        println!(
            "{}",
            json!({"accessKeyId": c.access_key_id, "accountId": c.account_id, "createdAt": c.created_at_ms / 1000})
        );
    }
    Ok(())
}

pub async fn delete(choice: &StoreChoice, access_key_id: &str) -> Result<()> {
    let store = store::open(choice).await?;
    if !store.delete_credential(access_key_id).await? {
        bail!("no credential with access key id {access_key_id}");
    }
    Ok(())
}
