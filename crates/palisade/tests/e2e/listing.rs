//! ListMitigationActions: paging, filtering and the pagination token.

use crate::common::*;
use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::operation::list_mitigation_actions::ListMitigationActionsError;
use aws_sdk_iot::types::MitigationActionType;
use aws_sdk_iot::Client;

// Every test runs once on SQLite and once on PostgreSQL.
per_engine! {
const COUNT: usize = 30;

fn name(i: usize) -> String {
    format!("page-{i:02}")
}

/// Creates [`COUNT`] actions, `page-00`..`page-29`, where `page-i` has the type
/// `all_action_types()[i % 6]`, in an order unlike the name order.
async fn create_thirty(client: &Client) {
    let types = all_action_types();
    for k in 0..COUNT {
        let i = (k * 7) % COUNT; // 7 is coprime with 30: every index once
        create_action(client, &name(i), params_for(&types[i % types.len()])).await;
    }
}

/// One page: its names and its next token.
async fn page(
    client: &Client,
    max_results: i32,
    action_type: Option<MitigationActionType>,
    token: Option<String>,
) -> (Vec<String>, Option<String>) {
    let out = client
        .list_mitigation_actions()
        .max_results(max_results)
        .set_action_type(action_type)
        .set_next_token(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("listing: {}", DisplayErrorContext(e)));
    for a in out.action_identifiers() {
        let n = a.action_name().expect("actionName");
        assert_eq!(a.action_arn(), Some(action_arn(ACCOUNT_A, n).as_str()));
        assert!(a.creation_date().is_some(), "no creationDate for {n}");
    }
    let names = out
        .action_identifiers()
        .iter()
        .map(|a| a.action_name().expect("actionName").to_owned())
        .collect();
    (names, out.next_token().map(str::to_owned))
}

/// Follows next tokens by hand; returns every page.
async fn all_pages(
    client: &Client,
    max_results: i32,
    action_type: Option<MitigationActionType>,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let (names, next) = page(client, max_results, action_type.clone(), token).await;
        pages.push(names);
        match next {
            Some(t) => token = Some(t),
            None => return pages,
        }
        assert!(pages.len() <= COUNT, "paging does not terminate");
    }
}

#[tokio::test]
async fn pages_of_seven_cover_all_thirty_once_in_name_order() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_thirty(&client).await;

    let pages = all_pages(&client, 7, None).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [7, 7, 7, 7, 2]);
    let expected: Vec<String> = (0..COUNT).map(name).collect();
    assert_eq!(pages.concat(), expected);

    // The SDK's own paginator agrees, both per item and per page.
    let items: Vec<String> = client
        .list_mitigation_actions()
        .into_paginator()
        .page_size(7)
        .items()
        .send()
        .try_collect()
        .await
        .expect("paginator")
        .into_iter()
        .map(|a| a.action_name.expect("actionName"))
        .collect();
    assert_eq!(items, expected);
    let page_count = client
        .list_mitigation_actions()
        .max_results(7)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .expect("paginator")
        .len();
    assert_eq!(page_count, 5);

    // Without maxResults the default page (25) applies; with the maximum, one page.
    let out = client.list_mitigation_actions().send().await.expect("list");
    assert_eq!(out.action_identifiers().len(), 25);
    assert!(out.next_token().is_some());
    assert_eq!(all_pages(&client, 250, None).await, vec![expected]);
}

#[tokio::test]
async fn a_page_exactly_as_large_as_what_is_left_has_no_next_token() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    for i in 0..4 {
        create_action(
            &client,
            &name(i),
            params_for(&MitigationActionType::PublishFindingToSns),
        )
        .await;
    }
    let pages = all_pages(&client, 2, None).await;
    assert_eq!(pages, vec![vec![name(0), name(1)], vec![name(2), name(3)]]);
    assert_eq!(all_pages(&client, 4, None).await.len(), 1);
}

#[tokio::test]
async fn an_empty_account_lists_nothing() {
    let server = TestServer::start(ENGINE).await;
    let out = server
        .client_a()
        .list_mitigation_actions()
        .send()
        .await
        .expect("list");
    assert!(out.action_identifiers().is_empty());
    assert_eq!(out.next_token(), None);
}

#[tokio::test]
async fn filtering_by_type_returns_only_that_type_and_pages() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_thirty(&client).await;
    let types = all_action_types();

    for (t_index, t) in types.iter().enumerate() {
        let pages = all_pages(&client, 2, Some(t.clone())).await;
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1], "pages of {t:?}");
        let expected: Vec<String> = (0..COUNT)
            .filter(|i| i % types.len() == t_index)
            .map(name)
            .collect();
        assert_eq!(pages.concat(), expected, "actions of type {t:?}");
    }

    let items: Vec<String> = client
        .list_mitigation_actions()
        .action_type(MitigationActionType::EnableIotLogging)
        .into_paginator()
        .page_size(3)
        .items()
        .send()
        .try_collect()
        .await
        .expect("paginator")
        .into_iter()
        .map(|a| a.action_name.expect("actionName"))
        .collect();
    assert_eq!(
        items,
        ["page-04", "page-10", "page-16", "page-22", "page-28"]
    );
}

/// Lists with `token`, expecting the token to be refused.
async fn assert_token_refused(
    client: &Client,
    action_type: Option<MitigationActionType>,
    token: &str,
) {
    let (failure, err) = expect_failure(
        client
            .list_mitigation_actions()
            .max_results(7)
            .set_action_type(action_type)
            .next_token(token)
            .send()
            .await,
    );
    failure
        .assert("InvalidRequestException", 400)
        .mentions(&["nextToken"]);
    assert!(
        matches!(err, ListMitigationActionsError::InvalidRequestException(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn tampered_or_foreign_tokens_are_refused() {
    let server = TestServer::start(ENGINE).await;
    let a = server.client_a();
    let b = server.client_b();
    create_thirty(&a).await;
    create_thirty(&b).await;

    let (_, token) = page(&a, 7, None, None).await;
    let token = token.expect("a next token");

    // Every single-character edit is caught.
    for i in [0, token.len() / 2, token.len() - 1] {
        let mut bytes = token.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ASCII token");
        assert_token_refused(&a, None, &tampered).await;
    }
    assert_token_refused(&a, None, "not-a-token").await;
    // A token belongs to its account and its filter.
    assert_token_refused(&b, None, &token).await;
    assert_token_refused(&a, Some(MitigationActionType::EnableIotLogging), &token).await;

    // The genuine token still works.
    let (names, _) = page(&a, 7, None, Some(token)).await;
    assert_eq!(names, (7..14).map(name).collect::<Vec<_>>());
}

#[tokio::test]
async fn max_results_out_of_range_is_400() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    for bad in [0, -1, 251] {
        let (failure, _) = expect_failure(
            client
                .list_mitigation_actions()
                .max_results(bad)
                .send()
                .await,
        );
        failure
            .assert("InvalidRequestException", 400)
            .mentions(&["maxResults"]);
    }
    for ok in [1, 250] {
        client
            .list_mitigation_actions()
            .max_results(ok)
            .send()
            .await
            .unwrap_or_else(|e| panic!("maxResults {ok}: {}", DisplayErrorContext(e)));
    }
}

#[tokio::test]
async fn paging_is_stable_while_actions_are_added() {
    // Keyset pagination: an action created behind the cursor does not shift later pages.
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_thirty(&client).await;
    let (first, token) = page(&client, 10, None, None).await;
    create_action(
        &client,
        "page-00a",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    let (second, _) = page(&client, 10, None, token).await;
    assert_eq!(first.last().map(String::as_str), Some("page-09"));
    assert_eq!(second, (10..20).map(name).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_type_filter_follows_updates() {
    let server = TestServer::start(ENGINE).await;
    let client = server.client_a();
    create_action(
        &client,
        "mover",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    client
        .update_mitigation_action()
        .action_name("mover")
        .action_params(params_for(&MitigationActionType::EnableIotLogging))
        .send()
        .await
        .expect("update");
    let logging = all_pages(&client, 10, Some(MitigationActionType::EnableIotLogging)).await;
    assert_eq!(logging.concat(), ["mover"]);
    let sns = all_pages(&client, 10, Some(MitigationActionType::PublishFindingToSns)).await;
    assert!(sns.concat().is_empty(), "{sns:?}");
}
}
