//! StartAuditMitigationActionsTask: validation, statistics and chunks, written at once.

use std::collections::BTreeMap;

use palisade_model::{
    AuditMitigationActionsTaskTarget, MitigationAction, MitigationActionParams,
    MitigationActionType, StartAuditMitigationActionsTaskRequest,
    StartAuditMitigationActionsTaskResponse,
};
use palisade_store::{
    MitigationCheckStats, MitigationTaskCreated, MitigationTaskRecord, NewWorkItem, Scope,
};

use super::allowed::{allowed_for, allows};
use super::{
    chunk_size, ChunkFindings, ChunkWork, TaskBody, CHUNK_STEP, IN_PROGRESS, MAX_IN_PROGRESS, QUEUE,
};
use crate::audits::catalogue;
use crate::{required, Engine, EngineError, EngineResult};

fn invalid(message: String) -> EngineError {
    EngineError::InvalidRequest(message)
}

/// The answer to a start whose task id is taken: the same task again if the token is
/// the one it was started with.
fn existing(
    task: &MitigationTaskRecord,
    token: &str,
) -> EngineResult<StartAuditMitigationActionsTaskResponse> {
    if task.client_request_token == token {
        return Ok(StartAuditMitigationActionsTaskResponse {
            task_id: Some(task.task_id.clone()),
        });
    }
    Err(EngineError::TaskAlreadyExists(format!(
        "An audit mitigation actions task with the id {} already exists; it was started \
         with another clientRequestToken.",
        task.task_id
    )))
}

/// What the target names: the statistics' totals per check, the chunks, and the
/// columns the listing filters on.
struct Planned {
    totals: BTreeMap<String, i64>,
    chunks: Vec<ChunkFindings>,
    audit_task_id: Option<String>,
    finding_ids: Vec<String>,
}

impl Engine {
    pub async fn start_audit_mitigation_actions_task(
        &self,
        scope: &Scope,
        input: StartAuditMitigationActionsTaskRequest,
    ) -> EngineResult<StartAuditMitigationActionsTaskResponse> {
        let task_id = required(input.task_id, "taskId")?;
        let token = required(input.client_request_token, "clientRequestToken")?;
        let target = required(input.target, "target")?;
        let mapping = required(
            input.audit_check_to_actions_mapping,
            "auditCheckToActionsMapping",
        )?;
        // A retry answers as the first call did, whatever changed since.
        if let Some((task, _)) = self.store().get_mitigation_task(scope, &task_id).await? {
            return existing(&task, &token);
        }
        let actions = self.mapped_actions(scope, &mapping).await?;
        let planned = self.plan_target(scope, &target).await?;

        let now = self.now_ms();
        let mut totals = planned.totals;
        for check in mapping.keys() {
            totals.entry(check.clone()).or_insert(0);
        }
        let stats: Vec<MitigationCheckStats> = totals
            .into_iter()
            .map(|(check_name, total)| MitigationCheckStats {
                check_name,
                total,
                ..MitigationCheckStats::default()
            })
            .collect();
        let chunks = planned
            .chunks
            .into_iter()
            .enumerate()
            .map(|(n, findings)| {
                let work = ChunkWork {
                    account_id: scope.account_id.clone(),
                    region: scope.region.clone(),
                    task_id: task_id.clone(),
                    findings,
                    stage: 0,
                };
                Ok(NewWorkItem {
                    // Work ids are global: the scope is part of them.
                    id: format!(
                        "audit-mitigation/{}/{}/{task_id}/{n}",
                        scope.account_id, scope.region
                    ),
                    queue: QUEUE.into(),
                    payload: serde_json::to_string(&work)
                        .map_err(|e| EngineError::Internal(e.to_string()))?,
                    run_after_ms: now,
                })
            })
            .collect::<EngineResult<Vec<_>>>()?;
        let body = TaskBody {
            target,
            mapping,
            actions,
        };
        let done = chunks.is_empty();
        let record = MitigationTaskRecord {
            task_id: task_id.clone(),
            client_request_token: token.clone(),
            // A target without findings has nothing to run: done as it starts.
            status: if done { "COMPLETED" } else { IN_PROGRESS }.into(),
            started_at_ms: now,
            finished_at_ms: done.then_some(now),
            audit_task_id: planned.audit_task_id,
            finding_ids: planned.finding_ids,
            body_json: body.encode()?,
        };
        match self
            .store()
            .create_mitigation_task(scope, &record, &stats, &chunks, MAX_IN_PROGRESS)
            .await?
        {
            MitigationTaskCreated::Created => {}
            MitigationTaskCreated::Exists(task) => return existing(&task, &token),
            MitigationTaskCreated::TooManyInProgress => {
                return Err(EngineError::LimitExceeded(format!(
                    "At most {MAX_IN_PROGRESS} audit mitigation actions tasks can be in \
                     progress at once."
                )))
            }
        }
        self.inner.mitigation_wakeup.notify_waiters();
        Ok(StartAuditMitigationActionsTaskResponse {
            task_id: Some(task_id),
        })
    }

    /// The definitions of every action the mapping names, as they are now (the task's
    /// snapshot), after checking each check and each action's type against it.
    async fn mapped_actions(
        &self,
        scope: &Scope,
        mapping: &BTreeMap<String, Vec<String>>,
    ) -> EngineResult<Vec<MitigationAction>> {
        if mapping.is_empty() {
            return Err(invalid(
                "auditCheckToActionsMapping must map at least one check to actions.".into(),
            ));
        }
        let mut actions: Vec<(MitigationAction, MitigationActionType)> = Vec::new();
        for (check, names) in mapping {
            if catalogue::find(check).is_none() {
                return Err(invalid(format!(
                    "auditCheckToActionsMapping: '{check}' is not an audit check name."
                )));
            }
            if names.is_empty() || names.len() > 5 {
                return Err(invalid(format!(
                    "auditCheckToActionsMapping: {check} must map to 1 to 5 action names; \
                     got {}.",
                    names.len()
                )));
            }
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    return Err(invalid(format!(
                        "auditCheckToActionsMapping: {check} names the action '{name}' \
                         more than once."
                    )));
                }
                let known = actions
                    .iter()
                    .find(|(a, _)| a.name.as_deref() == Some(name))
                    .map(|(_, t)| t.clone());
                let action_type = match known {
                    Some(t) => t,
                    None => {
                        let record = self
                            .store()
                            .get_mitigation_action(scope, name)
                            .await?
                            .ok_or_else(|| {
                                invalid(format!(
                                    "auditCheckToActionsMapping: the mitigation action \
                                     '{name}' does not exist."
                                ))
                            })?;
                        let params: MitigationActionParams =
                            serde_json::from_str(&record.params_json).map_err(|e| {
                                EngineError::Internal(format!(
                                    "stored mitigation action {name} is unreadable: {e}"
                                ))
                            })?;
                        let t = MitigationActionType::from_wire(&record.action_type);
                        actions.push((
                            MitigationAction {
                                action_params: Some(params),
                                id: Some(record.id),
                                name: Some(record.name),
                                role_arn: Some(record.role_arn),
                            },
                            t.clone(),
                        ));
                        t
                    }
                };
                if !allows(check, &action_type) {
                    return Err(invalid(format!(
                        "auditCheckToActionsMapping: the action '{name}' is of type {}, \
                         which cannot mitigate {check} findings; {check} allows {}.",
                        action_type.as_str(),
                        allowed_for(check).join(", ")
                    )));
                }
            }
        }
        Ok(actions.into_iter().map(|(a, _)| a).collect())
    }

    async fn plan_target(
        &self,
        scope: &Scope,
        target: &AuditMitigationActionsTaskTarget,
    ) -> EngineResult<Planned> {
        match (&target.audit_task_id, &target.finding_ids) {
            (Some(_), Some(_)) => Err(invalid(
                "target: give either auditTaskId (optionally with \
                 auditCheckToReasonCodeFilter) or findingIds, not both."
                    .into(),
            )),
            (None, None) => Err(invalid(
                "target: give auditTaskId (optionally with auditCheckToReasonCodeFilter) or \
                 findingIds."
                    .into(),
            )),
            (None, Some(ids)) => {
                if target.audit_check_to_reason_code_filter.is_some() {
                    return Err(invalid(
                        "target.auditCheckToReasonCodeFilter applies to the findings of \
                         target.auditTaskId, which is not given."
                            .into(),
                    ));
                }
                self.plan_findings(scope, ids).await
            }
            (Some(audit_task_id), None) => self.plan_audit(scope, audit_task_id, target).await,
        }
    }

    async fn plan_findings(&self, scope: &Scope, ids: &[String]) -> EngineResult<Planned> {
        if ids.is_empty() || ids.len() > 25 {
            return Err(invalid(format!(
                "target.findingIds must name 1 to 25 findings; got {}.",
                ids.len()
            )));
        }
        let mut totals = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(invalid(format!(
                    "target.findingIds names the finding {id} more than once."
                )));
            }
            let finding = self
                .store()
                .get_audit_finding(scope, id)
                .await?
                .ok_or_else(|| {
                    invalid(format!(
                        "target.findingIds: the finding {id} does not exist."
                    ))
                })?;
            *totals.entry(finding.check_name).or_insert(0) += 1;
        }
        Ok(Planned {
            totals,
            chunks: vec![ChunkFindings::Ids(ids.to_vec())],
            audit_task_id: None,
            finding_ids: ids.to_vec(),
        })
    }

    async fn plan_audit(
        &self,
        scope: &Scope,
        audit_task_id: &str,
        target: &AuditMitigationActionsTaskTarget,
    ) -> EngineResult<Planned> {
        let audit = self
            .store()
            .get_audit_task(scope, audit_task_id)
            .await?
            .ok_or_else(|| {
                invalid(format!(
                    "target.auditTaskId: the audit task {audit_task_id} does not exist."
                ))
            })?;
        if audit.status == IN_PROGRESS {
            return Err(invalid(format!(
                "target.auditTaskId: the audit task {audit_task_id} is still IN_PROGRESS; \
                 its findings can be mitigated once it has finished."
            )));
        }
        if let Some(filter) = &target.audit_check_to_reason_code_filter {
            if filter.is_empty() {
                return Err(invalid(
                    "target.auditCheckToReasonCodeFilter must name at least one check.".into(),
                ));
            }
            for (check, codes) in filter {
                if catalogue::find(check).is_none() {
                    return Err(invalid(format!(
                        "target.auditCheckToReasonCodeFilter: '{check}' is not an audit \
                         check name."
                    )));
                }
                if codes.is_empty() || codes.len() > 25 {
                    return Err(invalid(format!(
                        "target.auditCheckToReasonCodeFilter: {check} must list 1 to 25 \
                         reason codes; got {}.",
                        codes.len()
                    )));
                }
            }
        }
        // Both walk the audit's findings (a million: a few tenths of a second each), so
        // they run at once; the boundaries are taken every CHUNK_STEP findings, before
        // the count decides the chunk size, which is a whole number of steps. A finished
        // audit's findings no longer change, so the two agree.
        let (counts, steps) = tokio::try_join!(
            self.store()
                .count_audit_findings_by_check(scope, audit_task_id),
            self.store()
                .audit_finding_boundaries(scope, audit_task_id, CHUNK_STEP),
        )?;
        let total: i64 = counts.iter().map(|(_, n)| n).sum();
        let chunk = chunk_size(total as usize);
        let steps_per_chunk = chunk / CHUNK_STEP;
        let chunk_count = (total as usize).div_ceil(chunk);
        let chunks = (0..chunk_count)
            .map(|i| {
                let after = if i == 0 {
                    Ok(None)
                } else {
                    steps.get(i * steps_per_chunk - 1).map(Some).ok_or_else(|| {
                        EngineError::Internal(format!(
                            "audit task {audit_task_id}: {} chunk boundaries for {total} \
                             findings",
                            steps.len()
                        ))
                    })
                }?;
                Ok(ChunkFindings::audit(audit_task_id, after, chunk))
            })
            .collect::<EngineResult<Vec<_>>>()?;
        Ok(Planned {
            totals: counts.into_iter().collect(),
            chunks,
            audit_task_id: Some(audit_task_id.to_owned()),
            finding_ids: Vec::new(),
        })
    }
}
