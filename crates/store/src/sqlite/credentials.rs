use async_trait::async_trait;
use rusqlite::OptionalExtension;

use super::error::{insert_err, sql_err};
use super::{rows, SqliteStore};
use crate::{Credential, CredentialStore, StoreResult};

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn create_credential(&self, cred: &Credential) -> StoreResult<()> {
        let cred = cred.clone();
        self.write(move |tx| {
            tx.prepare_cached(concat!(
                "INSERT INTO credentials (",
                credential_columns!(),
                ") VALUES (?1, ?2, ?3, ?4)"
            ))
            .and_then(|mut stmt| {
                stmt.execute((
                    &cred.access_key_id,
                    &cred.secret_access_key,
                    &cred.account_id,
                    cred.created_at_ms,
                ))
            })
            .map_err(insert_err)?;
            Ok(())
        })
        .await
    }

    async fn get_credential(&self, access_key_id: &str) -> StoreResult<Option<Credential>> {
        let access_key_id = access_key_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                credential_columns!(),
                " FROM credentials WHERE access_key_id = ?1"
            ))
            .and_then(|mut stmt| {
                stmt.query_row([&access_key_id], rows::credential)
                    .optional()
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn list_credentials(&self) -> StoreResult<Vec<Credential>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    credential_columns!(),
                    " FROM credentials ORDER BY account_id, access_key_id"
                ))
                .map_err(sql_err)?;
            let rows = stmt.query_map([], rows::credential).map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
    }

    async fn delete_credential(&self, access_key_id: &str) -> StoreResult<bool> {
        let access_key_id = access_key_id.to_owned();
        self.write(move |tx| {
            let deleted = tx
                .prepare_cached("DELETE FROM credentials WHERE access_key_id = ?1")
                .and_then(|mut stmt| stmt.execute([&access_key_id]))
                .map_err(sql_err)?;
            Ok(deleted > 0)
        })
        .await
    }
}
