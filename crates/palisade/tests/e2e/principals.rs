//! Thing principals and policy attachment through the real `aws-sdk-iot` client:
//! AttachThingPrincipal and its siblings (exclusivity, paging, DeleteThing refusing a
//! thing with principals), and AttachPolicy, DetachPolicy, ListAttachedPolicies
//! (recursive through thing group ancestors), ListTargetsForPolicy, with DeletePolicy
//! and DeleteThingGroup staying consistent with attachments.

use crate::common::*;
use crate::pki::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::types::ThingPrincipalType;
use aws_sdk_iot::Client;

const DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;

async fn thing(client: &Client, name: &str) {
    client
        .create_thing()
        .thing_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateThing {name}: {}", DisplayErrorContext(e)));
}

async fn attach(client: &Client, thing: &str, principal: &str) {
    client
        .attach_thing_principal()
        .thing_name(thing)
        .principal(principal)
        .send()
        .await
        .unwrap_or_else(|e| panic!("AttachThingPrincipal: {}", DisplayErrorContext(e)));
}

async fn principals_of(client: &Client, thing: &str, page: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let r = client
            .list_thing_principals()
            .thing_name(thing)
            .max_results(page)
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListThingPrincipals: {}", DisplayErrorContext(e)));
        out.extend(r.principals().iter().cloned());
        token = r.next_token().map(str::to_owned);
        if token.is_none() {
            return out;
        }
    }
}

async fn things_of(client: &Client, principal: &str, page: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let r = client
            .list_principal_things()
            .principal(principal)
            .max_results(page)
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListPrincipalThings: {}", DisplayErrorContext(e)));
        out.extend(r.things().iter().cloned());
        token = r.next_token().map(str::to_owned);
        if token.is_none() {
            return out;
        }
    }
}

async fn policy(client: &Client, name: &str) {
    client
        .create_policy()
        .policy_name(name)
        .policy_document(DOC)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreatePolicy {name}: {}", DisplayErrorContext(e)));
}

async fn attach_policy(client: &Client, name: &str, target: &str) {
    client
        .attach_policy()
        .policy_name(name)
        .target(target)
        .send()
        .await
        .unwrap_or_else(|e| panic!("AttachPolicy {name}: {}", DisplayErrorContext(e)));
}

async fn attached(client: &Client, target: &str, recursive: bool, page: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let r = client
            .list_attached_policies()
            .target(target)
            .recursive(recursive)
            .page_size(page)
            .set_marker(marker)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListAttachedPolicies: {}", DisplayErrorContext(e)));
        for p in r.policies() {
            assert_eq!(
                p.policy_arn(),
                Some(
                    format!(
                        "arn:aws:iot:{REGION}:{ACCOUNT_A}:policy/{}",
                        p.policy_name().unwrap()
                    )
                    .as_str()
                )
            );
            out.push(p.policy_name().unwrap().to_owned());
        }
        marker = r.next_marker().map(str::to_owned);
        if marker.is_none() {
            return out;
        }
    }
}

async fn targets(client: &Client, policy: &str) -> Vec<String> {
    client
        .list_targets_for_policy()
        .policy_name(policy)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListTargetsForPolicy: {}", DisplayErrorContext(e)))
        .targets()
        .to_vec()
}

fn group_arn(name: &str) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:thinggroup/{name}")
}

per_engine! {
#[tokio::test]
async fn attach_list_detach_thing_principals() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    thing(&client, "t1").await;
    thing(&client, "t2").await;
    let (_, arn) = create_certificate(&client, true).await;
    attach(&client, "t1", &arn).await;
    attach(&client, "t1", &arn).await; // attaching twice succeeds
    attach(&client, "t2", &arn).await;
    assert_eq!(principals_of(&client, "t1", 10).await, vec![arn.clone()]);
    assert_eq!(things_of(&client, &arn, 10).await, vec!["t1".to_owned(), "t2".to_owned()]);
    assert_eq!(things_of(&client, &arn, 1).await.len(), 2, "paged one by one");

    // DeleteThing refuses while a principal is attached (AWS's InvalidRequestException).
    let (failure, _) = expect_failure(client.delete_thing().thing_name("t1").send().await);
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["still attached to one or more principals"]);
    client
        .describe_thing()
        .thing_name("t1")
        .send()
        .await
        .expect("t1 is still there");

    client
        .detach_thing_principal()
        .thing_name("t1")
        .principal(&arn)
        .send()
        .await
        .expect("detach");
    // Detaching what is not attached succeeds.
    client
        .detach_thing_principal()
        .thing_name("t1")
        .principal(&arn)
        .send()
        .await
        .expect("detach again");
    assert!(principals_of(&client, "t1", 10).await.is_empty());
    assert_eq!(things_of(&client, &arn, 10).await, vec!["t2".to_owned()]);
    client.delete_thing().thing_name("t1").send().await.expect("now deletable");

    // Errors.
    let unknown_cert = format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{}", "0".repeat(64));
    let cases = [
        ("t2", unknown_cert.clone(), "ResourceNotFoundException", 404),
        ("nope", arn.clone(), "ResourceNotFoundException", 404),
        ("t2", "not-an-arn".to_owned(), "InvalidRequestException", 400),
        (
            "t2",
            format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:thing/t2"),
            "InvalidRequestException",
            400,
        ),
    ];
    for (thing_name, principal, code, status) in cases {
        let (failure, _) = expect_failure(
            client
                .attach_thing_principal()
                .thing_name(thing_name)
                .principal(principal)
                .send()
                .await,
        );
        failure.assert(code, status);
    }
    let (failure, _) = expect_failure(client.list_thing_principals().thing_name("nope").send().await);
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(client.list_principal_things().principal(&unknown_cert).send().await);
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(
        client
            .detach_thing_principal()
            .thing_name("t2")
            .principal(&unknown_cert)
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);

    // Account B sees none of it and cannot use A's certificate.
    let b = server.client_b();
    thing(&b, "t2").await;
    let (failure, _) = expect_failure(
        b.attach_thing_principal()
            .thing_name("t2")
            .principal(&arn)
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(b.list_principal_things().principal(&arn).send().await);
    failure.assert("ResourceNotFoundException", 404);
    assert!(principals_of(&b, "t2", 10).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn exclusive_attachment_and_paging() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    for t in ["a", "b", "c"] {
        thing(&client, t).await;
    }
    let (_, arn) = create_certificate(&client, false).await;
    client
        .attach_thing_principal()
        .thing_name("a")
        .principal(&arn)
        .thing_principal_type(ThingPrincipalType::ExclusiveThing)
        .send()
        .await
        .expect("exclusive attach");
    let (failure, _) = expect_failure(
        client
            .attach_thing_principal()
            .thing_name("b")
            .principal(&arn)
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
    // Re-attaching to the same thing, non-exclusively, is fine; then others may join.
    attach(&client, "a", &arn).await;
    attach(&client, "b", &arn).await;
    let (failure, _) = expect_failure(
        client
            .attach_thing_principal()
            .thing_name("c")
            .principal(&arn)
            .thing_principal_type(ThingPrincipalType::ExclusiveThing)
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);

    // Many principals on one thing, paged.
    let mut arns = Vec::new();
    for _ in 0..5 {
        let (_, arn) = create_certificate(&client, false).await;
        attach(&client, "c", &arn).await;
        arns.push(arn);
    }
    arns.sort();
    assert_eq!(principals_of(&client, "c", 2).await, arns);
    let (failure, _) = expect_failure(
        client
            .list_thing_principals()
            .thing_name("c")
            .next_token("bogus")
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
    server.stop().await;
}

#[tokio::test]
async fn policy_attachment_to_certificates_and_groups() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    for p in ["p-cert", "p-root", "p-child", "p-both"] {
        policy(&client, p).await;
    }
    let (_, cert) = create_certificate(&client, true).await;
    client.create_thing_group().thing_group_name("root").send().await.unwrap();
    client
        .create_thing_group()
        .thing_group_name("child")
        .parent_group_name("root")
        .send()
        .await
        .unwrap();

    attach_policy(&client, "p-cert", &cert).await;
    attach_policy(&client, "p-cert", &cert).await; // twice is fine
    attach_policy(&client, "p-both", &cert).await;
    attach_policy(&client, "p-root", &group_arn("root")).await;
    attach_policy(&client, "p-both", &group_arn("root")).await;
    attach_policy(&client, "p-child", &group_arn("child")).await;

    assert_eq!(attached(&client, &cert, false, 250).await, vec!["p-both", "p-cert"]);
    assert_eq!(attached(&client, &cert, false, 1).await, vec!["p-both", "p-cert"]);
    assert_eq!(attached(&client, &group_arn("child"), false, 250).await, vec!["p-child"]);
    assert_eq!(
        attached(&client, &group_arn("child"), true, 250).await,
        vec!["p-both", "p-child", "p-root"],
        "recursive: the ancestors' policies too, each once"
    );
    let mut both = targets(&client, "p-both").await;
    both.sort();
    let mut expected = vec![cert.clone(), group_arn("root")];
    expected.sort();
    assert_eq!(both, expected);

    // DeletePolicy refuses while attached.
    let (failure, _) = expect_failure(client.delete_policy().policy_name("p-cert").send().await);
    failure.assert("DeleteConflictException", 409);
    client
        .detach_policy()
        .policy_name("p-cert")
        .target(&cert)
        .send()
        .await
        .expect("detach");
    // Detaching again, or an unknown policy, succeeds (no ResourceNotFound in the model).
    client
        .detach_policy()
        .policy_name("p-cert")
        .target(&cert)
        .send()
        .await
        .expect("detach again");
    client
        .detach_policy()
        .policy_name("never-existed")
        .target(&cert)
        .send()
        .await
        .expect("detach unknown");
    client.delete_policy().policy_name("p-cert").send().await.expect("deletable now");

    // DeleteThingGroup detaches the group's policies.
    client.delete_thing_group().thing_group_name("child").send().await.unwrap();
    assert!(targets(&client, "p-child").await.is_empty());
    client.delete_policy().policy_name("p-child").send().await.expect("deletable");

    // Errors.
    let unknown_cert = format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{}", "0".repeat(64));
    for (policy_name, target, code, status) in [
        ("nope", cert.clone(), "ResourceNotFoundException", 404),
        ("p-root", unknown_cert.clone(), "ResourceNotFoundException", 404),
        ("p-root", group_arn("child"), "ResourceNotFoundException", 404),
        ("p-root", "us-east-1:cognito-identity".to_owned(), "InvalidRequestException", 400),
        (
            "p-root",
            format!("arn:aws:iot:{REGION}:{ACCOUNT_B}:cert/{}", "0".repeat(64)),
            "ResourceNotFoundException",
            404,
        ),
    ] {
        let (failure, _) = expect_failure(
            client
                .attach_policy()
                .policy_name(policy_name)
                .target(target)
                .send()
                .await,
        );
        failure.assert(code, status);
    }
    let (failure, _) = expect_failure(client.list_attached_policies().target(&unknown_cert).send().await);
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(client.list_targets_for_policy().policy_name("nope").send().await);
    failure.assert("ResourceNotFoundException", 404);

    // At most 10 policies on one target.
    let (_, crowded) = create_certificate(&client, false).await;
    for i in 0..10 {
        let name = format!("many-{i:02}");
        policy(&client, &name).await;
        attach_policy(&client, &name, &crowded).await;
    }
    policy(&client, "eleventh").await;
    let (failure, _) = expect_failure(
        client
            .attach_policy()
            .policy_name("eleventh")
            .target(&crowded)
            .send()
            .await,
    );
    failure.assert("LimitExceededException", 410);
    attach_policy(&client, "many-03", &crowded).await; // re-attaching one it has is fine
    assert_eq!(attached(&client, &crowded, false, 4).await.len(), 10);

    // Account B cannot see A's attachments.
    let b = server.client_b();
    let (failure, _) = expect_failure(b.list_attached_policies().target(&cert).send().await);
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(b.list_targets_for_policy().policy_name("p-root").send().await);
    failure.assert("ResourceNotFoundException", 404);
    server.stop().await;
}
}
