//! Conformance cases for the CRL cache and the related resources of audit findings;
//! instantiated by `conformance_tests!` with the rest of the suite.
//!
//! The CRL cache is global (not per scope), so every case uses sources of its own.

use std::sync::Arc;

use super::fixtures::all_pages;
use super::{fresh_scope, scope, unique, unique_account};
use crate::{
    AuditFindingRecord, AuditTaskRecord, CrlRecord, NewWorkItem, RelatedResourceRecord, Store,
};

fn crl(source: &str, this_update_ms: i64, marker: u8) -> CrlRecord {
    CrlRecord {
        source: source.to_owned(),
        issuer_der: vec![0x30, 0x03, 0x31, 0x01, marker],
        crl_der: vec![0x30, 0x82, 0x00, marker, 0x00, 0xff],
        this_update_ms,
        next_update_ms: Some(this_update_ms + 86_400_000),
        stored_at_ms: this_update_ms + 5,
        issuer_certificate_der: None,
    }
}

pub async fn crl_cache_put_get_newest_wins(store: Arc<dyn Store>) {
    let url = format!("http://crl.example/{}.crl", unique(""));
    assert_eq!(store.get_crl(&url).await.expect("get"), None);

    let first = crl(&url, 1_000_000, 1);
    assert!(store.put_crl(&first).await.expect("put"));
    assert_eq!(store.get_crl(&url).await.unwrap(), Some(first.clone()));

    // An older CRL does not replace a newer one.
    assert!(!store.put_crl(&crl(&url, 999_999, 2)).await.unwrap());
    assert_eq!(store.get_crl(&url).await.unwrap(), Some(first.clone()));

    // The same thisUpdate again replaces it (a re-fetch of the current CRL).
    let again = CrlRecord {
        stored_at_ms: 2_000_000,
        ..first.clone()
    };
    assert!(store.put_crl(&again).await.unwrap());
    assert_eq!(store.get_crl(&url).await.unwrap(), Some(again));

    // A newer one replaces every column, including the optional ones.
    let imported = CrlRecord {
        next_update_ms: None,
        issuer_certificate_der: Some(vec![0x30, 0x00, 0x07]),
        ..crl(&url, 3_000_000, 3)
    };
    assert!(store.put_crl(&imported).await.unwrap());
    assert_eq!(store.get_crl(&url).await.unwrap(), Some(imported.clone()));

    // Sources are independent.
    let other = format!("imported:{}", unique(""));
    assert_eq!(store.get_crl(&other).await.unwrap(), None);
    assert!(store.put_crl(&crl(&other, 1, 9)).await.unwrap());
    assert_eq!(store.get_crl(&url).await.unwrap(), Some(imported));
}

fn resource(i: usize) -> RelatedResourceRecord {
    RelatedResourceRecord {
        sort_key: format!("cert-{i:05}"),
        resource_json: format!(r#"{{"resourceType":"DEVICE_CERTIFICATE","n":{i}}}"#),
    }
}

async fn pages(
    store: &dyn Store,
    scope: &crate::Scope,
    finding_id: &str,
    page: usize,
) -> Vec<RelatedResourceRecord> {
    let key = |r: &RelatedResourceRecord| r.sort_key.clone();
    all_pages(page, key, async |after| {
        store
            .list_related_resources(scope, finding_id, after.as_deref(), page)
            .await
    })
    .await
}

pub async fn related_resources_insert_list_paging_idempotence(store: Arc<dyn Store>) {
    let scope_a = fresh_scope();
    let scope_b = scope(&unique_account(), &scope_a.region);
    let finding = unique("finding-");
    let task = unique("task-");
    assert!(pages(&*store, &scope_a, &finding, 10).await.is_empty());
    assert_eq!(
        store
            .insert_related_resources(&scope_a, &task, &finding, &[])
            .await
            .unwrap(),
        0
    );

    // Inserted out of order, in two batches that overlap: the overlap is skipped.
    let all: Vec<RelatedResourceRecord> = (0..25).map(resource).collect();
    let mut first: Vec<RelatedResourceRecord> = all[..15].to_vec();
    first.reverse();
    assert_eq!(
        store
            .insert_related_resources(&scope_a, &task, &finding, &first)
            .await
            .unwrap(),
        15
    );
    assert_eq!(
        store
            .insert_related_resources(&scope_a, &task, &finding, &all[10..])
            .await
            .unwrap(),
        10
    );
    for page in [1, 7, 25, 100] {
        assert_eq!(
            pages(&*store, &scope_a, &finding, page).await,
            all,
            "page size {page}"
        );
    }
    let after = store
        .list_related_resources(&scope_a, &finding, Some("cert-00022"), 10)
        .await
        .unwrap();
    assert_eq!(after, all[23..].to_vec());

    // Another finding, and the same finding id in another account, are separate.
    assert!(pages(&*store, &scope_a, &unique("finding-"), 10)
        .await
        .is_empty());
    assert!(pages(&*store, &scope_b, &finding, 10).await.is_empty());
    store
        .insert_related_resources(&scope_b, &task, &finding, &all[..2])
        .await
        .unwrap();
    assert_eq!(
        pages(&*store, &scope_b, &finding, 10).await,
        all[..2].to_vec()
    );
    assert_eq!(pages(&*store, &scope_a, &finding, 100).await.len(), 25);
}

pub async fn related_resources_purged_with_their_task(store: Arc<dyn Store>) {
    // Far below any realistic time, where no other case writes (the purge spans all
    // scopes).
    const BEFORE: i64 = 20_000;
    let scope = fresh_scope();
    let old = unique("old-task-");
    let running = unique("running-task-");
    for (task_id, status, started) in [
        (&old, "COMPLETED", 11_000),
        (&running, "IN_PROGRESS", 12_000),
    ] {
        let task = AuditTaskRecord {
            task_id: task_id.clone(),
            task_type: "ON_DEMAND_AUDIT_TASK".to_owned(),
            status: status.to_owned(),
            scheduled_audit_name: None,
            started_at_ms: started,
            finished_at_ms: (status == "COMPLETED").then_some(started + 1),
            checks_json: "{}".to_owned(),
            version: 1,
        };
        let work = NewWorkItem {
            id: unique("work-"),
            queue: unique("q-"),
            payload: "{}".to_owned(),
            run_after_ms: started,
        };
        store
            .create_audit_task(&scope, &task, &work, None)
            .await
            .expect("create")
            .expect("no refusal");
        let finding = AuditFindingRecord {
            finding_id: format!("{task_id}-f"),
            task_id: task_id.clone(),
            check_name: "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK".to_owned(),
            task_start_ms: started,
            finding_time_ms: started + 1,
            resource_key: "issuerId=ab".to_owned(),
            is_suppressed: false,
            body_json: "{}".to_owned(),
        };
        store
            .insert_audit_findings(&scope, &[finding])
            .await
            .expect("finding");
        let related: Vec<RelatedResourceRecord> = (0..3_000).map(resource).collect();
        for chunk in related.chunks(1_000) {
            store
                .insert_related_resources(&scope, task_id, &format!("{task_id}-f"), chunk)
                .await
                .expect("related");
        }
    }
    // The old task: 1 finding, 3,000 related resources, the task; more than one chunk.
    assert_eq!(
        store.purge_audit_history(BEFORE).await.expect("purge"),
        1 + 3_000 + 1
    );
    assert!(pages(&*store, &scope, &format!("{old}-f"), 1_000)
        .await
        .is_empty());
    assert_eq!(
        pages(&*store, &scope, &format!("{running}-f"), 1_000)
            .await
            .len(),
        3_000,
        "a running task's related resources stay"
    );
}
