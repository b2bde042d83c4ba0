//! CA certificates through the real `aws-sdk-iot` client: the registration-code flow of
//! RegisterCACertificate (DEFAULT and SNI_ONLY), its verification failures, Describe,
//! List, Update and Delete, tags on `cacert` ARNs, RegisterCertificate under a CA (named
//! or found by issuer, signatures checked), ListCertificatesByCA and isolation.

// RegisterCertificate's `setAsActive` is deprecated in the SDK but still in the API.
#![allow(deprecated)]

use crate::common::*;
use crate::pki::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::types::{
    AutoRegistrationStatus, CaCertificateStatus, CertificateMode, CertificateStatus,
    RegistrationConfig,
};
use aws_sdk_iot::Client;

async fn describe_ca(
    client: &Client,
    id: &str,
) -> aws_sdk_iot::operation::describe_ca_certificate::DescribeCaCertificateOutput {
    client
        .describe_ca_certificate()
        .certificate_id(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeCACertificate {id}: {}", DisplayErrorContext(e)))
}

async fn ca_ids(client: &Client) -> Vec<String> {
    client
        .list_ca_certificates()
        .send()
        .await
        .expect("ListCACertificates")
        .certificates()
        .iter()
        .map(|c| c.certificate_id().expect("id").to_owned())
        .collect()
}

async fn ids_by_ca(client: &Client, ca: &str) -> Vec<String> {
    client
        .list_certificates_by_ca()
        .ca_certificate_id(ca)
        .send()
        .await
        .expect("ListCertificatesByCA")
        .certificates()
        .iter()
        .map(|c| c.certificate_id().expect("id").to_owned())
        .collect()
}

fn cacert_arn(account: &str, id: &str) -> String {
    format!("arn:aws:iot:{REGION}:{account}:cacert/{id}")
}

per_engine! {
#[tokio::test]
async fn registration_code_flow_and_describe() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let code = registration_code(&client).await;
    assert_eq!(code.len(), 64);
    assert!(code.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(registration_code(&client).await, code, "stable per account");

    let ca = TestCa::new("Fleet Root CA");
    let out = client
        .register_ca_certificate()
        .ca_certificate(&ca.pem)
        .verification_certificate(ca.verification_certificate(&code))
        .set_as_active(true)
        .allow_auto_registration(true)
        .registration_config(
            RegistrationConfig::builder()
                .template_body("{}")
                .role_arn(ROLE_ARN)
                .build(),
        )
        .tags(tag("team", "fleet"))
        .send()
        .await
        .expect("RegisterCACertificate");
    let id = out.certificate_id().expect("id").to_owned();
    assert_eq!(id, certificate_id(&ca.pem));
    assert_eq!(out.certificate_arn(), Some(cacert_arn(ACCOUNT_A, &id).as_str()));

    let described = describe_ca(&client, &id).await;
    let d = described.certificate_description().expect("description");
    assert_eq!(d.status(), Some(&CaCertificateStatus::Active));
    assert_eq!(d.auto_registration_status(), Some(&AutoRegistrationStatus::Enable));
    assert_eq!(d.certificate_mode(), Some(&CertificateMode::Default));
    assert_eq!(d.certificate_pem(), Some(ca.pem.as_str()));
    assert_eq!(d.owned_by(), Some(ACCOUNT_A));
    assert_eq!(d.customer_version(), Some(1));
    assert!(d.validity().and_then(|v| v.not_after()).is_some());
    let config = described.registration_config().expect("registrationConfig");
    assert_eq!(config.role_arn(), Some(ROLE_ARN));
    assert_eq!(config.template_body(), Some("{}"));

    let listed = client.list_ca_certificates().send().await.expect("list");
    assert_eq!(listed.certificates().len(), 1);
    assert_eq!(listed.certificates()[0].status(), Some(&CaCertificateStatus::Active));

    // Tags, on the cacert ARN.
    let arn = cacert_arn(ACCOUNT_A, &id);
    assert_eq!(tags_of(&client, &arn).await, pairs(&[("team", "fleet")]));
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("env", "prod"))
        .send()
        .await
        .expect("TagResource");
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .expect("UntagResource");
    assert_eq!(tags_of(&client, &arn).await, pairs(&[("env", "prod")]));
    let (failure, _) = expect_failure(
        server
            .client_b()
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    server.stop().await;
}

#[tokio::test]
async fn verification_failures_write_nothing() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let ca = TestCa::new("Strict CA");
    let other = TestCa::new("Other CA");

    // No registration code yet: nothing can match.
    let (failure, _) = expect_failure(
        client
            .register_ca_certificate()
            .ca_certificate(&ca.pem)
            .verification_certificate(ca.verification_certificate(&"0".repeat(64)))
            .send()
            .await,
    );
    failure.assert("RegistrationCodeValidationException", 400);

    let code = registration_code(&client).await;
    let cases: Vec<(Option<String>, Option<CertificateMode>, &str, u16)> = vec![
        // Wrong common name.
        (
            Some(ca.verification_certificate("not-the-code")),
            None,
            "RegistrationCodeValidationException",
            400,
        ),
        // The right name, signed by another key.
        (
            Some(other.verification_certificate(&code)),
            None,
            "CertificateValidationException",
            400,
        ),
        // Not a certificate.
        (
            Some("junk".into()),
            None,
            "CertificateValidationException",
            400,
        ),
        // DEFAULT mode needs a verification certificate.
        (None, None, "InvalidRequestException", 400),
        (
            None,
            Some(CertificateMode::Default),
            "InvalidRequestException",
            400,
        ),
        // SNI_ONLY takes none.
        (
            Some(ca.verification_certificate(&code)),
            Some(CertificateMode::SniOnly),
            "InvalidRequestException",
            400,
        ),
    ];
    for (verification, mode, code_expected, status) in cases {
        let (failure, _) = expect_failure(
            client
                .register_ca_certificate()
                .ca_certificate(&ca.pem)
                .set_verification_certificate(verification)
                .set_certificate_mode(mode)
                .tags(tag("k", "v"))
                .send()
                .await,
        );
        failure.assert(code_expected, status);
    }
    // Not a CA certificate at all.
    let (failure, _) = expect_failure(
        client
            .register_ca_certificate()
            .ca_certificate("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
            .verification_certificate(ca.verification_certificate(&code))
            .send()
            .await,
    );
    failure.assert("CertificateValidationException", 400);
    assert!(ca_ids(&client).await.is_empty());
    let arn = cacert_arn(ACCOUNT_A, &certificate_id(&ca.pem));
    let (failure, _) = expect_failure(client.list_tags_for_resource().resource_arn(&arn).send().await);
    failure.assert("ResourceNotFoundException", 404);

    // SNI_ONLY without verification; then the same CA again is a duplicate.
    let out = client
        .register_ca_certificate()
        .ca_certificate(&ca.pem)
        .certificate_mode(CertificateMode::SniOnly)
        .send()
        .await
        .expect("SNI_ONLY");
    let id = out.certificate_id().unwrap().to_owned();
    let d = describe_ca(&client, &id).await;
    let d = d.certificate_description().unwrap();
    assert_eq!(d.certificate_mode(), Some(&CertificateMode::SniOnly));
    assert_eq!(d.status(), Some(&CaCertificateStatus::Inactive));
    assert_eq!(d.auto_registration_status(), Some(&AutoRegistrationStatus::Disable));
    let (failure, err) = expect_failure(
        client
            .register_ca_certificate()
            .ca_certificate(&ca.pem)
            .verification_certificate(ca.verification_certificate(&code))
            .send()
            .await,
    );
    failure.assert("ResourceAlreadyExistsException", 409);
    assert!(err.is_resource_already_exists_exception());
    assert_eq!(ca_ids(&client).await, vec![id]);
    server.stop().await;
}

#[tokio::test]
async fn register_device_certificates_under_a_ca() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let ca = TestCa::new("Device CA");
    let ca_id = register_ca(&client, &ca, true).await;
    let unregistered = TestCa::new("Unregistered CA");

    // Named CA.
    let (device, _) = ca.issue("device-1");
    let out = client
        .register_certificate()
        .certificate_pem(&device)
        .ca_certificate_pem(&ca.pem)
        .set_as_active(true)
        .send()
        .await
        .expect("RegisterCertificate with its CA");
    let id1 = out.certificate_id().unwrap().to_owned();
    let d = client.describe_certificate().certificate_id(&id1).send().await.unwrap();
    let d = d.certificate_description().unwrap();
    assert_eq!(d.ca_certificate_id(), Some(ca_id.as_str()));
    assert_eq!(d.status(), Some(&CertificateStatus::Active));
    assert_eq!(d.certificate_mode(), Some(&CertificateMode::Default));

    // CA found by the certificate's issuer; status from `status`.
    let device2 = ca.issue_with_crl("device-2", "http://crl.example/device-ca.crl");
    let out = client
        .register_certificate()
        .certificate_pem(&device2)
        .status(CertificateStatus::Revoked)
        .send()
        .await
        .expect("RegisterCertificate, CA found by issuer");
    let id2 = out.certificate_id().unwrap().to_owned();
    let d = client.describe_certificate().certificate_id(&id2).send().await.unwrap();
    assert_eq!(
        d.certificate_description().unwrap().status(),
        Some(&CertificateStatus::Revoked)
    );

    // Refusals: CertificateValidationException, nothing written.
    let (stranger, _) = unregistered.issue("stranger");
    let (ours_again, _) = ca.issue("device-3");
    let impostor = TestCa::same_subject("Device CA");
    let (forged, _) = impostor.issue("forged");
    for (cert, ca_pem) in [
        (stranger.clone(), None),
        (stranger.clone(), Some(unregistered.pem.clone())),
        (stranger, Some(ca.pem.clone())),
        (ours_again, Some(unregistered.pem.clone())),
        // Same issuer name as a registered CA, other key: the signature decides.
        (forged.clone(), None),
        (forged, Some(ca.pem.clone())),
        ("garbage".into(), None),
    ] {
        let (failure, _) = expect_failure(
            client
                .register_certificate()
                .certificate_pem(cert)
                .set_ca_certificate_pem(ca_pem)
                .send()
                .await,
        );
        failure.assert("CertificateValidationException", 400);
    }
    let (failure, _) = expect_failure(
        client
            .register_certificate()
            .certificate_pem(&device)
            .send()
            .await,
    );
    failure.assert("ResourceAlreadyExistsException", 409);
    let (failure, _) = expect_failure(
        client
            .register_certificate()
            .certificate_pem(ca.issue("d4").0)
            .set_as_active(true)
            .status(CertificateStatus::Inactive)
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);

    assert_eq!(ids_by_ca(&client, &ca_id).await, vec![id1.clone(), id2.clone()]);
    assert!(ids_by_ca(&client, &"f".repeat(64)).await.is_empty());
    // Certificates Palisade issues are not under a registered CA.
    create_certificate(&client, true).await;
    assert_eq!(ids_by_ca(&client, &ca_id).await.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn two_registered_cas_with_one_subject_and_key_conflict() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let ca = TestCa::new("Twice Registered CA");
    let again = ca.reissued(4242);
    assert_ne!(certificate_id(&ca.pem), certificate_id(&again.pem));
    let first = register_ca(&client, &ca, true).await;
    let second = register_ca(&client, &again, true).await;
    assert_ne!(first, second);

    // Found by issuer, two CAs verify it: ambiguous, CertificateConflictException (409),
    // and nothing is registered.
    let (device, _) = ca.issue("conflicted-device");
    let (failure, _) = expect_failure(
        client
            .register_certificate()
            .certificate_pem(&device)
            .set_as_active(true)
            .send()
            .await,
    );
    failure.assert("CertificateConflictException", 409);
    let (failure, _) = expect_failure(
        client
            .describe_certificate()
            .certificate_id(certificate_id(&device))
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);

    // Naming the CA resolves it.
    let out = client
        .register_certificate()
        .certificate_pem(&device)
        .ca_certificate_pem(&ca.pem)
        .set_as_active(true)
        .send()
        .await
        .expect("RegisterCertificate naming one of the two CAs");
    let d = client
        .describe_certificate()
        .certificate_id(out.certificate_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(d.certificate_description().unwrap().ca_certificate_id(), Some(first.as_str()));

    // With the other one gone, the other is found by issuer again.
    client
        .update_ca_certificate()
        .certificate_id(&second)
        .new_status(CaCertificateStatus::Inactive)
        .send()
        .await
        .unwrap();
    client.delete_ca_certificate().certificate_id(&second).send().await.unwrap();
    let (device2, _) = ca.issue("after-the-conflict");
    let out = client
        .register_certificate()
        .certificate_pem(&device2)
        .send()
        .await
        .expect("RegisterCertificate with one candidate left");
    let d = client
        .describe_certificate()
        .certificate_id(out.certificate_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(d.certificate_description().unwrap().ca_certificate_id(), Some(first.as_str()));
    server.stop().await;
}

#[tokio::test]
async fn update_and_delete_ca_certificate() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let ca = TestCa::new("Lifecycle CA");
    let id = register_ca(&client, &ca, true).await;
    let (device, _) = ca.issue("survivor");
    let device_id = client
        .register_certificate()
        .certificate_pem(&device)
        .send()
        .await
        .expect("device")
        .certificate_id()
        .unwrap()
        .to_owned();

    let (failure, err) = expect_failure(client.delete_ca_certificate().certificate_id(&id).send().await);
    failure.assert("CertificateStateException", 406);
    assert!(err.is_certificate_state_exception());

    client
        .update_ca_certificate()
        .certificate_id(&id)
        .new_status(CaCertificateStatus::Inactive)
        .new_auto_registration_status(AutoRegistrationStatus::Enable)
        .registration_config(RegistrationConfig::builder().template_name("tmpl-1").build())
        .send()
        .await
        .expect("UpdateCACertificate");
    let described = describe_ca(&client, &id).await;
    let d = described.certificate_description().unwrap();
    assert_eq!(d.status(), Some(&CaCertificateStatus::Inactive));
    assert_eq!(d.auto_registration_status(), Some(&AutoRegistrationStatus::Enable));
    assert_eq!(d.customer_version(), Some(2));
    assert_eq!(
        described.registration_config().and_then(|c| c.template_name()),
        Some("tmpl-1")
    );
    // Filtered by template.
    let by_template = client
        .list_ca_certificates()
        .template_name("tmpl-1")
        .send()
        .await
        .unwrap();
    assert_eq!(by_template.certificates().len(), 1);
    let none = client
        .list_ca_certificates()
        .template_name("other")
        .send()
        .await
        .unwrap();
    assert!(none.certificates().is_empty());

    client
        .update_ca_certificate()
        .certificate_id(&id)
        .remove_auto_registration(true)
        .send()
        .await
        .expect("remove auto registration");
    assert!(describe_ca(&client, &id).await.registration_config().is_none());
    let (failure, _) = expect_failure(
        client
            .update_ca_certificate()
            .certificate_id(&id)
            .remove_auto_registration(true)
            .registration_config(RegistrationConfig::builder().template_name("x").build())
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);

    client
        .delete_ca_certificate()
        .certificate_id(&id)
        .send()
        .await
        .expect("DeleteCACertificate");
    for result in [
        expect_failure(client.describe_ca_certificate().certificate_id(&id).send().await).0,
        expect_failure(client.delete_ca_certificate().certificate_id(&id).send().await).0,
        expect_failure(
            client
                .update_ca_certificate()
                .certificate_id(&id)
                .new_status(CaCertificateStatus::Active)
                .send()
                .await,
        )
        .0,
        expect_failure(
            client
                .list_tags_for_resource()
                .resource_arn(cacert_arn(ACCOUNT_A, &id))
                .send()
                .await,
        )
        .0,
    ] {
        result.assert("ResourceNotFoundException", 404);
    }
    // The device certificate stays, still naming its CA.
    let d = client.describe_certificate().certificate_id(&device_id).send().await.unwrap();
    assert_eq!(d.certificate_description().unwrap().ca_certificate_id(), Some(id.as_str()));
    assert!(ca_ids(&client).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn ca_certificates_are_isolated_and_limited_per_subject() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    let ca = TestCa::new("Shared CA");
    let id = register_ca(&a, &ca, true).await;
    assert_ne!(registration_code(&a).await, registration_code(&b).await);

    // B cannot use A's registration code, nor see A's CA; B may register the same CA.
    let (failure, _) = expect_failure(
        b.register_ca_certificate()
            .ca_certificate(&ca.pem)
            .verification_certificate(ca.verification_certificate(&registration_code(&a).await))
            .send()
            .await,
    );
    failure.assert("RegistrationCodeValidationException", 400);
    let (failure, _) = expect_failure(b.describe_ca_certificate().certificate_id(&id).send().await);
    failure.assert("ResourceNotFoundException", 404);
    assert!(ca_ids(&b).await.is_empty());
    assert_eq!(register_ca(&b, &ca, false).await, id);
    // A device certificate of A's CA cannot be registered by B under B's view of it
    // unless B registered that CA (it now has).
    let (device, _) = ca.issue("d");
    b.register_certificate().certificate_pem(&device).send().await.expect("B registers");

    // At most 10 CAs with one subject per account.
    for _ in 0..9 {
        register_ca(&a, &TestCa::same_subject("Shared CA"), false).await;
    }
    let code = registration_code(&a).await;
    let eleventh = TestCa::same_subject("Shared CA");
    let (failure, _) = expect_failure(
        a.register_ca_certificate()
            .ca_certificate(&eleventh.pem)
            .verification_certificate(eleventh.verification_certificate(&code))
            .send()
            .await,
    );
    failure.assert("LimitExceededException", 410);
    assert_eq!(ca_ids(&a).await.len(), 10);
    // Another subject is fine.
    register_ca(&a, &TestCa::new("Another CA"), false).await;

    // Paging: ascending and descending by creation.
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let out = a
            .list_ca_certificates()
            .page_size(3)
            .ascending_order(false)
            .set_marker(marker)
            .send()
            .await
            .unwrap();
        seen.extend(out.certificates().iter().map(|c| c.certificate_id().unwrap().to_owned()));
        marker = out.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    let mut ascending = ca_ids(&a).await;
    ascending.reverse();
    assert_eq!(seen, ascending);
    assert_eq!(seen.len(), 11);
    server.stop().await;
}
}
