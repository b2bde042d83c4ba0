//! CreateThing, DescribeThing, UpdateThing, DeleteThing and ListThings through the real
//! `aws-sdk-iot` client.

use std::collections::{BTreeMap, HashMap};

use crate::common::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::create_thing::{CreateThingError, CreateThingOutput};
use aws_sdk_iot::operation::delete_thing::DeleteThingError;
use aws_sdk_iot::operation::describe_thing::{DescribeThingError, DescribeThingOutput};
use aws_sdk_iot::operation::update_thing::UpdateThingError;
use aws_sdk_iot::types::AttributePayload;
use aws_sdk_iot::Client;

fn payload(attrs: &[(&str, &str)], merge: bool) -> AttributePayload {
    AttributePayload::builder()
        .set_attributes(Some(
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
        .merge(merge)
        .build()
}

fn sorted(attrs: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    attrs
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn expected(attrs: &[(&str, &str)]) -> BTreeMap<String, String> {
    attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn thing_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iot:{REGION}:{account}:thing/{name}")
}

async fn create_thing(client: &Client, name: &str, attrs: &[(&str, &str)]) -> CreateThingOutput {
    client
        .create_thing()
        .thing_name(name)
        .attribute_payload(payload(attrs, false))
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {}", DisplayErrorContext(e)))
}

async fn describe_thing(client: &Client, name: &str) -> DescribeThingOutput {
    client
        .describe_thing()
        .thing_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describing {name}: {}", DisplayErrorContext(e)))
}

async fn update_attributes(client: &Client, name: &str, attrs: &[(&str, &str)], merge: bool) {
    client
        .update_thing()
        .thing_name(name)
        .attribute_payload(payload(attrs, merge))
        .send()
        .await
        .unwrap_or_else(|e| panic!("updating {name}: {}", DisplayErrorContext(e)));
}

async fn assert_no_thing(client: &Client, name: &str) {
    let (failure, err) = expect_failure(client.describe_thing().thing_name(name).send().await);
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&[name]);
    assert!(
        matches!(err, DescribeThingError::ResourceNotFoundException(_)),
        "{err:?}"
    );
}

/// Every thing name the client's account holds, via the SDK paginator.
async fn all_thing_names(client: &Client) -> Vec<String> {
    client
        .list_things()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("listing things: {}", DisplayErrorContext(e)))
        .into_iter()
        .map(|t| t.thing_name.expect("thingName"))
        .collect()
}

/// Names listed one explicit page at a time, `max` per page, checking page sizes.
async fn paged_names(
    client: &Client,
    max: Option<i32>,
    filter: impl Fn(
        aws_sdk_iot::operation::list_things::builders::ListThingsFluentBuilder,
    ) -> aws_sdk_iot::operation::list_things::builders::ListThingsFluentBuilder,
) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = filter(client.list_things())
            .set_max_results(max)
            .set_next_token(token.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("listing things: {}", DisplayErrorContext(e)));
        pages += 1;
        let page: Vec<String> = out
            .things()
            .iter()
            .map(|t| t.thing_name().expect("thingName").to_owned())
            .collect();
        assert!(page.len() <= max.unwrap_or(25) as usize, "page too large");
        names.extend(page);
        match out.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => return (names, pages),
        }
    }
}

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
#[tokio::test]
async fn round_trip() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let created = create_thing(&client, "bulb-1", &[("model", "123"), ("wattage", "75")]).await;
    let arn = thing_arn(ACCOUNT_A, "bulb-1");
    assert_eq!(created.thing_name(), Some("bulb-1"));
    assert_eq!(created.thing_arn(), Some(arn.as_str()));
    let id = created.thing_id().expect("thingId").to_owned();
    assert!(is_uuid(&id), "thingId {id:?} is not a UUID");

    let d = describe_thing(&client, "bulb-1").await;
    assert_eq!(d.thing_name(), Some("bulb-1"));
    assert_eq!(d.thing_arn(), Some(arn.as_str()));
    assert_eq!(d.thing_id(), Some(id.as_str()));
    assert_eq!(d.default_client_id(), Some("bulb-1"));
    assert_eq!(d.version(), 1);
    assert_eq!(d.thing_type_name(), None);
    assert_eq!(
        sorted(d.attributes()),
        expected(&[("model", "123"), ("wattage", "75")])
    );

    // Merge: an empty value removes, others are set; untouched ones stay.
    update_attributes(&client, "bulb-1", &[("wattage", ""), ("color", "red")], true).await;
    let d = describe_thing(&client, "bulb-1").await;
    assert_eq!(d.version(), 2);
    assert_eq!(
        sorted(d.attributes()),
        expected(&[("color", "red"), ("model", "123")])
    );
    // Without merge the attributes are replaced.
    update_attributes(&client, "bulb-1", &[("serial", "S-1")], false).await;
    let d = describe_thing(&client, "bulb-1").await;
    assert_eq!(d.version(), 3);
    assert_eq!(sorted(d.attributes()), expected(&[("serial", "S-1")]));
    assert_eq!(d.thing_id(), Some(id.as_str()));

    // An update without attributes still counts as one.
    client
        .update_thing()
        .thing_name("bulb-1")
        .remove_thing_type(true)
        .send()
        .await
        .expect("update without changes");
    assert_eq!(describe_thing(&client, "bulb-1").await.version(), 4);

    let listed = client.list_things().send().await.expect("list");
    let only = &listed.things()[0];
    assert_eq!(listed.things().len(), 1);
    assert_eq!(only.thing_name(), Some("bulb-1"));
    assert_eq!(only.thing_arn(), Some(arn.as_str()));
    assert_eq!(only.version(), 4);
    assert_eq!(sorted(only.attributes()), expected(&[("serial", "S-1")]));
    assert_eq!(listed.next_token(), None);

    client
        .delete_thing()
        .thing_name("bulb-1")
        .send()
        .await
        .expect("delete");
    assert_no_thing(&client, "bulb-1").await;
    assert!(all_thing_names(&client).await.is_empty());
}

#[tokio::test]
async fn a_thing_without_attributes_describes_an_empty_map() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    client
        .create_thing()
        .thing_name("bare")
        .send()
        .await
        .expect("create");
    let d = describe_thing(&client, "bare").await;
    assert_eq!(d.attributes().map(HashMap::len), Some(0));
    let listed = client.list_things().send().await.expect("list");
    assert_eq!(listed.things()[0].attributes().map(HashMap::len), Some(0));
}

#[tokio::test]
async fn empty_attribute_values_are_never_stored() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_thing(&client, "t", &[("a", "1"), ("empty", "")]).await;
    assert_eq!(
        sorted(describe_thing(&client, "t").await.attributes()),
        expected(&[("a", "1")])
    );
    // Replacing with only an empty value leaves no attributes at all.
    update_attributes(&client, "t", &[("k2", "")], false).await;
    assert!(sorted(describe_thing(&client, "t").await.attributes()).is_empty());
    // Removing an attribute that is not there is not an error.
    update_attributes(&client, "t", &[("never", "")], true).await;
    assert_eq!(describe_thing(&client, "t").await.version(), 3);
}

#[tokio::test]
async fn create_is_idempotent_only_for_the_same_configuration() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let first = create_thing(&client, "twice", &[("a", "1")]).await;
    let again = create_thing(&client, "twice", &[("a", "1")]).await;
    assert_eq!(again.thing_id(), first.thing_id());
    assert_eq!(again.thing_arn(), first.thing_arn());
    assert_eq!(describe_thing(&client, "twice").await.version(), 1);

    for other in [&[("a", "2")][..], &[][..], &[("a", "1"), ("b", "1")][..]] {
        let (failure, err) = expect_failure(
            client
                .create_thing()
                .thing_name("twice")
                .attribute_payload(payload(other, false))
                .send()
                .await,
        );
        failure
            .assert("ResourceAlreadyExistsException", 409)
            .mentions(&["twice"]);
        let CreateThingError::ResourceAlreadyExistsException(e) = err else {
            panic!("expected ResourceAlreadyExistsException, got {err:?}");
        };
        assert_eq!(e.resource_arn(), first.thing_arn());
        assert_eq!(e.resource_id(), first.thing_id());
    }
    let d = describe_thing(&client, "twice").await;
    assert_eq!(sorted(d.attributes()), expected(&[("a", "1")]));
    assert_eq!(d.version(), 1);
}

#[tokio::test]
async fn thing_types_and_billing_groups_do_not_exist() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let (failure, err) = expect_failure(
        client
            .create_thing()
            .thing_name("typed")
            .thing_type_name("LightBulb")
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&["LightBulb"]);
    assert!(
        matches!(err, CreateThingError::ResourceNotFoundException(_)),
        "{err:?}"
    );
    let (failure, _) = expect_failure(
        client
            .create_thing()
            .thing_name("billed")
            .billing_group_name("Fleet")
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&["Fleet"]);
    assert!(all_thing_names(&client).await.is_empty());

    create_thing(&client, "plain", &[]).await;
    let (failure, err) = expect_failure(
        client
            .update_thing()
            .thing_name("plain")
            .thing_type_name("LightBulb")
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&["LightBulb"]);
    assert!(
        matches!(err, UpdateThingError::ResourceNotFoundException(_)),
        "{err:?}"
    );
    let (failure, _) = expect_failure(
        client
            .update_thing()
            .thing_name("plain")
            .thing_type_name("LightBulb")
            .remove_thing_type(true)
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["removeThingType"]);
    assert_eq!(describe_thing(&client, "plain").await.version(), 1);

    // Filtering by a thing type matches nothing.
    let listed = client
        .list_things()
        .thing_type_name("LightBulb")
        .send()
        .await
        .expect("list by type");
    assert!(listed.things().is_empty());
}

#[tokio::test]
async fn at_most_fifty_attributes() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let names: Vec<String> = (0..51).map(|i| format!("attr{i:02}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();

    let (failure, err) = expect_failure(
        client
            .create_thing()
            .thing_name("many")
            .attribute_payload(payload(&pairs, false))
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["50"]);
    assert!(
        matches!(err, CreateThingError::InvalidRequestException(_)),
        "{err:?}"
    );
    assert_no_thing(&client, "many").await;

    create_thing(&client, "many", &pairs[..50]).await;
    // A merge that would make 51 is refused and changes nothing...
    let (failure, _) = expect_failure(
        client
            .update_thing()
            .thing_name("many")
            .attribute_payload(payload(&pairs[50..], true))
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["50"]);
    let d = describe_thing(&client, "many").await;
    assert_eq!((d.attributes().map(HashMap::len), d.version()), (Some(50), 1));
    // ...one that removes as much as it adds is fine.
    update_attributes(&client, "many", &[("attr50", "v"), ("attr00", "")], true).await;
    let d = describe_thing(&client, "many").await;
    assert_eq!(d.attributes().map(HashMap::len), Some(50));
    assert!(d.attributes().unwrap().contains_key("attr50"));
    // Replacing with 51 is refused too.
    let (failure, _) = expect_failure(
        client
            .update_thing()
            .thing_name("many")
            .attribute_payload(payload(&pairs, false))
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
    assert_eq!(describe_thing(&client, "many").await.version(), 2);
}

#[tokio::test]
async fn expected_version_mismatches_are_409_and_change_nothing() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_thing(&client, "v", &[("a", "1")]).await;
    update_attributes(&client, "v", &[("a", "2")], false).await;

    let (failure, err) = expect_failure(
        client
            .update_thing()
            .thing_name("v")
            .expected_version(1)
            .attribute_payload(payload(&[("a", "3")], false))
            .send()
            .await,
    );
    failure
        .assert("VersionConflictException", 409)
        .mentions(&["v"]);
    assert!(
        matches!(err, UpdateThingError::VersionConflictException(_)),
        "{err:?}"
    );
    let (failure, err) = expect_failure(
        client
            .delete_thing()
            .thing_name("v")
            .expected_version(1)
            .send()
            .await,
    );
    failure.assert("VersionConflictException", 409);
    assert!(
        matches!(err, DeleteThingError::VersionConflictException(_)),
        "{err:?}"
    );
    let d = describe_thing(&client, "v").await;
    assert_eq!((d.version(), sorted(d.attributes())), (2, expected(&[("a", "2")])));

    client
        .update_thing()
        .thing_name("v")
        .expected_version(2)
        .attribute_payload(payload(&[("a", "3")], false))
        .send()
        .await
        .expect("update at the expected version");
    client
        .delete_thing()
        .thing_name("v")
        .expected_version(3)
        .send()
        .await
        .expect("delete at the expected version");
    assert_no_thing(&client, "v").await;
}

#[tokio::test]
async fn unknown_things() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    assert_no_thing(&client, "ghost").await;
    let (failure, err) = expect_failure(
        client
            .update_thing()
            .thing_name("ghost")
            .attribute_payload(payload(&[("a", "1")], false))
            .send()
            .await,
    );
    failure
        .assert("ResourceNotFoundException", 404)
        .mentions(&["ghost"]);
    assert!(
        matches!(err, UpdateThingError::ResourceNotFoundException(_)),
        "{err:?}"
    );
    // AWS documents that deleting a thing that does not exist succeeds.
    client
        .delete_thing()
        .thing_name("ghost")
        .expected_version(4)
        .send()
        .await
        .expect("deleting an unknown thing succeeds");
    assert_no_thing(&client, "ghost").await;
}

#[tokio::test]
async fn invalid_names_and_attributes_are_400() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let (failure, _) = expect_failure(client.create_thing().thing_name("bad name").send().await);
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["thingName", "regular expression pattern"]);
    let (failure, _) = expect_failure(
        client
            .create_thing()
            .thing_name("ok")
            .attribute_payload(payload(&[("bad name", "v")], false))
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["attributes"]);
    assert!(all_thing_names(&client).await.is_empty());
}

#[tokio::test]
async fn list_pages_in_name_order() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    let mut names: Vec<String> = (0..30).map(|i| format!("thing-{i:02}")).collect();
    names.push("Zeta".into());
    names.push("thing_x".into());
    for name in names.iter().rev() {
        create_thing(&client, name, &[]).await;
    }
    names.sort();
    assert_eq!(names[0], "Zeta", "byte order: upper case first");

    let (listed, pages) = paged_names(&client, None, |b| b).await;
    assert_eq!(listed, names);
    assert_eq!(pages, 2, "default page size is 25");
    let (listed, pages) = paged_names(&client, Some(7), |b| b).await;
    assert_eq!(listed, names);
    assert_eq!(pages, 5);
    let (listed, pages) = paged_names(&client, Some(250), |b| b).await;
    assert_eq!((listed.len(), pages), (32, 1));
    assert_eq!(all_thing_names(&client).await, names);
}

#[tokio::test]
async fn list_filters_by_attribute() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    for (name, attrs) in [
        ("a", &[("color", "red"), ("size", "1")][..]),
        ("b", &[("color", "redwood")][..]),
        ("c", &[("color", "blue")][..]),
        ("d", &[("size", "red")][..]),
        ("e", &[][..]),
    ] {
        create_thing(&client, name, attrs).await;
    }
    let names = |out: aws_sdk_iot::operation::list_things::ListThingsOutput| -> Vec<String> {
        out.things()
            .iter()
            .map(|t| t.thing_name().unwrap().to_owned())
            .collect()
    };
    let exact = client
        .list_things()
        .attribute_name("color")
        .attribute_value("red")
        .send()
        .await
        .expect("exact");
    assert_eq!(names(exact), ["a"]);
    let prefixed = client
        .list_things()
        .attribute_name("color")
        .attribute_value("red")
        .use_prefix_attribute_value(true)
        .send()
        .await
        .expect("prefix");
    assert_eq!(names(prefixed), ["a", "b"]);
    let having = client
        .list_things()
        .attribute_name("color")
        .send()
        .await
        .expect("name only");
    assert_eq!(names(having), ["a", "b", "c"]);
    let (listed, pages) = paged_names(&client, Some(1), |b| {
        b.attribute_name("color")
            .attribute_value("r")
            .use_prefix_attribute_value(true)
    })
    .await;
    assert_eq!(listed, ["a", "b"]);
    assert!(pages >= 2);

    let (failure, _) = expect_failure(client.list_things().attribute_value("red").send().await);
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["attributeName"]);
}

#[tokio::test]
async fn page_tokens_are_tamper_evident() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    for i in 0..3 {
        create_thing(&client, &format!("t{i}"), &[("k", "v")]).await;
    }
    let first = client.list_things().max_results(1).send().await.expect("page");
    let token = first.next_token().expect("a next page").to_owned();

    let (failure, _) = expect_failure(
        client
            .list_things()
            .next_token(format!("{token}x"))
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["nextToken"]);
    // A token is only good for the listing and filter it came from...
    let (failure, _) = expect_failure(
        client
            .list_things()
            .attribute_name("k")
            .next_token(&token)
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
    // ...and the account.
    let (failure, _) = expect_failure(
        server
            .client_b()
            .list_things()
            .next_token(&token)
            .send()
            .await,
    );
    failure.assert("InvalidRequestException", 400);
    let second = client
        .list_things()
        .max_results(1)
        .next_token(&token)
        .send()
        .await
        .expect("second page");
    assert_eq!(second.things()[0].thing_name(), Some("t1"));
}

#[tokio::test]
async fn accounts_do_not_see_each_others_things() {
    let server = TestServer::start(ENGINE).await;
    let (a, b) = (server.client_a(), server.client_b());
    let in_a = create_thing(&a, "shared", &[("owner", "a")]).await;
    assert_no_thing(&b, "shared").await;
    assert!(all_thing_names(&b).await.is_empty());

    // The same name in another account is another thing, not a duplicate.
    let in_b = create_thing(&b, "shared", &[("owner", "b")]).await;
    assert_ne!(in_a.thing_id(), in_b.thing_id());
    assert_eq!(in_b.thing_arn(), Some(thing_arn(ACCOUNT_B, "shared").as_str()));
    update_attributes(&b, "shared", &[("owner", "b2")], false).await;
    b.delete_thing()
        .thing_name("shared")
        .send()
        .await
        .expect("delete in b");
    let d = describe_thing(&a, "shared").await;
    assert_eq!(
        (d.version(), sorted(d.attributes())),
        (1, expected(&[("owner", "a")]))
    );
    let filtered = b
        .list_things()
        .attribute_name("owner")
        .send()
        .await
        .expect("list in b");
    assert!(filtered.things().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    // Different configurations: exactly one wins, the rest conflict.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .create_thing()
                    .thing_name("contested")
                    .attribute_payload(payload(&[("racer", &i.to_string())], false))
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
    assert_eq!(ok, 1, "losers: {codes:?}");
    assert_eq!(codes, vec!["ResourceAlreadyExistsException"; 15]);

    // The same configuration: every create succeeds with the one thing's id.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .create_thing()
                    .thing_name("calm")
                    .attribute_payload(payload(&[("k", "v")], false))
                    .send()
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let out = task.await.expect("task").expect("idempotent create");
        ids.push(out.thing_id().expect("thingId").to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(all_thing_names(&client).await, ["calm", "contested"]);
}
}
