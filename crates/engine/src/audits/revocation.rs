//! The three revocation checks (REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK,
//! REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK,
//! INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK), where their CRLs come
//! from, and `palisade crl import`.
//!
//! A certificate is judged against the CRLs of its issuer: the ones at its CRL
//! distribution points (fetched over HTTP and cached in the store until their
//! nextUpdate) and the one the operator imported for that issuer. A CRL counts only if
//! it names the certificate's issuer and its signature verifies with the issuer's key:
//! a registered CA certificate with that subject, else the certificate imported with
//! the CRL, else the certificate at the checked certificate's AIA caIssuers URL (which
//! must itself verify the checked certificate's signature). Of the usable CRLs the one
//! with the newest thisUpdate decides (several distribution points of one certificate
//! are mirrors of one CRL; an import and a fetch are two copies of it).
//!
//! Everything is resolved once per (issuer, distribution points) group and per source
//! for the duration of one check, so the scan over a large fleet is a hash lookup per
//! certificate. Outcomes when CRLs are missing:
//!
//! - a certificate without distribution points whose issuer has no imported CRL has
//!   nothing to be revoked by: it is compliant;
//! - a cached CRL past its nextUpdate that cannot be refreshed (fetch failed, or
//!   fetching is off) is still used: a stale CRL still lists every revocation up to its
//!   thisUpdate. This is logged;
//! - when no usable CRL is left for a certificate (unreachable with nothing cached, a
//!   signature that does not verify, an unknown issuer key), the check scans on, records
//!   the findings it can, and ends FAILED with error code `CRL_NOT_AVAILABLE` and a
//!   message naming each distribution point and why, rather than calling unchecked
//!   certificates compliant.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use palisade_crl::{Crl, IssuerCertificate};
use palisade_model::{
    IssuerCertificateIdentifier, RelatedResource, ResourceIdentifier, ResourceType,
};
use palisade_store::{
    CaCertificateRecord, CertificateInUse, CertificateKey, CrlRecord, RelatedResourceRecord, Scope,
};
use sha2::{Digest, Sha256};

use super::findings::Draft;
use super::sink::{in_use, Examined, Outcome, Sink, PAGE};
use crate::{Engine, EngineError, EngineResult};

/// The error code of a revocation check that could not get a usable CRL for some
/// certificates.
pub(super) const CRL_NOT_AVAILABLE: &str = "CRL_NOT_AVAILABLE";
const REVOKED_BY_ISSUER: &str = "CERTIFICATE_REVOKED_BY_ISSUER";
const INTERMEDIATE_REVOKED: &str = "INTERMEDIATE_CA_REVOKED_BY_ISSUER";

/// Larger CRLs are refused: a million entries take about 40 MB.
const MAX_CRL_BYTES: usize = 64 << 20;
const MAX_CERTIFICATE_BYTES: usize = 1 << 20;
/// Problems named in a failed check's message; the rest are counted.
const NAMED_PROBLEMS: usize = 5;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache key of the operator's imported CRL for the issuer with this subject.
fn imported_source(issuer_der: &[u8]) -> String {
    format!("imported:{}", hex(&Sha256::digest(issuer_der)))
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .ok()
        .map(|(_, block)| block.contents)
}

/// What decides a group of certificates.
#[derive(Clone)]
enum Verdict {
    /// No distribution point and no imported CRL: nothing can revoke them.
    NoSource,
    Crl(Arc<Crl>),
    /// There should be a CRL, but none is usable.
    Unavailable,
}

/// The CRLs and issuer keys of one check run.
pub(super) struct Resolver<'a> {
    engine: &'a Engine,
    scope: &'a Scope,
    now_ms: i64,
    /// Parsed CRLs by source (URL or imported key); `None` when there is none.
    crls: HashMap<String, Option<Arc<Crl>>>,
    /// Why a source has no CRL, for the failure message.
    source_problems: HashMap<String, String>,
    /// Keys that may sign the CRLs of the issuer with this subject, and whether AIA
    /// was tried for it.
    keys: HashMap<Vec<u8>, (Vec<Vec<u8>>, bool)>,
    /// Verdicts by issuer subject, then distribution points.
    groups: HashMap<Vec<u8>, HashMap<Vec<String>, Verdict>>,
    /// What made certificates uncheckable, and why (first reason wins).
    problems: BTreeMap<String, String>,
    unchecked: i64,
    /// Sources whose CRL was used past its nextUpdate, for the check's message.
    stale: BTreeSet<String>,
}

impl<'a> Resolver<'a> {
    pub(super) fn new(engine: &'a Engine, scope: &'a Scope) -> Self {
        Resolver {
            engine,
            scope,
            now_ms: engine.now_ms(),
            crls: HashMap::new(),
            source_problems: HashMap::new(),
            keys: HashMap::new(),
            groups: HashMap::new(),
            problems: BTreeMap::new(),
            unchecked: 0,
            stale: BTreeSet::new(),
        }
    }

    /// The verdict for a certificate issued by `issuer_der` with these distribution
    /// points; `pem` is read only if the issuer's key must be found through AIA.
    async fn verdict(
        &mut self,
        issuer_der: &[u8],
        cdps: &[String],
        pem: &str,
    ) -> EngineResult<Verdict> {
        if let Some(v) = self.groups.get(issuer_der).and_then(|g| g.get(cdps)) {
            return Ok(v.clone());
        }
        let v = self.resolve(issuer_der, cdps, pem).await?;
        self.groups
            .entry(issuer_der.to_vec())
            .or_default()
            .insert(cdps.to_vec(), v.clone());
        Ok(v)
    }

    async fn resolve(
        &mut self,
        issuer_der: &[u8],
        cdps: &[String],
        pem: &str,
    ) -> EngineResult<Verdict> {
        let imported_key = imported_source(issuer_der);
        let imported = self.imported(issuer_der, &imported_key).await?;
        if cdps.is_empty() && imported.is_none() {
            return Ok(Verdict::NoSource);
        }
        let keys = self.issuer_keys(issuer_der, pem).await?;
        let mut best: Option<Arc<Crl>> = None;
        let mut why: Vec<(String, String)> = Vec::new();
        let mut candidates: Vec<(String, Option<Arc<Crl>>)> = Vec::new();
        for url in cdps {
            candidates.push((url.clone(), self.fetched(url).await?));
        }
        if imported.is_some() {
            candidates.push((
                format!("the imported CRL of {}", name_text(issuer_der)),
                imported,
            ));
        }
        for (what, crl) in candidates {
            let Some(crl) = crl else {
                let reason = self
                    .source_problems
                    .get(&what)
                    .cloned()
                    .unwrap_or_else(|| "no CRL could be obtained".to_owned());
                why.push((what, reason));
                continue;
            };
            match usable(&crl, issuer_der, &keys) {
                Ok(()) => {
                    if best
                        .as_ref()
                        .is_none_or(|b| crl.this_update_ms() > b.this_update_ms())
                    {
                        best = Some(crl);
                    }
                }
                Err(reason) => {
                    tracing::warn!(source = %what, %reason, "CRL not used");
                    why.push((what, reason));
                }
            }
        }
        Ok(match best {
            Some(crl) => Verdict::Crl(crl),
            None => {
                for (what, reason) in why {
                    self.problems.entry(what).or_insert(reason);
                }
                Verdict::Unavailable
            }
        })
    }

    /// The imported CRL of the issuer; its issuer certificate, when imported with it,
    /// joins the issuer's keys.
    async fn imported(&mut self, issuer_der: &[u8], key: &str) -> EngineResult<Option<Arc<Crl>>> {
        if let Some(crl) = self.crls.get(key) {
            return Ok(crl.clone());
        }
        let record = self.engine.store().get_crl(key).await?;
        let crl = match record {
            None => None,
            Some(r) => {
                if let Some(cert) = r
                    .issuer_certificate_der
                    .as_deref()
                    .and_then(|der| IssuerCertificate::parse(der).ok())
                    .filter(|c| c.subject_der() == issuer_der)
                {
                    let entry = self.keys.entry(issuer_der.to_vec()).or_default();
                    if !entry.0.iter().any(|k| k == cert.spki_der()) {
                        entry.0.push(cert.spki_der().to_vec());
                    }
                }
                match Crl::from_der(r.crl_der) {
                    Ok(crl) => Some(Arc::new(crl)),
                    Err(e) => {
                        self.source_problems.insert(
                            format!("the imported CRL of {}", name_text(issuer_der)),
                            e.to_string(),
                        );
                        None
                    }
                }
            }
        };
        self.crls.insert(key.to_owned(), crl.clone());
        Ok(crl)
    }

    /// The CRL at a distribution point: the cached one while it is current, else a
    /// fresh fetch (stored for every node and later checks), else the cached one
    /// however old.
    async fn fetched(&mut self, url: &str) -> EngineResult<Option<Arc<Crl>>> {
        if let Some(crl) = self.crls.get(url) {
            return Ok(crl.clone());
        }
        let cached = match self.engine.store().get_crl(url).await? {
            Some(r) => match Crl::from_der(r.crl_der) {
                Ok(crl) => Some(crl),
                Err(e) => {
                    tracing::warn!(%url, error = %e, "cached CRL unreadable; fetching it again");
                    None
                }
            },
            None => None,
        };
        let current = cached
            .as_ref()
            .is_some_and(|c| !c.is_expired_at(self.now_ms));
        let settings = self.engine.audit_settings().crl.clone();
        let crl = if current {
            cached
        } else if settings.fetch {
            match self.download(url, settings.fetch_timeout).await? {
                Ok(fresh) => {
                    // The store keeps the newest; an older answer loses to the cache.
                    match cached {
                        Some(old) if old.this_update_ms() > fresh.this_update_ms() => Some(old),
                        _ => Some(fresh),
                    }
                }
                Err(reason) => match cached {
                    Some(old) => {
                        tracing::warn!(%url, %reason, next_update = ?old.next_update_ms(), "CRL past its nextUpdate could not be refreshed; using it");
                        self.stale.insert(url.to_owned());
                        Some(old)
                    }
                    None => {
                        self.source_problems.insert(url.to_owned(), reason);
                        None
                    }
                },
            }
        } else {
            match cached {
                Some(old) => {
                    tracing::warn!(%url, "CRL past its nextUpdate and fetching is off; using it");
                    self.stale.insert(url.to_owned());
                    Some(old)
                }
                None => {
                    self.source_problems.insert(
                        url.to_owned(),
                        "CRL fetching is off (--crl-fetch false) and no CRL from it is cached; \
                         import the issuer's CRL with `palisade crl import`"
                            .to_owned(),
                    );
                    None
                }
            }
        };
        let crl = crl.map(Arc::new);
        self.crls.insert(url.to_owned(), crl.clone());
        Ok(crl)
    }

    /// Fetches and parses a CRL and caches it in the store. The inner error says why
    /// there is no CRL; the outer one is the store's.
    async fn download(
        &self,
        url: &str,
        timeout: std::time::Duration,
    ) -> EngineResult<Result<Crl, String>> {
        let bytes = match palisade_crl::fetch(url, timeout, MAX_CRL_BYTES).await {
            Ok(b) => b,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let crl = match Crl::parse(&bytes) {
            Ok(c) if c.is_delta() => {
                return Ok(Err(
                    "it serves a delta CRL, which lists only changes; a full CRL is needed"
                        .to_owned(),
                ))
            }
            Ok(c) => c,
            Err(e) => return Ok(Err(format!("what it serves is unusable: {e}"))),
        };
        self.engine
            .store()
            .put_crl(&CrlRecord {
                source: url.to_owned(),
                issuer_der: crl.issuer_der().to_vec(),
                crl_der: crl.der().to_vec(),
                this_update_ms: crl.this_update_ms(),
                next_update_ms: crl.next_update_ms(),
                stored_at_ms: self.now_ms,
                issuer_certificate_der: None,
            })
            .await?;
        Ok(Ok(crl))
    }

    /// Keys that may sign the CRLs of the issuer `issuer_der`: registered CA
    /// certificates with that subject, an imported issuer certificate, and as a last
    /// resort the certificate at the AIA caIssuers URL of the certificate `pem`.
    async fn issuer_keys(&mut self, issuer_der: &[u8], pem: &str) -> EngineResult<Vec<Vec<u8>>> {
        if !self.keys.get(issuer_der).is_some_and(|(_, tried)| *tried) {
            let registered = self
                .engine
                .store()
                .find_ca_certificates_by_subject(self.scope, issuer_der)
                .await?;
            let entry = self.keys.entry(issuer_der.to_vec()).or_default();
            for ca in registered {
                if !entry.0.contains(&ca.facts.public_key_der) {
                    entry.0.push(ca.facts.public_key_der);
                }
            }
            // Marks the registry as read; AIA is tried below at most once too.
            entry.1 = true;
            if entry.0.is_empty() && self.engine.audit_settings().crl.fetch {
                if let Some(key) = self.aia_key(issuer_der, pem).await {
                    self.keys
                        .entry(issuer_der.to_vec())
                        .or_default()
                        .0
                        .push(key);
                }
            }
        }
        Ok(self
            .keys
            .get(issuer_der)
            .map(|(k, _)| k.clone())
            .unwrap_or_default())
    }

    /// The key of the issuer certificate found at the AIA caIssuers URLs of `pem`,
    /// accepted only if its subject is `issuer_der` and it signed `pem`.
    async fn aia_key(&self, issuer_der: &[u8], pem: &str) -> Option<Vec<u8>> {
        let der = pem_der(pem)?;
        let timeout = self.engine.audit_settings().crl.fetch_timeout;
        for url in palisade_crl::ca_issuers_urls(&der) {
            let issuer = match palisade_crl::fetch(&url, timeout, MAX_CERTIFICATE_BYTES).await {
                Ok(bytes) => IssuerCertificate::parse(&bytes),
                Err(e) => Err(e),
            };
            match issuer {
                Ok(c)
                    if c.subject_der() == issuer_der
                        && palisade_crl::is_signed_by(&der, c.spki_der()) =>
                {
                    return Some(c.spki_der().to_vec());
                }
                Ok(_) => {
                    tracing::warn!(%url, "AIA caIssuers certificate is not the issuer; ignored")
                }
                Err(e) => tracing::warn!(%url, error = %e, "AIA caIssuers fetch failed"),
            }
        }
        None
    }

    /// How the scan ended: a failure if certificates were left unchecked, else a note
    /// naming the CRLs used past their nextUpdate, if any.
    pub(super) fn scan(&self, total: i64, what: &str) -> Scan {
        if self.unchecked > 0 {
            return Scan {
                total,
                failure: Some(self.failure(what)),
                note: None,
            };
        }
        let note = (!self.stale.is_empty()).then(|| {
            let named: Vec<&str> = self
                .stale
                .iter()
                .take(NAMED_PROBLEMS)
                .map(String::as_str)
                .collect();
            let more = self.stale.len().saturating_sub(NAMED_PROBLEMS);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "Evaluated with CRLs past their nextUpdate that could not be refreshed: {}{more}.",
                named.join(", ")
            )
        });
        Scan {
            total,
            failure: None,
            note,
        }
    }

    /// The failure of a check that left `self.unchecked` certificates unchecked.
    fn failure(&self, what: &str) -> Outcome {
        let mut named: Vec<String> = self
            .problems
            .iter()
            .take(NAMED_PROBLEMS)
            .map(|(source, why)| format!("{source}: {why}"))
            .collect();
        if self.problems.len() > NAMED_PROBLEMS {
            named.push(format!("and {} more", self.problems.len() - NAMED_PROBLEMS));
        }
        Outcome::Failed {
            error_code: CRL_NOT_AVAILABLE.to_owned(),
            message: format!(
                "{} {what} could not be checked for revocation because no usable CRL could be \
                 obtained ({}). Findings were recorded for those that could.",
                self.unchecked,
                named.join("; ")
            ),
        }
    }
}

/// Whether `crl` may judge certificates of the issuer `issuer_der`: it names that
/// issuer, is a full CRL and verifies with one of its keys.
fn usable(crl: &Crl, issuer_der: &[u8], keys: &[Vec<u8>]) -> Result<(), String> {
    if crl.is_delta() {
        return Err("it is a delta CRL, which lists only changes".to_owned());
    }
    if crl.issuer_der() != issuer_der {
        return Err(format!(
            "it was issued by {}, not by {}",
            crl.issuer_name(),
            name_text(issuer_der)
        ));
    }
    if keys.is_empty() {
        return Err(format!(
            "the key of its issuer {} is unknown: register the issuer as a CA certificate, \
             import the CRL with --issuer-certificate, or serve the issuer certificate at \
             the certificates' AIA caIssuers URL",
            name_text(issuer_der)
        ));
    }
    let mut last = String::new();
    for key in keys {
        match crl.verify_signature(key) {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("its {last}"))
}

fn name_text(der: &[u8]) -> String {
    use x509_parser::prelude::FromDer;
    match x509_parser::x509::X509Name::from_der(der) {
        Ok((_, name)) => name.to_string(),
        Err(_) => format!("(unreadable name {})", hex(der)),
    }
}

/// REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK's verdict on one in-use device
/// certificate (the shared device certificate pass in evaluate.rs calls it): a finding
/// if its issuer's CRL lists it. Uncheckable certificates are counted in `resolver`.
pub(super) async fn judge_device_certificate(
    resolver: &mut Resolver<'_>,
    cert: &CertificateInUse,
) -> EngineResult<Option<Draft>> {
    let f = &cert.facts;
    Ok(
        match resolver
            .verdict(&f.issuer_der, &f.crl_distribution_points, &cert.pem)
            .await?
        {
            Verdict::NoSource => None,
            Verdict::Unavailable => {
                resolver.unchecked += 1;
                None
            }
            Verdict::Crl(crl) if crl.is_revoked(&f.serial_number) => Some(Draft {
                resource: ResourceIdentifier {
                    device_certificate_id: Some(cert.id.clone()),
                    ..ResourceIdentifier::default()
                },
                reason_code: REVOKED_BY_ISSUER,
                reason: revoked_reason(&f.serial_number, &crl, "Certificate"),
            }),
            Verdict::Crl(_) => None,
        },
    )
}

/// How a revocation scan ended.
pub(super) struct Scan {
    total: i64,
    failure: Option<Outcome>,
    /// Said in the check's message when it completes.
    pub(super) note: Option<String>,
}

impl Scan {
    /// The examined count, or the check's failure once the findings found are written.
    pub(super) async fn into_result(
        self,
        sink: &mut Sink<'_>,
    ) -> EngineResult<Result<i64, Outcome>> {
        match self.failure {
            None => Ok(Ok(self.total)),
            Some(failed) => {
                sink.flush().await?;
                Ok(Err(failed))
            }
        }
    }
}

fn revoked_reason(serial: &str, crl: &Crl, what: &str) -> String {
    format!(
        "{what} with serial number {serial} is revoked by its issuer ({}; CRL of {}), but is \
         still active.",
        crl.issuer_name(),
        rfc3339(crl.this_update_ms())
    )
}

/// Whether a certificate is its own issuer (a root), which no CRL can revoke.
fn self_issued(c: &CaCertificateRecord) -> bool {
    c.facts.subject_der == c.facts.issuer_der
}

impl Engine {
    /// REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK over the in-use CA certificates.
    pub(super) async fn revoked_ca_certificates(
        &self,
        scope: &Scope,
        sink: &mut Sink<'_>,
    ) -> EngineResult<Scan> {
        let mut resolver = Resolver::new(self, scope);
        let mut total = 0;
        for ca in self.all_ca_certificates(scope).await? {
            if !in_use(&ca.status) {
                continue;
            }
            total += 1;
            if self_issued(&ca) {
                continue;
            }
            let f = &ca.facts;
            match resolver
                .verdict(&f.issuer_der, &f.crl_distribution_points, &ca.pem)
                .await?
            {
                Verdict::NoSource => {}
                Verdict::Unavailable => resolver.unchecked += 1,
                Verdict::Crl(crl) if crl.is_revoked(&f.serial_number) => {
                    sink.push(Draft {
                        resource: ResourceIdentifier {
                            ca_certificate_id: Some(ca.id.clone()),
                            ..ResourceIdentifier::default()
                        },
                        reason_code: REVOKED_BY_ISSUER,
                        reason: revoked_reason(&f.serial_number, &crl, "CA certificate"),
                    })
                    .await?;
                }
                Verdict::Crl(_) => {}
            }
        }
        Ok(resolver.scan(total, "CA certificate(s)"))
    }

    /// INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK: every registered CA
    /// that is not a root (whatever its own status) is checked against its issuer's
    /// CRL; a revoked one is a finding if device certificates registered under it are
    /// still in use. Those are its related resources, listed only through
    /// ListRelatedResourcesForAuditFinding (written before the finding, page by page).
    pub(super) async fn revoked_intermediate_cas(
        &self,
        scope: &Scope,
        sink: &mut Sink<'_>,
    ) -> EngineResult<Scan> {
        let mut resolver = Resolver::new(self, scope);
        let mut total = 0;
        let mut revoked: Vec<(CaCertificateRecord, Arc<Crl>)> = Vec::new();
        for ca in self.all_ca_certificates(scope).await? {
            if self_issued(&ca) {
                continue;
            }
            total += 1;
            let f = &ca.facts;
            match resolver
                .verdict(&f.issuer_der, &f.crl_distribution_points, &ca.pem)
                .await?
            {
                Verdict::NoSource => {}
                Verdict::Unavailable => resolver.unchecked += 1,
                Verdict::Crl(crl) if crl.is_revoked(&f.serial_number) => revoked.push((ca, crl)),
                Verdict::Crl(_) => {}
            }
        }
        for (ca, crl) in revoked {
            let resource = ResourceIdentifier {
                issuer_certificate_identifier: Some(IssuerCertificateIdentifier {
                    issuer_certificate_subject: Some(ca.facts.subject.clone()),
                    issuer_id: Some(ca.id.clone()),
                    issuer_certificate_serial_number: Some(ca.facts.serial_number.clone()),
                }),
                ..ResourceIdentifier::default()
            };
            let mut draft = Draft {
                resource,
                reason_code: INTERMEDIATE_REVOKED,
                reason: String::new(),
            };
            let finding_id = sink.finding_id(&draft)?;
            let active = self
                .write_signed_devices(scope, sink.task_id(), &finding_id, &ca.id)
                .await?;
            if active == 0 {
                continue;
            }
            draft.reason = format!(
                "Intermediate CA {} (serial number {}) is revoked by its issuer ({}; CRL of {}), \
                 but {active} device certificate(s) it signed are still active.",
                ca.facts.subject,
                ca.facts.serial_number,
                crl.issuer_name(),
                rfc3339(crl.this_update_ms())
            );
            sink.push(draft).await?;
        }
        Ok(resolver.scan(total, "intermediate CA certificate(s)"))
    }

    /// Writes the in-use device certificates registered under `ca_id` as related
    /// resources of `finding_id`; how many there are.
    async fn write_signed_devices(
        &self,
        scope: &Scope,
        task_id: &str,
        finding_id: &str,
        ca_id: &str,
    ) -> EngineResult<i64> {
        let mut after: Option<CertificateKey> = None;
        let mut count = 0;
        loop {
            let page = self
                .store()
                .list_certificates(scope, Some(ca_id), after.as_ref(), false, PAGE)
                .await?;
            let rows = page
                .iter()
                .filter(|c| in_use(&c.status))
                .map(|c| {
                    let resource = RelatedResource {
                        additional_info: None,
                        resource_identifier: Some(ResourceIdentifier {
                            device_certificate_id: Some(c.id.clone()),
                            device_certificate_arn: Some(c.arn.clone()),
                            ..ResourceIdentifier::default()
                        }),
                        resource_type: Some(ResourceType::from_wire("DEVICE_CERTIFICATE")),
                    };
                    Ok(RelatedResourceRecord {
                        sort_key: c.id.clone(),
                        resource_json: serde_json::to_string(&resource)
                            .map_err(|e| EngineError::Internal(e.to_string()))?,
                    })
                })
                .collect::<EngineResult<Vec<_>>>()?;
            count += rows.len() as i64;
            self.store()
                .insert_related_resources(scope, task_id, finding_id, &rows)
                .await?;
            match page.last() {
                Some(last) if page.len() == PAGE => {
                    after = Some((last.created_at_ms, last.id.clone()))
                }
                _ => return Ok(count),
            }
        }
    }

    /// Every CA certificate of the scope (there are at most a few thousand).
    async fn all_ca_certificates(&self, scope: &Scope) -> EngineResult<Vec<CaCertificateRecord>> {
        let mut out: Vec<CaCertificateRecord> = Vec::new();
        loop {
            let after = out.last().map(|c| c.key());
            let page = CaCertificateRecord::page(self.store(), scope, after.as_ref()).await?;
            let more = page.len() == PAGE;
            out.extend(page);
            if !more {
                return Ok(out);
            }
        }
    }

    /// `palisade crl import`: stores the operator's CRL for its issuer, where the
    /// revocation checks use it beside (or, without network reach, instead of) the CRLs
    /// at distribution points. With the issuer's certificate (PEM or DER), the CRL must
    /// verify with it now, and the certificate is kept as the issuer's key. A CRL older
    /// than the one already imported for the issuer is not stored (`stored: false`).
    pub async fn import_crl(
        &self,
        crl: &[u8],
        issuer_certificate: Option<&[u8]>,
    ) -> EngineResult<ImportedCrl> {
        let crl = Crl::parse(crl).map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
        if crl.is_delta() {
            return Err(EngineError::InvalidRequest(
                "The CRL is a delta CRL, which lists only changes since a base CRL; import a \
                 full CRL."
                    .into(),
            ));
        }
        let issuer = issuer_certificate
            .map(|bytes| {
                let cert = IssuerCertificate::parse(bytes).map_err(|e| {
                    EngineError::InvalidRequest(format!("--issuer-certificate: {e}"))
                })?;
                crl.verify_issued_by(cert.subject_der(), cert.spki_der())
                    .map_err(|e| {
                        EngineError::InvalidRequest(format!(
                            "The CRL does not verify with --issuer-certificate: {e}"
                        ))
                    })?;
                Ok::<_, EngineError>(cert)
            })
            .transpose()?;
        let stored = self
            .store()
            .put_crl(&CrlRecord {
                source: imported_source(crl.issuer_der()),
                issuer_der: crl.issuer_der().to_vec(),
                crl_der: crl.der().to_vec(),
                this_update_ms: crl.this_update_ms(),
                next_update_ms: crl.next_update_ms(),
                stored_at_ms: self.now_ms(),
                issuer_certificate_der: issuer.as_ref().map(|c| c.der().to_vec()),
            })
            .await?;
        Ok(ImportedCrl {
            issuer: crl.issuer_name(),
            this_update_ms: crl.this_update_ms(),
            next_update_ms: crl.next_update_ms(),
            revoked_count: crl.revoked_count(),
            verified: issuer.is_some(),
            stored,
        })
    }
}

/// What `import_crl` stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedCrl {
    /// The issuer's name, as text.
    pub issuer: String,
    pub this_update_ms: i64,
    pub next_update_ms: Option<i64>,
    pub revoked_count: usize,
    /// Whether it was verified against an issuer certificate given with it.
    pub verified: bool,
    /// False if a CRL of the issuer with a later thisUpdate was imported before.
    pub stored: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_sources_are_per_issuer() {
        let a = imported_source(b"issuer a");
        assert!(a.starts_with("imported:") && a.len() == "imported:".len() + 64);
        assert_eq!(a, imported_source(b"issuer a"));
        assert_ne!(a, imported_source(b"issuer b"));
    }

    #[test]
    fn times_read_as_rfc3339() {
        assert_eq!(rfc3339(1_735_689_600_123), "2025-01-01T00:00:00Z");
    }
}
