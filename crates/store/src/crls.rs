//! Certificate revocation lists: fetched from distribution points and cached until their
//! nextUpdate, or imported by the operator.
//!
//! CRLs are public documents and the engine uses one only after its signature verifies
//! against the issuer's key, so the cache is shared by every account: keyed by where the
//! CRL came from, not by scope.

use palisade_store_macros::engines;

use crate::db::{DbResult, Row};
use crate::StoreResult;

/// One stored CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    /// Where it came from: the distribution point URL for a fetched CRL, or a key the
    /// engine derives from the issuer for an imported one.
    pub source: String,
    /// The CRL's issuer Name, DER.
    pub issuer_der: Vec<u8>,
    /// The whole CRL, DER.
    pub crl_der: Vec<u8>,
    /// thisUpdate and nextUpdate, milliseconds since the epoch.
    pub this_update_ms: i64,
    pub next_update_ms: Option<i64>,
    /// When it was fetched or imported.
    pub stored_at_ms: i64,
    /// The issuer's certificate (DER), when the operator gave it with an import.
    pub issuer_certificate_der: Option<Vec<u8>>,
}

macro_rules! crl_columns {
    () => {
        "source, issuer_der, crl_der, this_update_ms, next_update_ms, stored_at_ms, \
         issuer_certificate_der"
    };
}

fn crl(row: &Row<'_>) -> DbResult<CrlRecord> {
    Ok(from_row!(row => CrlRecord {
        source, issuer_der, crl_der, this_update_ms, next_update_ms, stored_at_ms,
        issuer_certificate_der
    }))
}

#[engines]
pub trait CrlStore: Send + Sync {
    async fn get_crl(&self, source: &str) -> StoreResult<Option<CrlRecord>> {
        self.read(async |db| {
            db.query_opt(
                sql!("SELECT ", crl_columns!(), " FROM crls WHERE source = $1"),
                &[&source],
                crl,
            )
            .await
        })
        .await
    }

    /// Stores the CRL under its source unless the one stored there has a later
    /// thisUpdate (the newest CRL wins; an equal one replaces it, refreshing
    /// `stored_at_ms`). Returns whether it was stored.
    async fn put_crl(&self, record: &CrlRecord) -> StoreResult<bool> {
        let r = record.clone();
        // One statement: the comparison with the stored thisUpdate and the write
        // happen under the row's lock, so concurrent fetches keep the newest.
        self.write_one(async move |db| {
            let n = db
                .execute(
                    sql!(
                        "INSERT INTO crls (",
                        crl_columns!(),
                        ")",
                        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        " ON CONFLICT (source) DO UPDATE SET",
                        " issuer_der = excluded.issuer_der, crl_der = excluded.crl_der,",
                        " this_update_ms = excluded.this_update_ms,",
                        " next_update_ms = excluded.next_update_ms,",
                        " stored_at_ms = excluded.stored_at_ms,",
                        " issuer_certificate_der = excluded.issuer_certificate_der",
                        " WHERE excluded.this_update_ms >= crls.this_update_ms"
                    ),
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
                .await?;
            Ok(n > 0)
        })
        .await
    }
}
