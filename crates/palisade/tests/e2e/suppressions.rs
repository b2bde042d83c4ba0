//! Audit suppressions through the real `aws-sdk-iot` client: CRUD, validation,
//! duplicates and client tokens, listing (filters, order, paging), isolation between
//! accounts, and their effect on audits (suppressed findings, compliance, expiry).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::describe_audit_task::DescribeAuditTaskOutput;
use aws_sdk_iot::primitives::DateTime;
use aws_sdk_iot::types::{
    AuditCheckConfiguration, AuditCheckRunStatus, AuditTaskStatus, PolicyVersionIdentifier,
    ResourceIdentifier,
};
use aws_sdk_iot::Client;

const LOGGING: &str = "LOGGING_DISABLED_CHECK";
const EXPIRING: &str = "DEVICE_CERTIFICATE_EXPIRING_CHECK";
const PERMISSIVE: &str = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK";
const AUDIT_ROLE: &str = "arn:aws:iam::111122223333:role/palisade-e2e-audit";
const AUDIT_ROLE_B: &str = "arn:aws:iam::444455556666:role/palisade-e2e-audit";
// Device certificate ids (64 hex digits, as the model requires).
const D1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const D3: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const D9: &str = "9999999999999999999999999999999999999999999999999999999999999999";
const C1: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const C2: &str = "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2";
const SHARED: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ABC: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const HOUR_SECS: i64 = 3600;
const DAY_SECS: i64 = 24 * HOUR_SECS;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn account(id: &str) -> ResourceIdentifier {
    ResourceIdentifier::builder().account(id).build()
}

fn device(id: &str) -> ResourceIdentifier {
    ResourceIdentifier::builder()
        .device_certificate_id(id)
        .build()
}

/// Creates a suppression of `check` for `resource`, until `expires` (epoch seconds) or
/// indefinitely, panicking on failure.
async fn suppress(
    client: &Client,
    check: &str,
    resource: ResourceIdentifier,
    expires: Option<i64>,
) {
    client
        .create_audit_suppression()
        .check_name(check)
        .resource_identifier(resource)
        .set_expiration_date(expires.map(DateTime::from_secs))
        .set_suppress_indefinitely(expires.is_none().then_some(true))
        .client_request_token(format!("tok-{:016x}", rand::random::<u64>()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAuditSuppression: {}", DisplayErrorContext(e)));
}

/// Every suppression matching the filters, in listing order, paging `page` at a time;
/// as (check, device certificate id or account) pairs.
async fn list_all(
    client: &Client,
    check: Option<&str>,
    resource: Option<ResourceIdentifier>,
    ascending: Option<bool>,
    page: i32,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let resp = client
            .list_audit_suppressions()
            .set_check_name(check.map(str::to_owned))
            .set_resource_identifier(resource.clone())
            .set_ascending_order(ascending)
            .max_results(page)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListAuditSuppressions: {}", DisplayErrorContext(e)));
        assert!(resp.suppressions().len() <= page as usize);
        for s in resp.suppressions() {
            let r = s.resource_identifier().expect("resourceIdentifier");
            let id = r
                .device_certificate_id()
                .or(r.account())
                .expect("identifier member")
                .to_owned();
            out.push((s.check_name().to_owned(), id));
        }
        match resp.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

fn pairs_of(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(c, k)| ((*c).to_owned(), (*k).to_owned()))
        .collect()
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

/// Runs an audit of `checks` to completion; its id and description.
async fn run_audit(client: &Client, checks: &[&str]) -> (String, DescribeAuditTaskOutput) {
    let id = client
        .start_on_demand_audit_task()
        .set_target_check_names(Some(checks.iter().map(|c| c.to_string()).collect()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartOnDemandAuditTask: {}", DisplayErrorContext(e)))
        .task_id()
        .expect("taskId")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = client
            .describe_audit_task()
            .task_id(&id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeAuditTask: {}", DisplayErrorContext(e)));
        if out.task_status() != Some(&AuditTaskStatus::InProgress) {
            assert_eq!(
                out.task_status(),
                Some(&AuditTaskStatus::Completed),
                "{out:?}"
            );
            return (id, out);
        }
        assert!(
            Instant::now() < deadline,
            "audit {id} still running: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (status, nonCompliantResourcesCount, suppressedNonCompliantResourcesCount).
fn result_of(out: &DescribeAuditTaskOutput, check: &str) -> (AuditCheckRunStatus, i64, i64) {
    let d = out
        .audit_details()
        .and_then(|m| m.get(check))
        .unwrap_or_else(|| panic!("no details for {check}: {out:?}"));
    (
        d.check_run_status().expect("checkRunStatus").clone(),
        d.non_compliant_resources_count().unwrap_or(-1),
        d.suppressed_non_compliant_resources_count().unwrap_or(-1),
    )
}

/// The task's findings with `listSuppressedFindings` as given: their isSuppressed flags.
async fn suppressed_flags(client: &Client, task_id: &str, filter: Option<bool>) -> Vec<bool> {
    client
        .list_audit_findings()
        .task_id(task_id)
        .set_list_suppressed_findings(filter)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListAuditFindings: {}", DisplayErrorContext(e)))
        .findings()
        .iter()
        .map(|f| f.is_suppressed().expect("isSuppressed"))
        .collect()
}

per_engine! {

#[tokio::test]
async fn create_describe_update_delete() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let expires = now_secs() + 7 * DAY_SECS;
    client
        .create_audit_suppression()
        .check_name(LOGGING)
        .resource_identifier(account(ACCOUNT_A))
        .expiration_date(DateTime::from_secs(expires))
        .description("known: logging goes elsewhere")
        .client_request_token("token-1")
        .send()
        .await
        .expect("CreateAuditSuppression");
    let d = client
        .describe_audit_suppression()
        .check_name(LOGGING)
        .resource_identifier(account(ACCOUNT_A))
        .send()
        .await
        .expect("DescribeAuditSuppression");
    assert_eq!(d.check_name(), Some(LOGGING));
    assert_eq!(d.resource_identifier(), Some(&account(ACCOUNT_A)));
    assert_eq!(d.expiration_date(), Some(&DateTime::from_secs(expires)));
    assert_eq!(d.suppress_indefinitely(), Some(false));
    assert_eq!(d.description(), Some("known: logging goes elsewhere"));

    // Indefinitely, keeping the description.
    client
        .update_audit_suppression()
        .check_name(LOGGING)
        .resource_identifier(account(ACCOUNT_A))
        .suppress_indefinitely(true)
        .send()
        .await
        .expect("UpdateAuditSuppression");
    let d = client
        .describe_audit_suppression()
        .check_name(LOGGING)
        .resource_identifier(account(ACCOUNT_A))
        .send()
        .await
        .expect("DescribeAuditSuppression");
    assert_eq!(
        (d.expiration_date(), d.suppress_indefinitely(), d.description()),
        (None, Some(true), Some("known: logging goes elsewhere"))
    );
    // A date again, and a new description.
    client
        .update_audit_suppression()
        .check_name(LOGGING)
        .resource_identifier(account(ACCOUNT_A))
        .expiration_date(DateTime::from_secs(expires + DAY_SECS))
        .description("new")
        .send()
        .await
        .expect("UpdateAuditSuppression");
    let d = client
        .describe_audit_suppression()
        .check_name(LOGGING)
        .resource_identifier(account(ACCOUNT_A))
        .send()
        .await
        .expect("DescribeAuditSuppression");
    assert_eq!(
        (d.expiration_date(), d.suppress_indefinitely(), d.description()),
        (Some(&DateTime::from_secs(expires + DAY_SECS)), Some(false), Some("new"))
    );
    assert_eq!(
        list_all(&client, None, None, None, 25).await,
        pairs_of(&[(LOGGING, ACCOUNT_A)])
    );

    client
        .delete_audit_suppression()
        .check_name(LOGGING)
        .resource_identifier(account(ACCOUNT_A))
        .send()
        .await
        .expect("DeleteAuditSuppression");
    let (f, _) = expect_failure(
        client
            .describe_audit_suppression()
            .check_name(LOGGING)
            .resource_identifier(account(ACCOUNT_A))
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(
        client
            .update_audit_suppression()
            .check_name(LOGGING)
            .resource_identifier(account(ACCOUNT_A))
            .description("x")
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    // Deleting what is not there succeeds (the model has no ResourceNotFound for it).
    client
        .delete_audit_suppression()
        .check_name(LOGGING)
        .resource_identifier(account(ACCOUNT_A))
        .send()
        .await
        .expect("DeleteAuditSuppression of nothing");
    assert!(list_all(&client, None, None, None, 25).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn invalid_creates_and_updates() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let later = Some(now_secs() + DAY_SECS);
    let create = |check: &str, resource: ResourceIdentifier, expires: Option<i64>, forever: Option<bool>| {
        client
            .create_audit_suppression()
            .check_name(check)
            .resource_identifier(resource)
            .set_expiration_date(expires.map(DateTime::from_secs))
            .set_suppress_indefinitely(forever)
            .client_request_token(format!("tok-{:016x}", rand::random::<u64>()))
            .send()
    };
    let (f, _) = expect_failure(create("NO_SUCH_CHECK", account(ACCOUNT_A), None, Some(true)).await);
    f.assert("InvalidRequestException", 400).mentions(&["NO_SUCH_CHECK"]);
    // The member must match the check's resource type, and be the only one.
    let (f, _) = expect_failure(create(LOGGING, device(ABC), None, Some(true)).await);
    f.assert("InvalidRequestException", 400).mentions(&["account", "deviceCertificateId"]);
    let (f, _) = expect_failure(create(EXPIRING, account(ACCOUNT_A), None, Some(true)).await);
    f.assert("InvalidRequestException", 400).mentions(&["deviceCertificateId"]);
    let both = ResourceIdentifier::builder()
        .account(ACCOUNT_A)
        .device_certificate_id(ABC)
        .build();
    let (f, _) = expect_failure(create(LOGGING, both, None, Some(true)).await);
    f.assert("InvalidRequestException", 400).mentions(&["account"]);
    let (f, _) = expect_failure(
        create(LOGGING, ResourceIdentifier::builder().build(), None, Some(true)).await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["account"]);
    let half_policy = ResourceIdentifier::builder()
        .policy_version_identifier(PolicyVersionIdentifier::builder().policy_name("p").build())
        .build();
    let (f, _) = expect_failure(create(PERMISSIVE, half_policy, None, Some(true)).await);
    f.assert("InvalidRequestException", 400).mentions(&["policyVersionId"]);
    // Exactly one of expirationDate and suppressIndefinitely=true.
    let (f, _) = expect_failure(create(LOGGING, account(ACCOUNT_A), later, Some(true)).await);
    f.assert("InvalidRequestException", 400).mentions(&["expirationDate", "suppressIndefinitely"]);
    let (f, _) = expect_failure(create(LOGGING, account(ACCOUNT_A), None, None).await);
    f.assert("InvalidRequestException", 400).mentions(&["expirationDate", "suppressIndefinitely"]);
    let (f, _) = expect_failure(create(LOGGING, account(ACCOUNT_A), None, Some(false)).await);
    f.assert("InvalidRequestException", 400);
    let (f, _) = expect_failure(
        create(LOGGING, account(ACCOUNT_A), Some(now_secs() - 60), None).await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["expirationDate"]);
    assert!(list_all(&client, None, None, None, 25).await.is_empty());

    // A valid policy suppression, then invalid updates of it.
    let policy = ResourceIdentifier::builder()
        .policy_version_identifier(
            PolicyVersionIdentifier::builder()
                .policy_name("p")
                .policy_version_id("1")
                .build(),
        )
        .build();
    create(PERMISSIVE, policy.clone(), later, None)
        .await
        .expect("CreateAuditSuppression");
    let update = || {
        client
            .update_audit_suppression()
            .check_name(PERMISSIVE)
            .resource_identifier(policy.clone())
    };
    let (f, _) = expect_failure(
        update()
            .expiration_date(DateTime::from_secs(now_secs() + DAY_SECS))
            .suppress_indefinitely(true)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    let (f, _) = expect_failure(update().suppress_indefinitely(false).send().await);
    f.assert("InvalidRequestException", 400).mentions(&["expirationDate"]);
    let (f, _) = expect_failure(
        update()
            .expiration_date(DateTime::from_secs(now_secs() - 60))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["expirationDate"]);
    let (f, _) = expect_failure(
        client
            .update_audit_suppression()
            .check_name(PERMISSIVE)
            .resource_identifier(account(ACCOUNT_A))
            .description("x")
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400).mentions(&["policyVersionIdentifier"]);
    let d = client
        .describe_audit_suppression()
        .check_name(PERMISSIVE)
        .resource_identifier(policy)
        .send()
        .await
        .expect("DescribeAuditSuppression");
    assert_eq!(d.expiration_date(), later.map(DateTime::from_secs).as_ref());
    server.stop().await;
}

#[tokio::test]
async fn duplicates_and_client_tokens() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let create = |resource: ResourceIdentifier, token: &str, description: &str| {
        client
            .create_audit_suppression()
            .check_name(EXPIRING)
            .resource_identifier(resource)
            .suppress_indefinitely(true)
            .description(description)
            .client_request_token(token)
            .send()
    };
    create(device(C1), "tok-1", "first").await.expect("create");
    // A retry (same token, same key) succeeds and changes nothing.
    create(device(C1), "tok-1", "second").await.expect("retry");
    let d = client
        .describe_audit_suppression()
        .check_name(EXPIRING)
        .resource_identifier(device(C1))
        .send()
        .await
        .expect("describe");
    assert_eq!(d.description(), Some("first"));
    // The same key under a new token.
    let (f, _) = expect_failure(create(device(C1), "tok-2", "x").await);
    f.assert("ResourceAlreadyExistsException", 409);
    // The token of another suppression.
    let (f, _) = expect_failure(create(device(C2), "tok-1", "x").await);
    f.assert("InvalidRequestException", 400).mentions(&["clientRequestToken"]);
    create(device(C2), "tok-2", "x").await.expect("create c2");
    assert_eq!(
        list_all(&client, None, None, None, 25).await,
        // Both indefinite: ordered by resource key next.
        pairs_of(&[(EXPIRING, C2), (EXPIRING, C1)])
    );
    server.stop().await;
}

#[tokio::test]
async fn listing_filters_order_and_paging() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let now = now_secs();
    suppress(&client, EXPIRING, device(D3), Some(now + 3 * DAY_SECS)).await;
    suppress(&client, EXPIRING, device(D1), Some(now + DAY_SECS)).await;
    suppress(&client, EXPIRING, device(D9), None).await;
    suppress(&client, LOGGING, account(ACCOUNT_A), Some(now + 2 * DAY_SECS)).await;
    suppress(&client, "DEVICE_CERTIFICATE_AGE_CHECK", device(D1), None).await;
    let ascending = pairs_of(&[
        (EXPIRING, D1),
        (LOGGING, ACCOUNT_A),
        (EXPIRING, D3),
        ("DEVICE_CERTIFICATE_AGE_CHECK", D1),
        (EXPIRING, D9),
    ]);
    let mut descending = ascending.clone();
    descending.reverse();
    for page in [1, 2, 250] {
        assert_eq!(list_all(&client, None, None, None, page).await, ascending);
        assert_eq!(list_all(&client, None, None, Some(true), page).await, ascending);
        assert_eq!(list_all(&client, None, None, Some(false), page).await, descending);
    }
    assert_eq!(
        list_all(&client, Some(EXPIRING), None, None, 2).await,
        pairs_of(&[(EXPIRING, D1), (EXPIRING, D3), (EXPIRING, D9)])
    );
    assert_eq!(
        list_all(&client, None, Some(device(D1)), Some(false), 1).await,
        pairs_of(&[("DEVICE_CERTIFICATE_AGE_CHECK", D1), (EXPIRING, D1)])
    );
    assert_eq!(
        list_all(&client, Some(LOGGING), Some(device(D1)), None, 25).await,
        Vec::<(String, String)>::new()
    );
    // A token only continues the listing it came from.
    let first = client
        .list_audit_suppressions()
        .max_results(1)
        .send()
        .await
        .expect("list");
    let token = first.next_token().expect("nextToken");
    let (f, _) = expect_failure(
        client
            .list_audit_suppressions()
            .ascending_order(false)
            .next_token(token)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    server.stop().await;
}

#[tokio::test]
async fn suppressions_are_per_account() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    suppress(&a, EXPIRING, device(SHARED), None).await;
    assert!(list_all(&b, None, None, None, 25).await.is_empty());
    let (f, _) = expect_failure(
        b.describe_audit_suppression()
            .check_name(EXPIRING)
            .resource_identifier(device(SHARED))
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    // B deleting "its" suppression leaves A's alone; B may create the same key.
    b.delete_audit_suppression()
        .check_name(EXPIRING)
        .resource_identifier(device(SHARED))
        .send()
        .await
        .expect("delete");
    suppress(&b, EXPIRING, device(SHARED), Some(now_secs() + DAY_SECS)).await;
    assert_eq!(
        list_all(&a, None, None, None, 25).await,
        pairs_of(&[(EXPIRING, SHARED)])
    );
    let d = a
        .describe_audit_suppression()
        .check_name(EXPIRING)
        .resource_identifier(device(SHARED))
        .send()
        .await
        .expect("describe");
    assert_eq!(d.suppress_indefinitely(), Some(true));
    server.stop().await;
}

#[tokio::test]
async fn suppressed_findings_make_a_check_compliant() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    enable(&a, AUDIT_ROLE, &[LOGGING]).await;
    enable(&b, AUDIT_ROLE_B, &[LOGGING]).await;
    suppress(&a, LOGGING, account(ACCOUNT_A), None).await;

    let (id, out) = run_audit(&a, &[LOGGING]).await;
    assert_eq!(
        result_of(&out, LOGGING),
        (AuditCheckRunStatus::CompletedCompliant, 1, 1)
    );
    let details = &out.audit_details().expect("details")[LOGGING];
    assert_eq!(details.check_compliant(), Some(true));
    let stats = out.task_statistics().expect("statistics");
    assert_eq!((stats.compliant_checks(), stats.non_compliant_checks()), (Some(1), Some(0)));
    assert_eq!(suppressed_flags(&a, &id, None).await, vec![true]);
    assert_eq!(suppressed_flags(&a, &id, Some(true)).await, vec![true]);
    assert!(suppressed_flags(&a, &id, Some(false)).await.is_empty());
    let finding_id = a
        .list_audit_findings()
        .task_id(&id)
        .send()
        .await
        .expect("list")
        .findings()[0]
        .finding_id()
        .expect("findingId")
        .to_owned();
    let f = a
        .describe_audit_finding()
        .finding_id(finding_id)
        .send()
        .await
        .expect("describe finding");
    assert_eq!(f.finding().and_then(|f| f.is_suppressed()), Some(true));

    // B's identical situation is not suppressed.
    let (id_b, out) = run_audit(&b, &[LOGGING]).await;
    assert_eq!(
        result_of(&out, LOGGING),
        (AuditCheckRunStatus::CompletedNonCompliant, 1, 0)
    );
    assert_eq!(suppressed_flags(&b, &id_b, None).await, vec![false]);

    // Deleted: the next audit reports the finding unsuppressed; the old one keeps its
    // flag.
    a.delete_audit_suppression()
        .check_name(LOGGING)
        .resource_identifier(account(ACCOUNT_A))
        .send()
        .await
        .expect("delete");
    let (id2, out) = run_audit(&a, &[LOGGING]).await;
    assert_eq!(
        result_of(&out, LOGGING),
        (AuditCheckRunStatus::CompletedNonCompliant, 1, 0)
    );
    assert_eq!(suppressed_flags(&a, &id2, Some(false)).await, vec![false]);
    assert!(suppressed_flags(&a, &id2, Some(true)).await.is_empty());
    assert_eq!(suppressed_flags(&a, &id, None).await, vec![true]);
    server.stop().await;
}

#[tokio::test]
async fn expired_suppressions_stop_applying() {
    let clock = Arc::new(TestClock::new());
    let server = TestServer::start_with_clock(ENGINE, clock.clone()).await;
    let client = server.client_a();
    enable(&client, AUDIT_ROLE, &[LOGGING]).await;
    suppress(&client, LOGGING, account(ACCOUNT_A), Some(now_secs() + HOUR_SECS)).await;
    let (_, out) = run_audit(&client, &[LOGGING]).await;
    assert_eq!(
        result_of(&out, LOGGING),
        (AuditCheckRunStatus::CompletedCompliant, 1, 1)
    );

    clock.advance_ms(2 * HOUR_SECS * 1000);
    let (id, out) = run_audit(&client, &[LOGGING]).await;
    assert_eq!(
        result_of(&out, LOGGING),
        (AuditCheckRunStatus::CompletedNonCompliant, 1, 0)
    );
    assert_eq!(suppressed_flags(&client, &id, None).await, vec![false]);
    // Still there (listed and described) until deleted; an update revives it.
    assert_eq!(
        list_all(&client, None, None, None, 25).await,
        pairs_of(&[(LOGGING, ACCOUNT_A)])
    );
    let (f, _) = expect_failure(
        client
            .create_audit_suppression()
            .check_name(LOGGING)
            .resource_identifier(account(ACCOUNT_A))
            .suppress_indefinitely(true)
            .client_request_token("tok-new")
            .send()
            .await,
    );
    f.assert("ResourceAlreadyExistsException", 409);
    client
        .update_audit_suppression()
        .check_name(LOGGING)
        .resource_identifier(account(ACCOUNT_A))
        .suppress_indefinitely(true)
        .send()
        .await
        .expect("update");
    let (_, out) = run_audit(&client, &[LOGGING]).await;
    assert_eq!(
        result_of(&out, LOGGING),
        (AuditCheckRunStatus::CompletedCompliant, 1, 1)
    );
    server.stop().await;
}

}
