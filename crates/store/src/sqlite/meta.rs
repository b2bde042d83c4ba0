use async_trait::async_trait;
use rand::RngCore;
use rusqlite::OptionalExtension;

use super::error::sql_err;
use super::SqliteStore;
use crate::{MetaStore, StoreResult};

const SERVER_SECRET_KEY: &str = "server_secret";
const SERVER_SECRET_LEN: usize = 32;

#[async_trait]
impl MetaStore for SqliteStore {
    async fn server_secret(&self) -> StoreResult<Vec<u8>> {
        if let Some(secret) = self.inner.secret.get() {
            return Ok(secret.clone());
        }
        let secret = match self.read(read_secret).await? {
            Some(secret) => secret,
            None => self.write(create_secret).await?,
        };
        Ok(self.inner.secret.get_or_init(|| secret).clone())
    }
}

fn read_secret(conn: &rusqlite::Connection) -> StoreResult<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM server_meta WHERE key = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([SERVER_SECRET_KEY], |row| row.get(0))
                .optional()
        })
        .map_err(sql_err)
}

/// Offers a fresh secret but keeps whichever was stored first, then reads back the
/// winner, so processes racing on a new database all end up with the same secret.
fn create_secret(tx: &rusqlite::Transaction<'_>) -> StoreResult<Vec<u8>> {
    let mut candidate = vec![0u8; SERVER_SECRET_LEN];
    rand::thread_rng().fill_bytes(&mut candidate);
    tx.prepare_cached(
        "INSERT INTO server_meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
    )
    .and_then(|mut stmt| stmt.execute((SERVER_SECRET_KEY, &candidate)))
    .map_err(sql_err)?;
    read_secret(tx)?.ok_or_else(|| {
        crate::StoreError::Internal("server secret missing right after insert".into())
    })
}
