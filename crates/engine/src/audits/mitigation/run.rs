//! The mitigation worker: claims chunks, turns each stage's findings into effects, and
//! has the store apply and record them in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use palisade_model::{AuditFinding, MitigationAction};
use palisade_sns::{PublishError, Publisher};
use palisade_store::{
    AuditFindingFilter, AuditFindingKey, AuditFindingRecord, MitigationEffect, MitigationStage,
    MitigationStep, NewPolicyVersion, Scope, StageOutcome, V2LoggingOptionsRecord, WorkItem,
};
use tokio::sync::watch;

use super::refusals;
use super::view::reason_code;
use super::{ChunkFindings, ChunkWork, TaskBody, IN_PROGRESS, QUEUE};
use crate::audits::related::STORED_FOR;
use crate::certificates::certificate_arn;
use crate::policies::MAX_POLICY_VERSIONS;
use crate::{Engine, EngineError, EngineResult};

/// How often an idle worker looks for chunks enqueued by other nodes.
const POLL: Duration = Duration::from_secs(1);
/// Chunks claimed at once: one, so no claimed chunk waits (with its lease running out)
/// behind another; the node's second worker keeps the store busy meanwhile.
const CLAIM: usize = 1;
/// A chunk whose stage failed (storage unavailable) is claimable again this much later.
const RETRY_AFTER_MS: i64 = 5_000;
/// The document REPLACE_DEFAULT_POLICY_VERSION makes the default: it grants nothing.
pub(crate) const BLANK_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;
/// The most thing groups a thing can be in.
const MAX_GROUPS_PER_THING: usize = 10;
/// PUBLISH_FINDING_TO_SNS publishes of one stage in flight at once.
const PUBLISH_CONCURRENCY: usize = 16;
/// The most related device certificates one UPDATE_DEVICE_CERTIFICATE execution on a
/// finding of [`STORED_FOR`] acts on; a finding with more fails the execution
/// (LimitExceededException). Their ids are held in memory, and all of them change in
/// one transaction, which must end well within the store's operation deadline (15 s by
/// default on PostgreSQL): 10,000 take under a second on either engine.
const MAX_RELATED_TO_DEACTIVATE: usize = 10_000;
/// The same for ADD_THINGS_TO_THING_GROUP, lower because every attached thing's
/// membership change costs several statements: 1,000 certificates with a thing each
/// take about 2 s on PostgreSQL.
const MAX_RELATED_TO_GROUP: usize = 1_000;

/// What became of a stage.
enum Next {
    /// The chunk has more stages; run the next.
    Stage,
    /// The chunk is done with (finished, its task gone or canceled, or its lease lost).
    Done,
}

/// The task a worker last ran a chunk of: chunks of one task come in a row.
struct Cached {
    scope: Scope,
    task_id: String,
    body: Arc<TaskBody>,
}

impl Engine {
    /// One mitigation worker; `start_background_work` runs two per node, so one reads
    /// and prepares a chunk while the other's stage is being written.
    pub(crate) async fn mitigation_loop(
        self,
        worker: String,
        publisher: Publisher,
        mut stopped: watch::Receiver<bool>,
    ) {
        let wakeup = Arc::clone(&self.inner.mitigation_wakeup);
        let mut cached: Option<Cached> = None;
        loop {
            if *stopped.borrow() {
                return;
            }
            let claimed = self
                .store()
                .claim_work(QUEUE, &worker, CLAIM, self.now_ms(), self.lease_ms())
                .await;
            match claimed {
                Ok(items) if !items.is_empty() => {
                    for item in items {
                        if *stopped.borrow() {
                            // Claimed but not started: the lease runs out and the chunk is
                            // claimed again.
                            break;
                        }
                        self.run_chunk(&worker, &publisher, &mut cached, item).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "mitigation worker: claiming work failed"),
            }
            tokio::select! {
                _ = stopped.changed() => {}
                _ = wakeup.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn run_chunk(
        &self,
        worker: &str,
        publisher: &Publisher,
        cached: &mut Option<Cached>,
        item: WorkItem,
    ) {
        let mut work: ChunkWork = match serde_json::from_str(&item.payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(item = %item.id, error = %e, "mitigation worker: unreadable work item; dropping it");
                let _ = self.store().complete_work(&item.id, worker).await;
                return;
            }
        };
        // Keep the lease while the chunk runs (a stage publishing to a slow SNS endpoint
        // can take a while); renewing at a quarter of it leaves room for slow store calls.
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
                        tracing::warn!(error = %e, "mitigation worker: renewing a lease failed")
                    }
                }
            }
        };
        let stages = async {
            loop {
                match self
                    .run_stage(worker, publisher, cached, &item.id, &mut work)
                    .await
                {
                    Ok(Next::Stage) => {}
                    Ok(Next::Done) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        };
        let outcome = tokio::select! {
            r = stages => r,
            () = renew => Err(EngineError::Unavailable("the chunk's lease was lost".into())),
        };
        match outcome {
            Ok(()) => tracing::debug!(%worker, item = %item.id, "mitigation chunk done"),
            Err(e) => {
                tracing::warn!(item = %item.id, attempts = item.attempts, error = %e, "mitigation worker: chunk interrupted; retrying later");
                let _ = self
                    .store()
                    .release_work(&item.id, worker, self.now_ms() + RETRY_AFTER_MS)
                    .await;
            }
        }
    }

    /// The task's body if the task is still in progress. Its status is read for every
    /// stage: a canceled task's chunks must not publish to SNS, which happens before the
    /// store's own check; the body, which never changes, is decoded once per task.
    async fn task_body(
        &self,
        scope: &Scope,
        task_id: &str,
        cached: &mut Option<Cached>,
    ) -> EngineResult<Option<Arc<TaskBody>>> {
        let Some((task, _)) = self.store().get_mitigation_task(scope, task_id).await? else {
            return Ok(None);
        };
        if task.status != IN_PROGRESS {
            return Ok(None);
        }
        if let Some(c) = cached {
            if &c.scope == scope && c.task_id == task_id {
                return Ok(Some(Arc::clone(&c.body)));
            }
        }
        let body = Arc::new(TaskBody::decode(&task)?);
        *cached = Some(Cached {
            scope: scope.clone(),
            task_id: task_id.to_owned(),
            body: Arc::clone(&body),
        });
        Ok(Some(body))
    }

    async fn chunk_findings(
        &self,
        scope: &Scope,
        findings: &ChunkFindings,
        needs_bodies: bool,
    ) -> EngineResult<Vec<AuditFindingRecord>> {
        match findings {
            ChunkFindings::Audit {
                audit_task_id,
                after,
                limit,
            } if !needs_bodies => {
                let after = after.as_ref().map(|(ms, id)| AuditFindingKey {
                    finding_time_ms: *ms,
                    finding_id: id.clone(),
                });
                let heads = self
                    .store()
                    .list_audit_finding_heads(scope, audit_task_id, after.as_ref(), *limit)
                    .await?;
                // No body: nothing of this stage reads one (`needs_finding_bodies`), and
                // a read by mistake fails loudly as an unreadable finding.
                Ok(heads
                    .into_iter()
                    .map(|h| AuditFindingRecord {
                        finding_id: h.finding_id,
                        task_id: audit_task_id.clone(),
                        check_name: h.check_name,
                        task_start_ms: 0,
                        finding_time_ms: h.finding_time_ms,
                        resource_key: h.resource_key,
                        is_suppressed: h.is_suppressed,
                        body_json: String::new(),
                    })
                    .collect())
            }
            ChunkFindings::Audit {
                audit_task_id,
                after,
                limit,
            } => {
                let filter = AuditFindingFilter {
                    task_id: Some(audit_task_id.clone()),
                    ..AuditFindingFilter::default()
                };
                let after = after.as_ref().map(|(ms, id)| AuditFindingKey {
                    finding_time_ms: *ms,
                    finding_id: id.clone(),
                });
                Ok(self
                    .store()
                    .list_audit_findings(scope, &filter, after.as_ref(), *limit)
                    .await?)
            }
            ChunkFindings::Ids(ids) => {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    // A finding purged since the start is simply not acted on.
                    if let Some(f) = self.store().get_audit_finding(scope, id).await? {
                        out.push(f);
                    }
                }
                Ok(out)
            }
        }
    }

    async fn run_stage(
        &self,
        worker: &str,
        publisher: &Publisher,
        cached: &mut Option<Cached>,
        work_id: &str,
        work: &mut ChunkWork,
    ) -> EngineResult<Next> {
        let scope = Scope {
            account_id: work.account_id.clone(),
            region: work.region.clone(),
        };
        let stage_index = work.stage;
        let body = match self.task_body(&scope, &work.task_id, cached).await? {
            Some(b) => b,
            None => {
                // The task ended (canceled) or is gone: its chunk has nothing left to do.
                let _ = self.store().complete_work(work_id, worker).await;
                return Ok(Next::Done);
            }
        };
        let findings = self
            .chunk_findings(&scope, &work.findings, body.needs_finding_bodies())
            .await?;
        let stages = body.mapping.values().map(Vec::len).max().unwrap_or(0) as u32;

        let mut skipped: BTreeMap<String, i64> = BTreeMap::new();
        let mut acting: Vec<(&AuditFindingRecord, &str, u32)> = Vec::new();
        for f in &findings {
            let code = if body.needs_reason_code() {
                reason_code(f)?
            } else {
                String::new()
            };
            if body.exclusion(f, &code).is_some() {
                if stage_index == 0 {
                    *skipped.entry(f.check_name.clone()).or_insert(0) += 1;
                }
                continue;
            }
            let names = &body.mapping[&f.check_name];
            if let Some(name) = names.get(stage_index as usize) {
                let after = (names.len() - 1 - stage_index as usize) as u32;
                acting.push((f, name.as_str(), after));
            }
        }
        let has_related = acting
            .iter()
            .any(|(f, name, _)| acts_on_related(f, body.action(name)));
        // Findings whose earlier action failed have this one recorded SKIPPED; and a
        // stage with related-certificate actions records those before the rest (below),
        // so a retried stage 0 may find some recorded too.
        if (stage_index > 0 || has_related) && !acting.is_empty() {
            let ids: Vec<String> = acting
                .iter()
                .map(|(f, _, _)| f.finding_id.clone())
                .collect();
            let done = self
                .store()
                .findings_with_execution(&scope, &work.task_id, &ids, stage_index)
                .await?;
            if !done.is_empty() {
                acting.retain(|(f, _, _)| !done.contains(&f.finding_id));
            }
        }
        let (related, acting): (Vec<_>, Vec<_>) = acting
            .into_iter()
            .partition(|(f, name, _)| acts_on_related(f, body.action(name)));

        // An action on a finding's related device certificates (up to
        // MAX_RELATED_TO_DEACTIVATE or MAX_RELATED_TO_GROUP of them) is applied and
        // recorded in a transaction of its own, leaving the chunk at this stage: the
        // stage's memory and the length of each transaction stay bounded however many
        // such findings the chunk holds.
        if !related.is_empty() {
            let same_stage =
                serde_json::to_string(&*work).map_err(|e| EngineError::Internal(e.to_string()))?;
            for (finding, name, actions_after) in related {
                let started_at_ms = self.now_ms();
                let effect = self
                    .related_effect(&scope, body.action(name), finding)
                    .await?;
                let one = MitigationStage {
                    task_id: work.task_id.clone(),
                    work_id: work_id.to_owned(),
                    worker: worker.to_owned(),
                    next_payload: Some(same_stage.clone()),
                    steps: vec![MitigationStep {
                        finding_id: finding.finding_id.clone(),
                        check_name: finding.check_name.clone(),
                        action_index: stage_index,
                        actions_after,
                        started_at_ms,
                        effect,
                    }],
                    skipped: Vec::new(),
                    now_ms: self.now_ms(),
                };
                match self
                    .store()
                    .apply_mitigation_stage(&scope, &one, refusals::explain)
                    .await?
                {
                    // Deactivated certificates, replaced policies and quarantine groups
                    // reach the devices connected through the gateway.
                    StageOutcome::Applied { .. } => self.registry_changed(),
                    StageOutcome::LeaseLost => {
                        tracing::warn!(item = %work_id, "mitigation worker: lost the chunk's lease; another worker has it");
                        return Ok(Next::Done);
                    }
                    StageOutcome::TaskNotInProgress => return Ok(Next::Done),
                }
            }
            // Those transactions took a while: a task canceled meanwhile must not
            // publish what follows.
            if self
                .task_body(&scope, &work.task_id, cached)
                .await?
                .is_none()
            {
                let _ = self.store().complete_work(work_id, worker).await;
                return Ok(Next::Done);
            }
        }

        let mut steps = Vec::with_capacity(acting.len());
        let mut publishes = Vec::new();
        let mut logging: Option<Option<V2LoggingOptionsRecord>> = None;
        for (finding, name, actions_after) in acting {
            let started_at_ms = self.now_ms();
            let plan = match body.action(name) {
                Some(action) => self.plan(&scope, action, finding, &mut logging).await?,
                None => Plan::Effect(failed(
                    "InternalFailureException",
                    format!("The task holds no definition of the action {name}."),
                )),
            };
            let effect = match plan {
                Plan::Effect(effect) => effect,
                Plan::Publish { topic, message } => {
                    publishes.push((steps.len(), topic, message));
                    // Replaced by the publish's outcome below.
                    MitigationEffect::Applied
                }
            };
            steps.push(MitigationStep {
                finding_id: finding.finding_id.clone(),
                check_name: finding.check_name.clone(),
                action_index: stage_index,
                actions_after,
                started_at_ms,
                effect,
            });
        }
        // A stage holds at most one action per finding (its k-th), so publishing the
        // stage's findings at once keeps each finding's actions in order; a slow SNS
        // endpoint then costs a stage its slowest few publishes, not the sum of all.
        let published: Vec<(usize, i64, MitigationEffect)> = stream::iter(publishes)
            .map(|(i, topic, message)| async move {
                let started_at_ms = self.now_ms();
                (i, started_at_ms, publish(publisher, &topic, &message).await)
            })
            .buffer_unordered(PUBLISH_CONCURRENCY)
            .collect()
            .await;
        for (i, started_at_ms, effect) in published {
            steps[i].started_at_ms = started_at_ms;
            steps[i].effect = effect;
        }
        let last = stage_index + 1 >= stages;
        let next_payload = if last {
            None
        } else {
            let mut next = work.clone();
            next.stage += 1;
            Some(serde_json::to_string(&next).map_err(|e| EngineError::Internal(e.to_string()))?)
        };
        let stage = MitigationStage {
            task_id: work.task_id.clone(),
            work_id: work_id.to_owned(),
            worker: worker.to_owned(),
            next_payload,
            steps,
            skipped: skipped.into_iter().collect(),
            now_ms: self.now_ms(),
        };
        match self
            .store()
            .apply_mitigation_stage(&scope, &stage, refusals::explain)
            .await?
        {
            StageOutcome::Applied { task_finished } => {
                self.registry_changed();
                if task_finished {
                    tracing::info!(task = %work.task_id, "audit mitigation actions task finished");
                }
                if last {
                    Ok(Next::Done)
                } else {
                    work.stage += 1;
                    Ok(Next::Stage)
                }
            }
            StageOutcome::LeaseLost => {
                tracing::warn!(item = %work_id, "mitigation worker: lost the chunk's lease; another worker has it");
                Ok(Next::Done)
            }
            StageOutcome::TaskNotInProgress => Ok(Next::Done),
        }
    }

    /// What a device certificate action does for a finding of [`STORED_FOR`]: act on
    /// the finding's related device certificates, the ones
    /// ListRelatedResourcesForAuditFinding lists, up to [`MAX_RELATED_TO_DEACTIVATE`] or
    /// [`MAX_RELATED_TO_GROUP`].
    async fn related_effect(
        &self,
        scope: &Scope,
        action: Option<&MitigationAction>,
        finding: &AuditFindingRecord,
    ) -> EngineResult<MitigationEffect> {
        let Some(params) = action.and_then(|a| a.action_params.as_ref()) else {
            return Ok(failed(
                "InternalFailureException",
                "The action's definition has no parameters.".into(),
            ));
        };
        let (kind, groups, limit) = match &params.add_things_to_thing_group_params {
            Some(p) => (
                "ADD_THINGS_TO_THING_GROUP",
                Some(p.thing_group_names.clone().unwrap_or_default()),
                MAX_RELATED_TO_GROUP,
            ),
            None => ("UPDATE_DEVICE_CERTIFICATE", None, MAX_RELATED_TO_DEACTIVATE),
        };
        let Some(certificate_ids) = self
            .related_device_certificates(scope, &finding.finding_id, limit)
            .await?
        else {
            return Ok(failed(
                "LimitExceededException",
                format!(
                    "The finding {} has more than {limit} related device certificates; \
                     {kind} acts on at most {limit} of them in one execution.",
                    finding.finding_id
                ),
            ));
        };
        Ok(match groups {
            Some(groups) => MitigationEffect::AddThingsOfCertificatesToGroups {
                certificate_ids,
                groups,
                max_groups: MAX_GROUPS_PER_THING,
            },
            None => MitigationEffect::DeactivateCertificates { certificate_ids },
        })
    }

    /// What `action` does for `finding`: an effect the store applies in the stage's
    /// transaction, or a publish to SNS, which the stage makes before it is recorded.
    async fn plan(
        &self,
        scope: &Scope,
        action: &MitigationAction,
        finding: &AuditFindingRecord,
        logging: &mut Option<Option<V2LoggingOptionsRecord>>,
    ) -> EngineResult<Plan> {
        let Some(params) = &action.action_params else {
            return Ok(Plan::Effect(failed(
                "InternalFailureException",
                "The action's definition has no parameters.".into(),
            )));
        };
        let device_certificate = || resource_part(&finding.resource_key, "deviceCertificateId");
        let effect = if params.update_device_certificate_params.is_some() {
            match device_certificate() {
                Some(id) => MitigationEffect::DeactivateCertificate {
                    certificate_id: id.to_owned(),
                },
                None => no_resource(finding, "device certificate", "UPDATE_DEVICE_CERTIFICATE"),
            }
        } else if params.update_ca_certificate_params.is_some() {
            match resource_part(&finding.resource_key, "caCertificateId") {
                Some(id) => MitigationEffect::DeactivateCaCertificate {
                    certificate_id: id.to_owned(),
                },
                None => no_resource(finding, "CA certificate", "UPDATE_CA_CERTIFICATE"),
            }
        } else if let Some(p) = &params.add_things_to_thing_group_params {
            match device_certificate() {
                Some(id) => MitigationEffect::AddThingsToGroups {
                    principal: certificate_arn(scope, id),
                    groups: p.thing_group_names.clone().unwrap_or_default(),
                    max_groups: MAX_GROUPS_PER_THING,
                },
                None => no_resource(finding, "device certificate", "ADD_THINGS_TO_THING_GROUP"),
            }
        } else if params.replace_default_policy_version_params.is_some() {
            match resource_part(&finding.resource_key, "policyName") {
                Some(name) => MitigationEffect::ReplaceDefaultPolicyVersion {
                    policy_name: name.to_owned(),
                    version: NewPolicyVersion {
                        document: BLANK_POLICY.into(),
                        set_as_default: true,
                        generation_id: self.generation_id(),
                        created_at_ms: self.now_ms(),
                    },
                    max_versions: MAX_POLICY_VERSIONS,
                },
                None => no_resource(finding, "policy", "REPLACE_DEFAULT_POLICY_VERSION"),
            }
        } else if let Some(p) = &params.enable_iot_logging_params {
            let current = match logging {
                Some(current) => current.clone(),
                None => {
                    let current = self.store().get_v2_logging_options(scope).await?;
                    *logging = Some(current.clone());
                    current
                }
            };
            MitigationEffect::SetV2LoggingOptions {
                options: V2LoggingOptionsRecord {
                    role_arn: p.role_arn_for_logging.clone(),
                    default_log_level: p.log_level.as_ref().map(|l| l.as_str().to_owned()),
                    disable_all_logs: false,
                    // Per-event settings someone made stay as they are.
                    event_configurations_json: current.and_then(|c| c.event_configurations_json),
                    updated_at_ms: self.now_ms(),
                },
            }
        } else if let Some(p) = &params.publish_finding_to_sns_params {
            return Ok(Plan::Publish {
                topic: p.topic_arn.clone().unwrap_or_default(),
                message: sns_message(finding)?,
            });
        } else {
            failed(
                "InternalFailureException",
                "The action's definition sets no known parameters.".into(),
            )
        };
        Ok(Plan::Effect(effect))
    }
}

/// What an action will do for a finding, worked out before anything is sent.
enum Plan {
    /// Applied by the store in the stage's transaction.
    Effect(MitigationEffect),
    /// Published to SNS before the stage is recorded, concurrently with the stage's
    /// other publishes.
    Publish { topic: String, message: String },
}

/// The outcome of one PUBLISH_FINDING_TO_SNS execution, as the stage records it.
async fn publish(publisher: &Publisher, topic: &str, message: &str) -> MitigationEffect {
    match publisher.publish(topic, message, None).await {
        Ok(_) => MitigationEffect::Applied,
        Err(e) => failed(
            sns_error_code(&e),
            format!("Publishing to {topic} failed: {e}"),
        ),
    }
}

/// Whether `action` acts on the finding's related device certificates: a device
/// certificate action on a finding of [`STORED_FOR`], which names the revoked
/// intermediate CA rather than a device certificate.
fn acts_on_related(finding: &AuditFindingRecord, action: Option<&MitigationAction>) -> bool {
    finding.check_name == STORED_FOR
        && action
            .and_then(|a| a.action_params.as_ref())
            .is_some_and(|p| {
                p.update_device_certificate_params.is_some()
                    || p.add_things_to_thing_group_params.is_some()
            })
}

fn failed(code: &str, message: String) -> MitigationEffect {
    MitigationEffect::Failed {
        error_code: code.to_owned(),
        message,
    }
}

fn no_resource(finding: &AuditFindingRecord, what: &str, action: &str) -> MitigationEffect {
    failed(
        "InvalidRequestException",
        format!(
            "The finding {} ({}) names no {what}, so {action} has nothing to act on.",
            finding.finding_id, finding.check_name
        ),
    )
}

/// A member of a finding's canonical resource key (`name=value` lines).
fn resource_part<'a>(key: &'a str, name: &str) -> Option<&'a str> {
    key.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

fn sns_error_code(e: &PublishError) -> &str {
    match e {
        PublishError::Rejected { code, .. } => code,
        PublishError::NoCredentials => "SnsNotConfigured",
        PublishError::InvalidTopicArn(_) => "InvalidParameter",
        PublishError::Unreachable { .. } => "ServiceUnavailable",
        PublishError::Invalid(_) => "InternalFailureException",
    }
}

/// The finding as PUBLISH_FINDING_TO_SNS publishes it: AWS's finding JSON with times as
/// epoch milliseconds.
fn sns_message(finding: &AuditFindingRecord) -> EngineResult<String> {
    let body: AuditFinding = serde_json::from_str(&finding.body_json).map_err(|e| {
        EngineError::Internal(format!(
            "stored finding {} is unreadable: {e}",
            finding.finding_id
        ))
    })?;
    let message = serde_json::json!({
        "findingId": finding.finding_id,
        "taskId": finding.task_id,
        "checkName": finding.check_name,
        "taskStartTime": finding.task_start_ms,
        "findingTime": finding.finding_time_ms,
        "severity": body.severity.as_ref().map(|s| s.as_str().to_owned()),
        "nonCompliantResource": body.non_compliant_resource,
        "reasonForNonCompliance": body.reason_for_non_compliance,
        "reasonForNonComplianceCode": body.reason_for_non_compliance_code,
        "isSuppressed": finding.is_suppressed,
    });
    Ok(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_parts_are_read_from_the_canonical_key() {
        let key = "deviceCertificateArn=arn:aws:iot:r:1:cert/ab\ndeviceCertificateId=ab";
        assert_eq!(resource_part(key, "deviceCertificateId"), Some("ab"));
        assert_eq!(
            resource_part(key, "deviceCertificateArn"),
            Some("arn:aws:iot:r:1:cert/ab")
        );
        assert_eq!(resource_part(key, "device"), None);
        assert_eq!(
            resource_part("policyName=p\npolicyVersionId=1", "policyName"),
            Some("p")
        );
    }
}
