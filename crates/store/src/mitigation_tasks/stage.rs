//! A stage of a chunk: its effects applied to the registry and its executions and counts
//! recorded, in the one transaction of `MitigationTaskStore::apply_mitigation_stage`.
//!
//! A stage is the hot path: a million-finding task is about four hundred stages of
//! 2,500 steps. Every device certificate deactivation of a stage is one
//! `set_certificate_statuses` call (one statement on PostgreSQL, one cached statement
//! per certificate on SQLite, where in-process there is no round trip to save): their
//! order does not matter, as the only other effect that touches a certificate's status
//! also only makes it INACTIVE. Effects of several statements run inside a savepoint
//! each, so a refused one leaves nothing behind. The counters are written once per
//! check at the end of the stage.

use std::collections::BTreeMap;

use crate::certificates::{
    lock_ca_certificate_status, new_generation_id, principal_things, set_certificate_statuses,
    update_ca_certificate_in,
};
use crate::db::{Db, DbResult, Dialect, Param};
use crate::policies::{create_policy_version_in, put_v2_logging_options_in};
use crate::things::{change_thing_groups_in, keep_group};
use crate::{
    CaCertificateUpdate, CertificateRefusal, EffectRefusal, ExecutionError, ExplainRefusal,
    MitigationEffect, MitigationStage, MitigationStep, RegistrationConfigChange, Scope,
    StageOutcome,
};

pub(super) const IN_PROGRESS: &str = "IN_PROGRESS";
pub(super) const CANCELED: &str = "CANCELED";
const COMPLETED: &str = "COMPLETED";
const FAILED: &str = "FAILED";
const SKIPPED: &str = "SKIPPED";

/// The most things one ADD_THINGS_TO_THING_GROUP effect reads as attached to its
/// principal: far above anything real, and still a bound.
const MAX_PRINCIPAL_THINGS: usize = 100_000;

/// Certificates per statement when one effect deactivates many: a stage's worth, so each
/// statement stays as quick as a stage's own batch.
const DEACTIVATE_BATCH: usize = 1_000;

type EffectOutcome = Result<(), EffectRefusal>;

/// An execution to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExecutionRow<'a> {
    finding_id: &'a str,
    action_index: i32,
    status: &'static str,
    started_at_ms: i64,
    finished_at_ms: i64,
    error_code: Option<String>,
    message: Option<String>,
}

/// What a stage adds to one check's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CheckCounts {
    succeeded: i64,
    failed: i64,
    skipped: i64,
}

/// The executions and counters of one stage, gathered in memory while its effects are
/// applied, so the counters cost one write per check rather than one per step.
#[derive(Debug)]
struct StageTally<'a> {
    executions: Vec<ExecutionRow<'a>>,
    /// By check name.
    counts: BTreeMap<&'a str, CheckCounts>,
    now_ms: i64,
}

impl<'a> StageTally<'a> {
    /// Starts with the stage's findings that no action applies to.
    fn new(stage: &'a MitigationStage) -> StageTally<'a> {
        let mut counts: BTreeMap<&str, CheckCounts> = BTreeMap::new();
        for (check, n) in &stage.skipped {
            counts.entry(check).or_default().skipped += n;
        }
        StageTally {
            executions: Vec::with_capacity(stage.steps.len()),
            counts,
            now_ms: stage.now_ms,
        }
    }

    /// Records a step: COMPLETED, counting its finding succeeded if it was the finding's
    /// last action; or FAILED with the finding's later actions SKIPPED, counting it
    /// failed.
    fn record(&mut self, step: &'a MitigationStep, outcome: Result<(), ExecutionError>) {
        let counts = self.counts.entry(&step.check_name).or_default();
        let index = i32::try_from(step.action_index).unwrap_or(i32::MAX);
        let row = |status, error: Option<ExecutionError>, at: i32| ExecutionRow {
            finding_id: &step.finding_id,
            action_index: at,
            status,
            started_at_ms: if status == SKIPPED {
                self.now_ms
            } else {
                step.started_at_ms
            },
            finished_at_ms: self.now_ms,
            error_code: error.as_ref().map(|e| e.code.clone()),
            message: error.map(|e| e.message),
        };
        match outcome {
            Ok(()) => {
                self.executions.push(row(COMPLETED, None, index));
                if step.actions_after == 0 {
                    counts.succeeded += 1;
                }
            }
            Err(error) => {
                self.executions.push(row(FAILED, Some(error), index));
                for k in 1..=step.actions_after {
                    let at = index.saturating_add(i32::try_from(k).unwrap_or(i32::MAX));
                    self.executions.push(row(SKIPPED, None, at));
                }
                counts.failed += 1;
            }
        }
    }

    /// The checks whose counters this stage changes.
    fn changed_counts(&self) -> impl Iterator<Item = (&'a str, CheckCounts)> + '_ {
        self.counts
            .iter()
            .filter(|(_, c)| **c != CheckCounts::default())
            .map(|(check, c)| (*check, *c))
    }
}

/// The whole stage inside the caller's transaction; see
/// `MitigationTaskStore::apply_mitigation_stage`.
pub(super) async fn apply_stage(
    db: &Db<'_>,
    scope: &Scope,
    stage: &MitigationStage,
    explain: ExplainRefusal,
) -> DbResult<StageOutcome> {
    let task: [&dyn Param; 3] = [&scope.account_id, &scope.region, &stage.task_id];
    // The task first: on PostgreSQL, cancels and other stages of the task queue here, so
    // counters add up exactly and the last stage sees every other stage's counters.
    let status: Option<String> = db
        .value(
            sql!(
                "SELECT status FROM mitigation_tasks",
                " WHERE account_id = $1 AND region = $2 AND task_id = $3 FOR UPDATE"
            ),
            &task,
        )
        .await?;
    // Locked too, so a claimer (which skips locked items) cannot take the chunk over
    // until this stage has committed or rolled back.
    let held: Option<i32> = db
        .value(
            sql!("SELECT 1 FROM work_items WHERE id = $1 AND lease_owner = $2 FOR UPDATE"),
            &[&stage.work_id, &stage.worker],
        )
        .await?;
    if held.is_none() {
        return Ok(StageOutcome::LeaseLost);
    }
    if status.as_deref() != Some(IN_PROGRESS) {
        delete_work_item(db, stage).await?;
        return Ok(StageOutcome::TaskNotInProgress);
    }

    let mut outcomes = deactivate_certificates(db, scope, stage).await?;
    let mut tally = StageTally::new(stage);
    for (step, outcome) in stage.steps.iter().zip(outcomes.iter_mut()) {
        let outcome = match outcome.take() {
            Some(outcome) => outcome.map_err(|refusal| explain(&refusal)),
            None => apply_effect(db, scope, &step.effect, stage.now_ms, explain).await?,
        };
        tally.record(step, outcome);
    }
    insert_executions(db, scope, stage, &tally.executions).await?;
    for (check, c) in tally.changed_counts() {
        db.execute(
            sql!(
                "INSERT INTO mitigation_task_stats AS s (account_id, region, task_id, ",
                "check_name, total, succeeded, failed, skipped, canceled",
                ") VALUES ($1, $2, $3, $4, 0, $5, $6, $7, 0)",
                " ON CONFLICT (account_id, region, task_id, check_name) DO UPDATE SET",
                " succeeded = s.succeeded + excluded.succeeded,",
                " failed = s.failed + excluded.failed,",
                " skipped = s.skipped + excluded.skipped"
            ),
            &[
                task[0],
                task[1],
                task[2],
                &check,
                &c.succeeded,
                &c.failed,
                &c.skipped,
            ],
        )
        .await?;
    }

    if let Some(payload) = &stage.next_payload {
        db.execute(
            sql!("UPDATE work_items SET payload = $1 WHERE id = $2 AND lease_owner = $3"),
            &[payload, &stage.work_id, &stage.worker],
        )
        .await?;
        return Ok(StageOutcome::Applied {
            task_finished: false,
        });
    }
    delete_work_item(db, stage).await?;
    // The last chunk ends the task: FAILED if any finding failed (this stage's counters
    // included), else COMPLETED.
    let remaining: i64 = db
        .value(
            sql!(
                "UPDATE mitigation_tasks SET chunks_remaining = chunks_remaining - 1,",
                " status = CASE WHEN chunks_remaining > 1 THEN status",
                " WHEN EXISTS (SELECT 1 FROM mitigation_task_stats s",
                " WHERE s.account_id = $1 AND s.region = $2 AND s.task_id = $3",
                " AND s.failed > 0) THEN 'FAILED' ELSE 'COMPLETED' END,",
                " finished_at_ms = CASE WHEN chunks_remaining > 1 THEN finished_at_ms",
                " ELSE $4 END",
                " WHERE account_id = $1 AND region = $2 AND task_id = $3",
                " RETURNING chunks_remaining"
            ),
            &[task[0], task[1], task[2], &stage.now_ms],
        )
        .await?
        .unwrap_or(0);
    Ok(StageOutcome::Applied {
        task_finished: remaining <= 0,
    })
}

pub(super) async fn delete_work_item(db: &Db<'_>, stage: &MitigationStage) -> DbResult<()> {
    db.execute(
        sql!("DELETE FROM work_items WHERE id = $1 AND lease_owner = $2"),
        &[&stage.work_id, &stage.worker],
    )
    .await
    .map(drop)
}

/// Every device certificate deactivation of the stage at once: the outcome of each step
/// that is one, `None` for the others.
async fn deactivate_certificates(
    db: &Db<'_>,
    scope: &Scope,
    stage: &MitigationStage,
) -> DbResult<Vec<Option<EffectOutcome>>> {
    let mut outcomes: Vec<Option<EffectOutcome>> = vec![None; stage.steps.len()];
    let deactivations: Vec<(usize, &str)> = stage
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| match &step.effect {
            MitigationEffect::DeactivateCertificate { certificate_id } => {
                Some((i, certificate_id.as_str()))
            }
            _ => None,
        })
        .collect();
    if deactivations.is_empty() {
        return Ok(outcomes);
    }
    let requests: Vec<(&str, String)> = deactivations
        .iter()
        .map(|(_, id)| (*id, new_generation_id()))
        .collect();
    let changes = set_certificate_statuses(db, scope, &requests, "INACTIVE", stage.now_ms).await?;
    for ((i, id), change) in deactivations.iter().zip(changes) {
        outcomes[*i] = Some(
            change
                .map(drop)
                .map_err(|refusal| EffectRefusal::Certificate {
                    id: (*id).to_owned(),
                    refusal,
                }),
        );
    }
    Ok(outcomes)
}

/// Applies one step's effect inside the stage's transaction (device certificate
/// deactivations are applied before, all at once: see [`deactivate_certificates`]).
async fn apply_effect(
    db: &Db<'_>,
    scope: &Scope,
    effect: &MitigationEffect,
    now_ms: i64,
    explain: ExplainRefusal,
) -> DbResult<Result<(), ExecutionError>> {
    let refused = match effect {
        MitigationEffect::DeactivateCertificate { certificate_id } => {
            let request = [(certificate_id.as_str(), new_generation_id())];
            let change = set_certificate_statuses(db, scope, &request, "INACTIVE", now_ms)
                .await?
                .pop()
                .unwrap_or(Err(CertificateRefusal::NotFound));
            change
                .map(drop)
                .map_err(|refusal| EffectRefusal::Certificate {
                    id: certificate_id.clone(),
                    refusal,
                })
        }
        MitigationEffect::DeactivateCaCertificate { certificate_id } => {
            deactivate_ca(db, scope, certificate_id, now_ms).await?
        }
        MitigationEffect::DeactivateCertificates { certificate_ids } => {
            in_savepoint(db, deactivate_all(db, scope, certificate_ids, now_ms)).await?
        }
        MitigationEffect::AddThingsToGroups {
            principal,
            groups,
            max_groups,
        } => {
            let certificate = [certificate_id_of(principal)];
            let add = add_things_to_groups(db, scope, &certificate, groups, *max_groups);
            in_savepoint(db, add).await?
        }
        MitigationEffect::AddThingsOfCertificatesToGroups {
            certificate_ids,
            groups,
            max_groups,
        } => {
            let ids: Vec<&str> = certificate_ids.iter().map(String::as_str).collect();
            in_savepoint(
                db,
                add_things_to_groups(db, scope, &ids, groups, *max_groups),
            )
            .await?
        }
        MitigationEffect::ReplaceDefaultPolicyVersion {
            policy_name,
            version,
            max_versions,
        } => {
            let replace = async {
                let created =
                    create_policy_version_in(db, scope, policy_name, version, *max_versions)
                        .await?;
                Ok(created.map(drop).map_err(|refusal| EffectRefusal::Policy {
                    name: policy_name.clone(),
                    refusal,
                }))
            };
            in_savepoint(db, replace).await?
        }
        MitigationEffect::SetV2LoggingOptions { options } => {
            put_v2_logging_options_in(db, scope, options).await?;
            Ok(())
        }
        MitigationEffect::Applied => Ok(()),
        MitigationEffect::Failed {
            error_code,
            message,
        } => {
            return Ok(Err(ExecutionError {
                code: error_code.clone(),
                message: message.clone(),
            }))
        }
    };
    Ok(refused.map_err(|refusal| explain(&refusal)))
}

/// Makes a CA certificate INACTIVE (a success that changes nothing if it already is).
async fn deactivate_ca(
    db: &Db<'_>,
    scope: &Scope,
    id: &str,
    now_ms: i64,
) -> DbResult<EffectOutcome> {
    let not_found = || EffectRefusal::CaCertificateNotFound { id: id.to_owned() };
    match lock_ca_certificate_status(db, scope, id).await?.as_deref() {
        None => return Ok(Err(not_found())),
        Some("INACTIVE") => return Ok(Ok(())),
        Some(_) => {}
    }
    let update = CaCertificateUpdate {
        status: Some("INACTIVE".to_owned()),
        auto_registration_status: None,
        registration_config: RegistrationConfigChange::Keep,
        generation_id: new_generation_id(),
        updated_at_ms: now_ms,
    };
    let updated = update_ca_certificate_in(db, scope, id, &update).await?;
    Ok(updated.map(drop).ok_or_else(not_found))
}

/// Runs a multi-statement effect inside a savepoint, so that when the registry refuses
/// it (or it errs) none of its writes stay.
async fn in_savepoint(
    db: &Db<'_>,
    effect: impl std::future::Future<Output = DbResult<EffectOutcome>>,
) -> DbResult<EffectOutcome> {
    db.batch("SAVEPOINT mitigation_effect").await?;
    let outcome = effect.await?;
    db.batch(if outcome.is_ok() {
        "RELEASE SAVEPOINT mitigation_effect"
    } else {
        "ROLLBACK TO SAVEPOINT mitigation_effect; RELEASE SAVEPOINT mitigation_effect"
    })
    .await?;
    Ok(outcome)
}

/// Sets every certificate INACTIVE, a call per [`DEACTIVATE_BATCH`] of them, stopping at
/// the first batch with a refusal; the caller's savepoint undoes the batches before.
async fn deactivate_all(
    db: &Db<'_>,
    scope: &Scope,
    certificate_ids: &[String],
    now_ms: i64,
) -> DbResult<EffectOutcome> {
    for batch in certificate_ids.chunks(DEACTIVATE_BATCH) {
        let requests: Vec<(&str, String)> = batch
            .iter()
            .map(|id| (id.as_str(), new_generation_id()))
            .collect();
        let changes = set_certificate_statuses(db, scope, &requests, "INACTIVE", now_ms).await?;
        for (id, change) in batch.iter().zip(changes) {
            if let Err(refusal) = change {
                return Ok(Err(EffectRefusal::Certificate {
                    id: id.clone(),
                    refusal,
                }));
            }
        }
    }
    Ok(Ok(()))
}

/// Adds every thing attached to any of the certificates to each group; the caller's
/// savepoint undoes it all if one thing cannot join. The membership changes find a
/// missing group themselves, but with no thing attached nothing would look the groups
/// up, so they are checked (and held, as a membership change holds them) then: a
/// missing group fails the effect either way.
async fn add_things_to_groups(
    db: &Db<'_>,
    scope: &Scope,
    certificate_ids: &[&str],
    groups: &[String],
    max_groups: usize,
) -> DbResult<EffectOutcome> {
    let mut any_thing = false;
    for certificate_id in certificate_ids {
        let things = principal_things(db, scope, certificate_id, "", MAX_PRINCIPAL_THINGS).await?;
        any_thing |= !things.is_empty();
        for thing in &things {
            if let Err(refusal) =
                change_thing_groups_in(db, scope, thing, groups, &[], max_groups).await?
            {
                return Ok(Err(EffectRefusal::Membership {
                    thing: thing.clone(),
                    groups: groups.to_vec(),
                    refusal,
                }));
            }
        }
    }
    if !any_thing {
        for group in groups {
            if keep_group(db, scope, group).await?.is_none() {
                return Ok(Err(EffectRefusal::GroupNotFound {
                    group: group.clone(),
                }));
            }
        }
    }
    Ok(Ok(()))
}

/// The certificate id in a certificate ARN (`arn:...:cert/<id>`), which is how
/// mitigation effects name a principal; anything else is taken as an id already.
fn certificate_id_of(principal: &str) -> &str {
    principal
        .rsplit_once(":cert/")
        .map_or(principal, |(_, id)| id)
}

/// Inserts the stage's executions: one statement on PostgreSQL (`unnest`), one cached
/// statement each on SQLite. A key conflict (an execution recorded twice) fails the
/// whole stage.
async fn insert_executions(
    db: &Db<'_>,
    scope: &Scope,
    stage: &MitigationStage,
    rows: &[ExecutionRow<'_>],
) -> DbResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    if db.dialect() == Dialect::Sqlite {
        for e in rows {
            db.execute(
                sql!(
                    "INSERT INTO mitigation_executions (account_id, region, task_id, ",
                    "finding_id, action_index, status, started_at_ms, finished_at_ms,",
                    " error_code, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ),
                &[
                    &scope.account_id,
                    &scope.region,
                    &stage.task_id,
                    &e.finding_id,
                    &e.action_index,
                    &e.status,
                    &e.started_at_ms,
                    &e.finished_at_ms,
                    &e.error_code,
                    &e.message,
                ],
            )
            .await?;
        }
        return Ok(());
    }
    let findings: Vec<&str> = rows.iter().map(|e| e.finding_id).collect();
    let indexes: Vec<i32> = rows.iter().map(|e| e.action_index).collect();
    let statuses: Vec<&str> = rows.iter().map(|e| e.status).collect();
    let started: Vec<i64> = rows.iter().map(|e| e.started_at_ms).collect();
    let finished: Vec<i64> = rows.iter().map(|e| e.finished_at_ms).collect();
    let codes: Vec<Option<&str>> = rows.iter().map(|e| e.error_code.as_deref()).collect();
    let messages: Vec<Option<&str>> = rows.iter().map(|e| e.message.as_deref()).collect();
    db.execute_pg(
        "INSERT INTO mitigation_executions (account_id, region, task_id, finding_id,
             action_index, status, started_at_ms, finished_at_ms, error_code, message)
         SELECT $1::text, $2::text, $3::text, e.*
         FROM UNNEST($4::text[], $5::int[], $6::text[], $7::bigint[], $8::bigint[],
             $9::text[], $10::text[]) AS e",
        &[
            &scope.account_id,
            &scope.region,
            &stage.task_id,
            &findings,
            &indexes,
            &statuses,
            &started,
            &finished,
            &codes,
            &messages,
        ],
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(finding: &str, check: &str, index: u32, after: u32) -> MitigationStep {
        MitigationStep {
            finding_id: finding.to_owned(),
            check_name: check.to_owned(),
            action_index: index,
            actions_after: after,
            started_at_ms: 10,
            effect: MitigationEffect::Applied,
        }
    }

    #[test]
    fn tally_counts_findings_and_skips_after_a_failure() {
        let stage = MitigationStage {
            task_id: "t".into(),
            work_id: "w".into(),
            worker: "me".into(),
            next_payload: None,
            steps: vec![
                step("f1", "A", 0, 0),
                step("f2", "A", 0, 2),
                step("f3", "B", 1, 1),
                step("f4", "B", 1, 0),
            ],
            skipped: vec![("A".into(), 3), ("C".into(), 1)],
            now_ms: 20,
        };
        let mut tally = StageTally::new(&stage);
        tally.record(&stage.steps[0], Ok(()));
        tally.record(&stage.steps[1], Ok(()));
        let boom = ExecutionError {
            code: "X".into(),
            message: "m".into(),
        };
        tally.record(&stage.steps[2], Err(boom.clone()));
        tally.record(&stage.steps[3], Err(boom));
        let counts: Vec<_> = tally.changed_counts().collect();
        let counts_of = |succeeded, failed, skipped| CheckCounts {
            succeeded,
            failed,
            skipped,
        };
        assert_eq!(
            counts,
            vec![
                ("A", counts_of(1, 0, 3)),
                ("B", counts_of(0, 2, 0)),
                ("C", counts_of(0, 0, 1)),
            ]
        );
        let rows: Vec<_> = tally
            .executions
            .iter()
            .map(|r| (r.finding_id, r.action_index, r.status, r.started_at_ms))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("f1", 0, COMPLETED, 10),
                ("f2", 0, COMPLETED, 10),
                ("f3", 1, FAILED, 10),
                ("f3", 2, SKIPPED, 20),
                ("f4", 1, FAILED, 10),
            ]
        );
        assert_eq!(tally.executions[2].error_code.as_deref(), Some("X"));
        assert!(tally.executions.iter().all(|r| r.finished_at_ms == 20));
    }

    #[test]
    fn principals_name_certificates_by_arn() {
        assert_eq!(
            certificate_id_of("arn:aws:iot:us-east-1:123456789012:cert/abc"),
            "abc"
        );
        assert_eq!(certificate_id_of("abc"), "abc");
    }
}
