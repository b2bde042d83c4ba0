//! The 17 Device Defender audit checks: what each examines, its severity, what it can
//! be configured with, and how Palisade evaluates it.

use super::iam_checks::IamCheck;

/// How Palisade evaluates a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evaluation {
    DeviceCertificateExpiring,
    CaCertificateExpiring,
    DeviceCertificateAge,
    DeviceCertificateKeyQuality,
    CaCertificateKeyQuality,
    PolicyOverlyPermissive,
    PolicyPotentialMisconfiguration,
    LoggingDisabled,
    /// Device certificates on their issuer's CRL (revocation.rs).
    RevokedDeviceCertificate,
    /// Registered CA certificates on their issuer's CRL.
    RevokedCaCertificate,
    /// Registered intermediate CAs on their issuer's CRL that still sign active device
    /// certificates.
    IntermediateCaRevoked,
    /// Certificates used at the same time by connections with different client ids
    /// (connections.rs).
    SharedCertificate,
    /// Client ids whose session another connection took over (connections.rs).
    ConflictingClientIds,
    /// A check that judges IAM roles (iam_checks.rs): it fails, naming what is missing,
    /// when the IAM or Cognito data it needs is not there, never a silent compliant
    /// result.
    Iam(IamCheck),
}

pub(crate) struct Check {
    pub name: &'static str,
    /// An `AuditFindingSeverity`, as on the wire.
    pub severity: &'static str,
    /// The `ResourceType` of its non-compliant resources, as on the wire.
    pub resource_type: &'static str,
    /// The configuration key the check accepts, with its default.
    pub setting: Option<(&'static str, u32)>,
    pub evaluation: Evaluation,
}

pub(crate) const CERT_EXPIRATION_THRESHOLD_IN_DAYS: &str = "CERT_EXPIRATION_THRESHOLD_IN_DAYS";
pub(crate) const CERT_AGE_THRESHOLD_IN_DAYS: &str = "CERT_AGE_THRESHOLD_IN_DAYS";

/// Whole days a threshold may be configured to.
pub(crate) const THRESHOLD_DAYS: std::ops::RangeInclusive<u32> = 30..=3652;

/// Every check, in the order DescribeAccountAuditConfiguration lists them.
pub(crate) const CHECKS: &[Check] = &[
    Check {
        name: "AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
        severity: "CRITICAL",
        resource_type: "COGNITO_IDENTITY_POOL",
        setting: None,
        evaluation: Evaluation::Iam(IamCheck::CognitoAuthenticated),
    },
    Check {
        name: "CA_CERTIFICATE_EXPIRING_CHECK",
        severity: "MEDIUM",
        resource_type: "CA_CERTIFICATE",
        setting: None,
        evaluation: Evaluation::CaCertificateExpiring,
    },
    Check {
        name: "CA_CERTIFICATE_KEY_QUALITY_CHECK",
        severity: "CRITICAL",
        resource_type: "CA_CERTIFICATE",
        setting: None,
        evaluation: Evaluation::CaCertificateKeyQuality,
    },
    Check {
        name: "CONFLICTING_CLIENT_IDS_CHECK",
        severity: "HIGH",
        resource_type: "CLIENT_ID",
        setting: None,
        evaluation: Evaluation::ConflictingClientIds,
    },
    Check {
        name: "DEVICE_CERTIFICATE_AGE_CHECK",
        severity: "LOW",
        resource_type: "DEVICE_CERTIFICATE",
        setting: Some((CERT_AGE_THRESHOLD_IN_DAYS, 365)),
        evaluation: Evaluation::DeviceCertificateAge,
    },
    Check {
        name: "DEVICE_CERTIFICATE_EXPIRING_CHECK",
        severity: "MEDIUM",
        resource_type: "DEVICE_CERTIFICATE",
        setting: Some((CERT_EXPIRATION_THRESHOLD_IN_DAYS, 30)),
        evaluation: Evaluation::DeviceCertificateExpiring,
    },
    Check {
        name: "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK",
        severity: "CRITICAL",
        resource_type: "DEVICE_CERTIFICATE",
        setting: None,
        evaluation: Evaluation::DeviceCertificateKeyQuality,
    },
    Check {
        name: "DEVICE_CERTIFICATE_SHARED_CHECK",
        severity: "CRITICAL",
        resource_type: "DEVICE_CERTIFICATE",
        setting: None,
        evaluation: Evaluation::SharedCertificate,
    },
    Check {
        name: "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK",
        severity: "CRITICAL",
        resource_type: "ISSUER_CERTIFICATE",
        setting: None,
        evaluation: Evaluation::IntermediateCaRevoked,
    },
    Check {
        name: "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
        severity: "CRITICAL",
        resource_type: "IOT_POLICY",
        setting: None,
        evaluation: Evaluation::PolicyOverlyPermissive,
    },
    Check {
        name: "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK",
        severity: "MEDIUM",
        resource_type: "IOT_POLICY",
        setting: None,
        evaluation: Evaluation::PolicyPotentialMisconfiguration,
    },
    Check {
        name: "IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK",
        severity: "MEDIUM",
        resource_type: "ROLE_ALIAS",
        setting: None,
        evaluation: Evaluation::Iam(IamCheck::RoleAliasUnusedServices),
    },
    Check {
        name: "IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK",
        severity: "CRITICAL",
        resource_type: "ROLE_ALIAS",
        setting: None,
        evaluation: Evaluation::Iam(IamCheck::RoleAliasOverlyPermissive),
    },
    Check {
        name: "LOGGING_DISABLED_CHECK",
        severity: "LOW",
        resource_type: "ACCOUNT_SETTINGS",
        setting: None,
        evaluation: Evaluation::LoggingDisabled,
    },
    Check {
        name: "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK",
        severity: "CRITICAL",
        resource_type: "CA_CERTIFICATE",
        setting: None,
        evaluation: Evaluation::RevokedCaCertificate,
    },
    Check {
        name: "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
        severity: "MEDIUM",
        resource_type: "DEVICE_CERTIFICATE",
        setting: None,
        evaluation: Evaluation::RevokedDeviceCertificate,
    },
    Check {
        name: "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
        severity: "CRITICAL",
        resource_type: "COGNITO_IDENTITY_POOL",
        setting: None,
        evaluation: Evaluation::Iam(IamCheck::CognitoUnauthenticated),
    },
];

pub(crate) fn find(name: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seventeen_checks_sorted_and_unique() {
        assert_eq!(CHECKS.len(), 17);
        assert!(CHECKS.windows(2).all(|w| w[0].name < w[1].name));
    }
}
