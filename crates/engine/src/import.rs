//! Bulk import of a fleet from JSON Lines (docs/IMPORT.md): policies, thing groups,
//! things and certificates, with their relations.
//!
//! Every line is checked with the rules of the API operation it stands for (the model's
//! constraints through the generated `Validate`, then the same engine functions the
//! operations call) and written through [`ImportStore`](palisade_store::ImportStore),
//! whose engines apply the stored-state rules of the single-resource methods.
//!
//! The input is read once to learn each line's type, then once per phase, in this
//! order: policies, thing groups (parents before children), things (with the
//! certificate of a `certificatePem` shorthand), certificates. So a line may refer to a
//! resource defined further down the file, or already stored. Within a phase, lines
//! go in batches, each one store transaction; while one batch is written, the next is
//! parsed on `workers` threads (certificate parsing is the expensive part).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use palisade_model::{
    AttachPolicyRequest, AttachThingPrincipalRequest, AttributePayload, CertificateStatus,
    CreatePolicyRequest, CreateThingGroupRequest, CreateThingRequest, RegisterCertificateRequest,
    RegisterCertificateWithoutCARequest, ThingGroupProperties, UpdateThingGroupsForThingRequest,
    Validate,
};
use palisade_store::{
    CaCertificateRecord, CertificateImport, CertificateRecord, ImportItem, ImportLimits,
    ImportOutcome, ImportRefusal, NewPolicy, StoreError, ThingGroupRecord, ThingRecord,
    ThingRefusal,
};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::certificates::{
    certificate_arn, check_given_ca, parse_pem, registration_status, Parsed,
};
use crate::policies::{check_document, policy_arn};
use crate::principals::MAX_POLICIES_PER_TARGET;
use crate::required;
use crate::things::{
    distinct, initial_attributes, refused, thing_arn, thing_group_arn, Subject,
    MAX_GROUPS_PER_THING, MAX_HIERARCHY_DEPTH,
};
use crate::{Engine, EngineError, EngineResult, Scope};

/// Lines per batch (and store transaction) unless the caller says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 5_000;
/// The largest batch accepted.
pub const MAX_BATCH_SIZE: usize = 100_000;
/// Longer lines are refused without being held in memory.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Lines per batch, 1 to [`MAX_BATCH_SIZE`].
    pub batch_size: usize,
    /// Threads parsing lines (certificates) while the previous batch is written.
    pub workers: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Told about progress and errors as the import goes.
pub trait ImportObserver: Send {
    /// `done` of `total` lines are decided; `total` is known once the input was read
    /// through the first time.
    fn progress(&mut self, _done: u64, _total: u64) {}
    /// A line failed; errors come batch by batch, by line within a batch.
    fn error(&mut self, _error: LineError) {}
}

/// Observes nothing.
pub struct NoObserver;

impl ImportObserver for NoObserver {}

/// The kind of resource a line defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Policy,
    ThingGroup,
    Thing,
    Certificate,
}

impl Resource {
    /// The line's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Policy => "policy",
            Resource::ThingGroup => "thingGroup",
            Resource::Thing => "thing",
            Resource::Certificate => "certificate",
        }
    }

    fn parse(kind: &str) -> Option<Resource> {
        Some(match kind {
            "policy" => Resource::Policy,
            "thingGroup" => Resource::ThingGroup,
            "thing" => Resource::Thing,
            "certificate" => Resource::Certificate,
            _ => return None,
        })
    }
}

/// Why a line was not imported.
#[derive(Debug)]
pub struct LineError {
    /// From 1.
    pub line: u64,
    /// What the line defines, if it got that far.
    pub resource: Option<Resource>,
    /// The resource's name (a certificate's id), if known.
    pub name: Option<String>,
    /// The error the API operation would have answered.
    pub error: EngineError,
}

/// Resources per type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceCounts {
    pub policies: u64,
    pub thing_groups: u64,
    pub things: u64,
    pub certificates: u64,
}

impl ResourceCounts {
    fn add(&mut self, resource: Resource) {
        match resource {
            Resource::Policy => self.policies += 1,
            Resource::ThingGroup => self.thing_groups += 1,
            Resource::Thing => self.things += 1,
            Resource::Certificate => self.certificates += 1,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// Lines that were not blank.
    pub lines_read: u64,
    pub created: ResourceCounts,
    /// Identical resources that existed already (missing relations were added).
    pub unchanged: ResourceCounts,
    /// Lines reported as errors; nothing of such a line was written.
    pub failed_lines: u64,
}

// ------------------------------------------------------------------------------------
// The line format

/// What the first pass reads of every line.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyLine {
    #[serde(rename = "type")]
    _kind: IgnoredAny,
    name: Option<String>,
    document: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ThingGroupLine {
    #[serde(rename = "type")]
    _kind: IgnoredAny,
    name: Option<String>,
    parent: Option<String>,
    description: Option<String>,
    attributes: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ThingLine {
    #[serde(rename = "type")]
    _kind: IgnoredAny,
    name: Option<String>,
    attributes: Option<BTreeMap<String, String>>,
    groups: Option<Vec<String>>,
    certificate_pem: Option<String>,
    certificate_status: Option<CertificateStatus>,
    certificate_policies: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CertificateLine {
    #[serde(rename = "type")]
    _kind: IgnoredAny,
    pem: Option<String>,
    status: Option<CertificateStatus>,
    ca_pem: Option<String>,
    things: Option<Vec<String>>,
    policies: Option<Vec<String>>,
}

fn invalid_line(e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidRequest(format!("The line is not a valid import line: {e}"))
}

fn validated(request: &impl Validate) -> EngineResult<()> {
    request
        .validate()
        .map_err(|e| EngineError::InvalidRequest(e.message))
}

// ------------------------------------------------------------------------------------
// Reading lines

/// One line of the input, without its line break.
enum Line<'a> {
    Text(&'a [u8]),
    /// Longer than [`MAX_LINE_BYTES`]; skipped without being kept.
    TooLong,
}

struct Lines<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
}

impl<R: Read> Lines<R> {
    fn new(inner: R) -> Self {
        Self {
            reader: BufReader::with_capacity(1 << 20, inner),
            buf: Vec::new(),
        }
    }

    fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let (mut too_long, mut any) = (false, false);
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            any = true;
            let (take, end) = match memchr::memchr(b'\n', available) {
                Some(i) => (i, Some(i + 1)),
                None => (available.len(), None),
            };
            if !too_long {
                if self.buf.len() + take > MAX_LINE_BYTES {
                    too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&available[..take]);
                }
            }
            self.reader.consume(end.unwrap_or(take));
            if end.is_some() {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        if too_long {
            return Ok(Some(Line::TooLong));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(Line::Text(&self.buf)))
    }
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

fn read_failed(e: io::Error) -> EngineError {
    EngineError::InvalidRequest(format!("Reading the import failed: {e}"))
}

/// The input, shared by the passes (each seeks back to the start).
type Source = Arc<Mutex<Box<dyn ReadSeek>>>;

/// What an import reads from.
pub trait ReadSeek: Read + Seek + Send {}

impl<T: Read + Seek + Send> ReadSeek for T {}

// ------------------------------------------------------------------------------------
// Preparing lines (on worker threads)

/// A line read for a phase.
struct RawLine {
    line: u64,
    bytes: Vec<u8>,
}

/// A certificate parsed and checked, still to be tied to its CA (if it names one).
struct PendingCertificate {
    parsed: Parsed,
    status: String,
    /// The id of the CA given in `caPem`, to be looked up.
    ca_id: Option<String>,
    things: Vec<String>,
    policies: Vec<String>,
}

// Almost every line is `Ready`: boxing it would cost an allocation per line for nothing.
#[allow(clippy::large_enum_variant)]
enum Draft {
    Ready(ImportItem),
    /// A certificate (of a thing shorthand, or a certificate line) waiting for its CA.
    Certificate {
        thing: Option<(ThingRecord, Vec<String>)>,
        pending: Box<PendingCertificate>,
    },
}

/// A line after preparation.
struct Prepared {
    line: u64,
    resource: Option<Resource>,
    name: Option<String>,
    /// The certificate's ARN, for messages.
    arn: Option<String>,
    item: EngineResult<Draft>,
}

impl Prepared {
    fn failed(line: u64, resource: Option<Resource>, error: EngineError) -> Self {
        Prepared {
            line,
            resource,
            name: None,
            arn: None,
            item: Err(error),
        }
    }
}

/// Engine-side context the workers need.
struct Ctx {
    engine: Engine,
    scope: Scope,
}

impl Ctx {
    fn prepare(&self, raw: RawLine, resource: Resource) -> Prepared {
        let line = raw.line;
        let mut out = Prepared::failed(line, Some(resource), EngineError::Internal(String::new()));
        out.item = match resource {
            Resource::Policy => self.policy(&raw.bytes, &mut out),
            Resource::ThingGroup => self.group(&raw.bytes, &mut out),
            Resource::Thing => self.thing(&raw.bytes, &mut out),
            Resource::Certificate => self.certificate_line(&raw.bytes, &mut out),
        };
        out
    }

    fn policy(&self, bytes: &[u8], out: &mut Prepared) -> EngineResult<Draft> {
        let l: PolicyLine = serde_json::from_slice(bytes).map_err(invalid_line)?;
        out.name.clone_from(&l.name);
        let document = match l.document {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(v @ serde_json::Value::Object(_)) => Some(v.to_string()),
            Some(_) => {
                return Err(invalid_line(
                    "document must be a JSON object or a string holding one",
                ))
            }
        };
        let request = CreatePolicyRequest {
            policy_name: l.name,
            policy_document: document,
            tags: None,
        };
        validated(&request)?;
        let name = required(request.policy_name, "policyName")?;
        let document = required(request.policy_document, "policyDocument")?;
        check_document(&document)?;
        Ok(Draft::Ready(ImportItem::Policy(NewPolicy {
            arn: policy_arn(&self.scope, &name),
            name,
            document,
            generation_id: self.engine.generation_id(),
            created_at_ms: self.engine.now_ms(),
        })))
    }

    fn group(&self, bytes: &[u8], out: &mut Prepared) -> EngineResult<Draft> {
        let l: ThingGroupLine = serde_json::from_slice(bytes).map_err(invalid_line)?;
        out.name.clone_from(&l.name);
        let request = CreateThingGroupRequest {
            thing_group_name: l.name,
            parent_group_name: l.parent,
            thing_group_properties: Some(ThingGroupProperties {
                attribute_payload: l.attributes.map(|a| AttributePayload {
                    attributes: Some(a),
                    merge: None,
                }),
                thing_group_description: l.description,
            }),
            tags: None,
        };
        validated(&request)?;
        let name = required(request.thing_group_name, "thingGroupName")?;
        let properties = request.thing_group_properties.unwrap_or_default();
        let attributes = initial_attributes(properties.attribute_payload, Subject::Group(&name))?;
        let now = self.engine.now_ms();
        Ok(Draft::Ready(ImportItem::ThingGroup(ThingGroupRecord {
            arn: thing_group_arn(&self.scope, &name),
            id: self.engine.inner.ids.uuid(),
            name,
            parent_name: request.parent_group_name,
            description: properties.thing_group_description,
            attributes,
            version: 1,
            created_at_ms: now,
            updated_at_ms: now,
        })))
    }

    fn thing(&self, bytes: &[u8], out: &mut Prepared) -> EngineResult<Draft> {
        let l: ThingLine = serde_json::from_slice(bytes).map_err(invalid_line)?;
        out.name.clone_from(&l.name);
        let request = CreateThingRequest {
            thing_name: l.name,
            attribute_payload: l.attributes.map(|a| AttributePayload {
                attributes: Some(a),
                merge: None,
            }),
            billing_group_name: None,
            thing_type_name: None,
        };
        validated(&request)?;
        let name = required(request.thing_name, "thingName")?;
        let groups = match l.groups {
            None => Vec::new(),
            Some(groups) => {
                let request = UpdateThingGroupsForThingRequest {
                    thing_name: Some(name.clone()),
                    thing_groups_to_add: Some(groups),
                    thing_groups_to_remove: None,
                    override_dynamic_groups: None,
                };
                validated(&request)?;
                let groups = distinct(request.thing_groups_to_add.unwrap_or_default());
                if groups.len() > MAX_GROUPS_PER_THING {
                    return Err(refused(
                        ThingRefusal::TooManyGroups {
                            limit: MAX_GROUPS_PER_THING,
                        },
                        Subject::Thing(&name),
                        None,
                    ));
                }
                groups
            }
        };
        let attributes = initial_attributes(request.attribute_payload, Subject::Thing(&name))?;
        let now = self.engine.now_ms();
        let record = ThingRecord {
            arn: thing_arn(&self.scope, &name),
            id: self.engine.inner.ids.uuid(),
            name: name.clone(),
            thing_type_name: None,
            billing_group_name: None,
            attributes,
            version: 1,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let Some(pem) = l.certificate_pem else {
            if l.certificate_status.is_some() || l.certificate_policies.is_some() {
                return Err(invalid_line(
                    "certificateStatus and certificatePolicies need certificatePem",
                ));
            }
            return Ok(Draft::Ready(ImportItem::Thing {
                record,
                groups,
                certificate: None,
            }));
        };
        let pending = self.pending_certificate(
            Some(pem),
            l.certificate_status,
            None,
            vec![name],
            l.certificate_policies.unwrap_or_default(),
            out,
        )?;
        self.draft_certificate(Some((record, groups)), pending)
    }

    fn certificate_line(&self, bytes: &[u8], out: &mut Prepared) -> EngineResult<Draft> {
        let l: CertificateLine = serde_json::from_slice(bytes).map_err(invalid_line)?;
        let pending = self.pending_certificate(
            l.pem,
            l.status,
            l.ca_pem,
            l.things.unwrap_or_default(),
            l.policies.unwrap_or_default(),
            out,
        )?;
        out.name = Some(pending.parsed.id.clone());
        self.draft_certificate(None, pending)
    }

    /// RegisterCertificate(WithoutCA)'s checks, then AttachThingPrincipal's and
    /// AttachPolicy's model checks for each relation.
    fn pending_certificate(
        &self,
        pem: Option<String>,
        status: Option<CertificateStatus>,
        ca_pem: Option<String>,
        things: Vec<String>,
        policies: Vec<String>,
        out: &mut Prepared,
    ) -> EngineResult<PendingCertificate> {
        let (pem, status, ca_pem) = match ca_pem {
            Some(ca) => {
                let request = RegisterCertificateRequest {
                    certificate_pem: pem,
                    ca_certificate_pem: Some(ca),
                    set_as_active: None,
                    status,
                };
                validated(&request)?;
                (
                    request.certificate_pem,
                    request.status,
                    request.ca_certificate_pem,
                )
            }
            None => {
                let request = RegisterCertificateWithoutCARequest {
                    certificate_pem: pem,
                    status,
                };
                validated(&request)?;
                (request.certificate_pem, request.status, None)
            }
        };
        let pem = required(pem, "certificatePem")?;
        let status = registration_status(None, status)?;
        let parsed = parse_pem(&pem, "certificatePem")?;
        let arn = certificate_arn(&self.scope, &parsed.id);
        out.arn = Some(arn.clone());
        let ca_id = match ca_pem {
            Some(ca) => Some(parse_pem(&ca, "caCertificatePem")?.id),
            None => None,
        };
        for thing in &things {
            validated(&AttachThingPrincipalRequest {
                thing_name: Some(thing.clone()),
                principal: Some(arn.clone()),
                thing_principal_type: None,
            })?;
        }
        for policy in &policies {
            validated(&AttachPolicyRequest {
                policy_name: Some(policy.clone()),
                target: Some(arn.clone()),
            })?;
        }
        Ok(PendingCertificate {
            parsed,
            status,
            ca_id,
            things: distinct(things),
            policies: distinct(policies),
        })
    }

    /// Ready now, unless the certificate waits for its CA.
    fn draft_certificate(
        &self,
        thing: Option<(ThingRecord, Vec<String>)>,
        pending: PendingCertificate,
    ) -> EngineResult<Draft> {
        if pending.ca_id.is_some() {
            return Ok(Draft::Certificate {
                thing,
                pending: Box::new(pending),
            });
        }
        let certificate = self.finish_certificate(pending, None)?;
        Ok(Draft::Ready(item_with(thing, certificate)))
    }

    /// The certificate as RegisterCertificate(WithoutCA) stores it; `ca` is the
    /// registered CA with the id of the given `caPem`, if there is one.
    fn finish_certificate(
        &self,
        pending: PendingCertificate,
        ca: Option<CaCertificateRecord>,
    ) -> EngineResult<CertificateImport> {
        let (mode, ca_id) = match pending.ca_id {
            Some(_) => {
                let ca = check_given_ca(&pending.parsed.der, ca)?;
                (ca.certificate_mode, Some(ca.id))
            }
            None => ("SNI_ONLY".to_owned(), None),
        };
        let now = self.engine.now_ms();
        let Parsed { id, pem, facts, .. } = pending.parsed;
        Ok(CertificateImport {
            record: CertificateRecord {
                arn: certificate_arn(&self.scope, &id),
                id,
                pem,
                status: pending.status,
                certificate_mode: mode,
                ca_certificate_id: ca_id.clone(),
                issuer_certificate_id: ca_id,
                owned_by: self.scope.account_id.clone(),
                previous_owned_by: None,
                generation_id: self.engine.certificate_generation_id(),
                customer_version: 1,
                facts,
                created_at_ms: now,
                updated_at_ms: now,
            },
            things: pending.things,
            policies: pending.policies,
        })
    }
}

fn item_with(
    thing: Option<(ThingRecord, Vec<String>)>,
    certificate: CertificateImport,
) -> ImportItem {
    match thing {
        Some((record, groups)) => ImportItem::Thing {
            record,
            groups,
            certificate: Some(certificate),
        },
        None => ImportItem::Certificate(certificate),
    }
}

/// Runs `f` on every item on up to `workers` threads, keeping the order. A panic on an
/// item becomes that item's `on_panic` result rather than taking the import down.
fn parallel_map<T, U>(
    items: Vec<T>,
    workers: usize,
    f: impl Fn(T) -> U + Sync,
    on_panic: impl Fn(u64) -> U + Sync,
    line_of: impl Fn(&T) -> u64 + Sync,
) -> Vec<U>
where
    T: Send,
    U: Send,
{
    let run = |item: T| {
        let line = line_of(&item);
        std::panic::catch_unwind(AssertUnwindSafe(|| f(item))).unwrap_or_else(|_| on_panic(line))
    };
    if workers <= 1 || items.len() < 32 {
        return items.into_iter().map(run).collect();
    }
    let per = items.len().div_ceil(workers);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(workers);
    let mut iter = items.into_iter();
    loop {
        let chunk: Vec<T> = iter.by_ref().take(per).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let run = &run;
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| s.spawn(move || chunk.into_iter().map(run).collect::<Vec<U>>()))
            .collect();
        // `run` catches panics, so joining cannot fail; an empty result would only
        // drop lines, never invent them.
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

// ------------------------------------------------------------------------------------
// The phases

/// Per line of the input: 0 for lines no phase takes (blank, or failed in the first
/// pass), else the resource's phase.
fn phase_code(resource: Resource) -> u8 {
    match resource {
        Resource::Policy => 1,
        Resource::ThingGroup => 2,
        Resource::Thing => 3,
        Resource::Certificate => 4,
    }
}

/// Running totals and the observer.
struct Tally<'o> {
    summary: ImportSummary,
    done: u64,
    total: u64,
    observer: &'o mut dyn ImportObserver,
}

impl Tally<'_> {
    fn fail(&mut self, error: LineError) {
        self.summary.failed_lines += 1;
        self.observer.error(error);
    }
}

/// A store failure, once per line of the batch it failed.
fn batch_failure(e: &EngineError) -> EngineError {
    match e {
        EngineError::Unavailable(m) => EngineError::Unavailable(m.clone()),
        other => EngineError::Internal(other.to_string()),
    }
}

impl Engine {
    /// Imports the JSON Lines in `source` into `scope`; see the module docs and
    /// docs/IMPORT.md. Line failures are reported to `observer` and counted in the
    /// summary; `Err` only if the input itself cannot be read.
    pub async fn import<R>(
        &self,
        scope: &Scope,
        source: R,
        options: &ImportOptions,
        observer: &mut dyn ImportObserver,
    ) -> EngineResult<ImportSummary>
    where
        R: Read + Seek + Send + 'static,
    {
        if options.batch_size == 0 || options.batch_size > MAX_BATCH_SIZE {
            return Err(EngineError::InvalidRequest(format!(
                "The batch size must be between 1 and {MAX_BATCH_SIZE}."
            )));
        }
        let source: Source = Arc::new(Mutex::new(Box::new(source)));
        let (phases, scan_errors, lines_read) = {
            let source = Arc::clone(&source);
            tokio::task::spawn_blocking(move || scan(&source))
                .await
                .map_err(|e| EngineError::Internal(format!("import scan task failed: {e}")))??
        };
        let phases = Arc::new(phases);
        let total = lines_read;
        let mut tally = Tally {
            summary: ImportSummary {
                lines_read,
                ..ImportSummary::default()
            },
            done: scan_errors.len() as u64,
            total,
            observer,
        };
        for error in scan_errors {
            tally.fail(error);
        }
        tally.observer.progress(tally.done, total);
        let workers = options.workers.max(1);
        let ctx = Arc::new(Ctx {
            engine: self.clone(),
            scope: scope.clone(),
        });
        // Policies are cheap to prepare: one worker keeps them in file order.
        self.import_phase(
            &ctx,
            &source,
            &phases,
            Resource::Policy,
            options.batch_size,
            1,
            &mut tally,
        )
        .await?;
        self.import_groups(&ctx, &source, &phases, options.batch_size, &mut tally)
            .await?;
        for resource in [Resource::Thing, Resource::Certificate] {
            self.import_phase(
                &ctx,
                &source,
                &phases,
                resource,
                options.batch_size,
                workers,
                &mut tally,
            )
            .await?;
        }
        Ok(tally.summary)
    }

    /// Reads, prepares (in parallel, one batch ahead) and writes the lines of one phase.
    #[allow(clippy::too_many_arguments)]
    async fn import_phase(
        &self,
        ctx: &Arc<Ctx>,
        source: &Source,
        phases: &Arc<Vec<u8>>,
        resource: Resource,
        batch_size: usize,
        workers: usize,
        tally: &mut Tally<'_>,
    ) -> EngineResult<()> {
        let code = phase_code(resource);
        if !phases.contains(&code) {
            return Ok(());
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Prepared>>(1);
        let producer = {
            let (ctx, source, phases) = (Arc::clone(ctx), Arc::clone(source), Arc::clone(phases));
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || -> EngineResult<()> {
                let mut cas: HashMap<String, Option<CaCertificateRecord>> = HashMap::new();
                let mut guard = source.lock().unwrap_or_else(PoisonError::into_inner);
                guard.seek(SeekFrom::Start(0)).map_err(read_failed)?;
                let mut lines = Lines::new(&mut *guard);
                let mut batch = Vec::with_capacity(batch_size.min(1 << 16));
                let mut index = 0usize;
                loop {
                    let line = lines.next_line().map_err(read_failed)?;
                    let Some(line) = line else { break };
                    let n = index;
                    index += 1;
                    if phases.get(n) != Some(&code) {
                        continue;
                    }
                    let Line::Text(bytes) = line else { continue };
                    batch.push(RawLine {
                        line: n as u64 + 1,
                        bytes: bytes.to_vec(),
                    });
                    if batch.len() >= batch_size {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                        let prepared =
                            prepare_batch(&ctx, &handle, &mut cas, full, resource, workers);
                        if tx.blocking_send(prepared).is_err() {
                            return Ok(());
                        }
                    }
                }
                if !batch.is_empty() {
                    let prepared = prepare_batch(&ctx, &handle, &mut cas, batch, resource, workers);
                    let _ = tx.blocking_send(prepared);
                }
                Ok(())
            })
        };
        while let Some(prepared) = rx.recv().await {
            self.write_batch(&ctx.scope, prepared, tally).await;
        }
        producer
            .await
            .map_err(|e| EngineError::Internal(format!("import reader task failed: {e}")))?
    }

    /// Thing groups: all of them are read first, so parents can go before children
    /// whatever the file's order.
    async fn import_groups(
        &self,
        ctx: &Arc<Ctx>,
        source: &Source,
        phases: &Arc<Vec<u8>>,
        batch_size: usize,
        tally: &mut Tally<'_>,
    ) -> EngineResult<()> {
        let code = phase_code(Resource::ThingGroup);
        if !phases.contains(&code) {
            return Ok(());
        }
        let prepared = {
            let (ctx, source, phases) = (Arc::clone(ctx), Arc::clone(source), Arc::clone(phases));
            tokio::task::spawn_blocking(move || -> EngineResult<Vec<Prepared>> {
                let mut guard = source.lock().unwrap_or_else(PoisonError::into_inner);
                guard.seek(SeekFrom::Start(0)).map_err(read_failed)?;
                let mut lines = Lines::new(&mut *guard);
                let mut out = Vec::new();
                let mut index = 0usize;
                while let Some(line) = lines.next_line().map_err(read_failed)? {
                    let n = index;
                    index += 1;
                    if phases.get(n) != Some(&code) {
                        continue;
                    }
                    if let Line::Text(bytes) = line {
                        let raw = RawLine {
                            line: n as u64 + 1,
                            bytes: bytes.to_vec(),
                        };
                        out.push(ctx.prepare(raw, Resource::ThingGroup));
                    }
                }
                Ok(parents_first(out))
            })
            .await
            .map_err(|e| EngineError::Internal(format!("import reader task failed: {e}")))??
        };
        let mut rest = prepared;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(batch_size));
            self.write_batch(&ctx.scope, rest, tally).await;
            rest = tail;
        }
        Ok(())
    }

    /// Writes one batch's ready items and reports every line's fate.
    async fn write_batch(&self, scope: &Scope, prepared: Vec<Prepared>, tally: &mut Tally<'_>) {
        struct Meta {
            line: u64,
            resource: Resource,
            name: Option<String>,
            arn: Option<String>,
        }
        let lines = prepared.len() as u64;
        let mut errors = Vec::new();
        let mut metas = Vec::with_capacity(prepared.len());
        let mut items = Vec::with_capacity(prepared.len());
        for p in prepared {
            match (p.item, p.resource) {
                (Ok(Draft::Ready(item)), Some(resource)) => {
                    metas.push(Meta {
                        line: p.line,
                        resource,
                        name: p.name,
                        arn: p.arn,
                    });
                    items.push(item);
                }
                (Ok(Draft::Ready(_) | Draft::Certificate { .. }), _) => errors.push(LineError {
                    line: p.line,
                    resource: p.resource,
                    name: p.name,
                    error: EngineError::Internal("a line was left unprepared".into()),
                }),
                (Err(error), _) => errors.push(LineError {
                    line: p.line,
                    resource: p.resource,
                    name: p.name,
                    error,
                }),
            }
        }
        if !items.is_empty() {
            let limits = ImportLimits {
                max_group_depth: MAX_HIERARCHY_DEPTH,
                max_groups_per_thing: MAX_GROUPS_PER_THING,
                max_policies_per_target: MAX_POLICIES_PER_TARGET,
            };
            match self.store().import_batch(scope, items, &limits).await {
                Ok(outcomes) => {
                    self.registry_changed();
                    for (meta, outcome) in metas.into_iter().zip(outcomes) {
                        let s = &mut tally.summary;
                        match outcome {
                            ImportOutcome::Created => s.created.add(meta.resource),
                            ImportOutcome::Unchanged => s.unchanged.add(meta.resource),
                            ImportOutcome::ThingAndCertificate {
                                thing_created,
                                certificate_created,
                            } => {
                                let (t, c) = (thing_created, certificate_created);
                                if t { &mut s.created } else { &mut s.unchanged }
                                    .add(Resource::Thing);
                                if c { &mut s.created } else { &mut s.unchanged }
                                    .add(Resource::Certificate);
                            }
                            ImportOutcome::Refused(refusal) => {
                                let error = refusal_error(
                                    refusal,
                                    meta.resource,
                                    meta.name.as_deref().unwrap_or(""),
                                    meta.arn.as_deref().unwrap_or(""),
                                );
                                errors.push(LineError {
                                    line: meta.line,
                                    resource: Some(meta.resource),
                                    name: meta.name,
                                    error,
                                });
                            }
                        }
                    }
                }
                Err(e) => {
                    let e = EngineError::from(e);
                    tracing::warn!(error = %e, lines = metas.len(), "an import batch failed");
                    for meta in metas {
                        errors.push(LineError {
                            line: meta.line,
                            resource: Some(meta.resource),
                            name: meta.name,
                            error: batch_failure(&e),
                        });
                    }
                }
            }
        }
        errors.sort_by_key(|e| e.line);
        for error in errors {
            tally.fail(error);
        }
        tally.done += lines;
        tally.observer.progress(tally.done, tally.total);
    }
}

/// Prepares a batch: every line on the workers, then the certificates that name a CA,
/// once their CAs are looked up (each once per import).
fn prepare_batch(
    ctx: &Ctx,
    handle: &tokio::runtime::Handle,
    cas: &mut HashMap<String, Option<CaCertificateRecord>>,
    batch: Vec<RawLine>,
    resource: Resource,
    workers: usize,
) -> Vec<Prepared> {
    let internal = |line: u64| {
        Prepared::failed(
            line,
            Some(resource),
            EngineError::Internal("preparing the line panicked".into()),
        )
    };
    let prepared = parallel_map(
        batch,
        workers,
        |raw| ctx.prepare(raw, resource),
        internal,
        |raw| raw.line,
    );
    let waiting: Vec<&str> = prepared
        .iter()
        .filter_map(|p| match &p.item {
            Ok(Draft::Certificate { pending, .. }) => pending.ca_id.as_deref(),
            _ => None,
        })
        .collect();
    if waiting.is_empty() {
        return prepared;
    }
    let mut lookup_failed: Option<String> = None;
    for id in waiting {
        if cas.contains_key(id) {
            continue;
        }
        match handle.block_on(ctx.engine.store().get_ca_certificate(&ctx.scope, id)) {
            Ok(ca) => {
                cas.insert(id.to_owned(), ca);
            }
            Err(e) => {
                lookup_failed = Some(match e {
                    StoreError::Unavailable(m) => m,
                    other => other.to_string(),
                });
                break;
            }
        }
    }
    let cas = &*cas;
    let lookup_failed = &lookup_failed;
    parallel_map(
        prepared,
        workers,
        |mut p| {
            p.item = match p.item {
                Ok(Draft::Certificate { thing, pending }) => match lookup_failed {
                    Some(m) => Err(EngineError::Unavailable(m.clone())),
                    None => {
                        let ca = pending
                            .ca_id
                            .as_ref()
                            .and_then(|id| cas.get(id).cloned().flatten());
                        ctx.finish_certificate(*pending, ca)
                            .map(|c| Draft::Ready(item_with(thing, c)))
                    }
                },
                other => other,
            };
            p
        },
        internal,
        |p| p.line,
    )
}

/// The first pass: each line's type, the lines that fail already here, and how many
/// lines are not blank.
fn scan(source: &Source) -> EngineResult<(Vec<u8>, Vec<LineError>, u64)> {
    let mut guard = source.lock().unwrap_or_else(PoisonError::into_inner);
    guard.seek(SeekFrom::Start(0)).map_err(read_failed)?;
    let mut lines = Lines::new(&mut *guard);
    let mut phases = Vec::new();
    let mut errors = Vec::new();
    let mut read = 0u64;
    while let Some(line) = lines.next_line().map_err(read_failed)? {
        let number = phases.len() as u64 + 1;
        let bytes = match line {
            Line::TooLong => {
                read += 1;
                phases.push(0);
                errors.push(LineError {
                    line: number,
                    resource: None,
                    name: None,
                    error: invalid_line(format!("it is longer than {MAX_LINE_BYTES} bytes")),
                });
                continue;
            }
            Line::Text(bytes) => bytes,
        };
        if is_blank(bytes) {
            phases.push(0);
            continue;
        }
        read += 1;
        let head: Result<Head, _> = serde_json::from_slice(bytes);
        let resource = match head {
            Err(e) => Err(invalid_line(e)),
            Ok(Head { kind: None }) => Err(invalid_line("it has no \"type\"")),
            Ok(Head { kind: Some(kind) }) => Resource::parse(&kind).ok_or_else(|| {
                invalid_line(format!(
                    "unknown type \"{kind}\"; use policy, thingGroup, thing or certificate"
                ))
            }),
        };
        match resource {
            Ok(resource) => phases.push(phase_code(resource)),
            Err(error) => {
                phases.push(0);
                errors.push(LineError {
                    line: number,
                    resource: None,
                    name: None,
                    error,
                });
            }
        }
    }
    Ok((phases, errors, read))
}

/// Orders prepared groups so that a group defined in the input comes after its parent
/// (file order otherwise); a cycle is left in file order, where it fails.
fn parents_first(groups: Vec<Prepared>) -> Vec<Prepared> {
    let parent_of = |p: &Prepared| match &p.item {
        Ok(Draft::Ready(ImportItem::ThingGroup(g))) => g.parent_name.clone(),
        _ => None,
    };
    let mut first: HashMap<String, usize> = HashMap::new();
    for (i, p) in groups.iter().enumerate() {
        if let Ok(Draft::Ready(ImportItem::ThingGroup(g))) = &p.item {
            first.entry(g.name.clone()).or_insert(i);
        }
    }
    let parents: Vec<Option<usize>> = groups
        .iter()
        .map(|p| parent_of(p).and_then(|name| first.get(&name).copied()))
        .collect();
    let mut placed = vec![false; groups.len()];
    let mut order = Vec::with_capacity(groups.len());
    for i in 0..groups.len() {
        let mut chain = Vec::new();
        let mut at = Some(i);
        while let Some(c) = at {
            if placed[c] || chain.contains(&c) {
                break;
            }
            chain.push(c);
            at = parents[c];
        }
        for c in chain.into_iter().rev() {
            placed[c] = true;
            order.push(c);
        }
    }
    let mut slots: Vec<Option<Prepared>> = groups.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

/// The error the API operation would have answered for a store refusal.
fn refusal_error(refusal: ImportRefusal, resource: Resource, name: &str, arn: &str) -> EngineError {
    let subject = match resource {
        Resource::ThingGroup => Subject::Group(name),
        _ => Subject::Thing(name),
    };
    let thing = |r: ThingRefusal| refused(r, subject, None);
    match refusal {
        ImportRefusal::AlreadyExists => EngineError::AlreadyExists {
            message: match resource {
                Resource::Policy => format!(
                    "Policy {name} already exists with a different default version document."
                ),
                Resource::ThingGroup => {
                    format!("Thing group {name} already exists with a different configuration.")
                }
                Resource::Thing => {
                    format!("Thing {name} already exists with a different configuration.")
                }
                Resource::Certificate => {
                    format!("The certificate is already registered (id={name}).")
                }
            },
            resource_id: Some(name.to_owned()),
            resource_arn: None,
        },
        ImportRefusal::GroupNotFound(g) => thing(ThingRefusal::GroupNotFound(g)),
        ImportRefusal::ThingNotFound(t) => thing(ThingRefusal::ThingNotFound(t)),
        ImportRefusal::PolicyNotFound(p) => {
            EngineError::NotFound(format!("The policy {p} does not exist."))
        }
        ImportRefusal::CaNotFound => EngineError::CertificateValidation(
            "The CA certificate that signed this certificate is not registered.".into(),
        ),
        ImportRefusal::TooDeep { limit } => thing(ThingRefusal::TooDeep { limit }),
        ImportRefusal::TooManyGroups { limit } => thing(ThingRefusal::TooManyGroups { limit }),
        ImportRefusal::SameHierarchy {
            member_of,
            requested,
        } => thing(ThingRefusal::SameHierarchy {
            member_of,
            requested,
        }),
        ImportRefusal::Exclusive { thing } => EngineError::InvalidRequest(format!(
            "The principal {arn} is attached exclusively to thing {thing}."
        )),
        ImportRefusal::TooManyPolicies { limit } => EngineError::LimitExceeded(format!(
            "The target {arn} already has {limit} policies attached, the most it can have."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut reader = Lines::new(text);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push(match line {
                Line::Text(b) => Some(b.to_vec()),
                Line::TooLong => None,
            });
        }
        out
    }

    #[test]
    fn splits_lines_and_refuses_long_ones() {
        assert_eq!(
            lines(b"a\r\nb\n\nc"),
            vec![
                Some(b"a".to_vec()),
                Some(b"b".to_vec()),
                Some(Vec::new()),
                Some(b"c".to_vec())
            ]
        );
        let mut long = vec![b'x'; MAX_LINE_BYTES + 1];
        long.extend_from_slice(b"\nok\n");
        assert_eq!(lines(&long), vec![None, Some(b"ok".to_vec())]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn parallel_map_keeps_order_and_survives_panics() {
        let items: Vec<u64> = (0..1000).collect();
        let out = parallel_map(
            items,
            3,
            |i| {
                assert!(i != 500, "boom");
                i * 2
            },
            |line| line + 1_000_000,
            |i| *i,
        );
        assert_eq!(out.len(), 1000);
        assert_eq!(out[499], 998);
        assert_eq!(out[500], 1_000_500);
        assert_eq!(out[999], 1998);
    }
}
