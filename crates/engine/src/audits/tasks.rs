//! Audit tasks: starting on-demand audits, their progress, cancelling, listing.

use std::collections::BTreeMap;

use palisade_model::{
    AuditCheckDetails, AuditCheckRunStatus, AuditTaskMetadata, AuditTaskStatus, AuditTaskType,
    CancelAuditTaskRequest, CancelAuditTaskResponse, DescribeAuditTaskRequest,
    DescribeAuditTaskResponse, ListAuditTasksRequest, ListAuditTasksResponse,
    StartOnDemandAuditTaskRequest, StartOnDemandAuditTaskResponse, TaskStatistics, Timestamp,
};
use palisade_store::{
    AuditTaskFilter, AuditTaskKey, AuditTaskRecord, AuditTaskRefusal, NewWorkItem, Scope,
    StoreError,
};
use serde::{Deserialize, Serialize};

use super::{catalogue, AUDIT_QUEUE, RETENTION_MS};
use crate::{paging, required, Engine, EngineError, EngineResult};

pub(crate) const ON_DEMAND: &str = "ON_DEMAND_AUDIT_TASK";
pub(crate) const IN_PROGRESS: &str = "IN_PROGRESS";
pub(crate) const COMPLETED: &str = "COMPLETED";
pub(crate) const FAILED: &str = "FAILED";
pub(crate) const CANCELED: &str = "CANCELED";

/// Most on-demand audits in progress per account at once (AWS's quota).
const MAX_ON_DEMAND_IN_PROGRESS: usize = 10;
const TASKS_LISTING: &str = "audit-tasks";
const DEFAULT_PAGE: usize = 25;

/// One check's progress within a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CheckProgress {
    /// An `AuditCheckRunStatus`, as on the wire.
    pub status: String,
    /// The check's configuration when the task started (thresholds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configuration: BTreeMap<String, String>,
    #[serde(default)]
    pub total: i64,
    #[serde(default)]
    pub non_compliant: i64,
    #[serde(default)]
    pub suppressed: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl CheckProgress {
    pub fn is_finished(&self) -> bool {
        self.status != "IN_PROGRESS" && self.status != "WAITING_FOR_DATA_COLLECTION"
    }
}

pub(crate) type TaskChecks = BTreeMap<String, CheckProgress>;

pub(crate) fn decode_checks(task: &AuditTaskRecord) -> EngineResult<TaskChecks> {
    serde_json::from_str(&task.checks_json).map_err(|e| {
        EngineError::Internal(format!(
            "stored progress of audit task {} is unreadable: {e}",
            task.task_id
        ))
    })
}

pub(crate) fn encode_checks(checks: &TaskChecks) -> EngineResult<String> {
    serde_json::to_string(checks).map_err(|e| EngineError::Internal(e.to_string()))
}

/// What [`Engine::end_task`] found.
pub(crate) enum Ending {
    Ended,
    Missing,
    /// The task had already ended, with this status.
    NotInProgress(String),
}

/// The payload of an audit task's work item.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TaskWork {
    pub account_id: String,
    pub region: String,
    pub task_id: String,
}

fn task_not_found(task_id: &str) -> EngineError {
    EngineError::NotFound(format!("Audit task {task_id} does not exist."))
}

pub(super) fn statistics(checks: &TaskChecks) -> TaskStatistics {
    let count = |status: &str| checks.values().filter(|c| c.status == status).count() as i32;
    TaskStatistics {
        total_checks: Some(checks.len() as i32),
        in_progress_checks: Some(count("IN_PROGRESS")),
        waiting_for_data_collection_checks: Some(count("WAITING_FOR_DATA_COLLECTION")),
        compliant_checks: Some(count("COMPLETED_COMPLIANT")),
        non_compliant_checks: Some(count("COMPLETED_NON_COMPLIANT")),
        failed_checks: Some(count("FAILED")),
        canceled_checks: Some(count("CANCELED")),
    }
}

pub(super) fn details(progress: &CheckProgress) -> AuditCheckDetails {
    let completed = progress.status.starts_with("COMPLETED_");
    AuditCheckDetails {
        check_compliant: completed.then(|| progress.status == "COMPLETED_COMPLIANT"),
        check_run_status: Some(AuditCheckRunStatus::from_wire(&progress.status)),
        error_code: progress.error_code.clone(),
        message: progress.message.clone(),
        non_compliant_resources_count: completed.then_some(progress.non_compliant),
        suppressed_non_compliant_resources_count: completed.then_some(progress.suppressed),
        total_resources_count: completed.then_some(progress.total),
    }
}

impl Engine {
    pub async fn start_on_demand_audit_task(
        &self,
        scope: &Scope,
        input: StartOnDemandAuditTaskRequest,
    ) -> EngineResult<StartOnDemandAuditTaskResponse> {
        let names = required(input.target_check_names, "targetCheckNames")?;
        if names.is_empty() {
            return Err(EngineError::InvalidRequest(
                "targetCheckNames must name at least one check.".into(),
            ));
        }
        let config = self.audit_configuration(scope).await?;
        let mut checks = TaskChecks::new();
        for name in names {
            let check = catalogue::find(&name).ok_or_else(|| {
                EngineError::InvalidRequest(format!(
                    "targetCheckNames: '{name}' is not an audit check name."
                ))
            })?;
            if !config.is_enabled(check.name) {
                return Err(EngineError::InvalidRequest(format!(
                    "targetCheckNames: {name} is not enabled in the account's audit \
                     configuration (UpdateAccountAuditConfiguration)."
                )));
            }
            checks.insert(
                name,
                CheckProgress {
                    status: "IN_PROGRESS".into(),
                    configuration: config.effective_configuration(check),
                    total: 0,
                    non_compliant: 0,
                    suppressed: 0,
                    error_code: None,
                    message: None,
                },
            );
        }
        let task_id = self.inner.ids.uuid().replace('-', "");
        let (task, work) = new_task(scope, &task_id, ON_DEMAND, None, &checks, self.now_ms())?;
        match self
            .store()
            .create_audit_task(scope, &task, &work, Some(MAX_ON_DEMAND_IN_PROGRESS))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(AuditTaskRefusal::TooManyInProgress)) => {
                return Err(EngineError::LimitExceeded(format!(
                    "At most {MAX_ON_DEMAND_IN_PROGRESS} on-demand audits can be in progress \
                     at once."
                )))
            }
            Err(StoreError::AlreadyExists) => {
                return Err(EngineError::Internal("audit task id collision".into()))
            }
            Err(e) => return Err(e.into()),
        }
        self.inner.audit_wakeup.notify_one();
        Ok(StartOnDemandAuditTaskResponse {
            task_id: Some(task_id),
        })
    }

    pub async fn describe_audit_task(
        &self,
        scope: &Scope,
        input: DescribeAuditTaskRequest,
    ) -> EngineResult<DescribeAuditTaskResponse> {
        let task_id = required(input.task_id, "taskId")?;
        let task = self
            .store()
            .get_audit_task(scope, &task_id)
            .await?
            .ok_or_else(|| task_not_found(&task_id))?;
        let checks = decode_checks(&task)?;
        Ok(DescribeAuditTaskResponse {
            audit_details: Some(
                checks
                    .iter()
                    .map(|(n, p)| (n.clone(), details(p)))
                    .collect(),
            ),
            scheduled_audit_name: task.scheduled_audit_name,
            task_start_time: Some(Timestamp::from_millis(task.started_at_ms)),
            task_statistics: Some(statistics(&checks)),
            task_status: Some(AuditTaskStatus::from_wire(&task.status)),
            task_type: Some(AuditTaskType::from_wire(&task.task_type)),
        })
    }

    pub async fn cancel_audit_task(
        &self,
        scope: &Scope,
        input: CancelAuditTaskRequest,
    ) -> EngineResult<CancelAuditTaskResponse> {
        let task_id = required(input.task_id, "taskId")?;
        let ending = self
            .end_task(scope, &task_id, CANCELED, |progress| {
                progress.status = "CANCELED".into();
            })
            .await?;
        match ending {
            Ending::Ended => Ok(CancelAuditTaskResponse {}),
            Ending::Missing => Err(task_not_found(&task_id)),
            Ending::NotInProgress(status) => Err(EngineError::InvalidRequest(format!(
                "Audit task {task_id} is {status}; only an IN_PROGRESS task can be canceled."
            ))),
        }
    }

    /// Ends an IN_PROGRESS task with `status`, applying `mark` to its unfinished checks.
    /// The update is conditional on the version read (the worker may be recording a
    /// check meanwhile), so it is read, changed and retried until it lands.
    pub(crate) async fn end_task(
        &self,
        scope: &Scope,
        task_id: &str,
        status: &str,
        mark: impl Fn(&mut CheckProgress),
    ) -> EngineResult<Ending> {
        loop {
            let Some(mut task) = self.store().get_audit_task(scope, task_id).await? else {
                return Ok(Ending::Missing);
            };
            if task.status != IN_PROGRESS {
                return Ok(Ending::NotInProgress(task.status));
            }
            let mut checks = decode_checks(&task)?;
            checks
                .values_mut()
                .filter(|p| !p.is_finished())
                .for_each(&mark);
            task.status = status.into();
            task.finished_at_ms = Some(self.now_ms());
            task.checks_json = encode_checks(&checks)?;
            task.version += 1;
            if self.record_task(scope, &task).await? {
                return Ok(Ending::Ended);
            }
        }
    }

    pub async fn list_audit_tasks(
        &self,
        scope: &Scope,
        input: ListAuditTasksRequest,
    ) -> EngineResult<ListAuditTasksResponse> {
        let start = required(input.start_time, "startTime")?.millis();
        let end = required(input.end_time, "endTime")?.millis();
        let now = self.now_ms();
        if start < now - RETENTION_MS {
            return Err(EngineError::InvalidRequest(
                "startTime is older than the 90 days audit tasks are kept.".into(),
            ));
        }
        if end < start {
            return Err(EngineError::InvalidRequest(
                "endTime must not be before startTime.".into(),
            ));
        }
        let filter = AuditTaskFilter {
            started_from_ms: start,
            started_to_ms: end,
            task_type: input.task_type.map(|t| t.as_str().to_owned()),
            status: input.task_status.map(|s| s.as_str().to_owned()),
        };
        let filter_text = format!(
            "{start}/{end}/{}/{}",
            filter.task_type.as_deref().unwrap_or(""),
            filter.status.as_deref().unwrap_or("")
        );
        let after = match input.next_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => {
                let last = self
                    .inner
                    .tokens
                    .open(scope, TASKS_LISTING, &filter_text, token)?;
                let (ms, id) = last.split_once('/').ok_or_else(|| {
                    EngineError::InvalidRequest(
                        "The pagination token (nextToken) is invalid.".into(),
                    )
                })?;
                Some(AuditTaskKey {
                    started_at_ms: ms.parse().map_err(|_| {
                        EngineError::InvalidRequest(
                            "The pagination token (nextToken) is invalid.".into(),
                        )
                    })?,
                    task_id: id.to_owned(),
                })
            }
            None => None,
        };
        let size = paging::page_size(input.max_results, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_audit_tasks(scope, &filter, after.as_ref(), n)
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
        Ok(ListAuditTasksResponse {
            next_token,
            tasks: Some(
                tasks
                    .into_iter()
                    .map(|t| AuditTaskMetadata {
                        task_id: Some(t.task_id),
                        task_status: Some(AuditTaskStatus::from_wire(&t.status)),
                        task_type: Some(AuditTaskType::from_wire(&t.task_type)),
                    })
                    .collect(),
            ),
        })
    }
}

/// A new IN_PROGRESS task of `task_type` and the work item that runs it, to be written
/// together.
pub(super) fn new_task(
    scope: &Scope,
    task_id: &str,
    task_type: &str,
    scheduled_audit_name: Option<String>,
    checks: &TaskChecks,
    now_ms: i64,
) -> EngineResult<(AuditTaskRecord, NewWorkItem)> {
    let task = AuditTaskRecord {
        task_id: task_id.to_owned(),
        task_type: task_type.to_owned(),
        status: IN_PROGRESS.into(),
        scheduled_audit_name,
        started_at_ms: now_ms,
        finished_at_ms: None,
        checks_json: encode_checks(checks)?,
        version: 1,
    };
    let work = NewWorkItem {
        id: format!("audit-task/{task_id}"),
        queue: AUDIT_QUEUE.into(),
        payload: serde_json::to_string(&TaskWork {
            account_id: scope.account_id.clone(),
            region: scope.region.clone(),
            task_id: task_id.to_owned(),
        })
        .map_err(|e| EngineError::Internal(e.to_string()))?,
        run_after_ms: now_ms,
    };
    Ok((task, work))
}
