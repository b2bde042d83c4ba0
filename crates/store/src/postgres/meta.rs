use async_trait::async_trait;
use rand::RngCore;

use super::error::Fail;
use super::PostgresStore;
use crate::{MetaStore, StoreError, StoreResult};

const SERVER_SECRET_KEY: &str = "server_secret";
const SERVER_SECRET_LEN: usize = 32;

#[async_trait]
impl MetaStore for PostgresStore {
    async fn server_secret(&self) -> StoreResult<Vec<u8>> {
        if let Some(secret) = self.inner.secret.get() {
            return Ok(secret.clone());
        }
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                // Offer a fresh secret but keep whichever was stored first, then read back
                // the winner (a separate statement, so its snapshot includes a winner that
                // committed while the insert waited), so nodes racing on a new database
                // all end up with the same secret.
                let mut candidate = vec![0u8; SERVER_SECRET_LEN];
                rand::thread_rng().fill_bytes(&mut candidate);
                let insert = conn
                    .prepare_cached(
                        "INSERT INTO server_meta (key, value) VALUES ($1, $2)
                         ON CONFLICT (key) DO NOTHING",
                    )
                    .await?;
                conn.execute(&insert, &[&SERVER_SECRET_KEY, &candidate])
                    .await?;
                let select = conn
                    .prepare_cached("SELECT value FROM server_meta WHERE key = $1")
                    .await?;
                match conn.query_opt(&select, &[&SERVER_SECRET_KEY]).await? {
                    Some(row) => Ok(row.try_get::<_, Vec<u8>>(0)?),
                    None => Err(Fail::Store(StoreError::Internal(
                        "server secret missing right after insert".into(),
                    ))),
                }
            })
            .await;
        let secret = conn.finish(outcome)?;
        Ok(self.inner.secret.get_or_init(|| secret).clone())
    }
}
