//! The storage conformance suite: the behaviour every engine must share, written once
//! against the [`Store`] traits.
//!
//! An engine's test file provides an async constructor for a fresh [`Database`] and
//! invokes [`conformance_tests!`](crate::conformance_tests), which generates one
//! `#[tokio::test]` per case:
//!
//! ```text
//! async fn fresh() -> MyDatabase { /* empty database, e.g. in a temp dir */ }
//! palisade_store::conformance_tests!(fresh);
//! ```
//!
//! The cases only use randomly named accounts, keys and resources, so they also hold
//! on a database shared between cases (as a PostgreSQL test server may be). They panic
//! on the first violation, like any test.

use std::slice;
use std::sync::Arc;

use async_trait::async_trait;
use rand::Rng;

use self::fixtures::{all_pages, count_wins, mapped, ok, open_handles, race, sole_winner};
// Supertrait methods are callable on `dyn Store` without importing the traits.
use crate::{
    Credential, MitigationActionRecord, MitigationActionUpdate, NewWorkItem, Scope, Store,
    StoreError, StoreResult, Tag, WorkItem,
};

pub mod audits;
pub mod certificates;
pub mod connections;
pub mod crls;
mod fixtures;
pub mod iam;
pub mod import;
pub mod mitigation_tasks;
pub mod policies;
pub mod scheduled;
pub mod suppressions;
pub mod things;

/// One database the suite can open handles on.
#[async_trait]
pub trait Database: Send + Sync {
    /// Opens a new handle on the database, sharing nothing in memory with handles
    /// opened before, as a separate process (server, CLI, another node) would.
    async fn open(&self) -> StoreResult<Arc<dyn Store>>;
}

/// Generates a `#[tokio::test]` for every conformance case. `$fresh` names an async
/// function returning a new, empty [`Database`]; each test gets its own.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_cases! {
            $fresh;
            [] store:
                credentials_crud,
                mitigation_action_crud,
                mitigation_action_duplicate_name,
                mitigation_action_limit,
                mitigation_action_list_paging_and_filter,
                tags_upsert_list_untag_limit,
                delete_removes_tags,
                concurrent_create_same_name_exactly_one_wins,
                concurrent_creates_respect_limit,
                failed_create_writes_nothing,
                work_claim_complete_in_order,
                work_duplicate_id,
                work_not_due_is_not_claimed,
                work_expired_lease_is_reclaimed,
                work_release_retries_later,
                once_marker_marks_once;
            [] (store isolation):
                account_isolation("eu-west-1", "eu-west-1"),
                region_isolation("us-east-1", "us-west-2");
            [] database:
                server_secret_is_stable,
                handles_see_each_others_writes,
                concurrent_creates_across_handles,
                work_concurrent_claims_are_disjoint,
                once_marker_race_across_handles;
            [audits::] store:
                audit_configuration_put_get_replace_delete,
                audit_task_create_get_update_versions,
                audit_task_create_enqueues_claimable_work,
                audit_task_duplicate_ids_write_nothing,
                audit_task_update_with_work_is_atomic,
                audit_task_in_progress_limit,
                audit_task_listing_order_range_filters_paging,
                audit_findings_insert_get_and_idempotence,
                audit_findings_listing_filters_and_paging,
                audit_purge_removes_old_finished_history,
                audit_state_isolated_between_accounts;
            [audits::] database:
                audit_task_limit_race_across_handles;
            [suppressions::] store:
                suppression_create_get_update_delete,
                suppression_duplicates_tokens_and_limit,
                suppression_listing_order_filters_paging,
                suppression_active_keys,
                suppressions_isolated_between_accounts;
            [suppressions::] database:
                suppression_create_race_across_handles;
            [crls::] store:
                crl_cache_put_get_newest_wins,
                related_resources_insert_list_paging_idempotence,
                related_resources_purged_with_their_task;
            [iam::] store:
                iam_documents_replace_list_and_isolate;
            [connections::] store:
                connections_open_takes_over_client_id,
                connections_open_retry_is_idempotent,
                connections_close_keeps_the_first_reason,
                connections_node_close_and_closed_among,
                connections_scan_windows_orders_and_pages,
                connections_latest_for_thing,
                connections_purge_keeps_open_and_recent,
                previous_scheduled_audit_start_finds_the_last_run;
            [connections::] database:
                gateway_secret_converges,
                registry_epoch_bumps,
                connections_concurrent_opens_leave_one_open;
            [scheduled::] store:
                scheduled_audit_crud,
                scheduled_audit_duplicate_and_limit,
                scheduled_audit_due_and_start,
                scheduled_audits_isolated_between_accounts;
            [scheduled::] database:
                scheduled_audit_limit_race_across_handles,
                scheduled_audit_start_race_across_handles;
            [mitigation_tasks::] store:
                mitigation_task_create_get_exists,
                mitigation_task_in_progress_limit,
                mitigation_task_listing_filters_and_paging,
                mitigation_task_cancel_counts_the_rest,
                mitigation_stage_deactivates_certificates,
                mitigation_stage_deactivates_ca_certificates,
                mitigation_stage_adds_things_to_groups,
                mitigation_stage_deactivates_many_certificates,
                mitigation_stage_adds_things_of_many_certificates,
                mitigation_stage_replaces_default_policy_versions,
                mitigation_stage_sets_logging_and_records_outside_outcomes,
                mitigation_stage_failure_skips_later_actions,
                mitigation_stage_lease_lost_writes_nothing,
                mitigation_chunks_end_the_task,
                mitigation_audit_finding_counts_and_boundaries,
                mitigation_purge_removes_old_finished_history;
            [mitigation_tasks::] (database race_to_the_limit):
                mitigation_task_limit_holds_under_concurrency(1),
                mitigation_task_limit_race_across_handles(3);
            [mitigation_tasks::] database:
                mitigation_concurrent_stages_across_handles;
        }
    };
}

/// Generates a `#[tokio::test]` per things case, like `conformance_tests!`.
#[macro_export]
macro_rules! things_conformance_tests {
    ($fresh:path) => {
        $crate::conformance_cases! {
            $fresh;
            [things::] store:
                thing_crud,
                thing_update_attributes,
                thing_list_paging_and_filters,
                thing_group_crud_and_hierarchy,
                thing_group_update,
                thing_group_listing,
                thing_membership_rules,
                thing_membership_listing,
                thing_deletes_remove_memberships,
                things_refused_writes_change_nothing,
                things_concurrent_create_same_name,
                thing_groups_concurrent_create_same_name,
                thing_membership_concurrent_adds_one_per_hierarchy;
            [things::] (store isolation):
                things_account_isolation("eu-west-1", "eu-west-1"),
                things_region_isolation("us-east-1", "us-west-2");
            [things::] database:
                thing_group_delete_races_child_create,
                thing_group_delete_races_member_add;
            [things::] (database race_to_group_limit):
                thing_membership_concurrent_adds_respect_limit(1),
                thing_membership_limit_across_handles(2);
        }
    };
}

/// Generates a `#[tokio::test]` per policies case, like `conformance_tests!`.
#[macro_export]
macro_rules! policies_conformance_tests {
    ($fresh:path) => {
        $crate::conformance_cases! {
            $fresh;
            [policies::] store:
                policy_crud,
                policy_versions_lifecycle,
                policy_duplicate_name_writes_nothing,
                policy_version_limit_and_ids_never_reused,
                policy_refusals_write_nothing,
                creates_are_all_or_nothing,
                policy_list_paging_both_directions,
                policy_pages_with_default_versions,
                policy_account_and_region_isolation,
                concurrent_create_policy_same_name_exactly_one_wins,
                concurrent_version_writes_keep_policy_consistent,
                role_alias_crud,
                role_alias_duplicate_writes_nothing,
                role_alias_list_paging_both_directions,
                role_alias_isolation,
                logging_options_unset_set_replace,
                logging_options_isolation;
            [policies::] (database race_versions):
                concurrent_policy_versions_respect_limit(1),
                policy_versions_race_across_handles(2);
            [policies::] database:
                policies_visible_across_handles;
        }
    };
}

/// Generates a `#[tokio::test]` per certificates case, like `conformance_tests!`.
#[macro_export]
macro_rules! certificates_conformance_tests {
    ($fresh:path) => {
        $crate::conformance_cases! {
            $fresh;
            [certificates::] store:
                certificate_crud_and_facts_round_trip,
                certificate_status_rules,
                certificate_delete_rules,
                certificate_duplicates_and_refusals_write_nothing,
                certificate_listing_pages_both_directions,
                certificates_in_use_in_creation_order,
                ca_certificate_crud_tags_and_subject_limit,
                certificates_isolated_by_account_and_region,
                registration_code_and_issuing_ca_first_one_stays,
                thing_principal_rules,
                policy_attachment_rules,
                concurrent_registrations_of_one_certificate_exactly_one_wins,
                concurrent_attach_and_delete_certificate_stay_consistent,
                concurrent_attach_and_delete_thing_stay_consistent,
                concurrent_attach_policy_and_delete_policy_stay_consistent,
                concurrent_issuing_ca_creation_agrees;
            [certificates::] database:
                certificate_registration_races_across_handles;
        }
    };
}

/// Generates a `#[tokio::test]` per import case, like `conformance_tests!`.
#[macro_export]
macro_rules! import_conformance_tests {
    ($fresh:path) => {
        $crate::conformance_cases! {
            $fresh;
            [import::] store:
                import_creates_resources_and_relations,
                import_items_see_earlier_items_of_the_batch,
                import_refusals_write_nothing_of_their_item,
                import_again_is_unchanged_and_different_is_refused,
                import_adds_missing_relations_to_identical_resources,
                import_many_relations_to_existing_things,
                import_is_isolated_by_scope;
        }
    };
}

/// Writes the tests of the exported `*conformance_tests!` macros: one `#[tokio::test]`
/// per case, in groups of cases of one module (`[things::]`, `[]` for this one) that
/// take either a fresh store (`store`) or the [`Database`] itself (`database`).
///
/// In a group `(store function)` or `(database function)`, every case is
/// `name(arguments)`: the test `name` runs `function` with the store or database and
/// those arguments, so that one function serves several cases.
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_cases {
    ($fresh:path; $($module:tt $kind:tt: $($case:ident $(($($arg:expr),*))?),+;)*) => {
        $($($crate::conformance_cases!(@test $kind $module $case [$($($arg),*)?] $fresh);)+)*
    };
    (@test ($kind:ident $body:ident) $module:tt $case:ident [$($arg:expr),*] $fresh:path) => {
        $crate::conformance_cases!(@emit $kind $module $case $body [$($arg),*] $fresh);
    };
    (@test $kind:ident $module:tt $case:ident [] $fresh:path) => {
        $crate::conformance_cases!(@emit $kind $module $case $case [] $fresh);
    };
    (@emit $kind:ident [$($module:ident::)*] $case:ident $body:ident [$($arg:expr),*] $fresh:path) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let db = $fresh().await;
            let on = $crate::conformance_cases!(@arg $kind db);
            $crate::conformance::$($module::)*$body(on $(, $arg)*).await;
        }
    };
    (@arg store $db:ident) => {
        $crate::conformance::Database::open(&$db)
            .await
            .expect("open store")
    };
    (@arg database $db:ident) => {
        &$db
    };
}

/// Large enough never to be the reason a create fails.
const NO_LIMIT: usize = 10_000;

const CERT_ACTION: &str = "UPDATE_DEVICE_CERTIFICATE";
const LOGGING_ACTION: &str = "ENABLE_IOT_LOGGING";

fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

fn unique_account() -> String {
    format!(
        "{:012}",
        rand::thread_rng().gen_range(0..1_000_000_000_000u64)
    )
}

fn scope(account_id: &str, region: &str) -> Scope {
    Scope {
        account_id: account_id.to_owned(),
        region: region.to_owned(),
    }
}

fn fresh_scope() -> Scope {
    scope(&unique_account(), "us-east-1")
}

fn action(scope: &Scope, name: &str, action_type: &str) -> MitigationActionRecord {
    MitigationActionRecord {
        name: name.to_owned(),
        id: unique("id-"),
        arn: format!(
            "arn:aws:iot:{}:{}:mitigationaction/{name}",
            scope.region, scope.account_id
        ),
        action_type: action_type.to_owned(),
        role_arn: format!("arn:aws:iam::{}:role/mitigation", scope.account_id),
        params_json: format!(r#"{{"{action_type}":{{}}}}"#),
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
    }
}

/// An update of the role alone.
fn role_update(role_arn: &str, updated_at_ms: i64) -> MitigationActionUpdate {
    MitigationActionUpdate {
        role_arn: Some(role_arn.to_owned()),
        params: None,
        updated_at_ms,
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

fn credential(access_key_id: &str, account_id: &str) -> Credential {
    Credential {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: unique("secret-"),
        account_id: account_id.to_owned(),
        created_at_ms: 1_000,
    }
}

/// The action `name` of `scope` is stored as `expected`, or not at all.
async fn assert_action(
    store: &dyn Store,
    scope: &Scope,
    name: &str,
    expected: Option<&MitigationActionRecord>,
) {
    let stored = ok(store.get_mitigation_action(scope, name)).await;
    assert_eq!(stored.as_ref(), expected, "action {name}");
}

async fn all_tags(store: &dyn Store, scope: &Scope, arn: &str) -> Vec<Tag> {
    store
        .list_tags(scope, arn, None, NO_LIMIT)
        .await
        .expect("list tags")
}

/// `arn` carries exactly the tags `expected`, in key order.
async fn assert_tags(store: &dyn Store, scope: &Scope, arn: &str, expected: &[(&str, &str)]) {
    let expected: Vec<Tag> = expected.iter().map(|(k, v)| tag(k, v)).collect();
    assert_eq!(all_tags(store, scope, arn).await, expected, "tags of {arn}");
}

async fn all_names(store: &dyn Store, scope: &Scope, action_type: Option<&str>) -> Vec<String> {
    mapped(
        store.list_mitigation_actions(scope, action_type, None, NO_LIMIT),
        |a| a.name,
    )
    .await
}

/// Follows `list_mitigation_actions` pages of `page` until a short page.
async fn page_through(
    store: &dyn Store,
    scope: &Scope,
    action_type: Option<&str>,
    page: usize,
) -> Vec<String> {
    let key = |a: &MitigationActionRecord| a.name.clone();
    let actions = all_pages(page, key, async |after| {
        store
            .list_mitigation_actions(scope, action_type, after.as_deref(), page)
            .await
    })
    .await;
    actions.into_iter().map(|a| a.name).collect()
}

fn assert_already_exists<T: std::fmt::Debug>(result: StoreResult<T>) {
    assert!(
        matches!(result, Err(StoreError::AlreadyExists)),
        "expected AlreadyExists, got {result:?}"
    );
}

fn assert_limit<T: std::fmt::Debug>(result: StoreResult<T>, expected: usize) {
    assert!(
        matches!(result, Err(StoreError::LimitExceeded { limit }) if limit == expected),
        "expected LimitExceeded {{ limit: {expected} }}, got {result:?}"
    );
}

pub async fn credentials_crud(store: Arc<dyn Store>) {
    let account = unique_account();
    let prefix = unique("AKIA");
    let (a, b) = (format!("{prefix}A"), format!("{prefix}B"));
    let cred_a = credential(&a, &account);
    let cred_b = credential(&b, &account);
    // Created out of order so the listing's ordering is actually tested.
    store.create_credential(&cred_b).await.expect("create b");
    store.create_credential(&cred_a).await.expect("create a");
    store
        .create_credential(&credential(&unique("AKIA"), &unique_account()))
        .await
        .expect("create other account");

    assert_eq!(
        store.get_credential(&a).await.unwrap(),
        Some(cred_a.clone())
    );
    assert_eq!(store.get_credential(&unique("AKIA")).await.unwrap(), None);

    assert_already_exists(store.create_credential(&credential(&a, &account)).await);
    assert_eq!(
        store.get_credential(&a).await.unwrap(),
        Some(cred_a.clone()),
        "a rejected duplicate must not overwrite"
    );

    let all = store.list_credentials().await.expect("list");
    assert!(
        all.windows(2)
            .all(|w| (&w[0].account_id, &w[0].access_key_id)
                < (&w[1].account_id, &w[1].access_key_id)),
        "credentials not ordered by account id, then access key id"
    );
    let mine: Vec<_> = all
        .into_iter()
        .filter(|c| c.account_id == account)
        .collect();
    assert_eq!(mine, vec![cred_a, cred_b.clone()]);

    assert!(store.delete_credential(&a).await.unwrap());
    assert!(!store.delete_credential(&a).await.unwrap());
    assert_eq!(store.get_credential(&a).await.unwrap(), None);
    assert_eq!(store.get_credential(&b).await.unwrap(), Some(cred_b));
}

pub async fn mitigation_action_crud(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let record = action(&scope, "crud", CERT_ACTION);
    store
        .create_mitigation_action(&scope, &record, &[tag("env", "prod")], NO_LIMIT)
        .await
        .expect("create");
    assert_action(&*store, &scope, "crud", Some(&record)).await;
    assert_tags(&*store, &scope, &record.arn, &[("env", "prod")]).await;

    // The role only, then the parameters only: what is not given stays.
    let role_only = role_update("arn:aws:iam::1:role/new", 2_000);
    let new_role = MitigationActionRecord {
        role_arn: "arn:aws:iam::1:role/new".into(),
        updated_at_ms: 2_000,
        ..record.clone()
    };
    let params_only = MitigationActionUpdate {
        role_arn: None,
        params: Some((LOGGING_ACTION.into(), r#"{"logLevel":"ERROR"}"#.into())),
        updated_at_ms: 3_000,
    };
    let new_params = MitigationActionRecord {
        action_type: LOGGING_ACTION.into(),
        params_json: r#"{"logLevel":"ERROR"}"#.into(),
        updated_at_ms: 3_000,
        ..new_role.clone()
    };
    for (update, expected) in [(&role_only, new_role), (&params_only, new_params)] {
        let updated = ok(store.update_mitigation_action(&scope, "crud", update)).await;
        assert_eq!(updated, expected);
        assert_action(&*store, &scope, "crud", Some(&expected)).await;
    }

    let missing = store
        .update_mitigation_action(&scope, "missing", &role_only)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    assert_action(&*store, &scope, "missing", None).await;

    assert!(store
        .delete_mitigation_action(&scope, "crud")
        .await
        .unwrap());
    assert_action(&*store, &scope, "crud", None).await;
    assert!(!store
        .delete_mitigation_action(&scope, "crud")
        .await
        .unwrap());
    assert!(all_names(&*store, &scope, None).await.is_empty());
}

pub async fn mitigation_action_duplicate_name(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let original = action(&scope, "dup", CERT_ACTION);
    store
        .create_mitigation_action(&scope, &original, &[], NO_LIMIT)
        .await
        .expect("create");
    let duplicate = action(&scope, "dup", LOGGING_ACTION);
    assert_already_exists(
        store
            .create_mitigation_action(&scope, &duplicate, &[], NO_LIMIT)
            .await,
    );
    assert_action(&*store, &scope, "dup", Some(&original)).await;
    assert_eq!(all_names(&*store, &scope, None).await, vec!["dup"]);
}

pub async fn mitigation_action_limit(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    for i in 0..3 {
        store
            .create_mitigation_action(
                &scope,
                &action(&scope, &format!("a{i}"), CERT_ACTION),
                &[],
                3,
            )
            .await
            .expect("create under limit");
    }
    assert_limit(
        store
            .create_mitigation_action(&scope, &action(&scope, "a3", CERT_ACTION), &[], 3)
            .await,
        3,
    );
    assert_action(&*store, &scope, "a3", None).await;

    // Deleting frees a slot.
    assert!(store.delete_mitigation_action(&scope, "a0").await.unwrap());
    store
        .create_mitigation_action(&scope, &action(&scope, "a3", CERT_ACTION), &[], 3)
        .await
        .expect("create after delete");

    let empty = fresh_scope();
    assert_limit(
        store
            .create_mitigation_action(&empty, &action(&empty, "x", CERT_ACTION), &[], 0)
            .await,
        0,
    );
}

pub async fn mitigation_action_list_paging_and_filter(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    // Names are ordered by bytes ("Beta" < "alpha", "-" < "_"), so every engine pages
    // identically whatever its locale.
    let actions = [
        ("gamma_1", CERT_ACTION),
        ("alpha", LOGGING_ACTION),
        ("zeta", CERT_ACTION),
        ("Beta", CERT_ACTION),
        ("gamma-2", LOGGING_ACTION),
        ("delta", CERT_ACTION),
    ];
    let mut records = Vec::new();
    for (name, action_type) in actions {
        let record = action(&scope, name, action_type);
        store
            .create_mitigation_action(&scope, &record, &[], NO_LIMIT)
            .await
            .expect("create");
        records.push(record);
    }
    // Other scopes' actions must not leak into the listing.
    let other = fresh_scope();
    store
        .create_mitigation_action(&other, &action(&other, "beta", CERT_ACTION), &[], NO_LIMIT)
        .await
        .expect("create other");

    let sorted = ["Beta", "alpha", "delta", "gamma-2", "gamma_1", "zeta"];
    for page in [1, 2, 4, 6, 100] {
        assert_eq!(
            page_through(&*store, &scope, None, page).await,
            sorted,
            "page {page}"
        );
    }
    let certs = ["Beta", "delta", "gamma_1", "zeta"];
    for page in [1, 3, 100] {
        assert_eq!(
            page_through(&*store, &scope, Some(CERT_ACTION), page).await,
            certs,
            "page {page}"
        );
    }
    assert_eq!(
        all_names(&*store, &scope, Some(LOGGING_ACTION)).await,
        ["alpha", "gamma-2"]
    );
    assert!(all_names(&*store, &scope, Some("PUBLISH_FINDING_TO_SNS"))
        .await
        .is_empty());

    // `after` need not be an existing name.
    let from_b = store
        .list_mitigation_actions(&scope, None, Some("b"), 2)
        .await
        .unwrap();
    let by_name = |name: &str| records.iter().find(|r| r.name == name).cloned().unwrap();
    assert_eq!(from_b, vec![by_name("delta"), by_name("gamma-2")]);
    // Nothing after the last name, nothing in a page of none.
    for (after, limit) in [(Some("zeta"), 10), (None, 0)] {
        let page = ok(store.list_mitigation_actions(&scope, None, after, limit)).await;
        assert!(page.is_empty(), "after {after:?}, limit {limit}");
    }
}

/// Two scopes in these regions (see `fixtures::apart`) using the same names and
/// the same tagged ARN never see each other.
pub async fn isolation(store: Arc<dyn Store>, region_a: &str, region_b: &str) {
    let (a, b) = fixtures::apart(region_a, region_b);
    let (store, a, b) = (&*store, &a, &b);
    let in_a = action(a, "shared", CERT_ACTION);
    let in_b = action(b, "shared", LOGGING_ACTION);
    // A limit of one per scope: b's create succeeds only if a's action is not counted,
    // and only if the same name in another scope is not a duplicate.
    for (scope, record, owner) in [(a, &in_a, "a"), (b, &in_b, "b")] {
        let tags = [tag("owner", owner)];
        let created = store
            .create_mitigation_action(scope, record, &tags, 1)
            .await;
        created.unwrap_or_else(|e| panic!("create in {owner}: {e:?}"));
    }

    assert_action(store, a, "shared", Some(&in_a)).await;
    assert_action(store, b, "shared", Some(&in_b)).await;
    assert_eq!(
        store
            .list_mitigation_actions(a, None, None, NO_LIMIT)
            .await
            .unwrap(),
        vec![in_a.clone()]
    );

    // The same ARN string tagged in both scopes stays two separate tag sets.
    let arn = unique("arn:aws:iot:us-east-1:123456789012:thing/");
    store
        .tag_resource(a, &arn, &[tag("k", "a")], 1)
        .await
        .expect("tag in a");
    store
        .tag_resource(b, &arn, &[tag("k", "b")], 1)
        .await
        .expect("tag in b: a's tags do not count");
    store
        .untag_resource(b, &in_a.arn, &["owner".into()])
        .await
        .unwrap();
    assert_tags(store, a, &arn, &[("k", "a")]).await;
    assert_tags(store, a, &in_a.arn, &[("owner", "a")]).await;

    let update = role_update("arn:aws:iam::1:role/changed", 5_000);
    store
        .update_mitigation_action(a, "shared", &update)
        .await
        .unwrap();
    assert_action(store, b, "shared", Some(&in_b)).await;

    assert!(store.delete_mitigation_action(a, "shared").await.unwrap());
    assert_action(store, b, "shared", Some(&in_b)).await;
    assert_tags(store, b, &in_b.arn, &[("owner", "b")]).await;
    assert_tags(store, b, &arn, &[("k", "b")]).await;
}

pub async fn tags_upsert_list_untag_limit(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let arn = unique("arn:aws:iot:us-east-1:123456789012:thing/");
    let neighbour = unique("arn:aws:iot:us-east-1:123456789012:thing/");
    store
        .tag_resource(&scope, &neighbour, &[tag("n", "1")], 3)
        .await
        .unwrap();

    store
        .tag_resource(&scope, &arn, &[tag("k2", "v2"), tag("k1", "v1")], 3)
        .await
        .expect("first tags");
    store
        .tag_resource(&scope, &arn, &[tag("k2", "v2b"), tag("k3", "v3")], 3)
        .await
        .expect("upsert reaching the limit exactly");
    let full = vec![tag("k1", "v1"), tag("k2", "v2b"), tag("k3", "v3")];
    assert_eq!(all_tags(&*store, &scope, &arn).await, full);

    // Over the limit: rejected whole, including the overwrite that came with it.
    assert_limit(
        store
            .tag_resource(&scope, &arn, &[tag("k1", "changed"), tag("k4", "v4")], 3)
            .await,
        3,
    );
    assert_eq!(all_tags(&*store, &scope, &arn).await, full);
    // Overwriting at the limit adds nothing, so it is allowed.
    store
        .tag_resource(&scope, &arn, &[tag("k1", "v1b")], 3)
        .await
        .expect("overwrite at limit");

    let first = store.list_tags(&scope, &arn, None, 2).await.unwrap();
    assert_eq!(first, vec![tag("k1", "v1b"), tag("k2", "v2b")]);
    let rest = store.list_tags(&scope, &arn, Some("k2"), 2).await.unwrap();
    assert_eq!(rest, vec![tag("k3", "v3")]);
    assert!(store
        .list_tags(&scope, &arn, None, 0)
        .await
        .unwrap()
        .is_empty());

    store
        .untag_resource(&scope, &arn, &["k1".into(), "unknown".into()])
        .await
        .expect("untag");
    store
        .untag_resource(&scope, &arn, &[])
        .await
        .expect("untag nothing");
    assert_tags(&*store, &scope, &arn, &[("k2", "v2b"), ("k3", "v3")]).await;
    assert_tags(&*store, &scope, &neighbour, &[("n", "1")]).await;
}

pub async fn delete_removes_tags(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let doomed = action(&scope, "doomed", CERT_ACTION);
    let kept = action(&scope, "kept", CERT_ACTION);
    store
        .create_mitigation_action(&scope, &doomed, &[tag("a", "1")], NO_LIMIT)
        .await
        .unwrap();
    store
        .tag_resource(&scope, &doomed.arn, &[tag("b", "2")], 50)
        .await
        .unwrap();
    store
        .create_mitigation_action(&scope, &kept, &[tag("a", "1")], NO_LIMIT)
        .await
        .unwrap();

    assert!(store
        .delete_mitigation_action(&scope, "doomed")
        .await
        .unwrap());
    assert!(all_tags(&*store, &scope, &doomed.arn).await.is_empty());
    assert_tags(&*store, &scope, &kept.arn, &[("a", "1")]).await;

    // A new action under the same name (and so the same ARN) starts untagged.
    store
        .create_mitigation_action(
            &scope,
            &action(&scope, "doomed", CERT_ACTION),
            &[],
            NO_LIMIT,
        )
        .await
        .unwrap();
    assert!(all_tags(&*store, &scope, &doomed.arn).await.is_empty());
}

pub async fn concurrent_create_same_name_exactly_one_wins(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let outcomes = race(slice::from_ref(&store), 8, |i, store| {
        let scope = scope.clone();
        async move {
            let record = action(&scope, "contested", CERT_ACTION);
            let tags = [tag("racer", &i.to_string())];
            let result = store
                .create_mitigation_action(&scope, &record, &tags, NO_LIMIT)
                .await;
            ((i, record), result)
        }
    })
    .await;
    let (i, record) = sole_winner(outcomes);
    assert_action(&*store, &scope, "contested", Some(&record)).await;
    assert_eq!(
        all_tags(&*store, &scope, &record.arn).await,
        vec![tag("racer", &i.to_string())],
        "losers' tags must not be written"
    );
}

pub async fn concurrent_creates_respect_limit(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let handles = vec![store];
    race_to_limit(&handles, &scope).await;
}

pub async fn failed_create_writes_nothing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let original = action(&scope, "taken", CERT_ACTION);
    store
        .create_mitigation_action(&scope, &original, &[tag("owner", "first")], 1)
        .await
        .unwrap();

    // Same name, so the same ARN: its tags would land on the original's tag set.
    let duplicate = action(&scope, "taken", CERT_ACTION);
    assert_already_exists(
        store
            .create_mitigation_action(
                &scope,
                &duplicate,
                &[tag("owner", "second"), tag("extra", "x")],
                NO_LIMIT,
            )
            .await,
    );
    assert_tags(&*store, &scope, &original.arn, &[("owner", "first")]).await;

    let over = action(&scope, "over", CERT_ACTION);
    assert_limit(
        store
            .create_mitigation_action(&scope, &over, &[tag("k", "v")], 1)
            .await,
        1,
    );
    assert_action(&*store, &scope, "over", None).await;
    assert!(all_tags(&*store, &scope, &over.arn).await.is_empty());
    assert_eq!(all_names(&*store, &scope, None).await, vec!["taken"]);
}

pub async fn server_secret_is_stable(db: &dyn Database) {
    let first = db.open().await.expect("open");
    let secret = first.server_secret().await.expect("secret");
    assert_eq!(secret.len(), 32);
    assert_ne!(secret, vec![0u8; 32]);
    assert_eq!(first.server_secret().await.unwrap(), secret);

    let concurrent = db.open().await.expect("open second");
    assert_eq!(concurrent.server_secret().await.unwrap(), secret);
    drop((first, concurrent));

    let reopened = db.open().await.expect("reopen");
    assert_eq!(reopened.server_secret().await.unwrap(), secret);
}

/// What one handle (the server, say) writes, another (the CLI) reads at once.
pub async fn handles_see_each_others_writes(db: &dyn Database) {
    let a = db.open().await.expect("open a");
    let b = db.open().await.expect("open b");

    let cred = credential(&unique("AKIA"), &unique_account());
    a.create_credential(&cred).await.unwrap();
    assert_eq!(
        b.get_credential(&cred.access_key_id).await.unwrap(),
        Some(cred.clone())
    );
    assert_already_exists(b.create_credential(&cred).await);

    let scope = fresh_scope();
    let record = action(&scope, "shared", CERT_ACTION);
    b.create_mitigation_action(&scope, &record, &[tag("k", "v")], NO_LIMIT)
        .await
        .unwrap();
    assert_action(&*a, &scope, "shared", Some(&record)).await;
    assert_tags(&*a, &scope, &record.arn, &[("k", "v")]).await;

    let update = role_update("arn:aws:iam::1:role/other", 9_000);
    let updated = a
        .update_mitigation_action(&scope, "shared", &update)
        .await
        .unwrap();
    assert_action(&*b, &scope, "shared", Some(&updated)).await;

    assert!(b.delete_mitigation_action(&scope, "shared").await.unwrap());
    assert_action(&*a, &scope, "shared", None).await;
    assert!(a.delete_credential(&cred.access_key_id).await.unwrap());
    assert_eq!(b.get_credential(&cred.access_key_id).await.unwrap(), None);

    assert_eq!(
        a.server_secret().await.unwrap(),
        b.server_secret().await.unwrap()
    );
}

/// Uniqueness and the scope limit hold across handles (processes), not only within one.
pub async fn concurrent_creates_across_handles(db: &dyn Database) {
    let handles = open_handles(db, 2).await;
    race_to_limit(&handles, &fresh_scope()).await;

    let scope = fresh_scope();
    let outcomes = race(&handles, 8, |_, store| {
        let scope = scope.clone();
        async move {
            let record = action(&scope, "contested", CERT_ACTION);
            store
                .create_mitigation_action(&scope, &record, &[], NO_LIMIT)
                .await
        }
    })
    .await;
    assert_eq!(
        count_wins(outcomes, assert_already_exists),
        1,
        "exactly one create must win across handles"
    );
}

/// Ten racers with distinct names, spread over `handles`, against a limit of five.
async fn race_to_limit(handles: &[Arc<dyn Store>], scope: &Scope) {
    const LIMIT: usize = 5;
    let outcomes = race(handles, 2 * LIMIT, |i, store| {
        let scope = scope.clone();
        async move {
            let record = action(&scope, &format!("racer-{i:02}"), CERT_ACTION);
            store
                .create_mitigation_action(&scope, &record, &[tag("k", "v")], LIMIT)
                .await
        }
    })
    .await;
    assert_eq!(
        count_wins(outcomes, |loser| assert_limit(loser, LIMIT)),
        LIMIT,
        "exactly the limit's worth of creates must win"
    );
    let names = all_names(&*handles[0], scope, None).await;
    assert_eq!(names.len(), LIMIT);
    for name in names {
        let arn = action(scope, &name, CERT_ACTION).arn;
        assert_tags(&*handles[0], scope, &arn, &[("k", "v")]).await;
    }
}

fn work(queue: &str, id: &str, run_after_ms: i64) -> NewWorkItem {
    NewWorkItem {
        id: id.to_owned(),
        queue: queue.to_owned(),
        payload: format!(r#"{{"step":"{id}"}}"#),
        run_after_ms,
    }
}

async fn enqueue_all(store: &dyn Store, items: &[NewWorkItem]) {
    for item in items {
        store.enqueue_work(item).await.expect("enqueue");
    }
}

/// Enqueues one item of an id starting `prefix`, due at `run_after_ms`, on a queue of
/// its own: the queue and the id.
async fn enqueue_one(store: &dyn Store, prefix: &str, run_after_ms: i64) -> (String, String) {
    let (queue, id) = (unique("q-"), unique(prefix));
    enqueue_all(store, &[work(&queue, &id, run_after_ms)]).await;
    (queue, id)
}

fn ids(items: &[WorkItem]) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

pub async fn work_claim_complete_in_order(store: Arc<dyn Store>) {
    let queue = unique("q-");
    let (a, b, c) = (unique("a-"), unique("b-"), unique("c-"));
    // Due order is run_after first, so `c` (due earliest) comes first whatever its id.
    enqueue_all(
        &*store,
        &[
            work(&queue, &a, 200),
            work(&queue, &b, 300),
            work(&queue, &c, 100),
        ],
    )
    .await;
    let other_queue = unique("q-");
    enqueue_all(&*store, &[work(&other_queue, &unique("x-"), 0)]).await;

    let first = ok(store.claim_work(&queue, "w1", 2, 1_000, 60_000)).await;
    assert_eq!(ids(&first), vec![c.as_str(), a.as_str()]);
    for item in &first {
        assert_eq!(item.queue, queue);
        assert_eq!(item.attempts, 1);
        assert_eq!(item.lease_owner.as_deref(), Some("w1"));
        assert_eq!(item.lease_expires_at_ms, Some(61_000));
        assert_eq!(item.payload, format!(r#"{{"step":"{}"}}"#, item.id));
    }
    let second = ok(store.claim_work(&queue, "w2", 5, 1_000, 60_000)).await;
    assert_eq!(ids(&second), vec![b.as_str()]);
    assert!(ok(store.claim_work(&queue, "w3", 5, 1_000, 60_000))
        .await
        .is_empty());

    assert!(
        !store.complete_work(&c, "w2").await.expect("complete"),
        "not w2's lease"
    );
    assert!(store.complete_work(&c, "w1").await.expect("complete"));
    assert!(store.get_work(&c).await.expect("get").is_none());
    assert!(
        !store.complete_work(&c, "w1").await.expect("complete"),
        "already gone"
    );
    let a_item = store
        .get_work(&a)
        .await
        .expect("get")
        .expect("a still queued");
    assert_eq!(a_item.lease_owner.as_deref(), Some("w1"));
}

pub async fn work_duplicate_id(store: Arc<dyn Store>) {
    let (queue, id) = enqueue_one(&*store, "dup-", 0).await;
    assert_already_exists(store.enqueue_work(&work(&queue, &id, 5)).await);
    assert_eq!(
        store
            .get_work(&id)
            .await
            .expect("get")
            .expect("item")
            .run_after_ms,
        0
    );
}

pub async fn work_not_due_is_not_claimed(store: Arc<dyn Store>) {
    let (queue, id) = enqueue_one(&*store, "later-", 5_000).await;
    assert!(ok(store.claim_work(&queue, "w", 10, 4_999, 1_000))
        .await
        .is_empty());
    let claimed = ok(store.claim_work(&queue, "w", 10, 5_000, 1_000)).await;
    assert_eq!(ids(&claimed), vec![id.as_str()]);
}

pub async fn work_expired_lease_is_reclaimed(store: Arc<dyn Store>) {
    let (queue, id) = enqueue_one(&*store, "lease-", 0).await;
    assert_eq!(
        ok(store.claim_work(&queue, "a", 1, 10_000, 1_000))
            .await
            .len(),
        1
    );

    // While the lease runs, nobody else gets the item; renewing extends it.
    assert!(ok(store.claim_work(&queue, "b", 1, 10_500, 1_000))
        .await
        .is_empty());
    assert!(ok(store.renew_lease(&id, "a", 10_900, 1_000)).await);
    assert!(ok(store.claim_work(&queue, "b", 1, 11_500, 1_000))
        .await
        .is_empty());
    assert!(
        !ok(store.renew_lease(&id, "b", 11_500, 1_000)).await,
        "b holds no lease"
    );

    // `a` stalls past expiry: the lease lapses and `b` takes over.
    assert!(
        !ok(store.renew_lease(&id, "a", 11_900, 1_000)).await,
        "expired lease cannot be renewed"
    );
    let taken = ok(store.claim_work(&queue, "b", 1, 11_900, 1_000)).await;
    assert_eq!(ids(&taken), vec![id.as_str()]);
    assert_eq!(taken[0].attempts, 2);
    assert!(
        !store.complete_work(&id, "a").await.expect("complete"),
        "a lost its lease"
    );
    assert!(
        !store.release_work(&id, "a", 0).await.expect("release"),
        "a lost its lease"
    );
    assert!(ok(store.renew_lease(&id, "b", 12_000, 1_000)).await);
    assert!(store.complete_work(&id, "b").await.expect("complete"));
}

pub async fn work_release_retries_later(store: Arc<dyn Store>) {
    let (queue, id) = enqueue_one(&*store, "retry-", 0).await;
    ok(store.claim_work(&queue, "w", 1, 1_000, 60_000)).await;
    assert!(store.release_work(&id, "w", 5_000).await.expect("release"));
    let item = store.get_work(&id).await.expect("get").expect("item");
    assert_eq!(
        (
            item.lease_owner,
            item.lease_expires_at_ms,
            item.run_after_ms
        ),
        (None, None, 5_000)
    );
    assert!(ok(store.claim_work(&queue, "w", 1, 4_000, 60_000))
        .await
        .is_empty());
    let again = ok(store.claim_work(&queue, "w2", 1, 5_000, 60_000)).await;
    assert_eq!(again[0].attempts, 2);
}

pub async fn once_marker_marks_once(store: Arc<dyn Store>) {
    let key = unique("schedule/daily/");
    assert!(store.mark_once(&key, 1).await.expect("mark"));
    assert!(!store.mark_once(&key, 2).await.expect("mark"));
    assert!(store
        .mark_once(&unique("schedule/daily/"), 3)
        .await
        .expect("mark"));
}

/// Claimers on several handles (nodes) split the queue: every item goes to exactly one.
pub async fn work_concurrent_claims_are_disjoint(db: &dyn Database) {
    let handles = open_handles(db, 2).await;
    let queue = unique("q-");
    let items: Vec<NewWorkItem> = (0..24)
        .map(|i| work(&queue, &format!("item-{i:02}-{}", unique("")), i))
        .collect();
    enqueue_all(&*handles[0], &items).await;

    let claimed = race(&handles, 8, |w, store| {
        let queue = queue.clone();
        async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_work(&queue, &format!("w{w}"), 2, 1_000, 60_000)
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|i| i.id));
            }
        }
    })
    .await;
    let mut all = claimed.concat();
    all.sort();
    let mut expected: Vec<String> = items.into_iter().map(|i| i.id).collect();
    expected.sort();
    assert_eq!(all, expected, "every item claimed exactly once");
}

pub async fn once_marker_race_across_handles(db: &dyn Database) {
    let handles = open_handles(db, 2).await;
    let key = unique("schedule/weekly/");
    let marked = race(&handles, 8, |i, store| {
        let key = key.clone();
        async move { store.mark_once(&key, i as i64).await.expect("mark") }
    })
    .await;
    let wins = marked.into_iter().filter(|&won| won).count();
    assert_eq!(wins, 1, "exactly one racer marks the key");
}
