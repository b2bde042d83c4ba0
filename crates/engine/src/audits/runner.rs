//! The background worker that runs audit tasks.
//!
//! A task is a work item on the durable queue. A worker claims it with a lease, runs its
//! checks one after another and records each check's result on the task as it finishes;
//! the lease is renewed while a check runs. A worker that dies stops renewing, the item
//! is claimed again (by this node after a restart, or by another node), and the task
//! resumes at the first unfinished check. Re-running a check writes the same finding
//! ids again, which the store skips, so no finding is duplicated.

use std::sync::Arc;
use std::time::Duration;

use palisade_store::{Scope, WorkItem};
use tokio::sync::watch;

use super::evaluate::{device_judge, DeviceJudge};
use super::sink::Outcome;
use super::tasks::{self, decode_checks, encode_checks, CheckProgress, TaskWork};
use super::{catalogue, AUDIT_QUEUE, RETENTION_MS};
use crate::{Engine, EngineError, EngineResult};

/// How often an idle worker looks for work enqueued by other nodes.
const POLL: Duration = Duration::from_secs(1);
/// After this many claims a task is given up on and marked FAILED.
const MAX_ATTEMPTS: u32 = 5;
const RETRY_AFTER_MS: i64 = 5_000;
/// How often each node purges audit history past the retention (the store keeps
/// concurrent purges from several nodes apart).
const PURGE_EVERY: Duration = Duration::from_secs(60 * 60);
/// Mitigation workers per node. Each holds one chunk; with more than two, a worker whose
/// stage was just written has its next chunk read and prepared by the time the writer
/// is free again, instead of claiming behind another worker's stage.
/// (tests/compat/test_compat.py bounds what canceled tasks publish by this number.)
const MITIGATION_WORKERS: usize = 4;
/// How long closed connections are kept: the connection checks look back 31 days on
/// demand, and a monthly scheduled audit up to 31 days to its previous run; a few days
/// more so that a run delayed past its occurrence still finds its whole window.
pub(crate) const CONNECTION_RETENTION_MS: i64 = 35 * 24 * 60 * 60 * 1000;

/// Stops the background workers at a safe point when dropped or stopped.
pub struct BackgroundWork {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl BackgroundWork {
    /// Asks the workers to stop after the step they are in, and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

impl Engine {
    /// Starts this node's audit worker.
    pub fn start_background_work(&self) -> BackgroundWork {
        let (stop, stopped) = watch::channel(false);
        let engine = self.clone();
        let worker = format!("audit-worker/{}", self.inner.ids.uuid());
        // Notifications are published beside the audits, never holding them up.
        let notifier = self.clone().notification_loop(
            format!("audit-notifier/{}", self.inner.ids.uuid()),
            stop.subscribe(),
        );
        let scheduler = self.clone().scheduler_loop(stop.subscribe());
        // Mitigation workers are tasks of their own, so they run on both cores: one
        // reads and prepares a chunk while another's stage is written.
        let publisher = self.sns_publisher();
        let mitigators: Vec<_> = (0..MITIGATION_WORKERS)
            .map(|_| {
                tokio::spawn(self.clone().mitigation_loop(
                    format!("mitigation-worker/{}", self.inner.ids.uuid()),
                    publisher.clone(),
                    stop.subscribe(),
                ))
            })
            .collect();
        let handle = tokio::spawn(async move {
            tokio::join!(engine.audit_loop(worker, stopped), notifier, scheduler);
            for m in mitigators {
                let _ = m.await;
            }
        });
        BackgroundWork { stop, handle }
    }

    /// Deletes finished audit tasks and audit mitigation actions tasks that started before
    /// the retention, with their findings and executions, and connections closed before
    /// theirs; how many rows went. The worker calls it at start and hourly.
    pub async fn purge_audit_history(&self) -> EngineResult<u64> {
        let before = self.now_ms() - RETENTION_MS;
        let audits = self.store().purge_audit_history(before).await?;
        let mitigations = self.store().purge_mitigation_history(before).await?;
        let connections = self
            .store()
            .purge_connections(self.now_ms() - CONNECTION_RETENTION_MS)
            .await?;
        Ok(audits + mitigations + connections)
    }

    async fn audit_loop(self, worker: String, mut stopped: watch::Receiver<bool>) {
        let wakeup = Arc::clone(&self.inner.audit_wakeup);
        let mut next_purge = tokio::time::Instant::now();
        loop {
            if *stopped.borrow() {
                return;
            }
            if tokio::time::Instant::now() >= next_purge {
                next_purge += PURGE_EVERY;
                match self.purge_audit_history().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "audit history past retention purged"),
                    Err(e) => tracing::warn!(error = %e, "purging audit history failed"),
                }
            }
            let claimed = self
                .store()
                .claim_work(AUDIT_QUEUE, &worker, 1, self.now_ms(), self.lease_ms())
                .await;
            match claimed {
                Ok(items) if !items.is_empty() => {
                    for item in items {
                        self.run_item(&worker, item, &stopped).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "audit worker: claiming work failed"),
            }
            tokio::select! {
                _ = stopped.changed() => {}
                _ = wakeup.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn run_item(&self, worker: &str, item: WorkItem, stopped: &watch::Receiver<bool>) {
        let work: TaskWork = match serde_json::from_str(&item.payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(item = %item.id, error = %e, "audit worker: unreadable work item; dropping it");
                let _ = self.store().complete_work(&item.id, worker).await;
                return;
            }
        };
        let scope = Scope {
            account_id: work.account_id.clone(),
            region: work.region.clone(),
        };
        let outcome = if item.attempts > MAX_ATTEMPTS {
            self.give_up(&scope, &work.task_id).await
        } else {
            // Keep the lease while the task runs; renewing at a quarter of it leaves room
            // for a few slow store calls before it lapses.
            let renew_every = self.audit_settings().work_lease / 4;
            let renew = async {
                loop {
                    tokio::time::sleep(renew_every).await;
                    match self
                        .store()
                        .renew_lease(&item.id, worker, self.now_ms(), self.lease_ms())
                        .await
                    {
                        Ok(true) => {}
                        // Someone else holds it now: stop working on it.
                        Ok(false) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "audit worker: renewing a lease failed")
                        }
                    }
                }
            };
            tokio::select! {
                r = self.run_task(&scope, &work.task_id, stopped) => r,
                () = renew => Err(EngineError::Unavailable("the task's lease was lost".into())),
            }
        };
        match outcome {
            Ok(true) => {
                let _ = self.store().complete_work(&item.id, worker).await;
            }
            Ok(false) => {
                // Stopped at a safe point: hand the task to whoever runs next.
                let _ = self
                    .store()
                    .release_work(&item.id, worker, self.now_ms())
                    .await;
            }
            Err(e) => {
                tracing::warn!(task = %work.task_id, error = %e, attempt = item.attempts, "audit task interrupted; it will be retried");
                let _ = self
                    .store()
                    .release_work(&item.id, worker, self.now_ms() + RETRY_AFTER_MS)
                    .await;
            }
        }
    }

    /// Runs the task's unfinished checks. `Ok(true)` when the task is over (finished,
    /// canceled or gone), `Ok(false)` when asked to stop before.
    async fn run_task(
        &self,
        scope: &Scope,
        task_id: &str,
        stopped: &watch::Receiver<bool>,
    ) -> EngineResult<bool> {
        loop {
            let Some(mut task) = self.store().get_audit_task(scope, task_id).await? else {
                return Ok(true);
            };
            if task.status != tasks::IN_PROGRESS {
                return Ok(true);
            }
            let mut checks = decode_checks(&task)?;
            let next = checks
                .iter()
                .find(|(_, p)| !p.is_finished())
                .map(|(name, p)| (name.clone(), p.configuration.clone()));
            match next {
                Some((name, configuration)) => {
                    if *stopped.borrow() {
                        return Ok(false);
                    }
                    let now_ms = self.now_ms();
                    let began = std::time::Instant::now();
                    // The device certificate checks that judge each certificate alone run
                    // together in one pass over the fleet, and are recorded together: a
                    // crash re-runs the whole pass, whose finding ids are stable.
                    let batch: Vec<(String, &'static catalogue::Check, DeviceJudge)> =
                        match catalogue::find(&name)
                            .and_then(|c| device_judge(c, &configuration, now_ms))
                        {
                            Some(_) => checks
                                .iter()
                                .filter(|(_, p)| !p.is_finished())
                                .filter_map(|(n, p)| {
                                    let check = catalogue::find(n)?;
                                    let judge = device_judge(check, &p.configuration, now_ms)?;
                                    Some((n.clone(), check, judge))
                                })
                                .collect(),
                            None => Vec::new(),
                        };
                    let outcomes: Vec<(String, Outcome)> = if batch.len() > 1 {
                        let (names, group): (Vec<String>, Vec<_>) = batch
                            .into_iter()
                            .map(|(n, check, judge)| (n, (check, judge)))
                            .unzip();
                        let outcomes = self
                            .evaluate_device_checks(scope, task_id, task.started_at_ms, &group)
                            .await?;
                        names.into_iter().zip(outcomes).collect()
                    } else {
                        let outcome = match catalogue::find(&name) {
                            Some(check) => {
                                self.evaluate_check(
                                    scope,
                                    task_id,
                                    task.started_at_ms,
                                    check,
                                    &configuration,
                                )
                                .await?
                            }
                            None => Outcome::Failed {
                                error_code: "CHECK_NOT_SUPPORTED".into(),
                                message: format!("{name} is not a check this Palisade knows."),
                            },
                        };
                        vec![(name, outcome)]
                    };
                    tracing::debug!(
                        task = %task_id,
                        checks = ?outcomes.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                        elapsed_ms = began.elapsed().as_millis() as u64,
                        "audit checks evaluated"
                    );
                    for (name, outcome) in outcomes {
                        let progress = checks.get_mut(&name).ok_or_else(|| {
                            EngineError::Internal("a task's check vanished".into())
                        })?;
                        record_outcome(progress, outcome);
                    }
                }
                None => {
                    task.status = tasks::COMPLETED.into();
                    task.finished_at_ms = Some(self.now_ms());
                }
            }
            let done = task.status != tasks::IN_PROGRESS;
            task.checks_json = encode_checks(&checks)?;
            task.version += 1;
            // Conditional on the version read: a cancel in between wins, and the loop
            // sees it on the next read.
            if self.record_task(scope, &task).await? && done {
                return Ok(true);
            }
        }
    }

    pub(crate) fn lease_ms(&self) -> i64 {
        i64::try_from(self.audit_settings().work_lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Marks a task that failed too often FAILED, with its unfinished checks.
    async fn give_up(&self, scope: &Scope, task_id: &str) -> EngineResult<bool> {
        self.end_task(scope, task_id, tasks::FAILED, |progress| {
            progress.status = "FAILED".into();
            progress.error_code = Some("INTERNAL_FAILURE".into());
            progress.message = Some(format!(
                "The audit was interrupted {MAX_ATTEMPTS} times and was given up on."
            ));
        })
        .await?;
        // Ended now, or already over, or gone: in each case the item is done.
        Ok(true)
    }
}

/// Puts a check's outcome into its progress on the task.
fn record_outcome(progress: &mut CheckProgress, outcome: Outcome) {
    match outcome {
        Outcome::Completed {
            total,
            non_compliant,
            suppressed,
            message,
        } => {
            // Suppressed findings do not make a check non-compliant, but still count
            // among its non-compliant resources (AWS does so).
            progress.status = if non_compliant > suppressed {
                "COMPLETED_NON_COMPLIANT"
            } else {
                "COMPLETED_COMPLIANT"
            }
            .into();
            progress.total = total;
            progress.non_compliant = non_compliant;
            progress.suppressed = suppressed;
            progress.message = message;
        }
        Outcome::Failed {
            error_code,
            message,
        } => {
            progress.status = "FAILED".into();
            progress.error_code = Some(error_code);
            progress.message = Some(message);
        }
    }
}
