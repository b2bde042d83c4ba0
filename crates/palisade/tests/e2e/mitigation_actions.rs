//! CreateMitigationAction and its siblings through the real `aws-sdk-iot` client: the
//! round trip of every action type, and every error the API promises.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;
use aws_sdk_iot::operation::create_mitigation_action::CreateMitigationActionError;
use aws_sdk_iot::operation::describe_mitigation_action::DescribeMitigationActionError;
use aws_sdk_iot::operation::update_mitigation_action::UpdateMitigationActionError;
use aws_sdk_iot::primitives::DateTime;
use aws_sdk_iot::types::{LogLevel, MitigationActionParams, MitigationActionType};
use aws_sdk_iot::Client;

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
/// Creates an action that must be refused; returns what the client saw.
async fn create_failure(
    client: &Client,
    name: &str,
    role_arn: &str,
    params: MitigationActionParams,
) -> (Failure, CreateMitigationActionError) {
    expect_failure(
        client
            .create_mitigation_action()
            .action_name(name)
            .role_arn(role_arn)
            .action_params(params)
            .send()
            .await,
    )
}

/// Asserts `name` does not exist: DescribeMitigationAction answers 404.
async fn assert_absent(client: &Client, name: &str) {
    let (failure, err) = expect_failure(
        client
            .describe_mitigation_action()
            .action_name(name)
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    assert!(
        matches!(
            err,
            DescribeMitigationActionError::ResourceNotFoundException(_)
        ),
        "{err:?}"
    );
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

/// Create, describe, update (role and params, to another type), list, delete, describe.
async fn round_trip(action_type: MitigationActionType) {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let name = format!("crud-{}", action_type.as_str().to_lowercase());
    let params = params_for(&action_type);
    let before = now_millis();

    let created = create_action(&client, &name, params.clone()).await;
    let arn = action_arn(ACCOUNT_A, &name);
    assert_eq!(created.action_arn(), Some(arn.as_str()));
    let id = created.action_id().expect("actionId").to_owned();
    assert!(is_uuid(&id), "actionId {id:?} is not a UUID");

    let d = describe_action(&client, &name).await;
    assert_eq!(d.action_name(), Some(name.as_str()));
    assert_eq!(d.action_type(), Some(&action_type));
    assert_eq!(d.action_arn(), Some(arn.as_str()));
    assert_eq!(d.action_id(), Some(id.as_str()));
    assert_eq!(d.role_arn(), Some(ROLE_ARN));
    assert_eq!(d.action_params(), Some(&params));
    let created_at = millis(d.creation_date());
    assert_eq!(millis(d.last_modified_date()), created_at);
    // Allow for second precision on the wire.
    assert!(
        (before - 1000..=now_millis() + 1000).contains(&created_at),
        "creationDate {created_at} is not about now ({before})"
    );

    let all = all_action_types();
    let index = all
        .iter()
        .position(|t| *t == action_type)
        .expect("known type");
    let new_type = all[(index + 1) % all.len()].clone();
    let new_params = params_for(&new_type);
    let updated = client
        .update_mitigation_action()
        .action_name(&name)
        .role_arn(ROLE_ARN_2)
        .action_params(new_params.clone())
        .send()
        .await
        .expect("update");
    assert_eq!(updated.action_arn(), Some(arn.as_str()));
    assert_eq!(updated.action_id(), Some(id.as_str()));

    let d = describe_action(&client, &name).await;
    assert_eq!(d.role_arn(), Some(ROLE_ARN_2));
    assert_eq!(d.action_type(), Some(&new_type));
    assert_eq!(d.action_params(), Some(&new_params));
    assert_eq!(d.action_id(), Some(id.as_str()));
    assert_eq!(
        millis(d.creation_date()),
        created_at,
        "creationDate changed"
    );
    assert!(millis(d.last_modified_date()) >= created_at);

    assert_eq!(list_all_names(&client).await, vec![name.clone()]);

    client
        .delete_mitigation_action()
        .action_name(&name)
        .send()
        .await
        .expect("delete");
    assert_absent(&client, &name).await;
    assert!(list_all_names(&client).await.is_empty());
}

#[tokio::test]
async fn round_trip_update_device_certificate() {
    round_trip(MitigationActionType::UpdateDeviceCertificate).await;
}

#[tokio::test]
async fn round_trip_update_ca_certificate() {
    round_trip(MitigationActionType::UpdateCaCertificate).await;
}

#[tokio::test]
async fn round_trip_add_things_to_thing_group() {
    round_trip(MitigationActionType::AddThingsToThingGroup).await;
}

#[tokio::test]
async fn round_trip_replace_default_policy_version() {
    round_trip(MitigationActionType::ReplaceDefaultPolicyVersion).await;
}

#[tokio::test]
async fn round_trip_enable_iot_logging() {
    round_trip(MitigationActionType::EnableIotLogging).await;
}

#[tokio::test]
async fn round_trip_publish_finding_to_sns() {
    round_trip(MitigationActionType::PublishFindingToSns).await;
}

#[tokio::test]
async fn update_changes_only_what_it_names() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let groups = MitigationActionParams::builder()
        .add_things_to_thing_group_params(thing_groups(&["a", "b"], false))
        .build();
    create_action(&client, "partial", groups.clone()).await;

    // Role only: params stay.
    client
        .update_mitigation_action()
        .action_name("partial")
        .role_arn(ROLE_ARN_2)
        .send()
        .await
        .expect("update role");
    let d = describe_action(&client, "partial").await;
    assert_eq!(d.role_arn(), Some(ROLE_ARN_2));
    assert_eq!(d.action_params(), Some(&groups));

    // Params only, same type: role stays.
    let regrouped = MitigationActionParams::builder()
        .add_things_to_thing_group_params(thing_groups(&["c"], true))
        .build();
    client
        .update_mitigation_action()
        .action_name("partial")
        .action_params(regrouped.clone())
        .send()
        .await
        .expect("update params");
    let d = describe_action(&client, "partial").await;
    assert_eq!(d.role_arn(), Some(ROLE_ARN_2));
    assert_eq!(d.action_params(), Some(&regrouped));
    assert_eq!(
        d.action_type(),
        Some(&MitigationActionType::AddThingsToThingGroup)
    );
}

#[tokio::test]
async fn update_is_validated_like_create() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let params = params_for(&MitigationActionType::EnableIotLogging);
    create_action(&client, "logging", params.clone()).await;

    let (failure, err) = expect_failure(
        client
            .update_mitigation_action()
            .action_name("logging")
            .action_params(
                MitigationActionParams::builder()
                    .enable_io_t_logging_params(logging(LogLevel::Disabled))
                    .build(),
            )
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
    assert!(
        matches!(err, UpdateMitigationActionError::InvalidRequestException(_)),
        "{err:?}"
    );
    let (failure, _) = expect_failure(
        client
            .update_mitigation_action()
            .action_name("logging")
            .role_arn("short")
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["roleArn"]);
    let d = describe_action(&client, "logging").await;
    assert_eq!(d.action_params(), Some(&params));
    assert_eq!(d.role_arn(), Some(ROLE_ARN));
}

#[tokio::test]
async fn delete_of_unknown_name_succeeds() {
    let server = TestServer::start(ENGINE).await;
    server
        .client_a()
        .delete_mitigation_action()
        .action_name("never-created")
        .send()
        .await
        .expect("deleting an unknown action succeeds");
}

#[tokio::test]
async fn duplicate_name_is_409_with_the_existing_arn() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let created = create_action(
        &client,
        "twice",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;

    let (failure, err) = create_failure(
        &client,
        "twice",
        ROLE_ARN_2,
        params_for(&MitigationActionType::UpdateDeviceCertificate),
    )
    .await;
    failure
        .assert("ResourceAlreadyExistsException", 409)
        .mentions(&["twice"]);
    let CreateMitigationActionError::ResourceAlreadyExistsException(e) = err else {
        panic!("expected ResourceAlreadyExistsException, got {err:?}");
    };
    assert_eq!(
        e.resource_arn(),
        Some(action_arn(ACCOUNT_A, "twice").as_str())
    );
    assert_eq!(e.resource_id(), created.action_id());

    // The original is untouched.
    let d = describe_action(&client, "twice").await;
    assert_eq!(d.role_arn(), Some(ROLE_ARN));
    assert_eq!(
        d.action_type(),
        Some(&MitigationActionType::PublishFindingToSns)
    );
}

#[tokio::test]
async fn describe_unknown_is_404() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let (failure, _) = expect_failure(
        client
            .describe_mitigation_action()
            .action_name("missing")
            .send()
            .await,
    );
    failure.mentions(&["missing"]);
    assert_absent(&client, "missing").await;
}

#[tokio::test]
async fn update_unknown_is_404() {
    let server = TestServer::start(ENGINE).await;
    let (failure, err) = expect_failure(
        server
            .client_a()
            .update_mitigation_action()
            .action_name("missing")
            .role_arn(ROLE_ARN_2)
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    assert!(
        matches!(
            err,
            UpdateMitigationActionError::ResourceNotFoundException(_)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_101st_action_is_410_and_the_100_remain() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let types = all_action_types();
    for i in 0..100 {
        create_action(&client, &format!("limit-{i:03}"), params_for(&types[i % 6])).await;
    }

    let (failure, err) = create_failure(
        &client,
        "limit-100",
        ROLE_ARN,
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    failure.assert("LimitExceededException", 410);
    assert!(
        matches!(err, CreateMitigationActionError::LimitExceededException(_)),
        "{err:?}"
    );
    assert_absent(&client, "limit-100").await;
    let names = list_all_names(&client).await;
    let expected: Vec<String> = (0..100).map(|i| format!("limit-{i:03}")).collect();
    assert_eq!(names, expected);

    // The quota is per account, and freeing a slot makes room again.
    create_action(
        &server.client_b(),
        "limit-100",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    client
        .delete_mitigation_action()
        .action_name("limit-000")
        .send()
        .await
        .expect("delete");
    create_action(
        &client,
        "limit-100",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
}

#[tokio::test]
async fn enable_logging_with_disabled_level_is_400() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let params = MitigationActionParams::builder()
        .enable_io_t_logging_params(logging(LogLevel::Disabled))
        .build();
    let (failure, err) = create_failure(&client, "logging-off", ROLE_ARN, params).await;
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["logLevel", "DISABLED"]);
    assert!(
        matches!(err, CreateMitigationActionError::InvalidRequestException(_)),
        "{err:?}"
    );
    assert_absent(&client, "logging-off").await;
}

#[tokio::test]
async fn two_params_members_is_400() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let sns = params_for(&MitigationActionType::PublishFindingToSns);
    let two = MitigationActionParams::builder()
        .set_publish_finding_to_sns_params(sns.publish_finding_to_sns_params)
        .enable_io_t_logging_params(logging(LogLevel::Info))
        .build();
    let (failure, _) = create_failure(&client, "two", ROLE_ARN, two).await;
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["exactly one"]);
    assert_absent(&client, "two").await;
}

#[tokio::test]
async fn empty_params_is_400() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let none = MitigationActionParams::builder().build();
    let (failure, _) = create_failure(&client, "none", ROLE_ARN, none).await;
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["actionParams"]);
    assert_absent(&client, "none").await;
}

#[tokio::test]
async fn eleven_thing_groups_is_400() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let names: Vec<String> = (0..11).map(|i| format!("group-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let params = MitigationActionParams::builder()
        .add_things_to_thing_group_params(thing_groups(&refs, false))
        .build();
    let (failure, _) = create_failure(&client, "groups", ROLE_ARN, params).await;
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["thingGroupNames", "less than or equal to 10"]);
    assert_absent(&client, "groups").await;

    // Ten is fine.
    let params = MitigationActionParams::builder()
        .add_things_to_thing_group_params(thing_groups(&refs[..10], false))
        .build();
    create_action(&client, "groups", params).await;
}

#[tokio::test]
async fn invalid_name_is_400_naming_the_member_and_the_rule() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let params = params_for(&MitigationActionType::UpdateDeviceCertificate);
    let (failure, err) = create_failure(&client, "bad name!", ROLE_ARN, params.clone()).await;
    failure.assert("InvalidRequestException", 400).mentions(&[
        "actionName",
        "regular expression pattern",
        "bad name!",
    ]);
    assert!(
        matches!(err, CreateMitigationActionError::InvalidRequestException(_)),
        "{err:?}"
    );

    let long = "n".repeat(129);
    let (failure, _) = create_failure(&client, &long, ROLE_ARN, params).await;
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["actionName", "length less than or equal to 128"]);
    assert!(list_all_names(&client).await.is_empty());
}

#[tokio::test]
async fn short_role_arn_is_400_naming_role_arn() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let params = params_for(&MitigationActionType::UpdateCaCertificate);
    let short = "arn:aws:iam::1:role"; // 19 characters
    assert_eq!(short.len(), 19);
    let (failure, _) = create_failure(&client, "short-role", short, params).await;
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["roleArn", "length greater than or equal to 20"]);
    assert_absent(&client, "short-role").await;
}

#[tokio::test]
async fn every_violation_is_reported_at_once() {
    let server = TestServer::start(ENGINE).await;
    let (failure, _) = create_failure(
        &server.client_a(),
        "bad name!",
        "short",
        params_for(&MitigationActionType::UpdateCaCertificate),
    )
    .await;
    failure.assert("InvalidRequestException", 400).mentions(&[
        "2 validation errors detected",
        "actionName",
        "roleArn",
    ]);
}

#[tokio::test]
async fn timestamps_survive_a_slow_update() {
    // lastModifiedDate moves forward on update while creationDate stays; a short pause
    // makes the two distinguishable at the wire's millisecond precision.
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_action(
        &client,
        "clock",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    let first = describe_action(&client, "clock").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    client
        .update_mitigation_action()
        .action_name("clock")
        .role_arn(ROLE_ARN_2)
        .send()
        .await
        .expect("update");
    let second = describe_action(&client, "clock").await;
    assert_eq!(
        millis(second.creation_date()),
        millis(first.creation_date())
    );
    assert!(
        millis(second.last_modified_date()) > millis(first.last_modified_date()),
        "lastModifiedDate did not advance: {:?} -> {:?}",
        first.last_modified_date(),
        second.last_modified_date()
    );
}

#[tokio::test]
async fn an_update_that_changes_nothing_keeps_last_modified_date() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let created = create_action(
        &client,
        "noop",
        params_for(&MitigationActionType::UpdateCaCertificate),
    )
    .await;
    let before = action_state(&client, "noop").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let out = client
        .update_mitigation_action()
        .action_name("noop")
        .send()
        .await
        .expect("no-op update");
    assert_eq!(out.action_arn(), created.action_arn());
    assert_eq!(out.action_id(), created.action_id());
    assert_eq!(action_state(&client, "noop").await, before);
}

/// Sends one create per name, all at once; returns how many succeeded and the sorted
/// error codes of the rest.
async fn create_concurrently(
    client: &Client,
    names: impl Iterator<Item = String>,
) -> (usize, Vec<String>) {
    let tasks: Vec<_> = names
        .map(|name| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .create_mitigation_action()
                    .action_name(name)
                    .role_arn(ROLE_ARN)
                    .action_params(params_for(&MitigationActionType::PublishFindingToSns))
                    .send()
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    let mut codes = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => codes.push(
                aws_sdk_iot::error::ProvideErrorMetadata::code(&e)
                    .unwrap_or("(no code)")
                    .to_owned(),
            ),
        }
    }
    codes.sort();
    (ok, codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name_let_exactly_one_win() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let (ok, codes) = create_concurrently(&client, (0..16).map(|_| "contested".to_owned())).await;
    assert_eq!(ok, 1, "winners: {ok}, losers: {codes:?}");
    assert_eq!(codes, vec!["ResourceAlreadyExistsException"; 15]);
    assert_eq!(list_all_names(&client).await, ["contested"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_exceed_the_limit() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    for i in 0..95 {
        create_action(
            &client,
            &format!("base-{i:03}"),
            params_for(&MitigationActionType::PublishFindingToSns),
        )
        .await;
    }
    let (ok, codes) = create_concurrently(&client, (0..20).map(|i| format!("race-{i:02}"))).await;
    assert_eq!(ok, 5, "losers: {codes:?}");
    assert_eq!(codes, vec!["LimitExceededException"; 15]);
    assert_eq!(list_all_names(&client).await.len(), 100);
}
}
