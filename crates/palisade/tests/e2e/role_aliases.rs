//! Role aliases through the real `aws-sdk-iot` client: the round trip, partial updates,
//! the model's bounds, paging, tagging and isolation between accounts.

use crate::common::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::create_role_alias::CreateRoleAliasError;
use aws_sdk_iot::operation::delete_role_alias::DeleteRoleAliasError;
use aws_sdk_iot::operation::describe_role_alias::DescribeRoleAliasError;
use aws_sdk_iot::types::RoleAliasDescription;
use aws_sdk_iot::Client;

fn alias_arn(account: &str, alias: &str) -> String {
    format!("arn:aws:iot:{REGION}:{account}:rolealias/{alias}")
}

async fn create_alias(client: &Client, alias: &str) {
    client
        .create_role_alias()
        .role_alias(alias)
        .role_arn(ROLE_ARN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating role alias {alias}: {}", DisplayErrorContext(e)));
}

async fn describe(client: &Client, alias: &str) -> RoleAliasDescription {
    client
        .describe_role_alias()
        .role_alias(alias)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describing {alias}: {}", DisplayErrorContext(e)))
        .role_alias_description
        .expect("roleAliasDescription")
}

async fn assert_alias_absent(client: &Client, alias: &str) {
    let (failure, err) =
        expect_failure(client.describe_role_alias().role_alias(alias).send().await);
    failure.assert("ResourceNotFoundException", 404);
    assert!(
        matches!(err, DescribeRoleAliasError::ResourceNotFoundException(_)),
        "{err:?}"
    );
}

async fn all_aliases(client: &Client, page_size: i32, ascending: bool) -> Vec<String> {
    client
        .list_role_aliases()
        .ascending_order(ascending)
        .into_paginator()
        .page_size(page_size)
        .items()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("listing role aliases: {}", DisplayErrorContext(e)))
}

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
#[tokio::test]
async fn create_describe_update_list_delete_round_trip() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let arn = alias_arn(ACCOUNT_A, "camera-role");
    let created = client
        .create_role_alias()
        .role_alias("camera-role")
        .role_arn(ROLE_ARN)
        .tags(tag("team", "fleet"))
        .send()
        .await
        .expect("create");
    assert_eq!(created.role_alias(), Some("camera-role"));
    assert_eq!(created.role_alias_arn(), Some(arn.as_str()));

    let d = describe(&client, "camera-role").await;
    assert_eq!(d.role_alias(), Some("camera-role"));
    assert_eq!(d.role_alias_arn(), Some(arn.as_str()));
    assert_eq!(d.role_arn(), Some(ROLE_ARN));
    assert_eq!(d.owner(), Some(ACCOUNT_A));
    assert_eq!(d.credential_duration_seconds(), Some(3600), "AWS's default");
    let created_at = d.creation_date().expect("creationDate").to_millis().expect("ms");
    assert_eq!(d.last_modified_date().expect("lastModifiedDate").to_millis().expect("ms"), created_at);
    assert_eq!(tags_of(&client, &arn).await, pairs(&[("team", "fleet")]));

    // Each member alone, then nothing (which changes nothing).
    let updated = client
        .update_role_alias()
        .role_alias("camera-role")
        .role_arn(ROLE_ARN_2)
        .send()
        .await
        .expect("update role");
    assert_eq!(updated.role_alias(), Some("camera-role"));
    assert_eq!(updated.role_alias_arn(), Some(arn.as_str()));
    let d = describe(&client, "camera-role").await;
    assert_eq!((d.role_arn(), d.credential_duration_seconds()), (Some(ROLE_ARN_2), Some(3600)));
    client
        .update_role_alias()
        .role_alias("camera-role")
        .credential_duration_seconds(900)
        .send()
        .await
        .expect("update duration");
    let d = describe(&client, "camera-role").await;
    assert_eq!((d.role_arn(), d.credential_duration_seconds()), (Some(ROLE_ARN_2), Some(900)));
    assert_eq!(d.creation_date().expect("creationDate").to_millis().expect("ms"), created_at);
    client
        .update_role_alias()
        .role_alias("camera-role")
        .send()
        .await
        .expect("empty update");
    assert_eq!(describe(&client, "camera-role").await, d);

    assert_eq!(all_aliases(&client, 10, true).await, vec!["camera-role".to_owned()]);
    client
        .delete_role_alias()
        .role_alias("camera-role")
        .send()
        .await
        .expect("delete");
    assert_alias_absent(&client, "camera-role").await;
    assert!(all_aliases(&client, 10, true).await.is_empty());
    let (f, _) = expect_failure(client.list_tags_for_resource().resource_arn(&arn).send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, err) = expect_failure(client.delete_role_alias().role_alias("camera-role").send().await);
    f.assert("ResourceNotFoundException", 404);
    assert!(matches!(err, DeleteRoleAliasError::ResourceNotFoundException(_)), "{err:?}");
    let (f, _) = expect_failure(
        client
            .update_role_alias()
            .role_alias("camera-role")
            .role_arn(ROLE_ARN)
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
}

#[tokio::test]
async fn duplicates_and_out_of_range_durations_are_refused() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    client
        .create_role_alias()
        .role_alias("taken")
        .role_arn(ROLE_ARN)
        .credential_duration_seconds(43_200)
        .tags(tag("owner", "first"))
        .send()
        .await
        .expect("create");
    let (f, err) = expect_failure(
        client
            .create_role_alias()
            .role_alias("taken")
            .role_arn(ROLE_ARN_2)
            .tags(tag("owner", "second"))
            .send()
            .await,
    );
    f.assert("ResourceAlreadyExistsException", 409).mentions(&["taken"]);
    match err {
        CreateRoleAliasError::ResourceAlreadyExistsException(e) => {
            assert_eq!(e.resource_arn(), Some(alias_arn(ACCOUNT_A, "taken").as_str()));
        }
        other => panic!("{other:?}"),
    }
    let d = describe(&client, "taken").await;
    assert_eq!((d.role_arn(), d.credential_duration_seconds()), (Some(ROLE_ARN), Some(43_200)));
    assert_eq!(tags_of(&client, &alias_arn(ACCOUNT_A, "taken")).await, pairs(&[("owner", "first")]));

    for seconds in [899, 43_201, 0, -1] {
        let (f, _) = expect_failure(
            client
                .create_role_alias()
                .role_alias("short")
                .role_arn(ROLE_ARN)
                .credential_duration_seconds(seconds)
                .send()
                .await,
        );
        f.assert("InvalidRequestException", 400).mentions(&["credentialDurationSeconds"]);
        let (f, _) = expect_failure(
            client
                .update_role_alias()
                .role_alias("taken")
                .credential_duration_seconds(seconds)
                .send()
                .await,
        );
        f.assert("InvalidRequestException", 400);
    }
    assert_alias_absent(&client, "short").await;
    assert_eq!(describe(&client, "taken").await.credential_duration_seconds(), Some(43_200));
    // The model's alias pattern has no dots.
    let (f, _) = expect_failure(
        client
            .create_role_alias()
            .role_alias("no.dots")
            .role_arn(ROLE_ARN)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
}

#[tokio::test]
async fn list_role_aliases_pages_in_alias_order_both_ways() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let aliases = ["m-7", "Zeta", "alpha", "b_2", "b-1", "gamma", "delta@1"];
    for alias in aliases {
        create_alias(&client, alias).await;
    }
    let mut sorted: Vec<String> = aliases.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    let mut reversed = sorted.clone();
    reversed.reverse();
    for page in [1, 2, 3, 7, 250] {
        assert_eq!(all_aliases(&client, page, true).await, sorted, "page {page}");
        assert_eq!(all_aliases(&client, page, false).await, reversed, "page {page}");
    }
    let first = client.list_role_aliases().page_size(2).send().await.expect("page 1");
    assert_eq!(first.role_aliases(), &sorted[..2]);
    let marker = first.next_marker().expect("nextMarker");
    let (f, _) = expect_failure(
        client
            .list_role_aliases()
            .marker(marker)
            .ascending_order(false)
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
    let (f, _) = expect_failure(client.list_role_aliases().marker("AAAA").send().await);
    f.assert("InvalidRequestException", 400);
    // A policy listing's marker is not a role alias listing's.
    create_policy_for_marker(&client).await;
    let policies = client.list_policies().page_size(1).send().await.expect("policies");
    let (f, _) = expect_failure(
        client
            .list_role_aliases()
            .marker(policies.next_marker().expect("nextMarker"))
            .send()
            .await,
    );
    f.assert("InvalidRequestException", 400);
}

#[tokio::test]
async fn role_aliases_are_taggable_and_private_to_their_account() {
    let server = TestServer::start(ENGINE).await;
    let a = server.client_a();
    let b = server.client_b();
    create_alias(&a, "private").await;
    let arn = alias_arn(ACCOUNT_A, "private");
    a.tag_resource()
        .resource_arn(&arn)
        .tags(tag("k", "v"))
        .send()
        .await
        .expect("tag");
    assert_eq!(tags_of(&a, &arn).await, pairs(&[("k", "v")]));

    assert_alias_absent(&b, "private").await;
    let (f, _) = expect_failure(
        b.update_role_alias()
            .role_alias("private")
            .role_arn(ROLE_ARN_2)
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(b.delete_role_alias().role_alias("private").send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(b.list_tags_for_resource().resource_arn(&arn).send().await);
    f.assert("ResourceNotFoundException", 404);
    let (f, _) = expect_failure(
        b.untag_resource()
            .resource_arn(&arn)
            .tag_keys("k")
            .send()
            .await,
    );
    f.assert("ResourceNotFoundException", 404);
    assert!(all_aliases(&b, 10, true).await.is_empty());

    create_alias(&b, "private").await;
    assert_eq!(describe(&b, "private").await.owner(), Some(ACCOUNT_B));
    assert_eq!(describe(&a, "private").await.role_arn(), Some(ROLE_ARN));
    assert_eq!(tags_of(&a, &arn).await, pairs(&[("k", "v")]));
}
}

async fn create_policy_for_marker(client: &Client) {
    for name in ["p1", "p2"] {
        client
            .create_policy()
            .policy_name(name)
            .policy_document(
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}"#,
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating policy {name}: {}", DisplayErrorContext(e)));
    }
}
