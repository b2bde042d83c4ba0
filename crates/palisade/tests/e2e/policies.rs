//! IoT policies and their versions through the real `aws-sdk-iot` client: the round
//! trips, the version rules (default, limit of five, ids never reused), document
//! validation, paging, tagging and isolation between accounts.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::create_policy::CreatePolicyError;
use aws_sdk_iot::operation::create_policy_version::CreatePolicyVersionError;
use aws_sdk_iot::operation::delete_policy::DeletePolicyError;
use aws_sdk_iot::operation::get_policy::GetPolicyError;
use aws_sdk_iot::primitives::DateTime;
use aws_sdk_iot::Client;

/// A valid document whose resource names `n`, laid out with whitespace on purpose.
fn doc(n: u32) -> String {
    format!(
        "{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {{\"Effect\": \"Allow\", \"Action\": [\"iot:Connect\"], \"Resource\": \"arn:aws:iot:{REGION}:{ACCOUNT_A}:client/d{n}\"}}\n  ]\n}}"
    )
}

fn policy_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iot:{REGION}:{account}:policy/{name}")
}

fn millis(t: Option<&DateTime>) -> i64 {
    t.expect("timestamp")
        .to_millis()
        .expect("timestamp in range")
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

async fn create_policy(client: &Client, name: &str, document: &str) {
    client
        .create_policy()
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating policy {name}: {}", DisplayErrorContext(e)));
}

async fn add_version(client: &Client, name: &str, document: &str, set_as_default: bool) -> String {
    client
        .create_policy_version()
        .policy_name(name)
        .policy_document(document)
        .set_as_default(set_as_default)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating a version of {name}: {}", DisplayErrorContext(e)))
        .policy_version_id()
        .expect("policyVersionId")
        .to_owned()
}

/// `(versionId, isDefaultVersion)` in the order ListPolicyVersions answers.
async fn versions(client: &Client, name: &str) -> Vec<(String, bool)> {
    client
        .list_policy_versions()
        .policy_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("listing versions of {name}: {}", DisplayErrorContext(e)))
        .policy_versions()
        .iter()
        .map(|v| {
            (
                v.version_id().expect("versionId").to_owned(),
                v.is_default_version(),
            )
        })
        .collect()
}

/// Names of every policy of the client's account, via the SDK paginator.
async fn all_policy_names(client: &Client, page_size: i32, ascending: bool) -> Vec<String> {
    client
        .list_policies()
        .ascending_order(ascending)
        .into_paginator()
        .page_size(page_size)
        .items()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("listing policies: {}", DisplayErrorContext(e)))
        .into_iter()
        .map(|p| p.policy_name.expect("policyName"))
        .collect()
}

async fn assert_policy_absent(client: &Client, name: &str) {
    let (failure, err) = expect_failure(client.get_policy().policy_name(name).send().await);
    failure.assert("ResourceNotFoundException", 404);
    assert!(
        matches!(err, GetPolicyError::ResourceNotFoundException(_)),
        "{err:?}"
    );
}

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
#[tokio::test]
async fn create_get_list_delete_round_trip() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let before = now_millis();
    let document = doc(1);
    let arn = policy_arn(ACCOUNT_A, "device-policy");

    let created = client
        .create_policy()
        .policy_name("device-policy")
        .policy_document(&document)
        .tags(tag("team", "fleet"))
        .send()
        .await
        .expect("create");
    assert_eq!(created.policy_name(), Some("device-policy"));
    assert_eq!(created.policy_arn(), Some(arn.as_str()));
    assert_eq!(created.policy_document(), Some(document.as_str()), "whitespace is kept");
    assert_eq!(created.policy_version_id(), Some("1"));

    let got = client
        .get_policy()
        .policy_name("device-policy")
        .send()
        .await
        .expect("get");
    assert_eq!(got.policy_name(), Some("device-policy"));
    assert_eq!(got.policy_arn(), Some(arn.as_str()));
    assert_eq!(got.policy_document(), Some(document.as_str()));
    assert_eq!(got.default_version_id(), Some("1"));
    assert!(got.generation_id().is_some_and(|g| !g.is_empty()));
    let created_at = millis(got.creation_date());
    assert!(
        (before - 1000..=now_millis() + 1000).contains(&created_at),
        "creationDate {created_at} is not about now ({before})"
    );
    assert_eq!(millis(got.last_modified_date()), created_at);

    let listed = client.list_policies().send().await.expect("list");
    assert_eq!(listed.next_marker(), None);
    let policies: Vec<(Option<&str>, Option<&str>)> = listed
        .policies()
        .iter()
        .map(|p| (p.policy_name(), p.policy_arn()))
        .collect();
    assert_eq!(policies, vec![(Some("device-policy"), Some(arn.as_str()))]);
    assert_eq!(tags_of(&client, &arn).await, pairs(&[("team", "fleet")]));

    client
        .delete_policy()
        .policy_name("device-policy")
        .send()
        .await
        .expect("delete");
    assert_policy_absent(&client, "device-policy").await;
    assert!(all_policy_names(&client, 10, true).await.is_empty());
    let (failure, _) = expect_failure(client.list_tags_for_resource().resource_arn(&arn).send().await);
    failure.assert("ResourceNotFoundException", 404);
    let (failure, err) = expect_failure(
        client.delete_policy().policy_name("device-policy").send().await,
    );
    failure.assert("ResourceNotFoundException", 404);
    assert!(matches!(err, DeletePolicyError::ResourceNotFoundException(_)), "{err:?}");

    // The name can be used again, starting from version 1 with no old tags.
    create_policy(&client, "device-policy", &doc(2)).await;
    assert_eq!(versions(&client, "device-policy").await, vec![("1".into(), true)]);
    assert!(tags_of(&client, &arn).await.is_empty());
}

#[tokio::test]
async fn versions_default_switching_and_deletion_rules() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_policy(&client, "versioned", &doc(1)).await;
    let first = client.get_policy().policy_name("versioned").send().await.expect("get");
    let generation_1 = first.generation_id().expect("generationId").to_owned();

    // A version that is not the default changes neither the document nor the generation.
    let v2 = client
        .create_policy_version()
        .policy_name("versioned")
        .policy_document(doc(2))
        .send()
        .await
        .expect("create v2");
    assert_eq!(v2.policy_version_id(), Some("2"));
    assert!(!v2.is_default_version());
    assert_eq!(v2.policy_arn(), Some(policy_arn(ACCOUNT_A, "versioned").as_str()));
    assert_eq!(v2.policy_document(), Some(doc(2).as_str()));
    let got = client.get_policy().policy_name("versioned").send().await.expect("get");
    assert_eq!(got.default_version_id(), Some("1"));
    assert_eq!(got.policy_document(), Some(doc(1).as_str()));
    assert_eq!(got.generation_id(), Some(generation_1.as_str()));

    // A default version takes effect at once.
    let v3 = client
        .create_policy_version()
        .policy_name("versioned")
        .policy_document(doc(3))
        .set_as_default(true)
        .send()
        .await
        .expect("create v3");
    assert_eq!(v3.policy_version_id(), Some("3"));
    assert!(v3.is_default_version());
    let got = client.get_policy().policy_name("versioned").send().await.expect("get");
    assert_eq!(got.default_version_id(), Some("3"));
    assert_eq!(got.policy_document(), Some(doc(3).as_str()));
    let generation_3 = got.generation_id().expect("generationId").to_owned();
    assert_ne!(generation_3, generation_1);
    assert_eq!(millis(got.creation_date()), millis(first.creation_date()));
    assert!(millis(got.last_modified_date()) >= millis(first.last_modified_date()));

    let v = client
        .get_policy_version()
        .policy_name("versioned")
        .policy_version_id("2")
        .send()
        .await
        .expect("get v2");
    assert_eq!(v.policy_name(), Some("versioned"));
    assert_eq!(v.policy_arn(), Some(policy_arn(ACCOUNT_A, "versioned").as_str()));
    assert_eq!(v.policy_version_id(), Some("2"));
    assert_eq!(v.policy_document(), Some(doc(2).as_str()));
    assert!(!v.is_default_version());
    assert_eq!(v.generation_id(), Some(generation_3.as_str()));
    assert!(v.creation_date().is_some() && v.last_modified_date().is_some());

    assert_eq!(
        versions(&client, "versioned").await,
        vec![("3".into(), true), ("2".into(), false), ("1".into(), false)]
    );

    client
        .set_default_policy_version()
        .policy_name("versioned")
        .policy_version_id("2")
        .send()
        .await
        .expect("set default");
    let got = client.get_policy().policy_name("versioned").send().await.expect("get");
    assert_eq!(got.default_version_id(), Some("2"));
    assert_eq!(got.policy_document(), Some(doc(2).as_str()));
    assert_ne!(got.generation_id(), Some(generation_3.as_str()));

    // The default cannot be deleted on its own; the policy not while others remain.
    let (failure, _) = expect_failure(
        client
            .delete_policy_version()
            .policy_name("versioned")
            .policy_version_id("2")
            .send()
            .await,
    );
    failure.assert("DeleteConflictException", 409);
    let (failure, err) = expect_failure(client.delete_policy().policy_name("versioned").send().await);
    failure.assert("DeleteConflictException", 409).mentions(&["versioned"]);
    assert!(matches!(err, DeletePolicyError::DeleteConflictException(_)), "{err:?}");
    assert_eq!(versions(&client, "versioned").await.len(), 3, "refusals change nothing");

    for id in ["1", "3"] {
        client
            .delete_policy_version()
            .policy_name("versioned")
            .policy_version_id(id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete version {id}: {}", DisplayErrorContext(e)));
    }
    assert_eq!(versions(&client, "versioned").await, vec![("2".into(), true)]);
    client
        .delete_policy()
        .policy_name("versioned")
        .send()
        .await
        .expect("delete with only the default left");
    assert_policy_absent(&client, "versioned").await;
}

#[tokio::test]
async fn at_most_five_versions_and_ids_are_never_reused() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_policy(&client, "capped", &doc(1)).await;
    for n in 2..=5 {
        assert_eq!(add_version(&client, "capped", &doc(n), false).await, n.to_string());
    }
    let (failure, err) = expect_failure(
        client
            .create_policy_version()
            .policy_name("capped")
            .policy_document(doc(6))
            .set_as_default(true)
            .send()
            .await,
    );
    failure.assert("VersionsLimitExceededException", 409);
    assert!(
        matches!(err, CreatePolicyVersionError::VersionsLimitExceededException(_)),
        "{err:?}"
    );
    let got = client.get_policy().policy_name("capped").send().await.expect("get");
    assert_eq!(got.default_version_id(), Some("1"), "the refused version did not become default");
    assert_eq!(versions(&client, "capped").await.len(), 5);

    client
        .delete_policy_version()
        .policy_name("capped")
        .policy_version_id("5")
        .send()
        .await
        .expect("delete v5");
    assert_eq!(add_version(&client, "capped", &doc(6), true).await, "6");
    assert_eq!(
        versions(&client, "capped").await,
        vec![
            ("6".into(), true),
            ("4".into(), false),
            ("3".into(), false),
            ("2".into(), false),
            ("1".into(), false)
        ]
    );
}

#[tokio::test]
async fn malformed_documents_are_refused_and_write_nothing() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let too_long = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"iot:*","Resource":"{}"}}}}"#,
        "r".repeat(2048)
    );
    let cases = [
        ("not json", "not valid JSON"),
        ("[]", "object"),
        (r#"{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#, "Version"),
        (r#"{"Version":"2012-10-17"}"#, "Statement"),
        (r#"{"Version":"2012-10-17","Statement":[]}"#, "Statement"),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Permit","Action":"iot:*","Resource":"*"}}"#,
            "Effect",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"*"}}"#,
            "Action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":7}}"#,
            "Resource",
        ),
        (too_long.as_str(), "2048"),
    ];
    for (document, needle) in cases {
        let (failure, err) = expect_failure(
            client
                .create_policy()
                .policy_name("bad")
                .policy_document(document)
                .tags(tag("k", "v"))
                .send()
                .await,
        );
        failure.assert("MalformedPolicyException", 400).mentions(&[needle]);
        assert!(matches!(err, CreatePolicyError::MalformedPolicyException(_)), "{err:?}");
    }
    assert_policy_absent(&client, "bad").await;
    assert!(all_policy_names(&client, 10, true).await.is_empty());

    create_policy(&client, "good", &doc(1)).await;
    let (failure, err) = expect_failure(
        client
            .create_policy_version()
            .policy_name("good")
            .policy_document("{}")
            .set_as_default(true)
            .send()
            .await,
    );
    failure.assert("MalformedPolicyException", 400);
    assert!(matches!(err, CreatePolicyVersionError::MalformedPolicyException(_)), "{err:?}");
    assert_eq!(versions(&client, "good").await, vec![("1".into(), true)]);

    // The model's own constraints come first: a bad name is an InvalidRequestException.
    let (failure, _) = expect_failure(
        client
            .create_policy()
            .policy_name("has space")
            .policy_document(doc(1))
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
}

#[tokio::test]
async fn duplicate_name_is_refused_and_keeps_the_original() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    client
        .create_policy()
        .policy_name("taken")
        .policy_document(doc(1))
        .tags(tag("owner", "first"))
        .send()
        .await
        .expect("create");
    let (failure, err) = expect_failure(
        client
            .create_policy()
            .policy_name("taken")
            .policy_document(doc(2))
            .tags(tag("owner", "second"))
            .send()
            .await,
    );
    failure.assert("ResourceAlreadyExistsException", 409).mentions(&["taken"]);
    match err {
        CreatePolicyError::ResourceAlreadyExistsException(e) => {
            assert_eq!(e.resource_arn(), Some(policy_arn(ACCOUNT_A, "taken").as_str()));
        }
        other => panic!("{other:?}"),
    }
    let got = client.get_policy().policy_name("taken").send().await.expect("get");
    assert_eq!(got.policy_document(), Some(doc(1).as_str()));
    assert_eq!(
        tags_of(&client, &policy_arn(ACCOUNT_A, "taken")).await,
        pairs(&[("owner", "first")])
    );
}

#[tokio::test]
async fn unknown_policies_and_versions_are_not_found() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    assert_policy_absent(&client, "ghost").await;
    let (f, _) = expect_failure(client.delete_policy().policy_name("ghost").send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, err) = expect_failure(
        client
            .create_policy_version()
            .policy_name("ghost")
            .policy_document(doc(1))
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    assert!(matches!(err, CreatePolicyVersionError::ResourceNotFoundException(_)), "{err:?}");
    let (f, _) = expect_failure(client.list_policy_versions().policy_name("ghost").send().await);
    f.assert("ResourceNotFoundException", 404);

    create_policy(&client, "real", &doc(1)).await;
    for id in ["2", "0", "01", "99999999999999999999"] {
        let (f, _) = expect_failure(
            client
                .get_policy_version()
                .policy_name("real")
                .policy_version_id(id)
                .send()
                .await,
        );
        f.assert("ResourceNotFoundException", 404);
        let (f, _) = expect_failure(
            client
                .set_default_policy_version()
                .policy_name("real")
                .policy_version_id(id)
                .send()
                .await,
        );
        f.assert("ResourceNotFoundException", 404);
        let (f, _) = expect_failure(
            client
                .delete_policy_version()
                .policy_name("real")
                .policy_version_id(id)
                .send()
                .await,
        );
        f.assert("ResourceNotFoundException", 404);
    }
    for (policy, id) in [("ghost", "1"), ("real", "x")] {
        let (f, _) = expect_failure(
            client
                .get_policy_version()
                .policy_name(policy)
                .policy_version_id(id)
                .send()
                .await,
        );
        let expected = if id == "x" {
            ("InvalidRequestException", 400)
        } else {
            ("ResourceNotFoundException", 404)
        };
        f.assert(expected.0, expected.1);
    }
    assert_eq!(versions(&client, "real").await, vec![("1".into(), true)]);
}

#[tokio::test]
async fn list_policies_pages_in_name_order_both_ways() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let names = ["m-7", "Zeta", "alpha", "b_2", "b-1", "gamma", "delta.1"];
    for name in names {
        create_policy(&client, name, &doc(1)).await;
    }
    let mut sorted: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    for page in [1, 2, 3, 7, 250] {
        assert_eq!(all_policy_names(&client, page, true).await, sorted, "page {page}");
        let mut reversed = sorted.clone();
        reversed.reverse();
        assert_eq!(all_policy_names(&client, page, false).await, reversed, "page {page}");
    }

    let first = client.list_policies().page_size(3).send().await.expect("page 1");
    let marker = first.next_marker().expect("nextMarker").to_owned();
    assert!(
        marker.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='),
        "marker {marker:?} must fit the model's pattern"
    );
    let second = client
        .list_policies()
        .page_size(3)
        .marker(&marker)
        .send()
        .await
        .expect("page 2");
    let page_2: Vec<&str> = second.policies().iter().filter_map(|p| p.policy_name()).collect();
    assert_eq!(page_2, sorted[3..6].iter().map(String::as_str).collect::<Vec<_>>());

    // A marker is bound to its listing's direction and cannot be edited.
    let (f, _) = expect_failure(
        client
            .list_policies()
            .marker(&marker)
            .ascending_order(false)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    let mut edited = marker.clone().into_bytes();
    edited[0] = if edited[0] == b'A' { b'B' } else { b'A' };
    let (f, _) = expect_failure(
        client
            .list_policies()
            .marker(String::from_utf8(edited).expect("ascii"))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    // Another account cannot replay it.
    let (f, _) = expect_failure(server.client_b().list_policies().marker(&marker).send().await);
    f.assert("InvalidRequestException", 400);
}

#[tokio::test]
async fn policies_are_taggable_by_arn() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_policy(&client, "tagged", &doc(1)).await;
    let arn = policy_arn(ACCOUNT_A, "tagged");
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("a", "1"))
        .tags(tag("b", "2"))
        .send()
        .await
        .expect("tag");
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("a")
        .send()
        .await
        .expect("untag");
    assert_eq!(tags_of(&client, &arn).await, pairs(&[("b", "2")]));

    for missing in [
        policy_arn(ACCOUNT_A, "nope"),
        format!("arn:aws:iot:eu-west-1:{ACCOUNT_A}:policy/tagged"),
    ] {
        let (f, _) = expect_failure(
            client
                .tag_resource()
                .resource_arn(&missing)
                .tags(tag("a", "1"))
                .send()
                .await,
        );
        f.assert("ResourceNotFoundException", 404);
    }
}

#[tokio::test]
async fn another_account_cannot_reach_a_policy() {
    let server = TestServer::start(ENGINE).await;
    let a = server.client_a();
    let b = server.client_b();
    a.create_policy()
        .policy_name("secret")
        .policy_document(doc(1))
        .tags(tag("owner", "a"))
        .send()
        .await
        .expect("create");
    add_version(&a, "secret", &doc(2), false).await;
    let arn = policy_arn(ACCOUNT_A, "secret");

    assert_policy_absent(&b, "secret").await;
    let (f, _) = expect_failure(b.list_policy_versions().policy_name("secret").send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(
        b.get_policy_version()
            .policy_name("secret")
            .policy_version_id("1")
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(
        b.set_default_policy_version()
            .policy_name("secret")
            .policy_version_id("2")
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(
        b.delete_policy_version()
            .policy_name("secret")
            .policy_version_id("2")
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(b.delete_policy().policy_name("secret").send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(b.list_tags_for_resource().resource_arn(&arn).send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(
        b.tag_resource()
            .resource_arn(&arn)
            .tags(tag("owner", "b"))
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    assert!(all_policy_names(&b, 10, true).await.is_empty());

    // B's own policy of the same name is its own, with its own versions and ARN.
    create_policy(&b, "secret", &doc(9)).await;
    let theirs = b.get_policy().policy_name("secret").send().await.expect("get");
    assert_eq!(theirs.policy_arn(), Some(policy_arn(ACCOUNT_B, "secret").as_str()));
    let ours = a.get_policy().policy_name("secret").send().await.expect("get");
    assert_eq!(ours.policy_document(), Some(doc(1).as_str()));
    assert_eq!(versions(&a, "secret").await.len(), 2);
    assert_eq!(tags_of(&a, &arn).await, pairs(&[("owner", "a")]));
}

#[tokio::test]
async fn operations_without_output_answer_an_empty_body() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_policy(&client, "raw", &doc(1)).await;
    add_version(&client, "raw", &doc(2), false).await;
    add_version(&client, "raw", &doc(3), false).await;
    for (method, target) in [
        ("PATCH", "/policies/raw/version/2"),
        ("DELETE", "/policies/raw/version/1"),
        ("DELETE", "/policies/raw/version/3"),
        ("DELETE", "/policies/raw"),
    ] {
        let resp = server.send(server.signed(RawRequest::new(method, target))).await;
        assert_eq!(resp.status, 200, "{method} {target}: {resp:?}");
        assert!(resp.body.is_empty(), "{method} {target}: {resp:?}");
        resp.assert_request_id();
    }
    assert_policy_absent(&client, "raw").await;
}
}
