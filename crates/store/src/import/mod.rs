//! Bulk import of registry resources (policies, thing groups, things, certificates and
//! their relations) in batches: records and the trait here, the rules in [`plan`], the
//! implementation for both engines in [`store`] (PostgreSQL's statistics schedule in
//! postgres/import.rs).
//!
//! A batch is written in one transaction: read what the batch refers to (a few list
//! queries), decide every item in order against that state with the rules of [`plan`]
//! (which reuse those of the single-resource methods), then write all the rows the
//! accepted items need (multi-row inserts on PostgreSQL). An item is all or nothing: a refused item writes nothing and the items
//! after it still go in; a [`StoreError`](crate::StoreError) means nothing of the batch
//! was written.
//!
//! Items are decided in order, so an item sees what the items before it in the batch
//! created (a thing created earlier in the batch can be given a certificate later).

use crate::{CertificateRecord, NewPolicy, ThingGroupRecord, ThingRecord, ThingRefusal};

mod plan;
mod store;

pub use store::ImportStore;

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
