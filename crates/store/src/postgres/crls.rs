//! Cached and imported CRLs on PostgreSQL.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::error::Fail;
use super::PostgresStore;
use crate::{CrlRecord, CrlStore, StoreResult};

fn crl(row: &Row) -> Result<CrlRecord, Fail> {
    Ok(CrlRecord {
        source: row.try_get(0)?,
        issuer_der: row.try_get(1)?,
        crl_der: row.try_get(2)?,
        this_update_ms: row.try_get(3)?,
        next_update_ms: row.try_get(4)?,
        stored_at_ms: row.try_get(5)?,
        issuer_certificate_der: row.try_get(6)?,
    })
}

#[async_trait]
impl CrlStore for PostgresStore {
    async fn get_crl(&self, source: &str) -> StoreResult<Option<CrlRecord>> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let stmt = conn
                    .prepare_cached(
                        "SELECT source, issuer_der, crl_der, this_update_ms, next_update_ms,
                                stored_at_ms, issuer_certificate_der
                         FROM crls WHERE source = $1",
                    )
                    .await?;
                let row = conn.query_opt(&stmt, &[&source]).await?;
                row.as_ref().map(crl).transpose()
            })
            .await;
        conn.finish(outcome)
    }

    async fn put_crl(&self, r: &CrlRecord) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                // One statement: the comparison with the stored thisUpdate and the write
                // happen under the row's lock, so concurrent fetches keep the newest.
                let stmt = conn
                    .prepare_cached(
                        "INSERT INTO crls (source, issuer_der, crl_der, this_update_ms,
                                           next_update_ms, stored_at_ms, issuer_certificate_der)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (source) DO UPDATE SET
                             issuer_der = excluded.issuer_der, crl_der = excluded.crl_der,
                             this_update_ms = excluded.this_update_ms,
                             next_update_ms = excluded.next_update_ms,
                             stored_at_ms = excluded.stored_at_ms,
                             issuer_certificate_der = excluded.issuer_certificate_der
                         WHERE excluded.this_update_ms >= crls.this_update_ms",
                    )
                    .await?;
                Ok(conn
                    .execute(
                        &stmt,
                        &[
                            &r.source,
                            &r.issuer_der,
                            &r.crl_der,
                            &r.this_update_ms,
                            &r.next_update_ms,
                            &r.stored_at_ms,
                            &r.issuer_certificate_der,
                        ],
                    )
                    .await?
                    > 0)
            })
            .await;
        conn.finish(outcome)
    }
}
