//! The engine-agnostic half of `apply_mitigation_stage`: what each step's outcome
//! writes (its executions and the finding's count) and the error codes and messages of
//! failed effects. The engines apply the effects and write the tally.

use std::collections::BTreeMap;

use crate::{CertificateRefusal, MitigationStage, MitigationStep, PolicyRefusal, ThingRefusal};

pub(crate) const IN_PROGRESS: &str = "IN_PROGRESS";
pub(crate) const CANCELED: &str = "CANCELED";
pub(crate) const COMPLETED: &str = "COMPLETED";
pub(crate) const FAILED: &str = "FAILED";
pub(crate) const SKIPPED: &str = "SKIPPED";

/// Why an effect failed: an AWS error code and a message naming the resource and the
/// rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EffectFailure {
    pub code: String,
    pub message: String,
}

pub(crate) type EffectOutcome = Result<(), EffectFailure>;

fn failure(code: &str, message: String) -> EffectFailure {
    EffectFailure {
        code: code.to_owned(),
        message,
    }
}

/// An execution to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecutionRow<'a> {
    pub finding_id: &'a str,
    pub action_index: i32,
    pub status: &'static str,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// What a stage adds to one check's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CheckCounts {
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl CheckCounts {
    pub(crate) fn is_zero(&self) -> bool {
        *self == CheckCounts::default()
    }
}

/// The executions and counters of one stage, gathered in memory while its effects are
/// applied, so the counters cost one write per check rather than one per step.
#[derive(Debug)]
pub(crate) struct StageTally<'a> {
    pub executions: Vec<ExecutionRow<'a>>,
    /// By check name.
    pub counts: BTreeMap<&'a str, CheckCounts>,
    now_ms: i64,
}

impl<'a> StageTally<'a> {
    /// Starts with the stage's findings that no action applies to.
    pub(crate) fn new(stage: &'a MitigationStage) -> StageTally<'a> {
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
    pub(crate) fn record(&mut self, step: &'a MitigationStep, outcome: EffectOutcome) {
        let counts = self.counts.entry(&step.check_name).or_default();
        let index = i32::try_from(step.action_index).unwrap_or(i32::MAX);
        let row = |status, error: Option<EffectFailure>, at: i32| ExecutionRow {
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
    pub(crate) fn changed_counts(&self) -> impl Iterator<Item = (&'a str, CheckCounts)> + '_ {
        self.counts
            .iter()
            .filter(|(_, c)| !c.is_zero())
            .map(|(check, c)| (*check, *c))
    }
}

/// The certificate id in a certificate ARN (`arn:...:cert/<id>`), which is how
/// mitigation effects name a principal; anything else is taken as an id already.
pub(crate) fn certificate_id_of(principal: &str) -> &str {
    principal
        .rsplit_once(":cert/")
        .map_or(principal, |(_, id)| id)
}

/// A device certificate that could not become INACTIVE.
pub(crate) fn certificate_failure(id: &str, refusal: &CertificateRefusal) -> EffectFailure {
    match refusal {
        CertificateRefusal::NotFound => failure(
            "ResourceNotFoundException",
            format!("Certificate {id} does not exist."),
        ),
        CertificateRefusal::State { status } => failure(
            "CertificateStateException",
            format!("Certificate {id} is {status}; a {status} certificate cannot become INACTIVE."),
        ),
        other => unexpected(other),
    }
}

pub(crate) fn ca_certificate_not_found(id: &str) -> EffectFailure {
    failure(
        "ResourceNotFoundException",
        format!("CA certificate {id} does not exist."),
    )
}

/// A thing that could not join `groups`.
pub(crate) fn membership_failure(
    thing: &str,
    groups: &[String],
    refusal: &ThingRefusal,
) -> EffectFailure {
    match refusal {
        ThingRefusal::GroupNotFound(group) => group_not_found(group),
        ThingRefusal::ThingNotFound(thing) => failure(
            "ResourceNotFoundException",
            format!("Thing {thing} does not exist."),
        ),
        ThingRefusal::SameHierarchy {
            member_of,
            requested,
        } => {
            // The other group is either a current membership or one asked for too.
            let relation = if groups.contains(member_of) {
                "would also be in"
            } else {
                "is already in"
            };
            failure(
                "InvalidRequestException",
                format!(
                    "Thing {thing} cannot join group {requested}: it {relation} {member_of} of \
                     the same hierarchy (a thing can be in one group per hierarchy)."
                ),
            )
        }
        ThingRefusal::TooManyGroups { limit } => failure(
            "LimitExceededException",
            format!(
                "Thing {thing} cannot join {}: it would be in more than {limit} thing groups \
                 (a thing can be in at most {limit}).",
                groups.join(", ")
            ),
        ),
        other => unexpected(other),
    }
}

/// A thing group an ADD_THINGS_TO_THING_GROUP effect names that does not exist: the
/// same failure whether a thing's membership change found it or the effect checked the
/// groups because no thing was attached.
pub(crate) fn group_not_found(group: &str) -> EffectFailure {
    failure(
        "ResourceNotFoundException",
        format!("Thing group {group} does not exist."),
    )
}

/// A policy whose default version could not be replaced.
pub(crate) fn policy_failure(name: &str, refusal: &PolicyRefusal) -> EffectFailure {
    match refusal {
        PolicyRefusal::NoSuchPolicy => failure(
            "ResourceNotFoundException",
            format!("Policy {name} does not exist."),
        ),
        PolicyRefusal::TooManyVersions { limit } => failure(
            "VersionsLimitExceededException",
            format!(
                "Policy {name} already has the maximum of {limit} versions; delete a version \
                 before replacing its default."
            ),
        ),
        other => unexpected(other),
    }
}

/// A refusal the effect's write cannot produce; reported rather than hidden.
fn unexpected(refusal: &dyn std::fmt::Debug) -> EffectFailure {
    failure(
        "InternalFailureException",
        format!("The action was refused: {refusal:?}."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MitigationEffect;

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
        let boom = EffectFailure {
            code: "X".into(),
            message: "m".into(),
        };
        tally.record(&stage.steps[2], Err(boom.clone()));
        tally.record(&stage.steps[3], Err(boom));
        let counts: Vec<_> = tally.changed_counts().collect();
        assert_eq!(
            counts,
            vec![
                (
                    "A",
                    CheckCounts {
                        succeeded: 1,
                        failed: 0,
                        skipped: 3
                    }
                ),
                (
                    "B",
                    CheckCounts {
                        succeeded: 0,
                        failed: 2,
                        skipped: 0
                    }
                ),
                (
                    "C",
                    CheckCounts {
                        succeeded: 0,
                        failed: 0,
                        skipped: 1
                    }
                ),
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

    #[test]
    fn messages_name_the_resource_and_the_rule() {
        let f = certificate_failure(
            "0f3a",
            &CertificateRefusal::State {
                status: "REVOKED".into(),
            },
        );
        assert_eq!(f.code, "CertificateStateException");
        assert_eq!(
            f.message,
            "Certificate 0f3a is REVOKED; a REVOKED certificate cannot become INACTIVE."
        );
        let f = membership_failure(
            "t1",
            &["g2".into()],
            &ThingRefusal::SameHierarchy {
                member_of: "g1".into(),
                requested: "g2".into(),
            },
        );
        assert_eq!(f.code, "InvalidRequestException");
        assert_eq!(
            f.message,
            "Thing t1 cannot join group g2: it is already in g1 of the same hierarchy \
             (a thing can be in one group per hierarchy)."
        );
        let f = policy_failure("p1", &PolicyRefusal::TooManyVersions { limit: 5 });
        assert_eq!(f.code, "VersionsLimitExceededException");
        assert_eq!(
            f.message,
            "Policy p1 already has the maximum of 5 versions; delete a version before \
             replacing its default."
        );
    }
}
