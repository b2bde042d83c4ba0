//! Conformance cases for scheduled audits and the scheduler's compare-and-set start;
//! instantiated by `conformance_tests!` with the rest of the suite.
//!
//! Times are around [`T0`] everywhere except in the due-query case, whose schedules lie
//! far below it: that query reads every scope, so on a database shared between cases
//! it must not see another case's schedules.

use std::sync::Arc;

use super::fixtures::{mapped, ok, open_handles, race, ALL, T0};
use super::{all_tags, fresh_scope, scope, unique, unique_account, Database};
use crate::{
    AuditTaskRecord, NewWorkItem, ScheduledAuditRecord, ScheduledAuditRefusal,
    ScheduledAuditUpdate, ScheduledRunOutcome, Scope, Store, Tag,
};

const DAY: i64 = 24 * 60 * 60 * 1000;
const LIMIT: usize = 5;

fn schedule(scope: &Scope, name: &str, next_run_ms: i64) -> ScheduledAuditRecord {
    ScheduledAuditRecord {
        name: name.to_owned(),
        arn: format!(
            "arn:aws:iot:{}:{}:scheduledaudit/{name}",
            scope.region, scope.account_id
        ),
        frequency: "WEEKLY".into(),
        day_of_week: Some("MON".into()),
        day_of_month: None,
        checks_json: r#"["LOGGING_DISABLED_CHECK"]"#.into(),
        anchor_ms: T0,
        next_run_ms,
        created_at_ms: T0,
        updated_at_ms: T0,
    }
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag {
            key: (*k).to_owned(),
            value: (*v).to_owned(),
        })
        .collect()
}

async fn create(store: &dyn Store, scope: &Scope, record: &ScheduledAuditRecord, t: &[Tag]) {
    let created = ok(store.create_scheduled_audit(scope, record, t, LIMIT)).await;
    assert_eq!(created, Ok(()));
}

/// Moves `name`'s next run from `expected_ms` to `next_ms`, starting `run` with it.
async fn advance(
    store: &dyn Store,
    scope: &Scope,
    name: &str,
    (expected_ms, next_ms): (i64, i64),
    run: Option<&(AuditTaskRecord, NewWorkItem)>,
) -> ScheduledRunOutcome {
    let run = run.map(|(task, work)| (task, work));
    ok(store.advance_scheduled_audit(scope, name, expected_ms, next_ms, run)).await
}

/// `record` is stored as it is, with exactly the tags `t`.
async fn assert_stored(store: &dyn Store, scope: &Scope, record: &ScheduledAuditRecord, t: &[Tag]) {
    assert_eq!(
        store
            .get_scheduled_audit(scope, &record.name)
            .await
            .unwrap(),
        Some(record.clone())
    );
    assert_eq!(all_tags(store, scope, &record.arn).await, t);
}

async fn names(store: &dyn Store, scope: &Scope) -> Vec<String> {
    mapped(store.list_scheduled_audits(scope, None, ALL), |r| r.name).await
}

/// The task and work item a run of `name` at `occurrence` starts, on a queue of its own.
fn run(name: &str, occurrence: i64) -> (AuditTaskRecord, NewWorkItem) {
    let task_id = unique("sched-task-");
    let task = AuditTaskRecord {
        task_id: task_id.clone(),
        task_type: "SCHEDULED_AUDIT_TASK".into(),
        status: "IN_PROGRESS".into(),
        scheduled_audit_name: Some(name.to_owned()),
        started_at_ms: occurrence,
        finished_at_ms: None,
        checks_json: r#"{"LOGGING_DISABLED_CHECK":{"status":"IN_PROGRESS"}}"#.into(),
        version: 1,
    };
    let work = NewWorkItem {
        id: format!("audit-task/{task_id}"),
        queue: unique("sched-q-"),
        payload: format!(r#"{{"task":"{task_id}"}}"#),
        run_after_ms: occurrence,
    };
    (task, work)
}

pub async fn scheduled_audit_crud(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let weekly = schedule(&scope, "weekly", T0 + DAY);
    assert_eq!(
        store.get_scheduled_audit(&scope, "weekly").await.unwrap(),
        None
    );
    let given = tags(&[("team", "sec"), ("env", "prod")]);
    create(&*store, &scope, &weekly, &given).await;
    // Tags list in key order.
    let listed = tags(&[("env", "prod"), ("team", "sec")]);
    assert_stored(&*store, &scope, &weekly, &listed).await;

    // Checks only: the timing stays.
    let update = ScheduledAuditUpdate {
        frequency: "WEEKLY".into(),
        day_of_week: Some("MON".into()),
        day_of_month: None,
        checks_json: r#"["CA_CERTIFICATE_EXPIRING_CHECK"]"#.into(),
        timing: None,
        updated_at_ms: T0 + 5,
    };
    let updated = ok(store.update_scheduled_audit(&scope, "weekly", &update))
        .await
        .expect("updated");
    let expected = ScheduledAuditRecord {
        checks_json: update.checks_json.clone(),
        updated_at_ms: T0 + 5,
        ..weekly.clone()
    };
    assert_eq!(updated, expected);
    // New timing rules: anchor and next run move, day fields replaced as given.
    let update = ScheduledAuditUpdate {
        frequency: "MONTHLY".into(),
        day_of_week: None,
        day_of_month: Some("LAST".into()),
        checks_json: expected.checks_json.clone(),
        timing: Some((T0 + 6, T0 + 30 * DAY)),
        updated_at_ms: T0 + 6,
    };
    let updated = ok(store.update_scheduled_audit(&scope, "weekly", &update))
        .await
        .expect("updated");
    let expected = ScheduledAuditRecord {
        frequency: "MONTHLY".into(),
        day_of_week: None,
        day_of_month: Some("LAST".into()),
        anchor_ms: T0 + 6,
        next_run_ms: T0 + 30 * DAY,
        updated_at_ms: T0 + 6,
        ..expected
    };
    assert_eq!(updated, expected);
    assert_eq!(
        store.get_scheduled_audit(&scope, "weekly").await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        ok(store.update_scheduled_audit(&scope, "missing", &update)).await,
        None
    );

    // Listing: name order, paged by the last name.
    for name in ["b", "a-1", "C", "z"] {
        create(&*store, &scope, &schedule(&scope, name, T0 + DAY), &[]).await;
    }
    assert_eq!(
        names(&*store, &scope).await,
        ["C", "a-1", "b", "weekly", "z"]
    );
    let page = store
        .list_scheduled_audits(&scope, Some("a-1"), 2)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["b", "weekly"]
    );
    assert!(store
        .list_scheduled_audits(&scope, Some("z"), 2)
        .await
        .unwrap()
        .is_empty());

    // Delete takes the tags along; a second delete finds nothing.
    assert!(store
        .delete_scheduled_audit(&scope, "weekly")
        .await
        .unwrap());
    assert!(!store
        .delete_scheduled_audit(&scope, "weekly")
        .await
        .unwrap());
    assert_eq!(
        store.get_scheduled_audit(&scope, "weekly").await.unwrap(),
        None
    );
    assert!(all_tags(&*store, &scope, &weekly.arn).await.is_empty());
    // Recreated under the same name, it starts without the old tags.
    create(&*store, &scope, &weekly, &[]).await;
    assert!(all_tags(&*store, &scope, &weekly.arn).await.is_empty());

    // Delete-all removes every schedule of the scope and their tags, nothing else.
    store
        .tag_resource(&scope, &weekly.arn, &tags(&[("k", "v")]), 50)
        .await
        .unwrap();
    let other = fresh_scope();
    create(
        &*store,
        &other,
        &schedule(&other, "kept", T0),
        &tags(&[("k", "v")]),
    )
    .await;
    assert_eq!(store.delete_all_scheduled_audits(&scope).await.unwrap(), 5);
    assert!(names(&*store, &scope).await.is_empty());
    assert!(all_tags(&*store, &scope, &weekly.arn).await.is_empty());
    assert_eq!(store.delete_all_scheduled_audits(&scope).await.unwrap(), 0);
    assert_eq!(names(&*store, &other).await, ["kept"]);
    let kept_arn = schedule(&other, "kept", T0).arn;
    assert_eq!(
        all_tags(&*store, &other, &kept_arn).await,
        tags(&[("k", "v")])
    );
}

pub async fn scheduled_audit_duplicate_and_limit(store: Arc<dyn Store>) {
    let scope = fresh_scope();
    let first = schedule(&scope, "s0", T0);
    create(&*store, &scope, &first, &tags(&[("a", "1")])).await;
    let dup = ScheduledAuditRecord {
        frequency: "DAILY".into(),
        day_of_week: None,
        ..first.clone()
    };
    assert_eq!(
        ok(store.create_scheduled_audit(&scope, &dup, &tags(&[("b", "2")]), LIMIT)).await,
        Err(ScheduledAuditRefusal::NameExists)
    );
    // The refused create changed neither the schedule nor its tags.
    assert_stored(&*store, &scope, &first, &tags(&[("a", "1")])).await;

    for i in 1..LIMIT {
        create(
            &*store,
            &scope,
            &schedule(&scope, &format!("s{i}"), T0),
            &[],
        )
        .await;
    }
    let sixth = schedule(&scope, "s5", T0);
    assert_eq!(
        ok(store.create_scheduled_audit(&scope, &sixth, &tags(&[("c", "3")]), LIMIT)).await,
        Err(ScheduledAuditRefusal::LimitReached)
    );
    assert_eq!(store.get_scheduled_audit(&scope, "s5").await.unwrap(), None);
    assert!(all_tags(&*store, &scope, &sixth.arn).await.is_empty());
    // A duplicate name is reported as such even at the limit.
    assert_eq!(
        ok(store.create_scheduled_audit(&scope, &first, &[], LIMIT)).await,
        Err(ScheduledAuditRefusal::NameExists)
    );
    // Deleting one makes room again.
    assert!(store.delete_scheduled_audit(&scope, "s2").await.unwrap());
    create(&*store, &scope, &sixth, &[]).await;
    assert_eq!(names(&*store, &scope).await.len(), LIMIT);
}

pub async fn scheduled_audit_due_and_start(store: Arc<dyn Store>) {
    // Far below T0, see the module docs.
    let (s1, s2) = (fresh_scope(), scope(&unique_account(), "eu-west-1"));
    create(&*store, &s1, &schedule(&s1, "late", 3_000), &[]).await;
    create(&*store, &s1, &schedule(&s1, "early", 1_000), &[]).await;
    create(&*store, &s2, &schedule(&s2, "early", 1_000), &[]).await;
    create(&*store, &s2, &schedule(&s2, "future", 9_000), &[]).await;
    let due = |now: i64, limit: usize| {
        let store = Arc::clone(&store);
        let mine = [s1.clone(), s2.clone()];
        async move {
            store
                .due_scheduled_audits(now, limit)
                .await
                .expect("due")
                .into_iter()
                .filter(|d| mine.contains(&d.scope))
                .map(|d| (d.scope, d.record.name, d.record.next_run_ms))
                .collect::<Vec<_>>()
        }
    };
    let (first, second) = if (&s1.account_id, &s1.region) < (&s2.account_id, &s2.region) {
        (&s1, &s2)
    } else {
        (&s2, &s1)
    };
    assert_eq!(due(999, ALL).await, []);
    assert_eq!(
        due(3_000, ALL).await,
        [
            (first.clone(), "early".to_owned(), 1_000),
            (second.clone(), "early".to_owned(), 1_000),
            (s1.clone(), "late".to_owned(), 3_000),
        ]
    );
    assert_eq!(due(3_000, 1).await.len(), 1);

    // Start s1/early's run: the schedule moves on, the task and its work are there.
    let started = run("early", 1_000);
    let (task, work) = &started;
    assert_eq!(
        advance(&*store, &s1, "early", (1_000, 8_000), Some(&started)).await,
        ScheduledRunOutcome::Started
    );
    assert_eq!(
        store
            .get_scheduled_audit(&s1, "early")
            .await
            .unwrap()
            .map(|r| r.next_run_ms),
        Some(8_000)
    );
    assert_eq!(
        store.get_audit_task(&s1, &task.task_id).await.unwrap(),
        Some(task.clone())
    );
    let claimed = store
        .claim_work(&work.queue, "w", 10, 1_000, 60_000)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [work.id.as_str()]
    );
    // A second start with the same expectation (another node) changes nothing.
    let again = run("early", 1_000);
    assert_eq!(
        advance(&*store, &s1, "early", (1_000, 8_000), Some(&again)).await,
        ScheduledRunOutcome::Superseded
    );
    assert_eq!(
        store.get_audit_task(&s1, &again.0.task_id).await.unwrap(),
        None
    );
    assert_eq!(store.get_work(&again.1.id).await.unwrap(), None);
    assert_eq!(
        due(3_000, ALL).await,
        [
            (s2.clone(), "early".to_owned(), 1_000),
            (s1.clone(), "late".to_owned(), 3_000),
        ]
    );

    // A task id that exists already: the schedule still advances, nothing is enqueued.
    let taken = (task.clone(), run("late", 3_000).1);
    assert_eq!(
        advance(&*store, &s1, "late", (3_000, 10_000), Some(&taken)).await,
        ScheduledRunOutcome::Advanced
    );
    assert_eq!(store.get_work(&taken.1.id).await.unwrap(), None);
    // Advancing without a task; then a missing schedule is superseded.
    assert_eq!(
        advance(&*store, &s2, "early", (1_000, 8_000), None).await,
        ScheduledRunOutcome::Advanced
    );
    assert_eq!(
        advance(&*store, &s2, "missing", (1_000, 8_000), None).await,
        ScheduledRunOutcome::Superseded
    );
    assert_eq!(due(7_999, ALL).await, []);
    assert_eq!(due(9_000, ALL).await.len(), 3);
}

pub async fn scheduled_audits_isolated_between_accounts(store: Arc<dyn Store>) {
    let (a, b) = (fresh_scope(), fresh_scope());
    let b_other_region = scope(&b.account_id, "eu-west-1");
    let record = schedule(&a, "same-name", T0);
    create(&*store, &a, &record, &tags(&[("k", "a")])).await;
    // The same name in another account or region is another schedule.
    create(&*store, &b, &schedule(&b, "same-name", T0), &[]).await;
    assert_eq!(
        store
            .get_scheduled_audit(&b_other_region, "same-name")
            .await
            .unwrap(),
        None
    );
    let update = ScheduledAuditUpdate {
        frequency: "DAILY".into(),
        day_of_week: None,
        day_of_month: None,
        checks_json: "[]".into(),
        timing: Some((0, 0)),
        updated_at_ms: 0,
    };
    let there = &b_other_region;
    assert_eq!(
        ok(store.update_scheduled_audit(there, "same-name", &update)).await,
        None
    );
    assert!(!store
        .delete_scheduled_audit(&b_other_region, "same-name")
        .await
        .unwrap());
    assert_eq!(
        advance(&*store, &b_other_region, "same-name", (T0, T0 + DAY), None).await,
        ScheduledRunOutcome::Superseded
    );
    // Each account's limit counts its own schedules only.
    for i in 0..LIMIT - 1 {
        create(&*store, &b, &schedule(&b, &format!("b{i}"), T0), &[]).await;
    }
    create(&*store, &a, &schedule(&a, "a1", T0), &[]).await;
    assert_eq!(store.delete_all_scheduled_audits(&b).await.unwrap(), 5);
    assert_stored(&*store, &a, &record, &tags(&[("k", "a")])).await;
    assert_eq!(names(&*store, &a).await, ["a1", "same-name"]);
}

pub async fn scheduled_audit_limit_race_across_handles(db: &dyn Database) {
    let handles = open_handles(db, 4).await;
    let scope = fresh_scope();
    let outcomes = race(&handles, 3 * LIMIT, |i, store| {
        let scope = scope.clone();
        async move {
            // Every third racer repeats a name, so uniqueness races too.
            let name = format!("race-{:02}", i % (2 * LIMIT));
            let record = schedule(&scope, &name, T0);
            store
                .create_scheduled_audit(&scope, &record, &tags(&[("n", &name)]), LIMIT)
                .await
                .expect("create")
        }
    })
    .await;
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(won, LIMIT, "exactly the limit's worth");
    let listed = handles[0]
        .list_scheduled_audits(&scope, None, ALL)
        .await
        .unwrap();
    assert_eq!(listed.len(), LIMIT);
    for r in &listed {
        assert_eq!(
            all_tags(&*handles[1], &scope, &r.arn).await,
            tags(&[("n", &r.name)])
        );
    }
}

pub async fn scheduled_audit_start_race_across_handles(db: &dyn Database) {
    let handles = open_handles(db, 4).await;
    let scope = fresh_scope();
    create(&*handles[0], &scope, &schedule(&scope, "raced", T0), &[]).await;
    // Several rounds: each time every handle tries to start the same occurrence.
    for round in 0..5 {
        let occurrence = T0 + round * DAY;
        let outcomes = race(&handles, handles.len(), |_, store| {
            let scope = scope.clone();
            async move {
                let started = run("raced", occurrence);
                let next = (occurrence, occurrence + DAY);
                let outcome = advance(&*store, &scope, "raced", next, Some(&started)).await;
                let (task, work) = started;
                (outcome, task, work)
            }
        })
        .await;
        let mut started = Vec::new();
        for (outcome, task, work) in outcomes {
            match outcome {
                ScheduledRunOutcome::Started => started.push((task, work)),
                ScheduledRunOutcome::Superseded => {
                    assert_eq!(
                        handles[0]
                            .get_audit_task(&scope, &task.task_id)
                            .await
                            .unwrap(),
                        None
                    );
                    assert_eq!(handles[0].get_work(&work.id).await.unwrap(), None);
                }
                ScheduledRunOutcome::Advanced => panic!("a fresh task id was skipped"),
            }
        }
        assert_eq!(started.len(), 1, "round {round}: exactly one start");
        let (task, work) = &started[0];
        assert!(handles[1]
            .get_audit_task(&scope, &task.task_id)
            .await
            .unwrap()
            .is_some());
        assert!(handles[2].get_work(&work.id).await.unwrap().is_some());
        assert_eq!(
            handles[3]
                .get_scheduled_audit(&scope, "raced")
                .await
                .unwrap()
                .map(|r| r.next_run_ms),
            Some(occurrence + DAY)
        );
    }
}
