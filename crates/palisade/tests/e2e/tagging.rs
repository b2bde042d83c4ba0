//! TagResource, UntagResource and ListTagsForResource on mitigation actions.

use crate::common::*;
use aws_sdk_iot::operation::list_tags_for_resource::ListTagsForResourceError;
use aws_sdk_iot::operation::tag_resource::TagResourceError;
use aws_sdk_iot::operation::untag_resource::UntagResourceError;
use aws_sdk_iot::types::{MitigationActionType, Tag};
use aws_sdk_iot::Client;

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
/// Creates `name` in the client's account with `tags`; returns its ARN.
async fn create_tagged(client: &Client, name: &str, tags: &[(&str, &str)]) -> String {
    let out = client
        .create_mitigation_action()
        .action_name(name)
        .role_arn(ROLE_ARN)
        .action_params(params_for(&MitigationActionType::PublishFindingToSns))
        .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
        .send()
        .await
        .expect("create with tags");
    out.action_arn().expect("arn").to_owned()
}

async fn tag_resource(client: &Client, arn: &str, tags: Vec<Tag>) {
    client
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(tags))
        .send()
        .await
        .expect("tag resource");
}

async fn untag_resource(client: &Client, arn: &str, keys: &[&str]) {
    client
        .untag_resource()
        .resource_arn(arn)
        .set_tag_keys(Some(keys.iter().map(|k| k.to_string()).collect()))
        .send()
        .await
        .expect("untag resource");
}

/// Every tagging operation on `arn` answers ResourceNotFoundException (404).
async fn assert_tagging_not_found(client: &Client, arn: &str) {
    let (failure, err) = expect_failure(
        client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    assert!(
        matches!(err, ListTagsForResourceError::ResourceNotFoundException(_)),
        "{err:?}"
    );
    let (failure, err) = expect_failure(
        client
            .tag_resource()
            .resource_arn(arn)
            .tags(tag("k", "v"))
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    assert!(
        matches!(err, TagResourceError::ResourceNotFoundException(_)),
        "{err:?}"
    );
    let (failure, err) = expect_failure(
        client
            .untag_resource()
            .resource_arn(arn)
            .tag_keys("k")
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    assert!(
        matches!(err, UntagResourceError::ResourceNotFoundException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn create_tag_overwrite_untag() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let arn = create_tagged(&client, "tagged", &[("env", "prod"), ("team", "sec")]).await;
    assert_eq!(
        tags_of(&client, &arn).await,
        pairs(&[("env", "prod"), ("team", "sec")])
    );

    tag_resource(&client, &arn, vec![tag("env", "dev"), tag("owner", "")]).await;
    assert_eq!(
        tags_of(&client, &arn).await,
        pairs(&[("env", "dev"), ("owner", ""), ("team", "sec")])
    );

    untag_resource(&client, &arn, &["team", "never-set"]).await;
    assert_eq!(
        tags_of(&client, &arn).await,
        pairs(&[("env", "dev"), ("owner", "")])
    );
    untag_resource(&client, &arn, &["env", "owner"]).await;
    assert!(tags_of(&client, &arn).await.is_empty());
}

#[tokio::test]
async fn an_action_created_without_tags_has_none() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let out = create_action(
        &client,
        "plain",
        params_for(&MitigationActionType::UpdateDeviceCertificate),
    )
    .await;
    assert!(tags_of(&client, out.action_arn().expect("arn"))
        .await
        .is_empty());
}

#[tokio::test]
async fn unknown_arn_is_404() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    assert_tagging_not_found(&client, &action_arn(ACCOUNT_A, "missing")).await;
}

#[tokio::test]
async fn another_accounts_action_is_404_and_keeps_its_tags() {
    let server = TestServer::start(ENGINE).await;
    let a = server.client_a();
    let arn = create_tagged(&a, "mine", &[("owner", "a")]).await;
    assert_tagging_not_found(&server.client_b(), &arn).await;
    assert_eq!(tags_of(&a, &arn).await, pairs(&[("owner", "a")]));
}

#[tokio::test]
async fn recreating_a_deleted_action_does_not_revive_its_tags() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let arn = create_tagged(&client, "phoenix", &[("generation", "1")]).await;
    client
        .delete_mitigation_action()
        .action_name("phoenix")
        .send()
        .await
        .expect("delete");
    assert_tagging_not_found(&client, &arn).await;

    let again = create_action(
        &client,
        "phoenix",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    assert_eq!(again.action_arn(), Some(arn.as_str()));
    assert!(tags_of(&client, &arn).await.is_empty());
}

#[tokio::test]
async fn malformed_arn_is_400() {
    let server = TestServer::start(ENGINE).await;
    let (failure, err) = expect_failure(
        server
            .client_a()
            .list_tags_for_resource()
            .resource_arn("not-an-arn")
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["not-an-arn"]);
    assert!(
        matches!(err, ListTagsForResourceError::InvalidRequestException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_key_given_twice_is_400_and_nothing_is_written() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let arn = create_tagged(&client, "dup", &[]).await;
    let (failure, _) = expect_failure(
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags(tag("k", "1"))
            .tags(tag("k", "2"))
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["'k'"]);
    assert!(tags_of(&client, &arn).await.is_empty());
}

#[tokio::test]
async fn more_than_fifty_tags_is_refused() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let fifty: Vec<(String, String)> = (0..50).map(|i| (format!("k{i:02}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = fifty
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let arn = create_tagged(&client, "full", &refs).await;
    assert_eq!(tags_of(&client, &arn).await, fifty);

    // Overwriting an existing key keeps the count at 50 and is fine.
    tag_resource(&client, &arn, vec![tag("k00", "w")]).await;

    let (failure, err) = expect_failure(
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags(tag("k50", "v"))
            .send()
            .await,
    );
    failure.assert("LimitExceededException", 410);
    assert!(
        matches!(err, TagResourceError::LimitExceededException(_)),
        "{err:?}"
    );
    let tags = tags_of(&client, &arn).await;
    assert_eq!(tags.len(), 50);
    assert!(!tags.iter().any(|(k, _)| k == "k50"));
}

#[tokio::test]
async fn tag_lengths_count_characters_and_keys_follow_the_pattern() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let arn = create_tagged(&client, "unicode", &[]).await;
    let longest = "😀".repeat(256); // 256 characters, 1024 bytes
    tag_resource(&client, &arn, vec![tag("ключ с пробелом", &longest)]).await;
    assert_eq!(
        tags_of(&client, &arn).await,
        vec![("ключ с пробелом".to_owned(), longest)]
    );

    let (failure, _) = expect_failure(
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags(tag("k", &"ü".repeat(257)))
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["Value", "length less than or equal to 256"]);
    let (failure, _) = expect_failure(
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags(tag("a!b", "v"))
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["tags.1.member.Key", "regular expression pattern"]);
    assert_eq!(tags_of(&client, &arn).await.len(), 1);
}
}
