//! Cached and imported CRLs on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row};

use super::error::sql_err;
use super::SqliteStore;
use crate::{CrlRecord, CrlStore, StoreResult};

fn crl(row: &Row<'_>) -> rusqlite::Result<CrlRecord> {
    Ok(CrlRecord {
        source: row.get(0)?,
        issuer_der: row.get(1)?,
        crl_der: row.get(2)?,
        this_update_ms: row.get(3)?,
        next_update_ms: row.get(4)?,
        stored_at_ms: row.get(5)?,
        issuer_certificate_der: row.get(6)?,
    })
}

#[async_trait]
impl CrlStore for SqliteStore {
    async fn get_crl(&self, source: &str) -> StoreResult<Option<CrlRecord>> {
        let source = source.to_owned();
        self.read_conn(move |conn| {
            conn.prepare_cached(
                "SELECT source, issuer_der, crl_der, this_update_ms, next_update_ms,
                        stored_at_ms, issuer_certificate_der
                 FROM crls WHERE source = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([&source], crl).optional())
            .map_err(sql_err)
        })
        .await
    }

    async fn put_crl(&self, record: &CrlRecord) -> StoreResult<bool> {
        let r = record.clone();
        self.write_tx(move |tx| {
            tx.prepare_cached(
                "INSERT INTO crls (source, issuer_der, crl_der, this_update_ms, next_update_ms,
                                   stored_at_ms, issuer_certificate_der)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (source) DO UPDATE SET
                     issuer_der = excluded.issuer_der, crl_der = excluded.crl_der,
                     this_update_ms = excluded.this_update_ms,
                     next_update_ms = excluded.next_update_ms,
                     stored_at_ms = excluded.stored_at_ms,
                     issuer_certificate_der = excluded.issuer_certificate_der
                 WHERE excluded.this_update_ms >= crls.this_update_ms",
            )
            .and_then(|mut stmt| {
                stmt.execute((
                    &r.source,
                    &r.issuer_der,
                    &r.crl_der,
                    r.this_update_ms,
                    r.next_update_ms,
                    r.stored_at_ms,
                    &r.issuer_certificate_der,
                ))
            })
            .map(|n| n > 0)
            .map_err(sql_err)
        })
        .await
    }
}
