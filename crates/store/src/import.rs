//! Bulk import of registry resources (policies, thing groups, things, certificates and
//! their relations) in batches: records and the trait; engines in sqlite/import.rs and
//! postgres/import.rs.
//!
//! A batch is written in one transaction. Both engines work the same way: read what the
//! batch refers to (a few set or point queries), decide every item in order against that
//! state with the rules below (shared here, so both engines decide alike and the rules of
//! the single-resource methods are reused, not copied), then write all the rows the
//! accepted items need with statements prepared once per batch (multi-row inserts on
//! PostgreSQL). An item is all or nothing: a refused item writes nothing and the items
//! after it still go in; a [`StoreError`](crate::StoreError) means nothing of the batch
//! was written.
//!
//! Items are decided in order, so an item sees what the items before it in the batch
//! created (a thing created earlier in the batch can be given a certificate later).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use crate::certificates::exclusive_conflict;
use crate::things::plan_membership_change;
use crate::{
    Attributes, CertificateRecord, NewPolicy, Scope, StoreResult, ThingGroupRecord, ThingRecord,
    ThingRefusal,
};

/// A certificate to register, with the things it is attached to (non-exclusively) and
/// the policies attached to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateImport {
    pub record: CertificateRecord,
    pub things: Vec<String>,
    pub policies: Vec<String>,
}

/// One line of an import: a resource and its relations, written all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportItem {
    /// A policy with its first version.
    Policy(NewPolicy),
    /// A static thing group under `record.parent_name`, if any.
    ThingGroup(ThingGroupRecord),
    /// A thing, the groups it is added to, and optionally a certificate of its own
    /// (whose `things` should name it).
    Thing {
        record: ThingRecord,
        groups: Vec<String>,
        certificate: Option<CertificateImport>,
    },
    Certificate(CertificateImport),
}

/// The quotas an import applies, as the single-resource methods take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLimits {
    /// Levels of a thing group hierarchy (a root is level 1).
    pub max_group_depth: usize,
    /// Groups one thing can be in.
    pub max_groups_per_thing: usize,
    /// Policies attached to one certificate.
    pub max_policies_per_target: usize,
}

/// What became of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The resource was created, with its relations.
    Created,
    /// An identical resource existed: it was left as it is, and the relations the item
    /// names that were missing were added (none removed, none changed).
    Unchanged,
    /// A thing item with a certificate was accepted: whether the thing and whether the
    /// certificate were created (`false`: an identical one existed, as for `Unchanged`).
    ThingAndCertificate {
        thing_created: bool,
        certificate_created: bool,
    },
    /// Nothing of the item was written.
    Refused(ImportRefusal),
}

/// Why an item was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportRefusal {
    /// A resource of that name (or certificate of that id) exists with a different
    /// configuration (attributes, parent, description, default policy document).
    AlreadyExists,
    /// A named thing group does not exist (a parent, or a group to add a thing to).
    GroupNotFound(String),
    /// A thing a certificate is to be attached to does not exist.
    ThingNotFound(String),
    /// A policy to attach does not exist.
    PolicyNotFound(String),
    /// The CA the certificate is registered under does not exist.
    CaNotFound,
    /// The new group would sit deeper than `limit` levels.
    TooDeep { limit: usize },
    /// The thing would be in more than `limit` groups.
    TooManyGroups { limit: usize },
    /// The thing is (or would be) in `member_of`, in the same hierarchy as `requested`.
    SameHierarchy {
        member_of: String,
        requested: String,
    },
    /// The certificate is attached exclusively to `thing`.
    Exclusive { thing: String },
    /// The certificate would have more than `limit` policies.
    TooManyPolicies { limit: usize },
}

impl From<ThingRefusal> for ImportRefusal {
    fn from(r: ThingRefusal) -> Self {
        match r {
            ThingRefusal::GroupNotFound(g) => ImportRefusal::GroupNotFound(g),
            ThingRefusal::ThingNotFound(t) => ImportRefusal::ThingNotFound(t),
            ThingRefusal::TooDeep { limit } => ImportRefusal::TooDeep { limit },
            ThingRefusal::TooManyGroups { limit } => ImportRefusal::TooManyGroups { limit },
            ThingRefusal::SameHierarchy {
                member_of,
                requested,
            } => ImportRefusal::SameHierarchy {
                member_of,
                requested,
            },
            // Not produced by an import's rules; the closest meaning.
            ThingRefusal::VersionMismatch { .. }
            | ThingRefusal::TooManyAttributes { .. }
            | ThingRefusal::HasChildGroups
            | ThingRefusal::HasPrincipals => ImportRefusal::AlreadyExists,
        }
    }
}

/// Bulk writes for imports.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Applies `items` in order in one transaction (see the module docs) and returns one
    /// outcome per item, in order.
    async fn import_batch(
        &self,
        scope: &Scope,
        items: Vec<ImportItem>,
        limits: &ImportLimits,
    ) -> StoreResult<Vec<ImportOutcome>>;
}

impl ThingRecord {
    /// Whether `other` asks for exactly this thing (CreateThing is idempotent for such a
    /// request, and an import leaves such a thing as it is).
    pub fn same_configuration(&self, other: &ThingRecord) -> bool {
        self.attributes == other.attributes
            && self.thing_type_name == other.thing_type_name
            && self.billing_group_name == other.billing_group_name
    }
}

impl ThingGroupRecord {
    /// Whether `other` asks for exactly this group (as [`ThingRecord::same_configuration`]).
    pub fn same_configuration(&self, other: &ThingGroupRecord) -> bool {
        self.parent_name == other.parent_name
            && self.description == other.description
            && self.attributes == other.attributes
    }
}

// ------------------------------------------------------------------------------------
// What an engine reads before deciding, and what it writes after.

/// The names a batch refers to, each once, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    pub policies: Vec<String>,
    pub groups: Vec<String>,
    /// Things of thing items: their record and memberships are needed.
    pub things: Vec<String>,
    /// Other things certificates attach to: only whether they exist.
    pub thing_refs: Vec<String>,
    pub certificates: Vec<String>,
    pub cas: Vec<String>,
}

/// A list of names, each once, in first-seen order.
#[derive(Default)]
struct Distinct {
    list: Vec<String>,
    seen: HashSet<String>,
}

impl Distinct {
    fn push(&mut self, name: &str) {
        if self.seen.insert(name.to_owned()) {
            self.list.push(name.to_owned());
        }
    }
}

#[derive(Default)]
struct Collect {
    policies: Distinct,
    groups: Distinct,
    things: Distinct,
    thing_refs: Distinct,
    certificates: Distinct,
    cas: Distinct,
}

impl Collect {
    fn certificate(&mut self, c: &CertificateImport) {
        self.certificates.push(&c.record.id);
        if let Some(ca) = &c.record.ca_certificate_id {
            self.cas.push(ca);
        }
        for t in &c.things {
            self.thing_refs.push(t);
        }
        for p in &c.policies {
            self.policies.push(p);
        }
    }
}

impl Keys {
    pub fn of(items: &[ImportItem]) -> Keys {
        let mut c = Collect::default();
        for item in items {
            match item {
                ImportItem::Policy(p) => c.policies.push(&p.name),
                ImportItem::ThingGroup(g) => {
                    c.groups.push(&g.name);
                    if let Some(parent) = &g.parent_name {
                        c.groups.push(parent);
                    }
                }
                ImportItem::Thing {
                    record,
                    groups,
                    certificate,
                } => {
                    c.things.push(&record.name);
                    for g in groups {
                        c.groups.push(g);
                    }
                    if let Some(cert) = certificate {
                        c.certificate(cert);
                    }
                }
                ImportItem::Certificate(cert) => c.certificate(cert),
            }
        }
        // A thing whose full record is read anyway needs no separate existence check.
        let things = c.things.seen;
        let mut thing_refs = c.thing_refs.list;
        thing_refs.retain(|t| !things.contains(t));
        Keys {
            policies: c.policies.list,
            groups: c.groups.list,
            things: c.things.list,
            thing_refs,
            certificates: c.certificates.list,
            cas: c.cas.list,
        }
    }
}

/// A group as the rules need it.
#[derive(Debug, Clone)]
pub(crate) struct KnownGroup {
    pub record: ThingGroupRecord,
    pub root: String,
    /// `(ancestor, depth)`, the group itself at depth 0 included.
    pub ancestors: Vec<(String, i64)>,
}

/// A thing as the rules need it.
#[derive(Debug, Clone)]
pub(crate) struct KnownThing {
    /// `None` when only its existence was read.
    pub record: Option<ThingRecord>,
    /// `(group, root)` of its memberships; read with the record.
    pub groups: Vec<(String, String)>,
}

/// A stored certificate's relations.
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownCertificate {
    /// `(thing, exclusive)`.
    pub things: Vec<(String, bool)>,
    /// Names of the policies attached to it.
    pub policies: Vec<String>,
}

/// The stored state a batch refers to (only what exists is present), updated as items
/// are decided.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// Name to default version document.
    pub policies: HashMap<String, String>,
    pub groups: HashMap<String, KnownGroup>,
    pub things: HashMap<String, KnownThing>,
    pub certificates: HashMap<String, KnownCertificate>,
    pub cas: HashSet<String>,
}

/// The rows a batch writes, in an order the foreign keys accept.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    pub policies: Vec<NewPolicy>,
    /// `(group, root)`, parents before children.
    pub groups: Vec<(ThingGroupRecord, String)>,
    /// `(group, attribute, value)`.
    pub group_attributes: Vec<(String, String, String)>,
    /// `(ancestor, group, depth)`.
    pub group_tree: Vec<(String, String, i64)>,
    pub things: Vec<ThingRecord>,
    /// `(thing, attribute, value)`.
    pub thing_attributes: Vec<(String, String, String)>,
    /// `(thing, group, root)`.
    pub memberships: Vec<(String, String, String)>,
    pub certificates: Vec<CertificateRecord>,
    /// `(thing, certificate, attached_at_ms)`, all non-exclusive.
    pub principals: Vec<(String, String, i64)>,
    /// `(policy, target ARN, attached_at_ms)`.
    pub attachments: Vec<(String, String, i64)>,
}

fn attribute_rows(owner: &str, attributes: &Attributes) -> Vec<(String, String, String)> {
    attributes
        .iter()
        .map(|(k, v)| (owner.to_owned(), k.clone(), v.clone()))
        .collect()
}

/// What accepting a certificate adds.
struct CertificatePlan {
    create: bool,
    principals: Vec<String>,
    policies: Vec<String>,
}

/// Decides every item in order against `known` (updated as it goes) and returns the
/// outcomes and the rows to write.
pub(crate) fn plan(
    items: &[ImportItem],
    limits: &ImportLimits,
    known: &mut Known,
) -> (Vec<ImportOutcome>, Writes) {
    let mut writes = Writes::default();
    let outcomes = items
        .iter()
        .map(|item| match decide(item, limits, known, &mut writes) {
            Ok(outcome) => outcome,
            Err(refusal) => ImportOutcome::Refused(refusal),
        })
        .collect();
    (outcomes, writes)
}

fn decide(
    item: &ImportItem,
    limits: &ImportLimits,
    known: &mut Known,
    writes: &mut Writes,
) -> Result<ImportOutcome, ImportRefusal> {
    match item {
        ImportItem::Policy(p) => {
            if let Some(document) = known.policies.get(&p.name) {
                return if *document == p.document {
                    Ok(ImportOutcome::Unchanged)
                } else {
                    Err(ImportRefusal::AlreadyExists)
                };
            }
            known.policies.insert(p.name.clone(), p.document.clone());
            writes.policies.push(p.clone());
            Ok(ImportOutcome::Created)
        }
        ImportItem::ThingGroup(g) => {
            if let Some(existing) = known.groups.get(&g.name) {
                return if existing.record.same_configuration(g) {
                    Ok(ImportOutcome::Unchanged)
                } else {
                    Err(ImportRefusal::AlreadyExists)
                };
            }
            let mut ancestors = vec![(g.name.clone(), 0)];
            let root = match &g.parent_name {
                None => g.name.clone(),
                Some(parent) => {
                    let p = known
                        .groups
                        .get(parent)
                        .ok_or_else(|| ImportRefusal::GroupNotFound(parent.clone()))?;
                    // As create_thing_group: the parent's levels are its ancestor rows.
                    if p.ancestors.len() >= limits.max_group_depth {
                        return Err(ImportRefusal::TooDeep {
                            limit: limits.max_group_depth,
                        });
                    }
                    ancestors.extend(p.ancestors.iter().map(|(a, d)| (a.clone(), d + 1)));
                    p.root.clone()
                }
            };
            writes
                .group_attributes
                .extend(attribute_rows(&g.name, &g.attributes));
            writes.group_tree.extend(
                ancestors
                    .iter()
                    .map(|(a, d)| (a.clone(), g.name.clone(), *d)),
            );
            writes.groups.push((g.clone(), root.clone()));
            known.groups.insert(
                g.name.clone(),
                KnownGroup {
                    record: g.clone(),
                    root,
                    ancestors,
                },
            );
            Ok(ImportOutcome::Created)
        }
        ImportItem::Thing {
            record,
            groups,
            certificate,
        } => {
            let existing = known.things.get(&record.name);
            let current: &[(String, String)] = match existing {
                Some(KnownThing {
                    record: Some(stored),
                    groups,
                }) => {
                    if !stored.same_configuration(record) {
                        return Err(ImportRefusal::AlreadyExists);
                    }
                    groups
                }
                // Only thing items read things in full, and this is one.
                Some(KnownThing { record: None, .. }) => return Err(ImportRefusal::AlreadyExists),
                None => &[],
            };
            let create = existing.is_none();
            let mut adds = Vec::with_capacity(groups.len());
            for group in groups {
                let g = known
                    .groups
                    .get(group)
                    .ok_or_else(|| ImportRefusal::GroupNotFound(group.clone()))?;
                adds.push((group.clone(), g.root.clone()));
            }
            let inserts = plan_membership_change(current, &adds, &[], limits.max_groups_per_thing)?;
            let cert_plan = match certificate {
                Some(c) => Some(check_certificate(
                    c,
                    limits,
                    known,
                    create.then_some(record.name.as_str()),
                )?),
                None => None,
            };
            // Accepted: record it all.
            if create {
                writes.things.push(record.clone());
                writes
                    .thing_attributes
                    .extend(attribute_rows(&record.name, &record.attributes));
            }
            let entry = known
                .things
                .entry(record.name.clone())
                .or_insert_with(|| KnownThing {
                    record: Some(record.clone()),
                    groups: Vec::new(),
                });
            for (group, root) in inserts {
                writes
                    .memberships
                    .push((record.name.clone(), group.clone(), root.clone()));
                entry.groups.push((group, root));
            }
            if let (Some(c), Some(p)) = (certificate, cert_plan) {
                let certificate_created = p.create;
                apply_certificate(c, p, known, writes);
                return Ok(ImportOutcome::ThingAndCertificate {
                    thing_created: create,
                    certificate_created,
                });
            }
            Ok(if create {
                ImportOutcome::Created
            } else {
                ImportOutcome::Unchanged
            })
        }
        ImportItem::Certificate(c) => {
            let p = check_certificate(c, limits, known, None)?;
            let created = p.create;
            apply_certificate(c, p, known, writes);
            Ok(if created {
                ImportOutcome::Created
            } else {
                ImportOutcome::Unchanged
            })
        }
    }
}

/// The rules of register_certificate, attach_thing_principal and attach_policy, for a
/// certificate and its relations; `pending_thing` is a thing the same item creates.
fn check_certificate(
    c: &CertificateImport,
    limits: &ImportLimits,
    known: &Known,
    pending_thing: Option<&str>,
) -> Result<CertificatePlan, ImportRefusal> {
    let r = &c.record;
    let stored = known.certificates.get(&r.id);
    if stored.is_none() {
        if let Some(ca) = &r.ca_certificate_id {
            if !known.cas.contains(ca) {
                return Err(ImportRefusal::CaNotFound);
            }
        }
    }
    let empty = KnownCertificate::default();
    let current = stored.unwrap_or(&empty);
    let mut attached: Vec<(String, bool)> = current.things.clone();
    let mut principals = Vec::new();
    for thing in &c.things {
        if pending_thing != Some(thing.as_str()) && !known.things.contains_key(thing) {
            return Err(ImportRefusal::ThingNotFound(thing.clone()));
        }
        if attached.iter().any(|(t, _)| t == thing) {
            // Attached already: left as it is.
            continue;
        }
        if let Some(conflict) = exclusive_conflict(&attached, false) {
            let crate::PrincipalRefusal::Exclusive { thing } = conflict else {
                return Err(ImportRefusal::AlreadyExists);
            };
            return Err(ImportRefusal::Exclusive { thing });
        }
        attached.push((thing.clone(), false));
        principals.push(thing.clone());
    }
    let mut policies_now: Vec<&str> = current.policies.iter().map(String::as_str).collect();
    let mut policies = Vec::new();
    for policy in &c.policies {
        if !known.policies.contains_key(policy) {
            return Err(ImportRefusal::PolicyNotFound(policy.clone()));
        }
        if policies_now.contains(&policy.as_str()) {
            continue;
        }
        if policies_now.len() >= limits.max_policies_per_target {
            return Err(ImportRefusal::TooManyPolicies {
                limit: limits.max_policies_per_target,
            });
        }
        policies_now.push(policy);
        policies.push(policy.clone());
    }
    Ok(CertificatePlan {
        create: stored.is_none(),
        principals,
        policies,
    })
}

fn apply_certificate(
    c: &CertificateImport,
    p: CertificatePlan,
    known: &mut Known,
    writes: &mut Writes,
) {
    let r = &c.record;
    let at = r.created_at_ms;
    if p.create {
        writes.certificates.push(r.clone());
    }
    let entry = known.certificates.entry(r.id.clone()).or_default();
    for thing in p.principals {
        writes.principals.push((thing.clone(), r.id.clone(), at));
        entry.things.push((thing, false));
    }
    for policy in p.policies {
        writes.attachments.push((policy.clone(), r.arn.clone(), at));
        entry.policies.push(policy);
    }
}
