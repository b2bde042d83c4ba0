//! Which action types each check's findings can be mitigated with (the Device Defender
//! guide's table; PUBLISH_FINDING_TO_SNS goes with every check).

use palisade_model::MitigationActionType as T;

const DEVICE_CHECKS: &[&str] = &[
    // AWS's table leaves the age check out; its findings are device certificates like
    // the other device checks', so it takes the same actions (docs/COMPATIBILITY.md).
    "DEVICE_CERTIFICATE_AGE_CHECK",
    "DEVICE_CERTIFICATE_EXPIRING_CHECK",
    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK",
    "DEVICE_CERTIFICATE_SHARED_CHECK",
    "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK",
    "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
];
const CA_CHECKS: &[&str] = &[
    "CA_CERTIFICATE_EXPIRING_CHECK",
    "CA_CERTIFICATE_KEY_QUALITY_CHECK",
    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK",
];
const POLICY_CHECKS: &[&str] = &[
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
    "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK",
];

/// Whether findings of `check` can be mitigated with an action of type `action`.
pub(crate) fn allows(check: &str, action: &T) -> bool {
    match action {
        T::PublishFindingToSns => true,
        T::UpdateDeviceCertificate | T::AddThingsToThingGroup => DEVICE_CHECKS.contains(&check),
        T::UpdateCaCertificate => CA_CHECKS.contains(&check),
        T::ReplaceDefaultPolicyVersion => POLICY_CHECKS.contains(&check),
        T::EnableIotLogging => check == "LOGGING_DISABLED_CHECK",
        _ => false,
    }
}

/// The action types `check` allows, for error messages.
pub(crate) fn allowed_for(check: &str) -> Vec<String> {
    [
        T::UpdateDeviceCertificate,
        T::UpdateCaCertificate,
        T::AddThingsToThingGroup,
        T::ReplaceDefaultPolicyVersion,
        T::EnableIotLogging,
        T::PublishFindingToSns,
    ]
    .into_iter()
    .filter(|t| allows(check, t))
    .map(|t| t.as_str().to_owned())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audits::catalogue::CHECKS;

    #[test]
    fn every_check_allows_sns_and_device_actions_only_on_device_checks() {
        for c in CHECKS {
            assert!(allows(c.name, &T::PublishFindingToSns));
            assert_eq!(
                allows(c.name, &T::UpdateDeviceCertificate),
                c.resource_type == "DEVICE_CERTIFICATE"
                    || c.name == "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK",
                "{}",
                c.name
            );
        }
        assert!(!allows("LOGGING_DISABLED_CHECK", &T::UpdateCaCertificate));
        assert_eq!(
            allowed_for("LOGGING_DISABLED_CHECK"),
            vec!["ENABLE_IOT_LOGGING", "PUBLISH_FINDING_TO_SNS"]
        );
    }
}
