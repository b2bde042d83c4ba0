//! Runs the storage conformance suite against PostgreSQL, plus checks that only make
//! sense for a database server: concurrent migration, schema versions, and riding out
//! an outage of the server (or of the network to it).
//!
//! Needs a PostgreSQL server at `PALISADE_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); every test gets a database of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use palisade_store::conformance::Database;
use palisade_store::{
    Credential, CredentialStore, MetaStore, MitigationActionRecord, MitigationActionStore,
    MitigationActionUpdate, PostgresOptions, PostgresStore, Scope, Store, StoreError, StoreResult,
};
use palisade_testdb::{TcpProxy, TestDatabase};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A fresh database; every `open` is a new connection pool, as another process would be.
struct PgDb(TestDatabase);

#[async_trait]
impl Database for PgDb {
    async fn open(&self) -> StoreResult<Arc<dyn Store>> {
        let store = PostgresStore::connect(&self.0.url, PostgresOptions::default()).await?;
        Ok(Arc::new(store))
    }
}

async fn fresh() -> PgDb {
    PgDb(TestDatabase::create().await)
}

palisade_store::conformance_tests!(fresh);
palisade_store::things_conformance_tests!(fresh);
palisade_store::policies_conformance_tests!(fresh);
palisade_store::certificates_conformance_tests!(fresh);
palisade_store::import_conformance_tests!(fresh);

async fn applied_migrations(db: &TestDatabase) -> Vec<i64> {
    let client = db.raw_client().await;
    client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("read schema_migrations")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn credential(access_key_id: &str) -> Credential {
    Credential {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: "secret".into(),
        account_id: "123456789012".into(),
        created_at_ms: 1,
    }
}

fn test_scope() -> Scope {
    Scope {
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
    }
}

fn test_action(name: &str) -> MitigationActionRecord {
    MitigationActionRecord {
        name: name.into(),
        id: format!("id-{name}"),
        arn: format!("arn:aws:iot:us-east-1:123456789012:mitigationaction/{name}"),
        action_type: "ENABLE_IOT_LOGGING".into(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        params_json: "{}".into(),
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_connecting_at_once_migrate_exactly_once() {
    let db = TestDatabase::create().await;
    let mut connecting = JoinSet::new();
    for _ in 0..6 {
        let url = db.url.clone();
        connecting
            .spawn(async move { PostgresStore::connect(&url, PostgresOptions::default()).await });
    }
    let mut stores = Vec::new();
    while let Some(joined) = connecting.join_next().await {
        stores.push(joined.expect("connect task").expect("connect"));
    }
    let migrated = applied_migrations(&db).await;
    let expected: Vec<i64> = (1..=migrated.len() as i64).collect();
    assert!(!migrated.is_empty());
    assert_eq!(
        migrated, expected,
        "one row per version, no gaps or repeats"
    );

    // All of them work on the one schema, and reconnecting migrates nothing more.
    stores[0]
        .create_credential(&credential("AKIAONCE"))
        .await
        .unwrap();
    for store in &stores {
        assert!(store.get_credential("AKIAONCE").await.unwrap().is_some());
    }
    drop(stores);
    let _again = db.connect().await;
    assert_eq!(applied_migrations(&db).await, migrated);
}

#[tokio::test]
async fn refuses_a_newer_schema() {
    let db = TestDatabase::create().await;
    let store = db.connect().await;
    store
        .create_credential(&credential("AKIAOLD"))
        .await
        .unwrap();
    db.raw_client()
        .await
        .execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (999, 0)",
            &[],
        )
        .await
        .unwrap();
    let err = PostgresStore::connect(&db.url, PostgresOptions::default())
        .await
        .expect_err("a schema from the future must be refused");
    assert!(
        matches!(&err, StoreError::Internal(m) if m.contains("999")),
        "{err:?}"
    );
}

#[test]
fn migrations_mirror_the_sqlite_ones() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let names = |engine: &str| {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(engine))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("postgres"), names("sqlite"));
}

#[tokio::test]
async fn unreachable_server_fails_fast_at_connect() {
    // A port nothing listens on: bind one, then free it.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let err = PostgresStore::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        PostgresOptions::default(),
    )
    .await
    .expect_err("nothing listens there");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn invalid_url_is_internal() {
    let err = PostgresStore::connect("postgres://h:notaport/db", PostgresOptions::default())
        .await
        .expect_err("invalid url");
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
}

/// A statement stuck behind another session's lock is cancelled by the server at the
/// statement timeout and reported as `Unavailable`; the connection stays usable.
#[tokio::test]
async fn lock_wait_beyond_the_statement_timeout_is_unavailable() {
    let db = TestDatabase::create().await;
    let store = db
        .connect_with(PostgresOptions {
            statement_timeout: Duration::from_secs(1),
            ..PostgresOptions::default()
        })
        .await;
    let scope = test_scope();
    let record = test_action("locked");
    store
        .create_mitigation_action(&scope, &record, &[], 10)
        .await
        .unwrap();
    let update = MitigationActionUpdate {
        role_arn: Some("arn:aws:iam::123456789012:role/other".into()),
        params: None,
        updated_at_ms: 2,
    };

    let mut blocker = db.raw_client().await;
    let held = blocker.transaction().await.unwrap();
    held.execute(
        "SELECT 1 FROM mitigation_actions WHERE name = 'locked' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    let started = Instant::now();
    let result = store
        .update_mitigation_action(&scope, "locked", &update)
        .await;
    let took = started.elapsed();
    assert!(
        matches!(&result, Err(StoreError::Unavailable(m)) if m.contains("57014")),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    held.rollback().await.unwrap();

    let updated = store
        .update_mitigation_action(&scope, "locked", &update)
        .await
        .expect("works once the lock is gone");
    assert_eq!(updated.updated_at_ms, 2);
}

/// A caller that gives up mid-transaction (its future dropped while a statement waits
/// on a lock) leaves nothing behind: the transaction rolls back and the connection,
/// the only one in the pool here, serves the next call normally.
#[tokio::test]
async fn a_cancelled_operation_rolls_back_and_frees_its_connection() {
    let db = TestDatabase::create().await;
    let store = db
        .connect_with(PostgresOptions {
            max_connections: 1,
            ..PostgresOptions::default()
        })
        .await;
    let scope = test_scope();
    let record = test_action("held");
    store
        .create_mitigation_action(&scope, &record, &[], 10)
        .await
        .unwrap();

    let mut blocker = db.raw_client().await;
    let held = blocker.transaction().await.unwrap();
    held.execute(
        "SELECT 1 FROM mitigation_actions WHERE name = 'held' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        store.delete_mitigation_action(&scope, "held"),
    )
    .await;
    assert!(gave_up.is_err(), "the delete should still be waiting");
    held.rollback().await.unwrap();

    assert_eq!(
        store.get_mitigation_action(&scope, "held").await.unwrap(),
        Some(record.clone()),
        "the abandoned delete must have rolled back"
    );
    assert!(store
        .delete_mitigation_action(&scope, "held")
        .await
        .unwrap());
    assert_eq!(
        store.get_mitigation_action(&scope, "held").await.unwrap(),
        None
    );
}

/// The server ends every session (as on a restart or a failover): the same store
/// carries on with new connections, never reporting anything but `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_sessions_are_replaced() {
    let db = TestDatabase::create().await;
    let store = db.connect().await;
    store
        .create_credential(&credential("AKIATERM"))
        .await
        .unwrap();
    fill_pool(&store, 6).await;

    let admin = db.raw_client().await;
    let terminated: i64 = admin
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        terminated >= 1,
        "the store's sessions should have been there"
    );

    let started = Instant::now();
    loop {
        match store.get_credential("AKIATERM").await {
            Ok(found) => {
                assert!(found.is_some());
                break;
            }
            Err(StoreError::Unavailable(_)) if started.elapsed() < Duration::from_secs(3) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("after termination: {e:?}"),
        }
    }
    fill_pool(&store, 6).await;
}

/// PostgreSQL text cannot hold NUL characters (SQLite's can): such input is refused
/// with `Internal`, never a panic, and nothing is written.
#[tokio::test]
async fn nul_in_text_is_an_internal_error() {
    let db = TestDatabase::create().await;
    let store = db.connect().await;
    let result = store.create_credential(&credential("AKIA\0NUL")).await;
    assert!(matches!(result, Err(StoreError::Internal(_))), "{result:?}");
    assert!(store.list_credentials().await.unwrap().is_empty());
}

/// The database goes away (every connection cut, nothing listening), then comes back
/// on the same address: calls fail fast meanwhile and the same store recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_fast_and_recovers() {
    let db = TestDatabase::create().await;
    let mut proxy = TcpProxy::start(0).await;
    let store = PostgresStore::connect(&db.url_via(proxy.port()), PostgresOptions::default())
        .await
        .expect("connect through the proxy");
    store
        .create_credential(&credential("AKIAOUTAGE"))
        .await
        .unwrap();
    fill_pool(&store, 8).await;

    proxy.cut().await;
    for attempt in 0..3 {
        let started = Instant::now();
        let result = store.get_credential("AKIAOUTAGE").await;
        let took = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "attempt {attempt}: {result:?}"
        );
        assert!(
            took < Duration::from_secs(3),
            "attempt {attempt} took {took:?}"
        );
    }

    let _proxy = TcpProxy::start(proxy.port()).await;
    let recovered = retry_until_ok(&store, Duration::from_secs(5)).await;
    assert!(recovered.is_some(), "store did not recover");
    // No broken connection is left to be handed out: a burst of calls all succeed.
    fill_pool(&store, 8).await;
}

/// The server stops answering without closing anything (a hung host, a dropped
/// route): calls still fail within their deadlines, and the store recovers once a
/// working path is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_server_fails_within_the_deadline() {
    let db = TestDatabase::create().await;
    let mut proxy = TcpProxy::start(0).await;
    let opts = PostgresOptions {
        max_connections: 4,
        connect_timeout: Duration::from_secs(1),
        acquire_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(1),
    };
    let store = PostgresStore::connect(&db.url_via(proxy.port()), opts)
        .await
        .expect("connect through the proxy");
    store
        .create_credential(&credential("AKIASTALL"))
        .await
        .unwrap();
    fill_pool(&store, 4).await;

    proxy.freeze();
    // A pooled connection that no longer answers, then new connections whose startup
    // is never answered: both bounded (statement + connect timeouts; connect + acquire).
    for attempt in 0..3 {
        let started = Instant::now();
        let result = store.get_credential("AKIASTALL").await;
        let took = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "attempt {attempt}: {result:?}"
        );
        assert!(
            took < Duration::from_secs(4),
            "attempt {attempt} took {took:?}"
        );
    }

    proxy.cut().await;
    let _proxy = TcpProxy::start(proxy.port()).await;
    assert!(
        retry_until_ok(&store, Duration::from_secs(8))
            .await
            .is_some(),
        "store did not recover"
    );
    fill_pool(&store, 4).await;
}

/// Runs `n` calls at once, so the pool holds several connections; all must succeed.
async fn fill_pool(store: &PostgresStore, n: usize) {
    let mut calls = JoinSet::new();
    for _ in 0..n {
        let store = store.clone();
        calls.spawn(async move { store.list_credentials().await.map(drop) });
    }
    while let Some(joined) = calls.join_next().await {
        joined
            .expect("call task")
            .expect("call through a healthy pool");
    }
    store.server_secret().await.expect("secret");
}

/// Calls the store until a call succeeds or `within` passes; how long it took.
async fn retry_until_ok(store: &PostgresStore, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if store.get_credential("AKIANOBODY").await.is_ok() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
