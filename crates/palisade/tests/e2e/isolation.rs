//! Accounts cannot see or touch each other's resources, even knowing names and ARNs.

use crate::common::*;
use aws_sdk_iot::types::MitigationActionType;

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
#[tokio::test]
async fn another_account_cannot_reach_an_action_by_name_or_arn() {
    let server = TestServer::start(ENGINE).await;
    let a = server.client_a();
    let b = server.client_b();
    let params = params_for(&MitigationActionType::AddThingsToThingGroup);
    let created = a
        .create_mitigation_action()
        .action_name("secret")
        .role_arn(ROLE_ARN)
        .action_params(params.clone())
        .tags(tag("owner", "a"))
        .send()
        .await
        .expect("create");
    let arn = created.action_arn().expect("arn").to_owned();
    let before = action_state(&a, "secret").await;

    let (failure, _) = expect_failure(
        b.describe_mitigation_action()
            .action_name("secret")
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(
        b.update_mitigation_action()
            .action_name("secret")
            .role_arn(ROLE_ARN_2)
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    assert!(list_all_names(&b).await.is_empty());
    let (failure, _) = expect_failure(b.list_tags_for_resource().resource_arn(&arn).send().await);
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(
        b.tag_resource()
            .resource_arn(&arn)
            .tags(tag("owner", "b"))
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(
        b.untag_resource()
            .resource_arn(&arn)
            .tag_keys("owner")
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    // Deleting an unknown name succeeds, and must not delete A's action.
    b.delete_mitigation_action()
        .action_name("secret")
        .send()
        .await
        .expect("B's delete is a no-op");

    let after = action_state(&a, "secret").await;
    assert_eq!(after, before, "A's action changed");
    assert_eq!(tags_of(&a, &arn).await, pairs(&[("owner", "a")]));
}

#[tokio::test]
async fn the_same_name_lives_independently_in_each_account() {
    let server = TestServer::start(ENGINE).await;
    let a = server.client_a();
    let b = server.client_b();
    let in_a = create_action(
        &a,
        "same",
        params_for(&MitigationActionType::UpdateDeviceCertificate),
    )
    .await;
    let in_b = b
        .create_mitigation_action()
        .action_name("same")
        .role_arn(ROLE_ARN_2)
        .action_params(params_for(&MitigationActionType::EnableIotLogging))
        .send()
        .await
        .expect("B creates the same name");
    assert_eq!(
        in_b.action_arn(),
        Some(action_arn(ACCOUNT_B, "same").as_str())
    );
    assert_ne!(in_b.action_id(), in_a.action_id());

    let da = action_state(&a, "same").await;
    let db = action_state(&b, "same").await;
    assert_eq!(
        da.action_type,
        Some(MitigationActionType::UpdateDeviceCertificate)
    );
    assert_eq!(db.action_type, Some(MitigationActionType::EnableIotLogging));
    assert_eq!(da.role_arn.as_deref(), Some(ROLE_ARN));
    assert_eq!(db.role_arn.as_deref(), Some(ROLE_ARN_2));

    // Each account's tags are its own, even on actions of the same name.
    a.tag_resource()
        .resource_arn(action_arn(ACCOUNT_A, "same"))
        .tags(tag("account", "a"))
        .send()
        .await
        .expect("tag A");
    assert!(tags_of(&b, &action_arn(ACCOUNT_B, "same")).await.is_empty());

    b.delete_mitigation_action()
        .action_name("same")
        .send()
        .await
        .expect("B deletes its own");
    assert_eq!(action_state(&a, "same").await, da);
    assert_eq!(list_all_names(&a).await, ["same"]);
    assert!(list_all_names(&b).await.is_empty());
    assert_eq!(
        tags_of(&a, &action_arn(ACCOUNT_A, "same")).await,
        pairs(&[("account", "a")])
    );
}

#[tokio::test]
async fn listings_show_only_the_callers_actions() {
    let server = TestServer::start(ENGINE).await;
    let a = server.client_a();
    let b = server.client_b();
    for n in ["a-1", "a-2", "a-3"] {
        create_action(
            &a,
            n,
            params_for(&MitigationActionType::PublishFindingToSns),
        )
        .await;
    }
    for n in ["b-1", "b-2"] {
        create_action(
            &b,
            n,
            params_for(&MitigationActionType::PublishFindingToSns),
        )
        .await;
    }
    assert_eq!(list_all_names(&a).await, ["a-1", "a-2", "a-3"]);
    assert_eq!(list_all_names(&b).await, ["b-1", "b-2"]);
}
}
