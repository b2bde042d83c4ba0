//! What the conformance cases of several modules share: constants, records of the
//! registry's resources and the calls that write them, and the loops many cases run
//! (paging a listing to its end, opening handles, pairs of scopes that must not meet).
//!
//! Field values here are only ever compared with what a store returns, so one set serves
//! every case; a case that needs another value overrides that field.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{assert_already_exists, scope, unique, unique_account, Database};
use crate::{
    Attributes, CaCertificateRecord, CertificateFacts, CertificateRecord, NewPolicy,
    RegistrationConfigRecord, Scope, Store, StoreResult, ThingGroupRecord, ThingRecord,
};

/// A realistic epoch time the audit and mitigation cases work around.
pub(super) const T0: i64 = 1_700_000_000_000;
/// Wide enough for every listing in the suite to fit one page.
pub(super) const ALL: usize = 100_000;

pub(super) const CHECK_A: &str = "DEVICE_CERTIFICATE_EXPIRING_CHECK";
pub(super) const CHECK_B: &str = "CA_CERTIFICATE_EXPIRING_CHECK";
pub(super) const CHECK_C: &str = "LOGGING_DISABLED_CHECK";

pub(super) const IN_PROGRESS: &str = "IN_PROGRESS";
pub(super) const COMPLETED: &str = "COMPLETED";
pub(super) const FAILED: &str = "FAILED";
pub(super) const CANCELED: &str = "CANCELED";

/// The thing group depth limit the registry cases create groups under.
pub(super) const MAX_DEPTH: usize = 7;

/// A random id of a certificate's shape (64 hex digits).
pub(super) fn hex_id() -> String {
    let part = || format!("{:016x}", rand::random::<u64>());
    [part(), part(), part(), part()].concat()
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

pub(super) fn attrs(items: &[(&str, &str)]) -> Attributes {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The ARN of `scope`'s resource of `kind` (`thing`, `cert`, ...) named `name`.
pub(super) fn arn(scope: &Scope, kind: &str, name: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:{kind}/{name}",
        scope.region, scope.account_id
    )
}

pub(super) fn group_arn(scope: &Scope, name: &str) -> String {
    arn(scope, "thinggroup", name)
}

pub(super) fn thing(scope: &Scope, name: &str, attributes: &[(&str, &str)]) -> ThingRecord {
    ThingRecord {
        name: name.to_owned(),
        id: unique("id-"),
        arn: arn(scope, "thing", name),
        thing_type_name: None,
        billing_group_name: None,
        attributes: attrs(attributes),
        version: 1,
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
    }
}

pub(super) fn group(scope: &Scope, name: &str, parent: Option<&str>) -> ThingGroupRecord {
    ThingGroupRecord {
        name: name.to_owned(),
        id: unique("id-"),
        arn: group_arn(scope, name),
        parent_name: parent.map(str::to_owned),
        description: None,
        attributes: Attributes::new(),
        version: 1,
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
    }
}

pub(super) fn new_policy(scope: &Scope, name: &str, document: &str) -> NewPolicy {
    NewPolicy {
        name: name.to_owned(),
        arn: arn(scope, "policy", name),
        document: document.to_owned(),
        generation_id: unique("gen-"),
        created_at_ms: 1_000,
    }
}

/// Every field set (both key fields, two CRL points), so a round trip checks them all.
pub(super) fn facts(subject: &[u8]) -> CertificateFacts {
    CertificateFacts {
        subject: format!("CN={}", String::from_utf8_lossy(subject)),
        issuer: "CN=issuer, O=Palisade".into(),
        subject_der: subject.to_vec(),
        issuer_der: vec![0x30, 0x00, 0xff],
        serial_number: "00ff10".into(),
        not_before_ms: 1_600_000_000_000,
        not_after_ms: 2_524_607_999_000,
        key_algorithm: "RSA".into(),
        key_bits: Some(2048),
        key_curve: None,
        public_key_der: vec![0x30, 0x82, 0x01, 0x22, 0x00, 0x01],
        crl_distribution_points: vec!["http://crl.example/a.crl".into(), "ldap://b".into()],
    }
}

fn pem(id: &str) -> String {
    format!("-----BEGIN CERTIFICATE-----\n{id}\n-----END CERTIFICATE-----\n")
}

/// A device certificate with an EC key and no CRL points, under `ca` if given.
pub(super) fn cert_record(
    scope: &Scope,
    id: &str,
    status: &str,
    ca: Option<&str>,
    created_at_ms: i64,
) -> CertificateRecord {
    CertificateRecord {
        id: id.to_owned(),
        arn: arn(scope, "cert", id),
        pem: pem(id),
        status: status.to_owned(),
        certificate_mode: "DEFAULT".into(),
        ca_certificate_id: ca.map(str::to_owned),
        issuer_certificate_id: ca.map(str::to_owned),
        owned_by: scope.account_id.clone(),
        previous_owned_by: None,
        generation_id: unique("gen-"),
        customer_version: 1,
        facts: CertificateFacts {
            key_algorithm: "EC".into(),
            key_bits: Some(256),
            key_curve: Some("P-256".into()),
            crl_distribution_points: Vec::new(),
            ..facts(id.as_bytes())
        },
        created_at_ms,
        updated_at_ms: created_at_ms,
    }
}

/// An ACTIVE CA certificate whose subject is `subject`.
pub(super) fn ca_record(
    scope: &Scope,
    id: &str,
    subject: &[u8],
    created_at_ms: i64,
) -> CaCertificateRecord {
    CaCertificateRecord {
        id: id.to_owned(),
        arn: arn(scope, "cacert", id),
        pem: pem(id),
        status: "ACTIVE".into(),
        certificate_mode: "DEFAULT".into(),
        auto_registration_status: "DISABLE".into(),
        registration_config: RegistrationConfigRecord::default(),
        owned_by: scope.account_id.clone(),
        generation_id: unique("gen-"),
        customer_version: 1,
        facts: facts(subject),
        created_at_ms,
        updated_at_ms: created_at_ms,
    }
}

pub(super) async fn create_thing(store: &dyn Store, scope: &Scope, record: &ThingRecord) {
    store
        .create_thing(scope, record)
        .await
        .expect("create thing");
}

/// Creates a thing with no attributes.
pub(super) async fn add_thing(store: &dyn Store, scope: &Scope, name: &str) {
    create_thing(store, scope, &thing(scope, name, &[])).await;
}

pub(super) async fn create_group(
    store: &dyn Store,
    scope: &Scope,
    name: &str,
    parent: Option<&str>,
) {
    store
        .create_thing_group(scope, &group(scope, name, parent), &[], MAX_DEPTH)
        .await
        .expect("create group")
        .expect("group accepted");
}

pub(super) async fn create_policy(store: &dyn Store, scope: &Scope, p: &NewPolicy) {
    store
        .create_policy(scope, p, &[])
        .await
        .unwrap_or_else(|e| panic!("create policy {}: {e:?}", p.name));
}

pub(super) async fn register(store: &dyn Store, scope: &Scope, record: &CertificateRecord) {
    store
        .register_certificate(scope, record)
        .await
        .expect("register")
        .expect("not refused");
}

/// The status of the certificate `id`, which must exist.
pub(super) async fn status_of(store: &dyn Store, scope: &Scope, id: &str) -> String {
    let found = ok(store.get_certificate(scope, id)).await;
    found.expect("certificate exists").status
}

/// The names of the groups `thing` is a member of, in name order.
pub(super) async fn groups_of(store: &dyn Store, scope: &Scope, thing: &str) -> Vec<String> {
    mapped(
        store.list_thing_groups_for_thing(scope, thing, None, 1_000),
        |g| g.name,
    )
    .await
}

/// Two scopes in these regions: of two accounts if the regions are one, else of one
/// account, so that an isolation case covers accounts and regions alike.
pub(super) fn apart(region_a: &str, region_b: &str) -> (Scope, Scope) {
    let account = unique_account();
    let other = if region_a == region_b {
        unique_account()
    } else {
        account.clone()
    };
    (scope(&account, region_a), scope(&other, region_b))
}

/// Awaits a store call that must not fail.
pub(super) async fn ok<T>(call: impl Future<Output = StoreResult<T>>) -> T {
    call.await.expect("store call")
}

/// Awaits a listing call that must not fail, keeping `field` of each item.
pub(super) async fn mapped<T, U>(
    call: impl Future<Output = StoreResult<Vec<T>>>,
    field: impl FnMut(T) -> U,
) -> Vec<U> {
    ok(call).await.into_iter().map(field).collect()
}

/// `n` handles on `db`, as `n` processes (nodes, the CLI) would have.
pub(super) async fn open_handles(db: &dyn Database, n: usize) -> Vec<Arc<dyn Store>> {
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        handles.push(db.open().await.expect("open"));
    }
    handles
}

/// For each of `cases`, what `list` returns at each of the page sizes `pages` is what
/// `expected` says for the case.
pub(super) async fn assert_listings<C: Debug, T: PartialEq + Debug>(
    cases: &[C],
    pages: &[usize],
    expected: impl Fn(&C) -> Vec<T>,
    list: impl AsyncFn(&C, usize) -> Vec<T>,
) {
    for case in cases {
        let expected = expected(case);
        for &page in pages {
            assert_eq!(list(case, page).await, expected, "{case:?}, page {page}");
        }
    }
}

/// Runs `n` racers at once, racer `i` (built by `racer`) on `handles[i % handles.len()]`;
/// returns what they returned, in the order they finished.
pub(super) async fn race<T, F>(
    handles: &[Arc<dyn Store>],
    n: usize,
    racer: impl Fn(usize, Arc<dyn Store>) -> F,
) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let mut racers = JoinSet::new();
    for i in 0..n {
        racers.spawn(racer(i, Arc::clone(&handles[i % handles.len()])));
    }
    let mut finished = Vec::with_capacity(n);
    while let Some(joined) = racers.join_next().await {
        finished.push(joined.expect("racer panicked"));
    }
    finished
}

/// How many of `outcomes` succeeded; `check_loser` vets each of the others.
pub(super) fn count_wins<T, E>(
    outcomes: Vec<Result<T, E>>,
    check_loser: impl Fn(Result<T, E>),
) -> usize {
    let mut wins = 0;
    for outcome in outcomes {
        if outcome.is_ok() {
            wins += 1;
        } else {
            check_loser(outcome);
        }
    }
    wins
}

/// The value of the one racer whose create won; every other must have found the name
/// taken.
pub(super) fn sole_winner<T>(outcomes: Vec<(T, StoreResult<()>)>) -> T {
    let mut winners = Vec::new();
    for (value, outcome) in outcomes {
        match outcome {
            Ok(()) => winners.push(value),
            other => assert_already_exists(other),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create must win");
    winners.remove(0)
}

/// Follows a listing from its start, asking `fetch` for `page` items after the `key` of
/// the last one seen, until a short page; no page may be larger than asked.
pub(super) async fn all_pages<T, K>(
    page: usize,
    key: impl Fn(&T) -> K,
    fetch: impl AsyncFn(Option<K>) -> StoreResult<Vec<T>>,
) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    loop {
        let batch = fetch(out.last().map(&key)).await.expect("list page");
        assert!(batch.len() <= page, "page larger than its limit");
        let done = batch.len() < page;
        out.extend(batch);
        if done {
            return out;
        }
    }
}
