//! Conformance cases for policies (with versions), role aliases and logging options;
//! instantiated by [`policies_conformance_tests!`](crate::policies_conformance_tests)
//! next to `conformance_tests!`.

use std::collections::BTreeSet;
use std::slice;
use std::sync::Arc;

use super::fixtures::{
    all_pages, count_wins, create_policy, new_policy, ok, open_handles, race, sole_winner,
};
use super::{
    all_tags, assert_already_exists, assert_tags, fresh_scope, scope, tag, unique, unique_account,
};
use super::{Database, NO_LIMIT};
use crate::{
    LoggingOptionsRecord, NewPolicy, NewPolicyVersion, PolicyOutcome, PolicyRecord, PolicyRefusal,
    PolicyVersionRecord, RoleAliasRecord, RoleAliasUpdate, Scope, Store, StoreError,
    V2LoggingOptionsRecord,
};

const DOC_1: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}"#;

fn doc(n: i64) -> String {
    // Whitespace on purpose: documents are stored byte for byte.
    format!(
        "{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": {{\"Effect\": \"Allow\", \"Action\": \"iot:Publish\", \"Resource\": \"v{n}\"}}\n}}"
    )
}

/// What `create_policy` must have stored for `p`.
fn created(p: &NewPolicy) -> PolicyRecord {
    PolicyRecord {
        name: p.name.clone(),
        arn: p.arn.clone(),
        default_version_id: 1,
        generation_id: p.generation_id.clone(),
        created_at_ms: p.created_at_ms,
        updated_at_ms: p.created_at_ms,
    }
}

fn first_version(p: &NewPolicy) -> PolicyVersionRecord {
    PolicyVersionRecord {
        version_id: 1,
        document: p.document.clone(),
        created_at_ms: p.created_at_ms,
    }
}

fn version(n: i64, set_as_default: bool) -> NewPolicyVersion {
    NewPolicyVersion {
        document: doc(n),
        set_as_default,
        generation_id: unique("gen-"),
        created_at_ms: 1_000 + n,
    }
}

async fn add_version(
    store: &dyn Store,
    scope: &Scope,
    name: &str,
    v: &NewPolicyVersion,
) -> PolicyOutcome<(PolicyRecord, PolicyVersionRecord)> {
    store
        .create_policy_version(scope, name, v, 5)
        .await
        .expect("create policy version")
}

async fn version_ids(store: &dyn Store, scope: &Scope, name: &str) -> Vec<i64> {
    store
        .list_policy_versions(scope, name)
        .await
        .expect("list versions")
        .map(|(_, versions)| versions.into_iter().map(|v| v.version_id).collect())
        .unwrap_or_default()
}

async fn default_id(store: &dyn Store, scope: &Scope, name: &str) -> i64 {
    let found = ok(store.get_policy(scope, name)).await;
    found.expect("policy exists").default_version_id
}

fn refused<T: std::fmt::Debug>(outcome: PolicyOutcome<T>, expected: PolicyRefusal) {
    assert_eq!(
        outcome.err(),
        Some(expected.clone()),
        "expected {expected:?}"
    );
}

/// One write to a policy and its versions, so that a case can try several in a table.
enum Write<'a> {
    /// Adds the version under a limit of so many versions.
    Add(NewPolicyVersion, usize),
    /// Makes the version the default: version id, new generation id, time.
    SetDefault(i64, &'a str, i64),
    /// Deletes the version: version id, time.
    DeleteVersion(i64, i64),
    DeletePolicy,
}

/// Applies `write` to the policy `name`; only the refusal, if any, is kept.
async fn write(
    store: &dyn Store,
    scope: &Scope,
    name: &str,
    write: Write<'_>,
) -> PolicyOutcome<()> {
    let outcome = match write {
        Write::Add(version, limit) => store
            .create_policy_version(scope, name, &version, limit)
            .await
            .map(|o| o.map(drop)),
        Write::SetDefault(id, generation, at) => store
            .set_default_policy_version(scope, name, id, generation, at)
            .await
            .map(|o| o.map(drop)),
        Write::DeleteVersion(id, at) => store.delete_policy_version(scope, name, id, at).await,
        Write::DeletePolicy => store.delete_policy(scope, name).await,
    };
    outcome.expect("store call")
}

pub async fn policy_crud(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let p = new_policy(&scope, "crud", DOC_1);
    ok(store.create_policy(&scope, &p, &[tag("env", "prod")])).await;
    assert_eq!(
        store.get_policy(&scope, "crud").await.unwrap(),
        Some(created(&p))
    );
    // The default version, asked for by default or by its id.
    for id in [None, Some(1)] {
        assert_eq!(
            ok(store.get_policy_version(&scope, "crud", id)).await,
            Some((created(&p), Some(first_version(&p)))),
            "version {id:?}"
        );
    }
    assert_eq!(
        store
            .get_policy_version(&scope, "crud", Some(2))
            .await
            .unwrap(),
        Some((created(&p), None)),
        "a missing version of an existing policy"
    );
    assert_eq!(
        store
            .get_policy_version(&scope, "missing", None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.list_policy_versions(&scope, "crud").await.unwrap(),
        Some((created(&p), vec![first_version(&p)]))
    );
    assert_eq!(
        store.list_policy_versions(&scope, "missing").await.unwrap(),
        None
    );
    assert_tags(&*store, &scope, &p.arn, &[("env", "prod")]).await;

    assert_eq!(store.delete_policy(&scope, "crud").await.unwrap(), Ok(()));
    assert_eq!(store.get_policy(&scope, "crud").await.unwrap(), None);
    assert_eq!(
        store.list_policy_versions(&scope, "crud").await.unwrap(),
        None
    );
    assert!(all_tags(&*store, &scope, &p.arn).await.is_empty());
    refused(
        store.delete_policy(&scope, "crud").await.unwrap(),
        PolicyRefusal::NoSuchPolicy,
    );

    // The name is free again, and the new policy starts over at version 1.
    let again = new_policy(&scope, "crud", DOC_1);
    create_policy(&*store, &scope, &again).await;
    assert_eq!(version_ids(&*store, &scope, "crud").await, vec![1]);
}

pub async fn policy_versions_lifecycle(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let p = new_policy(&scope, "versions", DOC_1);
    create_policy(&*store, &scope, &p).await;

    // Not the default: the policy's default and generation stay.
    let v2 = version(2, false);
    let (after, made) = add_version(&*store, &scope, "versions", &v2).await.unwrap();
    assert_eq!(made.version_id, 2);
    assert_eq!(made.document, v2.document);
    assert_eq!(after.default_version_id, 1);
    assert_eq!(after.generation_id, p.generation_id);
    assert_eq!(after.updated_at_ms, v2.created_at_ms);
    assert_eq!(after.created_at_ms, p.created_at_ms);

    // The default: default and generation change together.
    let v3 = version(3, true);
    let (after, made) = add_version(&*store, &scope, "versions", &v3).await.unwrap();
    assert_eq!(made.version_id, 3);
    assert_eq!(after.default_version_id, 3);
    assert_eq!(after.generation_id, v3.generation_id);
    let (policy, default) = store
        .get_policy_version(&scope, "versions", None)
        .await
        .unwrap()
        .expect("policy");
    assert_eq!(policy, after);
    assert_eq!(default.expect("default").document, v3.document);

    let (_, versions) = store
        .list_policy_versions(&scope, "versions")
        .await
        .unwrap()
        .expect("policy");
    assert_eq!(
        versions,
        vec![
            first_version(&p),
            PolicyVersionRecord {
                version_id: 2,
                document: v2.document.clone(),
                created_at_ms: v2.created_at_ms
            },
            PolicyVersionRecord {
                version_id: 3,
                document: v3.document.clone(),
                created_at_ms: v3.created_at_ms
            },
        ]
    );

    // Switching the default back.
    let switched = store
        .set_default_policy_version(&scope, "versions", 1, "gen-back", 7_000)
        .await
        .unwrap()
        .expect("set default");
    assert_eq!(switched.default_version_id, 1);
    assert_eq!(switched.generation_id, "gen-back");
    assert_eq!(switched.updated_at_ms, 7_000);
    assert_eq!(
        store.get_policy(&scope, "versions").await.unwrap(),
        Some(switched.clone())
    );
    // Making the default the default again changes nothing.
    assert_eq!(
        store
            .set_default_policy_version(&scope, "versions", 1, "gen-other", 8_000)
            .await
            .unwrap(),
        Ok(switched.clone())
    );
    assert_eq!(
        store.get_policy(&scope, "versions").await.unwrap(),
        Some(switched)
    );

    // Refused: a missing version or policy as the default; deleting the default, a
    // missing version, one of a missing policy; adding to a missing policy; deleting the
    // policy while other versions remain.
    for (name, change, refusal) in [
        (
            "versions",
            Write::SetDefault(9, "g", 1),
            PolicyRefusal::NoSuchVersion,
        ),
        (
            "missing",
            Write::SetDefault(1, "g", 1),
            PolicyRefusal::NoSuchPolicy,
        ),
        (
            "versions",
            Write::DeleteVersion(1, 9_000),
            PolicyRefusal::DefaultVersion,
        ),
        (
            "versions",
            Write::DeleteVersion(9, 9_000),
            PolicyRefusal::NoSuchVersion,
        ),
        (
            "missing",
            Write::DeleteVersion(2, 9_000),
            PolicyRefusal::NoSuchPolicy,
        ),
        (
            "missing",
            Write::Add(version(1, true), 5),
            PolicyRefusal::NoSuchPolicy,
        ),
        (
            "versions",
            Write::DeletePolicy,
            PolicyRefusal::OtherVersions,
        ),
    ] {
        refused(write(&*store, &scope, name, change).await, refusal);
    }

    let versions = |change| write(&*store, &scope, "versions", change);
    assert_eq!(versions(Write::DeleteVersion(3, 9_000)).await, Ok(()));
    assert_eq!(
        store
            .get_policy(&scope, "versions")
            .await
            .unwrap()
            .unwrap()
            .updated_at_ms,
        9_000
    );
    assert_eq!(
        store
            .get_policy_version(&scope, "versions", Some(3))
            .await
            .unwrap()
            .and_then(|(_, v)| v),
        None
    );
    refused(
        versions(Write::DeletePolicy).await,
        PolicyRefusal::OtherVersions,
    );
    assert_eq!(versions(Write::DeleteVersion(2, 9_500)).await, Ok(()));
    assert_eq!(versions(Write::DeletePolicy).await, Ok(()));
    assert_eq!(store.get_policy(&scope, "versions").await.unwrap(), None);
}

pub async fn policy_duplicate_name_writes_nothing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let original = new_policy(&scope, "dup", DOC_1);
    ok(store.create_policy(&scope, &original, &[tag("owner", "first")])).await;
    let mut duplicate = new_policy(&scope, "dup", DOC_1);
    duplicate.document = doc(9);
    assert_already_exists(
        store
            .create_policy(
                &scope,
                &duplicate,
                &[tag("owner", "second"), tag("extra", "x")],
            )
            .await,
    );
    assert_eq!(
        store.get_policy_version(&scope, "dup", None).await.unwrap(),
        Some((created(&original), Some(first_version(&original))))
    );
    assert_eq!(version_ids(&*store, &scope, "dup").await, vec![1]);
    assert_eq!(
        all_tags(&*store, &scope, &original.arn).await,
        vec![tag("owner", "first")],
        "a refused create must not write its tags"
    );
}

pub async fn policy_version_limit_and_ids_never_reused(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let p = new_policy(&scope, "limit", DOC_1);
    create_policy(&*store, &scope, &p).await;
    for n in 2..=5 {
        let (_, made) = add_version(&*store, &scope, "limit", &version(n, false))
            .await
            .unwrap();
        assert_eq!(made.version_id, n);
    }
    let before = store.get_policy(&scope, "limit").await.unwrap();
    refused(
        add_version(&*store, &scope, "limit", &version(6, true)).await,
        PolicyRefusal::TooManyVersions { limit: 5 },
    );
    assert_eq!(
        version_ids(&*store, &scope, "limit").await,
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        store.get_policy(&scope, "limit").await.unwrap(),
        before,
        "a refused version must change nothing, the default included"
    );

    // Deleting the newest version frees a slot, but not its id.
    let limit = |change| write(&*store, &scope, "limit", change);
    assert_eq!(limit(Write::DeleteVersion(5, 2_000)).await, Ok(()));
    let (_, made) = add_version(&*store, &scope, "limit", &version(6, false))
        .await
        .unwrap();
    assert_eq!(made.version_id, 6);
    for id in [6, 2] {
        assert_eq!(limit(Write::DeleteVersion(id, 2_000)).await, Ok(()));
    }
    let (_, made) = add_version(&*store, &scope, "limit", &version(7, true))
        .await
        .unwrap();
    assert_eq!(made.version_id, 7);
    assert_eq!(
        version_ids(&*store, &scope, "limit").await,
        vec![1, 3, 4, 7]
    );
    assert_eq!(default_id(&*store, &scope, "limit").await, 7);

    // A limit given by the caller is honoured as given.
    refused(
        limit(Write::Add(version(8, false), 4)).await,
        PolicyRefusal::TooManyVersions { limit: 4 },
    );
}

pub async fn policy_refusals_write_nothing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let p = new_policy(&scope, "kept", DOC_1);
    ok(store.create_policy(&scope, &p, &[tag("k", "v")])).await;
    add_version(&*store, &scope, "kept", &version(2, false))
        .await
        .unwrap();
    let before = store.list_policy_versions(&scope, "kept").await.unwrap();

    for (change, refusal) in [
        (Write::DeletePolicy, PolicyRefusal::OtherVersions),
        (
            Write::DeleteVersion(1, 5_000),
            PolicyRefusal::DefaultVersion,
        ),
        (Write::DeleteVersion(7, 5_000), PolicyRefusal::NoSuchVersion),
        (
            Write::SetDefault(7, "g", 5_000),
            PolicyRefusal::NoSuchVersion,
        ),
        (
            Write::Add(version(3, true), 2),
            PolicyRefusal::TooManyVersions { limit: 2 },
        ),
    ] {
        refused(write(&*store, &scope, "kept", change).await, refusal);
    }
    assert_eq!(
        store.list_policy_versions(&scope, "kept").await.unwrap(),
        before
    );
    assert_tags(&*store, &scope, &p.arn, &[("k", "v")]).await;
    // The refused version's id was not consumed either.
    let (_, made) = add_version(&*store, &scope, "kept", &version(3, false))
        .await
        .unwrap();
    assert_eq!(made.version_id, 3);
}

/// A create that fails after its first insert leaves nothing behind. Tags holding a NUL
/// make PostgreSQL fail at the tags, after the policy, its version or the alias were
/// inserted; SQLite stores them. Either way the outcome is all or nothing.
pub async fn creates_are_all_or_nothing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let p = new_policy(&scope, "atomic", DOC_1);
    let tags = [tag("ok", "fine"), tag("nul", "a\0b")];
    match store.create_policy(&scope, &p, &tags).await {
        Ok(()) => {
            assert_eq!(version_ids(&*store, &scope, "atomic").await, vec![1]);
            assert_eq!(all_tags(&*store, &scope, &p.arn).await.len(), 2);
        }
        Err(_) => {
            assert_eq!(store.get_policy(&scope, "atomic").await.unwrap(), None);
            assert!(all_tags(&*store, &scope, &p.arn).await.is_empty());
            // Nothing half-written holds the name or version 1.
            create_policy(&*store, &scope, &p).await;
            assert_eq!(version_ids(&*store, &scope, "atomic").await, vec![1]);
        }
    }

    let alias = role_alias(&scope, "atomic");
    match store.create_role_alias(&scope, &alias, &tags).await {
        Ok(()) => assert_eq!(all_tags(&*store, &scope, &alias.arn).await.len(), 2),
        Err(_) => {
            assert_eq!(store.get_role_alias(&scope, "atomic").await.unwrap(), None);
            assert!(all_tags(&*store, &scope, &alias.arn).await.is_empty());
            store
                .create_role_alias(&scope, &alias, &[])
                .await
                .expect("the alias is free");
        }
    }
}

/// Follows `list_policies` pages of `page` until a short page.
async fn policy_pages(
    store: &dyn Store,
    scope: &Scope,
    descending: bool,
    page: usize,
) -> Vec<String> {
    let key = |p: &PolicyRecord| p.name.clone();
    let policies = all_pages(page, key, async |after| {
        let after = after.as_deref();
        store.list_policies(scope, after, descending, page).await
    })
    .await;
    policies.into_iter().map(|p| p.name).collect()
}

/// Names created out of order; byte order puts "Beta" before "alpha" and "-" before "_".
const NAMES: [&str; 6] = ["gamma_1", "alpha", "zeta", "Beta", "gamma-2", "delta"];
const SORTED: [&str; 6] = ["Beta", "alpha", "delta", "gamma-2", "gamma_1", "zeta"];

/// Creates a policy of each of `NAMES` in a fresh scope, and "beta" in another that
/// listings must not show; returns the first scope.
async fn create_named(store: &dyn Store) -> Scope {
    let scope = fresh_scope();
    for name in NAMES {
        create_policy(store, &scope, &new_policy(&scope, name, DOC_1)).await;
    }
    let other = fresh_scope();
    create_policy(store, &other, &new_policy(&other, "beta", DOC_1)).await;
    scope
}

pub async fn policy_list_paging_both_directions(store: Arc<dyn Store>) {
    let scope = create_named(&*store).await;

    let mut reversed = SORTED;
    reversed.reverse();
    for page in [1, 2, 4, 6, 100] {
        assert_eq!(
            policy_pages(&*store, &scope, false, page).await,
            SORTED,
            "page {page}"
        );
        assert_eq!(
            policy_pages(&*store, &scope, true, page).await,
            reversed,
            "page {page}"
        );
    }
    let first = store.list_policies(&scope, None, false, 1).await.unwrap();
    let beta = store
        .get_policy(&scope, "Beta")
        .await
        .unwrap()
        .expect("Beta");
    assert_eq!(first, vec![beta], "listing returns whole records");

    // `after` need not be an existing name, in either direction.
    let names =
        |records: Vec<PolicyRecord>| records.into_iter().map(|p| p.name).collect::<Vec<_>>();
    // Nothing past either end, nothing in a page of none.
    for (after, descending, limit, expected) in [
        (Some("b"), false, 2, &["delta", "gamma-2"][..]),
        (Some("b"), true, 10, &["alpha", "Beta"]),
        (Some("zeta"), false, 10, &[]),
        (Some("Beta"), true, 10, &[]),
        (None, false, 0, &[]),
    ] {
        let page = ok(store.list_policies(&scope, after, descending, limit)).await;
        assert_eq!(
            names(page),
            expected,
            "after {after:?}, descending {descending}, limit {limit}"
        );
    }
}

pub async fn policy_account_and_region_isolation(store: Arc<dyn Store>) {
    let account = unique_account();
    for (a, b) in [
        (
            scope(&account, "us-east-1"),
            scope(&unique_account(), "us-east-1"),
        ),
        (scope(&account, "eu-west-1"), scope(&account, "us-west-2")),
    ] {
        let in_a = new_policy(&a, "shared", DOC_1);
        let in_b = new_policy(&b, "shared", DOC_1);
        store
            .create_policy(&a, &in_a, &[tag("owner", "a")])
            .await
            .expect("create in a");
        store
            .create_policy(&b, &in_b, &[tag("owner", "b")])
            .await
            .expect("same name in another scope is not a duplicate");
        add_version(&*store, &a, "shared", &version(2, true))
            .await
            .unwrap();
        // b's version ids are its own.
        let (_, made) = add_version(&*store, &b, "shared", &version(2, false))
            .await
            .unwrap();
        assert_eq!(made.version_id, 2);
        assert_eq!(default_id(&*store, &a, "shared").await, 2);
        assert_eq!(default_id(&*store, &b, "shared").await, 1);

        assert_eq!(
            store
                .delete_policy_version(&b, "shared", 2, 1)
                .await
                .unwrap(),
            Ok(())
        );
        assert_eq!(version_ids(&*store, &a, "shared").await, vec![1, 2]);
        assert_eq!(store.delete_policy(&b, "shared").await.unwrap(), Ok(()));
        assert!(store.get_policy(&a, "shared").await.unwrap().is_some());
        assert_tags(&*store, &a, &in_a.arn, &[("owner", "a")]).await;
        assert_eq!(
            store
                .list_policies(&a, None, false, NO_LIMIT)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(store
            .list_policies(&b, None, false, NO_LIMIT)
            .await
            .unwrap()
            .is_empty());
    }
}

/// Racers add versions to one policy at once, spread over so many handles on `db`; the
/// limit of five holds and every id is issued once.
pub async fn race_versions(db: &dyn Database, handles: usize) {
    let handles = &open_handles(db, handles).await;
    let scope = fresh_scope();
    create_policy(&*handles[0], &scope, &new_policy(&scope, "raced", DOC_1)).await;
    let outcomes = race(handles, 12, |i, store| {
        let scope = scope.clone();
        async move {
            store
                .create_policy_version(&scope, "raced", &version(i as i64, i % 2 == 0), 5)
                .await
        }
    })
    .await;
    let mut ids = BTreeSet::new();
    let mut refusals = 0;
    for outcome in outcomes {
        match outcome.expect("store call") {
            Ok((_, made)) => assert!(
                ids.insert(made.version_id),
                "id {} issued twice",
                made.version_id
            ),
            Err(refusal) => {
                assert_eq!(refusal, PolicyRefusal::TooManyVersions { limit: 5 });
                refusals += 1;
            }
        }
    }
    assert_eq!(
        ids,
        BTreeSet::from([2, 3, 4, 5]),
        "exactly four more versions"
    );
    assert_eq!(refusals, 8);
    assert_eq!(
        version_ids(&*handles[0], &scope, "raced").await,
        vec![1, 2, 3, 4, 5]
    );
    let default = default_id(&*handles[0], &scope, "raced").await;
    assert!((1..=5).contains(&default));
}

pub async fn concurrent_create_policy_same_name_exactly_one_wins(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let outcomes = race(slice::from_ref(&store), 8, |i, store| {
        let scope = scope.clone();
        async move {
            let mut p = new_policy(&scope, "contested", DOC_1);
            p.document = doc(i as i64);
            let result = store
                .create_policy(&scope, &p, &[tag("racer", &i.to_string())])
                .await;
            (i as i64, result)
        }
    })
    .await;
    let winner = sole_winner(outcomes);
    let (_, version) = store
        .get_policy_version(&scope, "contested", None)
        .await
        .unwrap()
        .expect("policy");
    assert_eq!(version.expect("default").document, doc(winner));
    let arn = new_policy(&scope, "contested", DOC_1).arn;
    assert_eq!(
        all_tags(&*store, &scope, &arn).await,
        vec![tag("racer", &winner.to_string())]
    );
}

/// Deletions, default switches and new versions racing on one policy leave it whole:
/// its default always exists and never more than five versions.
pub async fn concurrent_version_writes_keep_policy_consistent(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    create_policy(&*store, &scope, &new_policy(&scope, "busy", DOC_1)).await;
    for n in 2..=4 {
        add_version(&*store, &scope, "busy", &version(n, false))
            .await
            .unwrap();
    }
    let outcomes = race(slice::from_ref(&store), 24, |i, store| {
        let (scope, i) = (scope.clone(), i as i64);
        async move {
            let (target, generation) = (1 + i % 6, format!("g{i}"));
            let change = match i % 3 {
                0 => Write::Add(version(i, i % 2 == 0), 5),
                1 => Write::DeleteVersion(target, i),
                _ => Write::SetDefault(target, &generation, i),
            };
            write(&*store, &scope, "busy", change).await
        }
    })
    .await;
    for outcome in outcomes {
        match outcome {
            Ok(())
            | Err(PolicyRefusal::NoSuchVersion)
            | Err(PolicyRefusal::DefaultVersion)
            | Err(PolicyRefusal::TooManyVersions { .. }) => {}
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    let (policy, versions) = store
        .list_policy_versions(&scope, "busy")
        .await
        .unwrap()
        .expect("policy");
    assert!(versions.len() <= 5, "{} versions", versions.len());
    assert!(
        versions
            .iter()
            .any(|v| v.version_id == policy.default_version_id),
        "the default version {} must exist",
        policy.default_version_id
    );
    let ids: BTreeSet<i64> = versions.iter().map(|v| v.version_id).collect();
    assert_eq!(ids.len(), versions.len());
}

pub async fn policies_visible_across_handles(db: &dyn Database) {
    let a = db.open().await.expect("open a");
    let b = db.open().await.expect("open b");
    let scope = fresh_scope();
    let p = new_policy(&scope, "shared", DOC_1);
    a.create_policy(&scope, &p, &[]).await.unwrap();
    let (_, made) = add_version(&*b, &scope, "shared", &version(2, true))
        .await
        .unwrap();
    assert_eq!(made.version_id, 2);
    assert_eq!(default_id(&*a, &scope, "shared").await, 2);
    let alias = role_alias(&scope, "shared");
    b.create_role_alias(&scope, &alias, &[]).await.unwrap();
    assert_eq!(
        a.get_role_alias(&scope, "shared").await.unwrap(),
        Some(alias)
    );
    a.put_v2_logging_options(&scope, &v2_options(Some("ERROR"), false))
        .await
        .unwrap();
    assert!(b.get_v2_logging_options(&scope).await.unwrap().is_some());
}

fn role_alias(scope: &Scope, alias: &str) -> RoleAliasRecord {
    RoleAliasRecord {
        alias: alias.to_owned(),
        arn: format!(
            "arn:aws:iot:{}:{}:rolealias/{alias}",
            scope.region, scope.account_id
        ),
        role_arn: format!("arn:aws:iam::{}:role/devices", scope.account_id),
        credential_duration_seconds: 3600,
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
    }
}

pub async fn role_alias_crud(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let record = role_alias(&scope, "crud");
    ok(store.create_role_alias(&scope, &record, &[tag("env", "prod")])).await;
    assert_eq!(
        store.get_role_alias(&scope, "crud").await.unwrap(),
        Some(record.clone())
    );
    assert_tags(&*store, &scope, &record.arn, &[("env", "prod")]).await;

    let role_only = RoleAliasUpdate {
        role_arn: Some("arn:aws:iam::1:role/other".into()),
        credential_duration_seconds: None,
        updated_at_ms: 2_000,
    };
    let expected = RoleAliasRecord {
        role_arn: "arn:aws:iam::1:role/other".into(),
        updated_at_ms: 2_000,
        ..record.clone()
    };
    assert_eq!(
        store
            .update_role_alias(&scope, "crud", &role_only)
            .await
            .unwrap(),
        expected
    );
    let duration_only = RoleAliasUpdate {
        role_arn: None,
        credential_duration_seconds: Some(900),
        updated_at_ms: 3_000,
    };
    let expected = RoleAliasRecord {
        credential_duration_seconds: 900,
        updated_at_ms: 3_000,
        ..expected
    };
    assert_eq!(
        store
            .update_role_alias(&scope, "crud", &duration_only)
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        store.get_role_alias(&scope, "crud").await.unwrap(),
        Some(expected)
    );
    let missing = store.update_role_alias(&scope, "missing", &role_only).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    assert_eq!(store.get_role_alias(&scope, "missing").await.unwrap(), None);

    assert!(store.delete_role_alias(&scope, "crud").await.unwrap());
    assert!(!store.delete_role_alias(&scope, "crud").await.unwrap());
    assert_eq!(store.get_role_alias(&scope, "crud").await.unwrap(), None);
    assert!(all_tags(&*store, &scope, &record.arn).await.is_empty());
}

pub async fn role_alias_duplicate_writes_nothing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let original = role_alias(&scope, "dup");
    ok(store.create_role_alias(&scope, &original, &[tag("owner", "first")])).await;
    let duplicate = RoleAliasRecord {
        role_arn: "arn:aws:iam::1:role/second".into(),
        ..role_alias(&scope, "dup")
    };
    assert_already_exists(
        store
            .create_role_alias(&scope, &duplicate, &[tag("owner", "second")])
            .await,
    );
    assert_eq!(
        store.get_role_alias(&scope, "dup").await.unwrap(),
        Some(original.clone())
    );
    assert_tags(&*store, &scope, &original.arn, &[("owner", "first")]).await;

    let outcomes = race(slice::from_ref(&store), 8, |i, store| {
        let scope = scope.clone();
        async move {
            let alias = role_alias(&scope, "raced");
            store
                .create_role_alias(&scope, &alias, &[tag("i", &i.to_string())])
                .await
        }
    })
    .await;
    assert_eq!(count_wins(outcomes, assert_already_exists), 1);
    assert_eq!(
        all_tags(&*store, &scope, &role_alias(&scope, "raced").arn)
            .await
            .len(),
        1
    );
}

pub async fn role_alias_list_paging_both_directions(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    for alias in NAMES {
        store
            .create_role_alias(&scope, &role_alias(&scope, alias), &[])
            .await
            .unwrap();
    }
    let other = fresh_scope();
    store
        .create_role_alias(&other, &role_alias(&other, "beta"), &[])
        .await
        .unwrap();
    let mut reversed = SORTED;
    reversed.reverse();
    for descending in [false, true] {
        for page in [1, 2, 5, 6, 100] {
            let key = |r: &RoleAliasRecord| r.alias.clone();
            let listed = all_pages(page, key, async |after| {
                let after = after.as_deref();
                store
                    .list_role_aliases(&scope, after, descending, page)
                    .await
            })
            .await;
            let aliases: Vec<String> = listed.into_iter().map(|r| r.alias).collect();
            let expected = if descending { reversed } else { SORTED };
            assert_eq!(aliases, expected, "descending {descending}, page {page}");
        }
    }
    assert_eq!(
        store
            .list_role_aliases(&scope, None, false, 1)
            .await
            .unwrap(),
        vec![role_alias(&scope, "Beta")]
    );
}

pub async fn role_alias_isolation(store: Arc<dyn Store>) {
    let account = unique_account();
    let (a, b) = (scope(&account, "us-east-1"), scope(&account, "ap-south-1"));
    let c = scope(&unique_account(), "us-east-1");
    for s in [&a, &b, &c] {
        store
            .create_role_alias(s, &role_alias(s, "shared"), &[tag("owner", &s.region)])
            .await
            .expect("same alias in another scope is not a duplicate");
    }
    let update = RoleAliasUpdate {
        role_arn: None,
        credential_duration_seconds: Some(43_200),
        updated_at_ms: 5_000,
    };
    store
        .update_role_alias(&a, "shared", &update)
        .await
        .unwrap();
    assert!(store.delete_role_alias(&b, "shared").await.unwrap());
    assert_eq!(
        store.get_role_alias(&c, "shared").await.unwrap(),
        Some(role_alias(&c, "shared"))
    );
    assert_eq!(
        store
            .get_role_alias(&a, "shared")
            .await
            .unwrap()
            .unwrap()
            .credential_duration_seconds,
        43_200
    );
    assert_tags(
        &*store,
        &a,
        &role_alias(&a, "shared").arn,
        &[("owner", "us-east-1")],
    )
    .await;
    assert!(store
        .list_role_aliases(&b, None, false, NO_LIMIT)
        .await
        .unwrap()
        .is_empty());
}

fn v2_options(level: Option<&str>, disable_all_logs: bool) -> V2LoggingOptionsRecord {
    V2LoggingOptionsRecord {
        role_arn: Some("arn:aws:iam::1:role/logging".into()),
        default_log_level: level.map(str::to_owned),
        disable_all_logs,
        event_configurations_json: Some(r#"[{"eventType":"Connect","logLevel":"INFO"}]"#.into()),
        updated_at_ms: 1_000,
    }
}

pub async fn logging_options_unset_set_replace(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    assert_eq!(store.get_logging_options(&scope).await.unwrap(), None);
    assert_eq!(store.get_v2_logging_options(&scope).await.unwrap(), None);

    let v2 = v2_options(Some("DEBUG"), false);
    store.put_v2_logging_options(&scope, &v2).await.unwrap();
    assert_eq!(
        store.get_v2_logging_options(&scope).await.unwrap(),
        Some(v2.clone())
    );
    assert_eq!(
        store.get_logging_options(&scope).await.unwrap(),
        None,
        "v2 options are not v1 options"
    );

    let v1 = LoggingOptionsRecord {
        role_arn: "arn:aws:iam::1:role/v1".into(),
        log_level: Some("WARN".into()),
        updated_at_ms: 2_000,
    };
    store.put_logging_options(&scope, &v1).await.unwrap();
    assert_eq!(store.get_logging_options(&scope).await.unwrap(), Some(v1));
    assert_eq!(
        store.get_v2_logging_options(&scope).await.unwrap(),
        Some(v2),
        "v1 options leave v2 alone"
    );

    // Putting replaces every field, absent ones included.
    let bare = V2LoggingOptionsRecord {
        role_arn: None,
        default_log_level: None,
        disable_all_logs: true,
        event_configurations_json: None,
        updated_at_ms: 3_000,
    };
    let v1_bare = LoggingOptionsRecord {
        role_arn: "arn:aws:iam::1:role/v1b".into(),
        log_level: None,
        updated_at_ms: 4_000,
    };
    ok(store.put_v2_logging_options(&scope, &bare)).await;
    ok(store.put_logging_options(&scope, &v1_bare)).await;
    assert_eq!(ok(store.get_v2_logging_options(&scope)).await, Some(bare));
    assert_eq!(ok(store.get_logging_options(&scope)).await, Some(v1_bare));
}

pub async fn logging_options_isolation(store: Arc<dyn Store>) {
    let account = unique_account();
    let (a, b) = (scope(&account, "us-east-1"), scope(&account, "eu-west-1"));
    let c = scope(&unique_account(), "us-east-1");
    store
        .put_v2_logging_options(&a, &v2_options(Some("INFO"), false))
        .await
        .unwrap();
    store
        .put_logging_options(
            &c,
            &LoggingOptionsRecord {
                role_arn: "arn:aws:iam::1:role/c".into(),
                log_level: Some("ERROR".into()),
                updated_at_ms: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.get_v2_logging_options(&b).await.unwrap(), None);
    assert_eq!(store.get_v2_logging_options(&c).await.unwrap(), None);
    assert_eq!(store.get_logging_options(&a).await.unwrap(), None);
    assert_eq!(store.get_logging_options(&b).await.unwrap(), None);
    assert!(store.get_logging_options(&c).await.unwrap().is_some());
    assert_eq!(
        store.get_v2_logging_options(&a).await.unwrap(),
        Some(v2_options(Some("INFO"), false))
    );
    // Concurrent writers to one account's options: the row stays single and whole.
    let written = race(slice::from_ref(&store), 8, |i, store| {
        let a = a.clone();
        async move {
            let level = if i % 2 == 0 { "ERROR" } else { "WARN" };
            store
                .put_v2_logging_options(&a, &v2_options(Some(level), i % 3 == 0))
                .await
        }
    })
    .await;
    for put in written {
        put.expect("put");
    }
    let last = store
        .get_v2_logging_options(&a)
        .await
        .unwrap()
        .expect("options");
    assert!(matches!(
        last.default_log_level.as_deref(),
        Some("ERROR" | "WARN")
    ));
}

pub async fn policy_pages_with_default_versions(store: Arc<dyn Store>) {
    let scope = create_named(&*store).await;
    // "delta" gets a second version as its default, "gamma-2" one that is not.
    for (name, default) in [("delta", true), ("gamma-2", false)] {
        add_version(&*store, &scope, name, &version(2, default))
            .await
            .unwrap_or_else(|refusal| panic!("version 2 of {name}: {refusal:?}"));
    }

    for page in [1, 2, 4, 100] {
        let key = |row: &(PolicyRecord, _)| row.0.name.clone();
        let rows = all_pages(page, key, async |after| {
            let after = after.as_deref();
            store
                .list_policies_with_default_versions(&scope, after, page)
                .await
        })
        .await;
        let mut seen = Vec::new();
        for (policy, version) in &rows {
            let version = version.as_ref().expect("every policy has its default");
            assert_eq!(
                version.version_id, policy.default_version_id,
                "{}",
                policy.name
            );
            let expected = if policy.name == "delta" {
                doc(2)
            } else {
                DOC_1.to_owned()
            };
            assert_eq!(version.document, expected, "{}", policy.name);
            seen.push(policy.name.clone());
        }
        assert_eq!(seen, SORTED, "page {page}");
    }
}
