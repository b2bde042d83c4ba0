//! Helpers shared by the end-to-end tests: an in-process server on a random port, SDK
//! clients for it, mitigation action fixtures, error inspection, raw HTTP and the binary.
#![allow(dead_code)] // each test module uses a different subset

pub mod devices;
pub mod mitigation;
pub mod moto;
pub mod process;
pub mod raw;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_iot::config::retry::RetryConfig;
use aws_sdk_iot::config::timeout::TimeoutConfig;
use aws_sdk_iot::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iot::operation::create_mitigation_action::CreateMitigationActionOutput;
use aws_sdk_iot::operation::describe_mitigation_action::DescribeMitigationActionOutput;
use aws_sdk_iot::types::{
    AddThingsToThingGroupParams, CaCertificateUpdateAction, DeviceCertificateUpdateAction,
    EnableIoTLoggingParams, LogLevel, MitigationActionParams, MitigationActionType,
    PolicyTemplateName, PublishFindingToSnsParams, ReplaceDefaultPolicyVersionParams, Tag,
    UpdateCaCertificateParams, UpdateDeviceCertificateParams,
};
use aws_sdk_iot::Client;
use aws_smithy_runtime_api::client::result::CreateUnhandledError;
use palisade_api::ServerConfig;
use palisade_engine::{AuditSettings, Clock, Engine, Limits, RandomIds, SystemClock};
use palisade_store::{Credential, SqliteStore, Store};
use palisade_testdb::TestDatabase;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use raw::{RawRequest, RawResponse};

pub const REGION: &str = "us-east-1";
/// The account most tests act as.
pub const ACCOUNT_A: &str = "111122223333";
/// A second account, for isolation tests.
pub const ACCOUNT_B: &str = "444455556666";
pub const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/palisade-e2e";
pub const ROLE_ARN_2: &str = "arn:aws:iam::111122223333:role/palisade-e2e-updated";
pub const LOGGING_ROLE_ARN: &str = "arn:aws:iam::111122223333:role/palisade-e2e-logging";
pub const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:111122223333:palisade-e2e";

/// Path of a mitigation action in the rest-json binding.
pub fn action_path(name: &str) -> String {
    format!("/mitigationactions/actions/{name}")
}

/// The ARN Palisade gives account A's action `name`.
pub fn action_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iot:{REGION}:{account}:mitigationaction/{name}")
}

// ------------------------------------------------------------------------------------
// The in-process server

/// A Palisade server running on this test's runtime, on its own database in a tempdir,
/// with one credential for each of two accounts.
pub struct TestServer {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// The audit worker, as `palisade serve` runs it.
    background: Option<palisade_engine::BackgroundWork>,
    pub addr: SocketAddr,
    pub endpoint: String,
    pub engine: Engine,
    /// Acts for [`ACCOUNT_A`].
    pub a: Credential,
    /// Acts for [`ACCOUNT_B`].
    pub b: Credential,
    /// Holds the SQLite database; removed when the server is dropped.
    _dir: TempDir,
    /// The PostgreSQL database, dropped after the server (fields drop in order).
    _pg: Option<TestDatabase>,
}

/// The storage engine a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// Instantiates the tests it wraps twice, in modules `sqlite` and `postgres`, each with
/// a const `ENGINE` to pass to [`TestServer::start`].
#[allow(unused_macros)] // binary.rs runs processes, not per-engine servers
macro_rules! per_engine {
    ($($item:item)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            const ENGINE: $crate::common::StoreKind = $crate::common::StoreKind::Sqlite;
            $($item)*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            const ENGINE: $crate::common::StoreKind = $crate::common::StoreKind::Postgres;
            $($item)*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use per_engine;

/// A fresh, empty store of `kind`, and what keeps it alive.
pub async fn fresh_store(kind: StoreKind, dir: &TempDir) -> (Arc<dyn Store>, Option<TestDatabase>) {
    match kind {
        StoreKind::Sqlite => {
            let store = SqliteStore::open(&dir.path().join("palisade.db")).expect("open store");
            (Arc::new(store), None)
        }
        StoreKind::Postgres => {
            let db = TestDatabase::create().await;
            (Arc::new(db.connect().await), Some(db))
        }
    }
}

impl TestServer {
    pub async fn start(kind: StoreKind) -> Self {
        Self::start_with(kind, Limits::default(), ServerConfig::default()).await
    }

    pub async fn start_with(kind: StoreKind, limits: Limits, cfg: ServerConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, pg) = fresh_store(kind, &dir).await;
        Self::start_on(store, pg, dir, limits, cfg).await
    }

    /// A server on a store the test built itself (e.g. connected through a proxy).
    pub async fn start_on(
        store: Arc<dyn Store>,
        pg: Option<TestDatabase>,
        dir: TempDir,
        limits: Limits,
        cfg: ServerConfig,
    ) -> Self {
        Self::start_full(
            store,
            pg,
            dir,
            limits,
            cfg,
            Arc::new(SystemClock),
            true,
            AuditSettings::default(),
        )
        .await
    }

    /// A server whose engine reads the time from `clock` (SigV4 still checks request
    /// times against the real clock).
    pub async fn start_with_clock(kind: StoreKind, clock: Arc<TestClock>) -> Self {
        Self::start_custom(kind, clock, true).await
    }

    /// A server without the background audit worker: audit tasks stay IN_PROGRESS.
    pub async fn start_without_worker(kind: StoreKind) -> Self {
        Self::start_custom(kind, Arc::new(TestClock::new()), false).await
    }

    /// A server with the engine clock `clock`, and the audit worker if `worker`.
    pub async fn start_custom(kind: StoreKind, clock: Arc<TestClock>, worker: bool) -> Self {
        Self::start_with_settings(kind, clock, worker, AuditSettings::default()).await
    }

    /// A server with the engine clock `clock`, the audit worker if `worker`, and the
    /// given audit settings (SNS endpoint, CRL fetching, scheduled audit time).
    pub async fn start_with_settings(
        kind: StoreKind,
        clock: Arc<TestClock>,
        worker: bool,
        settings: AuditSettings,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, pg) = fresh_store(kind, &dir).await;
        Self::start_full(
            store,
            pg,
            dir,
            Limits::default(),
            ServerConfig::default(),
            clock,
            worker,
            settings,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)] // private; each caller names what it varies.
    async fn start_full(
        store: Arc<dyn Store>,
        pg: Option<TestDatabase>,
        dir: TempDir,
        limits: Limits,
        cfg: ServerConfig,
        clock: Arc<dyn Clock>,
        worker: bool,
        settings: AuditSettings,
    ) -> Self {
        let engine = Engine::with_settings(store, clock, Arc::new(RandomIds), limits, settings)
            .await
            .expect("engine");
        let a = engine.create_credential(ACCOUNT_A).await.expect("cred A");
        let b = engine.create_credential(ACCOUNT_B).await.expect("cred B");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let router = palisade_api::router(engine.clone(), cfg);
        let background = worker.then(|| engine.start_background_work());
        let task = tokio::spawn(palisade_api::serve(
            listener,
            router,
            async {
                let _ = rx.await;
            },
            Duration::from_secs(3),
        ));
        Self {
            shutdown: Some(tx),
            task: Some(task),
            background,
            addr,
            endpoint: format!("http://{addr}"),
            engine,
            a,
            b,
            _dir: dir,
            _pg: pg,
        }
    }

    pub fn client(&self, cred: &Credential) -> Client {
        sdk_client(&self.endpoint, &cred.access_key_id, &cred.secret_access_key)
    }

    /// A client acting for [`ACCOUNT_A`].
    pub fn client_a(&self) -> Client {
        self.client(&self.a)
    }

    /// A client acting for [`ACCOUNT_B`].
    pub fn client_b(&self) -> Client {
        self.client(&self.b)
    }

    /// Sends a raw HTTP/1.1 request to the server.
    pub async fn send(&self, req: RawRequest) -> RawResponse {
        raw::send(self.addr, req).await
    }

    /// A request signed now as account A (the body is set before signing).
    pub fn signed(&self, req: RawRequest) -> RawRequest {
        req.sign(&self.addr.to_string(), &self.a, SystemTime::now())
    }

    /// Stops the background work (the audit and mitigation workers) after the step it is
    /// in, so tasks started from now on stay IN_PROGRESS until
    /// [`resume_background_work`](Self::resume_background_work).
    pub async fn pause_background_work(&mut self) {
        if let Some(background) = self.background.take() {
            background.stop().await;
        }
    }

    /// Starts the background work again (if paused, or never started).
    pub fn resume_background_work(&mut self) {
        if self.background.is_none() {
            self.background = Some(self.engine.start_background_work());
        }
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for the
    /// server loop to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server loop");
        }
        if let Some(background) = self.background.take() {
            background.stop().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An SDK client for a Palisade endpoint: fixed region, static keys, no retries (so
/// error tests see exactly one attempt), and short timeouts.
pub fn sdk_client(endpoint: &str, access_key_id: &str, secret: &str) -> Client {
    let creds = Credentials::new(access_key_id, secret, None, None, "palisade-e2e");
    Client::from_conf(
        sdk_config_builder(endpoint)
            .credentials_provider(creds)
            .build(),
    )
}

/// The common part of every test client's configuration, without credentials.
pub fn sdk_config_builder(endpoint: &str) -> aws_sdk_iot::config::Builder {
    aws_sdk_iot::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
}

/// An engine clock for tests: the system time plus an offset the test moves forward
/// (or back) at will.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
}

impl TestClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock by `ms` milliseconds.
    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Moves the clock by `days` whole days.
    pub fn advance_days(&self, days: i64) {
        self.advance_ms(days * 24 * 60 * 60 * 1000);
    }

    /// How far the clock is from the system time.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms()
    }
}

// ------------------------------------------------------------------------------------
// Mitigation action fixtures

/// Every action type Palisade supports, in a fixed order.
pub fn all_action_types() -> [MitigationActionType; 6] {
    [
        MitigationActionType::UpdateDeviceCertificate,
        MitigationActionType::UpdateCaCertificate,
        MitigationActionType::AddThingsToThingGroup,
        MitigationActionType::ReplaceDefaultPolicyVersion,
        MitigationActionType::EnableIotLogging,
        MitigationActionType::PublishFindingToSns,
    ]
}

/// Valid parameters for an action of type `t`.
pub fn params_for(t: &MitigationActionType) -> MitigationActionParams {
    let p = MitigationActionParams::builder();
    match t {
        MitigationActionType::UpdateDeviceCertificate => p.update_device_certificate_params(
            UpdateDeviceCertificateParams::builder()
                .action(DeviceCertificateUpdateAction::Deactivate)
                .build()
                .expect("params"),
        ),
        MitigationActionType::UpdateCaCertificate => p.update_ca_certificate_params(
            UpdateCaCertificateParams::builder()
                .action(CaCertificateUpdateAction::Deactivate)
                .build()
                .expect("params"),
        ),
        MitigationActionType::AddThingsToThingGroup => {
            p.add_things_to_thing_group_params(thing_groups(&["quarantine", "audit-hold"], true))
        }
        MitigationActionType::ReplaceDefaultPolicyVersion => p
            .replace_default_policy_version_params(
                ReplaceDefaultPolicyVersionParams::builder()
                    .template_name(PolicyTemplateName::BlankPolicy)
                    .build()
                    .expect("params"),
            ),
        MitigationActionType::EnableIotLogging => {
            p.enable_io_t_logging_params(logging(LogLevel::Debug))
        }
        MitigationActionType::PublishFindingToSns => p.publish_finding_to_sns_params(
            PublishFindingToSnsParams::builder()
                .topic_arn(TOPIC_ARN)
                .build()
                .expect("params"),
        ),
        other => panic!("no fixture for action type {other:?}"),
    }
    .build()
}

pub fn thing_groups(names: &[&str], override_dynamic: bool) -> AddThingsToThingGroupParams {
    AddThingsToThingGroupParams::builder()
        .set_thing_group_names(Some(names.iter().map(|s| s.to_string()).collect()))
        .override_dynamic_groups(override_dynamic)
        .build()
        .expect("params")
}

pub fn logging(level: LogLevel) -> EnableIoTLoggingParams {
    EnableIoTLoggingParams::builder()
        .role_arn_for_logging(LOGGING_ROLE_ARN)
        .log_level(level)
        .build()
        .expect("params")
}

pub fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().expect("tag")
}

/// Creates `name` with `ROLE_ARN`, panicking on failure.
pub async fn create_action(
    client: &Client,
    name: &str,
    params: MitigationActionParams,
) -> CreateMitigationActionOutput {
    client
        .create_mitigation_action()
        .action_name(name)
        .role_arn(ROLE_ARN)
        .action_params(params)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {}", DisplayErrorContext(e)))
}

pub async fn describe_action(client: &Client, name: &str) -> DescribeMitigationActionOutput {
    client
        .describe_mitigation_action()
        .action_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describing {name}: {}", DisplayErrorContext(e)))
}

/// What DescribeMitigationAction says about an action, without the per-response request id.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionState {
    pub name: Option<String>,
    pub action_type: Option<MitigationActionType>,
    pub arn: Option<String>,
    pub id: Option<String>,
    pub role_arn: Option<String>,
    pub params: Option<MitigationActionParams>,
    pub creation_date: Option<aws_sdk_iot::primitives::DateTime>,
    pub last_modified_date: Option<aws_sdk_iot::primitives::DateTime>,
}

pub async fn action_state(client: &Client, name: &str) -> ActionState {
    let d = describe_action(client, name).await;
    ActionState {
        name: d.action_name,
        action_type: d.action_type,
        arn: d.action_arn,
        id: d.action_id,
        role_arn: d.role_arn,
        params: d.action_params,
        creation_date: d.creation_date,
        last_modified_date: d.last_modified_date,
    }
}

/// Names of every action the client's account holds, via the SDK paginator.
pub async fn list_all_names(client: &Client) -> Vec<String> {
    client
        .list_mitigation_actions()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("listing: {}", DisplayErrorContext(e)))
        .into_iter()
        .map(|a| a.action_name.expect("actionName"))
        .collect()
}

/// The tags on `arn` as sorted `(key, value)` pairs.
pub async fn tags_of(client: &Client, arn: &str) -> Vec<(String, String)> {
    let out = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("listing tags of {arn}: {}", DisplayErrorContext(e)));
    let mut tags: Vec<(String, String)> = out
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
        .collect();
    tags.sort();
    tags
}

pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A canonical lowercase hyphenated UUID.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

// ------------------------------------------------------------------------------------
// Errors

/// What the client saw of a failed request.
#[derive(Debug)]
pub struct Failure {
    pub code: Option<String>,
    pub message: String,
    pub status: u16,
    pub request_id: Option<String>,
}

impl Failure {
    /// Asserts the error code and HTTP status.
    #[track_caller]
    pub fn assert(&self, code: &str, status: u16) -> &Self {
        assert_eq!(
            (self.code.as_deref(), self.status),
            (Some(code), status),
            "unexpected error: {self:?}"
        );
        assert!(
            self.request_id.as_deref().is_some_and(|id| !id.is_empty()),
            "error response without x-amzn-RequestId: {self:?}"
        );
        self
    }

    /// Asserts the message contains every one of `needles`.
    #[track_caller]
    pub fn mentions(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.message.contains(n),
                "message {:?} does not mention {n:?}",
                self.message
            );
        }
        self
    }
}

/// Unwraps the error of a request that must have reached the server and failed, returning
/// what the client saw and the typed service error.
#[track_caller]
pub fn expect_failure<T, E>(result: Result<T, SdkError<E>>) -> (Failure, E)
where
    T: Debug,
    E: ProvideErrorMetadata + CreateUnhandledError + std::error::Error + Send + Sync + 'static,
{
    let err = match result {
        Ok(out) => panic!("expected the request to fail, got {out:?}"),
        Err(e) => e,
    };
    let Some(raw) = err.raw_response() else {
        panic!(
            "the request failed without a response: {}",
            DisplayErrorContext(&err)
        );
    };
    let failure = Failure {
        code: err.code().map(str::to_owned),
        message: err.message().unwrap_or_default().to_owned(),
        status: raw.status().as_u16(),
        request_id: raw.headers().get("x-amzn-requestid").map(str::to_owned),
    };
    (failure, err.into_service_error())
}
