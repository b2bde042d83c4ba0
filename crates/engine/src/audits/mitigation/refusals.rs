//! How a refused mitigation effect reads in its execution: the AWS error code and a
//! message naming the resource and the rule. The store applies the effects and reports
//! typed refusals; the wording is the engine's.

use palisade_store::{
    CertificateRefusal, EffectRefusal, ExecutionError, PolicyRefusal, ThingRefusal,
};

fn failure(code: &str, message: String) -> ExecutionError {
    ExecutionError {
        code: code.to_owned(),
        message,
    }
}

/// The `ExplainRefusal` the engine gives `apply_mitigation_stage`.
pub(super) fn explain(refusal: &EffectRefusal) -> ExecutionError {
    match refusal {
        EffectRefusal::Certificate { id, refusal } => certificate(id, refusal),
        EffectRefusal::CaCertificateNotFound { id } => failure(
            "ResourceNotFoundException",
            format!("CA certificate {id} does not exist."),
        ),
        EffectRefusal::Membership {
            thing,
            groups,
            refusal,
        } => membership(thing, groups, refusal),
        EffectRefusal::GroupNotFound { group } => group_not_found(group),
        EffectRefusal::Policy { name, refusal } => policy(name, refusal),
    }
}

/// A device certificate that could not become INACTIVE.
fn certificate(id: &str, refusal: &CertificateRefusal) -> ExecutionError {
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

/// A thing that could not join `groups`.
fn membership(thing: &str, groups: &[String], refusal: &ThingRefusal) -> ExecutionError {
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
/// same failure whether a thing's membership change found it or the store checked the
/// groups because no thing was attached.
fn group_not_found(group: &str) -> ExecutionError {
    failure(
        "ResourceNotFoundException",
        format!("Thing group {group} does not exist."),
    )
}

/// A policy whose default version could not be replaced.
fn policy(name: &str, refusal: &PolicyRefusal) -> ExecutionError {
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
fn unexpected(refusal: &dyn std::fmt::Debug) -> ExecutionError {
    failure(
        "InternalFailureException",
        format!("The action was refused: {refusal:?}."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_resource_and_the_rule() {
        let f = explain(&EffectRefusal::Certificate {
            id: "0f3a".into(),
            refusal: CertificateRefusal::State {
                status: "REVOKED".into(),
            },
        });
        assert_eq!(f.code, "CertificateStateException");
        assert_eq!(
            f.message,
            "Certificate 0f3a is REVOKED; a REVOKED certificate cannot become INACTIVE."
        );
        let f = explain(&EffectRefusal::Membership {
            thing: "t1".into(),
            groups: vec!["g2".into()],
            refusal: ThingRefusal::SameHierarchy {
                member_of: "g1".into(),
                requested: "g2".into(),
            },
        });
        assert_eq!(f.code, "InvalidRequestException");
        assert_eq!(
            f.message,
            "Thing t1 cannot join group g2: it is already in g1 of the same hierarchy \
             (a thing can be in one group per hierarchy)."
        );
        let f = explain(&EffectRefusal::Membership {
            thing: "t5".into(),
            groups: vec!["e".into()],
            refusal: ThingRefusal::TooManyGroups { limit: 2 },
        });
        assert_eq!(f.code, "LimitExceededException");
        assert_eq!(
            f.message,
            "Thing t5 cannot join e: it would be in more than 2 thing groups \
             (a thing can be in at most 2)."
        );
        let f = explain(&EffectRefusal::Policy {
            name: "p1".into(),
            refusal: PolicyRefusal::TooManyVersions { limit: 5 },
        });
        assert_eq!(f.code, "VersionsLimitExceededException");
        assert_eq!(
            f.message,
            "Policy p1 already has the maximum of 5 versions; delete a version before \
             replacing its default."
        );
        for (refusal, message) in [
            (
                EffectRefusal::GroupNotFound {
                    group: "missing".into(),
                },
                "Thing group missing does not exist.",
            ),
            (
                EffectRefusal::CaCertificateNotFound { id: "ca1".into() },
                "CA certificate ca1 does not exist.",
            ),
            (
                EffectRefusal::Certificate {
                    id: "c1".into(),
                    refusal: CertificateRefusal::NotFound,
                },
                "Certificate c1 does not exist.",
            ),
        ] {
            let f = explain(&refusal);
            assert_eq!(f.code, "ResourceNotFoundException");
            assert_eq!(f.message, message);
        }
    }
}
