//! Static thing groups, their hierarchy, tags and membership through the real
//! `aws-sdk-iot` client.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::add_thing_to_thing_group::AddThingToThingGroupError;
use aws_sdk_iot::operation::create_thing_group::{CreateThingGroupError, CreateThingGroupOutput};
use aws_sdk_iot::operation::delete_thing_group::DeleteThingGroupError;
use aws_sdk_iot::operation::describe_thing_group::{
    DescribeThingGroupError, DescribeThingGroupOutput,
};
use aws_sdk_iot::operation::update_thing_group::UpdateThingGroupError;
use aws_sdk_iot::types::{AttributePayload, ThingGroupProperties};
use aws_sdk_iot::Client;

fn group_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iot:{REGION}:{account}:thinggroup/{name}")
}

fn thing_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iot:{REGION}:{account}:thing/{name}")
}

fn properties(
    description: Option<&str>,
    attrs: &[(&str, &str)],
    merge: bool,
) -> ThingGroupProperties {
    let payload = AttributePayload::builder()
        .set_attributes(Some(
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
        .merge(merge)
        .build();
    ThingGroupProperties::builder()
        .set_thing_group_description(description.map(str::to_owned))
        .attribute_payload(payload)
        .build()
}

async fn create_group(client: &Client, name: &str, parent: Option<&str>) -> CreateThingGroupOutput {
    client
        .create_thing_group()
        .thing_group_name(name)
        .set_parent_group_name(parent.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating group {name}: {}", DisplayErrorContext(e)))
}

async fn describe_group(client: &Client, name: &str) -> DescribeThingGroupOutput {
    client
        .describe_thing_group()
        .thing_group_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describing group {name}: {}", DisplayErrorContext(e)))
}

async fn assert_no_group(client: &Client, name: &str) {
    let (failure, err) = expect_failure(
        client
            .describe_thing_group()
            .thing_group_name(name)
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&[name]);
    assert!(
        matches!(err, DescribeThingGroupError::ResourceNotFoundException(_)),
        "{err:?}"
    );
}

async fn create_thing(client: &Client, name: &str) {
    client
        .create_thing()
        .thing_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating thing {name}: {}", DisplayErrorContext(e)));
}

async fn add(client: &Client, thing: &str, group: &str) {
    client
        .add_thing_to_thing_group()
        .thing_name(thing)
        .thing_group_name(group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("adding {thing} to {group}: {}", DisplayErrorContext(e)));
}

/// Names and ARNs of the groups `thing` is in, via the SDK paginator.
async fn groups_of(client: &Client, thing: &str) -> Vec<(String, String)> {
    client
        .list_thing_groups_for_thing()
        .thing_name(thing)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("groups of {thing}: {}", DisplayErrorContext(e)))
        .into_iter()
        .map(|g| {
            (
                g.group_name.expect("groupName"),
                g.group_arn.expect("groupArn"),
            )
        })
        .collect()
}

async fn group_names_of(client: &Client, thing: &str) -> Vec<String> {
    groups_of(client, thing)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Things in `group` (and with `recursive` its descendants), via the paginator in
/// pages of `max`.
async fn things_in(client: &Client, group: &str, recursive: bool, max: i32) -> Vec<String> {
    client
        .list_things_in_thing_group()
        .thing_group_name(group)
        .recursive(recursive)
        .max_results(max)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("things in {group}: {}", DisplayErrorContext(e)))
}

/// Group names from ListThingGroups, via the paginator in pages of `max`.
async fn list_groups(
    client: &Client,
    parent: Option<&str>,
    recursive: Option<bool>,
    prefix: Option<&str>,
    max: i32,
) -> Vec<String> {
    client
        .list_thing_groups()
        .set_parent_group(parent.map(str::to_owned))
        .set_recursive(recursive)
        .set_name_prefix_filter(prefix.map(str::to_owned))
        .max_results(max)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("listing groups: {}", DisplayErrorContext(e)))
        .into_iter()
        .map(|g| g.group_name.expect("groupName"))
        .collect()
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
#[tokio::test]
async fn round_trip_with_properties_and_tags() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let before = now_millis();
    let created = client
        .create_thing_group()
        .thing_group_name("bulbs")
        .thing_group_properties(properties(
            Some("Generic bulb group"),
            &[("Manufacturer", "AnyCompany"), ("wattage", "60")],
            false,
        ))
        .tags(tag("team", "fleet"))
        .send()
        .await
        .expect("create");
    let arn = group_arn(ACCOUNT_A, "bulbs");
    assert_eq!(created.thing_group_name(), Some("bulbs"));
    assert_eq!(created.thing_group_arn(), Some(arn.as_str()));
    let id = created.thing_group_id().expect("id").to_owned();
    assert!(is_uuid(&id), "{id}");

    let d = describe_group(&client, "bulbs").await;
    assert_eq!(d.thing_group_name(), Some("bulbs"));
    assert_eq!(d.thing_group_arn(), Some(arn.as_str()));
    assert_eq!(d.thing_group_id(), Some(id.as_str()));
    assert_eq!(d.version(), 1);
    assert_eq!(d.status(), None);
    let props = d.thing_group_properties().expect("properties");
    assert_eq!(props.thing_group_description(), Some("Generic bulb group"));
    let attrs = props
        .attribute_payload()
        .and_then(|p| p.attributes())
        .expect("attributes");
    assert_eq!(attrs.len(), 2);
    assert_eq!(attrs.get("wattage").map(String::as_str), Some("60"));
    let meta = d.thing_group_metadata().expect("metadata");
    assert_eq!(meta.parent_group_name(), None);
    assert!(meta.root_to_parent_thing_groups().is_empty());
    let created_at = meta
        .creation_date()
        .expect("creationDate")
        .to_millis()
        .expect("millis");
    assert!(
        (before - 1000..=now_millis() + 1000).contains(&created_at),
        "creationDate {created_at} is not about now"
    );
    assert_eq!(tags_of(&client, &arn).await, pairs(&[("team", "fleet")]));

    // Merge: empty removes, others set; the description stays when not given.
    let updated = client
        .update_thing_group()
        .thing_group_name("bulbs")
        .thing_group_properties(properties(None, &[("wattage", ""), ("color", "warm")], true))
        .send()
        .await
        .expect("update");
    assert_eq!(updated.version(), 2);
    let d = describe_group(&client, "bulbs").await;
    let props = d.thing_group_properties().expect("properties");
    assert_eq!(props.thing_group_description(), Some("Generic bulb group"));
    let attrs = props.attribute_payload().and_then(|p| p.attributes()).unwrap();
    let mut keys: Vec<&String> = attrs.keys().collect();
    keys.sort();
    assert_eq!(keys, ["Manufacturer", "color"]);
    assert_eq!(d.version(), 2);

    let updated = client
        .update_thing_group()
        .thing_group_name("bulbs")
        .expected_version(2)
        .thing_group_properties(properties(Some("Halogen"), &[], false))
        .send()
        .await
        .expect("replace");
    assert_eq!(updated.version(), 3);
    let d = describe_group(&client, "bulbs").await;
    let props = d.thing_group_properties().expect("properties");
    assert_eq!(props.thing_group_description(), Some("Halogen"));
    assert_eq!(props.attribute_payload(), None, "no attributes left");

    client
        .delete_thing_group()
        .thing_group_name("bulbs")
        .send()
        .await
        .expect("delete");
    assert_no_group(&client, "bulbs").await;
    let (failure, _) = expect_failure(
        client
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    // A new group of the same name starts without the old tags.
    create_group(&client, "bulbs", None).await;
    assert!(tags_of(&client, &arn).await.is_empty());
}

#[tokio::test]
async fn a_bare_group_describes_empty_properties() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_group(&client, "bare", None).await;
    let d = describe_group(&client, "bare").await;
    let props = d.thing_group_properties().expect("properties");
    assert_eq!(props.thing_group_description(), None);
    assert_eq!(props.attribute_payload(), None);
}

#[tokio::test]
async fn update_version_conflicts_and_unknown_groups() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_group(&client, "g", None).await;
    let (failure, err) = expect_failure(
        client
            .update_thing_group()
            .thing_group_name("g")
            .expected_version(5)
            .thing_group_properties(properties(Some("x"), &[], false))
            .send()
            .await,
    );
    failure.assert("VersionConflictException", 409);
    assert!(
        matches!(err, UpdateThingGroupError::VersionConflictException(_)),
        "{err:?}"
    );
    assert_eq!(describe_group(&client, "g").await.version(), 1);

    let (failure, err) = expect_failure(
        client
            .update_thing_group()
            .thing_group_name("ghost")
            .thing_group_properties(properties(Some("x"), &[], false))
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&["ghost"]);
    assert!(
        matches!(err, UpdateThingGroupError::ResourceNotFoundException(_)),
        "{err:?}"
    );

    let (failure, err) = expect_failure(
        client
            .delete_thing_group()
            .thing_group_name("g")
            .expected_version(2)
            .send()
            .await,
    );
    failure.assert("VersionConflictException", 409);
    assert!(
        matches!(err, DeleteThingGroupError::VersionConflictException(_)),
        "{err:?}"
    );
    describe_group(&client, "g").await;
    // The model lists no ResourceNotFoundException for DeleteThingGroup.
    client
        .delete_thing_group()
        .thing_group_name("ghost")
        .send()
        .await
        .expect("deleting an unknown group succeeds");
}

#[tokio::test]
async fn create_is_idempotent_only_for_the_same_configuration() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_group(&client, "parent", None).await;
    let first = client
        .create_thing_group()
        .thing_group_name("g")
        .parent_group_name("parent")
        .thing_group_properties(properties(Some("d"), &[("a", "1")], false))
        .send()
        .await
        .expect("create");
    let again = client
        .create_thing_group()
        .thing_group_name("g")
        .parent_group_name("parent")
        .thing_group_properties(properties(Some("d"), &[("a", "1")], false))
        .send()
        .await
        .expect("identical create");
    assert_eq!(again.thing_group_id(), first.thing_group_id());

    let (failure, err) = expect_failure(
        client
            .create_thing_group()
            .thing_group_name("g")
            .thing_group_properties(properties(Some("d"), &[("a", "1")], false))
            .send()
            .await,
    );
    failure
        .assert("ResourceAlreadyExistsException", 409)
        .mentions(&["g"]);
    let CreateThingGroupError::ResourceAlreadyExistsException(e) = err else {
        panic!("expected ResourceAlreadyExistsException, got {err:?}");
    };
    assert_eq!(e.resource_arn(), first.thing_group_arn());
    assert_eq!(e.resource_id(), first.thing_group_id());
    let (failure, _) = expect_failure(
        client
            .create_thing_group()
            .thing_group_name("g")
            .parent_group_name("parent")
            .thing_group_properties(properties(Some("other"), &[("a", "1")], false))
            .send()
            .await,
    );
    failure.assert("ResourceAlreadyExistsException", 409);
    let d = describe_group(&client, "g").await;
    assert_eq!(d.version(), 1);
    assert_eq!(
        d.thing_group_metadata().and_then(|m| m.parent_group_name()),
        Some("parent")
    );
}

#[tokio::test]
async fn hierarchy_metadata() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_group(&client, "root", None).await;
    create_group(&client, "mid", Some("root")).await;
    create_group(&client, "leaf", Some("mid")).await;

    let d = describe_group(&client, "leaf").await;
    let meta = d.thing_group_metadata().expect("metadata");
    assert_eq!(meta.parent_group_name(), Some("mid"));
    let chain: Vec<(Option<&str>, Option<&str>)> = meta
        .root_to_parent_thing_groups()
        .iter()
        .map(|g| (g.group_name(), g.group_arn()))
        .collect();
    let (root_arn, mid_arn) = (group_arn(ACCOUNT_A, "root"), group_arn(ACCOUNT_A, "mid"));
    assert_eq!(
        chain,
        [
            (Some("root"), Some(root_arn.as_str())),
            (Some("mid"), Some(mid_arn.as_str()))
        ]
    );
    let d = describe_group(&client, "mid").await;
    let meta = d.thing_group_metadata().expect("metadata");
    assert_eq!(meta.parent_group_name(), Some("root"));
    assert_eq!(meta.root_to_parent_thing_groups().len(), 1);

    let (failure, _) = expect_failure(
        client
            .create_thing_group()
            .thing_group_name("orphan")
            .parent_group_name("nowhere")
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&["nowhere"]);
    assert_no_group(&client, "orphan").await;
}

#[tokio::test]
async fn hierarchies_are_at_most_seven_deep() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_group(&client, "level-1", None).await;
    for level in 2..=7 {
        let parent = format!("level-{}", level - 1);
        create_group(&client, &format!("level-{level}"), Some(&parent)).await;
    }
    let (failure, _) = expect_failure(
        client
            .create_thing_group()
            .thing_group_name("level-8")
            .parent_group_name("level-7")
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["7"]);
    assert_no_group(&client, "level-8").await;
    let d = describe_group(&client, "level-7").await;
    assert_eq!(
        d.thing_group_metadata()
            .map(|m| m.root_to_parent_thing_groups().len()),
        Some(6)
    );
}

#[tokio::test]
async fn a_group_with_children_cannot_be_deleted() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_group(&client, "parent", None).await;
    create_group(&client, "child", Some("parent")).await;
    let (failure, err) = expect_failure(
        client
            .delete_thing_group()
            .thing_group_name("parent")
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["Cannot delete thing group : parent when it has child groups"]);
    assert!(
        matches!(err, DeleteThingGroupError::InvalidRequestException(_)),
        "{err:?}"
    );
    describe_group(&client, "parent").await;
    client
        .delete_thing_group()
        .thing_group_name("child")
        .send()
        .await
        .expect("delete child");
    client
        .delete_thing_group()
        .thing_group_name("parent")
        .send()
        .await
        .expect("delete parent");
    assert!(list_groups(&client, None, None, None, 10).await.is_empty());
}

#[tokio::test]
async fn list_thing_groups_by_parent_prefix_and_page() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    // a ─┬─ a1 ── a1x
    //    └─ a2
    // b ── b1
    for (name, parent) in [
        ("a", None),
        ("b", None),
        ("a1", Some("a")),
        ("a2", Some("a")),
        ("b1", Some("b")),
        ("a1x", Some("a1")),
    ] {
        create_group(&client, name, parent).await;
    }
    let all = strings(&["a", "a1", "a1x", "a2", "b", "b1"]);
    for page in [1, 2, 25] {
        assert_eq!(list_groups(&client, None, None, None, page).await, all);
    }
    // Without a parent, recursive changes nothing: every group is listed anyway.
    assert_eq!(list_groups(&client, None, Some(true), None, 3).await, all);
    assert_eq!(
        list_groups(&client, Some("a"), None, None, 1).await,
        ["a1", "a2"]
    );
    assert_eq!(
        list_groups(&client, Some("a"), Some(true), None, 1).await,
        ["a1", "a1x", "a2"]
    );
    assert_eq!(
        list_groups(&client, Some("a"), Some(true), Some("a1"), 1).await,
        ["a1", "a1x"]
    );
    assert_eq!(
        list_groups(&client, None, None, Some("b"), 25).await,
        ["b", "b1"]
    );
    assert!(list_groups(&client, Some("a2"), Some(true), None, 5)
        .await
        .is_empty());

    let out = client.list_thing_groups().max_results(1).send().await.expect("page");
    let first = &out.thing_groups()[0];
    assert_eq!(first.group_name(), Some("a"));
    assert_eq!(first.group_arn(), Some(group_arn(ACCOUNT_A, "a").as_str()));

    let (failure, _) = expect_failure(
        client
            .list_thing_groups()
            .parent_group("nowhere")
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&["nowhere"]);
    // A token from one parent's listing is no good for another's.
    let token = client
        .list_thing_groups()
        .parent_group("a")
        .max_results(1)
        .send()
        .await
        .expect("page")
        .next_token()
        .expect("more")
        .to_owned();
    let (failure, _) = expect_failure(
        client
            .list_thing_groups()
            .parent_group("b")
            .next_token(token)
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
}

#[tokio::test]
async fn tagging_thing_groups() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    create_group(&a, "tagged", None).await;
    let arn = group_arn(ACCOUNT_A, "tagged");
    a.tag_resource()
        .resource_arn(&arn)
        .tags(tag("env", "prod"))
        .tags(tag("owner", "me"))
        .send()
        .await
        .expect("tag");
    a.untag_resource()
        .resource_arn(&arn)
        .tag_keys("owner")
        .send()
        .await
        .expect("untag");
    assert_eq!(tags_of(&a, &arn).await, pairs(&[("env", "prod")]));

    // Another account: same name, own group, own tags; A's ARN does not exist for B.
    let (failure, _) = expect_failure(b.list_tags_for_resource().resource_arn(&arn).send().await);
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(
        b.tag_resource()
            .resource_arn(&arn)
            .tags(tag("k", "v"))
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    create_group(&b, "tagged", None).await;
    assert!(tags_of(&b, &group_arn(ACCOUNT_B, "tagged")).await.is_empty());
    assert_eq!(tags_of(&a, &arn).await, pairs(&[("env", "prod")]));

    // Missing groups are not found.
    let (failure, _) = expect_failure(
        a.list_tags_for_resource()
            .resource_arn(group_arn(ACCOUNT_A, "ghost"))
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
}

#[tokio::test]
async fn membership_by_name_and_by_arn() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_thing(&client, "bulb").await;
    create_group(&client, "by-name", None).await;
    create_group(&client, "by-arn", None).await;

    add(&client, "bulb", "by-name").await;
    add(&client, "bulb", "by-name").await; // already a member: fine
    client
        .add_thing_to_thing_group()
        .thing_arn(thing_arn(ACCOUNT_A, "bulb"))
        .thing_group_arn(group_arn(ACCOUNT_A, "by-arn"))
        .send()
        .await
        .expect("add by ARN");
    assert_eq!(
        groups_of(&client, "bulb").await,
        [
            ("by-arn".to_owned(), group_arn(ACCOUNT_A, "by-arn")),
            ("by-name".to_owned(), group_arn(ACCOUNT_A, "by-name"))
        ]
    );
    assert_eq!(things_in(&client, "by-arn", false, 10).await, ["bulb"]);

    client
        .remove_thing_from_thing_group()
        .thing_arn(thing_arn(ACCOUNT_A, "bulb"))
        .thing_group_name("by-arn")
        .send()
        .await
        .expect("remove");
    client
        .remove_thing_from_thing_group()
        .thing_name("bulb")
        .thing_group_arn(group_arn(ACCOUNT_A, "by-arn"))
        .send()
        .await
        .expect("removing a non-member succeeds");
    assert_eq!(group_names_of(&client, "bulb").await, ["by-name"]);
    assert!(things_in(&client, "by-arn", true, 10).await.is_empty());

    // Unknown things and groups.
    let (failure, err) = expect_failure(
        client
            .add_thing_to_thing_group()
            .thing_name("ghost")
            .thing_group_name("by-name")
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&["ghost"]);
    assert!(
        matches!(err, AddThingToThingGroupError::ResourceNotFoundException(_)),
        "{err:?}"
    );
    let (failure, _) = expect_failure(
        client
            .add_thing_to_thing_group()
            .thing_name("bulb")
            .thing_group_name("ghost-group")
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&["ghost-group"]);
    let (failure, _) = expect_failure(
        client
            .remove_thing_from_thing_group()
            .thing_name("bulb")
            .thing_group_name("ghost-group")
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(
        client
            .list_thing_groups_for_thing()
            .thing_name("ghost")
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(
        client
            .list_things_in_thing_group()
            .thing_group_name("ghost-group")
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);

    // Malformed and missing references.
    let (failure, _) = expect_failure(
        client
            .add_thing_to_thing_group()
            .thing_name("bulb")
            .thing_group_arn(thing_arn(ACCOUNT_A, "bulb"))
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["thingGroupArn"]);
    let (failure, _) = expect_failure(
        client
            .add_thing_to_thing_group()
            .thing_group_name("by-name")
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["thingName", "thingArn"]);
    let (failure, _) = expect_failure(
        client
            .add_thing_to_thing_group()
            .thing_name("other")
            .thing_arn(thing_arn(ACCOUNT_A, "bulb"))
            .thing_group_name("by-name")
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
    assert_eq!(group_names_of(&client, "bulb").await, ["by-name"]);
}

#[tokio::test]
async fn one_group_per_hierarchy() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_thing(&client, "t").await;
    create_group(&client, "root", None).await;
    create_group(&client, "left", Some("root")).await;
    create_group(&client, "right", Some("root")).await;
    create_group(&client, "elsewhere", None).await;
    add(&client, "t", "left").await;

    for same_tree in ["root", "right"] {
        let (failure, err) = expect_failure(
            client
                .add_thing_to_thing_group()
                .thing_name("t")
                .thing_group_name(same_tree)
                .send()
                .await,
        );
        failure
            .assert("InvalidRequestException", 400)
            .mentions(&["left", same_tree]);
        assert!(
            matches!(err, AddThingToThingGroupError::InvalidRequestException(_)),
            "{err:?}"
        );
    }
    add(&client, "t", "elsewhere").await;

    // Moving within the hierarchy in one call works: removals come first.
    client
        .update_thing_groups_for_thing()
        .thing_name("t")
        .thing_groups_to_add("right")
        .thing_groups_to_remove("left")
        .send()
        .await
        .expect("move");
    assert_eq!(group_names_of(&client, "t").await, ["elsewhere", "right"]);
    assert_eq!(things_in(&client, "root", true, 5).await, ["t"]);
    assert!(things_in(&client, "root", false, 5).await.is_empty());
}

#[tokio::test]
async fn at_most_ten_groups_and_all_or_nothing_updates() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_thing(&client, "t").await;
    for i in 0..12 {
        create_group(&client, &format!("g{i:02}"), None).await;
    }
    let ten: Vec<String> = (0..10).map(|i| format!("g{i:02}")).collect();
    client
        .update_thing_groups_for_thing()
        .thing_name("t")
        .set_thing_groups_to_add(Some(ten.clone()))
        .send()
        .await
        .expect("ten groups");
    let (failure, err) = expect_failure(
        client
            .add_thing_to_thing_group()
            .thing_name("t")
            .thing_group_name("g10")
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["10"]);
    assert!(
        matches!(err, AddThingToThingGroupError::InvalidRequestException(_)),
        "{err:?}"
    );
    assert_eq!(group_names_of(&client, "t").await, ten);

    // A swap keeps the count at ten.
    client
        .update_thing_groups_for_thing()
        .thing_name("t")
        .thing_groups_to_add("g10")
        .thing_groups_to_remove("g00")
        .send()
        .await
        .expect("swap");
    // Two adds for one removal would make eleven: nothing changes, not even the removal.
    let (failure, _) = expect_failure(
        client
            .update_thing_groups_for_thing()
            .thing_name("t")
            .set_thing_groups_to_add(Some(strings(&["g00", "g11"])))
            .thing_groups_to_remove("g01")
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
    // An unknown group among the adds: the same.
    let (failure, _) = expect_failure(
        client
            .update_thing_groups_for_thing()
            .thing_name("t")
            .set_thing_groups_to_add(Some(strings(&["ghost"])))
            .thing_groups_to_remove("g01")
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&["ghost"]);
    let mut expected: Vec<String> = (1..11).map(|i| format!("g{i:02}")).collect();
    expected.sort();
    assert_eq!(group_names_of(&client, "t").await, expected);

    let (failure, _) = expect_failure(
        client
            .update_thing_groups_for_thing()
            .thing_name("t")
            .thing_groups_to_add("g05")
            .thing_groups_to_remove("g05")
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["g05"]);
    let (failure, _) = expect_failure(
        client
            .update_thing_groups_for_thing()
            .thing_groups_to_add("g05")
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["thingName"]);
}

#[tokio::test]
async fn recursive_listing_of_things() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_group(&client, "top", None).await;
    create_group(&client, "sub", Some("top")).await;
    create_group(&client, "subsub", Some("sub")).await;
    let placements = [("t3", "top"), ("t1", "sub"), ("t2", "subsub"), ("T9", "subsub")];
    for (thing, group) in placements {
        create_thing(&client, thing).await;
        add(&client, thing, group).await;
    }
    for page in [1, 3, 250] {
        assert_eq!(
            things_in(&client, "top", true, page).await,
            ["T9", "t1", "t2", "t3"]
        );
    }
    assert_eq!(things_in(&client, "top", false, 2).await, ["t3"]);
    assert_eq!(things_in(&client, "sub", true, 2).await, ["T9", "t1", "t2"]);
    assert_eq!(things_in(&client, "subsub", false, 1).await, ["T9", "t2"]);
}

#[tokio::test]
async fn deleting_things_and_groups_removes_memberships() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_group(&client, "g", None).await;
    create_group(&client, "h", None).await;
    for thing in ["a", "b"] {
        create_thing(&client, thing).await;
        add(&client, thing, "g").await;
        add(&client, thing, "h").await;
    }
    client
        .delete_thing()
        .thing_name("a")
        .send()
        .await
        .expect("delete thing");
    assert_eq!(things_in(&client, "g", false, 10).await, ["b"]);
    create_thing(&client, "a").await;
    assert!(group_names_of(&client, "a").await.is_empty());

    client
        .delete_thing_group()
        .thing_group_name("g")
        .send()
        .await
        .expect("delete group");
    assert_eq!(group_names_of(&client, "b").await, ["h"]);
    create_group(&client, "g", None).await;
    assert!(things_in(&client, "g", true, 10).await.is_empty());
}

#[tokio::test]
async fn accounts_do_not_see_each_others_groups() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    create_group(&a, "private", None).await;
    create_thing(&a, "mine").await;
    create_thing(&b, "theirs").await;
    add(&a, "mine", "private").await;

    assert_no_group(&b, "private").await;
    assert!(list_groups(&b, None, None, None, 10).await.is_empty());
    let (failure, _) = expect_failure(
        b.add_thing_to_thing_group()
            .thing_name("theirs")
            .thing_group_name("private")
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    // Knowing A's ARNs does not help.
    let (failure, _) = expect_failure(
        b.add_thing_to_thing_group()
            .thing_name("theirs")
            .thing_group_arn(group_arn(ACCOUNT_A, "private"))
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(
        b.remove_thing_from_thing_group()
            .thing_arn(thing_arn(ACCOUNT_A, "mine"))
            .thing_group_arn(group_arn(ACCOUNT_A, "private"))
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    let (failure, _) = expect_failure(
        b.list_things_in_thing_group()
            .thing_group_name("private")
            .send()
            .await,
    );
    failure.assert("ResourceNotFoundException", 404);
    b.delete_thing_group()
        .thing_group_name("private")
        .send()
        .await
        .expect("deleting an unknown (to B) group succeeds");
    assert_eq!(things_in(&a, "private", false, 10).await, ["mine"]);
    assert_eq!(group_names_of(&a, "mine").await, ["private"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_to_eleven_groups_let_ten_win() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_thing(&client, "popular").await;
    for i in 0..11 {
        create_group(&client, &format!("g{i:02}"), None).await;
    }
    let tasks: Vec<_> = (0..11)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .add_thing_to_thing_group()
                    .thing_name("popular")
                    .thing_group_name(format!("g{i:02}"))
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
    assert_eq!(ok, 10, "losers: {codes:?}");
    assert_eq!(codes, ["InvalidRequestException"]);
    assert_eq!(group_names_of(&client, "popular").await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_within_one_hierarchy_let_one_win() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_thing(&client, "t").await;
    create_group(&client, "root", None).await;
    for i in 0..8 {
        create_group(&client, &format!("child-{i}"), Some("root")).await;
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .add_thing_to_thing_group()
                    .thing_name("t")
                    .thing_group_name(format!("child-{i}"))
                    .send()
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(
                aws_sdk_iot::error::ProvideErrorMetadata::code(&e),
                Some("InvalidRequestException")
            ),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(things_in(&client, "root", true, 10).await, ["t"]);
}
}
