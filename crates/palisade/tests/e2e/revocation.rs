//! The three revocation checks through the real `aws-sdk-iot` client, with CRLs (and
//! an issuer certificate for AIA) served by a small HTTP server in the test; CRL
//! caching and refresh after nextUpdate; CRLs that cannot be used; `palisade crl import`
//! in-process with fetching off, and through the binary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::pki::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::describe_audit_task::DescribeAuditTaskOutput;
use aws_sdk_iot::types::{
    AuditCheckConfiguration, AuditCheckRunStatus, AuditFinding, AuditFindingSeverity,
    AuditTaskStatus, CertificateStatus, ResourceType,
};
use aws_sdk_iot::Client;
use palisade_engine::{AuditSettings, CrlSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const REVOKED_DEVICE: &str = "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK";
pub(crate) const REVOKED_CA: &str = "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK";
pub(crate) const INTERMEDIATE: &str =
    "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK";
const AUDIT_ROLE: &str = "arn:aws:iam::111122223333:role/palisade-e2e-audit";
const HOUR_MS: i64 = 60 * 60 * 1000;

// ------------------------------------------------------------------------------------
// A static HTTP server

/// Serves bodies by path (404 for others) over HTTP/1.1, counting requests per path.
#[derive(Clone)]
pub(crate) struct FileServer {
    pub addr: SocketAddr,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl FileServer {
    pub async fn start() -> FileServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = FileServer {
            addr: listener.local_addr().expect("addr"),
            files: Arc::default(),
            hits: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    *s.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let body = s.files.lock().unwrap().get(&path).cloned();
                    let head = match &body {
                        Some(b) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        ),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_owned(),
                    };
                    let _ = conn.write_all(head.as_bytes()).await;
                    if let Some(b) = body {
                        let _ = conn.write_all(&b).await;
                    }
                    let _ = conn.shutdown().await;
                });
            }
        });
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn put(&self, path: &str, body: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_owned(), body);
    }

    pub fn remove(&self, path: &str) {
        self.files.lock().unwrap().remove(path);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// A URL on which nothing listens.
fn unreachable_url(path: &str) -> String {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    format!("http://{addr}{path}")
}

// ------------------------------------------------------------------------------------
// Audit helpers

pub(crate) async fn enable(client: &Client, checks: &[&str]) {
    let mut req = client
        .update_account_audit_configuration()
        .role_arn(AUDIT_ROLE);
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

/// Runs an on-demand audit of `checks` to its end (COMPLETED or FAILED is the task's
/// business; checks report separately).
pub(crate) async fn audit(client: &Client, checks: &[&str]) -> (String, DescribeAuditTaskOutput) {
    let task_id = client
        .start_on_demand_audit_task()
        .set_target_check_names(Some(checks.iter().map(|c| c.to_string()).collect()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartOnDemandAuditTask: {}", DisplayErrorContext(e)))
        .task_id()
        .expect("taskId")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = client
            .describe_audit_task()
            .task_id(&task_id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeAuditTask: {}", DisplayErrorContext(e)));
        if out.task_status() != Some(&AuditTaskStatus::InProgress) {
            return (task_id, out);
        }
        assert!(Instant::now() < deadline, "audit still running: {out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(status, total, nonCompliant, errorCode, message)` of one check of a task.
pub(crate) fn result(
    out: &DescribeAuditTaskOutput,
    check: &str,
) -> (AuditCheckRunStatus, i64, i64, Option<String>, String) {
    let d = out
        .audit_details()
        .and_then(|m| m.get(check))
        .unwrap_or_else(|| panic!("no details for {check}: {out:?}"));
    (
        d.check_run_status().expect("status").clone(),
        d.total_resources_count().unwrap_or(-1),
        d.non_compliant_resources_count().unwrap_or(-1),
        d.error_code().map(str::to_owned),
        d.message().unwrap_or_default().to_owned(),
    )
}

#[track_caller]
fn assert_counts(out: &DescribeAuditTaskOutput, check: &str, total: i64, found: i64) {
    let (status, t, n, code, message) = result(out, check);
    let want = if found == 0 {
        AuditCheckRunStatus::CompletedCompliant
    } else {
        AuditCheckRunStatus::CompletedNonCompliant
    };
    assert_eq!(
        (status, t, n, code),
        (want, total, found, None),
        "{check}: {message}"
    );
}

pub(crate) async fn findings(client: &Client, task_id: &str, check: &str) -> Vec<AuditFinding> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_audit_findings()
            .task_id(task_id)
            .check_name(check)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListAuditFindings: {}", DisplayErrorContext(e)));
        out.extend(page.findings().iter().cloned());
        match page.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// The device (or CA) certificate ids of findings, sorted, after checking their shape.
fn flagged(found: &[AuditFinding], resource_type: ResourceType) -> Vec<String> {
    let mut ids: Vec<String> = found
        .iter()
        .map(|f| {
            assert_eq!(
                f.reason_for_non_compliance_code(),
                Some("CERTIFICATE_REVOKED_BY_ISSUER"),
                "{f:?}"
            );
            let r = f.non_compliant_resource().expect("resource");
            assert_eq!(r.resource_type(), Some(&resource_type), "{f:?}");
            let id = r.resource_identifier().expect("identifier");
            match resource_type {
                ResourceType::DeviceCertificate => {
                    assert_eq!(f.severity(), Some(&AuditFindingSeverity::Medium));
                    id.device_certificate_id().expect("deviceCertificateId")
                }
                _ => {
                    assert_eq!(f.severity(), Some(&AuditFindingSeverity::Critical));
                    id.ca_certificate_id().expect("caCertificateId")
                }
            }
            .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Registers a device certificate under its registered CA with `status`; its id.
pub(crate) async fn register_device(
    client: &Client,
    pem: &str,
    ca_pem: &str,
    status: CertificateStatus,
) -> String {
    let id = client
        .register_certificate()
        .certificate_pem(pem)
        .ca_certificate_pem(ca_pem)
        .status(CertificateStatus::Active)
        .send()
        .await
        .unwrap_or_else(|e| panic!("RegisterCertificate: {}", DisplayErrorContext(e)))
        .certificate_id()
        .expect("certificateId")
        .to_owned();
    if status != CertificateStatus::Active {
        client
            .update_certificate()
            .certificate_id(&id)
            .new_status(status)
            .send()
            .await
            .unwrap_or_else(|e| panic!("UpdateCertificate: {}", DisplayErrorContext(e)));
    }
    id
}

// ------------------------------------------------------------------------------------
// The tests

per_engine! {
    /// Device certificates on their CA's CRL are found while in use; the CRL is cached
    /// until its nextUpdate, then fetched again; a stale CRL that cannot be refreshed
    /// is still used.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revoked_device_certificates_cached_and_refreshed() {
        let clock = Arc::new(TestClock::new());
        let server = TestServer::start_with_clock(ENGINE, clock.clone()).await;
        let client = server.client_a();
        let files = FileServer::start().await;
        let crl_url = files.url("/ca.crl");

        let ca = TestCa::new("Revoking CA");
        register_ca(&client, &ca, true).await;
        let pems: Vec<String> = (0..5)
            .map(|i| ca.issue_with_crl(&format!("device-{i}"), &crl_url))
            .collect();
        let statuses = [
            CertificateStatus::Active,   // revoked on the first CRL
            CertificateStatus::Active,   // revoked on the second CRL only
            CertificateStatus::Inactive, // revoked, but not in use
            CertificateStatus::Revoked,  // revoked in IoT too
            CertificateStatus::Active,   // never revoked
        ];
        let mut ids = Vec::new();
        for (pem, status) in pems.iter().zip(statuses) {
            ids.push(register_device(&client, pem, &ca.pem, status).await);
        }
        // Without a CDP: nothing can revoke it, so it is compliant.
        let (plain, _) = ca.issue("device-no-cdp");
        register_device(&client, &plain, &ca.pem, CertificateStatus::Active).await;

        files.put(
            "/ca.crl",
            ca.crl(&[&pems[0], &pems[2], &pems[3]], 1, -60, 3600),
        );
        enable(&client, &[REVOKED_DEVICE]).await;

        let (task, out) = audit(&client, &[REVOKED_DEVICE]).await;
        assert_eq!(out.task_status(), Some(&AuditTaskStatus::Completed), "{out:?}");
        assert_counts(&out, REVOKED_DEVICE, 4, 1);
        let found = findings(&client, &task, REVOKED_DEVICE).await;
        assert_eq!(flagged(&found, ResourceType::DeviceCertificate), vec![ids[0].clone()]);
        assert!(
            found[0]
                .reason_for_non_compliance()
                .is_some_and(|r| r.contains(&serial_hex(&pems[0]))),
            "{found:?}"
        );
        assert_eq!(files.hits("/ca.crl"), 1);

        // A newer CRL is published; the cached one is current until its nextUpdate.
        files.put(
            "/ca.crl",
            ca.crl(&[&pems[0], &pems[1], &pems[2], &pems[3]], 2, -30, 2 * 3600),
        );
        let (task, out) = audit(&client, &[REVOKED_DEVICE]).await;
        assert_counts(&out, REVOKED_DEVICE, 4, 1);
        assert_eq!(files.hits("/ca.crl"), 1, "the cached CRL was used");
        assert_eq!(findings(&client, &task, REVOKED_DEVICE).await.len(), 1);

        // Past the cached CRL's nextUpdate it is fetched again.
        clock.advance_ms(HOUR_MS + 60_000);
        let (task, out) = audit(&client, &[REVOKED_DEVICE]).await;
        assert_counts(&out, REVOKED_DEVICE, 4, 2);
        assert_eq!(files.hits("/ca.crl"), 2);
        assert_eq!(
            flagged(&findings(&client, &task, REVOKED_DEVICE).await, ResourceType::DeviceCertificate),
            sorted(&[&ids[0], &ids[1]])
        );

        // Past the new one's nextUpdate with the server gone: the stale CRL still counts.
        files.remove("/ca.crl");
        clock.advance_ms(2 * HOUR_MS);
        let (_, out) = audit(&client, &[REVOKED_DEVICE]).await;
        assert_counts(&out, REVOKED_DEVICE, 4, 2);
        assert_eq!(files.hits("/ca.crl"), 3, "a refresh was attempted");
        let message = out.audit_details().unwrap()[REVOKED_DEVICE]
            .message()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("past their nextUpdate") && message.contains("/ca.crl"),
            "the check says it used a stale CRL: {message}"
        );

        // Its CRL goes away in IoT's view: revoking the certificate there makes it compliant.
        for id in &ids[..2] {
            client
                .update_certificate()
                .certificate_id(id)
                .new_status(CertificateStatus::Revoked)
                .send()
                .await
                .expect("revoke");
        }
        let (_, out) = audit(&client, &[REVOKED_DEVICE]).await;
        assert_counts(&out, REVOKED_DEVICE, 2, 0);
        server.stop().await;
    }

    /// A CRL whose signature does not verify is never used, nor is an unreachable
    /// distribution point: the check FAILS naming both, after recording what it could.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unusable_crls_fail_the_check() {
        let server = TestServer::start_with_clock(ENGINE, Arc::new(TestClock::new())).await;
        let client = server.client_a();
        let files = FileServer::start().await;

        // A CA whose CRL is signed by an impostor with the same name.
        let forged = TestCa::new("Forged CRL CA");
        register_ca(&client, &forged, true).await;
        let forged_url = files.url("/forged.crl");
        let victim = forged.issue_with_crl("victim", &forged_url);
        register_device(&client, &victim, &forged.pem, CertificateStatus::Active).await;
        let impostor = TestCa::same_subject("Forged CRL CA");
        files.put("/forged.crl", impostor.crl(&[&victim], 1, -60, 3600));

        // A CA whose distribution point does not answer.
        let offline = TestCa::new("Offline CA");
        register_ca(&client, &offline, true).await;
        let offline_url = unreachable_url("/offline.crl");
        let stranded = offline.issue_with_crl("stranded", &offline_url);
        register_device(&client, &stranded, &offline.pem, CertificateStatus::Active).await;

        // A CA whose CRL is fine and revokes one of its certificates.
        let good = TestCa::new("Good CA");
        register_ca(&client, &good, true).await;
        let good_url = files.url("/good.crl");
        let revoked = good.issue_with_crl("revoked", &good_url);
        let revoked_id =
            register_device(&client, &revoked, &good.pem, CertificateStatus::Active).await;
        files.put("/good.crl", good.crl(&[&revoked], 1, -60, 3600));

        enable(&client, &[REVOKED_DEVICE]).await;
        let (task, out) = audit(&client, &[REVOKED_DEVICE]).await;
        let (status, total, found, code, message) = result(&out, REVOKED_DEVICE);
        assert_eq!(status, AuditCheckRunStatus::Failed, "{message}");
        assert_eq!((total, found), (-1, -1));
        assert_eq!(code.as_deref(), Some("CRL_NOT_AVAILABLE"));
        for needle in [
            forged_url.as_str(),
            "signature does not verify",
            offline_url.as_str(),
            "2 device certificate(s)",
        ] {
            assert!(message.contains(needle), "{needle:?} not in {message:?}");
        }
        assert!(!message.contains(&good_url), "{message}");
        // The victim is not flagged on the forged CRL; the good CRL's finding stays.
        assert_eq!(
            flagged(&findings(&client, &task, REVOKED_DEVICE).await, ResourceType::DeviceCertificate),
            vec![revoked_id]
        );
        server.stop().await;
    }

    /// A registered intermediate CA revoked by its unregistered root, whose key comes
    /// from the intermediate's AIA caIssuers URL: REVOKED_CA flags it; the INTERMEDIATE
    /// check flags it as an ISSUER_CERTIFICATE with its active device certificates as
    /// related resources, listed only by ListRelatedResourcesForAuditFinding.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revoked_intermediate_ca_via_aia() {
        let server = TestServer::start_with_clock(ENGINE, Arc::new(TestClock::new())).await;
        let client = server.client_a();
        let files = FileServer::start().await;
        let root = TestCa::new("Unregistered Root");
        let (crl_url, root_url) = (files.url("/root.crl"), files.url("/root.der"));
        let revoked = root.intermediate("Revoked Intermediate", Some(&crl_url), Some(&root_url));
        let kept = root.intermediate("Kept Intermediate", Some(&crl_url), Some(&root_url));
        let revoked_id = register_ca(&client, &revoked, true).await;
        register_ca(&client, &kept, true).await;
        files.put("/root.der", root.der.clone());
        files.put("/root.crl", root.crl(&[&revoked.pem], 7, -60, 3600));

        let mut active = Vec::new();
        for i in 0..5 {
            let (pem, _) = revoked.issue(&format!("signed-{i}"));
            active.push(register_device(&client, &pem, &revoked.pem, CertificateStatus::Active).await);
        }
        let (inactive, _) = revoked.issue("signed-inactive");
        register_device(&client, &inactive, &revoked.pem, CertificateStatus::Inactive).await;
        let (other, _) = kept.issue("kept-device");
        register_device(&client, &other, &kept.pem, CertificateStatus::Active).await;
        active.sort();

        enable(&client, &[REVOKED_CA, INTERMEDIATE]).await;
        let (task, out) = audit(&client, &[REVOKED_CA, INTERMEDIATE]).await;
        assert_eq!(out.task_status(), Some(&AuditTaskStatus::Completed), "{out:?}");
        assert_counts(&out, REVOKED_CA, 2, 1);
        assert_counts(&out, INTERMEDIATE, 2, 1);
        assert_eq!(
            flagged(&findings(&client, &task, REVOKED_CA).await, ResourceType::CaCertificate),
            vec![revoked_id.clone()]
        );
        // Each check resolves issuers once for its whole run.
        assert_eq!(files.hits("/root.der"), 2, "the issuer certificate came from AIA once per check");

        let found = findings(&client, &task, INTERMEDIATE).await;
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!(f.severity(), Some(&AuditFindingSeverity::Critical));
        assert_eq!(f.reason_for_non_compliance_code(), Some("INTERMEDIATE_CA_REVOKED_BY_ISSUER"));
        let r = f.non_compliant_resource().expect("resource");
        assert_eq!(r.resource_type(), Some(&ResourceType::IssuerCertificate));
        let issuer = r
            .resource_identifier()
            .and_then(|i| i.issuer_certificate_identifier())
            .expect("issuerCertificateIdentifier");
        assert_eq!(issuer.issuer_id(), Some(revoked_id.as_str()));
        assert_eq!(issuer.issuer_certificate_serial_number(), Some(serial_hex(&revoked.pem).as_str()));
        assert_eq!(issuer.issuer_certificate_subject(), Some(subject_text(&revoked.pem).as_str()));
        assert!(f.related_resources().is_empty(), "{f:?}");

        let finding_id = f.finding_id().expect("findingId");
        let described = client
            .describe_audit_finding()
            .finding_id(finding_id)
            .send()
            .await
            .expect("DescribeAuditFinding");
        assert!(described.finding().expect("finding").related_resources().is_empty());

        // Pages of two: 2 + 2 + 1, each a DEVICE_CERTIFICATE with id and ARN.
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = client
                .list_related_resources_for_audit_finding()
                .finding_id(finding_id)
                .max_results(2)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListRelatedResources: {}", DisplayErrorContext(e)));
            pages += 1;
            assert!(page.related_resources().len() <= 2);
            for rr in page.related_resources() {
                assert_eq!(rr.resource_type(), Some(&ResourceType::DeviceCertificate));
                let id = rr.resource_identifier().expect("identifier");
                let cert = id.device_certificate_id().expect("deviceCertificateId");
                assert_eq!(
                    id.device_certificate_arn(),
                    Some(format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{cert}").as_str())
                );
                listed.push(cert.to_owned());
            }
            match page.next_token() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(listed, active, "every active device certificate, once, in id order");

        // Re-running finds the same; and a tampered token is refused.
        let (_, out) = audit(&client, &[INTERMEDIATE]).await;
        assert_counts(&out, INTERMEDIATE, 2, 1);
        let bad = client
            .list_related_resources_for_audit_finding()
            .finding_id(finding_id)
            .next_token("not-a-token")
            .send()
            .await;
        expect_failure(bad).0.assert("InvalidRequestException", 400);
        server.stop().await;
    }

    /// With fetching off, CRLs come from `import_crl` (what `palisade crl import`
    /// runs): for certificates whose distribution point is unreachable and for those
    /// without one. Without an import the check FAILS saying fetching is off.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn imported_crls_without_fetching() {
        let settings = AuditSettings {
            crl: CrlSettings {
                fetch: false,
                fetch_timeout: Duration::from_secs(1),
            },
            ..AuditSettings::default()
        };
        let server =
            TestServer::start_with_settings(ENGINE, Arc::new(TestClock::new()), true, settings).await;
        let client = server.client_a();
        let ca = TestCa::new("Offline Fleet CA");
        register_ca(&client, &ca, true).await;
        let url = unreachable_url("/never.crl");
        let with_cdp = ca.issue_with_crl("with-cdp", &url);
        let (without_cdp, _) = ca.issue("without-cdp");
        let (fine, _) = ca.issue("fine");
        let id_with = register_device(&client, &with_cdp, &ca.pem, CertificateStatus::Active).await;
        let id_without =
            register_device(&client, &without_cdp, &ca.pem, CertificateStatus::Active).await;
        register_device(&client, &fine, &ca.pem, CertificateStatus::Active).await;
        enable(&client, &[REVOKED_DEVICE]).await;

        let (_, out) = audit(&client, &[REVOKED_DEVICE]).await;
        let (status, _, _, code, message) = result(&out, REVOKED_DEVICE);
        assert_eq!(
            (status, code.as_deref()),
            (AuditCheckRunStatus::Failed, Some("CRL_NOT_AVAILABLE")),
            "{message}"
        );
        assert!(message.contains("fetching is off") && message.contains(&url), "{message}");

        // Refused imports change nothing.
        let junk = server.engine.import_crl(b"not a crl", None).await;
        assert!(matches!(junk, Err(palisade_engine::EngineError::InvalidRequest(m)) if m.contains("not a CRL")));
        let crl = ca.crl(&[&with_cdp, &without_cdp], 1, -60, 3600);
        let other = TestCa::new("Someone Else");
        let wrong = server.engine.import_crl(&crl, Some(other.pem.as_bytes())).await;
        assert!(matches!(wrong, Err(palisade_engine::EngineError::InvalidRequest(m)) if m.contains("issuer-certificate")));

        let imported = server
            .engine
            .import_crl(&crl, Some(ca.pem.as_bytes()))
            .await
            .expect("import");
        assert_eq!(imported.revoked_count, 2);
        assert!(imported.stored && imported.verified);
        // An older CRL of the same issuer does not replace it.
        let older = server
            .engine
            .import_crl(&ca.crl(&[], 0, -7200, 3600), None)
            .await
            .expect("import older");
        assert!(!older.stored);

        let (task, out) = audit(&client, &[REVOKED_DEVICE]).await;
        assert_counts(&out, REVOKED_DEVICE, 3, 2);
        assert_eq!(
            flagged(&findings(&client, &task, REVOKED_DEVICE).await, ResourceType::DeviceCertificate),
            sorted(&[&id_with, &id_without])
        );
        server.stop().await;
    }
}

/// `palisade crl import` through the binary, against a server started with
/// `--crl-fetch false`, on the same SQLite data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_import_command() {
    use crate::common::process::*;
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let server = ServerProcess::start_with(&data, &["--crl-fetch", "false"]).await;
    let keys = read_profile(&data.join("credentials"), "palisade");
    let client = sdk_client(
        &server.endpoint,
        &keys.access_key_id,
        &keys.secret_access_key,
    );

    let ca = TestCa::new("Imported CRL CA");
    register_ca(&client, &ca, true).await;
    let url = unreachable_url("/ca.crl");
    let revoked = ca.issue_with_crl("revoked", &url);
    let revoked_id = register_device(&client, &revoked, &ca.pem, CertificateStatus::Active).await;
    let (fine, _) = ca.issue("fine");
    register_device(&client, &fine, &ca.pem, CertificateStatus::Active).await;
    enable(&client, &[REVOKED_DEVICE]).await;

    let dir = data.to_str().expect("UTF-8 path");
    let junk = root.path().join("junk.crl");
    std::fs::write(
        &junk,
        b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let out = palisade(&["crl", "import", junk.to_str().unwrap(), "--data-dir", dir]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("junk.crl") && stderr.contains("not a CRL"),
        "{stderr}"
    );

    let crl_file = root.path().join("ca.crl");
    std::fs::write(&crl_file, ca.crl(&[&revoked], 3, -60, 3600)).unwrap();
    let issuer_file = root.path().join("ca.pem");
    std::fs::write(&issuer_file, &ca.pem).unwrap();
    let summary = stdout_of(&palisade(&[
        "crl",
        "import",
        crl_file.to_str().unwrap(),
        "--issuer-certificate",
        issuer_file.to_str().unwrap(),
        "--data-dir",
        dir,
    ]));
    let v: serde_json::Value = serde_json::from_str(summary.trim()).expect("JSON summary");
    assert_eq!(v["revokedCount"], 1, "{v}");
    assert_eq!(v["stored"], true, "{v}");
    assert_eq!(v["verifiedWithIssuerCertificate"], true, "{v}");
    assert!(
        v["issuer"]
            .as_str()
            .is_some_and(|s| s.contains("Imported CRL CA")),
        "{v}"
    );
    assert!(
        v["thisUpdate"].as_i64().is_some() && v["nextUpdate"].as_i64().is_some(),
        "{v}"
    );

    let (task, out) = audit(&client, &[REVOKED_DEVICE]).await;
    assert_counts(&out, REVOKED_DEVICE, 2, 1);
    assert_eq!(
        flagged(
            &findings(&client, &task, REVOKED_DEVICE).await,
            ResourceType::DeviceCertificate
        ),
        vec![revoked_id]
    );
}
