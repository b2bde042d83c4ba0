//! Server settings the audit machinery runs by (as opposed to AWS quotas, in [`Limits`]).
//!
//! [`Limits`]: crate::Limits

use std::time::Duration;

/// How audits reach outside the registry, and when scheduled audits run.
#[derive(Debug, Clone, Default)]
pub struct AuditSettings {
    /// The time of day, in seconds after midnight UTC, at which scheduled audits are due.
    /// AWS chooses the time itself; Palisade lets the operator choose.
    pub scheduled_audit_time_s: u32,
    /// Where SNS messages (audit notifications, PUBLISH_FINDING_TO_SNS) are sent.
    pub sns: SnsSettings,
    /// How revocation checks obtain CRLs.
    pub crl: CrlSettings,
}

/// The SNS API endpoint and the credentials Palisade signs its requests with.
#[derive(Debug, Clone, Default)]
pub struct SnsSettings {
    /// `None`: the AWS endpoint of the topic's region.
    pub endpoint_url: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// CRL retrieval for the revocation checks.
#[derive(Debug, Clone)]
pub struct CrlSettings {
    /// Fetch CRLs over HTTP from the certificates' CRL distribution points. Off for
    /// fleets without network reach, which import CRLs with `palisade crl import`.
    pub fetch: bool,
    /// How long one CRL download may take.
    pub fetch_timeout: Duration,
}

impl Default for CrlSettings {
    fn default() -> Self {
        Self {
            fetch: true,
            fetch_timeout: Duration::from_secs(5),
        }
    }
}
