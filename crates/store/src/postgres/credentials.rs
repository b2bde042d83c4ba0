use async_trait::async_trait;

use super::error::insert_err;
use super::{rows, PostgresStore};
use crate::{Credential, CredentialStore, StoreResult};

#[async_trait]
impl CredentialStore for PostgresStore {
    async fn create_credential(&self, cred: &Credential) -> StoreResult<()> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "INSERT INTO credentials (",
                        credential_columns!(),
                        ") VALUES ($1, $2, $3, $4)"
                    ))
                    .await?;
                conn.execute(
                    &stmt,
                    &[
                        &cred.access_key_id,
                        &cred.secret_access_key,
                        &cred.account_id,
                        &cred.created_at_ms,
                    ],
                )
                .await
                .map_err(insert_err)?;
                Ok(())
            })
            .await;
        conn.finish(outcome)
    }

    async fn get_credential(&self, access_key_id: &str) -> StoreResult<Option<Credential>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        credential_columns!(),
                        " FROM credentials WHERE access_key_id = $1"
                    ))
                    .await?;
                let row = conn.query_opt(&stmt, &[&access_key_id]).await?;
                row.as_ref().map(rows::credential).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn list_credentials(&self) -> StoreResult<Vec<Credential>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(concat!(
                        "SELECT ",
                        credential_columns!(),
                        " FROM credentials ORDER BY account_id, access_key_id"
                    ))
                    .await?;
                rows::all(&conn.query(&stmt, &[]).await?, rows::credential)
            })
            .await;
        conn.finish(outcome)
    }

    async fn delete_credential(&self, access_key_id: &str) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached("DELETE FROM credentials WHERE access_key_id = $1")
                    .await?;
                Ok(conn.execute(&stmt, &[&access_key_id]).await? > 0)
            })
            .await;
        conn.finish(outcome)
    }
}
