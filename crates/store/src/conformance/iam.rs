//! Conformance cases for the IAM and Cognito data the role alias and Cognito checks read;
//! instantiated by `conformance_tests!` with the rest of the suite.

use std::sync::Arc;

use super::fresh_scope;
use crate::{IamDocument, Store};

fn piece(kind: &str, key: &str, body: &str, at: i64) -> IamDocument {
    IamDocument {
        kind: kind.to_owned(),
        key: key.to_owned(),
        body: body.to_owned(),
        source: format!("{key}.json"),
        stored_at_ms: at,
    }
}

pub async fn iam_documents_replace_list_and_isolate(store: Arc<dyn Store>) {
    let (scope, other) = (fresh_scope(), fresh_scope());
    let pieces: Vec<IamDocument> = ["r3", "r1", "r2"]
        .iter()
        .map(|k| piece("role", k, "{}", 1))
        .chain([piece("identity_pool", "p1", "{}", 1)])
        .collect();
    assert_eq!(
        store.put_iam_documents(&scope, &pieces).await.expect("put"),
        4
    );
    // A re-import replaces what it covers and leaves the rest.
    let again = piece("role", "r2", r#"{"new":true}"#, 2);
    store
        .put_iam_documents(&scope, std::slice::from_ref(&again))
        .await
        .expect("put again");
    assert_eq!(
        store
            .get_iam_document(&scope, "role", "r2")
            .await
            .expect("get"),
        Some(again)
    );
    let keys = |docs: Vec<IamDocument>| docs.into_iter().map(|d| d.key).collect::<Vec<_>>();
    let first = store
        .list_iam_documents(&scope, "role", None, 2)
        .await
        .expect("list");
    assert_eq!(keys(first), ["r1", "r2"]);
    let rest = store
        .list_iam_documents(&scope, "role", Some("r2"), 2)
        .await
        .expect("list");
    assert_eq!(keys(rest), ["r3"]);
    assert_eq!(
        keys(
            store
                .list_iam_documents(&scope, "identity_pool", None, 10)
                .await
                .expect("list")
        ),
        ["p1"]
    );
    // Another account sees none of it.
    assert!(store
        .list_iam_documents(&other, "role", None, 10)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        store
            .get_iam_document(&other, "role", "r1")
            .await
            .expect("get"),
        None
    );
}
