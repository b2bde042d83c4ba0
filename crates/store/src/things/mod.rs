//! Storage of the registry's things and static thing groups: records, the trait and
//! the membership rules here, the implementation for both engines in [`store`].
//!
//! Domain refusals that depend on what is stored (a missing thing, a version mismatch, a
//! membership rule) are answered as `Ok(Err(ThingRefusal))`, decided inside the same
//! transaction as the write they guard and before anything is written, so a refused
//! call changes nothing. `StoreError` stays for failures (and `AlreadyExists` for a taken
//! name, as elsewhere in the store).

use std::collections::BTreeMap;

mod store;

pub use store::ThingStore;

pub(crate) use store::{change_thing_groups_in, keep_group, lock_thing, THING_LOCK_SPACE};

/// Attribute names to values, ordered by name.
pub type Attributes = BTreeMap<String, String>;

/// A thing as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThingRecord {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub thing_type_name: Option<String>,
    pub billing_group_name: Option<String>,
    pub attributes: Attributes,
    /// 1 on creation, one more on every update.
    pub version: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// How an update changes a record's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeChange {
    /// The attributes become exactly these.
    Replace(Attributes),
    /// Sets the names given a value and removes the names given `None`; others stay.
    Merge(BTreeMap<String, Option<String>>),
}

impl AttributeChange {
    /// The attributes after applying this change to `current`.
    pub fn apply(&self, mut current: Attributes) -> Attributes {
        match self {
            AttributeChange::Replace(all) => all.clone(),
            AttributeChange::Merge(changes) => {
                for (name, value) in changes {
                    match value {
                        Some(v) => current.insert(name.clone(), v.clone()),
                        None => current.remove(name),
                    };
                }
                current
            }
        }
    }
}

/// Changes to a thing. Every update raises the version by one, even one that changes
/// nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThingUpdate {
    pub attributes: Option<AttributeChange>,
    pub remove_thing_type: bool,
    /// Refuse with `VersionMismatch` unless the thing is at this version.
    pub expected_version: Option<i64>,
    /// Refuse with `TooManyAttributes` if the thing would end up with more.
    pub max_attributes: usize,
    pub updated_at_ms: i64,
}

/// Which values of an attribute a listing keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// Any value: the thing only needs to have the attribute.
    Any,
    Exact(String),
    Prefix(String),
}

/// Keeps things that have the attribute `name` with a value matching `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeFilter {
    pub name: String,
    pub value: ValueMatch,
}

/// What `list_things` keeps; the default keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThingFilter {
    pub thing_type_name: Option<String>,
    pub attribute: Option<AttributeFilter>,
}

/// A static thing group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThingGroupRecord {
    pub name: String,
    pub id: String,
    pub arn: String,
    /// Set at creation and never changed, so a group's place in its hierarchy is fixed.
    pub parent_name: Option<String>,
    pub description: Option<String>,
    pub attributes: Attributes,
    pub version: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A group as DescribeThingGroup shows it: the record and its ancestors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThingGroupView {
    pub group: ThingGroupRecord,
    /// From the hierarchy's root down to the parent; empty for a root group.
    pub root_to_parent: Vec<GroupRef>,
}

/// A group's name and ARN, as listings return them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub name: String,
    pub arn: String,
}

/// Changes to a thing group; `None` leaves a field as it is. Every update raises the
/// version by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThingGroupUpdate {
    pub description: Option<String>,
    pub attributes: Option<AttributeChange>,
    pub expected_version: Option<i64>,
    pub max_attributes: usize,
    pub updated_at_ms: i64,
}

/// Which groups `list_thing_groups` walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSelection {
    All,
    /// The direct children of the named group.
    ChildrenOf(String),
    /// Every group below the named one, at any depth.
    DescendantsOf(String),
}

/// Why a call was refused (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThingRefusal {
    ThingNotFound(String),
    GroupNotFound(String),
    /// The caller's expected version is not the record's `current` one.
    VersionMismatch {
        current: i64,
    },
    /// The record would have more than `limit` attributes.
    TooManyAttributes {
        limit: usize,
    },
    /// The new group would sit deeper than `limit` levels (a root is level 1).
    TooDeep {
        limit: usize,
    },
    /// A group with child groups cannot be deleted.
    HasChildGroups,
    /// A thing with principals (certificates) attached cannot be deleted.
    HasPrincipals,
    /// The thing would be in more than `limit` groups.
    TooManyGroups {
        limit: usize,
    },
    /// The thing is (or would be) in `member_of`, which shares a hierarchy root with
    /// `requested`.
    SameHierarchy {
        member_of: String,
        requested: String,
    },
}

/// The decision of `change_thing_groups`, shared by the engines so both apply the same
/// rules: given the thing's current memberships and the named groups' roots, the groups
/// to insert (with their roots), or why not.
pub(crate) fn plan_membership_change(
    current: &[(String, String)],
    add: &[(String, String)],
    remove: &[String],
    max_groups: usize,
) -> Result<Vec<(String, String)>, ThingRefusal> {
    let mut kept: Vec<(String, String)> = current
        .iter()
        .filter(|(group, _)| !remove.contains(group))
        .cloned()
        .collect();
    let mut inserts = Vec::new();
    for (group, root) in add {
        if kept.iter().any(|(g, _)| g == group) {
            continue;
        }
        if let Some((other, _)) = kept.iter().find(|(_, r)| r == root) {
            return Err(ThingRefusal::SameHierarchy {
                member_of: other.clone(),
                requested: group.clone(),
            });
        }
        kept.push((group.clone(), root.clone()));
        inserts.push((group.clone(), root.clone()));
    }
    if kept.len() > max_groups {
        return Err(ThingRefusal::TooManyGroups { limit: max_groups });
    }
    Ok(inserts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn merge_sets_and_removes() {
        let current: Attributes = pairs(&[("a", "1"), ("b", "2")]).into_iter().collect();
        let change = AttributeChange::Merge(
            [
                ("a".to_string(), None),
                ("c".to_string(), Some("3".to_string())),
                ("gone".to_string(), None),
            ]
            .into_iter()
            .collect(),
        );
        let after = change.apply(current);
        assert_eq!(
            after,
            pairs(&[("b", "2"), ("c", "3")]).into_iter().collect()
        );
    }

    #[test]
    fn plan_rules() {
        let current = pairs(&[("g1", "r1"), ("g2", "r2")]);
        assert_eq!(
            plan_membership_change(&current, &pairs(&[("g1", "r1")]), &[], 2),
            Ok(vec![]),
            "already a member: nothing to do, even at the limit"
        );
        assert_eq!(
            plan_membership_change(&current, &pairs(&[("g3", "r1")]), &[], 10),
            Err(ThingRefusal::SameHierarchy {
                member_of: "g1".into(),
                requested: "g3".into()
            })
        );
        assert_eq!(
            plan_membership_change(&current, &pairs(&[("g3", "r1")]), &["g1".into()], 10),
            Ok(pairs(&[("g3", "r1")])),
            "removals happen first"
        );
        assert_eq!(
            plan_membership_change(&current, &pairs(&[("g3", "r3")]), &[], 2),
            Err(ThingRefusal::TooManyGroups { limit: 2 })
        );
        assert_eq!(
            plan_membership_change(&[], &pairs(&[("a", "r"), ("b", "r")]), &[], 10),
            Err(ThingRefusal::SameHierarchy {
                member_of: "a".into(),
                requested: "b".into()
            })
        );
    }
}
