//! Conformance cases for the registry's things; instantiated by
//! [`things_conformance_tests!`](crate::things_conformance_tests) next to `conformance_tests!`.

use std::collections::BTreeMap;
use std::slice;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::fixtures::{
    all_pages, apart, attrs, count_wins, create_group, create_thing, group, group_arn, groups_of,
    mapped, ok, open_handles, race, sole_winner, strings, thing, MAX_DEPTH,
};
use super::{all_tags, assert_already_exists, assert_tags, fresh_scope, tag, Database};
use crate::{
    AttributeChange, AttributeFilter, GroupRef, GroupSelection, Scope, Store, StoreResult,
    ThingFilter, ThingGroupUpdate, ThingRecord, ThingRefusal, ThingUpdate, ValueMatch,
};

const MAX_ATTRIBUTES: usize = 50;
const MAX_GROUPS: usize = 10;

fn group_ref(scope: &Scope, name: &str) -> GroupRef {
    GroupRef {
        name: name.to_owned(),
        arn: group_arn(scope, name),
    }
}

fn update(attributes: Option<AttributeChange>, expected: Option<i64>, at: i64) -> ThingUpdate {
    ThingUpdate {
        attributes,
        remove_thing_type: false,
        expected_version: expected,
        max_attributes: MAX_ATTRIBUTES,
        updated_at_ms: at,
    }
}

fn merge(items: &[(&str, Option<&str>)]) -> AttributeChange {
    AttributeChange::Merge(
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect::<BTreeMap<_, _>>(),
    )
}

async fn change(
    store: &dyn Store,
    scope: &Scope,
    thing: &str,
    add: &[&str],
    remove: &[&str],
) -> Result<(), ThingRefusal> {
    store
        .change_thing_groups(scope, thing, &strings(add), &strings(remove), MAX_GROUPS)
        .await
        .expect("change groups")
}

async fn members(store: &dyn Store, scope: &Scope, group: &str, recursive: bool) -> Vec<String> {
    store
        .list_things_in_thing_group(scope, group, recursive, None, 1_000)
        .await
        .expect("things in group")
}

async fn thing_names(store: &dyn Store, scope: &Scope, filter: &ThingFilter) -> Vec<String> {
    mapped(store.list_things(scope, filter, None, 1_000), |t| t.name).await
}

async fn group_names(
    store: &dyn Store,
    scope: &Scope,
    selection: &GroupSelection,
    prefix: Option<&str>,
) -> Vec<String> {
    mapped(
        store.list_thing_groups(scope, selection, prefix, None, 1_000),
        |g| g.name,
    )
    .await
}

pub async fn thing_crud(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let record = thing(&scope, "crud", &[("serial", "A-1"), ("model", "x")]);
    create_thing(&*store, &scope, &record).await;
    assert_eq!(
        store.get_thing(&scope, "crud").await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(store.get_thing(&scope, "missing").await.unwrap(), None);

    let duplicate = thing(&scope, "crud", &[("other", "1")]);
    assert_already_exists(store.create_thing(&scope, &duplicate).await);
    assert_eq!(
        store.get_thing(&scope, "crud").await.unwrap(),
        Some(record.clone()),
        "a rejected duplicate must not overwrite"
    );

    // An update with no changes still moves the version.
    let updated = store
        .update_thing(&scope, "crud", &update(None, Some(1), 2_000))
        .await
        .unwrap()
        .expect("update");
    let expected = ThingRecord {
        version: 2,
        updated_at_ms: 2_000,
        ..record.clone()
    };
    assert_eq!(updated, expected);

    assert_eq!(
        store
            .update_thing(&scope, "crud", &update(None, Some(1), 3_000))
            .await
            .unwrap(),
        Err(ThingRefusal::VersionMismatch { current: 2 })
    );
    assert_eq!(
        store
            .update_thing(&scope, "missing", &update(None, None, 3_000))
            .await
            .unwrap(),
        Err(ThingRefusal::ThingNotFound("missing".into()))
    );
    assert_eq!(
        store.delete_thing(&scope, "crud", Some(1)).await.unwrap(),
        Err(ThingRefusal::VersionMismatch { current: 2 })
    );
    assert_eq!(
        store.get_thing(&scope, "crud").await.unwrap(),
        Some(expected)
    );

    assert_eq!(
        store.delete_thing(&scope, "crud", Some(2)).await.unwrap(),
        Ok(true)
    );
    assert_eq!(store.get_thing(&scope, "crud").await.unwrap(), None);
    assert_eq!(
        store.delete_thing(&scope, "crud", Some(7)).await.unwrap(),
        Ok(false),
        "deleting a missing thing succeeds whatever the expected version"
    );

    // The name is free again, and the new thing starts without the old attributes.
    let again = thing(&scope, "crud", &[]);
    create_thing(&*store, &scope, &again).await;
    assert_eq!(store.get_thing(&scope, "crud").await.unwrap(), Some(again));
}

pub async fn thing_update_attributes(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    create_thing(
        &*store,
        &scope,
        &thing(&scope, "t", &[("a", "1"), ("b", "2")]),
    )
    .await;

    let merged = store
        .update_thing(
            &scope,
            "t",
            &update(
                Some(merge(&[("a", None), ("c", Some("3")), ("absent", None)])),
                None,
                2_000,
            ),
        )
        .await
        .unwrap()
        .expect("merge");
    assert_eq!(merged.attributes, attrs(&[("b", "2"), ("c", "3")]));
    assert_eq!(merged.version, 2);

    let replaced = store
        .update_thing(
            &scope,
            "t",
            &update(
                Some(AttributeChange::Replace(attrs(&[("z", "26")]))),
                Some(2),
                3_000,
            ),
        )
        .await
        .unwrap()
        .expect("replace");
    assert_eq!(replaced.attributes, attrs(&[("z", "26")]));
    assert_eq!(
        store.get_thing(&scope, "t").await.unwrap(),
        Some(replaced.clone())
    );

    // The limit applies to the result: a merge over it is refused, one that stays
    // within it (by removing as much as it adds) is not.
    let mut limited = update(
        Some(merge(&[("y", Some("1")), ("x", Some("2"))])),
        None,
        4_000,
    );
    limited.max_attributes = 2;
    assert_eq!(
        store.update_thing(&scope, "t", &limited).await.unwrap(),
        Err(ThingRefusal::TooManyAttributes { limit: 2 })
    );
    assert_eq!(
        store.get_thing(&scope, "t").await.unwrap(),
        Some(replaced),
        "a refused update changes nothing, not even the version"
    );
    limited.attributes = Some(merge(&[("y", Some("1")), ("x", Some("2")), ("z", None)]));
    let swapped = store
        .update_thing(&scope, "t", &limited)
        .await
        .unwrap()
        .expect("within the limit");
    assert_eq!(swapped.attributes, attrs(&[("x", "2"), ("y", "1")]));
    assert_eq!(swapped.version, 4);
}

pub async fn thing_list_paging_and_filters(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    // Byte order: "Beta" < "alpha", "-" < "_".
    let things = [
        ("gamma_1", vec![("color", "red"), ("size", "10")]),
        ("alpha", vec![("color", "redish")]),
        ("zeta", vec![]),
        ("Beta", vec![("color", "blue")]),
        ("gamma-2", vec![("size", "1")]),
        ("delta", vec![("color", "re")]),
    ];
    for (name, attributes) in &things {
        create_thing(&*store, &scope, &thing(&scope, name, attributes)).await;
    }
    let other = fresh_scope();
    create_thing(&*store, &other, &thing(&other, "beta", &[("color", "red")])).await;

    let sorted = ["Beta", "alpha", "delta", "gamma-2", "gamma_1", "zeta"];
    for page in [1, 2, 4, 6, 100] {
        let key = |t: &ThingRecord| t.name.clone();
        let listed = all_pages(page, key, async |after| {
            let all = ThingFilter::default();
            store
                .list_things(&scope, &all, after.as_deref(), page)
                .await
        })
        .await;
        for record in &listed {
            // Every listed thing carries its attributes, whatever the page size.
            let (_, expected) = things.iter().find(|(n, _)| *n == record.name).unwrap();
            assert_eq!(record.attributes, attrs(expected), "{}", record.name);
        }
        let names: Vec<String> = listed.into_iter().map(|t| t.name).collect();
        assert_eq!(names, sorted, "page {page}");
    }

    let by = |value: ValueMatch| ThingFilter {
        thing_type_name: None,
        attribute: Some(AttributeFilter {
            name: "color".into(),
            value,
        }),
    };
    assert_eq!(
        thing_names(&*store, &scope, &by(ValueMatch::Exact("red".into()))).await,
        ["gamma_1"]
    );
    assert_eq!(
        thing_names(&*store, &scope, &by(ValueMatch::Prefix("re".into()))).await,
        ["alpha", "delta", "gamma_1"]
    );
    assert_eq!(
        thing_names(&*store, &scope, &by(ValueMatch::Any)).await,
        ["Beta", "alpha", "delta", "gamma_1"]
    );
    // Prefix matching is literal: "_" and "%" are not wildcards.
    create_thing(
        &*store,
        &scope,
        &thing(&scope, "wild", &[("color", "r_d%")]),
    )
    .await;
    assert_eq!(
        thing_names(&*store, &scope, &by(ValueMatch::Prefix("r_".into()))).await,
        ["wild"]
    );
    assert!(
        thing_names(&*store, &scope, &by(ValueMatch::Prefix("%".into())))
            .await
            .is_empty()
    );
    let typed = ThingFilter {
        thing_type_name: Some("LightBulb".into()),
        attribute: None,
    };
    assert!(thing_names(&*store, &scope, &typed).await.is_empty());

    // A filtered page that ends early on `after`.
    let page = store
        .list_things(
            &scope,
            &by(ValueMatch::Prefix("re".into())),
            Some("alpha"),
            1,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].name, "delta");
    assert!(store
        .list_things(&scope, &ThingFilter::default(), None, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_things(&scope, &ThingFilter::default(), Some("zz"), 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn thing_group_crud_and_hierarchy(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let mut root = group(&scope, "root", None);
    root.description = Some("the root".into());
    root.attributes = attrs(&[("tier", "1")]);
    store
        .create_thing_group(&scope, &root, &[tag("env", "prod")], MAX_DEPTH)
        .await
        .unwrap()
        .expect("create root");
    create_group(&*store, &scope, "mid", Some("root")).await;
    create_group(&*store, &scope, "leaf", Some("mid")).await;

    let view = store
        .get_thing_group(&scope, "root")
        .await
        .unwrap()
        .expect("root");
    assert_eq!(view.group, root);
    assert!(view.root_to_parent.is_empty());
    assert_tags(&*store, &scope, &root.arn, &[("env", "prod")]).await;
    let leaf = store
        .get_thing_group(&scope, "leaf")
        .await
        .unwrap()
        .expect("leaf");
    assert_eq!(leaf.group.parent_name.as_deref(), Some("mid"));
    assert_eq!(
        leaf.root_to_parent,
        vec![group_ref(&scope, "root"), group_ref(&scope, "mid")]
    );
    assert_eq!(
        store.get_thing_group(&scope, "missing").await.unwrap(),
        None
    );

    assert_already_exists(
        store
            .create_thing_group(&scope, &group(&scope, "mid", None), &[], MAX_DEPTH)
            .await,
    );
    assert_eq!(
        store
            .create_thing_group(
                &scope,
                &group(&scope, "orphan", Some("nope")),
                &[],
                MAX_DEPTH
            )
            .await
            .unwrap(),
        Err(ThingRefusal::GroupNotFound("nope".into()))
    );
    // root, mid, leaf are three levels: a fourth is refused at a depth limit of 3.
    assert_eq!(
        store
            .create_thing_group(&scope, &group(&scope, "deep", Some("leaf")), &[], 3)
            .await
            .unwrap(),
        Err(ThingRefusal::TooDeep { limit: 3 })
    );
    store
        .create_thing_group(&scope, &group(&scope, "deep", Some("leaf")), &[], 4)
        .await
        .unwrap()
        .expect("within the depth limit");

    assert_eq!(
        store.delete_thing_group(&scope, "mid", None).await.unwrap(),
        Err(ThingRefusal::HasChildGroups)
    );
    assert_eq!(
        store
            .delete_thing_group(&scope, "deep", Some(5))
            .await
            .unwrap(),
        Err(ThingRefusal::VersionMismatch { current: 1 })
    );
    for name in ["deep", "leaf", "mid"] {
        assert_eq!(
            store
                .delete_thing_group(&scope, name, Some(1))
                .await
                .unwrap(),
            Ok(true),
            "{name}"
        );
    }
    assert_eq!(
        store.delete_thing_group(&scope, "mid", None).await.unwrap(),
        Ok(false)
    );
    assert_eq!(
        store
            .delete_thing_group(&scope, "root", None)
            .await
            .unwrap(),
        Ok(true)
    );
    assert!(
        all_tags(&*store, &scope, &root.arn).await.is_empty(),
        "deleting a group deletes its tags"
    );
    assert!(group_names(&*store, &scope, &GroupSelection::All, None)
        .await
        .is_empty());
}

pub async fn thing_group_update(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let mut g = group(&scope, "g", None);
    g.description = Some("first".into());
    g.attributes = attrs(&[("a", "1"), ("b", "2")]);
    store
        .create_thing_group(&scope, &g, &[], MAX_DEPTH)
        .await
        .unwrap()
        .expect("create");
    let change = |description: Option<&str>, attributes, expected| ThingGroupUpdate {
        description: description.map(str::to_owned),
        attributes,
        expected_version: expected,
        max_attributes: MAX_ATTRIBUTES,
        updated_at_ms: 2_000,
    };

    let after = store
        .update_thing_group(
            &scope,
            "g",
            &change(None, Some(merge(&[("a", None), ("c", Some("3"))])), Some(1)),
        )
        .await
        .unwrap()
        .expect("merge");
    assert_eq!(after.description.as_deref(), Some("first"));
    assert_eq!(after.attributes, attrs(&[("b", "2"), ("c", "3")]));
    assert_eq!((after.version, after.updated_at_ms), (2, 2_000));

    let after = store
        .update_thing_group(&scope, "g", &change(Some("second"), None, None))
        .await
        .unwrap()
        .expect("describe");
    assert_eq!(after.description.as_deref(), Some("second"));
    assert_eq!(after.attributes, attrs(&[("b", "2"), ("c", "3")]));
    assert_eq!(after.version, 3);

    assert_eq!(
        store
            .update_thing_group(&scope, "g", &change(Some("x"), None, Some(2)))
            .await
            .unwrap(),
        Err(ThingRefusal::VersionMismatch { current: 3 })
    );
    assert_eq!(
        store
            .update_thing_group(&scope, "nope", &change(Some("x"), None, None))
            .await
            .unwrap(),
        Err(ThingRefusal::GroupNotFound("nope".into()))
    );
    let view = store.get_thing_group(&scope, "g").await.unwrap().unwrap();
    assert_eq!(view.group, after);
}

pub async fn thing_group_listing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    // a ─┬─ a1 ── a1x
    //    └─ a2
    // b ── b1
    for (name, parent) in [
        ("a", None),
        ("b", None),
        ("a1", Some("a")),
        ("a2", Some("a")),
        ("b1", Some("b")),
        ("a1x", Some("a1")),
    ] {
        create_group(&*store, &scope, name, parent).await;
    }
    let other = fresh_scope();
    create_group(&*store, &other, "a0", None).await;

    let all = GroupSelection::All;
    assert_eq!(
        group_names(&*store, &scope, &all, None).await,
        ["a", "a1", "a1x", "a2", "b", "b1"]
    );
    assert_eq!(
        group_names(&*store, &scope, &all, Some("a1")).await,
        ["a1", "a1x"]
    );
    let children = GroupSelection::ChildrenOf("a".into());
    assert_eq!(
        group_names(&*store, &scope, &children, None).await,
        ["a1", "a2"]
    );
    let descendants = GroupSelection::DescendantsOf("a".into());
    assert_eq!(
        group_names(&*store, &scope, &descendants, None).await,
        ["a1", "a1x", "a2"]
    );
    assert_eq!(
        group_names(&*store, &scope, &descendants, Some("a1")).await,
        ["a1", "a1x"]
    );
    assert!(group_names(
        &*store,
        &scope,
        &GroupSelection::ChildrenOf("a2".into()),
        None
    )
    .await
    .is_empty());

    // Paging through descendants one at a time, carrying ARNs.
    let key = |g: &GroupRef| g.name.clone();
    let seen = all_pages(1, key, async |after| {
        let after = after.as_deref();
        store
            .list_thing_groups(&scope, &descendants, None, after, 1)
            .await
    })
    .await;
    assert_eq!(
        seen,
        vec![
            group_ref(&scope, "a1"),
            group_ref(&scope, "a1x"),
            group_ref(&scope, "a2")
        ]
    );
}

pub async fn thing_membership_rules(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    create_thing(&*store, &scope, &thing(&scope, "t", &[])).await;
    create_group(&*store, &scope, "r", None).await;
    create_group(&*store, &scope, "r-child", Some("r")).await;
    create_group(&*store, &scope, "r-other", Some("r")).await;
    create_group(&*store, &scope, "s", None).await;

    assert_eq!(
        change(&*store, &scope, "t", &["r-child"], &[]).await,
        Ok(())
    );
    assert_eq!(
        change(&*store, &scope, "t", &["r-child"], &[]).await,
        Ok(()),
        "adding a member again succeeds"
    );
    for same_root in ["r", "r-other"] {
        assert_eq!(
            change(&*store, &scope, "t", &[same_root], &[]).await,
            Err(ThingRefusal::SameHierarchy {
                member_of: "r-child".into(),
                requested: same_root.into()
            })
        );
    }
    assert_eq!(change(&*store, &scope, "t", &["s"], &[]).await, Ok(()));
    assert_eq!(groups_of(&*store, &scope, "t").await, ["r-child", "s"]);

    // Moving within a hierarchy in one call: the removal happens first.
    assert_eq!(
        change(&*store, &scope, "t", &["r-other"], &["r-child"]).await,
        Ok(())
    );
    assert_eq!(groups_of(&*store, &scope, "t").await, ["r-other", "s"]);
    assert_eq!(
        change(&*store, &scope, "t", &[], &["r-child"]).await,
        Ok(()),
        "removing a non-member succeeds"
    );

    assert_eq!(
        change(&*store, &scope, "nobody", &["s"], &[]).await,
        Err(ThingRefusal::ThingNotFound("nobody".into()))
    );
    assert_eq!(
        change(&*store, &scope, "t", &["s", "ghost"], &[]).await,
        Err(ThingRefusal::GroupNotFound("ghost".into()))
    );
    assert_eq!(
        change(&*store, &scope, "t", &[], &["ghost"]).await,
        Err(ThingRefusal::GroupNotFound("ghost".into()))
    );

    // The limit: with a maximum of 3 groups, a fourth hierarchy is refused.
    create_group(&*store, &scope, "u", None).await;
    create_group(&*store, &scope, "v", None).await;
    let limited = |add: &[&str]| {
        let store = Arc::clone(&store);
        let (scope, add) = (scope.clone(), strings(add));
        async move {
            store
                .change_thing_groups(&scope, "t", &add, &[], 3)
                .await
                .unwrap()
        }
    };
    assert_eq!(limited(&["u"]).await, Ok(()));
    assert_eq!(
        limited(&["v"]).await,
        Err(ThingRefusal::TooManyGroups { limit: 3 })
    );
    assert_eq!(
        limited(&["u"]).await,
        Ok(()),
        "re-adding at the limit adds nothing"
    );
    assert_eq!(groups_of(&*store, &scope, "t").await, ["r-other", "s", "u"]);
}

pub async fn thing_membership_listing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    create_group(&*store, &scope, "top", None).await;
    create_group(&*store, &scope, "sub", Some("top")).await;
    create_group(&*store, &scope, "subsub", Some("sub")).await;
    create_group(&*store, &scope, "else", None).await;
    for (name, group) in [
        ("t3", "top"),
        ("t1", "sub"),
        ("t2", "subsub"),
        ("t0", "else"),
        ("T9", "subsub"),
    ] {
        create_thing(&*store, &scope, &thing(&scope, name, &[])).await;
        assert_eq!(change(&*store, &scope, name, &[group], &[]).await, Ok(()));
    }
    assert_eq!(members(&*store, &scope, "top", false).await, ["t3"]);
    assert_eq!(
        members(&*store, &scope, "top", true).await,
        ["T9", "t1", "t2", "t3"]
    );
    assert_eq!(
        members(&*store, &scope, "sub", true).await,
        ["T9", "t1", "t2"]
    );
    assert_eq!(
        members(&*store, &scope, "subsub", false).await,
        ["T9", "t2"]
    );
    assert!(members(&*store, &scope, "nope", true).await.is_empty());

    let page = store
        .list_things_in_thing_group(&scope, "top", true, Some("T9"), 2)
        .await
        .unwrap();
    assert_eq!(page, ["t1", "t2"]);

    assert_eq!(change(&*store, &scope, "t0", &["top"], &[]).await, Ok(()));
    let groups = store
        .list_thing_groups_for_thing(&scope, "t0", None, 1)
        .await
        .unwrap();
    assert_eq!(groups, vec![group_ref(&scope, "else")]);
    let groups = store
        .list_thing_groups_for_thing(&scope, "t0", Some("else"), 1)
        .await
        .unwrap();
    assert_eq!(groups, vec![group_ref(&scope, "top")]);
}

pub async fn thing_deletes_remove_memberships(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    create_group(&*store, &scope, "g", None).await;
    create_group(&*store, &scope, "h", None).await;
    for name in ["a", "b"] {
        create_thing(&*store, &scope, &thing(&scope, name, &[("k", "v")])).await;
        assert_eq!(
            change(&*store, &scope, name, &["g", "h"], &[]).await,
            Ok(())
        );
    }
    assert_eq!(
        store.delete_thing(&scope, "a", None).await.unwrap(),
        Ok(true)
    );
    assert_eq!(members(&*store, &scope, "g", false).await, ["b"]);

    // A new thing under the old name starts with no groups and no attributes.
    create_thing(&*store, &scope, &thing(&scope, "a", &[])).await;
    assert!(groups_of(&*store, &scope, "a").await.is_empty());
    assert!(store
        .get_thing(&scope, "a")
        .await
        .unwrap()
        .unwrap()
        .attributes
        .is_empty());

    assert_eq!(
        store.delete_thing_group(&scope, "g", None).await.unwrap(),
        Ok(true)
    );
    assert_eq!(groups_of(&*store, &scope, "b").await, ["h"]);
    create_group(&*store, &scope, "g", None).await;
    assert!(members(&*store, &scope, "g", true).await.is_empty());
}

/// Two scopes in these regions (see `fixtures::apart`) using the same names never see or touch
/// each other's things and groups.
pub async fn isolation(store: Arc<dyn Store>, region_a: &str, region_b: &str) {
    let (a, b) = apart(region_a, region_b);
    let (store, a, b) = (&*store, &a, &b);
    let in_a = thing(a, "shared", &[("owner", "a")]);
    create_thing(store, a, &in_a).await;
    create_thing(store, b, &thing(b, "shared", &[("owner", "b")])).await;
    create_group(store, a, "g", None).await;
    create_group(store, a, "a-only", None).await;
    assert_eq!(
        change(store, b, "shared", &["a-only"], &[]).await,
        Err(ThingRefusal::GroupNotFound("a-only".into())),
        "another scope's group does not exist here"
    );
    create_group(store, b, "g", None).await;
    assert_eq!(change(store, a, "shared", &["g"], &[]).await, Ok(()));

    assert_eq!(store.get_thing(a, "shared").await.unwrap(), Some(in_a));
    assert!(members(store, b, "g", true).await.is_empty());
    assert!(groups_of(store, b, "shared").await.is_empty());
    assert_eq!(
        group_names(store, b, &GroupSelection::All, None).await,
        ["g"]
    );
    let owner_a = ThingFilter {
        thing_type_name: None,
        attribute: Some(AttributeFilter {
            name: "owner".into(),
            value: ValueMatch::Exact("a".into()),
        }),
    };
    assert!(thing_names(store, b, &owner_a).await.is_empty());

    assert_eq!(
        store.delete_thing(b, "shared", None).await.unwrap(),
        Ok(true)
    );
    assert_eq!(
        store.delete_thing_group(b, "g", None).await.unwrap(),
        Ok(true)
    );
    assert_eq!(groups_of(store, a, "shared").await, ["g"]);
    assert!(store.get_thing(a, "shared").await.unwrap().is_some());
}

pub async fn things_refused_writes_change_nothing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    create_thing(&*store, &scope, &thing(&scope, "t", &[])).await;
    create_group(&*store, &scope, "keep", None).await;
    create_group(&*store, &scope, "r", None).await;
    create_group(&*store, &scope, "r1", Some("r")).await;
    create_group(&*store, &scope, "r2", Some("r")).await;
    create_group(&*store, &scope, "s", None).await;
    assert_eq!(change(&*store, &scope, "t", &["keep"], &[]).await, Ok(()));

    // All or nothing: the good add and the removal are not applied either.
    assert_eq!(
        change(&*store, &scope, "t", &["s", "r1", "r2"], &["keep"]).await,
        Err(ThingRefusal::SameHierarchy {
            member_of: "r1".into(),
            requested: "r2".into()
        })
    );
    assert_eq!(groups_of(&*store, &scope, "t").await, ["keep"]);
    assert_eq!(
        change(&*store, &scope, "t", &["s", "missing"], &["keep"]).await,
        Err(ThingRefusal::GroupNotFound("missing".into()))
    );
    assert_eq!(groups_of(&*store, &scope, "t").await, ["keep"]);

    // A group refused for its parent leaves no row, attributes, tree entry or tags.
    let mut orphan = group(&scope, "orphan", Some("missing"));
    orphan.attributes = attrs(&[("a", "1")]);
    assert_eq!(
        store
            .create_thing_group(&scope, &orphan, &[tag("k", "v")], MAX_DEPTH)
            .await
            .unwrap(),
        Err(ThingRefusal::GroupNotFound("missing".into()))
    );
    assert_eq!(store.get_thing_group(&scope, "orphan").await.unwrap(), None);
    assert!(all_tags(&*store, &scope, &orphan.arn).await.is_empty());
    // And a duplicate's tags never land on the original's ARN.
    assert_already_exists(
        store
            .create_thing_group(&scope, &group(&scope, "keep", None), &[tag("k", "v")], 7)
            .await,
    );
    assert!(all_tags(&*store, &scope, &group_arn(&scope, "keep"))
        .await
        .is_empty());
    create_group(&*store, &scope, "orphan", None).await;
    let view = store
        .get_thing_group(&scope, "orphan")
        .await
        .unwrap()
        .unwrap();
    assert!(view.group.attributes.is_empty());
    assert!(view.root_to_parent.is_empty());

    // A refused group update leaves attributes, description and version alone.
    let update = |max_attributes, expected_version| ThingGroupUpdate {
        description: Some("changed".into()),
        attributes: Some(merge(&[("x", Some("1")), ("y", Some("2"))])),
        expected_version,
        max_attributes,
        updated_at_ms: 9_000,
    };
    for (refused, refusal) in [
        (
            update(1, None),
            ThingRefusal::TooManyAttributes { limit: 1 },
        ),
        (
            update(2, Some(3)),
            ThingRefusal::VersionMismatch { current: 1 },
        ),
    ] {
        let outcome = ok(store.update_thing_group(&scope, "orphan", &refused)).await;
        assert_eq!(outcome, Err(refusal));
    }
    assert_eq!(
        store.get_thing_group(&scope, "orphan").await.unwrap(),
        Some(view)
    );
}

pub async fn things_concurrent_create_same_name(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let outcomes = race(slice::from_ref(&store), 8, |i, store| {
        let scope = scope.clone();
        async move {
            let value = i.to_string();
            let record = thing(&scope, "contested", &[("racer", value.as_str())]);
            let result = store.create_thing(&scope, &record).await;
            (record, result)
        }
    })
    .await;
    assert_eq!(
        store.get_thing(&scope, "contested").await.unwrap(),
        Some(sole_winner(outcomes)),
        "the winner's attributes only"
    );
}

pub async fn thing_groups_concurrent_create_same_name(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    create_group(&*store, &scope, "parent", None).await;
    let outcomes = race(slice::from_ref(&store), 8, |i, store| {
        let scope = scope.clone();
        async move {
            let parent = (i % 2 == 0).then_some("parent");
            let record = group(&scope, "contested", parent);
            let tags = [tag("racer", &i.to_string())];
            let result = store
                .create_thing_group(&scope, &record, &tags, MAX_DEPTH)
                .await;
            // The parent exists whichever way: only the name can be refused.
            let result = result.map(|accepted| accepted.expect("no refusal"));
            ((i, record), result)
        }
    })
    .await;
    let (i, record) = sole_winner(outcomes);
    let view = store
        .get_thing_group(&scope, "contested")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.group, record);
    assert_eq!(
        all_tags(&*store, &scope, &record.arn).await,
        vec![tag("racer", &i.to_string())]
    );
    let children = group_names(
        &*store,
        &scope,
        &GroupSelection::DescendantsOf("parent".into()),
        None,
    )
    .await;
    assert_eq!(children.len(), usize::from(record.parent_name.is_some()));
}

/// Racers each adding `thing` to one of `groups` at once, spread over `handles`.
async fn race_joins(
    handles: &[Arc<dyn Store>],
    scope: &Scope,
    thing: &str,
    groups: &[String],
) -> Vec<Result<(), ThingRefusal>> {
    race(handles, groups.len(), |i, store| {
        let (scope, thing, group) = (scope.clone(), thing.to_owned(), groups[i].clone());
        async move {
            store
                .change_thing_groups(&scope, &thing, &[group], &[], MAX_GROUPS)
                .await
                .expect("change groups")
        }
    })
    .await
}

/// Eleven racers each add one thing to a group of its own hierarchy, spread over so many
/// handles on `db`; exactly ten may win.
pub async fn race_to_group_limit(db: &dyn Database, handles: usize) {
    let handles = &open_handles(db, handles).await;
    let scope = fresh_scope();
    create_thing(&*handles[0], &scope, &thing(&scope, "popular", &[])).await;
    let groups: Vec<String> = (0..=MAX_GROUPS).map(|i| format!("g{i:02}")).collect();
    for name in &groups {
        create_group(&*handles[0], &scope, name, None).await;
    }
    let outcomes = race_joins(handles, &scope, "popular", &groups).await;
    let too_many = Err(ThingRefusal::TooManyGroups { limit: MAX_GROUPS });
    assert_eq!(
        count_wins(outcomes, |loser| assert_eq!(loser, too_many)),
        MAX_GROUPS
    );
    assert_eq!(
        groups_of(&*handles[0], &scope, "popular").await.len(),
        MAX_GROUPS
    );
}

pub async fn thing_membership_concurrent_adds_one_per_hierarchy(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    create_thing(&*store, &scope, &thing(&scope, "t", &[])).await;
    create_group(&*store, &scope, "root", None).await;
    let groups: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    for name in &groups {
        create_group(&*store, &scope, name, Some("root")).await;
    }
    let outcomes = race_joins(slice::from_ref(&store), &scope, "t", &groups).await;
    let wins = count_wins(outcomes, |loser| {
        assert!(
            matches!(loser, Err(ThingRefusal::SameHierarchy { .. })),
            "{loser:?}"
        );
    });
    assert_eq!(wins, 1, "one group per hierarchy");
    assert_eq!(groups_of(&*store, &scope, "t").await.len(), 1);
}

/// Deletes `group` through `store` on a task of its own.
fn spawn_delete(
    store: &Arc<dyn Store>,
    scope: &Scope,
    group: &str,
) -> JoinHandle<StoreResult<Result<bool, ThingRefusal>>> {
    let (store, scope, group) = (Arc::clone(store), scope.clone(), group.to_owned());
    tokio::spawn(async move { store.delete_thing_group(&scope, &group, None).await })
}

/// Deleting a group while another node creates a child under it: never both.
pub async fn thing_group_delete_races_child_create(db: &dyn Database) {
    let handles = open_handles(db, 2).await;
    let scope = fresh_scope();
    for round in 0..10 {
        let parent = format!("parent-{round}");
        let child = format!("child-{round}");
        create_group(&*handles[0], &scope, &parent, None).await;
        let deleter = spawn_delete(&handles[0], &scope, &parent);
        let creator = {
            let (store, scope) = (Arc::clone(&handles[1]), scope.clone());
            let record = group(&scope, &child, Some(&parent));
            tokio::spawn(async move {
                store
                    .create_thing_group(&scope, &record, &[], MAX_DEPTH)
                    .await
            })
        };
        let deleted = deleter.await.expect("deleter").expect("delete");
        let created = creator.await.expect("creator").expect("create");
        match (&deleted, &created) {
            (Ok(true), Err(ThingRefusal::GroupNotFound(p))) => assert_eq!(p, &parent),
            (Err(ThingRefusal::HasChildGroups), Ok(())) => {}
            other => panic!("round {round}: inconsistent outcome {other:?}"),
        }
        let child_view = handles[0].get_thing_group(&scope, &child).await.unwrap();
        let parent_view = handles[0].get_thing_group(&scope, &parent).await.unwrap();
        assert_eq!(child_view.is_some(), parent_view.is_some(), "round {round}");
    }
}

/// Deleting a group while another node adds a thing to it leaves no membership of a
/// deleted group behind.
pub async fn thing_group_delete_races_member_add(db: &dyn Database) {
    let handles = open_handles(db, 2).await;
    let scope = fresh_scope();
    create_thing(&*handles[0], &scope, &thing(&scope, "t", &[])).await;
    for round in 0..10 {
        let name = format!("g-{round}");
        create_group(&*handles[0], &scope, &name, None).await;
        let deleter = spawn_delete(&handles[0], &scope, &name);
        let adder = {
            let (store, scope, name) = (Arc::clone(&handles[1]), scope.clone(), name.clone());
            tokio::spawn(async move {
                store
                    .change_thing_groups(&scope, "t", &[name], &[], 1_000)
                    .await
            })
        };
        assert_eq!(deleter.await.expect("deleter").expect("delete"), Ok(true));
        match adder.await.expect("adder").expect("add") {
            Ok(()) => {}
            Err(ThingRefusal::GroupNotFound(g)) => assert_eq!(g, name),
            other => panic!("round {round}: {other:?}"),
        }
        assert!(
            groups_of(&*handles[0], &scope, "t").await.is_empty(),
            "round {round}: membership of a deleted group"
        );
    }
}
