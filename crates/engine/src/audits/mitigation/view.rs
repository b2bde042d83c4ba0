//! DescribeAuditMitigationActionsTask, ListAuditMitigationActionsTasks,
//! ListAuditMitigationActionsExecutions and CancelAuditMitigationActionsTask.

use palisade_model::{
    AuditFinding, AuditMitigationActionExecutionMetadata, AuditMitigationActionsExecutionStatus,
    AuditMitigationActionsTaskMetadata, AuditMitigationActionsTaskStatus,
    CancelAuditMitigationActionsTaskRequest, CancelAuditMitigationActionsTaskResponse,
    DescribeAuditMitigationActionsTaskRequest, DescribeAuditMitigationActionsTaskResponse,
    ListAuditMitigationActionsExecutionsRequest, ListAuditMitigationActionsExecutionsResponse,
    ListAuditMitigationActionsTasksRequest, ListAuditMitigationActionsTasksResponse,
    TaskStatisticsForAuditCheck, Timestamp,
};
use palisade_store::{
    AuditFindingRecord, AuditTaskKey, FindingRef, MitigationCancelRefusal,
    MitigationExecutionRecord, MitigationTaskFilter, MitigationTaskRecord, Scope,
};

use super::{TaskBody, CANCELED, IN_PROGRESS};
use crate::audits::RETENTION_MS;
use crate::{paging, required, Engine, EngineError, EngineResult};

const TASKS_LISTING: &str = "audit-mitigation-tasks";
const EXECUTIONS_LISTING: &str = "audit-mitigation-executions";
const DEFAULT_PAGE: usize = 25;

fn task_not_found(task_id: &str) -> EngineError {
    EngineError::NotFound(format!(
        "The audit mitigation actions task {task_id} does not exist."
    ))
}

fn invalid_token() -> EngineError {
    EngineError::InvalidRequest("The pagination token (nextToken) is invalid.".into())
}

/// The finding's reason code, from its stored body.
pub(super) fn reason_code(finding: &AuditFindingRecord) -> EngineResult<String> {
    let body: AuditFinding = serde_json::from_str(&finding.body_json).map_err(|e| {
        EngineError::Internal(format!(
            "stored finding {} is unreadable: {e}",
            finding.finding_id
        ))
    })?;
    Ok(body.reason_for_non_compliance_code.unwrap_or_default())
}

/// Whether the task's target names the finding.
fn targets(task: &MitigationTaskRecord, finding: &AuditFindingRecord) -> bool {
    task.finding_ids.contains(&finding.finding_id)
        || task.audit_task_id.as_deref() == Some(finding.task_id.as_str())
}

impl Engine {
    pub async fn describe_audit_mitigation_actions_task(
        &self,
        scope: &Scope,
        input: DescribeAuditMitigationActionsTaskRequest,
    ) -> EngineResult<DescribeAuditMitigationActionsTaskResponse> {
        let task_id = required(input.task_id, "taskId")?;
        let (task, stats) = self
            .store()
            .get_mitigation_task(scope, &task_id)
            .await?
            .ok_or_else(|| task_not_found(&task_id))?;
        let body = TaskBody::decode(&task)?;
        Ok(DescribeAuditMitigationActionsTaskResponse {
            actions_definition: Some(body.actions),
            audit_check_to_actions_mapping: Some(body.mapping),
            end_time: task.finished_at_ms.map(Timestamp::from_millis),
            start_time: Some(Timestamp::from_millis(task.started_at_ms)),
            target: Some(body.target),
            task_statistics: Some(
                stats
                    .into_iter()
                    .map(|s| {
                        (
                            s.check_name,
                            TaskStatisticsForAuditCheck {
                                canceled_findings_count: Some(s.canceled),
                                failed_findings_count: Some(s.failed),
                                skipped_findings_count: Some(s.skipped),
                                succeeded_findings_count: Some(s.succeeded),
                                total_findings_count: Some(s.total),
                            },
                        )
                    })
                    .collect(),
            ),
            task_status: Some(AuditMitigationActionsTaskStatus::from_wire(&task.status)),
        })
    }

    pub async fn cancel_audit_mitigation_actions_task(
        &self,
        scope: &Scope,
        input: CancelAuditMitigationActionsTaskRequest,
    ) -> EngineResult<CancelAuditMitigationActionsTaskResponse> {
        let task_id = required(input.task_id, "taskId")?;
        match self
            .store()
            .cancel_mitigation_task(scope, &task_id, self.now_ms())
            .await?
        {
            Ok(()) => Ok(CancelAuditMitigationActionsTaskResponse {}),
            Err(MitigationCancelRefusal::NotFound) => Err(task_not_found(&task_id)),
            Err(MitigationCancelRefusal::NotInProgress(status)) => {
                Err(EngineError::InvalidRequest(format!(
                    "The audit mitigation actions task {task_id} is {status}; only an \
                     IN_PROGRESS task can be canceled."
                )))
            }
        }
    }

    pub async fn list_audit_mitigation_actions_tasks(
        &self,
        scope: &Scope,
        input: ListAuditMitigationActionsTasksRequest,
    ) -> EngineResult<ListAuditMitigationActionsTasksResponse> {
        let start = required(input.start_time, "startTime")?.millis();
        let end = required(input.end_time, "endTime")?.millis();
        if start < self.now_ms() - RETENTION_MS {
            return Err(EngineError::InvalidRequest(
                "startTime is older than the 90 days audit mitigation actions tasks are kept."
                    .into(),
            ));
        }
        if end < start {
            return Err(EngineError::InvalidRequest(
                "endTime must not be before startTime.".into(),
            ));
        }
        let finding = match input.finding_id.as_deref() {
            Some(id) => Some(FindingRef {
                finding_id: id.to_owned(),
                // A finding past the retention names no audit task; tasks that listed
                // it by id still match.
                audit_task_id: self
                    .store()
                    .get_audit_finding(scope, id)
                    .await?
                    .map(|f| f.task_id)
                    .unwrap_or_default(),
            }),
            None => None,
        };
        let filter = MitigationTaskFilter {
            started_from_ms: start,
            started_to_ms: end,
            audit_task_id: input.audit_task_id.clone(),
            finding,
            status: input.task_status.map(|s| s.as_str().to_owned()),
        };
        let filter_text = format!(
            "{start}/{end}/{}/{}/{}",
            input.audit_task_id.as_deref().unwrap_or(""),
            input.finding_id.as_deref().unwrap_or(""),
            filter.status.as_deref().unwrap_or("")
        );
        let after = match input.next_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => {
                let last = self
                    .inner
                    .tokens
                    .open(scope, TASKS_LISTING, &filter_text, token)?;
                let (ms, id) = last.split_once('/').ok_or_else(invalid_token)?;
                Some(AuditTaskKey {
                    started_at_ms: ms.parse().map_err(|_| invalid_token())?,
                    task_id: id.to_owned(),
                })
            }
            None => None,
        };
        let size = paging::page_size(input.max_results, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_mitigation_tasks(scope, &filter, after.as_ref(), n)
        })
        .await?;
        let next_token = page.next(|last| {
            self.inner.tokens.issue(
                scope,
                TASKS_LISTING,
                &filter_text,
                &format!("{}/{}", last.started_at_ms, last.task_id),
            )
        });
        let tasks = page.items;
        Ok(ListAuditMitigationActionsTasksResponse {
            next_token,
            tasks: Some(
                tasks
                    .into_iter()
                    .map(|t| AuditMitigationActionsTaskMetadata {
                        start_time: Some(Timestamp::from_millis(t.started_at_ms)),
                        task_id: Some(t.task_id),
                        task_status: Some(AuditMitigationActionsTaskStatus::from_wire(&t.status)),
                    })
                    .collect(),
            ),
        })
    }

    pub async fn list_audit_mitigation_actions_executions(
        &self,
        scope: &Scope,
        input: ListAuditMitigationActionsExecutionsRequest,
    ) -> EngineResult<ListAuditMitigationActionsExecutionsResponse> {
        let task_id = required(input.task_id, "taskId")?;
        let finding_id = required(input.finding_id, "findingId")?;
        let status = input.action_status.map(|s| s.as_str().to_owned());
        let filter_text = format!("{task_id}/{finding_id}/{}", status.as_deref().unwrap_or(""));
        let skip = match input.next_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => self
                .inner
                .tokens
                .open(scope, EXECUTIONS_LISTING, &filter_text, token)?
                .parse::<usize>()
                .map_err(|_| invalid_token())?,
            None => 0,
        };
        let mut all = self.executions(scope, &task_id, &finding_id).await?;
        if let Some(status) = &status {
            all.retain(|e| e.status.as_ref().map(|s| s.as_str()) == Some(status.as_str()));
        }
        let size = paging::page_size(input.max_results, DEFAULT_PAGE);
        let page: Vec<_> = all.iter().skip(skip).take(size).cloned().collect();
        let next_token = (skip + size < all.len()).then(|| {
            self.inner.tokens.issue(
                scope,
                EXECUTIONS_LISTING,
                &filter_text,
                &(skip + size).to_string(),
            )
        });
        Ok(ListAuditMitigationActionsExecutionsResponse {
            actions_executions: Some(page),
            next_token,
        })
    }

    /// Every execution the task has or will have for the finding, in action order.
    async fn executions(
        &self,
        scope: &Scope,
        task_id: &str,
        finding_id: &str,
    ) -> EngineResult<Vec<AuditMitigationActionExecutionMetadata>> {
        let Some((task, _)) = self.store().get_mitigation_task(scope, task_id).await? else {
            return Ok(Vec::new());
        };
        let Some(finding) = self.store().get_audit_finding(scope, finding_id).await? else {
            return Ok(Vec::new());
        };
        if !targets(&task, &finding) {
            return Ok(Vec::new());
        }
        let body = TaskBody::decode(&task)?;
        let Some(names) = body.mapping.get(&finding.check_name) else {
            return Ok(Vec::new());
        };
        let exclusion = body.exclusion(&finding, &reason_code(&finding)?);
        let stored: Vec<MitigationExecutionRecord> = if exclusion.is_some() {
            Vec::new()
        } else {
            self.store()
                .get_mitigation_executions(scope, task_id, finding_id)
                .await?
        };
        Ok(names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let base = AuditMitigationActionExecutionMetadata {
                    action_id: body.action(name).and_then(|a| a.id.clone()),
                    action_name: Some(name.clone()),
                    finding_id: Some(finding_id.to_owned()),
                    task_id: Some(task_id.to_owned()),
                    ..AuditMitigationActionExecutionMetadata::default()
                };
                let from_wire = AuditMitigationActionsExecutionStatus::from_wire;
                if let Some(e) = stored.iter().find(|e| e.action_index as usize == i) {
                    return AuditMitigationActionExecutionMetadata {
                        status: Some(from_wire(&e.status)),
                        start_time: Some(Timestamp::from_millis(e.started_at_ms)),
                        end_time: e.finished_at_ms.map(Timestamp::from_millis),
                        error_code: e.error_code.clone(),
                        message: e.message.clone(),
                        ..base
                    };
                }
                let (status, message) = match (exclusion, task.status.as_str()) {
                    (Some(why), _) => ("SKIPPED", Some(why.message().to_owned())),
                    (None, IN_PROGRESS) => ("PENDING", None),
                    (None, CANCELED) => (
                        "CANCELED",
                        Some("The task was canceled before this action ran.".to_owned()),
                    ),
                    // A finished task has run every execution of its findings; this
                    // one's finding left the store (retention) before it ran.
                    (None, _) => ("SKIPPED", None),
                };
                AuditMitigationActionExecutionMetadata {
                    status: Some(from_wire(status)),
                    message,
                    ..base
                }
            })
            .collect())
    }
}
