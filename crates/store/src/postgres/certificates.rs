//! What stays PostgreSQL's own of certificates: the device certificate pass of an audit
//! (the trait's default), and the helpers the mitigation stages and the import, not on
//! the seam yet, still call with their own transaction; each runs the shared one
//! (`crate::certificates`).

use deadpool_postgres::Transaction;

use super::error::Fail;
use super::PostgresStore;
use crate::certificates::{self, StatusChange};
use crate::db::Db;
use crate::{
    CaCertificateRecord, CaCertificateUpdate, CertificateOutcome, CertificatePages, Scope,
};

pub(super) use crate::certificates::POLICY_TARGET_LOCK_SPACE;

impl PostgresStore {
    /// `CertificateStore::certificates_in_use`: the trait's default, page by page over
    /// the listing (each page reads every state with its row, so the clock is not
    /// needed).
    pub(crate) fn certificate_pages_in_use<'a>(
        &'a self,
        scope: &'a Scope,
        page: usize,
        _now_ms: i64,
    ) -> CertificatePages<'a> {
        certificates::pages_over_listing(self, scope, page)
    }
}

pub(super) async fn set_certificate_statuses(
    tx: &Transaction<'_>,
    scope: &Scope,
    requests: &[(&str, String)],
    status: &str,
    now_ms: i64,
) -> Result<Vec<CertificateOutcome<StatusChange>>, Fail> {
    certificates::set_certificate_statuses(&Db::PgTx(tx), scope, requests, status, now_ms).await
}

pub(super) async fn update_ca_certificate_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
    update: &CaCertificateUpdate,
) -> Result<Option<CaCertificateRecord>, Fail> {
    certificates::update_ca_certificate_in(&Db::PgTx(tx), scope, id, update).await
}

pub(super) async fn lock_ca_certificate_status(
    tx: &Transaction<'_>,
    scope: &Scope,
    id: &str,
) -> Result<Option<String>, Fail> {
    certificates::lock_ca_certificate_status(&Db::PgTx(tx), scope, id).await
}

pub(super) async fn principal_things(
    tx: &Transaction<'_>,
    scope: &Scope,
    certificate_id: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, Fail> {
    certificates::principal_things(&Db::PgTx(tx), scope, certificate_id, after, limit).await
}
