//! What stays PostgreSQL's own of certificates: the device certificate pass of an audit
//! (the trait's default).

use super::PostgresStore;
use crate::certificates::{self};
use crate::{CertificatePages, Scope};

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
