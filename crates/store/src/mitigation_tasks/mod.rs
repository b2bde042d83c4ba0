//! Audit mitigation actions tasks: the task records, their per-check statistics, the
//! executions they ran, and the one transaction that applies a stage of a chunk of
//! findings to the registry and records its outcome.
//!
//! A task's findings are split into chunks when it starts; each chunk is a work item on
//! the durable queue (payload owned by the engine). A chunk runs in stages: stage `k`
//! applies the `k`-th action of every finding in it. Each stage is one transaction that
//! checks the worker still holds the chunk's lease and the task is still in progress,
//! applies the effects, writes one execution per (finding, action), adds to the
//! statistics and either stores the chunk's next payload or deletes the chunk (ending
//! the task with the last one). A crash anywhere rolls the whole stage back, so no
//! execution is lost or repeated.

use crate::{
    CertificateRefusal, NewPolicyVersion, PolicyRefusal, ThingRefusal, V2LoggingOptionsRecord,
};

mod stage;
mod store;

pub use store::MitigationTaskStore;

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationTaskRecord {
    pub task_id: String,
    pub client_request_token: String,
    /// `IN_PROGRESS`, `COMPLETED`, `FAILED` or `CANCELED`.
    pub status: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// `target.auditTaskId`, for the auditTaskId and findingId filters of the listing.
    pub audit_task_id: Option<String>,
    /// `target.findingIds` (empty for an audit task target), for the findingId filter.
    pub finding_ids: Vec<String>,
    /// Target, check-to-actions mapping and the snapshot of the action definitions,
    /// JSON owned by the engine.
    pub body_json: String,
}

/// One check's statistics in a task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MitigationCheckStats {
    pub check_name: String,
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub canceled: i64,
}

/// What `create_mitigation_task` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MitigationTaskCreated {
    Created,
    /// A task with this id exists (whatever its token); nothing was written.
    Exists(MitigationTaskRecord),
    /// `max_in_progress` tasks are already in progress in the scope; nothing was written.
    TooManyInProgress,
}

/// Why the registry refused an effect (nothing it did stays): typed, so that the engine
/// words the execution's error ([`ExplainRefusal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectRefusal {
    /// A device certificate could not become INACTIVE.
    Certificate {
        id: String,
        refusal: CertificateRefusal,
    },
    CaCertificateNotFound {
        id: String,
    },
    /// A thing attached to the principal could not join the effect's `groups`.
    Membership {
        thing: String,
        groups: Vec<String>,
        refusal: ThingRefusal,
    },
    /// A group the effect names does not exist (checked when no thing is attached).
    GroupNotFound {
        group: String,
    },
    /// The policy's default version could not be replaced.
    Policy {
        name: String,
        refusal: PolicyRefusal,
    },
}

/// The error a FAILED execution records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionError {
    pub code: String,
    pub message: String,
}

/// How the engine words a refusal as an execution's error.
pub type ExplainRefusal = fn(&EffectRefusal) -> ExecutionError;

/// Why a cancel did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MitigationCancelRefusal {
    NotFound,
    /// The task is not `IN_PROGRESS`; its status.
    NotInProgress(String),
}

/// Which tasks ListAuditMitigationActionsTasks wants. All given conditions hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MitigationTaskFilter {
    /// Tasks started at or after this.
    pub started_from_ms: i64,
    /// Tasks started at or before this.
    pub started_to_ms: i64,
    pub audit_task_id: Option<String>,
    /// Tasks whose target names this finding: its id is in `target.findingIds`, or
    /// `target.auditTaskId` is the finding's audit task.
    pub finding: Option<FindingRef>,
    pub status: Option<String>,
}

/// A finding and the audit task it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRef {
    pub finding_id: String,
    pub audit_task_id: String,
}

/// One execution (one action applied to one finding) as stored. Executions not yet
/// run are not stored: the engine derives them from the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationExecutionRecord {
    pub finding_id: String,
    /// Position of the action in the finding's check's action list.
    pub action_index: u32,
    /// `COMPLETED`, `FAILED` or `SKIPPED`.
    pub status: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// What an action does to the registry, applied by the store inside the stage's
/// transaction, or the outcome of an action applied outside the database.
///
/// An effect the registry refuses changes nothing (a savepoint per step of several
/// statements) and its execution is FAILED with the error the engine words for the
/// [`EffectRefusal`]: a missing certificate, CA, thing group or policy; a device
/// certificate whose status may not become INACTIVE (`status_change_allowed`); a thing
/// that would be in two groups of one hierarchy, or in more than `max_groups` groups; a
/// policy at `max_versions`. A certificate already INACTIVE and a thing already in the
/// group are successes that change nothing; so is a principal with no things attached,
/// once every group is found to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MitigationEffect {
    /// The device certificate becomes INACTIVE (if `status_change_allowed`).
    DeactivateCertificate { certificate_id: String },
    /// Every one of the device certificates becomes INACTIVE, all or nothing: the first
    /// that cannot (missing, or `status_change_allowed` refuses) fails the effect, which
    /// then changes none of them. The related device certificates of an
    /// INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK finding; the engine
    /// bounds how many one effect names.
    DeactivateCertificates { certificate_ids: Vec<String> },
    /// The CA certificate becomes INACTIVE.
    DeactivateCaCertificate { certificate_id: String },
    /// Every thing attached to `principal` (a certificate ARN) is added to each group,
    /// by the registry's rules (`plan_membership_change` with `max_groups`).
    AddThingsToGroups {
        principal: String,
        groups: Vec<String>,
        max_groups: usize,
    },
    /// [`AddThingsToGroups`](Self::AddThingsToGroups) for the things attached to any of
    /// the device certificates (by id), all or nothing across all of them.
    AddThingsOfCertificatesToGroups {
        certificate_ids: Vec<String>,
        groups: Vec<String>,
        max_groups: usize,
    },
    /// A new version with `document` becomes the policy's default, unless the policy
    /// already has `max_versions` versions.
    ReplaceDefaultPolicyVersion {
        policy_name: String,
        version: NewPolicyVersion,
        max_versions: usize,
    },
    /// The scope's v2 logging options are replaced.
    SetV2LoggingOptions { options: V2LoggingOptionsRecord },
    /// Applied outside the database (a publish to SNS) and succeeded.
    Applied,
    /// Failed before reaching the store (applied outside and failed, or the finding
    /// lacks the resource the action needs).
    Failed { error_code: String, message: String },
}

/// One execution to run in a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationStep {
    pub finding_id: String,
    pub check_name: String,
    pub action_index: u32,
    /// How many actions the finding's check has after this one: on failure each gets a
    /// SKIPPED execution; on success with none left the finding counts as succeeded.
    pub actions_after: u32,
    pub started_at_ms: i64,
    pub effect: MitigationEffect,
}

/// A stage of one chunk of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MitigationStage {
    pub task_id: String,
    /// The chunk's work item and the worker that must still hold its lease.
    pub work_id: String,
    pub worker: String,
    /// The chunk's payload for its next stage; `None`: this is its last stage, and the
    /// item is deleted (the task ends when its last chunk does).
    pub next_payload: Option<String>,
    pub steps: Vec<MitigationStep>,
    /// Findings of the chunk that no action applies to (check not mapped, left out by
    /// the reason-code filter, suppressed), per check: counted as skipped.
    pub skipped: Vec<(String, i64)>,
    /// End time of the executions, and of the task if it ends.
    pub now_ms: i64,
}

/// What `apply_mitigation_stage` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageOutcome {
    /// Applied and recorded; whether the task ended with it.
    Applied { task_finished: bool },
    /// The worker no longer holds the chunk's lease: nothing written.
    LeaseLost,
    /// The task is no longer in progress (canceled, or gone): nothing applied; the
    /// chunk's work item was deleted.
    TaskNotInProgress,
}
