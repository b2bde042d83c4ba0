//! Scheduled audits: their operations and the scheduler, with a controllable clock.
//!
//! The scheduler tests put the engine clock on a known date and the server's time of
//! day at 13:00 UTC, then move the clock past it. Where a test must show that a
//! schedule did *not* run, a DAILY "witness" schedule named to sort last runs beside
//! it: one tick handles every due schedule in (time, name) order, so once the
//! witness's task exists, any other schedule due at that moment has been started too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::create_scheduled_audit::CreateScheduledAuditError;
use aws_sdk_iot::operation::update_account_audit_configuration::UpdateAccountAuditConfigurationError;
use aws_sdk_iot::primitives::DateTime;
use aws_sdk_iot::types::{
    AuditCheckConfiguration, AuditFrequency, AuditTaskStatus, AuditTaskType, DayOfWeek,
};
use aws_sdk_iot::Client;
use palisade_api::ServerConfig;
use palisade_engine::{AuditSettings, Clock, Engine, Limits, RandomIds};
use palisade_store::{SqliteStore, Store};
use palisade_testdb::TestDatabase;
use tempfile::TempDir;
use tokio::sync::oneshot;

const LOGGING: &str = "LOGGING_DISABLED_CHECK";
const PERMISSIVE: &str = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK";
const CA_EXPIRING: &str = "CA_CERTIFICATE_EXPIRING_CHECK";
const AUDIT_ROLE: &str = "arn:aws:iam::111122223333:role/palisade-e2e-audit";
const AUDIT_ROLE_B: &str = "arn:aws:iam::444455556666:role/palisade-e2e-audit";
const HOUR_MS: i64 = 60 * 60 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The server's scheduled audit time in these tests: 13:00 UTC.
const AUDIT_HOUR: i64 = 13;
/// Longer than two scheduler ticks: what a test waits to see that nothing happens.
const QUIET: Duration = Duration::from_millis(2_500);

// ------------------------------------------------------------------------------------
// Helpers

fn settings() -> AuditSettings {
    AuditSettings {
        scheduled_audit_time_s: (AUDIT_HOUR * 3600) as u32,
        ..AuditSettings::default()
    }
}

fn sched_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iot:{REGION}:{account}:scheduledaudit/{name}")
}

/// Milliseconds of `year-month-day hour:minute` UTC (H. Hinnant's `days_from_civil`).
fn utc(year: i32, month: u8, day: u8, hour: u8, minute: u8) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = i64::from(year) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * DAY_MS + i64::from(hour) * HOUR_MS + i64::from(minute) * 60_000
}

/// Moves the engine clock to `target_ms` (it goes on ticking from there).
fn set_clock(clock: &TestClock, target_ms: i64) {
    clock.advance_ms(target_ms - clock.now_ms());
}

/// Just after the audit time on the given day.
fn run_time(year: i32, month: u8, day: u8) -> i64 {
    utc(year, month, day, AUDIT_HOUR as u8, 0) + 30_000
}

async fn enable(client: &Client, role: &str, checks: &[&str]) {
    let mut req = client.update_account_audit_configuration().role_arn(role);
    for check in checks {
        req = req.audit_check_configurations(
            *check,
            AuditCheckConfiguration::builder().enabled(true).build(),
        );
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("enabling {checks:?}: {}", DisplayErrorContext(e)));
}

async fn disable(
    client: &Client,
    check: &str,
) -> Result<(), aws_sdk_iot::error::SdkError<UpdateAccountAuditConfigurationError>> {
    client
        .update_account_audit_configuration()
        .audit_check_configurations(
            check,
            AuditCheckConfiguration::builder().enabled(false).build(),
        )
        .send()
        .await
        .map(drop)
}

/// Creates a schedule of `checks`, panicking on failure; returns its ARN.
async fn create(
    client: &Client,
    name: &str,
    frequency: AuditFrequency,
    week: Option<DayOfWeek>,
    month: Option<&str>,
    checks: &[&str],
) -> String {
    client
        .create_scheduled_audit()
        .scheduled_audit_name(name)
        .frequency(frequency)
        .set_day_of_week(week)
        .set_day_of_month(month.map(str::to_owned))
        .set_target_check_names(Some(checks.iter().map(|c| c.to_string()).collect()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateScheduledAudit {name}: {}", DisplayErrorContext(e)))
        .scheduled_audit_arn()
        .expect("scheduledAuditArn")
        .to_owned()
}

async fn daily(client: &Client, name: &str) -> String {
    create(client, name, AuditFrequency::Daily, None, None, &[LOGGING]).await
}

/// What Describe says: (frequency, dayOfWeek, dayOfMonth, targetCheckNames).
async fn describe(
    client: &Client,
    name: &str,
) -> (
    AuditFrequency,
    Option<DayOfWeek>,
    Option<String>,
    Vec<String>,
) {
    let out = client
        .describe_scheduled_audit()
        .scheduled_audit_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeScheduledAudit {name}: {}", DisplayErrorContext(e)));
    assert_eq!(out.scheduled_audit_name(), Some(name));
    assert!(out
        .scheduled_audit_arn()
        .is_some_and(|a| a.ends_with(&format!(":scheduledaudit/{name}"))));
    (
        out.frequency().cloned().expect("frequency"),
        out.day_of_week().cloned(),
        out.day_of_month().map(str::to_owned),
        out.target_check_names().to_vec(),
    )
}

/// Every scheduled audit's name, paging `page` at a time.
async fn listed(client: &Client, page: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let resp = client
            .list_scheduled_audits()
            .max_results(page)
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListScheduledAudits: {}", DisplayErrorContext(e)));
        assert!(resp.scheduled_audits().len() <= page as usize);
        out.extend(
            resp.scheduled_audits()
                .iter()
                .map(|s| s.scheduled_audit_name().expect("name").to_owned()),
        );
        token = resp.next_token().map(str::to_owned);
        if token.is_none() {
            return out;
        }
    }
}

/// A scheduled task as seen through ListAuditTasks and DescribeAuditTask.
#[derive(Debug, Clone)]
struct Run {
    task_id: String,
    name: String,
    status: AuditTaskStatus,
    checks: Vec<String>,
}

/// Every SCHEDULED_AUDIT_TASK of the last 80 days (by the engine clock).
async fn runs(client: &Client, clock: &TestClock) -> Vec<Run> {
    let now = clock.now_ms();
    let out = client
        .list_audit_tasks()
        .start_time(DateTime::from_millis(now - 80 * DAY_MS))
        .end_time(DateTime::from_millis(now + DAY_MS))
        .task_type(AuditTaskType::ScheduledAuditTask)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListAuditTasks: {}", DisplayErrorContext(e)));
    assert_eq!(out.next_token(), None);
    let mut found = Vec::new();
    for t in out.tasks() {
        let id = t.task_id().expect("taskId");
        let task = client
            .describe_audit_task()
            .task_id(id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeAuditTask {id}: {}", DisplayErrorContext(e)));
        assert_eq!(task.task_type(), Some(&AuditTaskType::ScheduledAuditTask));
        let mut checks: Vec<String> = task
            .audit_details()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        checks.sort();
        found.push(Run {
            task_id: id.to_owned(),
            name: task
                .scheduled_audit_name()
                .expect("scheduledAuditName")
                .to_owned(),
            status: task.task_status().cloned().expect("taskStatus"),
            checks,
        });
    }
    found.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    found
}

fn count(runs: &[Run], name: &str) -> usize {
    runs.iter().filter(|r| r.name == name).count()
}

/// Waits (at most 20 s) until `name` has `n` runs and none is IN_PROGRESS; returns all.
async fn wait_runs(client: &Client, clock: &TestClock, name: &str, n: usize) -> Vec<Run> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = runs(client, clock).await;
        let done = all.iter().all(|r| r.status != AuditTaskStatus::InProgress);
        if count(&all, name) >= n && done {
            assert_eq!(count(&all, name), n, "{name}: too many runs: {all:?}");
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: waiting for {n} finished runs, have {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------------------------
// A server on a store the test keeps (to restart on it, or to run two on it)

struct Node {
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    background: palisade_engine::BackgroundWork,
    client: Client,
}

impl Node {
    async fn start(store: Arc<dyn Store>, clock: Arc<TestClock>) -> Node {
        let engine = Engine::with_settings(
            store,
            clock as Arc<dyn Clock>,
            Arc::new(RandomIds),
            Limits::default(),
            settings(),
        )
        .await
        .expect("engine");
        let cred = engine.create_credential(ACCOUNT_A).await.expect("cred");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let router = palisade_api::router(engine.clone(), ServerConfig::default());
        let background = engine.start_background_work();
        let task = tokio::spawn(palisade_api::serve(
            listener,
            router,
            async {
                let _ = rx.await;
            },
            Duration::from_secs(3),
        ));
        Node {
            shutdown: Some(tx),
            task,
            background,
            client: sdk_client(&endpoint, &cred.access_key_id, &cred.secret_access_key),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("server task").expect("server loop");
        self.background.stop().await;
    }
}

/// One database the test can open several store handles on, as separate processes
/// (or nodes) would.
struct SharedDb {
    dir: TempDir,
    pg: Option<TestDatabase>,
}

impl SharedDb {
    async fn new(kind: StoreKind) -> SharedDb {
        let pg = match kind {
            StoreKind::Sqlite => None,
            StoreKind::Postgres => Some(TestDatabase::create().await),
        };
        SharedDb {
            dir: tempfile::tempdir().expect("tempdir"),
            pg,
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        match &self.pg {
            Some(db) => Arc::new(db.connect().await),
            None => Arc::new(
                SqliteStore::open(&self.dir.path().join("palisade.db")).expect("open store"),
            ),
        }
    }
}

async fn scheduled_server(kind: StoreKind, start_ms: i64) -> (TestServer, Arc<TestClock>) {
    let clock = Arc::new(TestClock::new());
    set_clock(&clock, start_ms);
    let server = TestServer::start_with_settings(kind, clock.clone(), true, settings()).await;
    (server, clock)
}

/// Runs the February scenario of `year`: MONTHLY 31, 30, 29, 28 and LAST schedules,
/// created on the 27th, against a DAILY witness.
async fn february(kind: StoreKind, year: i32) {
    let leap = year % 4 == 0;
    let (server, clock) = scheduled_server(kind, utc(year, 2, 27, 12, 0)).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    for day in ["31", "29", "28", "LAST"] {
        create(
            &client,
            &format!("m{day}"),
            AuditFrequency::Monthly,
            None,
            Some(day),
            &[LOGGING],
        )
        .await;
    }
    daily(&client, "zz-witness").await;

    set_clock(&clock, run_time(year, 2, 27));
    let all = wait_runs(&client, &clock, "zz-witness", 1).await;
    assert_eq!(all.len(), 1, "{all:?}");

    set_clock(&clock, run_time(year, 2, 28));
    let all = wait_runs(&client, &clock, "zz-witness", 2).await;
    assert_eq!(count(&all, "m28"), 1, "{all:?}");
    let on_28 = if leap { 0 } else { 1 };
    for name in ["m31", "m29", "mLAST"] {
        assert_eq!(
            count(&all, name),
            on_28,
            "{name} on Feb 28 of {year}: {all:?}"
        );
    }
    if leap {
        set_clock(&clock, run_time(year, 2, 29));
        let all = wait_runs(&client, &clock, "zz-witness", 3).await;
        for name in ["m31", "m29", "mLAST"] {
            assert_eq!(count(&all, name), 1, "{name} on Feb 29: {all:?}");
        }
        assert_eq!(count(&all, "m28"), 1, "{all:?}");
    }
    // March 1st: nothing monthly runs again.
    set_clock(&clock, run_time(year, 3, 1));
    let all = wait_runs(&client, &clock, "zz-witness", if leap { 4 } else { 3 }).await;
    assert_eq!(all.len(), if leap { 8 } else { 7 }, "{all:?}");
    assert!(all.iter().all(|r| r.status == AuditTaskStatus::Completed));
    server.stop().await;
}

per_engine! {

// ------------------------------------------------------------------------------------
// Operations

#[tokio::test]
async fn create_describe_list_update_delete() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING, PERMISSIVE, CA_EXPIRING]).await;

    let arn = create(
        &client,
        "weekly-1",
        AuditFrequency::Weekly,
        Some(DayOfWeek::Mon),
        None,
        &[LOGGING, PERMISSIVE, LOGGING],
    )
    .await;
    assert_eq!(arn, sched_arn(ACCOUNT_A, "weekly-1"));
    assert_eq!(
        describe(&client, "weekly-1").await,
        (
            AuditFrequency::Weekly,
            Some(DayOfWeek::Mon),
            None,
            vec![LOGGING.to_owned(), PERMISSIVE.to_owned()]
        )
    );
    let listed = client.list_scheduled_audits().send().await.expect("list");
    assert_eq!(listed.next_token(), None);
    let meta = &listed.scheduled_audits()[0];
    assert_eq!(listed.scheduled_audits().len(), 1);
    assert_eq!(meta.scheduled_audit_name(), Some("weekly-1"));
    assert_eq!(meta.scheduled_audit_arn(), Some(arn.as_str()));
    assert_eq!(meta.frequency(), Some(&AuditFrequency::Weekly));
    assert_eq!(meta.day_of_week(), Some(&DayOfWeek::Mon));
    assert_eq!(meta.day_of_month(), None);

    // To MONTHLY: dayOfMonth needed, dayOfWeek dropped.
    let out = client
        .update_scheduled_audit()
        .scheduled_audit_name("weekly-1")
        .frequency(AuditFrequency::Monthly)
        .day_of_month("LAST")
        .send()
        .await
        .expect("update to MONTHLY");
    assert_eq!(out.scheduled_audit_arn(), Some(arn.as_str()));
    assert_eq!(
        describe(&client, "weekly-1").await,
        (
            AuditFrequency::Monthly,
            None,
            Some("LAST".to_owned()),
            vec![LOGGING.to_owned(), PERMISSIVE.to_owned()]
        )
    );
    // The day alone; then the checks alone.
    client
        .update_scheduled_audit()
        .scheduled_audit_name("weekly-1")
        .day_of_month("15")
        .send()
        .await
        .expect("update the day");
    client
        .update_scheduled_audit()
        .scheduled_audit_name("weekly-1")
        .target_check_names(CA_EXPIRING)
        .send()
        .await
        .expect("update the checks");
    assert_eq!(
        describe(&client, "weekly-1").await,
        (
            AuditFrequency::Monthly,
            None,
            Some("15".to_owned()),
            vec![CA_EXPIRING.to_owned()]
        )
    );
    // To DAILY: the day goes. Back to BIWEEKLY: a day of week is needed again.
    client
        .update_scheduled_audit()
        .scheduled_audit_name("weekly-1")
        .frequency(AuditFrequency::Daily)
        .send()
        .await
        .expect("update to DAILY");
    assert_eq!(
        describe(&client, "weekly-1").await,
        (AuditFrequency::Daily, None, None, vec![CA_EXPIRING.to_owned()])
    );
    let (f, _) = expect_failure(
        client
            .update_scheduled_audit()
            .scheduled_audit_name("weekly-1")
            .frequency(AuditFrequency::Biweekly)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["dayOfWeek"]);
    client
        .update_scheduled_audit()
        .scheduled_audit_name("weekly-1")
        .frequency(AuditFrequency::Biweekly)
        .day_of_week(DayOfWeek::Fri)
        .send()
        .await
        .expect("update to BIWEEKLY");
    assert_eq!(
        describe(&client, "weekly-1").await,
        (
            AuditFrequency::Biweekly,
            Some(DayOfWeek::Fri),
            None,
            vec![CA_EXPIRING.to_owned()]
        )
    );

    client
        .delete_scheduled_audit()
        .scheduled_audit_name("weekly-1")
        .send()
        .await
        .expect("delete");
    assert!(listed_names(&client).await.is_empty());
    let (f, _) = expect_failure(
        client
            .describe_scheduled_audit()
            .scheduled_audit_name("weekly-1")
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404).mentions(&["weekly-1"]);
    let (f, _) = expect_failure(
        client
            .delete_scheduled_audit()
            .scheduled_audit_name("weekly-1")
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(
        client
            .update_scheduled_audit()
            .scheduled_audit_name("weekly-1")
            .frequency(AuditFrequency::Daily)
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    server.stop().await;
}

#[tokio::test]
async fn day_rules_are_enforced() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    let attempt = |name: &str, f: AuditFrequency, w: Option<DayOfWeek>, m: Option<&str>| {
        client
            .create_scheduled_audit()
            .scheduled_audit_name(name)
            .frequency(f)
            .set_day_of_week(w)
            .set_day_of_month(m.map(str::to_owned))
            .target_check_names(LOGGING)
            .send()
    };
    let refused: [(AuditFrequency, Option<DayOfWeek>, Option<&str>, &str); 9] = [
        (AuditFrequency::Daily, Some(DayOfWeek::Mon), None, "DAILY"),
        (AuditFrequency::Daily, None, Some("1"), "DAILY"),
        (AuditFrequency::Weekly, None, None, "dayOfWeek"),
        (AuditFrequency::Biweekly, Some(DayOfWeek::Tue), Some("3"), "dayOfMonth"),
        (AuditFrequency::Monthly, None, None, "dayOfMonth"),
        (AuditFrequency::Monthly, Some(DayOfWeek::Mon), Some("1"), "dayOfWeek"),
        (AuditFrequency::Monthly, None, Some("32"), "dayOfMonth"),
        (AuditFrequency::Monthly, None, Some("0"), "dayOfMonth"),
        (AuditFrequency::Monthly, None, Some("last"), "dayOfMonth"),
    ];
    for (i, (f, w, m, needle)) in refused.into_iter().enumerate() {
        let (fail, _) = expect_failure(attempt(&format!("bad-{i}"), f, w, m).await);
        fail.assert("InvalidRequestException", 400).mentions(&[needle]);
    }
    let (fail, _) = expect_failure(
        attempt("bad-freq", AuditFrequency::from("HOURLY"), None, None).await,
    );
    fail.assert("InvalidRequestException", 400).mentions(&["frequency"]);
    assert!(listed_names(&client).await.is_empty(), "refusals create nothing");

    for (name, m) in [("m-1", "1"), ("m-31", "31"), ("m-last", "LAST")] {
        create(&client, name, AuditFrequency::Monthly, None, Some(m), &[LOGGING]).await;
    }
    create(&client, "w", AuditFrequency::Biweekly, Some(DayOfWeek::Sun), None, &[LOGGING]).await;
    assert_eq!(listed_names(&client).await, ["m-1", "m-31", "m-last", "w"]);

    // Updates follow the same rules and change nothing when refused.
    for (w, m, needle) in [
        (Some(DayOfWeek::Mon), None, "dayOfWeek"),
        (None, Some("33"), "dayOfMonth"),
    ] {
        let (fail, _) = expect_failure(
            client
                .update_scheduled_audit()
                .scheduled_audit_name("m-31")
                .set_day_of_week(w)
                .set_day_of_month(m.map(str::to_owned))
                .send()
                .await,
        );
        fail.assert("InvalidRequestException", 400).mentions(&[needle]);
    }
    let (fail, _) = expect_failure(
        client
            .update_scheduled_audit()
            .scheduled_audit_name("w")
            .day_of_month("3")
            .send()
            .await,
    );
    fail.assert("InvalidRequestException", 400).mentions(&["dayOfMonth"]);
    let (fail, _) = expect_failure(
        client
            .update_scheduled_audit()
            .scheduled_audit_name("w")
            .frequency(AuditFrequency::Daily)
            .day_of_week(DayOfWeek::Sun)
            .send()
            .await,
    );
    fail.assert("InvalidRequestException", 400).mentions(&["DAILY"]);
    assert_eq!(
        describe(&client, "m-31").await,
        (AuditFrequency::Monthly, None, Some("31".to_owned()), vec![LOGGING.to_owned()])
    );
    assert_eq!(
        describe(&client, "w").await,
        (AuditFrequency::Biweekly, Some(DayOfWeek::Sun), None, vec![LOGGING.to_owned()])
    );
    server.stop().await;
}

#[tokio::test]
async fn target_checks_must_be_known_and_enabled() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    // No configuration at all: nothing is enabled.
    let (f, _) = expect_failure(
        client
            .create_scheduled_audit()
            .scheduled_audit_name("s")
            .frequency(AuditFrequency::Daily)
            .target_check_names(LOGGING)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&[LOGGING, "not enabled"]);
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    for (checks, needle) in [
        (vec![LOGGING, "NOT_A_CHECK"], "NOT_A_CHECK"),
        (vec![LOGGING, PERMISSIVE], PERMISSIVE),
        (vec![], "targetCheckNames"),
    ] {
        let (f, _) = expect_failure(
            client
                .create_scheduled_audit()
                .scheduled_audit_name("s")
                .frequency(AuditFrequency::Daily)
                .set_target_check_names(Some(checks.iter().map(|c| c.to_string()).collect()))
                .send()
                .await,
        );
        f.assert("InvalidRequestException", 400).mentions(&[needle]);
    }
    assert!(listed_names(&client).await.is_empty());
    daily(&client, "s").await;
    let (f, _) = expect_failure(
        client
            .update_scheduled_audit()
            .scheduled_audit_name("s")
            .target_check_names(PERMISSIVE)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&[PERMISSIVE]);
    assert_eq!(describe(&client, "s").await.3, [LOGGING]);
    server.stop().await;
}

#[tokio::test]
async fn limit_duplicates_and_accounts() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    enable(&a, AUDIT_ROLE, &[LOGGING]).await;
    enable(&b, AUDIT_ROLE_B, &[LOGGING]).await;
    for i in 0..5 {
        daily(&a, &format!("s-{i}")).await;
    }
    let (f, _) = expect_failure(
        a.create_scheduled_audit()
            .scheduled_audit_name("s-5")
            .frequency(AuditFrequency::Daily)
            .target_check_names(LOGGING)
            .send()
            .await,
    );
    f.assert("LimitExceededException", 410).mentions(&["5"]);
    let (f, e) = expect_failure(
        a.create_scheduled_audit()
            .scheduled_audit_name("s-0")
            .frequency(AuditFrequency::Weekly)
            .day_of_week(DayOfWeek::Mon)
            .target_check_names(LOGGING)
            .send()
            .await,
    );
    f.assert("ResourceAlreadyExistsException", 409).mentions(&["s-0"]);
    match e {
        CreateScheduledAuditError::ResourceAlreadyExistsException(e) => {
            assert_eq!(e.resource_arn(), Some(sched_arn(ACCOUNT_A, "s-0").as_str()));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(describe(&a, "s-0").await.0, AuditFrequency::Daily);

    // Another account has its own names and its own limit, and sees none of A's.
    assert!(listed_names(&b).await.is_empty());
    let (f, _) = expect_failure(
        b.describe_scheduled_audit().scheduled_audit_name("s-0").send().await,
    );
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(
        b.delete_scheduled_audit().scheduled_audit_name("s-0").send().await,
    );
    f.assert("ResourceNotFoundException", 404);
    assert_eq!(daily(&b, "s-0").await, sched_arn(ACCOUNT_B, "s-0"));

    // Deleting one makes room again.
    a.delete_scheduled_audit()
        .scheduled_audit_name("s-3")
        .send()
        .await
        .expect("delete");
    daily(&a, "s-5").await;
    assert_eq!(listed_names(&a).await, ["s-0", "s-1", "s-2", "s-4", "s-5"]);
    assert_eq!(listed_names(&b).await, ["s-0"]);
    server.stop().await;
}

#[tokio::test]
async fn list_pages_in_name_order() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    for name in ["delta", "Alpha", "charlie", "bravo", "echo-1"] {
        daily(&client, name).await;
    }
    let all = ["Alpha", "bravo", "charlie", "delta", "echo-1"];
    for page in [1, 2, 3, 5, 250] {
        assert_eq!(listed(&client, page).await, all, "page size {page}");
    }
    assert_eq!(listed_names(&client).await, all);
    let first = client
        .list_scheduled_audits()
        .max_results(2)
        .send()
        .await
        .expect("page");
    let token = first.next_token().expect("nextToken").to_owned();
    let (f, _) = expect_failure(
        client
            .list_scheduled_audits()
            .next_token(format!("{token}x"))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    // A token of account A is no good to account B.
    let (f, _) = expect_failure(
        server.client_b().list_scheduled_audits().next_token(&token).send().await,
    );
    f.assert("InvalidRequestException", 400);
    for bad in [0, 251] {
        let (f, _) = expect_failure(client.list_scheduled_audits().max_results(bad).send().await);
        f.assert("InvalidRequestException", 400).mentions(&["maxResults"]);
    }
    server.stop().await;
}

#[tokio::test]
async fn tags_live_and_die_with_the_schedule() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    let arn = client
        .create_scheduled_audit()
        .scheduled_audit_name("tagged")
        .frequency(AuditFrequency::Daily)
        .target_check_names(LOGGING)
        .tags(tag("team", "security"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .expect("create with tags")
        .scheduled_audit_arn()
        .expect("arn")
        .to_owned();
    assert_eq!(
        tags_of(&client, &arn).await,
        pairs(&[("env", "prod"), ("team", "security")])
    );
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("owner", "ops"))
        .send()
        .await
        .expect("TagResource");
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("env")
        .send()
        .await
        .expect("UntagResource");
    assert_eq!(
        tags_of(&client, &arn).await,
        pairs(&[("owner", "ops"), ("team", "security")])
    );
    // Another account's view of the ARN: not there.
    let (f, _) = expect_failure(
        server.client_b().list_tags_for_resource().resource_arn(&arn).send().await,
    );
    f.assert("ResourceNotFoundException", 404);
    // A schedule that does not exist has no tags to list or set.
    let missing = sched_arn(ACCOUNT_A, "missing");
    let (f, _) = expect_failure(client.list_tags_for_resource().resource_arn(&missing).send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(
        client.tag_resource().resource_arn(&missing).tags(tag("k", "v")).send().await,
    );
    f.assert("ResourceNotFoundException", 404);

    client
        .delete_scheduled_audit()
        .scheduled_audit_name("tagged")
        .send()
        .await
        .expect("delete");
    let (f, _) = expect_failure(client.list_tags_for_resource().resource_arn(&arn).send().await);
    f.assert("ResourceNotFoundException", 404);
    assert_eq!(daily(&client, "tagged").await, arn);
    assert!(tags_of(&client, &arn).await.is_empty(), "the old tags went with the old schedule");
    server.stop().await;
}

#[tokio::test]
async fn a_check_in_use_cannot_be_disabled() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING, PERMISSIVE, CA_EXPIRING]).await;
    create(&client, "uses-logging", AuditFrequency::Daily, None, None, &[LOGGING, CA_EXPIRING])
        .await;
    for check in [LOGGING, CA_EXPIRING] {
        let (f, _) = expect_failure(disable(&client, check).await);
        f.assert("InvalidRequestException", 400).mentions(&[check, "uses-logging"]);
    }
    // Refused whole: the other changes of the same request did not happen either.
    let (f, _) = expect_failure(
        client
            .update_account_audit_configuration()
            .audit_check_configurations(
                PERMISSIVE,
                AuditCheckConfiguration::builder().enabled(false).build(),
            )
            .audit_check_configurations(
                LOGGING,
                AuditCheckConfiguration::builder().enabled(false).build(),
            )
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&[LOGGING]);
    let config = client
        .describe_account_audit_configuration()
        .send()
        .await
        .expect("describe");
    let on = |c: &str| {
        config
            .audit_check_configurations()
            .and_then(|m| m.get(c))
            .map(|c| c.enabled())
    };
    assert_eq!((on(LOGGING), on(PERMISSIVE)), (Some(true), Some(true)));
    // A check no schedule uses can go; once the schedule drops a check, it can go too.
    disable(&client, PERMISSIVE).await.expect("disable an unused check");
    client
        .update_scheduled_audit()
        .scheduled_audit_name("uses-logging")
        .target_check_names(CA_EXPIRING)
        .send()
        .await
        .expect("drop LOGGING from the schedule");
    disable(&client, LOGGING).await.expect("disable a check no longer used");
    let (f, _) = expect_failure(disable(&client, CA_EXPIRING).await);
    f.assert("InvalidRequestException", 400);
    client
        .delete_scheduled_audit()
        .scheduled_audit_name("uses-logging")
        .send()
        .await
        .expect("delete");
    disable(&client, CA_EXPIRING).await.expect("disable once the schedule is gone");
    server.stop().await;
}

#[tokio::test]
async fn deleting_the_configuration_with_schedules() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    let arn = client
        .create_scheduled_audit()
        .scheduled_audit_name("nightly")
        .frequency(AuditFrequency::Daily)
        .target_check_names(LOGGING)
        .tags(tag("k", "v"))
        .send()
        .await
        .expect("create")
        .scheduled_audit_arn()
        .expect("arn")
        .to_owned();
    daily(&client, "second").await;
    for flag in [None, Some(false)] {
        let (f, _) = expect_failure(
            client
                .delete_account_audit_configuration()
                .set_delete_scheduled_audits(flag)
                .send()
                .await,
        );
        f.assert("InvalidRequestException", 400)
            .mentions(&["deleteScheduledAudits", "nightly", "second"]);
    }
    assert_eq!(listed_names(&client).await, ["nightly", "second"]);
    assert!(client
        .describe_account_audit_configuration()
        .send()
        .await
        .expect("describe")
        .role_arn()
        .is_some());

    client
        .delete_account_audit_configuration()
        .delete_scheduled_audits(true)
        .send()
        .await
        .expect("delete with the schedules");
    assert!(listed_names(&client).await.is_empty());
    let (f, _) = expect_failure(client.list_tags_for_resource().resource_arn(&arn).send().await);
    f.assert("ResourceNotFoundException", 404);
    let config = client
        .describe_account_audit_configuration()
        .send()
        .await
        .expect("describe");
    assert_eq!(config.role_arn(), None);
    // Without schedules the flag makes no difference.
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    client
        .delete_account_audit_configuration()
        .send()
        .await
        .expect("delete without schedules");
    let (f, _) = expect_failure(
        client
            .delete_account_audit_configuration()
            .delete_scheduled_audits(true)
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    server.stop().await;
}

// ------------------------------------------------------------------------------------
// The scheduler

#[tokio::test]
async fn daily_runs_once_per_period() {
    // Monday 2030-01-07, noon; audits at 13:00.
    let (server, clock) = scheduled_server(ENGINE, utc(2030, 1, 7, 12, 0)).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING, PERMISSIVE]).await;
    create(&client, "nightly", AuditFrequency::Daily, None, None, &[LOGGING, PERMISSIVE]).await;
    tokio::time::sleep(QUIET).await;
    assert!(runs(&client, &clock).await.is_empty(), "nothing is due before 13:00");

    set_clock(&clock, run_time(2030, 1, 7));
    let all = wait_runs(&client, &clock, "nightly", 1).await;
    let run = &all[0];
    assert_eq!(run.status, AuditTaskStatus::Completed);
    assert_eq!(run.checks, [PERMISSIVE, LOGGING]);
    assert_eq!(run.task_id.len(), 32);
    let task = client
        .describe_audit_task()
        .task_id(&run.task_id)
        .send()
        .await
        .expect("describe task");
    let stats = task.task_statistics().expect("statistics");
    assert_eq!(stats.total_checks(), Some(2));
    assert_eq!(stats.non_compliant_checks(), Some(1), "logging is off: {task:?}");
    assert_eq!(stats.compliant_checks(), Some(1), "no policies: {task:?}");
    let started = task.task_start_time().expect("start").to_millis().expect("ms");
    assert!((started - run_time(2030, 1, 7)).abs() < 60_000, "{started}");
    // Its findings are there like an on-demand audit's.
    let findings = client
        .list_audit_findings()
        .task_id(&run.task_id)
        .send()
        .await
        .expect("findings");
    assert_eq!(findings.findings().len(), 1);

    // Later the same day: nothing more.
    set_clock(&clock, utc(2030, 1, 7, 18, 0));
    tokio::time::sleep(QUIET).await;
    assert_eq!(runs(&client, &clock).await.len(), 1);
    // The next day: one more, with the checks as they are then.
    client
        .update_scheduled_audit()
        .scheduled_audit_name("nightly")
        .target_check_names(LOGGING)
        .send()
        .await
        .expect("update checks");
    set_clock(&clock, run_time(2030, 1, 8));
    let all = wait_runs(&client, &clock, "nightly", 2).await;
    assert!(all.iter().any(|r| r.checks == [LOGGING]), "{all:?}");
    tokio::time::sleep(QUIET).await;
    assert_eq!(runs(&client, &clock).await.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn weekly_and_biweekly_run_only_on_their_days() {
    let (server, clock) = scheduled_server(ENGINE, utc(2030, 1, 7, 12, 0)).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    create(&client, "weekly", AuditFrequency::Weekly, Some(DayOfWeek::Wed), None, &[LOGGING]).await;
    create(&client, "fortnightly", AuditFrequency::Biweekly, Some(DayOfWeek::Wed), None, &[LOGGING])
        .await;
    daily(&client, "zz-witness").await;
    // Mon 7, Tue 8: neither; Wed 9: both; Thu 10: neither; Wed 16: weekly only;
    // Wed 23: both again.
    let days: [(u8, usize, usize); 6] =
        [(7, 0, 0), (8, 0, 0), (9, 1, 1), (10, 1, 1), (16, 2, 1), (23, 3, 2)];
    for (i, (day, weekly, fortnightly)) in days.into_iter().enumerate() {
        set_clock(&clock, run_time(2030, 1, day));
        let all = wait_runs(&client, &clock, "zz-witness", i + 1).await;
        assert_eq!(count(&all, "weekly"), weekly, "weekly by Jan {day}: {all:?}");
        assert_eq!(
            count(&all, "fortnightly"),
            fortnightly,
            "fortnightly by Jan {day}: {all:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn monthly_31_runs_on_february_28_in_common_years() {
    february(ENGINE, 2030).await;
}

#[tokio::test]
async fn monthly_31_runs_on_february_29_in_leap_years() {
    february(ENGINE, 2028).await;
}

#[tokio::test]
async fn a_restart_after_missed_runs_catches_up_once() {
    let db = SharedDb::new(ENGINE).await;
    let clock = Arc::new(TestClock::new());
    set_clock(&clock, utc(2030, 1, 7, 12, 0));
    let node = Node::start(db.open().await, clock.clone()).await;
    enable(&node.client, AUDIT_ROLE, &[LOGGING]).await;
    daily(&node.client, "nightly").await;
    node.stop().await;

    // Down across three audit times (Jan 7, 8 and 9 at 13:00).
    set_clock(&clock, utc(2030, 1, 10, 9, 0));
    let node = Node::start(db.open().await, clock.clone()).await;
    let all = wait_runs(&node.client, &clock, "nightly", 1).await;
    assert_eq!(all[0].status, AuditTaskStatus::Completed);
    tokio::time::sleep(QUIET).await;
    assert_eq!(runs(&node.client, &clock).await.len(), 1, "one catch-up run only");
    // And the schedule goes on from there.
    set_clock(&clock, run_time(2030, 1, 10));
    wait_runs(&node.client, &clock, "nightly", 2).await;
    node.stop().await;

    // A restart within the period starts nothing.
    set_clock(&clock, utc(2030, 1, 10, 20, 0));
    let node = Node::start(db.open().await, clock.clone()).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(runs(&node.client, &clock).await.len(), 2);
    node.stop().await;
}

#[tokio::test]
async fn two_nodes_on_one_database_start_one_task_per_period() {
    let db = SharedDb::new(ENGINE).await;
    let clock = Arc::new(TestClock::new());
    set_clock(&clock, utc(2030, 1, 7, 12, 0));
    let (first, second) = tokio::join!(
        async { Node::start(db.open().await, clock.clone()).await },
        async { Node::start(db.open().await, clock.clone()).await },
    );
    enable(&first.client, AUDIT_ROLE, &[LOGGING]).await;
    daily(&first.client, "nightly").await;
    create(&second.client, "weekly", AuditFrequency::Weekly, Some(DayOfWeek::Tue), None, &[LOGGING])
        .await;
    for (i, day) in [7u8, 8, 9].into_iter().enumerate() {
        set_clock(&clock, run_time(2030, 1, day));
        wait_runs(&second.client, &clock, "nightly", i + 1).await;
        tokio::time::sleep(QUIET).await;
        let all = runs(&first.client, &clock).await;
        assert_eq!(count(&all, "nightly"), i + 1, "Jan {day}: {all:?}");
        assert_eq!(count(&all, "weekly"), usize::from(day >= 8), "Jan {day}: {all:?}");
    }
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn connection_checks_look_back_to_the_previous_run() {
    const SHARED: &str = "DEVICE_CERTIFICATE_SHARED_CHECK";
    let (server, clock) = scheduled_server(ENGINE, utc(2030, 1, 7, 12, 0)).await;
    let client = server.client_a();
    let (x, y) = ("1".repeat(64), "2".repeat(64));
    // Certificate x shared before the first run; y shared between the first and second.
    let shared = |cert: &str, at: i64| {
        [("a", at, at + 600_000), ("b", at + 60_000, at + 900_000)]
            .map(|(client, from, to)| {
                serde_json::json!({"certificateId": cert, "clientId": format!("{cert:.4}-{client}"),
                                   "sourceIp": "192.0.2.1", "connectedAt": from, "disconnectedAt": to})
                .to_string()
            })
            .join("\n")
    };
    let body = format!(
        "{}\n{}\n",
        shared(&x, utc(2030, 1, 7, 10, 0)),
        shared(&y, utc(2030, 1, 8, 9, 0))
    );
    let mut req = RawRequest::new("POST", "/palisade/connections");
    req.body = body.into_bytes();
    let resp = server.send(server.signed(req)).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["imported"], 4);

    enable(&client, AUDIT_ROLE, &[SHARED]).await;
    create(&client, "nightly", AuditFrequency::Daily, None, None, &[SHARED]).await;
    let shared_in = |task: String| {
        let client = client.clone();
        async move {
            let out = client
                .list_audit_findings()
                .task_id(task)
                .send()
                .await
                .expect("findings");
            out.findings()
                .iter()
                .map(|f| {
                    f.non_compliant_resource()
                        .and_then(|r| r.resource_identifier())
                        .and_then(|r| r.device_certificate_id())
                        .expect("certificate")
                        .to_owned()
                })
                .collect::<Vec<_>>()
        }
    };
    // The first run has no previous one: the 31 days before it (y is still to come).
    set_clock(&clock, run_time(2030, 1, 7));
    let all = wait_runs(&client, &clock, "nightly", 1).await;
    assert_eq!(shared_in(all[0].task_id.clone()).await, vec![x.clone()]);
    // The second looks back to the first run's start only: y, not x again.
    set_clock(&clock, run_time(2030, 1, 8));
    let all = wait_runs(&client, &clock, "nightly", 2).await;
    let mut seen: Vec<Vec<String>> = Vec::new();
    for run in &all {
        seen.push(shared_in(run.task_id.clone()).await);
    }
    seen.sort();
    assert_eq!(seen, vec![vec![x.clone()], vec![y.clone()]]);
    server.stop().await;
}

}

async fn listed_names(client: &Client) -> Vec<String> {
    listed(client, 250).await
}

#[test]
fn utc_helper_matches_the_calendar() {
    assert_eq!(utc(1970, 1, 1, 0, 0), 0);
    assert_eq!(utc(2030, 1, 7, 12, 0), 1_894_017_600_000);
    assert_eq!(utc(2028, 2, 29, 13, 0), 1_835_442_000_000);
}
