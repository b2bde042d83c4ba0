//! Conformance cases for the connection history and what the gateway's nodes share;
//! instantiated by `conformance_tests!` with the rest of the suite.
//!
//! Node ids, secret names and connection ids are global (not per scope), so every case
//! makes its own; the registry epoch is one counter, so cases only compare it with itself.

use std::sync::Arc;

use super::{fresh_scope, unique, Database};
use crate::{
    ConnectionClose, ConnectionKey, ConnectionOrder, ConnectionRecord, Scope, Store,
    DUPLICATE_CLIENTID,
};

fn conn(client_id: &str, certificate_id: &str, connected_at_ms: i64) -> ConnectionRecord {
    ConnectionRecord {
        id: unique("conn-"),
        certificate_id: certificate_id.to_owned(),
        client_id: client_id.to_owned(),
        thing_name: None,
        source_ip: "192.0.2.7".to_owned(),
        source_port: Some(50_000),
        node_id: None,
        connected_at_ms,
        disconnected_at_ms: None,
        disconnect_reason: None,
        clean_session: Some(true),
        keep_alive_secs: Some(60),
        messages_in: 0,
        messages_out: 0,
        bytes_in: 0,
        bytes_out: 0,
    }
}

fn closing(scope: &Scope, id: &str, at_ms: i64, reason: &str) -> ConnectionClose {
    ConnectionClose {
        scope: scope.clone(),
        id: id.to_owned(),
        at_ms,
        reason: reason.to_owned(),
        messages_in: 3,
        messages_out: 4,
        bytes_in: 300,
        bytes_out: 400,
    }
}

/// Every connection of the scope overlapping the window, in `order`, read in pages of
/// `page`.
async fn scan_all(
    store: &Arc<dyn Store>,
    scope: &Scope,
    order: ConnectionOrder,
    window: (i64, i64),
    page: usize,
) -> Vec<ConnectionRecord> {
    let mut out: Vec<ConnectionRecord> = Vec::new();
    loop {
        let after = out.last().map(|c| ConnectionKey {
            group: match order {
                ConnectionOrder::Certificate => c.certificate_id.clone(),
                ConnectionOrder::ClientId => c.client_id.clone(),
            },
            connected_at_ms: c.connected_at_ms,
            id: c.id.clone(),
        });
        let rows = store
            .scan_connections(scope, order, window, after.as_ref(), page)
            .await
            .expect("scan");
        let n = rows.len();
        out.extend(rows);
        if n < page {
            return out;
        }
    }
}

pub async fn connections_open_takes_over_client_id(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let other = fresh_scope();
    let cert = "a".repeat(64);
    let first = conn("dev-1", &cert, 1_000);
    let elsewhere = conn("dev-1", &cert, 1_000);
    assert!(store
        .open_connections(&[(scope.clone(), first.clone()), (other.clone(), elsewhere)])
        .await
        .expect("open")
        .is_empty());

    // The second of one batch takes over the first; another client id stays.
    let second = conn("dev-1", &cert, 2_000);
    let third = conn("dev-1", &cert, 3_000);
    let unrelated = conn("dev-2", &cert, 3_000);
    let closed = store
        .open_connections(&[
            (scope.clone(), second.clone()),
            (scope.clone(), third.clone()),
            (scope.clone(), unrelated.clone()),
        ])
        .await
        .expect("open batch");
    assert_eq!(closed, vec![first.id.clone(), second.id.clone()]);

    let all = scan_all(
        &store,
        &scope,
        ConnectionOrder::ClientId,
        (0, i64::MAX),
        100,
    )
    .await;
    let by_id = |id: &str| all.iter().find(|c| c.id == id).expect("stored").clone();
    let f = by_id(&first.id);
    assert_eq!(
        (f.disconnected_at_ms, f.disconnect_reason.as_deref()),
        (Some(2_000), Some(DUPLICATE_CLIENTID))
    );
    let s = by_id(&second.id);
    assert_eq!(s.disconnected_at_ms, Some(3_000));
    assert_eq!(by_id(&third.id).disconnected_at_ms, None);
    assert_eq!(by_id(&unrelated.id), unrelated);
    // The same client id in another account was not touched.
    let theirs = scan_all(
        &store,
        &other,
        ConnectionOrder::ClientId,
        (0, i64::MAX),
        100,
    )
    .await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].disconnected_at_ms, None);
}

/// The gateway retries a batch whose commit answer was lost: the retry changes nothing
/// and does not fail on the ids it stored the first time.
pub async fn connections_open_retry_is_idempotent(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let cert = "d".repeat(64);
    let old = conn("dev-r", &cert, 1_000);
    ok_open(&store, &[(scope.clone(), old.clone())]).await;
    let batch = [
        (scope.clone(), conn("dev-r", &cert, 2_000)),
        (scope.clone(), conn("dev-s", &cert, 2_000)),
    ];
    assert_eq!(ok_open(&store, &batch).await, vec![old.id.clone()]);
    assert!(ok_open(&store, &batch).await.is_empty());
    let all = scan_all(
        &store,
        &scope,
        ConnectionOrder::ClientId,
        (0, i64::MAX),
        100,
    )
    .await;
    assert_eq!(all.len(), 3);
    for (_, record) in &batch {
        let stored = all.iter().find(|c| c.id == record.id).expect("stored");
        assert_eq!(
            stored, record,
            "the retry left the stored connection as it was"
        );
    }
}

async fn ok_open(store: &Arc<dyn Store>, opens: &[(Scope, ConnectionRecord)]) -> Vec<String> {
    store.open_connections(opens).await.expect("open")
}

pub async fn connections_close_keeps_the_first_reason(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let cert = "b".repeat(64);
    let old = conn("dev", &cert, 1_000);
    let new = conn("dev", &cert, 5_000);
    store
        .open_connections(&[(scope.clone(), old.clone())])
        .await
        .unwrap();
    store
        .open_connections(&[(scope.clone(), new.clone())])
        .await
        .unwrap();
    // The old connection's node closes it later, after the takeover was recorded: its
    // counters are written, its time and reason kept.
    store
        .close_connections(&[
            closing(&scope, &old.id, 6_000, "CONNECTION_LOST"),
            closing(&scope, &new.id, 7_000, "CLIENT_INITIATED_DISCONNECT"),
        ])
        .await
        .expect("close");
    // Closing again changes neither time nor reason.
    store
        .close_connections(&[closing(
            &scope,
            &new.id,
            9_000,
            "SERVER_INITIATED_DISCONNECT",
        )])
        .await
        .expect("close again");
    let all = scan_all(&store, &scope, ConnectionOrder::ClientId, (0, i64::MAX), 1).await;
    assert_eq!(all.len(), 2);
    assert_eq!(
        (
            all[0].disconnected_at_ms,
            all[0].disconnect_reason.as_deref()
        ),
        (Some(5_000), Some(DUPLICATE_CLIENTID))
    );
    assert_eq!(
        (
            all[0].messages_in,
            all[0].messages_out,
            all[0].bytes_in,
            all[0].bytes_out
        ),
        (3, 4, 300, 400)
    );
    assert_eq!(
        (
            all[1].disconnected_at_ms,
            all[1].disconnect_reason.as_deref()
        ),
        (Some(7_000), Some("CLIENT_INITIATED_DISCONNECT"))
    );
    // A close in the wrong scope changes nothing.
    let stranger = fresh_scope();
    let mine = conn("solo", &cert, 1_000);
    store
        .open_connections(&[(scope.clone(), mine.clone())])
        .await
        .unwrap();
    store
        .close_connections(&[closing(&stranger, &mine.id, 2_000, "AUTH_ERROR")])
        .await
        .unwrap();
    assert!(store
        .closed_connections_among(std::slice::from_ref(&mine.id))
        .await
        .unwrap()
        .is_empty());
    // Closed twice in one batch: the first time and reason, the last counters.
    let first = ConnectionClose {
        messages_in: 1,
        ..closing(&scope, &mine.id, 2_000, "CONNECTION_LOST")
    };
    store
        .close_connections(&[first, closing(&scope, &mine.id, 2_500, "AUTH_ERROR")])
        .await
        .unwrap();
    let all = scan_all(&store, &scope, ConnectionOrder::ClientId, (0, i64::MAX), 10).await;
    let m = all.iter().find(|c| c.id == mine.id).expect("mine");
    assert_eq!(
        (
            m.disconnected_at_ms,
            m.disconnect_reason.as_deref(),
            m.messages_in,
            m.bytes_out
        ),
        (Some(2_000), Some("CONNECTION_LOST"), 3, 400)
    );
}

pub async fn connections_node_close_and_closed_among(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let (node, other_node) = (unique("node-"), unique("node-"));
    let cert = "c".repeat(64);
    let on_node = |client: &str, node: &str| ConnectionRecord {
        node_id: Some(node.to_owned()),
        ..conn(client, &cert, 1_000)
    };
    let (a, b, c) = (
        on_node("a", &node),
        on_node("b", &node),
        on_node("c", &other_node),
    );
    let done = on_node("d", &node);
    store
        .open_connections(&[
            (scope.clone(), a.clone()),
            (scope.clone(), b.clone()),
            (scope.clone(), c.clone()),
            (scope.clone(), done.clone()),
        ])
        .await
        .unwrap();
    store
        .close_connections(&[closing(
            &scope,
            &done.id,
            1_500,
            "CLIENT_INITIATED_DISCONNECT",
        )])
        .await
        .unwrap();
    assert_eq!(
        store
            .close_node_connections(&node, 2_000, "SERVER_INITIATED_DISCONNECT")
            .await
            .expect("node close"),
        2
    );
    assert_eq!(
        store
            .close_node_connections(&node, 3_000, "SERVER_INITIATED_DISCONNECT")
            .await
            .unwrap(),
        0
    );
    let ids = vec![
        a.id.clone(),
        b.id.clone(),
        c.id.clone(),
        done.id.clone(),
        unique("never-"),
    ];
    let mut closed = store.closed_connections_among(&ids).await.expect("among");
    closed.sort();
    let mut expected = vec![
        (a.id.clone(), "SERVER_INITIATED_DISCONNECT".to_owned()),
        (b.id.clone(), "SERVER_INITIATED_DISCONNECT".to_owned()),
        (done.id.clone(), "CLIENT_INITIATED_DISCONNECT".to_owned()),
    ];
    expected.sort();
    assert_eq!(closed, expected);
    assert!(store
        .closed_connections_among(&[])
        .await
        .unwrap()
        .is_empty());
}

pub async fn gateway_secret_converges(db: &dyn Database) {
    let name = unique("gateway-ca-");
    let (one, two) = (db.open().await.unwrap(), db.open().await.unwrap());
    let (x, y) = tokio::join!(
        one.gateway_secret_or_insert(&name, b"first"),
        two.gateway_secret_or_insert(&name, b"second")
    );
    let (x, y) = (x.expect("x"), y.expect("y"));
    assert_eq!(x, y);
    assert!(x == b"first" || x == b"second");
    assert_eq!(
        one.gateway_secret_or_insert(&name, b"third").await.unwrap(),
        x
    );
    let other = unique("gateway-key-");
    assert_eq!(
        two.gateway_secret_or_insert(&other, b"k").await.unwrap(),
        b"k"
    );
}

pub async fn registry_epoch_bumps(db: &dyn Database) {
    let (one, two) = (db.open().await.unwrap(), db.open().await.unwrap());
    let start = one.registry_epoch().await.expect("epoch");
    let bumped = two.bump_registry_epoch().await.expect("bump");
    assert!(bumped > start);
    assert!(one.registry_epoch().await.unwrap() >= bumped);
    let (p, q) = tokio::join!(one.bump_registry_epoch(), two.bump_registry_epoch());
    let (p, q) = (p.unwrap(), q.unwrap());
    assert_ne!(p, q, "concurrent bumps both count");
    assert!(one.registry_epoch().await.unwrap() >= p.max(q));
}

pub async fn connections_scan_windows_orders_and_pages(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let (c1, c2) = ("1".repeat(64), "2".repeat(64));
    let closed = |client: &str, cert: &str, from: i64, to: i64| ConnectionRecord {
        disconnected_at_ms: Some(to),
        disconnect_reason: Some("CLIENT_INITIATED_DISCONNECT".into()),
        ..conn(client, cert, from)
    };
    let rows = vec![
        closed("x", &c2, 100, 200),   // before the window
        closed("y", &c2, 100, 1_000), // ends at its start
        closed("x", &c1, 1_500, 1_600),
        conn("z", &c1, 1_800),          // open
        closed("y", &c1, 2_500, 2_600), // after it
        closed("w", &c2, 1_200, 1_300),
    ];
    assert_eq!(store.import_connections(&scope, &rows).await.unwrap(), 6);
    // Imported again: nothing new.
    assert_eq!(store.import_connections(&scope, &rows).await.unwrap(), 0);
    let window = (1_000, 2_000);
    for page in [1, 2, 100] {
        let by_cert = scan_all(&store, &scope, ConnectionOrder::Certificate, window, page).await;
        let got: Vec<(&str, &str, i64)> = by_cert
            .iter()
            .map(|c| {
                (
                    &c.certificate_id[..1],
                    c.client_id.as_str(),
                    c.connected_at_ms,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("1", "x", 1_500),
                ("1", "z", 1_800),
                ("2", "y", 100),
                ("2", "w", 1_200)
            ]
        );
        let by_client = scan_all(&store, &scope, ConnectionOrder::ClientId, window, page).await;
        let got: Vec<(&str, i64)> = by_client
            .iter()
            .map(|c| (c.client_id.as_str(), c.connected_at_ms))
            .collect();
        assert_eq!(
            got,
            vec![("w", 1_200), ("x", 1_500), ("y", 100), ("z", 1_800)]
        );
    }
    // Another account sees none of it.
    assert!(scan_all(
        &store,
        &fresh_scope(),
        ConnectionOrder::Certificate,
        (0, i64::MAX),
        10
    )
    .await
    .is_empty());
}

pub async fn connections_latest_for_thing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let cert = "d".repeat(64);
    assert_eq!(
        store.latest_thing_connection(&scope, "lamp").await.unwrap(),
        None
    );
    // By client id when no connection names the thing.
    let by_client = ConnectionRecord {
        disconnected_at_ms: Some(2_000),
        disconnect_reason: Some("CONNECTION_LOST".into()),
        ..conn("lamp", &cert, 1_000)
    };
    store
        .import_connections(&scope, std::slice::from_ref(&by_client))
        .await
        .unwrap();
    assert_eq!(
        store.latest_thing_connection(&scope, "lamp").await.unwrap(),
        Some(by_client.clone())
    );
    // A connection that names the thing wins, even an older one; the newest of those.
    let named = |at: i64| ConnectionRecord {
        thing_name: Some("lamp".into()),
        ..conn("other-client", &cert, at)
    };
    let (old, newest) = (named(500), named(900));
    store
        .import_connections(&scope, &[old, newest.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.latest_thing_connection(&scope, "lamp").await.unwrap(),
        Some(newest)
    );
    assert_eq!(
        store
            .latest_thing_connection(&fresh_scope(), "lamp")
            .await
            .unwrap(),
        None
    );
}

pub async fn connections_purge_keeps_open_and_recent(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let cert = "e".repeat(64);
    let old_closed = ConnectionRecord {
        disconnected_at_ms: Some(1_000),
        disconnect_reason: Some("CONNECTION_LOST".into()),
        ..conn("p", &cert, 500)
    };
    let old_open = conn("q", &cert, 500);
    let recent = ConnectionRecord {
        disconnected_at_ms: Some(5_000),
        disconnect_reason: Some("CONNECTION_LOST".into()),
        ..conn("r", &cert, 4_000)
    };
    store
        .import_connections(&scope, &[old_closed, old_open.clone(), recent.clone()])
        .await
        .unwrap();
    assert!(store.purge_connections(2_000).await.expect("purge") >= 1);
    let left = scan_all(&store, &scope, ConnectionOrder::ClientId, (0, i64::MAX), 10).await;
    assert_eq!(left, vec![old_open, recent]);
}

pub async fn previous_scheduled_audit_start_finds_the_last_run(store: Arc<dyn Store>) {
    use crate::AuditTaskRecord;
    let scope = fresh_scope();
    let task = |id: &str, kind: &str, name: Option<&str>, at: i64| AuditTaskRecord {
        task_id: id.to_owned(),
        task_type: kind.to_owned(),
        status: "COMPLETED".to_owned(),
        scheduled_audit_name: name.map(str::to_owned),
        started_at_ms: at,
        finished_at_ms: Some(at + 1),
        checks_json: "{}".to_owned(),
        version: 1,
    };
    for t in [
        task("t1", "SCHEDULED_AUDIT_TASK", Some("daily"), 1_000),
        task("t2", "SCHEDULED_AUDIT_TASK", Some("daily"), 2_000),
        task("t3", "SCHEDULED_AUDIT_TASK", Some("weekly"), 2_500),
        task("t4", "ON_DEMAND_AUDIT_TASK", None, 2_700),
        task("t5", "SCHEDULED_AUDIT_TASK", Some("daily"), 3_000),
    ] {
        let work = crate::NewWorkItem {
            id: unique("work-"),
            queue: unique("queue-"),
            payload: String::new(),
            run_after_ms: i64::MAX,
        };
        assert!(store
            .create_audit_task(&scope, &t, &work, None)
            .await
            .unwrap()
            .is_ok());
    }
    let prev = |name: &'static str, before: i64| {
        let (store, scope) = (store.clone(), scope.clone());
        async move {
            store
                .previous_scheduled_audit_start(&scope, name, before)
                .await
                .unwrap()
        }
    };
    assert_eq!(prev("daily", 3_000).await, Some(2_000));
    assert_eq!(prev("daily", 1_000).await, None);
    assert_eq!(prev("weekly", 9_000).await, Some(2_500));
    assert_eq!(prev("monthly", 9_000).await, None);
}

pub async fn connections_concurrent_opens_leave_one_open(db: &dyn Database) {
    let scope = fresh_scope();
    let cert = "f".repeat(64);
    let (one, two) = (db.open().await.unwrap(), db.open().await.unwrap());
    for round in 0..10 {
        let a = [(scope.clone(), conn("race", &cert, round))];
        let b = [(scope.clone(), conn("race", &cert, round))];
        let (x, y) = tokio::join!(one.open_connections(&a), two.open_connections(&b));
        x.expect("x");
        y.expect("y");
    }
    let all = one
        .scan_connections(&scope, ConnectionOrder::ClientId, (0, i64::MAX), None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 20);
    assert_eq!(
        all.iter()
            .filter(|c| c.disconnected_at_ms.is_none())
            .count(),
        1,
        "one session per client id, whichever node connected it"
    );
}
