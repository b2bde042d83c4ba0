//! Values kept once per database.

use palisade_store_macros::engines;
use rand::RngCore;

use crate::db::Db;
use crate::db::{corrupt, DbResult};
use crate::StoreResult;

const SERVER_SECRET_KEY: &str = "server_secret";
const SERVER_SECRET_LEN: usize = 32;

#[engines]
pub trait MetaStore: Send + Sync {
    /// A 32-byte secret created once per database and shared by every process using
    /// it (pagination tokens are signed with it, so any node can verify any token).
    async fn server_secret(&self) -> StoreResult<Vec<u8>> {
        if let Some(secret) = self.secret_cell().get() {
            return Ok(secret.clone());
        }
        let secret = match self.read(async |db| read_secret(db).await).await? {
            Some(secret) => secret,
            None => self.write(async |db| create_secret(db).await).await?,
        };
        Ok(self.secret_cell().get_or_init(|| secret).clone())
    }
}

async fn read_secret(db: &Db<'_>) -> DbResult<Option<Vec<u8>>> {
    db.value(
        sql!("SELECT value FROM server_meta WHERE key = $1"),
        &[&SERVER_SECRET_KEY],
    )
    .await
}

/// Offers a fresh secret but keeps whichever was stored first, then reads back the
/// winner (a separate statement, so on PostgreSQL its snapshot includes a winner that
/// committed while the insert waited), so processes racing on a new database all end
/// up with the same secret.
async fn create_secret(db: &Db<'_>) -> DbResult<Vec<u8>> {
    let mut candidate = vec![0u8; SERVER_SECRET_LEN];
    rand::thread_rng().fill_bytes(&mut candidate);
    db.execute(
        sql!("INSERT INTO server_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"),
        &[&SERVER_SECRET_KEY, &candidate],
    )
    .await?;
    read_secret(db)
        .await?
        .ok_or_else(|| corrupt("server secret missing right after insert"))
}
