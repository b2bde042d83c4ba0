//! The rules of an import: what a batch refers to ([`Keys`]), what is stored of it
//! ([`Known`]), and the decision of every item in order ([`plan`]), which yields the
//! rows to write ([`Writes`], borrowed from the items where it can).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::{CertificateImport, ImportItem, ImportLimits, ImportOutcome, ImportRefusal};
use crate::certificates::exclusive_conflict;
use crate::things::plan_membership_change;
use crate::{Attributes, CertificateRecord, NewPolicy, ThingGroupRecord, ThingRecord};

/// The names a batch refers to, each once, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Keys<'a> {
    pub policies: Vec<&'a str>,
    pub groups: Vec<&'a str>,
    /// Things of thing items: their record and memberships are needed.
    pub things: Vec<&'a str>,
    /// Other things certificates attach to: only whether they exist.
    pub thing_refs: Vec<&'a str>,
    pub certificates: Vec<&'a str>,
    pub cas: Vec<&'a str>,
}

/// A list of names, each once, in first-seen order.
#[derive(Default)]
struct Distinct<'a> {
    list: Vec<&'a str>,
    seen: HashSet<&'a str>,
}

impl<'a> Distinct<'a> {
    fn push(&mut self, name: &'a str) {
        if self.seen.insert(name) {
            self.list.push(name);
        }
    }
}

#[derive(Default)]
struct Collect<'a> {
    policies: Distinct<'a>,
    groups: Distinct<'a>,
    things: Distinct<'a>,
    thing_refs: Distinct<'a>,
    certificates: Distinct<'a>,
    cas: Distinct<'a>,
}

impl<'a> Collect<'a> {
    fn certificate(&mut self, c: &'a CertificateImport) {
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

impl<'a> Keys<'a> {
    pub fn of(items: &'a [ImportItem]) -> Keys<'a> {
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
pub(crate) struct KnownGroup<'a> {
    pub record: Cow<'a, ThingGroupRecord>,
    pub root: String,
    /// `(ancestor, depth)`, the group itself at depth 0 included.
    pub ancestors: Vec<(String, i32)>,
}

/// A thing as the rules need it.
#[derive(Debug, Clone)]
pub(crate) struct KnownThing<'a> {
    /// `None` when only its existence was read.
    pub record: Option<Cow<'a, ThingRecord>>,
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
pub(crate) struct Known<'a> {
    /// Name to default version document.
    pub policies: HashMap<String, Cow<'a, str>>,
    pub groups: HashMap<String, KnownGroup<'a>>,
    pub things: HashMap<String, KnownThing<'a>>,
    pub certificates: HashMap<String, KnownCertificate>,
    pub cas: HashSet<String>,
}

/// The rows a batch writes, in an order the foreign keys accept.
#[derive(Debug, Default)]
pub(crate) struct Writes<'a> {
    pub policies: Vec<&'a NewPolicy>,
    /// `(group, root)`, parents before children.
    pub groups: Vec<(&'a ThingGroupRecord, String)>,
    /// `(group, attribute, value)`.
    pub group_attributes: Vec<(&'a str, &'a str, &'a str)>,
    /// `(ancestor, group, depth)`.
    pub group_tree: Vec<(String, &'a str, i32)>,
    pub things: Vec<&'a ThingRecord>,
    /// `(thing, attribute, value)`.
    pub thing_attributes: Vec<(&'a str, &'a str, &'a str)>,
    /// `(thing, group, root)`.
    pub memberships: Vec<(&'a str, String, String)>,
    pub certificates: Vec<&'a CertificateRecord>,
    /// `(thing, certificate, attached_at_ms)`, all non-exclusive.
    pub principals: Vec<(&'a str, &'a str, i64)>,
    /// `(policy, target ARN, attached_at_ms)`.
    pub attachments: Vec<(&'a str, &'a str, i64)>,
}

fn attribute_rows<'a>(
    owner: &'a str,
    attributes: &'a Attributes,
) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> {
    attributes
        .iter()
        .map(move |(k, v)| (owner, k.as_str(), v.as_str()))
}

/// What accepting a certificate adds.
struct CertificatePlan<'a> {
    create: bool,
    principals: Vec<&'a str>,
    policies: Vec<&'a str>,
}

/// Decides every item in order against `known` (updated as it goes) and returns the
/// outcomes and the rows to write.
pub(crate) fn plan<'a>(
    items: &'a [ImportItem],
    limits: &ImportLimits,
    known: &mut Known<'a>,
) -> (Vec<ImportOutcome>, Writes<'a>) {
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

fn decide<'a>(
    item: &'a ImportItem,
    limits: &ImportLimits,
    known: &mut Known<'a>,
    writes: &mut Writes<'a>,
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
            known
                .policies
                .insert(p.name.clone(), Cow::Borrowed(&p.document));
            writes.policies.push(p);
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
                    .map(|(a, d)| (a.clone(), g.name.as_str(), *d)),
            );
            writes.groups.push((g, root.clone()));
            known.groups.insert(
                g.name.clone(),
                KnownGroup {
                    record: Cow::Borrowed(g),
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
                writes.things.push(record);
                writes
                    .thing_attributes
                    .extend(attribute_rows(&record.name, &record.attributes));
            }
            let entry = known
                .things
                .entry(record.name.clone())
                .or_insert_with(|| KnownThing {
                    record: Some(Cow::Borrowed(record)),
                    groups: Vec::new(),
                });
            for (group, root) in inserts {
                writes
                    .memberships
                    .push((&record.name, group.clone(), root.clone()));
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
fn check_certificate<'a>(
    c: &'a CertificateImport,
    limits: &ImportLimits,
    known: &Known<'_>,
    pending_thing: Option<&str>,
) -> Result<CertificatePlan<'a>, ImportRefusal> {
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
        principals.push(thing.as_str());
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
        policies.push(policy.as_str());
    }
    Ok(CertificatePlan {
        create: stored.is_none(),
        principals,
        policies,
    })
}

fn apply_certificate<'a>(
    c: &'a CertificateImport,
    p: CertificatePlan<'a>,
    known: &mut Known<'a>,
    writes: &mut Writes<'a>,
) {
    let r = &c.record;
    let at = r.created_at_ms;
    if p.create {
        writes.certificates.push(r);
    }
    let entry = known.certificates.entry(r.id.clone()).or_default();
    for thing in p.principals {
        writes.principals.push((thing, &r.id, at));
        entry.things.push((thing.to_owned(), false));
    }
    for policy in p.policies {
        writes.attachments.push((policy, &r.arn, at));
        entry.policies.push(policy.to_owned());
    }
}
