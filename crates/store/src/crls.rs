//! Certificate revocation lists: fetched from distribution points and cached until their
//! nextUpdate, or imported by the operator.
//!
//! CRLs are public documents and the engine uses one only after its signature verifies
//! against the issuer's key, so the cache is shared by every account: keyed by where the
//! CRL came from, not by scope.

use async_trait::async_trait;

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

#[async_trait]
pub trait CrlStore: Send + Sync {
    async fn get_crl(&self, source: &str) -> StoreResult<Option<CrlRecord>>;
    /// Stores the CRL under its source unless the one stored there has a later
    /// thisUpdate (the newest CRL wins; an equal one replaces it, refreshing
    /// `stored_at_ms`). Returns whether it was stored.
    async fn put_crl(&self, record: &CrlRecord) -> StoreResult<bool>;
}
