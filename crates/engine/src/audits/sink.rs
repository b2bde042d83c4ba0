//! What every check's evaluation shares: how a check ends, the sink its findings go
//! through, and how certificates are paged and filtered.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use palisade_model::RelatedResource;
use palisade_store::{
    AuditFindingRecord, CaCertificateRecord, CertificateKey, Scope, Store, StoreResult,
};

use super::catalogue::Check;
use super::findings::{self, Draft};
use crate::{Engine, EngineResult};

pub(super) const PAGE: usize = 1000;
const WRITE_BATCH: usize = 1000;
/// How a check ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Completed {
        total: i64,
        /// Every finding, suppressed or not.
        non_compliant: i64,
        /// The findings a suppression in force covered.
        suppressed: i64,
        /// Something the caller should know about how the check was evaluated.
        message: Option<String>,
    },
    Failed {
        error_code: String,
        message: String,
    },
}

/// Turns drafts into finding records and writes them in batches.
pub(super) struct Sink<'a> {
    engine: &'a Engine,
    scope: &'a Scope,
    task_id: &'a str,
    task_start_ms: i64,
    check: &'a Check,
    now_ms: i64,
    buffer: Vec<AuditFindingRecord>,
    /// Findings pushed so far, suppressed or not.
    pub(super) found: i64,
    /// Resource keys of the check's suppressions in force when the check started: read
    /// once, so a suppression created or expiring mid-check does not split its result.
    suppressed_keys: HashSet<String>,
    /// Findings pushed so far that a suppression covers.
    pub(super) suppressed: i64,
}

impl<'a> Sink<'a> {
    pub(super) fn new(
        engine: &'a Engine,
        scope: &'a Scope,
        (task_id, task_start_ms): (&'a str, i64),
        check: &'a Check,
        now_ms: i64,
        suppressed_keys: HashSet<String>,
    ) -> Sink<'a> {
        Sink {
            engine,
            scope,
            task_id,
            task_start_ms,
            check,
            now_ms,
            buffer: Vec::new(),
            found: 0,
            suppressed_keys,
            suppressed: 0,
        }
    }

    /// The id the finding `draft` gets when pushed (for rows written before it).
    pub(super) fn finding_id(&self, draft: &Draft) -> EngineResult<String> {
        Ok(findings::to_record(
            self.task_id,
            self.task_start_ms,
            self.check,
            self.now_ms,
            draft.clone(),
            false,
        )?
        .finding_id)
    }

    pub(super) fn task_id(&self) -> &str {
        self.task_id
    }

    pub(super) async fn push(&mut self, draft: Draft) -> EngineResult<()> {
        self.push_with(draft, None).await
    }

    /// [`push`](Self::push), the finding carrying `related` (shown by ListAuditFindings
    /// and DescribeAuditFinding).
    pub(super) async fn push_with(
        &mut self,
        draft: Draft,
        related: Option<Vec<RelatedResource>>,
    ) -> EngineResult<()> {
        // Most checks have no suppressions: skip computing the key for them.
        let is_suppressed = !self.suppressed_keys.is_empty()
            && self
                .suppressed_keys
                .contains(&findings::resource_key(&draft.resource));
        self.buffer.push(findings::to_record_with(
            self.task_id,
            self.task_start_ms,
            self.check,
            self.now_ms,
            draft,
            is_suppressed,
            related,
        )?);
        self.found += 1;
        self.suppressed += i64::from(is_suppressed);
        if self.buffer.len() >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> EngineResult<()> {
        if !self.buffer.is_empty() {
            self.engine
                .store()
                .insert_audit_findings(self.scope, &self.buffer)
                .await?;
            self.buffer.clear();
        }
        Ok(())
    }
}

/// Only certificates that can be used count (AWS: ACTIVE or PENDING_TRANSFER).
pub(super) fn in_use(status: &str) -> bool {
    palisade_store::status_in_use(status)
}

/// What the certificate checks need of the two kinds of certificate they read.
pub(super) trait Examined: Sized {
    fn status(&self) -> &str;
    /// Where the listing continues after this one.
    fn key(&self) -> CertificateKey;
    /// The next page of the scope's certificates of this kind, in creation order.
    fn page<'a>(
        store: &'a dyn Store,
        scope: &'a Scope,
        after: Option<&'a CertificateKey>,
    ) -> PageFuture<'a, Self>;
}

/// The store's (boxed, `Send`) future for a page.
pub(super) type PageFuture<'a, R> = Pin<Box<dyn Future<Output = StoreResult<Vec<R>>> + Send + 'a>>;

impl Examined for CaCertificateRecord {
    fn status(&self) -> &str {
        &self.status
    }
    fn key(&self) -> CertificateKey {
        (self.created_at_ms, self.id.clone())
    }
    fn page<'a>(
        store: &'a dyn Store,
        scope: &'a Scope,
        after: Option<&'a CertificateKey>,
    ) -> PageFuture<'a, Self> {
        store.list_ca_certificates(scope, None, after, false, PAGE)
    }
}
