//! Conformance cases for audit mitigation actions tasks: the task records, their
//! statistics, the stages that apply actions to the registry, and the reads the engine
//! plans chunks with; instantiated by `conformance_tests!` with the rest of the suite.
//!
//! Times are around [`T0`] except in the purge case, whose old history lies far below
//! it (the purge works across all scopes). Every task's chunks go on a queue of their
//! own, so claims in one case never see another case's items.

use std::collections::BTreeSet;
use std::slice;
use std::sync::Arc;

use super::fixtures::{
    add_thing, all_pages, ca_record, cert_record, create_group, create_policy, groups_of, hex_id,
    new_policy, ok, open_handles, race, register, status_of, strings, CANCELED, CHECK_A, CHECK_B,
    CHECK_C, COMPLETED, FAILED, IN_PROGRESS, T0,
};
use super::{fresh_scope, scope, unique, unique_account, Database};
use crate::{
    AuditFindingKey, AuditFindingRecord, AuditTaskKey, CaCertificateRecord, CertificateRecord,
    CertificateRefusal, EffectRefusal, ExecutionError, FindingRef, MitigationCancelRefusal,
    MitigationCheckStats, MitigationEffect, MitigationExecutionRecord, MitigationStage,
    MitigationStep, MitigationTaskCreated, MitigationTaskFilter, MitigationTaskRecord,
    NewPolicyVersion, NewWorkItem, PolicyRefusal, Scope, StageOutcome, Store, ThingRefusal,
    V2LoggingOptionsRecord, WorkItem,
};

/// When stages in these cases end (their `now_ms`).
const NOW: i64 = T0 + 100;
const LEASE_MS: i64 = 60_000;
const LIMIT: usize = 10;

const SKIPPED: &str = "SKIPPED";

const BLANK_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;

// ---------------------------------------------------------------------------------
// Tasks, chunks and stages

fn task(
    task_id: &str,
    audit: Option<&str>,
    findings: &[&str],
    started: i64,
) -> MitigationTaskRecord {
    MitigationTaskRecord {
        task_id: task_id.to_owned(),
        client_request_token: format!("token-{task_id}"),
        status: IN_PROGRESS.to_owned(),
        started_at_ms: started,
        finished_at_ms: None,
        audit_task_id: audit.map(str::to_owned),
        finding_ids: findings.iter().map(|f| (*f).to_owned()).collect(),
        body_json: format!(r#"{{"task":"{task_id}","target":{{}}}}"#),
    }
}

fn stats(check: &str, total: i64) -> MitigationCheckStats {
    MitigationCheckStats {
        check_name: check.to_owned(),
        total,
        ..MitigationCheckStats::default()
    }
}

/// `n` chunks of `task_id` on `queue`, payload `chunk-<i>`.
fn chunks(queue: &str, task_id: &str, n: usize) -> Vec<NewWorkItem> {
    (0..n)
        .map(|i| NewWorkItem {
            id: format!("{task_id}-chunk-{i}-{}", unique("")),
            queue: queue.to_owned(),
            payload: format!("chunk-{i}"),
            run_after_ms: T0,
        })
        .collect()
}

async fn start(
    store: &dyn Store,
    scope: &Scope,
    task: &MitigationTaskRecord,
    stats: &[MitigationCheckStats],
    chunks: &[NewWorkItem],
) {
    let created = store
        .create_mitigation_task(scope, task, stats, chunks, LIMIT)
        .await
        .expect("create task");
    assert_eq!(created, MitigationTaskCreated::Created, "{}", task.task_id);
}

async fn claim(store: &dyn Store, queue: &str, worker: &str) -> Vec<WorkItem> {
    store
        .claim_work(queue, worker, 1_000, T0, LEASE_MS)
        .await
        .expect("claim")
}

fn step(
    finding: &str,
    check: &str,
    index: u32,
    after: u32,
    effect: MitigationEffect,
) -> MitigationStep {
    MitigationStep {
        finding_id: finding.to_owned(),
        check_name: check.to_owned(),
        action_index: index,
        actions_after: after,
        started_at_ms: T0 + 50,
        effect,
    }
}

fn stage(
    task_id: &str,
    item: &WorkItem,
    worker: &str,
    steps: Vec<MitigationStep>,
    next_payload: Option<&str>,
) -> MitigationStage {
    MitigationStage {
        task_id: task_id.to_owned(),
        work_id: item.id.clone(),
        worker: worker.to_owned(),
        next_payload: next_payload.map(str::to_owned),
        steps,
        skipped: Vec::new(),
        now_ms: NOW,
    }
}

async fn apply(store: &dyn Store, scope: &Scope, stage: &MitigationStage) -> StageOutcome {
    ok(store.apply_mitigation_stage(scope, stage, explain)).await
}

async fn executions(
    store: &dyn Store,
    scope: &Scope,
    task_id: &str,
    finding: &str,
) -> Vec<MitigationExecutionRecord> {
    ok(store.get_mitigation_executions(scope, task_id, finding)).await
}

async fn get(
    store: &dyn Store,
    scope: &Scope,
    task_id: &str,
) -> (MitigationTaskRecord, Vec<MitigationCheckStats>) {
    let found = ok(store.get_mitigation_task(scope, task_id)).await;
    found.expect("task exists")
}

/// Starts an audit's task with `stats` and one chunk on a queue of its own: the task and
/// the queue.
async fn start_single(
    store: &dyn Store,
    scope: &Scope,
    stats: &[MitigationCheckStats],
) -> (MitigationTaskRecord, String) {
    let queue = unique("mq-");
    let t = task(&unique("task-"), Some("audit"), &[], T0);
    start(store, scope, &t, stats, &chunks(&queue, &t.task_id, 1)).await;
    (t, queue)
}

/// One check's statistics as stored.
async fn check_stats(
    store: &dyn Store,
    scope: &Scope,
    task_id: &str,
    check: &str,
) -> MitigationCheckStats {
    get(store, scope, task_id)
        .await
        .1
        .into_iter()
        .find(|s| s.check_name == check)
        .unwrap_or_else(|| panic!("no statistics for {check}"))
}

/// Runs `effects` (one finding each, one action, check A) as the single stage of a new
/// one-chunk task; returns the task id and each finding's execution.
async fn run_effects(
    store: &dyn Store,
    scope: &Scope,
    effects: Vec<MitigationEffect>,
) -> (String, Vec<MitigationExecutionRecord>) {
    let n = i64::try_from(effects.len()).unwrap();
    let (t, queue) = start_single(store, scope, &[stats(CHECK_A, n)]).await;
    let task_id = t.task_id;
    let item = claim(store, &queue, "w").await.remove(0);
    let steps: Vec<MitigationStep> = effects
        .into_iter()
        .enumerate()
        .map(|(i, effect)| step(&format!("f{i}"), CHECK_A, 0, 0, effect))
        .collect();
    let n = steps.len();
    let outcome = apply(store, scope, &stage(&task_id, &item, "w", steps, None)).await;
    assert_eq!(
        outcome,
        StageOutcome::Applied {
            task_finished: true
        }
    );
    let mut out = Vec::new();
    for i in 0..n {
        let mut found = executions(store, scope, &task_id, &format!("f{i}")).await;
        assert_eq!(found.len(), 1, "one execution for f{i}");
        out.push(found.remove(0));
    }
    (task_id, out)
}

fn assert_completed(e: &MitigationExecutionRecord) {
    assert_eq!(
        (e.status.as_str(), &e.error_code, &e.message),
        ("COMPLETED", &None, &None),
        "{e:?}"
    );
    assert_eq!((e.started_at_ms, e.finished_at_ms), (T0 + 50, Some(NOW)));
}

/// Words a refusal as these cases check it: the code says it was refused, the message
/// is the refusal itself (the engine's wording has its own tests).
fn explain(refusal: &EffectRefusal) -> ExecutionError {
    let message = match refusal {
        // A missing group is the same failure whether a thing's membership change found
        // it or the stage checked the groups because no thing was attached.
        EffectRefusal::Membership {
            refusal: ThingRefusal::GroupNotFound(group),
            ..
        } => format!("{:?}", refused_group(group)),
        // The groups are the effect's own, passed through.
        EffectRefusal::Membership { thing, refusal, .. } => format!("{thing}: {refusal:?}"),
        other => format!("{other:?}"),
    };
    ExecutionError {
        code: "Refused".into(),
        message,
    }
}

fn assert_refused(e: &MitigationExecutionRecord, refusal: &EffectRefusal) {
    assert_failed(e, "Refused", &explain(refusal).message);
}

/// Each of `got` completed (`None`), or failed with the refusal given.
fn assert_executions(got: &[MitigationExecutionRecord], expected: &[Option<EffectRefusal>]) {
    assert_eq!(got.len(), expected.len());
    for (e, refusal) in got.iter().zip(expected) {
        match refusal {
            None => assert_completed(e),
            Some(refusal) => assert_refused(e, refusal),
        }
    }
}

/// Deactivated as UpdateCertificate would have done it, at the stage's time.
fn assert_deactivated(status: &str, customer_version: i64, updated_at_ms: i64) {
    assert_eq!(
        (status, customer_version, updated_at_ms),
        ("INACTIVE", 2, NOW),
        "changed as UpdateCertificate would"
    );
}

fn refused_certificate(id: &str, status: Option<&str>) -> EffectRefusal {
    EffectRefusal::Certificate {
        id: id.to_owned(),
        refusal: match status {
            Some(status) => CertificateRefusal::State {
                status: status.to_owned(),
            },
            None => CertificateRefusal::NotFound,
        },
    }
}

fn refused_membership(thing: &str, refusal: ThingRefusal) -> EffectRefusal {
    EffectRefusal::Membership {
        thing: thing.to_owned(),
        groups: Vec::new(),
        refusal,
    }
}

fn refused_group(group: &str) -> EffectRefusal {
    EffectRefusal::GroupNotFound {
        group: group.to_owned(),
    }
}

fn assert_failed(e: &MitigationExecutionRecord, code: &str, message: &str) {
    assert_eq!(e.status, FAILED, "{e:?}");
    assert_eq!(e.error_code.as_deref(), Some(code), "{e:?}");
    assert_eq!(e.message.as_deref(), Some(message), "{e:?}");
    assert_eq!(e.finished_at_ms, Some(NOW));
}

// ---------------------------------------------------------------------------------
// The registry the effects act on

/// Registers a device certificate with `status`.
async fn certificate(store: &dyn Store, scope: &Scope, status: &str) -> CertificateRecord {
    let record = cert_record(scope, &hex_id(), status, None, T0);
    register(store, scope, &record).await;
    record
}

async fn ca_certificate(store: &dyn Store, scope: &Scope, status: &str) -> CaCertificateRecord {
    let id = hex_id();
    let record = CaCertificateRecord {
        status: status.to_owned(),
        ..ca_record(scope, &id, id.as_bytes(), T0)
    };
    store
        .register_ca_certificate(scope, &record, &[], 10)
        .await
        .expect("register CA")
        .expect("not refused");
    record
}

/// Creates the groups, each under its parent if it has one, and the things.
async fn registry(
    store: &dyn Store,
    scope: &Scope,
    groups: &[(&str, Option<&str>)],
    things: &[&str],
) {
    for (name, parent) in groups {
        create_group(store, scope, name, *parent).await;
    }
    for thing in things {
        add_thing(store, scope, thing).await;
    }
}

/// Registers an ACTIVE certificate attached to `things`, in that order.
async fn certificate_of(store: &dyn Store, scope: &Scope, things: &[&str]) -> CertificateRecord {
    let cert = certificate(store, scope, "ACTIVE").await;
    for thing in things {
        attach(store, scope, thing, &cert).await;
    }
    cert
}

/// Each thing is a member of exactly the groups given.
async fn assert_memberships(store: &dyn Store, scope: &Scope, expected: &[(&str, &[&str])]) {
    for (thing, groups) in expected {
        assert_eq!(
            groups_of(store, scope, thing).await,
            strings(groups),
            "{thing}"
        );
    }
}

async fn attach(store: &dyn Store, scope: &Scope, thing: &str, cert: &CertificateRecord) {
    store
        .attach_thing_principal(scope, thing, &cert.id, false, T0)
        .await
        .expect("attach")
        .expect("not refused");
}

async fn join(store: &dyn Store, scope: &Scope, thing: &str, groups: &[&str]) {
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    store
        .change_thing_groups(scope, thing, &groups, &[], LIMIT)
        .await
        .expect("join")
        .expect("not refused");
}

async fn policy(store: &dyn Store, scope: &Scope, name: &str, versions: usize) {
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#;
    create_policy(store, scope, &new_policy(scope, name, document)).await;
    for _ in 1..versions {
        store
            .create_policy_version(scope, name, &blank_version(false), 5)
            .await
            .expect("add version")
            .expect("not refused");
    }
}

fn blank_version(set_as_default: bool) -> NewPolicyVersion {
    NewPolicyVersion {
        document: BLANK_POLICY.to_owned(),
        set_as_default,
        generation_id: unique("gen-"),
        created_at_ms: NOW,
    }
}

// ---------------------------------------------------------------------------------
// Cases: task records

pub async fn mitigation_task_create_get_exists(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let queue = unique("mq-");
    let by_findings = task(&unique("task-"), None, &["f2", "f1", "f3"], T0);
    let task_stats = [stats(CHECK_B, 3), stats(CHECK_A, 2)];
    let items = chunks(&queue, &by_findings.task_id, 2);
    start(&*store, &scope, &by_findings, &task_stats, &items).await;

    let (got, got_stats) = get(&*store, &scope, &by_findings.task_id).await;
    assert_eq!(got, by_findings, "finding ids keep their order");
    assert_eq!(
        got_stats,
        vec![stats(CHECK_B, 3), stats(CHECK_A, 2)],
        "statistics by check name"
    );
    for item in &items {
        let stored = ok(store.get_work(&item.id)).await.expect("chunk queued");
        assert_eq!(
            (stored.queue, stored.payload),
            (queue.clone(), item.payload.clone())
        );
    }

    // The same id again, whatever the token: the stored task, and nothing written.
    let mut again = by_findings.clone();
    again.client_request_token = "other-token".into();
    again.body_json = "{}".into();
    let again_items = chunks(&queue, &again.task_id, 1);
    let outcome =
        ok(store.create_mitigation_task(&scope, &again, &[stats(CHECK_C, 9)], &again_items, LIMIT))
            .await;
    assert_eq!(outcome, MitigationTaskCreated::Exists(by_findings.clone()));
    assert_eq!(ok(store.get_work(&again_items[0].id)).await, None);
    assert_eq!(
        get(&*store, &scope, &again.task_id).await.1,
        vec![stats(CHECK_B, 3), stats(CHECK_A, 2)]
    );

    let by_audit = task(&unique("task-"), Some("audit-1"), &[], T0 + 1);
    start(
        &*store,
        &scope,
        &by_audit,
        &[],
        &chunks(&queue, &by_audit.task_id, 1),
    )
    .await;
    assert_eq!(
        get(&*store, &scope, &by_audit.task_id).await,
        (by_audit.clone(), vec![])
    );

    assert_eq!(ok(store.get_mitigation_task(&scope, "missing")).await, None);
    for other in [
        self::scope(&scope.account_id, "eu-west-1"),
        self::scope(&unique_account(), &scope.region),
    ] {
        assert_eq!(
            ok(store.get_mitigation_task(&other, &by_findings.task_id)).await,
            None
        );
        // Task ids are per scope.
        start(&*store, &other, &by_findings, &[], &chunks(&queue, "x", 1)).await;
    }
}

pub async fn mitigation_task_in_progress_limit(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let queue = unique("mq-");
    let mut running = Vec::new();
    for _ in 0..2 {
        let t = task(&unique("task-"), Some("a"), &[], T0);
        let created =
            ok(store.create_mitigation_task(&scope, &t, &[], &chunks(&queue, &t.task_id, 1), 2))
                .await;
        assert_eq!(created, MitigationTaskCreated::Created);
        running.push(t);
    }
    let third = task(&unique("task-"), Some("a"), &[], T0);
    let third_items = chunks(&queue, &third.task_id, 1);
    let refused =
        ok(store.create_mitigation_task(&scope, &third, &[stats(CHECK_A, 1)], &third_items, 2))
            .await;
    assert_eq!(refused, MitigationTaskCreated::TooManyInProgress);
    assert_eq!(
        ok(store.get_mitigation_task(&scope, &third.task_id)).await,
        None
    );
    assert_eq!(ok(store.get_work(&third_items[0].id)).await, None);

    // An existing id is answered as such even at the limit.
    let existing = ok(store.create_mitigation_task(&scope, &running[0], &[], &[], 2)).await;
    assert_eq!(existing, MitigationTaskCreated::Exists(running[0].clone()));

    // Another scope has its own count; a finished task frees its slot.
    let other = fresh_scope();
    let theirs = task(&unique("task-"), None, &["f"], T0);
    let created = ok(store.create_mitigation_task(&other, &theirs, &[], &[], 2)).await;
    assert_eq!(created, MitigationTaskCreated::Created);
    ok(store.cancel_mitigation_task(&scope, &running[0].task_id, NOW))
        .await
        .expect("cancel");
    let created = ok(store.create_mitigation_task(&scope, &third, &[], &third_items, 2)).await;
    assert_eq!(created, MitigationTaskCreated::Created);
}

/// Starts `2 * LIMIT` tasks and 4 copies of one more at once over so many handles on
/// `db`: exactly `LIMIT` tasks in progress, and the copies agree on one task.
pub async fn race_to_the_limit(db: &dyn Database, handles: usize) {
    let handles = &open_handles(db, handles).await;
    let scope = fresh_scope();
    let queue = unique("mq-");
    let outcomes = race(handles, 2 * LIMIT, |i, store| {
        let (scope, queue) = (scope.clone(), queue.clone());
        async move {
            let t = task(&format!("race-{i:02}"), Some("a"), &[], T0);
            let items = chunks(&queue, &t.task_id, 2);
            let outcome = store
                .create_mitigation_task(&scope, &t, &[stats(CHECK_A, 1)], &items, LIMIT)
                .await
                .expect("create");
            (t, items, outcome)
        }
    })
    .await;
    let (mut won, mut refused) = (Vec::new(), Vec::new());
    for (t, items, outcome) in outcomes {
        match outcome {
            MitigationTaskCreated::Created => won.push((t, items)),
            MitigationTaskCreated::TooManyInProgress => refused.push((t, items)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((won.len(), refused.len()), (LIMIT, LIMIT));
    for (t, items) in &won {
        assert!(store_has(&handles[0], &scope, &t.task_id).await);
        for item in items {
            assert!(ok(handles[0].get_work(&item.id)).await.is_some());
        }
    }
    for (t, items) in &refused {
        assert!(!store_has(&handles[0], &scope, &t.task_id).await);
        for item in items {
            assert_eq!(ok(handles[0].get_work(&item.id)).await, None);
        }
    }

    // The same new id at once, with different tokens: one creates, the others see it.
    let scope = fresh_scope();
    let outcomes = race(handles, 4, |i, store| {
        let (scope, queue) = (scope.clone(), queue.clone());
        async move {
            let mut t = task("same", None, &["f"], T0);
            t.client_request_token = format!("token-{i}");
            let outcome = store
                .create_mitigation_task(&scope, &t, &[], &chunks(&queue, "same", 1), LIMIT)
                .await
                .expect("create");
            (t, outcome)
        }
    })
    .await;
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for outcome in outcomes {
        match outcome {
            (t, MitigationTaskCreated::Created) => winners.push(t),
            (_, MitigationTaskCreated::Exists(stored)) => seen.push(stored),
            (_, other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert!(seen.iter().all(|s| *s == winners[0]));
}

async fn store_has(store: &Arc<dyn Store>, scope: &Scope, task_id: &str) -> bool {
    ok(store.get_mitigation_task(scope, task_id))
        .await
        .is_some()
}

pub async fn mitigation_task_listing_filters_and_paging(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let queue = unique("mq-");
    let tasks = [
        task("task-a", Some("au1"), &[], T0 + 1),
        task("task-b", None, &["au1-x", "au2-y"], T0 + 2),
        task("task-c", Some("au2"), &[], T0 + 2),
        task("task-d", None, &["au2-z"], T0 + 3),
        task("task-e", Some("au1"), &[], T0 + 10),
    ];
    for t in &tasks {
        start(&*store, &scope, t, &[], &chunks(&queue, &t.task_id, 1)).await;
    }
    ok(store.cancel_mitigation_task(&scope, "task-d", NOW))
        .await
        .expect("cancel d");
    // Another scope's tasks never show.
    let other = fresh_scope();
    start(
        &*store,
        &other,
        &task("task-z", Some("au1"), &["au1-x"], T0 + 2),
        &[],
        &[],
    )
    .await;

    let all = MitigationTaskFilter {
        started_from_ms: i64::MIN,
        started_to_ms: i64::MAX,
        ..MitigationTaskFilter::default()
    };
    let finding = |id: &str, audit: &str| {
        Some(FindingRef {
            finding_id: id.to_owned(),
            audit_task_id: audit.to_owned(),
        })
    };
    let cases: Vec<(MitigationTaskFilter, Vec<&str>)> = vec![
        (
            all.clone(),
            vec!["task-e", "task-d", "task-c", "task-b", "task-a"],
        ),
        (
            MitigationTaskFilter {
                started_from_ms: T0 + 2,
                started_to_ms: T0 + 3,
                ..all.clone()
            },
            vec!["task-d", "task-c", "task-b"],
        ),
        (
            MitigationTaskFilter {
                audit_task_id: Some("au1".into()),
                ..all.clone()
            },
            vec!["task-e", "task-a"],
        ),
        (
            MitigationTaskFilter {
                finding: finding("au1-x", "au1"),
                ..all.clone()
            },
            vec!["task-e", "task-b", "task-a"],
        ),
        (
            MitigationTaskFilter {
                finding: finding("au2-z", "au2"),
                ..all.clone()
            },
            vec!["task-d", "task-c"],
        ),
        (
            MitigationTaskFilter {
                finding: finding("au3-q", "au3"),
                ..all.clone()
            },
            vec![],
        ),
        (
            MitigationTaskFilter {
                status: Some(CANCELED.into()),
                ..all.clone()
            },
            vec!["task-d"],
        ),
        (
            MitigationTaskFilter {
                status: Some(IN_PROGRESS.into()),
                audit_task_id: Some("au1".into()),
                started_from_ms: T0,
                started_to_ms: T0 + 5,
                finding: finding("au1-x", "au1"),
            },
            vec!["task-a"],
        ),
    ];
    for (filter, expected) in cases {
        for page in [1, 2, 100] {
            let key = |t: &MitigationTaskRecord| AuditTaskKey {
                started_at_ms: t.started_at_ms,
                task_id: t.task_id.clone(),
            };
            let got = all_pages(page, key, async |after| {
                let after = after.as_ref();
                store
                    .list_mitigation_tasks(&scope, &filter, after, page)
                    .await
            })
            .await;
            let ids: Vec<&str> = got.iter().map(|t| t.task_id.as_str()).collect();
            assert_eq!(ids, expected, "{filter:?}, page {page}");
            for t in &got {
                let written = tasks.iter().find(|w| w.task_id == t.task_id).unwrap();
                assert_eq!(t.finding_ids, written.finding_ids);
                assert_eq!(t.audit_task_id, written.audit_task_id);
                let status = if t.task_id == "task-d" {
                    CANCELED
                } else {
                    IN_PROGRESS
                };
                assert_eq!(t.status, status);
            }
        }
    }
}

pub async fn mitigation_task_cancel_counts_the_rest(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let (t, queue) = start_single(
        &*store,
        &scope,
        &[stats(CHECK_A, 5), stats(CHECK_B, 3), stats(CHECK_C, 2)],
    )
    .await;
    let item = claim(&*store, &queue, "w").await.remove(0);
    let mut first = stage(
        &t.task_id,
        &item,
        "w",
        vec![
            step("f1", CHECK_A, 0, 0, MitigationEffect::Applied),
            step(
                "f2",
                CHECK_A,
                0,
                0,
                MitigationEffect::Failed {
                    error_code: "X".into(),
                    message: "no".into(),
                },
            ),
        ],
        Some("next"),
    );
    first.skipped = vec![(CHECK_C.into(), 2)];
    assert_eq!(
        apply(&*store, &scope, &first).await,
        StageOutcome::Applied {
            task_finished: false
        }
    );

    ok(store.cancel_mitigation_task(&scope, &t.task_id, T0 + 500))
        .await
        .expect("cancel");
    let (canceled, got_stats) = get(&*store, &scope, &t.task_id).await;
    assert_eq!(
        (canceled.status.as_str(), canceled.finished_at_ms),
        (CANCELED, Some(T0 + 500))
    );
    let counts = |s: &MitigationCheckStats| (s.total, s.succeeded, s.failed, s.skipped, s.canceled);
    let got: Vec<_> = got_stats.iter().map(counts).collect();
    assert_eq!(
        got,
        vec![(3, 0, 0, 0, 3), (5, 1, 1, 0, 3), (2, 0, 0, 2, 0)],
        "by check name: B, A, C"
    );

    assert_eq!(
        ok(store.cancel_mitigation_task(&scope, &t.task_id, T0 + 600)).await,
        Err(MitigationCancelRefusal::NotInProgress(CANCELED.into()))
    );
    assert_eq!(
        ok(store.cancel_mitigation_task(&scope, "missing", T0)).await,
        Err(MitigationCancelRefusal::NotFound)
    );
    assert_eq!(
        ok(store.cancel_mitigation_task(&fresh_scope(), &t.task_id, T0)).await,
        Err(MitigationCancelRefusal::NotFound)
    );

    // The chunk's next stage finds the task canceled: nothing applied, the chunk gone,
    // what was applied before stays.
    let cert = certificate(&*store, &scope, "ACTIVE").await;
    let late = stage(
        &t.task_id,
        &item,
        "w",
        vec![step(
            "f3",
            CHECK_A,
            0,
            0,
            MitigationEffect::DeactivateCertificate {
                certificate_id: cert.id.clone(),
            },
        )],
        None,
    );
    assert_eq!(
        apply(&*store, &scope, &late).await,
        StageOutcome::TaskNotInProgress
    );
    assert_eq!(ok(store.get_work(&item.id)).await, None);
    assert_eq!(
        ok(store.get_certificate(&scope, &cert.id))
            .await
            .unwrap()
            .status,
        "ACTIVE"
    );
    assert!(executions(&*store, &scope, &t.task_id, "f3")
        .await
        .is_empty());
    assert_eq!(executions(&*store, &scope, &t.task_id, "f1").await.len(), 1);
    assert_eq!(get(&*store, &scope, &t.task_id).await.1, got_stats);

    // A finished task cannot be canceled.
    let (done, _) = run_effects(&*store, &scope, vec![MitigationEffect::Applied]).await;
    assert_eq!(
        ok(store.cancel_mitigation_task(&scope, &done, T0)).await,
        Err(MitigationCancelRefusal::NotInProgress(COMPLETED.into()))
    );
}

// ---------------------------------------------------------------------------------
// Cases: effects

pub async fn mitigation_stage_deactivates_certificates(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let active = certificate(&*store, &scope, "ACTIVE").await;
    let inactive = certificate(&*store, &scope, "INACTIVE").await;
    let revoked = certificate(&*store, &scope, "REVOKED").await;
    let transfer = certificate(&*store, &scope, "PENDING_TRANSFER").await;
    let twice = certificate(&*store, &scope, "ACTIVE").await;
    let missing = hex_id();
    let deactivate = |id: &str| MitigationEffect::DeactivateCertificate {
        certificate_id: id.to_owned(),
    };
    let ids = [
        &active.id,
        &inactive.id,
        &revoked.id,
        &transfer.id,
        &missing,
        &twice.id,
        &twice.id,
    ];
    let (task_id, got) = run_effects(&*store, &scope, ids.map(|id| deactivate(id)).into()).await;
    assert_executions(
        &got,
        &[
            None,
            None,
            Some(refused_certificate(&revoked.id, Some("REVOKED"))),
            Some(refused_certificate(&transfer.id, Some("PENDING_TRANSFER"))),
            Some(refused_certificate(&missing, None)),
            None,
            None,
        ],
    );

    let now = |id: &str| {
        let store = Arc::clone(&store);
        let (scope, id) = (scope.clone(), id.to_owned());
        async move { ok(store.get_certificate(&scope, &id)).await.unwrap() }
    };
    let changed = now(&active.id).await;
    assert_deactivated(
        &changed.status,
        changed.customer_version,
        changed.updated_at_ms,
    );
    assert_ne!(changed.generation_id, active.generation_id);
    assert_eq!(
        now(&inactive.id).await,
        inactive,
        "already INACTIVE: unchanged"
    );
    assert_eq!(now(&revoked.id).await, revoked);
    assert_eq!(now(&transfer.id).await, transfer);
    let changed = now(&twice.id).await;
    assert_eq!(
        (changed.status.as_str(), changed.customer_version),
        ("INACTIVE", 2),
        "named twice, changed once"
    );

    let (task, s) = get(&*store, &scope, &task_id).await;
    assert_eq!((s[0].succeeded, s[0].failed), (4, 3));
    assert_eq!(
        (task.status.as_str(), task.finished_at_ms),
        (FAILED, Some(NOW))
    );
}

pub async fn mitigation_stage_deactivates_ca_certificates(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let active = ca_certificate(&*store, &scope, "ACTIVE").await;
    let inactive = ca_certificate(&*store, &scope, "INACTIVE").await;
    let missing = hex_id();
    let deactivate = |id: &str| MitigationEffect::DeactivateCaCertificate {
        certificate_id: id.to_owned(),
    };
    let ids = [&active.id, &inactive.id, &missing];
    let (_, got) = run_effects(&*store, &scope, ids.map(|id| deactivate(id)).into()).await;
    let not_found = EffectRefusal::CaCertificateNotFound {
        id: missing.clone(),
    };
    assert_executions(&got, &[None, None, Some(not_found)]);
    let changed = ok(store.get_ca_certificate(&scope, &active.id))
        .await
        .unwrap();
    assert_deactivated(
        &changed.status,
        changed.customer_version,
        changed.updated_at_ms,
    );
    assert_eq!(
        changed.auto_registration_status, active.auto_registration_status,
        "only the status changes"
    );
    assert_eq!(
        ok(store.get_ca_certificate(&scope, &inactive.id)).await,
        Some(inactive),
        "already INACTIVE: unchanged"
    );
}

pub async fn mitigation_stage_adds_things_to_groups(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    // Hierarchies: a (root a, child a1), b, c, d, e.
    let groups = [
        ("a", None),
        ("a1", Some("a")),
        ("b", None),
        ("c", None),
        ("d", None),
        ("e", None),
    ];
    registry(&*store, &scope, &groups, &["t1", "t2", "t3", "t4", "t5"]).await;
    let two_things = certificate_of(&*store, &scope, &["t2", "t1"]).await;
    let no_things = certificate_of(&*store, &scope, &[]).await;
    let second_fails = certificate_of(&*store, &scope, &["t3", "t4"]).await;
    join(&*store, &scope, "t4", &["a"]).await;
    let full = certificate_of(&*store, &scope, &["t5"]).await;
    join(&*store, &scope, "t5", &["c", "d"]).await;

    let add = |cert: &CertificateRecord, groups: &[&str], max_groups: usize| {
        MitigationEffect::AddThingsToGroups {
            principal: cert.arn.clone(),
            groups: strings(groups),
            max_groups,
        }
    };
    let (_, got) = run_effects(
        &*store,
        &scope,
        vec![
            add(&two_things, &["a1", "b"], LIMIT),
            add(&no_things, &["b"], LIMIT),
            add(&second_fails, &["a1"], LIMIT),
            add(&two_things, &["missing"], LIMIT),
            add(&full, &["e"], 2),
            add(&two_things, &["b"], LIMIT),
            add(&no_things, &["a", "a1"], LIMIT),
            add(&full, &["b", "a"], LIMIT),
            add(&no_things, &["b", "missing", "gone"], LIMIT),
        ],
    )
    .await;
    let same_hierarchy = ThingRefusal::SameHierarchy {
        member_of: "a".into(),
        requested: "a1".into(),
    };
    let too_many = ThingRefusal::TooManyGroups { limit: 2 };
    assert_executions(
        &got,
        &[
            None,
            None,
            Some(refused_membership("t4", same_hierarchy)),
            Some(refused_group("missing")),
            Some(refused_membership("t5", too_many)),
            None,
            None,
            None,
            Some(refused_group("missing")),
        ],
    );
    // t3 joined before t4 failed: the savepoint took it back.
    let expected: [(&str, &[&str]); 5] = [
        ("t1", &["a1", "b"]),
        ("t2", &["a1", "b"]),
        ("t3", &[]),
        ("t4", &["a"]),
        ("t5", &["a", "b", "c", "d"]),
    ];
    assert_memberships(&*store, &scope, &expected).await;
}

/// Registers `n` device certificates with `status` at once.
async fn certificates(
    store: &Arc<dyn Store>,
    scope: &Scope,
    n: usize,
    status: &str,
) -> Vec<String> {
    race(slice::from_ref(store), n, |_, store| {
        let (scope, status) = (scope.clone(), status.to_owned());
        async move { certificate(&*store, &scope, &status).await.id }
    })
    .await
}

pub async fn mitigation_stage_deactivates_many_certificates(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let active = certificates(&store, &scope, 3, "ACTIVE").await;
    let inactive = certificate(&*store, &scope, "INACTIVE").await;
    let revoked = certificate(&*store, &scope, "REVOKED").await;
    let transfer = certificate(&*store, &scope, "PENDING_TRANSFER").await;
    let untouched = certificates(&store, &scope, 2, "ACTIVE").await;
    let missing = hex_id();
    // More than one statement's worth on engines that batch them, with the refusal in
    // the last: everything before it must be undone too.
    let many = certificates(&store, &scope, 1_100, "ACTIVE").await;
    let deactivate = |ids: Vec<String>| MitigationEffect::DeactivateCertificates {
        certificate_ids: ids,
    };
    let (task_id, got) = run_effects(
        &*store,
        &scope,
        vec![
            deactivate(
                active
                    .iter()
                    .cloned()
                    .chain([inactive.id.clone()])
                    .collect(),
            ),
            deactivate(vec![
                untouched[0].clone(),
                revoked.id.clone(),
                untouched[1].clone(),
            ]),
            deactivate(vec![untouched[0].clone(), transfer.id.clone()]),
            deactivate(vec![untouched[1].clone(), missing.clone()]),
            deactivate(many.iter().cloned().chain([revoked.id.clone()]).collect()),
            deactivate(Vec::new()),
        ],
    )
    .await;
    let revoked_refusal = refused_certificate(&revoked.id, Some("REVOKED"));
    assert_executions(
        &got,
        &[
            None,
            Some(revoked_refusal.clone()),
            Some(refused_certificate(&transfer.id, Some("PENDING_TRANSFER"))),
            Some(refused_certificate(&missing, None)),
            Some(revoked_refusal),
            None,
        ],
    );

    for id in &active {
        let changed = ok(store.get_certificate(&scope, id)).await.unwrap();
        assert_deactivated(
            &changed.status,
            changed.customer_version,
            changed.updated_at_ms,
        );
    }
    assert_eq!(
        ok(store.get_certificate(&scope, &inactive.id)).await,
        Some(inactive),
        "already INACTIVE: unchanged"
    );
    for id in untouched.iter().chain(&many) {
        assert_eq!(
            status_of(&*store, &scope, id).await,
            "ACTIVE",
            "a failed effect changes none of its certificates"
        );
    }
    assert_eq!(status_of(&*store, &scope, &revoked.id).await, "REVOKED");
    assert_eq!(
        status_of(&*store, &scope, &transfer.id).await,
        "PENDING_TRANSFER"
    );

    // The same many without the refused one: all change.
    let (_, got) = run_effects(&*store, &scope, vec![deactivate(many.clone())]).await;
    assert_completed(&got[0]);
    for id in &many {
        assert_eq!(status_of(&*store, &scope, id).await, "INACTIVE");
    }
    let s = check_stats(&*store, &scope, &task_id, CHECK_A).await;
    assert_eq!((s.total, s.succeeded, s.failed), (6, 2, 4));
}

pub async fn mitigation_stage_adds_things_of_many_certificates(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    // Hierarchies: h (root h, children h1, h2), g, k.
    let groups = [
        ("h", None),
        ("h1", Some("h")),
        ("h2", Some("h")),
        ("g", None),
        ("k", None),
    ];
    let things = ["t1", "t2", "t3", "t4", "t5", "t6"];
    registry(&*store, &scope, &groups, &things).await;
    // t2 is attached to both c1 and c2.
    let c1 = certificate_of(&*store, &scope, &["t1", "t2"]).await;
    let c2 = certificate_of(&*store, &scope, &["t2", "t3"]).await;
    let bare = certificate_of(&*store, &scope, &[]).await;
    // c4's thing could move; c5's is already in h2, so h1 is refused.
    let c4 = certificate_of(&*store, &scope, &["t4"]).await;
    let c5 = certificate_of(&*store, &scope, &["t5"]).await;
    join(&*store, &scope, "t5", &["h2"]).await;
    let c6 = certificate_of(&*store, &scope, &["t6"]).await;

    let add = |certs: &[&CertificateRecord], groups: &[&str]| {
        MitigationEffect::AddThingsOfCertificatesToGroups {
            certificate_ids: certs.iter().map(|c| c.id.clone()).collect(),
            groups: strings(groups),
            max_groups: LIMIT,
        }
    };
    let (task_id, got) = run_effects(
        &*store,
        &scope,
        vec![
            add(&[&c1, &c2, &bare], &["h1", "g"]),
            add(&[&c4, &c5], &["k", "h1"]),
            add(&[&bare], &["g", "missing"]),
            add(&[], &["gone"]),
            add(&[], &["k"]),
            add(&[&c6, &bare], &["k", "missing"]),
        ],
    )
    .await;
    let same_hierarchy = ThingRefusal::SameHierarchy {
        member_of: "h2".into(),
        requested: "h1".into(),
    };
    assert_executions(
        &got,
        &[
            None,
            Some(refused_membership("t5", same_hierarchy)),
            Some(refused_group("missing")),
            Some(refused_group("gone")),
            None,
            Some(refused_group("missing")),
        ],
    );
    // t4 joined before t5 failed: the savepoint took it back; nothing joined when a
    // group is missing.
    let expected: [(&str, &[&str]); 6] = [
        ("t1", &["g", "h1"]),
        ("t2", &["g", "h1"]),
        ("t3", &["g", "h1"]),
        ("t4", &[]),
        ("t5", &["h2"]),
        ("t6", &[]),
    ];
    assert_memberships(&*store, &scope, &expected).await;
    let s = check_stats(&*store, &scope, &task_id, CHECK_A).await;
    assert_eq!((s.total, s.succeeded, s.failed), (6, 2, 4));
}

pub async fn mitigation_stage_replaces_default_policy_versions(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    policy(&*store, &scope, "p1", 1).await;
    policy(&*store, &scope, "p5", 5).await;
    let before = ok(store.list_policy_versions(&scope, "p5")).await;
    let replace =
        |name: &str, version: &NewPolicyVersion| MitigationEffect::ReplaceDefaultPolicyVersion {
            policy_name: name.to_owned(),
            version: version.clone(),
            max_versions: 5,
        };
    let new_default = blank_version(true);
    let (_, got) = run_effects(
        &*store,
        &scope,
        vec![
            replace("p1", &new_default),
            replace("p5", &blank_version(true)),
            replace("missing", &blank_version(true)),
        ],
    )
    .await;
    let refused = |name: &str, refusal| EffectRefusal::Policy {
        name: name.into(),
        refusal,
    };
    assert_executions(
        &got,
        &[
            None,
            Some(refused("p5", PolicyRefusal::TooManyVersions { limit: 5 })),
            Some(refused("missing", PolicyRefusal::NoSuchPolicy)),
        ],
    );
    let (p1, versions) = ok(store.list_policy_versions(&scope, "p1")).await.unwrap();
    assert_eq!(
        (p1.default_version_id, p1.generation_id, p1.updated_at_ms),
        (2, new_default.generation_id.clone(), NOW),
        "as CreatePolicyVersion with setAsDefault"
    );
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1].document, BLANK_POLICY);
    assert_eq!(
        ok(store.list_policy_versions(&scope, "p5")).await,
        before,
        "refused: nothing written"
    );
}

pub async fn mitigation_stage_sets_logging_and_records_outside_outcomes(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let options = V2LoggingOptionsRecord {
        role_arn: Some(format!("arn:aws:iam::{}:role/logging", scope.account_id)),
        default_log_level: Some("ERROR".into()),
        disable_all_logs: false,
        event_configurations_json: None,
        updated_at_ms: NOW,
    };
    let (task_id, got) = run_effects(
        &*store,
        &scope,
        vec![
            MitigationEffect::SetV2LoggingOptions {
                options: options.clone(),
            },
            MitigationEffect::Applied,
            MitigationEffect::Failed {
                error_code: "InvalidRequestException".into(),
                message: "The finding names no device certificate.".into(),
            },
        ],
    )
    .await;
    assert_completed(&got[0]);
    assert_completed(&got[1]);
    assert_failed(
        &got[2],
        "InvalidRequestException",
        "The finding names no device certificate.",
    );
    assert_eq!(
        ok(store.get_v2_logging_options(&scope)).await,
        Some(options)
    );
    let s = check_stats(&*store, &scope, &task_id, CHECK_A).await;
    assert_eq!((s.total, s.succeeded, s.failed), (3, 2, 1));
}

// ---------------------------------------------------------------------------------
// Cases: stages, chunks and the task's end

pub async fn mitigation_stage_failure_skips_later_actions(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let (t, queue) = start_single(&*store, &scope, &[stats(CHECK_A, 2)]).await;
    let item = claim(&*store, &queue, "w").await.remove(0);
    let fail = MitigationEffect::Failed {
        error_code: "CertificateStateException".into(),
        message: "no".into(),
    };
    let first = stage(
        &t.task_id,
        &item,
        "w",
        vec![
            step("f1", CHECK_A, 0, 2, fail),
            step("f2", CHECK_A, 0, 2, MitigationEffect::Applied),
        ],
        Some("stage-1"),
    );
    assert_eq!(
        apply(&*store, &scope, &first).await,
        StageOutcome::Applied {
            task_finished: false
        }
    );
    let s = check_stats(&*store, &scope, &t.task_id, CHECK_A).await;
    assert_eq!((s.succeeded, s.failed), (0, 1), "f2 is not done yet");
    let f1 = executions(&*store, &scope, &t.task_id, "f1").await;
    let got: Vec<_> = f1
        .iter()
        .map(|e| (e.action_index, e.status.as_str(), e.finished_at_ms))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, FAILED, Some(NOW)),
            (1, SKIPPED, Some(NOW)),
            (2, SKIPPED, Some(NOW))
        ]
    );
    assert_eq!(f1[1].error_code, None);
    let both = strings(&["f1", "f2"]);
    for index in [1, 2] {
        assert_eq!(
            ok(store.findings_with_execution(&scope, &t.task_id, &both, index)).await,
            strings(&["f1"]),
            "f1 is done at {index}"
        );
    }
    let mut at_zero = ok(store.findings_with_execution(&scope, &t.task_id, &both, 0)).await;
    at_zero.sort();
    assert_eq!(at_zero, both);
    assert!(
        ok(store.findings_with_execution(&scope, &t.task_id, &[], 0))
            .await
            .is_empty()
    );

    // The later stages act on f2 only; its last action completes it, and the task.
    for (index, next) in [(1, Some("stage-2")), (2, None)] {
        let steps = vec![step(
            "f2",
            CHECK_A,
            index,
            2 - index,
            MitigationEffect::Applied,
        )];
        let later = stage(&t.task_id, &item, "w", steps, next);
        let task_finished = next.is_none();
        assert_eq!(
            apply(&*store, &scope, &later).await,
            StageOutcome::Applied { task_finished }
        );
    }
    let f2: Vec<_> = executions(&*store, &scope, &t.task_id, "f2")
        .await
        .iter()
        .map(|e| (e.action_index, e.status.clone()))
        .collect();
    assert_eq!(
        f2,
        vec![
            (0, COMPLETED.to_owned()),
            (1, COMPLETED.to_owned()),
            (2, COMPLETED.to_owned())
        ]
    );
    let (done, s) = get(&*store, &scope, &t.task_id).await;
    assert_eq!((s[0].succeeded, s[0].failed), (1, 1));
    assert_eq!(done.status, FAILED, "one finding failed");

    // Recording an execution twice is refused, and the stage writes nothing.
    let (other, queue) = start_single(&*store, &scope, &[stats(CHECK_A, 1)]).await;
    let item = claim(&*store, &queue, "w").await.remove(0);
    let steps = vec![step("f", CHECK_A, 0, 1, MitigationEffect::Applied)];
    let once = stage(&other.task_id, &item, "w", steps, Some("again"));
    apply(&*store, &scope, &once).await;
    assert!(store
        .apply_mitigation_stage(&scope, &once, explain)
        .await
        .is_err());
    assert_eq!(ok(store.get_work(&item.id)).await.unwrap().payload, "again");
    assert_eq!(
        executions(&*store, &scope, &other.task_id, "f").await.len(),
        1
    );
}

pub async fn mitigation_stage_lease_lost_writes_nothing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let (t, queue) = start_single(&*store, &scope, &[stats(CHECK_A, 1)]).await;
    let mine = ok(store.claim_work(&queue, "slow", 1, T0, 1_000))
        .await
        .remove(0);
    // The lease ran out and another worker took the chunk over.
    let theirs = ok(store.claim_work(&queue, "fast", 1, T0 + 5_000, LEASE_MS))
        .await
        .remove(0);
    assert_eq!(theirs.id, mine.id);
    let cert = certificate(&*store, &scope, "ACTIVE").await;
    let steps = vec![step(
        "f",
        CHECK_A,
        0,
        0,
        MitigationEffect::DeactivateCertificate {
            certificate_id: cert.id.clone(),
        },
    )];
    let late = stage(&t.task_id, &mine, "slow", steps.clone(), None);
    assert_eq!(apply(&*store, &scope, &late).await, StageOutcome::LeaseLost);
    assert_eq!(
        ok(store.get_certificate(&scope, &cert.id)).await,
        Some(cert.clone())
    );
    assert!(executions(&*store, &scope, &t.task_id, "f")
        .await
        .is_empty());
    assert_eq!(
        get(&*store, &scope, &t.task_id).await.1,
        vec![stats(CHECK_A, 1)]
    );
    let item = ok(store.get_work(&mine.id)).await.expect("chunk kept");
    assert_eq!(
        (item.lease_owner.as_deref(), item.payload.as_str()),
        (Some("fast"), "chunk-0")
    );

    let current = stage(&t.task_id, &theirs, "fast", steps, None);
    assert_eq!(
        apply(&*store, &scope, &current).await,
        StageOutcome::Applied {
            task_finished: true
        }
    );
    // The chunk is gone now: a straggler still finds its lease lost.
    assert_eq!(apply(&*store, &scope, &late).await, StageOutcome::LeaseLost);
    let s = check_stats(&*store, &scope, &t.task_id, CHECK_A).await;
    assert_eq!(s.succeeded, 1);
}

pub async fn mitigation_chunks_end_the_task(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    for fail in [false, true] {
        let queue = unique("mq-");
        let t = task(&unique("task-"), Some("audit"), &[], T0);
        start(
            &*store,
            &scope,
            &t,
            &[stats(CHECK_A, 2), stats(CHECK_B, 1)],
            &chunks(&queue, &t.task_id, 2),
        )
        .await;
        let items = claim(&*store, &queue, "w").await;
        assert_eq!(items.len(), 2);
        let effect = if fail {
            MitigationEffect::Failed {
                error_code: "X".into(),
                message: "no".into(),
            }
        } else {
            MitigationEffect::Applied
        };

        // First chunk: a stage that keeps the chunk for its next stage, then its last.
        let keep = stage(
            &t.task_id,
            &items[0],
            "w",
            vec![step("f1", CHECK_A, 0, 1, MitigationEffect::Applied)],
            Some("chunk-0 stage-1"),
        );
        assert_eq!(
            apply(&*store, &scope, &keep).await,
            StageOutcome::Applied {
                task_finished: false
            }
        );
        let kept = ok(store.get_work(&items[0].id)).await.expect("kept");
        assert_eq!(
            (kept.payload.as_str(), kept.lease_owner.as_deref()),
            ("chunk-0 stage-1", Some("w")),
            "new payload, same lease"
        );
        assert_eq!(kept.lease_expires_at_ms, items[0].lease_expires_at_ms);
        let last = stage(
            &t.task_id,
            &items[0],
            "w",
            vec![step("f1", CHECK_A, 1, 0, effect.clone())],
            None,
        );
        assert_eq!(
            apply(&*store, &scope, &last).await,
            StageOutcome::Applied {
                task_finished: false
            }
        );
        assert_eq!(ok(store.get_work(&items[0].id)).await, None);
        assert_eq!(get(&*store, &scope, &t.task_id).await.0.status, IN_PROGRESS);

        // The second chunk's last stage ends the task.
        let mut end = stage(
            &t.task_id,
            &items[1],
            "w",
            vec![step("f2", CHECK_A, 0, 0, MitigationEffect::Applied)],
            None,
        );
        end.skipped = vec![(CHECK_B.into(), 1)];
        end.now_ms = NOW + 7;
        assert_eq!(
            apply(&*store, &scope, &end).await,
            StageOutcome::Applied {
                task_finished: true
            }
        );
        assert_eq!(ok(store.get_work(&items[1].id)).await, None);
        let (done, s) = get(&*store, &scope, &t.task_id).await;
        let status = if fail { FAILED } else { COMPLETED };
        assert_eq!(
            (done.status.as_str(), done.finished_at_ms),
            (status, Some(NOW + 7))
        );
        let counts: Vec<_> = s
            .iter()
            .map(|s| (s.total, s.succeeded, s.failed, s.skipped, s.canceled))
            .collect();
        let a = if fail {
            (2, 1, 1, 0, 0)
        } else {
            (2, 2, 0, 0, 0)
        };
        assert_eq!(counts, vec![(1, 0, 0, 1, 0), a], "by check name: B, A");
    }
}

// ---------------------------------------------------------------------------------
// Cases: chunk planning reads and retention

pub async fn mitigation_audit_finding_counts_and_boundaries(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let audit = unique("audit-");
    let finding = |id: &str, check: &str, time: i64, task_id: &str| AuditFindingRecord {
        finding_id: id.to_owned(),
        task_id: task_id.to_owned(),
        check_name: check.to_owned(),
        task_start_ms: T0,
        finding_time_ms: time,
        resource_key: id.to_owned(),
        is_suppressed: id.ends_with('s'),
        body_json: "{}".into(),
    };
    // Listing order: by time, then id.
    let written = vec![
        finding("k09", CHECK_A, T0 + 1, &audit),
        finding("k01", CHECK_B, T0 + 2, &audit),
        finding("k05s", CHECK_A, T0 + 1, &audit),
        finding("k03", CHECK_A, T0 + 3, &audit),
        finding("k07", CHECK_B, T0 + 2, &audit),
        finding("k02", CHECK_A, T0 + 1, &audit),
        finding("k10", CHECK_A, T0 + 5, &audit),
        finding("k04", CHECK_B, T0 + 4, &audit),
        finding("k08", CHECK_A, T0 + 4, &audit),
        finding("k06", CHECK_B, T0 + 3, &audit),
        finding("other", CHECK_C, T0, "another-audit"),
    ];
    store
        .insert_audit_findings(&scope, &written)
        .await
        .expect("insert findings");
    let mut listed: Vec<_> = written[..10]
        .iter()
        .map(|f| AuditFindingKey {
            finding_time_ms: f.finding_time_ms,
            finding_id: f.finding_id.clone(),
        })
        .collect();
    listed.sort_by(|a, b| {
        (a.finding_time_ms, &a.finding_id).cmp(&(b.finding_time_ms, &b.finding_id))
    });

    for (every, positions) in [
        (1, (1..=10).collect::<Vec<_>>()),
        (3, vec![3, 6, 9]),
        (5, vec![5, 10]),
        (10, vec![10]),
        (11, vec![]),
    ] {
        let expected: Vec<_> = positions.iter().map(|p| listed[p - 1].clone()).collect();
        assert_eq!(
            ok(store.audit_finding_boundaries(&scope, &audit, every)).await,
            expected,
            "every {every}"
        );
    }
    assert_eq!(
        ok(store.count_audit_findings_by_check(&scope, &audit)).await,
        vec![(CHECK_B.to_owned(), 4), (CHECK_A.to_owned(), 6)]
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "by check name"
    );
    assert!(ok(store.count_audit_findings_by_check(&scope, "missing"))
        .await
        .is_empty());
    assert!(ok(store.audit_finding_boundaries(&scope, "missing", 2))
        .await
        .is_empty());
    assert!(
        ok(store.count_audit_findings_by_check(&fresh_scope(), &audit))
            .await
            .is_empty()
    );
}

pub async fn mitigation_purge_removes_old_finished_history(store: Arc<dyn Store>) {
    const OLD: i64 = 1_000;
    const CUTOFF: i64 = 10_000;
    let scope = fresh_scope();
    let queue = unique("mq-");
    // Old and finished: canceled after a stage ran, with its rows in every table.
    let old = task(&unique("old-"), None, &["f1", "f2"], OLD);
    start(
        &*store,
        &scope,
        &old,
        &[stats(CHECK_A, 2)],
        &chunks(&queue, &old.task_id, 1),
    )
    .await;
    let item = claim(&*store, &queue, "w").await.remove(0);
    apply(
        &*store,
        &scope,
        &stage(
            &old.task_id,
            &item,
            "w",
            vec![step("f1", CHECK_A, 0, 1, MitigationEffect::Applied)],
            Some("next"),
        ),
    )
    .await;
    ok(store.cancel_mitigation_task(&scope, &old.task_id, OLD + 10))
        .await
        .expect("cancel");
    // Old but still running; and finished but recent.
    let running = task(&unique("running-"), Some("a"), &[], OLD);
    start(&*store, &scope, &running, &[stats(CHECK_A, 1)], &[]).await;
    let recent = task(&unique("recent-"), Some("a"), &[], CUTOFF + 1);
    start(&*store, &scope, &recent, &[stats(CHECK_A, 1)], &[]).await;
    ok(store.cancel_mitigation_task(&scope, &recent.task_id, CUTOFF + 2))
        .await
        .expect("cancel");

    let purged = store.purge_mitigation_history(CUTOFF).await.expect("purge");
    // The task, its statistics row, its two finding ids and its execution.
    assert!(purged >= 5, "purged {purged}");
    assert_eq!(
        ok(store.get_mitigation_task(&scope, &old.task_id)).await,
        None
    );
    assert!(executions(&*store, &scope, &old.task_id, "f1")
        .await
        .is_empty());
    assert!(store_has(&store, &scope, &running.task_id).await);
    assert!(store_has(&store, &scope, &recent.task_id).await);
    // Recreating the purged id starts from nothing.
    start(&*store, &scope, &old, &[], &[]).await;
    assert_eq!(
        get(&*store, &scope, &old.task_id).await,
        (old.clone(), vec![])
    );
}

/// Two handles (two processes) work one task's chunks at once, several workers each:
/// every chunk runs its two stages, the second acting only on the findings the first
/// did not fail, exactly as the engine does. The statistics must come out exact.
pub async fn mitigation_concurrent_stages_across_handles(db: &dyn Database) {
    const CHUNKS: usize = 12;
    const PER_CHUNK: usize = 25;
    let handles = open_handles(db, 2).await;
    let scope = fresh_scope();
    let queue = unique("mq-");
    let t = task(&unique("task-"), Some("audit"), &[], T0);
    let total = i64::try_from(CHUNKS * PER_CHUNK).unwrap();
    start(
        &*handles[0],
        &scope,
        &t,
        &[stats(CHECK_A, total), stats(CHECK_B, 5)],
        &chunks(&queue, &t.task_id, CHUNKS),
    )
    .await;
    // One certificate per chunk, deactivated by its first finding's first action.
    let mut certs = Vec::new();
    for _ in 0..CHUNKS {
        certs.push(certificate(&*handles[0], &scope, "ACTIVE").await.id);
    }
    let certs = Arc::new(certs);
    let fails = |n: usize| n % 7 == 3;

    race(&handles, 4, |w, store| {
        let (scope, queue, task_id, certs) = (
            scope.clone(),
            queue.clone(),
            t.task_id.clone(),
            Arc::clone(&certs),
        );
        async move {
            let worker = format!("worker-{w}");
            loop {
                let claimed = store
                    .claim_work(&queue, &worker, 1, T0, LEASE_MS)
                    .await
                    .expect("claim");
                let Some(item) = claimed.into_iter().next() else {
                    return;
                };
                let chunk: usize = item
                    .payload
                    .split(['-', ' '])
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .expect("chunk number");
                let second = item.payload.ends_with("stage-1");
                let findings: Vec<String> = (0..PER_CHUNK)
                    .map(|i| format!("c{chunk:02}-f{i:02}"))
                    .collect();
                let index = u32::from(second);
                let done = if second {
                    store
                        .findings_with_execution(&scope, &task_id, &findings, 1)
                        .await
                        .expect("done")
                } else {
                    Vec::new()
                };
                let steps = findings
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| !done.contains(f))
                    .map(|(i, f)| {
                        let n = chunk * PER_CHUNK + i;
                        let effect = if !second && i == 0 {
                            MitigationEffect::DeactivateCertificate {
                                certificate_id: certs[chunk].clone(),
                            }
                        } else if !second && fails(n) {
                            MitigationEffect::Failed {
                                error_code: "X".into(),
                                message: format!("{f} fails"),
                            }
                        } else {
                            MitigationEffect::Applied
                        };
                        step(f, CHECK_A, index, 1 - index, effect)
                    })
                    .collect();
                let mut s = stage(
                    &task_id,
                    &item,
                    &worker,
                    steps,
                    (!second)
                        .then(|| format!("chunk-{chunk} stage-1"))
                        .as_deref(),
                );
                if chunk == 0 && !second {
                    s.skipped = vec![(CHECK_B.into(), 5)];
                }
                let outcome = store
                    .apply_mitigation_stage(&scope, &s, explain)
                    .await
                    .expect("stage");
                assert!(
                    matches!(outcome, StageOutcome::Applied { .. }),
                    "{outcome:?}"
                );
                if second {
                    continue;
                }
                // Give the chunk back for its second stage, maybe to the other process.
                assert!(store
                    .release_work(&item.id, &worker, T0)
                    .await
                    .expect("release"));
            }
        }
    })
    .await;

    let failed = i64::try_from(
        (0..CHUNKS * PER_CHUNK)
            .filter(|n| n % PER_CHUNK != 0 && fails(*n))
            .count(),
    )
    .unwrap();
    let (done, s) = get(&*handles[1], &scope, &t.task_id).await;
    let counts: Vec<_> = s
        .iter()
        .map(|s| (s.check_name.as_str(), s.succeeded, s.failed, s.skipped))
        .collect();
    assert_eq!(
        counts,
        vec![(CHECK_B, 0, 0, 5), (CHECK_A, total - failed, failed, 0)]
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(done.status, FAILED);
    assert_eq!(done.finished_at_ms, Some(NOW));
    for (chunk, cert) in certs.iter().enumerate() {
        let c = ok(handles[1].get_certificate(&scope, cert)).await.unwrap();
        assert_eq!(
            (c.status.as_str(), c.customer_version),
            ("INACTIVE", 2),
            "chunk {chunk}"
        );
    }
    let sample = executions(&*handles[0], &scope, &t.task_id, "c03-f05").await;
    assert_eq!(sample.len(), 2);
}
