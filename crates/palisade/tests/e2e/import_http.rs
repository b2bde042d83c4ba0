//! `POST /palisade/import` (docs/IMPORT.md) on both engines: SigV4 like every other
//! request, the caller's account, its own body limit, a JSON summary with every failed
//! line; the result checked through the real `aws-sdk-iot` client.

use std::time::SystemTime;

use crate::common::*;
use crate::pki::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::types::CertificateStatus;
use palisade_api::ServerConfig;
use palisade_engine::Limits;
use serde_json::{json, Value};

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn import_request(target: &str, body: &str) -> RawRequest {
    let mut req = RawRequest::new("POST", target).header("content-type", "application/x-ndjson");
    req.body = body.as_bytes().to_vec();
    req
}

async fn start(kind: StoreKind) -> TestServer {
    // A small API body limit and a larger import one: the import has its own.
    TestServer::start_with(
        kind,
        Limits::default(),
        ServerConfig {
            body_limit: 4096,
            import_body_limit: 256 * 1024,
            ..ServerConfig::default()
        },
    )
    .await
}

per_engine! {
    #[tokio::test]
    async fn import_over_http_answers_a_summary_and_every_failed_line() {
        let server = start(ENGINE).await;
        let pem = self_signed("http-device");
        let id = certificate_id(&pem);
        let body = jsonl(&[
            json!({"type": "thing", "name": "http-1", "attributes": {"site": "a"},
                   "certificatePem": pem, "certificateStatus": "ACTIVE"}),
            json!({"type": "thing", "name": "http-2", "groups": ["missing"]}),
            json!({"type": "policy", "name": "p", "document": {"Version": "2012-10-17",
                   "Statement": {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}}}),
            json!({"type": "thing", "name": "bad name"}),
            json!({"type": "thing", "name": "http-3", "attributes": (0..10)
                .map(|i| (format!("a{i}"), "v".repeat(500)))
                .collect::<std::collections::BTreeMap<String, String>>()}),
        ]);
        assert!(body.len() > 4096, "the body exceeds the API's own limit");
        let resp = server
            .send(server.signed(import_request("/palisade/import?batchSize=2", &body)))
            .await;
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        resp.assert_request_id();
        let answer = resp.json();
        assert_eq!(answer["linesRead"], 5);
        assert_eq!(answer["failedLines"], 2);
        assert_eq!(answer["created"]["things"], 2);
        assert_eq!(answer["created"]["certificates"], 1);
        assert_eq!(answer["created"]["policies"], 1);
        let errors = answer["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0]["line"], 2);
        assert_eq!(errors[0]["type"], "thing");
        assert_eq!(errors[0]["name"], "http-2");
        assert_eq!(errors[0]["code"], "ResourceNotFoundException");
        assert!(errors[0]["message"].as_str().unwrap().contains("missing"));
        assert_eq!(errors[1]["line"], 4);
        assert_eq!(errors[1]["code"], "InvalidRequestException");

        // In the caller's account, visible through the API at once.
        let client = server.client_a();
        let thing = client.describe_thing().thing_name("http-1").send().await
            .unwrap_or_else(|e| panic!("DescribeThing: {}", DisplayErrorContext(e)));
        assert_eq!(thing.attributes().and_then(|a| a.get("site")).map(String::as_str), Some("a"));
        let principals = client.list_thing_principals().thing_name("http-1").send().await.unwrap();
        assert_eq!(
            principals.principals(),
            [format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{id}")]
        );
        let d = client.describe_certificate().certificate_id(&id).send().await.unwrap();
        assert_eq!(
            d.certificate_description().and_then(|d| d.status()),
            Some(&CertificateStatus::Active)
        );
        assert!(server.client_b().describe_thing().thing_name("http-1").send().await.is_err());

        // The same body again: everything unchanged, no error but the bad lines'.
        let resp = server
            .send(server.signed(import_request("/palisade/import", &body)))
            .await;
        let answer = resp.json();
        assert_eq!(answer["unchanged"]["things"], 2);
        assert_eq!(answer["created"]["things"], 0);
        assert_eq!(answer["failedLines"], 2);

        // An empty body is an empty import.
        let resp = server.send(server.signed(import_request("/palisade/import", ""))).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["linesRead"], 0);
    }

    #[tokio::test]
    async fn import_endpoint_is_authenticated_and_bounded() {
        let server = start(ENGINE).await;
        let body = jsonl(&[json!({"type": "thing", "name": "guarded"})]);

        // Unsigned, or signed over another body: refused, nothing imported.
        let resp = server.send(import_request("/palisade/import", &body)).await;
        assert_eq!(resp.status, 403, "{}", String::from_utf8_lossy(&resp.body));
        let mut tampered = server.signed(import_request("/palisade/import", &body));
        tampered.body = jsonl(&[json!({"type": "thing", "name": "other"})]).into_bytes();
        let resp = server.send(tampered).await;
        resp.assert_error(403, "InvalidSignatureException");
        let client = server.client_a();
        assert!(client.describe_thing().thing_name("guarded").send().await.is_err());
        assert!(client.describe_thing().thing_name("other").send().await.is_err());

        // An unknown key.
        let mut stranger = server.a.clone();
        stranger.access_key_id = "AKIAUNKNOWNUNKNOWN00".into();
        let resp = server
            .send(import_request("/palisade/import", &body).sign(
                &server.addr.to_string(),
                &stranger,
                SystemTime::now(),
            ))
            .await;
        resp.assert_error(403, "UnrecognizedClientException");

        // Over the import's own limit.
        let big = "x".repeat(256 * 1024 + 1);
        let resp = server.send(server.signed(import_request("/palisade/import", &big))).await;
        resp.assert_error(413, "RequestEntityTooLargeException");

        // Bad parameters.
        for target in ["/palisade/import?batchSize=0", "/palisade/import?batchSize=x",
                       "/palisade/import?dryRun=1"] {
            let resp = server.send(server.signed(import_request(target, &body))).await;
            resp.assert_error(400, "InvalidRequestException");
        }

        // Another method on the path is no operation at all, as any unknown path.
        let resp = server.send(server.signed(RawRequest::get("/palisade/import"))).await;
        resp.assert_error(404, "UnknownOperationException");

        // And a good one goes in.
        let resp = server.send(server.signed(import_request("/palisade/import", &body))).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["created"]["things"], 1);
        assert!(client.describe_thing().thing_name("guarded").send().await.is_ok());
    }
}
