//! Server settings the audit machinery runs by (as opposed to AWS quotas, in [`Limits`]).
//!
//! [`Limits`]: crate::Limits

use std::time::Duration;

/// How audits reach outside the registry, and when scheduled audits run.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The time of day, in seconds after midnight UTC, at which scheduled audits are due.
    /// AWS chooses the time itself; Palisade lets the operator choose.
    pub scheduled_audit_time_s: u32,
    /// Where SNS messages (audit notifications, PUBLISH_FINDING_TO_SNS) are sent.
    pub sns: SnsSettings,
    /// How revocation checks obtain CRLs.
    pub crl: CrlSettings,
    /// Where the role alias checks read IAM roles live (`None`: imported data only).
    pub iam: Option<palisade_iam_source::SourceSettings>,
    /// Where the Cognito checks read identity pools live (`None`: imported data only).
    pub cognito: Option<palisade_iam_source::SourceSettings>,
    /// How long a worker's claim on an audit task lasts without renewal (renewed every
    /// quarter of it): after a crash, the task waits this long before another worker
    /// resumes it. Short in tests; long enough in production to ride out store hiccups.
    pub work_lease: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            scheduled_audit_time_s: 0,
            sns: SnsSettings::default(),
            crl: CrlSettings::default(),
            iam: None,
            cognito: None,
            work_lease: Duration::from_secs(60),
        }
    }
}

/// The SNS API endpoint and the credentials Palisade signs its requests with.
#[derive(Clone, Default)]
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

/// Leaves the secret out, so logging the settings cannot leak it.
impl std::fmt::Debug for SnsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsSettings")
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}
