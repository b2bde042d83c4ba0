//! ListRelatedResourcesForAuditFinding: validation, unknown and foreign findings, and
//! findings of checks whose related resources are in the finding itself (none today).
//! Paging over many related resources is in revocation.rs
//! (`revoked_intermediate_ca_via_aia`).

use std::sync::Arc;

use crate::common::*;
use crate::pki::*;
use crate::revocation::{audit, enable, findings, register_device, FileServer, REVOKED_DEVICE};
use aws_sdk_iot::types::CertificateStatus;

per_engine! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn list_related_resources_rules() {
        let server = TestServer::start_with_clock(ENGINE, Arc::new(TestClock::new())).await;
        let client = server.client_a();

        // Unknown finding: 404, whatever the paging arguments.
        let unknown = client
            .list_related_resources_for_audit_finding()
            .finding_id("0123456789abcdef0123456789abcdef")
            .send()
            .await;
        expect_failure(unknown)
            .0
            .assert("ResourceNotFoundException", 404)
            .mentions(&["0123456789abcdef0123456789abcdef"]);

        // maxResults outside 1..250: 400 naming it, before the finding is looked up.
        for bad in [0, 251, -1] {
            let out = client
                .list_related_resources_for_audit_finding()
                .finding_id("0123456789abcdef0123456789abcdef")
                .max_results(bad)
                .send()
                .await;
            expect_failure(out)
                .0
                .assert("InvalidRequestException", 400)
                .mentions(&["maxResults"]);
        }

        // A REVOKED_DEVICE finding has no related resources.
        let files = FileServer::start().await;
        let ca = TestCa::new("Related CA");
        register_ca(&client, &ca, true).await;
        let url = files.url("/related.crl");
        let pem = ca.issue_with_crl("device", &url);
        register_device(&client, &pem, &ca.pem, CertificateStatus::Active).await;
        files.put("/related.crl", ca.crl(&[&pem], 1, -60, 3600));
        enable(&client, &[REVOKED_DEVICE]).await;
        let (task, _) = audit(&client, &[REVOKED_DEVICE]).await;
        let found = findings(&client, &task, REVOKED_DEVICE).await;
        assert_eq!(found.len(), 1, "{found:?}");
        let id = found[0].finding_id().expect("findingId");
        for max in [None, Some(1), Some(250)] {
            let out = client
                .list_related_resources_for_audit_finding()
                .finding_id(id)
                .set_max_results(max)
                .send()
                .await
                .expect("ListRelatedResourcesForAuditFinding");
            assert!(out.related_resources().is_empty(), "{out:?}");
            assert_eq!(out.next_token(), None);
        }

        // Another account does not see it.
        let foreign = server
            .client_b()
            .list_related_resources_for_audit_finding()
            .finding_id(id)
            .send()
            .await;
        expect_failure(foreign)
            .0
            .assert("ResourceNotFoundException", 404);
        server.stop().await;
    }
}
