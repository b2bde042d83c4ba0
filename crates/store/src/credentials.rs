//! Access keys, global to the database (one key acts for one account in every region).

use crate::db::{Db, DbResult, Row};
use crate::{Credential, StoreResult};
use palisade_store_macros::engines;

macro_rules! credential_columns {
    () => {
        "access_key_id, secret_access_key, account_id, created_at_ms"
    };
}

fn credential(row: &Row<'_>) -> DbResult<Credential> {
    Ok(from_row!(row => Credential { access_key_id, secret_access_key, account_id, created_at_ms }))
}

#[engines]
pub trait CredentialStore: Send + Sync {
    /// `AlreadyExists` if the access key id is taken.
    async fn create_credential(&self, cred: &Credential) -> StoreResult<()> {
        let cred = cred.clone();
        self.write_one(async move |db| insert(db, &cred).await)
            .await
    }

    async fn get_credential(&self, access_key_id: &str) -> StoreResult<Option<Credential>> {
        self.read(async |db| {
            db.query_opt(
                sql!(
                    "SELECT ",
                    credential_columns!(),
                    " FROM credentials WHERE access_key_id = $1"
                ),
                &[&access_key_id],
                credential,
            )
            .await
        })
        .await
    }

    /// All credentials, ordered by account id then access key id.
    async fn list_credentials(&self) -> StoreResult<Vec<Credential>> {
        self.read(async |db| {
            db.query(
                sql!(
                    "SELECT ",
                    credential_columns!(),
                    " FROM credentials ORDER BY account_id, access_key_id"
                ),
                &[],
                credential,
            )
            .await
        })
        .await
    }

    /// Returns whether a credential was deleted.
    async fn delete_credential(&self, access_key_id: &str) -> StoreResult<bool> {
        let id = access_key_id.to_owned();
        self.write_one(async move |db| {
            let deleted = db
                .execute(
                    sql!("DELETE FROM credentials WHERE access_key_id = $1"),
                    &[&id],
                )
                .await?;
            Ok(deleted > 0)
        })
        .await
    }
}

async fn insert(db: &Db<'_>, cred: &Credential) -> DbResult<()> {
    db.insert(
        sql!(
            "INSERT INTO credentials (",
            credential_columns!(),
            ") VALUES ($1, $2, $3, $4)"
        ),
        &[
            &cred.access_key_id,
            &cred.secret_access_key,
            &cred.account_id,
            &cred.created_at_ms,
        ],
    )
    .await
    .map(drop)
}
