//! Audit mitigation actions tasks: StartAuditMitigationActionsTask and its siblings, and
//! the worker that applies the actions to the registry.
//!
//! A task's findings are split into chunks ([`chunk_size`]) when it starts, each a work item
//! on [`QUEUE`]. A worker claims chunks with a lease and runs each in stages, stage `k`
//! applying the `k`-th action of every finding's check; the store applies a stage's
//! effects and records its executions and statistics in one transaction
//! (`apply_mitigation_stage`), so a crash repeats or loses nothing. A device certificate
//! action on an intermediate CA finding, which acts on all of the finding's related
//! device certificates, gets a transaction of its own within its stage, still applied and
//! recorded together. Executions not run yet are not stored: the listing derives them
//! from the task.

mod allowed;
mod refusals;
mod run;
mod start;
mod view;

use std::collections::BTreeMap;

use palisade_model::{AuditMitigationActionsTaskTarget, MitigationAction};
use palisade_store::{AuditFindingKey, AuditFindingRecord, MitigationTaskRecord};
use serde::{Deserialize, Serialize};

use crate::{EngineError, EngineResult};

/// The work queue chunks run from.
pub(crate) const QUEUE: &str = "audit-mitigation";
/// Chunk boundaries are found every this many findings; a chunk is a whole number of
/// steps.
pub(crate) const CHUNK_STEP: usize = 500;
/// Findings per chunk, at least and at most: one stage of a chunk is one store
/// transaction, and big chunks spread its fixed costs (the lease and task checks, the
/// statistics row, the commit's fsync) over more executions.
const CHUNK_MIN: usize = 1_000;
const CHUNK_MAX: usize = 2_500;
/// Chunks a task is cut into at least, when its size allows: enough for the workers of
/// several nodes to share it.
const MIN_CHUNKS: usize = 16;

/// The chunk size for a target of `total` findings: a million get 2,500 a chunk, a task
/// of up to 16,000 gets chunks of 1,000.
pub(crate) fn chunk_size(total: usize) -> usize {
    total
        .div_ceil(MIN_CHUNKS)
        .div_ceil(CHUNK_STEP)
        .saturating_mul(CHUNK_STEP)
        .clamp(CHUNK_MIN, CHUNK_MAX)
}
/// Most tasks in progress per account at once (AWS's quota).
const MAX_IN_PROGRESS: usize = 10;

const IN_PROGRESS: &str = "IN_PROGRESS";
const CANCELED: &str = "CANCELED";

/// What the store keeps of a task beyond its columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskBody {
    pub target: AuditMitigationActionsTaskTarget,
    /// Check name → action names, in the order they run.
    pub mapping: BTreeMap<String, Vec<String>>,
    /// The definitions of the mapped actions when the task started, by name.
    pub actions: Vec<MitigationAction>,
}

impl TaskBody {
    pub fn decode(task: &MitigationTaskRecord) -> EngineResult<Self> {
        serde_json::from_str(&task.body_json).map_err(|e| {
            EngineError::Internal(format!(
                "stored mitigation task {} is unreadable: {e}",
                task.task_id
            ))
        })
    }

    pub fn encode(&self) -> EngineResult<String> {
        serde_json::to_string(self).map_err(|e| EngineError::Internal(e.to_string()))
    }

    pub fn action(&self, name: &str) -> Option<&MitigationAction> {
        self.actions
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    /// Why the task does not act on the finding, if it does not: its check is not
    /// mapped, the reason-code filter leaves it out, or it is suppressed.
    pub fn exclusion(&self, finding: &AuditFindingRecord, reason_code: &str) -> Option<Exclusion> {
        if !self.mapping.contains_key(&finding.check_name) {
            return Some(Exclusion::NotMapped);
        }
        if let Some(filter) = &self.target.audit_check_to_reason_code_filter {
            match filter.get(&finding.check_name) {
                Some(codes) if codes.iter().any(|c| c == reason_code) => {}
                _ => return Some(Exclusion::Filtered),
            }
        }
        if finding.is_suppressed {
            return Some(Exclusion::Suppressed);
        }
        None
    }

    /// Whether deciding [`exclusion`](Self::exclusion) needs the finding's reason code
    /// (read from its body, which the fast path does not parse).
    pub fn needs_reason_code(&self) -> bool {
        self.target.audit_check_to_reason_code_filter.is_some()
    }

    /// Whether a stage needs its findings' bodies: for the reason code, or to publish
    /// whole findings to SNS. Without, a chunk is read as finding heads.
    pub fn needs_finding_bodies(&self) -> bool {
        self.needs_reason_code()
            || self.actions.iter().any(|a| {
                a.action_params
                    .as_ref()
                    .is_some_and(|p| p.publish_finding_to_sns_params.is_some())
            })
    }
}

/// Why a finding of the target is not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exclusion {
    NotMapped,
    Filtered,
    Suppressed,
}

impl Exclusion {
    pub fn message(self) -> &'static str {
        match self {
            Exclusion::NotMapped => "The task maps no actions to this finding's check.",
            Exclusion::Filtered => {
                "The task's auditCheckToReasonCodeFilter leaves this finding out."
            }
            Exclusion::Suppressed => {
                "The finding is suppressed; suppressed findings are never mitigated."
            }
        }
    }
}

/// Which findings a chunk covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChunkFindings {
    /// Up to `limit` findings of the audit task after `after` in listing order.
    Audit {
        audit_task_id: String,
        after: Option<(i64, String)>,
        limit: usize,
    },
    /// These findings, by id.
    Ids(Vec<String>),
}

/// The payload of a chunk's work item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChunkWork {
    pub account_id: String,
    pub region: String,
    pub task_id: String,
    pub findings: ChunkFindings,
    /// The next stage to run: the index of the action it applies.
    pub stage: u32,
}

impl ChunkFindings {
    pub fn audit(audit_task_id: &str, after: Option<&AuditFindingKey>, limit: usize) -> Self {
        ChunkFindings::Audit {
            audit_task_id: audit_task_id.to_owned(),
            after: after.map(|k| (k.finding_time_ms, k.finding_id.clone())),
            limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_whole_steps_between_the_bounds() {
        for (total, chunk) in [
            (0, 1_000),
            (1, 1_000),
            (6_000, 1_000),
            (16_000, 1_000),
            (16_001, 1_500),
            (20_000, 1_500),
            (24_001, 2_000),
            (40_000, 2_500),
            (1_000_000, 2_500),
        ] {
            assert_eq!(chunk_size(total), chunk, "{total} findings");
            assert_eq!(chunk_size(total) % CHUNK_STEP, 0);
        }
    }
}
