//! Device certificates through the real `aws-sdk-iot` client: certificates Palisade
//! issues (CreateKeysAndCertificate, CreateCertificateFromCsr), certificates registered
//! without a CA, DescribeCertificate, ListCertificates paging, the status rules of
//! UpdateCertificate, the rules of DeleteCertificate, garbage input and isolation.

use crate::common::*;
use crate::pki::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::types::{CertificateMode, CertificateStatus};
use aws_sdk_iot::Client;

async fn describe(client: &Client, id: &str) -> aws_sdk_iot::types::CertificateDescription {
    client
        .describe_certificate()
        .certificate_id(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeCertificate {id}: {}", DisplayErrorContext(e)))
        .certificate_description()
        .expect("certificateDescription")
        .clone()
}

async fn status_of(client: &Client, id: &str) -> CertificateStatus {
    describe(client, id).await.status().expect("status").clone()
}

async fn set_status(client: &Client, id: &str, status: CertificateStatus) {
    client
        .update_certificate()
        .certificate_id(id)
        .new_status(status)
        .send()
        .await
        .unwrap_or_else(|e| panic!("UpdateCertificate {id}: {}", DisplayErrorContext(e)));
}

/// Every certificate id in the account, following markers.
async fn all_ids(client: &Client, ascending: bool, page: i32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .list_certificates()
            .ascending_order(ascending)
            .page_size(page)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListCertificates: {}", DisplayErrorContext(e)));
        assert!(out.certificates().len() <= page as usize);
        ids.extend(
            out.certificates()
                .iter()
                .map(|c| c.certificate_id().expect("id").to_owned()),
        );
        match out.next_marker() {
            Some(m) => marker = Some(m.to_owned()),
            None => return ids,
        }
    }
}

per_engine! {
#[tokio::test]
async fn create_keys_and_certificate_round_trip() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let out = client
        .create_keys_and_certificate()
        .set_as_active(true)
        .send()
        .await
        .expect("CreateKeysAndCertificate");
    let pem = out.certificate_pem().expect("certificatePem").to_owned();
    let id = out.certificate_id().expect("certificateId").to_owned();
    assert_eq!(id, certificate_id(&pem), "the id is the SHA-256 of the DER");
    assert_eq!(
        out.certificate_arn(),
        Some(format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{id}").as_str())
    );
    // The key pair is returned once and belongs to the certificate.
    let keys = out.key_pair().expect("keyPair");
    let private = keys.private_key().expect("privateKey");
    let key = rcgen::KeyPair::from_pem(private).expect("a PKCS#8 private key");
    assert_eq!(keys.public_key(), Some(key.public_key_pem().as_str()));
    let (cn, spki) = subject_and_key(&pem);
    assert_eq!(cn, "AWS IoT Certificate");
    assert_eq!(spki, rcgen::PublicKeyData::subject_public_key_info(&key));

    let d = describe(&client, &id).await;
    assert_eq!(d.certificate_id(), Some(id.as_str()));
    assert_eq!(d.certificate_pem(), Some(pem.as_str()));
    assert_eq!(d.status(), Some(&CertificateStatus::Active));
    assert_eq!(d.certificate_mode(), Some(&CertificateMode::Default));
    assert_eq!(d.owned_by(), Some(ACCOUNT_A));
    assert_eq!(d.customer_version(), Some(1));
    assert_eq!(d.ca_certificate_id(), None, "issued by Palisade, not a registered CA");
    assert!(d.generation_id().is_some_and(|g| !g.is_empty()));
    assert!(d.creation_date().is_some() && d.last_modified_date().is_some());
    let validity = d.validity().expect("validity");
    assert_eq!(
        validity.not_after().expect("notAfter").secs(),
        2_524_607_999,
        "2049-12-31T23:59:59Z, as AWS"
    );

    // A second certificate: same Palisade CA, new key, new id; inactive by default.
    let second = client.create_keys_and_certificate().send().await.expect("second");
    let second_pem = second.certificate_pem().expect("pem");
    assert_ne!(second.certificate_id(), Some(id.as_str()));
    assert_eq!(
        issuer_of(&server, second_pem),
        issuer_of(&server, &pem),
        "one Palisade CA per account"
    );
    assert_eq!(
        status_of(&client, second.certificate_id().unwrap()).await,
        CertificateStatus::Inactive
    );
    let listed = all_ids(&client, true, 250).await;
    assert_eq!(listed, vec![id, second.certificate_id().unwrap().to_owned()]);
    server.stop().await;
}

#[tokio::test]
async fn create_certificate_from_csr() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let (csr_pem, key) = csr("device-42");
    let out = client
        .create_certificate_from_csr()
        .certificate_signing_request(&csr_pem)
        .set_as_active(true)
        .send()
        .await
        .expect("CreateCertificateFromCsr");
    let pem = out.certificate_pem().expect("pem");
    let (cn, spki) = subject_and_key(pem);
    assert_eq!(cn, "device-42", "the CSR's subject");
    assert_eq!(spki, rcgen::PublicKeyData::subject_public_key_info(&key), "the CSR's key");
    let id = out.certificate_id().expect("id");
    assert_eq!(id, certificate_id(pem));
    assert_eq!(status_of(&client, id).await, CertificateStatus::Active);

    // Not a CSR, a CSR whose signature is broken, a certificate: InvalidRequestException
    // (the only error the model lists), and nothing is written.
    let mut broken = der(&csr_pem);
    let last = broken.len() - 1;
    broken[last] ^= 0x55;
    let broken = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64(&broken)
    );
    for bad in [
        "not a csr".to_owned(),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into(),
        broken,
        self_signed("a-certificate"),
        "-".repeat(60_000),
    ] {
        let (failure, _) = expect_failure(
            client
                .create_certificate_from_csr()
                .certificate_signing_request(bad)
                .send()
                .await,
        );
        failure.assert("InvalidRequestException", 400);
    }
    assert_eq!(all_ids(&client, true, 250).await, vec![id.to_owned()]);
    server.stop().await;
}

#[tokio::test]
async fn register_certificate_without_ca() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let pem = self_signed("no-ca-device");
    let out = client
        .register_certificate_without_ca()
        .certificate_pem(&pem)
        .status(CertificateStatus::Active)
        .send()
        .await
        .expect("RegisterCertificateWithoutCA");
    let id = out.certificate_id().expect("id").to_owned();
    assert_eq!(id, certificate_id(&pem));
    let d = describe(&client, &id).await;
    assert_eq!(d.certificate_mode(), Some(&CertificateMode::SniOnly));
    assert_eq!(d.status(), Some(&CertificateStatus::Active));

    // The same certificate again, in any formatting: ResourceAlreadyExistsException.
    let crlf = pem.replace('\n', "\r\n");
    let (failure, err) = expect_failure(
        client
            .register_certificate_without_ca()
            .certificate_pem(crlf)
            .send()
            .await,
    );
    failure.assert("ResourceAlreadyExistsException", 409);
    assert!(err.is_resource_already_exists_exception());

    // Not a certificate: CertificateValidationException.
    for bad in [
        "garbage".to_owned(),
        csr("x").0,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n".into(),
    ] {
        let (failure, _) = expect_failure(
            client
                .register_certificate_without_ca()
                .certificate_pem(bad)
                .send()
                .await,
        );
        failure.assert("CertificateValidationException", 400);
    }
    // PENDING_TRANSFER cannot be asked for.
    let (failure, _) = expect_failure(
        client
            .register_certificate_without_ca()
            .certificate_pem(self_signed("pending"))
            .status(CertificateStatus::PendingTransfer)
            .send()
            .await,
    );
    failure.assert("CertificateStateException", 406);
    assert_eq!(all_ids(&client, true, 250).await, vec![id]);
    server.stop().await;
}

#[tokio::test]
async fn update_certificate_status_rules() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let (id, _) = create_certificate(&client, true).await;
    let before = describe(&client, &id).await;

    set_status(&client, &id, CertificateStatus::Inactive).await;
    let after = describe(&client, &id).await;
    assert_eq!(after.status(), Some(&CertificateStatus::Inactive));
    assert_eq!(after.customer_version(), Some(2));
    assert_ne!(after.generation_id(), before.generation_id());
    // Setting the status it has changes nothing.
    set_status(&client, &id, CertificateStatus::Inactive).await;
    assert_eq!(describe(&client, &id).await.customer_version(), Some(2));

    set_status(&client, &id, CertificateStatus::Active).await;
    for internal in [
        CertificateStatus::PendingTransfer,
        CertificateStatus::PendingActivation,
    ] {
        let (failure, err) = expect_failure(
            client
                .update_certificate()
                .certificate_id(&id)
                .new_status(internal)
                .send()
                .await,
        );
        failure.assert("CertificateStateException", 406);
        assert!(err.is_certificate_state_exception());
    }
    // Revoked is for good.
    set_status(&client, &id, CertificateStatus::Revoked).await;
    for back in [CertificateStatus::Active, CertificateStatus::Inactive] {
        let (failure, _) = expect_failure(
            client
                .update_certificate()
                .certificate_id(&id)
                .new_status(back)
                .send()
                .await,
        );
        failure.assert("CertificateStateException", 406).mentions(&["REVOKED"]);
    }
    assert_eq!(status_of(&client, &id).await, CertificateStatus::Revoked);

    let unknown = "0".repeat(64);
    let (failure, _) = expect_failure(
        client
            .update_certificate()
            .certificate_id(&unknown)
            .new_status(CertificateStatus::Active)
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    // Ids are case-insensitive hex.
    assert_eq!(
        describe(&client, &id.to_uppercase()).await.certificate_id(),
        Some(id.as_str())
    );
    server.stop().await;
}

#[tokio::test]
async fn delete_certificate_rules() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let (id, arn) = create_certificate(&client, true).await;

    let (failure, _) = expect_failure(client.delete_certificate().certificate_id(&id).send().await);
    failure.assert("CertificateStateException", 406);

    // Attached to a thing: refused even with forceDelete.
    set_status(&client, &id, CertificateStatus::Inactive).await;
    client.create_thing().thing_name("t1").send().await.expect("thing");
    client
        .attach_thing_principal()
        .thing_name("t1")
        .principal(&arn)
        .send()
        .await
        .expect("attach");
    for force in [false, true] {
        let (failure, _) = expect_failure(
            client
                .delete_certificate()
                .certificate_id(&id)
                .force_delete(force)
                .send()
                .await,
        );
        failure.assert("DeleteConflictException", 409);
    }
    client
        .detach_thing_principal()
        .thing_name("t1")
        .principal(&arn)
        .send()
        .await
        .expect("detach");

    // Attached to a policy: refused, unless forceDelete, which detaches it.
    client
        .create_policy()
        .policy_name("p1")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("policy");
    client
        .attach_policy()
        .policy_name("p1")
        .target(&arn)
        .send()
        .await
        .expect("attach policy");
    let (failure, _) = expect_failure(client.delete_certificate().certificate_id(&id).send().await);
    failure.assert("DeleteConflictException", 409);
    assert_eq!(status_of(&client, &id).await, CertificateStatus::Inactive);
    client
        .delete_certificate()
        .certificate_id(&id)
        .force_delete(true)
        .send()
        .await
        .expect("force delete");
    let targets = client
        .list_targets_for_policy()
        .policy_name("p1")
        .send()
        .await
        .expect("targets");
    assert!(targets.targets().is_empty(), "detached with the certificate");
    client.delete_policy().policy_name("p1").send().await.expect("policy now deletable");

    let (failure, _) = expect_failure(client.describe_certificate().certificate_id(&id).send().await);
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(client.delete_certificate().certificate_id(&id).send().await);
    failure.assert("ResourceNotFoundException", 404);

    // A revoked certificate can be deleted too.
    let (revoked, _) = create_certificate(&client, true).await;
    set_status(&client, &revoked, CertificateStatus::Revoked).await;
    client
        .delete_certificate()
        .certificate_id(&revoked)
        .send()
        .await
        .expect("delete revoked");
    assert!(all_ids(&client, true, 250).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn list_certificates_pages_in_creation_order() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(create_certificate(&client, false).await.0);
        // Creation times apart, so the order is the creation order.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    assert_eq!(all_ids(&client, true, 2).await, created);
    let mut reversed = created.clone();
    reversed.reverse();
    assert_eq!(all_ids(&client, false, 2).await, reversed);

    // A marker is bound to its listing and direction, and cannot be edited.
    let first = client
        .list_certificates()
        .page_size(2)
        .send()
        .await
        .expect("page");
    let marker = first.next_marker().expect("marker").to_owned();
    let (failure, _) = expect_failure(
        client
            .list_certificates()
            .ascending_order(false)
            .marker(&marker)
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
    let (failure, _) = expect_failure(
        client
            .list_certificates()
            .marker(format!("A{}", &marker[1..]))
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
    server.stop().await;
}

#[tokio::test]
async fn certificates_are_isolated_between_accounts() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    let (id, _) = create_certificate(&a, true).await;
    let (failure, _) = expect_failure(b.describe_certificate().certificate_id(&id).send().await);
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(
        b.update_certificate()
            .certificate_id(&id)
            .new_status(CertificateStatus::Revoked)
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(b.delete_certificate().certificate_id(&id).send().await);
    failure.assert("ResourceNotFoundException", 404);
    assert!(all_ids(&b, true, 250).await.is_empty());
    assert_eq!(status_of(&a, &id).await, CertificateStatus::Active);

    // The same certificate can be registered by each account on its own.
    let pem = self_signed("shared");
    for client in [&a, &b] {
        client
            .register_certificate_without_ca()
            .certificate_pem(&pem)
            .send()
            .await
            .expect("register in each account");
    }
    // Each account's Palisade CA is its own.
    let pem_a = a.create_keys_and_certificate().send().await.unwrap();
    let pem_b = b.create_keys_and_certificate().send().await.unwrap();
    assert_ne!(
        issuer_of(&server, pem_a.certificate_pem().unwrap()),
        issuer_of(&server, pem_b.certificate_pem().unwrap())
    );
    server.stop().await;
}
}

/// The issuer name of a certificate, as text (stands in for "which CA").
fn issuer_of(_server: &TestServer, pem: &str) -> String {
    let der = der(pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("cert");
    cert.issuer().to_string()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
