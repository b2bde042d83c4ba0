//! Opening the storage engine the configuration chose.

use std::sync::Arc;

use anyhow::{Context, Result};
use palisade_store::{PostgresStore, SqliteStore, Store};

use crate::config::StoreChoice;

pub async fn open(choice: &StoreChoice) -> Result<Arc<dyn Store>> {
    Ok(match choice {
        StoreChoice::Sqlite(path) => {
            let path = path.clone();
            // Opening runs migrations and may wait on another process's lock.
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await?
                .with_context(|| format!("opening the SQLite database {}", choice.describe()))?;
            Arc::new(store)
        }
        StoreChoice::Postgres { url, options } => Arc::new(
            PostgresStore::connect(url, options.clone())
                .await
                .context("connecting to PostgreSQL")?,
        ),
    })
}
