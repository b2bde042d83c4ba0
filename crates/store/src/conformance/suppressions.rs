//! Conformance cases for audit suppressions; instantiated by `conformance_tests!` with
//! the rest of the suite.

use std::sync::Arc;

use super::fixtures::{all_pages, ok, open_handles, race, ALL, T0};
use super::{fresh_scope, scope, unique, Database, NO_LIMIT};
use crate::{
    AuditSuppressionFilter, AuditSuppressionRecord, AuditSuppressionUpdate, Scope, Store,
    SuppressionCreated, SuppressionRefusal,
};

const CHECK_A: &str = "DEVICE_CERTIFICATE_EXPIRING_CHECK";
const CHECK_B: &str = "LOGGING_DISABLED_CHECK";

fn suppression(check: &str, key: &str, expiration_ms: Option<i64>) -> AuditSuppressionRecord {
    AuditSuppressionRecord {
        check_name: check.to_owned(),
        resource_key: key.to_owned(),
        resource_json: format!(r#"{{"k":"{key}"}}"#),
        expiration_ms,
        suppress_indefinitely: expiration_ms.is_none(),
        description: Some(format!("about {key}")),
        client_request_token: unique("tok-"),
        created_at_ms: T0,
        updated_at_ms: T0,
    }
}

async fn create(store: &dyn Store, scope: &Scope, record: &AuditSuppressionRecord) {
    let created = ok(store.create_audit_suppression(scope, record, NO_LIMIT)).await;
    assert_eq!(created, Ok(SuppressionCreated::Created));
}

/// Every suppression of the listing, paging `page` at a time; as (check, key) pairs.
async fn listed(
    store: &dyn Store,
    scope: &Scope,
    filter: &AuditSuppressionFilter,
    ascending: bool,
    page: usize,
) -> Vec<(String, String)> {
    let key = AuditSuppressionRecord::listing_key;
    let rows = all_pages(page, key, async |after| {
        store
            .list_audit_suppressions(scope, filter, ascending, after.as_ref(), page)
            .await
    })
    .await;
    rows.into_iter()
        .map(|r| (r.check_name, r.resource_key))
        .collect()
}

/// Every suppression of `scope`, in ascending order.
async fn listed_all(store: &dyn Store, scope: &Scope) -> Vec<(String, String)> {
    let all = AuditSuppressionFilter::default();
    listed(store, scope, &all, true, ALL).await
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(c, k)| ((*c).to_owned(), (*k).to_owned()))
        .collect()
}

pub async fn suppression_create_get_update_delete(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let record = suppression(CHECK_A, "deviceCertificateId=abc", Some(T0 + 1_000));
    assert_eq!(
        ok(store.get_audit_suppression(&scope, CHECK_A, &record.resource_key)).await,
        None
    );
    create(&*store, &scope, &record).await;
    assert_eq!(
        ok(store.get_audit_suppression(&scope, CHECK_A, &record.resource_key)).await,
        Some(record.clone())
    );
    // Same key under another check is another suppression.
    assert_eq!(
        ok(store.get_audit_suppression(&scope, CHECK_B, &record.resource_key)).await,
        None
    );

    // Description only: the lifetime stays.
    let update = AuditSuppressionUpdate {
        lifetime: None,
        description: Some("new".into()),
        updated_at_ms: T0 + 5,
    };
    let updated =
        ok(store.update_audit_suppression(&scope, CHECK_A, &record.resource_key, &update))
            .await
            .expect("updated");
    let expected = AuditSuppressionRecord {
        description: Some("new".into()),
        updated_at_ms: T0 + 5,
        ..record.clone()
    };
    assert_eq!(updated, expected);
    // Lifetime: indefinite, then a date again; the description stays.
    let lifetime = |lifetime, updated_at_ms| AuditSuppressionUpdate {
        lifetime: Some(lifetime),
        description: None,
        updated_at_ms,
    };
    let key = record.resource_key.as_str();
    let mut updated = expected;
    for (given, at) in [((None, true), T0 + 6), ((Some(T0 + 9), false), T0 + 7)] {
        updated = ok(store.update_audit_suppression(&scope, CHECK_A, key, &lifetime(given, at)))
            .await
            .expect("updated");
        let got = (
            updated.expiration_ms,
            updated.suppress_indefinitely,
            updated.description.as_deref(),
            updated.updated_at_ms,
        );
        assert_eq!(got, (given.0, given.1, Some("new"), at));
    }
    assert_eq!(
        ok(store.get_audit_suppression(&scope, CHECK_A, key)).await,
        Some(updated)
    );
    let update = lifetime((Some(T0 + 9), false), T0 + 7);
    assert_eq!(
        ok(store.update_audit_suppression(&scope, CHECK_B, key, &update)).await,
        None
    );

    assert!(store
        .delete_audit_suppression(&scope, CHECK_A, &record.resource_key)
        .await
        .unwrap());
    assert!(!store
        .delete_audit_suppression(&scope, CHECK_A, &record.resource_key)
        .await
        .unwrap());
    assert_eq!(
        ok(store.get_audit_suppression(&scope, CHECK_A, &record.resource_key)).await,
        None
    );
    // Its token is free again once it is gone.
    create(&*store, &scope, &record).await;
}

pub async fn suppression_duplicates_tokens_and_limit(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let first = suppression(CHECK_A, "k1", None);
    create(&*store, &scope, &first).await;

    // The same token and key: a retry, answered with what exists, changing nothing.
    let retry = AuditSuppressionRecord {
        description: Some("different".into()),
        expiration_ms: Some(T0),
        suppress_indefinitely: false,
        ..first.clone()
    };
    assert_eq!(
        ok(store.create_audit_suppression(&scope, &retry, NO_LIMIT)).await,
        Ok(SuppressionCreated::Replayed(first.clone()))
    );
    // The same key under a new token.
    let again = suppression(CHECK_A, "k1", Some(T0));
    assert_eq!(
        ok(store.create_audit_suppression(&scope, &again, NO_LIMIT)).await,
        Err(SuppressionRefusal::KeyExists)
    );
    // The token of `first` for another key.
    let reused = AuditSuppressionRecord {
        client_request_token: first.client_request_token.clone(),
        ..suppression(CHECK_A, "k2", None)
    };
    assert_eq!(
        ok(store.create_audit_suppression(&scope, &reused, NO_LIMIT)).await,
        Err(SuppressionRefusal::TokenInUse)
    );
    // A token is the scope's: another account may use it.
    let elsewhere = super::scope(&super::unique_account(), &scope.region);
    create(&*store, &elsewhere, &reused).await;

    let second = suppression(CHECK_B, "k1", None);
    create(&*store, &scope, &second).await;
    assert_eq!(
        ok(store.create_audit_suppression(&scope, &suppression(CHECK_B, "k3", None), 2)).await,
        Err(SuppressionRefusal::LimitReached)
    );
    assert_eq!(
        listed_all(&*store, &scope).await,
        pairs(&[(CHECK_A, "k1"), (CHECK_B, "k1")])
    );
}

pub async fn suppression_listing_order_filters_paging(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    // (check, key, expiration); None is indefinite.
    let rows = [
        (CHECK_A, "a", Some(T0 + 30)),
        (CHECK_A, "b", Some(T0 + 10)),
        (CHECK_B, "a", Some(T0 + 10)),
        (CHECK_B, "b", None),
        (CHECK_A, "c", None),
        (CHECK_B, "c", Some(T0 + 20)),
    ];
    for (check, key, exp) in rows {
        create(&*store, &scope, &suppression(check, key, exp)).await;
    }
    let ascending = pairs(&[
        (CHECK_A, "b"),
        (CHECK_B, "a"),
        (CHECK_B, "c"),
        (CHECK_A, "a"),
        (CHECK_A, "c"),
        (CHECK_B, "b"),
    ]);
    let all = AuditSuppressionFilter::default();
    for page in [1, 2, 4, ALL] {
        assert_eq!(listed(&*store, &scope, &all, true, page).await, ascending);
        let mut descending = ascending.clone();
        descending.reverse();
        assert_eq!(listed(&*store, &scope, &all, false, page).await, descending);
    }
    let by_check = AuditSuppressionFilter {
        check_name: Some(CHECK_A.into()),
        resource_key: None,
    };
    assert_eq!(
        listed(&*store, &scope, &by_check, true, 1).await,
        pairs(&[(CHECK_A, "b"), (CHECK_A, "a"), (CHECK_A, "c")])
    );
    let by_key = AuditSuppressionFilter {
        check_name: None,
        resource_key: Some("a".into()),
    };
    assert_eq!(
        listed(&*store, &scope, &by_key, false, 1).await,
        pairs(&[(CHECK_A, "a"), (CHECK_B, "a")])
    );
    let both = AuditSuppressionFilter {
        check_name: Some(CHECK_B.into()),
        resource_key: Some("b".into()),
    };
    assert_eq!(
        listed(&*store, &scope, &both, true, ALL).await,
        pairs(&[(CHECK_B, "b")])
    );
}

pub async fn suppression_active_keys(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    for (key, exp) in [
        ("forever", None),
        ("later", Some(T0 + 1)),
        ("now", Some(T0)),
        ("past", Some(T0 - 1)),
    ] {
        create(&*store, &scope, &suppression(CHECK_A, key, exp)).await;
    }
    create(&*store, &scope, &suppression(CHECK_B, "other", None)).await;
    let mut keys = store
        .active_audit_suppression_keys(&scope, CHECK_A, T0)
        .await
        .unwrap();
    keys.sort();
    // Expiring at the instant counts as expired.
    assert_eq!(keys, vec!["forever", "later"]);
    // Expired ones are still there until deleted.
    assert_eq!(listed_all(&*store, &scope).await.len(), 5);
}

pub async fn suppressions_isolated_between_accounts(store: Arc<dyn Store>) {
    let a = fresh_scope();
    let b = scope(&super::unique_account(), &a.region);
    let other_region = scope(&a.account_id, "eu-west-1");
    let record = suppression(CHECK_A, "shared", None);
    create(&*store, &a, &record).await;
    for other in [&b, &other_region] {
        assert_eq!(
            ok(store.get_audit_suppression(other, CHECK_A, "shared")).await,
            None
        );
        assert!(listed_all(&*store, other).await.is_empty());
        assert!(store
            .active_audit_suppression_keys(other, CHECK_A, T0)
            .await
            .unwrap()
            .is_empty());
        let update = AuditSuppressionUpdate {
            lifetime: None,
            description: Some("x".into()),
            updated_at_ms: T0,
        };
        assert_eq!(
            ok(store.update_audit_suppression(other, CHECK_A, "shared", &update)).await,
            None
        );
        assert!(!store
            .delete_audit_suppression(other, CHECK_A, "shared")
            .await
            .unwrap());
        // The same key (and token) is free in the other scope.
        create(&*store, other, &record).await;
    }
    assert_eq!(
        ok(store.get_audit_suppression(&a, CHECK_A, "shared")).await,
        Some(record)
    );
}

/// Racing creates of one key on several handles (nodes): exactly one wins, the others
/// see the key taken.
pub async fn suppression_create_race_across_handles(db: &dyn Database) {
    let handles = open_handles(db, 2).await;
    let scope = fresh_scope();
    let outcomes = race(&handles, 8, |_, store| {
        let scope = scope.clone();
        async move {
            let record = suppression(CHECK_A, "contested", None);
            store
                .create_audit_suppression(&scope, &record, NO_LIMIT)
                .await
                .expect("create")
        }
    })
    .await;
    let mut wins = 0;
    for outcome in outcomes {
        match outcome {
            Ok(SuppressionCreated::Created) => wins += 1,
            other => assert_eq!(other, Err(SuppressionRefusal::KeyExists)),
        }
    }
    assert_eq!(wins, 1, "exactly one create must win");
}
