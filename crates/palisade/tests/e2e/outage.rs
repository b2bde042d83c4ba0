//! PostgreSQL goes away while the server runs: requests fail fast with a retryable AWS
//! error, and the server recovers by itself when the database is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use aws_sdk_iot::types::MitigationActionType;
use palisade_api::ServerConfig;
use palisade_engine::Limits;
use palisade_store::{PostgresOptions, PostgresStore};
use palisade_testdb::{TcpProxy, TestDatabase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_is_a_fast_503_and_the_server_recovers() {
    let db = TestDatabase::create().await;
    let mut proxy = TcpProxy::start(0).await;
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(1),
        acquire_timeout: Duration::from_secs(1),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect(&db.url_via(proxy.port()), options)
        .await
        .expect("connect through the proxy");
    let server = TestServer::start_on(
        Arc::new(store),
        Some(db),
        tempfile::tempdir().expect("tempdir"),
        Limits::default(),
        ServerConfig::default(),
    )
    .await;
    let client = server.client_a();
    create_action(
        &client,
        "steady",
        params_for(&MitigationActionType::UpdateDeviceCertificate),
    )
    .await;

    proxy.cut().await;
    for attempt in 0..3 {
        let started = Instant::now();
        let (failure, _) = expect_failure(
            client
                .describe_mitigation_action()
                .action_name("steady")
                .send()
                .await,
        );
        let took = started.elapsed();
        assert_eq!(failure.status, 503, "attempt {attempt}: {failure:?}");
        assert_eq!(
            failure.code.as_deref(),
            Some("ServiceUnavailableException"),
            "attempt {attempt}"
        );
        assert!(
            took < Duration::from_secs(4),
            "attempt {attempt} took {took:?}"
        );
    }

    let _proxy = TcpProxy::start(proxy.port()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client
            .describe_mitigation_action()
            .action_name("steady")
            .send()
            .await
        {
            Ok(out) => {
                assert_eq!(out.action_name(), Some("steady"));
                break;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the server did not recover: {e:?}"),
        }
    }
}
