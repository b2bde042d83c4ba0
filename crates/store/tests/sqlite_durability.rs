//! Acknowledged writes are on disk without any orderly shutdown.
//!
//! The store is leaked rather than dropped, so no connection is closed, no checkpoint
//! runs and the WAL is left as a crash would leave it; a new store must still read the
//! writes back. This checks what the process hands to SQLite and the OS, not power-loss
//! behaviour: the real kill -9 test (and `synchronous=FULL` across it) lives at the
//! end-to-end level, where a server process can be killed mid-load.

use palisade_store::{
    Credential, CredentialStore, MitigationActionRecord, MitigationActionStore, Scope, SqliteStore,
    Tag, TagStore,
};

#[tokio::test]
async fn writes_survive_a_store_that_never_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("palisade.db");
    let scope = Scope {
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
    };
    let cred = Credential {
        access_key_id: "AKIADURABLE".into(),
        secret_access_key: "secret".into(),
        account_id: scope.account_id.clone(),
        created_at_ms: 1,
    };
    let record = MitigationActionRecord {
        name: "durable".into(),
        id: "id-1".into(),
        arn: "arn:aws:iot:us-east-1:123456789012:mitigationaction/durable".into(),
        action_type: "ENABLE_IOT_LOGGING".into(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        params_json: "{}".into(),
        created_at_ms: 1,
        updated_at_ms: 1,
    };
    let tags = [Tag {
        key: "k".into(),
        value: "v".into(),
    }];

    let writer = SqliteStore::open(&path).unwrap();
    writer.create_credential(&cred).await.unwrap();
    writer
        .create_mitigation_action(&scope, &record, &tags, 100)
        .await
        .unwrap();
    std::mem::forget(writer);

    let reader = SqliteStore::open(&path).unwrap();
    assert_eq!(
        reader.get_credential(&cred.access_key_id).await.unwrap(),
        Some(cred)
    );
    assert_eq!(
        reader
            .get_mitigation_action(&scope, "durable")
            .await
            .unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        reader
            .list_tags(&scope, &record.arn, None, 10)
            .await
            .unwrap(),
        tags
    );
}
