//! Conformance cases for audit configurations, audit tasks and findings; instantiated by
//! `conformance_tests!` with the rest of the suite.
//!
//! Times are around [`T0`] (a realistic epoch time) everywhere except in the purge
//! case, whose old history lies far below it: the purge works across all scopes, so on
//! a database shared between cases it must not remove another case's rows.

use std::sync::Arc;

use super::fixtures::{
    all_pages, assert_listings, ok, open_handles, race, ALL, CANCELED, CHECK_A, CHECK_B, CHECK_C,
    COMPLETED, FAILED, IN_PROGRESS, T0,
};
use super::{assert_already_exists, fresh_scope, scope, unique, unique_account, Database};
use crate::{
    AuditConfigurationRecord, AuditFindingFilter, AuditFindingHead, AuditFindingKey,
    AuditFindingRecord, AuditTaskFilter, AuditTaskKey, AuditTaskRecord, AuditTaskRefusal,
    NewWorkItem, Scope, Store,
};

const ON_DEMAND: &str = "ON_DEMAND_AUDIT_TASK";
const SCHEDULED: &str = "SCHEDULED_AUDIT_TASK";

fn configuration(role: Option<&str>, n: i64) -> AuditConfigurationRecord {
    AuditConfigurationRecord {
        role_arn: role.map(str::to_owned),
        checks_json: format!(r#"{{"{CHECK_A}":{{"enabled":true,"n":{n}}}}}"#),
        notifications_json: format!(r#"{{"SNS":{{"n":{n}}}}}"#),
        updated_at_ms: T0 + n,
    }
}

fn task(task_id: &str, task_type: &str, status: &str, started_at_ms: i64) -> AuditTaskRecord {
    AuditTaskRecord {
        task_id: task_id.to_owned(),
        task_type: task_type.to_owned(),
        status: status.to_owned(),
        scheduled_audit_name: (task_type == SCHEDULED).then(|| "daily".to_owned()),
        started_at_ms,
        finished_at_ms: (status != IN_PROGRESS).then_some(started_at_ms + 500),
        checks_json: format!(r#"{{"{CHECK_A}":{{"status":"{status}"}}}}"#),
        version: 1,
    }
}

/// `task` as a writer of `version` stores it.
fn at_version(task: &AuditTaskRecord, version: i64) -> AuditTaskRecord {
    AuditTaskRecord {
        version,
        ..task.clone()
    }
}

/// `task` ended with `status` at `at`, as the writer of `version` stores it.
fn finish(task: &AuditTaskRecord, status: &str, at: i64, version: i64) -> AuditTaskRecord {
    AuditTaskRecord {
        status: status.to_owned(),
        finished_at_ms: Some(at),
        ..at_version(task, version)
    }
}

/// The work item that runs `task_id`, on a queue of its own (so claims in one case
/// never see another case's items).
fn work_for(task_id: &str) -> NewWorkItem {
    NewWorkItem {
        id: unique("audit-work-"),
        queue: unique("audit-q-"),
        payload: format!(r#"{{"task":"{task_id}"}}"#),
        run_after_ms: T0,
    }
}

fn finding(
    task: &AuditTaskRecord,
    check: &str,
    resource: &str,
    time: i64,
    suppressed: bool,
) -> AuditFindingRecord {
    AuditFindingRecord {
        finding_id: format!("{}-{check}-{resource}", task.task_id),
        task_id: task.task_id.clone(),
        check_name: check.to_owned(),
        task_start_ms: task.started_at_ms,
        finding_time_ms: time,
        resource_key: resource.to_owned(),
        is_suppressed: suppressed,
        body_json: format!(r#"{{"severity":"HIGH","resource":"{resource}"}}"#),
    }
}

/// Creates `task` with a fresh work item and no limit; returns the work item.
async fn create(store: &dyn Store, scope: &Scope, task: &AuditTaskRecord) -> NewWorkItem {
    let work = work_for(&task.task_id);
    store
        .create_audit_task(scope, task, &work, None)
        .await
        .expect("create task")
        .expect("no limit, no refusal");
    work
}

/// Creates `task` with a fresh work item under `limit`: the outcome, the task and the item.
async fn create_limited(
    store: &dyn Store,
    scope: &Scope,
    task: AuditTaskRecord,
    limit: Option<usize>,
) -> (Result<(), AuditTaskRefusal>, AuditTaskRecord, NewWorkItem) {
    let work = work_for(&task.task_id);
    let outcome = store
        .create_audit_task(scope, &task, &work, limit)
        .await
        .expect("create");
    (outcome, task, work)
}

fn all_tasks_filter() -> AuditTaskFilter {
    AuditTaskFilter {
        started_from_ms: i64::MIN,
        started_to_ms: i64::MAX,
        task_type: None,
        status: None,
    }
}

/// Follows `list_audit_tasks` pages of `page` until a short page.
async fn task_pages(
    store: &dyn Store,
    scope: &Scope,
    filter: &AuditTaskFilter,
    page: usize,
) -> Vec<AuditTaskRecord> {
    let key = |t: &AuditTaskRecord| AuditTaskKey {
        started_at_ms: t.started_at_ms,
        task_id: t.task_id.clone(),
    };
    all_pages(page, key, async |after| {
        store
            .list_audit_tasks(scope, filter, after.as_ref(), page)
            .await
    })
    .await
}

/// The key a listing of findings (or of their heads) continues after.
fn finding_key(time: i64, id: &str) -> AuditFindingKey {
    AuditFindingKey {
        finding_time_ms: time,
        finding_id: id.to_owned(),
    }
}

/// Follows `list_audit_findings` pages of `page` until a short page.
async fn finding_pages(
    store: &dyn Store,
    scope: &Scope,
    filter: &AuditFindingFilter,
    page: usize,
) -> Vec<AuditFindingRecord> {
    let key = |f: &AuditFindingRecord| finding_key(f.finding_time_ms, &f.finding_id);
    all_pages(page, key, async |after| {
        store
            .list_audit_findings(scope, filter, after.as_ref(), page)
            .await
    })
    .await
}

/// What `list_audit_tasks` must return for `filter`, from the tasks written.
fn expected_tasks(tasks: &[AuditTaskRecord], filter: &AuditTaskFilter) -> Vec<AuditTaskRecord> {
    let mut out: Vec<AuditTaskRecord> = tasks
        .iter()
        .filter(|t| {
            (filter.started_from_ms..=filter.started_to_ms).contains(&t.started_at_ms)
                && filter.task_type.as_ref().is_none_or(|x| *x == t.task_type)
                && filter.status.as_ref().is_none_or(|x| *x == t.status)
        })
        .cloned()
        .collect();
    out.sort_by(|a, b| (b.started_at_ms, &b.task_id).cmp(&(a.started_at_ms, &a.task_id)));
    out
}

/// What `list_audit_findings` must return for `filter`, from the findings written.
fn expected_findings(
    findings: &[AuditFindingRecord],
    filter: &AuditFindingFilter,
) -> Vec<AuditFindingRecord> {
    let mut out: Vec<AuditFindingRecord> = findings
        .iter()
        .filter(|f| {
            filter.task_id.as_ref().is_none_or(|x| *x == f.task_id)
                && filter.found_from_ms.is_none_or(|x| f.finding_time_ms >= x)
                && filter.found_to_ms.is_none_or(|x| f.finding_time_ms <= x)
                && filter
                    .check_name
                    .as_ref()
                    .is_none_or(|x| *x == f.check_name)
                && filter
                    .resource_key
                    .as_ref()
                    .is_none_or(|x| *x == f.resource_key)
                && filter.suppressed.is_none_or(|x| x == f.is_suppressed)
        })
        .cloned()
        .collect();
    out.sort_by(|a, b| (a.finding_time_ms, &a.finding_id).cmp(&(b.finding_time_ms, &b.finding_id)));
    out
}

pub async fn audit_configuration_put_get_replace_delete(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let other_region = self::scope(&scope.account_id, "eu-west-1");
    let other_account = self::scope(&unique_account(), &scope.region);
    assert_eq!(ok(store.get_audit_configuration(&scope)).await, None);
    assert!(!ok(store.delete_audit_configuration(&scope)).await);

    // Put, then replaced: every field is replaced, a role included.
    let first = configuration(Some("arn:aws:iam::123456789012:role/audit"), 1);
    for put in [first, configuration(None, 2)] {
        ok(store.put_audit_configuration(&scope, &put)).await;
        assert_eq!(ok(store.get_audit_configuration(&scope)).await, Some(put));
    }

    for other in [&other_region, &other_account] {
        assert_eq!(ok(store.get_audit_configuration(other)).await, None);
    }
    let theirs = configuration(Some("arn:aws:iam::210987654321:role/theirs"), 3);
    store
        .put_audit_configuration(&other_account, &theirs)
        .await
        .expect("put other account");
    assert!(!ok(store.delete_audit_configuration(&other_region)).await);

    assert!(ok(store.delete_audit_configuration(&scope)).await);
    assert!(!ok(store.delete_audit_configuration(&scope)).await);
    assert_eq!(ok(store.get_audit_configuration(&scope)).await, None);
    assert_eq!(
        ok(store.get_audit_configuration(&other_account)).await,
        Some(theirs),
        "deleting one account's configuration leaves another's"
    );
}

pub async fn audit_task_create_get_update_versions(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let created = task(&unique("task-"), ON_DEMAND, IN_PROGRESS, T0);
    create(&*store, &scope, &created).await;
    // The task as created; an id never created is no task.
    for (id, expected) in [(&created.task_id, Some(&created)), (&unique("task-"), None)] {
        let stored = ok(store.get_audit_task(&scope, id)).await;
        assert_eq!(stored.as_ref(), expected, "task {id}");
    }

    let progressed = AuditTaskRecord {
        checks_json: r#"{"progress":1}"#.to_owned(),
        ..at_version(&created, 2)
    };
    // A writer that read version 1 lost the race: nothing of its update lands.
    let stale = AuditTaskRecord {
        checks_json: r#"{"stale":true}"#.to_owned(),
        ..finish(&created, CANCELED, T0 + 9, 2)
    };
    // Skipping ahead is as wrong as falling behind.
    let ahead = at_version(&stale, 4);
    let finished = AuditTaskRecord {
        checks_json: r#"{"done":true}"#.to_owned(),
        ..finish(&progressed, COMPLETED, T0 + 10, 3)
    };
    // Only status, finish time, checks and version change; the rest is as created.
    let rewrite = AuditTaskRecord {
        task_type: SCHEDULED.to_owned(),
        scheduled_audit_name: Some("renamed".to_owned()),
        started_at_ms: T0 + 77,
        version: 4,
        ..finished.clone()
    };
    let rewritten = at_version(&finished, 4);
    // Each update in turn: whether it applies, and the task stored after it.
    for (update, applies, after) in [
        (&progressed, true, &progressed),
        (&stale, false, &progressed),
        (&ahead, false, &progressed),
        (&finished, true, &finished),
        (&rewrite, true, &rewritten),
    ] {
        let applied = ok(store.update_audit_task(&scope, update)).await;
        assert_eq!(applied, applies, "update to version {}", update.version);
        let stored = ok(store.get_audit_task(&scope, &created.task_id)).await;
        assert_eq!(stored.as_ref(), Some(after));
    }

    let missing = task(&unique("task-"), ON_DEMAND, COMPLETED, T0);
    assert!(
        !ok(store.update_audit_task(&scope, &at_version(&missing, 2))).await,
        "updating a task that does not exist"
    );
    assert_eq!(
        ok(store.get_audit_task(&scope, &missing.task_id)).await,
        None,
        "an update never creates"
    );
}

pub async fn audit_task_create_enqueues_claimable_work(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let created = task(&unique("task-"), ON_DEMAND, IN_PROGRESS, T0);
    let work = create(&*store, &scope, &created).await;

    let stored = ok(store.get_work(&work.id))
        .await
        .expect("work item enqueued with the task");
    assert_eq!(
        (&stored.queue, &stored.payload, stored.run_after_ms),
        (&work.queue, &work.payload, work.run_after_ms)
    );
    assert_eq!((stored.attempts, stored.lease_owner), (0, None));

    assert!(
        ok(store.claim_work(&work.queue, "runner", 10, T0 - 1, 60_000))
            .await
            .is_empty()
    );
    let claimed = ok(store.claim_work(&work.queue, "runner", 10, T0, 60_000)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, work.id);
    assert_eq!(claimed[0].payload, work.payload);
    assert_eq!(claimed[0].lease_owner.as_deref(), Some("runner"));
    assert!(store.complete_work(&work.id, "runner").await.unwrap());
}

pub async fn audit_task_duplicate_ids_write_nothing(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let original = task(&unique("task-"), ON_DEMAND, IN_PROGRESS, T0);
    let work = create(&*store, &scope, &original).await;

    // The task id is taken: the new work item must not be enqueued either.
    let again = AuditTaskRecord {
        status: COMPLETED.to_owned(),
        checks_json: r#"{"again":true}"#.to_owned(),
        ..original.clone()
    };
    let other_work = work_for(&original.task_id);
    assert_already_exists(
        store
            .create_audit_task(&scope, &again, &other_work, Some(100))
            .await,
    );
    assert_eq!(
        ok(store.get_audit_task(&scope, &original.task_id)).await,
        Some(original.clone()),
        "a rejected duplicate must not overwrite"
    );
    assert_eq!(ok(store.get_work(&other_work.id)).await, None);

    // The work id is taken: the new task must not be created either.
    let fresh = task(&unique("task-"), ON_DEMAND, IN_PROGRESS, T0 + 1);
    let reused = NewWorkItem {
        payload: r#"{"other":true}"#.to_owned(),
        ..work.clone()
    };
    assert_already_exists(store.create_audit_task(&scope, &fresh, &reused, None).await);
    assert_eq!(ok(store.get_audit_task(&scope, &fresh.task_id)).await, None);
    assert_eq!(
        ok(store.get_work(&work.id)).await.map(|w| w.payload),
        Some(work.payload.clone())
    );

    // The same task id in another account is a different task.
    let elsewhere = fresh_scope();
    create(&*store, &elsewhere, &original).await;
    assert_eq!(
        task_pages(&*store, &scope, &all_tasks_filter(), ALL).await,
        vec![original]
    );
}

pub async fn audit_task_in_progress_limit(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let attempt = |task: AuditTaskRecord, scope: Scope| {
        let store = Arc::clone(&store);
        async move { create_limited(&*store, &scope, task, Some(2)).await }
    };
    let (a, b) = (
        task(&unique("a-"), ON_DEMAND, IN_PROGRESS, T0),
        task(&unique("b-"), ON_DEMAND, IN_PROGRESS, T0 + 1),
    );
    assert_eq!(attempt(a.clone(), scope.clone()).await.0, Ok(()));
    assert_eq!(attempt(b.clone(), scope.clone()).await.0, Ok(()));

    let (refused, c, c_work) = attempt(
        task(&unique("c-"), ON_DEMAND, IN_PROGRESS, T0 + 2),
        scope.clone(),
    )
    .await;
    assert_eq!(refused, Err(AuditTaskRefusal::TooManyInProgress));
    assert_eq!(ok(store.get_audit_task(&scope, &c.task_id)).await, None);
    assert_eq!(ok(store.get_work(&c_work.id)).await, None);

    // Other types, other scopes and unlimited creates are not held back.
    let scheduled = task(&unique("s-"), SCHEDULED, IN_PROGRESS, T0 + 3);
    assert_eq!(attempt(scheduled, scope.clone()).await.0, Ok(()));
    let other_region = self::scope(&scope.account_id, "eu-west-1");
    let there = task(&unique("r-"), ON_DEMAND, IN_PROGRESS, T0 + 3);
    assert_eq!(attempt(there, other_region).await.0, Ok(()));
    create(
        &*store,
        &scope,
        &task(&unique("u-"), ON_DEMAND, IN_PROGRESS, T0 + 4),
    )
    .await;
    // Three on-demand tasks run now (one created without a limit): still refused.
    let (refused, ..) = attempt(
        task(&unique("d-"), ON_DEMAND, IN_PROGRESS, T0 + 5),
        scope.clone(),
    )
    .await;
    assert_eq!(refused, Err(AuditTaskRefusal::TooManyInProgress));

    // Only tasks in progress count: finish two and there is room for one again.
    for t in [&a, &b] {
        let done = finish(t, COMPLETED, T0 + 6, 2);
        assert!(ok(store.update_audit_task(&scope, &done)).await);
    }
    let finished_already = task(&unique("f-"), ON_DEMAND, COMPLETED, T0 + 6);
    assert_eq!(attempt(finished_already, scope.clone()).await.0, Ok(()));
    let e = task(&unique("e-"), ON_DEMAND, IN_PROGRESS, T0 + 7);
    assert_eq!(attempt(e, scope.clone()).await.0, Ok(()));
    let (refused, ..) = attempt(
        task(&unique("g-"), ON_DEMAND, IN_PROGRESS, T0 + 8),
        scope.clone(),
    )
    .await;
    assert_eq!(refused, Err(AuditTaskRefusal::TooManyInProgress));

    // A limit of zero refuses every create.
    let zero = task(&unique("z-"), SCHEDULED, IN_PROGRESS, T0 + 9);
    assert_eq!(
        store
            .create_audit_task(&scope, &zero, &work_for(&zero.task_id), Some(0))
            .await
            .unwrap(),
        Err(AuditTaskRefusal::TooManyInProgress)
    );
}

pub async fn audit_task_listing_order_range_filters_paging(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let statuses = [IN_PROGRESS, COMPLETED, FAILED, CANCELED];
    let mut tasks = Vec::new();
    for i in 0..24i64 {
        let task_type = if i % 3 == 0 { SCHEDULED } else { ON_DEMAND };
        let status = statuses[usize::try_from(i % 4).unwrap()];
        // Pairs share a start time, so the task id breaks ties.
        let started = T0 + (i / 2) * 1_000;
        tasks.push(task(
            &format!("task-{:02}", (i * 7) % 24),
            task_type,
            status,
            started,
        ));
    }
    for t in &tasks {
        create(&*store, &scope, t).await;
    }
    // Noise the listings must never show.
    create(
        &*store,
        &fresh_scope(),
        &task(&unique("other-"), ON_DEMAND, COMPLETED, T0 + 3_000),
    )
    .await;

    let whole = task_pages(&*store, &scope, &all_tasks_filter(), ALL).await;
    assert_eq!(whole, expected_tasks(&tasks, &all_tasks_filter()));
    assert_eq!(whole.len(), 24);
    assert!(
        whole[0].started_at_ms == T0 + 11_000 && whole[0].task_id > whole[1].task_id,
        "newest first, then task id descending"
    );

    let mut filters = Vec::new();
    for (from, to) in [
        (i64::MIN, i64::MAX),
        (T0 + 2_000, T0 + 7_000),
        (T0 + 2_001, T0 + 6_999),
        (T0 + 5_000, T0 + 5_000),
        (T0 + 12_000, T0 + 20_000),
        (T0 + 5_000, T0 + 4_000),
    ] {
        for task_type in [None, Some(ON_DEMAND), Some(SCHEDULED)] {
            for status in [None, Some(IN_PROGRESS), Some(CANCELED)] {
                filters.push(AuditTaskFilter {
                    started_from_ms: from,
                    started_to_ms: to,
                    task_type: task_type.map(str::to_owned),
                    status: status.map(str::to_owned),
                });
            }
        }
    }
    let expected = |filter: &AuditTaskFilter| expected_tasks(&tasks, filter);
    let listed =
        async |filter: &AuditTaskFilter, page| task_pages(&*store, &scope, filter, page).await;
    assert_listings(&filters, &[1, 3, ALL], expected, listed).await;
    // Both bounds are inclusive.
    let exact = AuditTaskFilter {
        started_from_ms: T0 + 2_000,
        started_to_ms: T0 + 3_000,
        ..all_tasks_filter()
    };
    assert_eq!(task_pages(&*store, &scope, &exact, ALL).await.len(), 4);

    // A page continues strictly after its key, even when the key's task is gone.
    let key = AuditTaskKey {
        started_at_ms: whole[5].started_at_ms,
        task_id: whole[5].task_id.clone(),
    };
    let next = ok(store.list_audit_tasks(&scope, &all_tasks_filter(), Some(&key), 2)).await;
    assert_eq!(next, whole[6..8].to_vec());
    // Just above whole[6] in (start, id) order: "!" sorts below every id character.
    let between = AuditTaskKey {
        started_at_ms: whole[6].started_at_ms,
        task_id: format!("{}!", whole[6].task_id),
    };
    assert_eq!(
        ok(store.list_audit_tasks(&scope, &all_tasks_filter(), Some(&between), 1)).await,
        whole[6..7].to_vec()
    );
    assert!(
        ok(store.list_audit_tasks(&scope, &all_tasks_filter(), None, 0))
            .await
            .is_empty()
    );
}

/// Two tasks' findings over three checks, two resources each and both suppression
/// states, with ties in time so the id breaks them.
fn sample_findings(t1: &AuditTaskRecord, t2: &AuditTaskRecord) -> Vec<AuditFindingRecord> {
    let mut findings = Vec::new();
    for (i, check) in [CHECK_A, CHECK_B, CHECK_C].into_iter().enumerate() {
        for r in 0..6i64 {
            // Resource keys shared between findings of different checks and tasks.
            let resource = format!("res-{}", r % 2);
            let time = T0 + 100 * i64::try_from(i).unwrap() + (r / 2) * 10;
            for (n, t) in [t1, t2].into_iter().enumerate() {
                let f = finding(
                    t,
                    check,
                    &resource,
                    time + i64::try_from(n).unwrap() * 5,
                    r % 3 == 0,
                );
                findings.push(AuditFindingRecord {
                    finding_id: format!("{}-{r}", f.finding_id),
                    ..f
                });
            }
        }
    }
    findings
}

pub async fn audit_findings_insert_get_and_idempotence(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let t = task(&unique("task-"), ON_DEMAND, IN_PROGRESS, T0);
    create(&*store, &scope, &t).await;
    assert_eq!(ok(store.insert_audit_findings(&scope, &[])).await, 0);

    // Past the engines' batch sizes, with a remainder.
    let findings: Vec<AuditFindingRecord> = (0..150)
        .map(|i| finding(&t, CHECK_A, &format!("cert-{i:04}"), T0 + i / 7, i % 5 == 0))
        .collect();
    assert_eq!(
        ok(store.insert_audit_findings(&scope, &findings[..100])).await,
        100
    );
    // A re-run step writes the same findings again, some new ones with them.
    assert_eq!(ok(store.insert_audit_findings(&scope, &findings)).await, 50);
    assert_eq!(ok(store.insert_audit_findings(&scope, &findings)).await, 0);
    // A stored finding is not changed by writing its id again.
    let changed = AuditFindingRecord {
        body_json: r#"{"changed":true}"#.to_owned(),
        is_suppressed: !findings[3].is_suppressed,
        ..findings[3].clone()
    };
    let duplicate_in_call = finding(&t, CHECK_B, "cert-new", T0 + 1, false);
    assert_eq!(
        ok(store.insert_audit_findings(
            &scope,
            &[
                changed,
                duplicate_in_call.clone(),
                duplicate_in_call.clone()
            ]
        ))
        .await,
        1,
        "a repeated id within one call is written once"
    );

    for f in [
        &findings[0],
        &findings[3],
        &findings[149],
        &duplicate_in_call,
    ] {
        assert_eq!(
            ok(store.get_audit_finding(&scope, &f.finding_id)).await,
            Some(f.clone())
        );
    }
    assert_eq!(
        ok(store.get_audit_finding(&scope, &unique("finding-"))).await,
        None
    );
    let by_task = AuditFindingFilter {
        task_id: Some(t.task_id.clone()),
        ..AuditFindingFilter::default()
    };
    assert_eq!(
        finding_pages(&*store, &scope, &by_task, ALL).await.len(),
        151
    );

    // A few thousand in one call, as an audit of a large fleet writes them.
    let bulk_task = task(&unique("bulk-"), ON_DEMAND, IN_PROGRESS, T0);
    create(&*store, &scope, &bulk_task).await;
    let bulk: Vec<AuditFindingRecord> = (0..3_000)
        .map(|i| finding(&bulk_task, CHECK_C, &format!("r{i:05}"), T0 + i % 97, false))
        .collect();
    assert_eq!(ok(store.insert_audit_findings(&scope, &bulk)).await, 3_000);
    let by_bulk_task = AuditFindingFilter {
        task_id: Some(bulk_task.task_id.clone()),
        ..AuditFindingFilter::default()
    };
    assert_eq!(
        finding_pages(&*store, &scope, &by_bulk_task, 1_000).await,
        expected_findings(&bulk, &by_bulk_task)
    );
}

pub async fn audit_findings_listing_filters_and_paging(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let t1 = task(&unique("t1-"), ON_DEMAND, COMPLETED, T0);
    let t2 = task(&unique("t2-"), SCHEDULED, IN_PROGRESS, T0 + 50);
    create(&*store, &scope, &t1).await;
    create(&*store, &scope, &t2).await;
    let findings = sample_findings(&t1, &t2);
    assert_eq!(
        ok(store.insert_audit_findings(&scope, &findings)).await,
        u64::try_from(findings.len()).unwrap()
    );
    // Noise in another account and region, with the same task id and times.
    let other = fresh_scope();
    let noise = finding(&t1, CHECK_A, "res-0", T0, false);
    ok(store.insert_audit_findings(&other, std::slice::from_ref(&noise))).await;
    let other_region = self::scope(&scope.account_id, "eu-west-1");
    let noise_region = finding(&t1, CHECK_B, "res-9", T0 + 5, true);
    ok(store.insert_audit_findings(&other_region, &[noise_region])).await;

    let mut filters = Vec::new();
    for task_id in [None, Some(&t1.task_id), Some(&t2.task_id)] {
        for (from, to) in [
            (None, None),
            (Some(T0 + 100), None),
            (None, Some(T0 + 115)),
            (Some(T0 + 105), Some(T0 + 210)),
            (Some(T0 + 110), Some(T0 + 110)),
        ] {
            for (check, resource, suppressed) in [
                (None, None, None),
                (Some(CHECK_B), None, None),
                (None, Some("res-1"), None),
                (None, None, Some(true)),
                (None, None, Some(false)),
                (Some(CHECK_C), Some("res-0"), Some(false)),
            ] {
                filters.push(AuditFindingFilter {
                    task_id: task_id.cloned(),
                    found_from_ms: from,
                    found_to_ms: to,
                    check_name: check.map(str::to_owned),
                    resource_key: resource.map(str::to_owned),
                    suppressed,
                });
            }
        }
    }
    let expected = |filter: &AuditFindingFilter| expected_findings(&findings, filter);
    let listed = async |filter: &AuditFindingFilter, page| {
        finding_pages(&*store, &scope, filter, page).await
    };
    assert_listings(&filters, &[1, 4, ALL], expected, listed).await;
    let everything = finding_pages(&*store, &scope, &AuditFindingFilter::default(), ALL).await;
    assert_eq!(everything.len(), findings.len());
    assert!(
        everything
            .windows(2)
            .any(|w| w[0].finding_time_ms == w[1].finding_time_ms),
        "the sample should have ties in time"
    );

    // A page continues strictly after its key, even when the key is no finding ("!"
    // sorts below every id character, so this key lies between two findings).
    let key = AuditFindingKey {
        finding_time_ms: everything[9].finding_time_ms,
        finding_id: format!("{}!", everything[9].finding_id),
    };
    let next =
        ok(store.list_audit_findings(&scope, &AuditFindingFilter::default(), Some(&key), 3)).await;
    assert_eq!(next, everything[10..13].to_vec());
    assert!(
        ok(store.list_audit_findings(&scope, &AuditFindingFilter::default(), None, 0))
            .await
            .is_empty()
    );
    assert_eq!(
        finding_pages(&*store, &other, &AuditFindingFilter::default(), ALL).await,
        vec![noise]
    );

    // Heads list a task's findings as the listing does, without their bodies.
    let expected = |task_id: &&String| {
        let filter = AuditFindingFilter {
            task_id: Some(task_id.to_string()),
            ..AuditFindingFilter::default()
        };
        let expected: Vec<AuditFindingHead> = expected_findings(&findings, &filter)
            .into_iter()
            .map(AuditFindingHead::from)
            .collect();
        assert!(expected.iter().any(|h| h.is_suppressed) && expected.len() > 4);
        expected
    };
    let heads = async |task_id: &&String, page| {
        let key = |h: &AuditFindingHead| finding_key(h.finding_time_ms, &h.finding_id);
        let fetch = async |after: Option<AuditFindingKey>| {
            let after = after.as_ref();
            store
                .list_audit_finding_heads(&scope, task_id, after, page)
                .await
        };
        all_pages(page, key, fetch).await
    };
    let task_ids = [&t1.task_id, &t2.task_id];
    assert_listings(&task_ids, &[1, 4, ALL], expected, heads).await;
    let heads = ok(store.list_audit_finding_heads(&scope, &t1.task_id, Some(&key), 2)).await;
    let after_key: Vec<AuditFindingHead> = everything
        .iter()
        .filter(|f| {
            f.task_id == t1.task_id
                && (f.finding_time_ms, &f.finding_id) > (key.finding_time_ms, &key.finding_id)
        })
        .take(2)
        .cloned()
        .map(AuditFindingHead::from)
        .collect();
    assert_eq!(heads, after_key);
    assert!(
        ok(store.list_audit_finding_heads(&other, &t2.task_id, None, ALL))
            .await
            .is_empty()
    );
}

pub async fn audit_purge_removes_old_finished_history(store: Arc<dyn Store>) {
    // Far below T0, where no other case writes (the purge spans all scopes).
    const BEFORE: i64 = 10_000;
    let (scope_a, scope_b) = (fresh_scope(), fresh_scope());
    let old_done = task(&unique("old-done-"), ON_DEMAND, COMPLETED, 1_000);
    let old_failed = task(&unique("old-failed-"), SCHEDULED, FAILED, 2_000);
    let old_running = task(&unique("old-running-"), ON_DEMAND, IN_PROGRESS, 3_000);
    let at_cutoff = task(&unique("cutoff-"), ON_DEMAND, COMPLETED, BEFORE);
    let recent = task(&unique("recent-"), ON_DEMAND, COMPLETED, T0);
    let old_other = task(&unique("old-other-"), ON_DEMAND, CANCELED, 4_000);

    for t in [&old_done, &old_failed, &old_running, &at_cutoff, &recent] {
        create(&*store, &scope_a, t).await;
    }
    create(&*store, &scope_b, &old_other).await;

    let findings_of = |t: &AuditTaskRecord, n: usize| -> Vec<AuditFindingRecord> {
        (0..n)
            .map(|i| finding(t, CHECK_A, &format!("r{i:05}"), t.started_at_ms + 1, false))
            .collect()
    };
    // Enough for the purge to take several chunks on any engine.
    let big = findings_of(&old_done, 4_500);
    for chunk in big.chunks(1_500) {
        ok(store.insert_audit_findings(&scope_a, chunk)).await;
    }
    let mut kept = Vec::new();
    for (scope, t, n) in [
        (&scope_a, &old_failed, 3),
        (&scope_a, &old_running, 4),
        (&scope_a, &at_cutoff, 5),
        (&scope_a, &recent, 6),
        (&scope_b, &old_other, 7),
    ] {
        let fs = findings_of(t, n);
        ok(store.insert_audit_findings(scope, &fs)).await;
        if [&old_running, &at_cutoff, &recent].contains(&t) {
            kept.extend(fs);
        }
    }

    // Findings: 4500 + 3 + 7; tasks: done, failed, other.
    let purged = store.purge_audit_history(BEFORE).await.expect("purge");
    assert_eq!(purged, 4_500 + 3 + 7 + 3);
    assert_eq!(ok(store.purge_audit_history(BEFORE)).await, 0);

    for (scope, t) in [
        (&scope_a, &old_done),
        (&scope_a, &old_failed),
        (&scope_b, &old_other),
    ] {
        assert_eq!(ok(store.get_audit_task(scope, &t.task_id)).await, None);
    }
    for t in [&old_running, &at_cutoff, &recent] {
        assert_eq!(
            ok(store.get_audit_task(&scope_a, &t.task_id)).await,
            Some(t.clone())
        );
    }
    assert!(
        finding_pages(&*store, &scope_b, &AuditFindingFilter::default(), ALL)
            .await
            .is_empty()
    );
    let mut left = finding_pages(&*store, &scope_a, &AuditFindingFilter::default(), ALL).await;
    left.sort_by(|a, b| a.finding_id.cmp(&b.finding_id));
    kept.sort_by(|a, b| a.finding_id.cmp(&b.finding_id));
    assert_eq!(left, kept, "a running task's findings and recent ones stay");

    // Once it finishes, a long-running task goes with its findings.
    let finished = finish(&old_running, COMPLETED, T0, 2);
    assert!(ok(store.update_audit_task(&scope_a, &finished)).await);
    assert_eq!(ok(store.purge_audit_history(BEFORE)).await, 4 + 1);
    assert_eq!(
        ok(store.get_audit_task(&scope_a, &old_running.task_id)).await,
        None
    );
}

pub async fn audit_state_isolated_between_accounts(store: Arc<dyn Store>) {
    let mine = fresh_scope();
    let theirs = scope(&unique_account(), &mine.region);
    let my_region_two = scope(&mine.account_id, "ap-south-1");
    let task_id = unique("task-");
    let mut seen = Vec::new();
    for (n, s) in [&mine, &theirs, &my_region_two].into_iter().enumerate() {
        let n = i64::try_from(n).unwrap();
        // Same task id and finding ids everywhere, different contents.
        let t = task(&task_id, ON_DEMAND, IN_PROGRESS, T0 + n);
        let work = work_for(&task_id);
        store
            .create_audit_task(s, &t, &work, Some(1))
            .await
            .unwrap()
            .expect("the limit is per scope");
        let f = AuditFindingRecord {
            body_json: format!(r#"{{"scope":{n}}}"#),
            ..finding(&t, CHECK_A, "res", T0 + n, false)
        };
        assert_eq!(
            ok(store.insert_audit_findings(s, std::slice::from_ref(&f))).await,
            1
        );
        store
            .put_audit_configuration(s, &configuration(None, n))
            .await
            .unwrap();
        seen.push((s.clone(), t, f));
    }

    let (mine_task, mine_finding) = (&seen[0].1, &seen[0].2);
    let updated = AuditTaskRecord {
        status: CANCELED.to_owned(),
        ..at_version(mine_task, 2)
    };
    assert!(ok(store.update_audit_task(&mine, &updated)).await);
    // Only our scope's task moved to version 2; the others are as created.
    for (n, (s, t, f)) in seen.iter().enumerate() {
        let expected_task = if n == 0 { updated.clone() } else { t.clone() };
        assert_eq!(
            ok(store.get_audit_task(s, &task_id)).await,
            Some(expected_task.clone())
        );
        assert_eq!(
            task_pages(&*store, s, &all_tasks_filter(), ALL).await,
            vec![expected_task]
        );
        assert_eq!(
            ok(store.get_audit_finding(s, &f.finding_id)).await,
            Some(f.clone())
        );
        let by_task = AuditFindingFilter {
            task_id: Some(task_id.clone()),
            ..AuditFindingFilter::default()
        };
        assert_eq!(
            finding_pages(&*store, s, &by_task, ALL).await,
            vec![f.clone()]
        );
        assert_eq!(
            ok(store.get_audit_configuration(s)).await,
            Some(configuration(None, i64::try_from(n).unwrap()))
        );
    }
    assert_eq!(
        mine_finding.finding_id, seen[1].2.finding_id,
        "the same ids in every scope"
    );
    // A stale version in our scope cannot reach their row either.
    assert!(!ok(store.update_audit_task(&mine, mine_task)).await);
    let unknown = scope(&unique_account(), &mine.region);
    assert_eq!(ok(store.get_audit_task(&unknown, &task_id)).await, None);
    assert!(!ok(store.update_audit_task(&unknown, &updated)).await);
    assert!(task_pages(&*store, &unknown, &all_tasks_filter(), ALL)
        .await
        .is_empty());
}

pub async fn audit_task_limit_race_across_handles(db: &dyn Database) {
    const LIMIT: usize = 10;
    let handles = open_handles(db, 4).await;
    let scope = fresh_scope();
    // The last three racers start scheduled tasks, which count against their own limit
    // only.
    let outcomes = race(&handles, 2 * LIMIT + 3, |i, store| {
        let scope = scope.clone();
        let t = match i.checked_sub(2 * LIMIT) {
            None => task(&format!("race-{i:02}"), ON_DEMAND, IN_PROGRESS, T0),
            Some(i) => task(&format!("sched-{i:02}"), SCHEDULED, IN_PROGRESS, T0),
        };
        async move { create_limited(&*store, &scope, t, Some(LIMIT)).await }
    })
    .await;
    let (mut won, mut refused) = (Vec::new(), Vec::new());
    for (outcome, t, work) in outcomes {
        match outcome {
            Ok(()) => won.push((t, work)),
            Err(AuditTaskRefusal::TooManyInProgress) => refused.push((t, work)),
        }
    }
    let count = |v: &[(AuditTaskRecord, NewWorkItem)], ty: &str| {
        v.iter().filter(|(t, _)| t.task_type == ty).count()
    };
    assert_eq!(count(&won, ON_DEMAND), LIMIT, "exactly the limit's worth");
    assert_eq!(count(&won, SCHEDULED), 3);
    assert_eq!(refused.len(), LIMIT);

    let reader = &handles[0];
    for (t, work) in &won {
        assert_eq!(
            ok(reader.get_audit_task(&scope, &t.task_id)).await,
            Some(t.clone())
        );
        assert!(ok(reader.get_work(&work.id)).await.is_some());
    }
    for (t, work) in &refused {
        assert_eq!(ok(reader.get_audit_task(&scope, &t.task_id)).await, None);
        assert_eq!(ok(reader.get_work(&work.id)).await, None);
    }
    let on_demand = AuditTaskFilter {
        task_type: Some(ON_DEMAND.to_owned()),
        ..all_tasks_filter()
    };
    assert_eq!(
        task_pages(&**reader, &scope, &on_demand, ALL).await.len(),
        LIMIT
    );
}

/// A task's end and the work it owes (its notification) land together or not at all.
pub async fn audit_task_update_with_work_is_atomic(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let created = task(&unique("task-"), ON_DEMAND, IN_PROGRESS, T0);
    let runner = create(&*store, &scope, &created).await;
    let ended = AuditTaskRecord {
        checks_json: r#"{"done":true}"#.to_owned(),
        ..finish(&created, COMPLETED, T0 + 10, 2)
    };

    // A stale version: neither the task nor the work changes.
    let stale_work = work_for(&created.task_id);
    let stale = at_version(&ended, 3);
    assert!(!ok(store.update_audit_task_with_work(&scope, &stale, &stale_work)).await);
    assert_eq!(ok(store.get_work(&stale_work.id)).await, None);

    // A taken work id: the update is rolled back with the failed insert.
    assert_already_exists(
        store
            .update_audit_task_with_work(
                &scope,
                &ended,
                &NewWorkItem {
                    id: runner.id.clone(),
                    ..work_for(&created.task_id)
                },
            )
            .await,
    );
    assert_eq!(
        ok(store.get_audit_task(&scope, &created.task_id)).await,
        Some(created.clone())
    );

    let work = work_for(&created.task_id);
    assert!(ok(store.update_audit_task_with_work(&scope, &ended, &work)).await);
    assert_eq!(
        ok(store.get_audit_task(&scope, &created.task_id)).await,
        Some(ended.clone())
    );
    let claimed = ok(store.claim_work(&work.queue, "notifier", 10, T0, 60_000)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (&claimed[0].id, &claimed[0].payload),
        (&work.id, &work.payload)
    );

    // Once ended, a second end (a racing cancel that read the old version) enqueues
    // nothing.
    let again = work_for(&created.task_id);
    assert!(!ok(store.update_audit_task_with_work(&scope, &ended, &again)).await);
    assert_eq!(ok(store.get_work(&again.id)).await, None);
}
