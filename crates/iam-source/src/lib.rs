//! Reading IAM roles and Amazon Cognito identity pools live, for the role alias and
//! Cognito audit checks: `GetAccountAuthorizationDetails`,
//! `GenerateServiceLastAccessedDetails` / `GetServiceLastAccessedDetails`,
//! `ListIdentityPools` and `GetIdentityPoolRoles`, through aws-sdk-iam and
//! aws-sdk-cognitoidentity, signed with static credentials from Palisade's configuration,
//! to a configured endpoint (any IAM-compatible service) or AWS's.
//!
//! As in palisade-sns, the SDKs' types stay inside: callers get plain values, and a
//! [`SourceError`] naming the operation and what went wrong, so that a check can say
//! exactly which data it lacks.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_cognitoidentity as cognito;
use aws_sdk_iam as iam;
use aws_types::region::Region;
use iam::config::{BehaviorVersion, Credentials};
use iam::error::{ProvideErrorMetadata, SdkError};

/// Where a service is and how to sign for it: plain values.
#[derive(Clone, Default)]
pub struct SourceSettings {
    /// `None`: AWS's endpoint.
    pub endpoint_url: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for SourceSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSettings")
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Why data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed at {endpoint}: {reason}")]
pub struct SourceError {
    /// The API operation, e.g. `iam:GetAccountAuthorizationDetails`.
    pub operation: &'static str,
    pub endpoint: String,
    pub reason: String,
}

/// One role: its inline policy documents (JSON text) and the ARNs of its attached
/// managed policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveRole {
    pub arn: String,
    pub inline_documents: Vec<String>,
    pub attached_policy_arns: Vec<String>,
}

/// What `GetAccountAuthorizationDetails` says of roles and managed policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationDetails {
    pub roles: Vec<LiveRole>,
    /// Managed policy ARN to its default version's document (JSON text).
    pub managed_policies: HashMap<String, String>,
}

/// One service of a role's last-accessed report: its namespace, and when the role last
/// authenticated to it (milliseconds since the epoch), if ever in the tracking period.
pub type ServiceAccess = (String, Option<i64>);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a last-accessed report may take to be generated.
const REPORT_WAIT: Duration = Duration::from_secs(60);

/// The shared SDK configuration of both readers: static credentials, short timeouts, one
/// retry, and the configured endpoint or AWS's for `region`.
fn sdk_config(settings: &SourceSettings, region: &str) -> aws_types::SdkConfig {
    let timeouts = aws_types::sdk_config::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let credentials = Credentials::new(
        settings.access_key_id.clone(),
        settings.secret_access_key.clone(),
        None,
        None,
        "palisade",
    );
    let mut config = aws_types::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(aws_types::sdk_config::SharedCredentialsProvider::new(
            credentials,
        ))
        .timeout_config(timeouts)
        .retry_config(aws_types::sdk_config::RetryConfig::standard().with_max_attempts(2))
        .sleep_impl(aws_types::sdk_config::SharedAsyncSleep::new(
            aws_smithy_async::rt::sleep::TokioSleep::new(),
        ));
    if let Some(url) = &settings.endpoint_url {
        config = config.endpoint_url(url);
    }
    config.build()
}

/// Where a reader sends its requests, for its errors.
#[derive(Clone, Debug)]
struct Endpoint(String);

impl Endpoint {
    fn of(settings: &SourceSettings) -> Endpoint {
        Endpoint(
            settings
                .endpoint_url
                .clone()
                .unwrap_or_else(|| "AWS".to_owned()),
        )
    }

    fn error(&self, operation: &'static str, reason: String) -> SourceError {
        SourceError {
            operation,
            endpoint: self.0.clone(),
            reason,
        }
    }
}

fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: fmt::Debug>(
    e: &SdkError<E, R>,
) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("no message")
            )
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// IAM and Cognito documents come URL-encoded from the API.
fn decode(document: &str) -> String {
    percent_encoding::percent_decode_str(document)
        .decode_utf8_lossy()
        .into_owned()
}

/// Reads IAM. Cheap to clone.
#[derive(Clone, Debug)]
pub struct IamReader {
    client: iam::Client,
    endpoint: Endpoint,
}

impl IamReader {
    pub fn new(settings: &SourceSettings) -> IamReader {
        // IAM is global: its endpoint and signing region are us-east-1's.
        IamReader {
            client: iam::Client::new(&sdk_config(settings, "us-east-1")),
            endpoint: Endpoint::of(settings),
        }
    }

    fn error(&self, operation: &'static str, reason: String) -> SourceError {
        self.endpoint.error(operation, reason)
    }

    /// Every role and managed policy of the account (every page).
    pub async fn authorization_details(&self) -> Result<AuthorizationDetails, SourceError> {
        const OP: &str = "iam:GetAccountAuthorizationDetails";
        let mut out = AuthorizationDetails::default();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .get_account_authorization_details()
                .filter(iam::types::EntityType::Role)
                .filter(iam::types::EntityType::LocalManagedPolicy)
                .filter(iam::types::EntityType::AwsManagedPolicy)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| self.error(OP, describe(&e)))?;
            for role in page.role_detail_list() {
                let Some(arn) = role.arn() else { continue };
                out.roles.push(LiveRole {
                    arn: arn.to_owned(),
                    inline_documents: role
                        .role_policy_list()
                        .iter()
                        .filter_map(|p| p.policy_document().map(decode))
                        .collect(),
                    attached_policy_arns: role
                        .attached_managed_policies()
                        .iter()
                        .filter_map(|p| p.policy_arn().map(str::to_owned))
                        .collect(),
                });
            }
            for policy in page.policies() {
                let Some(arn) = policy.arn() else { continue };
                let default = policy.policy_version_list().iter().find(|v| {
                    v.is_default_version()
                        || (v.version_id().is_some()
                            && v.version_id() == policy.default_version_id())
                });
                if let Some(document) = default.and_then(|v| v.document()) {
                    out.managed_policies
                        .insert(arn.to_owned(), decode(document));
                }
            }
            match page.marker() {
                Some(m) if page.is_truncated() => marker = Some(m.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// The role's service last-accessed report: generated, then polled until complete.
    pub async fn services_last_accessed(
        &self,
        role_arn: &str,
    ) -> Result<Vec<ServiceAccess>, SourceError> {
        const GENERATE: &str = "iam:GenerateServiceLastAccessedDetails";
        const GET: &str = "iam:GetServiceLastAccessedDetails";
        let job = self
            .client
            .generate_service_last_accessed_details()
            .arn(role_arn)
            .send()
            .await
            .map_err(|e| self.error(GENERATE, describe(&e)))?;
        let Some(job_id) = job.job_id() else {
            return Err(self.error(GENERATE, "no JobId in the answer".into()));
        };
        let deadline = tokio::time::Instant::now() + REPORT_WAIT;
        let mut delay = Duration::from_millis(200);
        loop {
            let report = self
                .client
                .get_service_last_accessed_details()
                .job_id(job_id)
                .send()
                .await
                .map_err(|e| self.error(GET, describe(&e)))?;
            match report.job_status() {
                iam::types::JobStatusType::Completed => {
                    return Ok(report
                        .services_last_accessed()
                        .iter()
                        .map(|s| {
                            let at = s.last_authenticated().and_then(|t| t.to_millis().ok());
                            (s.service_namespace().to_ascii_lowercase(), at)
                        })
                        .collect())
                }
                iam::types::JobStatusType::Failed => {
                    let why = report
                        .error()
                        .map(|e| format!("{}: {}", e.code(), e.message()))
                        .unwrap_or_else(|| "the job failed".into());
                    return Err(self.error(GET, why));
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(self.error(GET, format!("not complete after {REPORT_WAIT:?}")))
                }
                _ => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Reads Amazon Cognito identity pools of one region. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CognitoReader {
    client: cognito::Client,
    endpoint: Endpoint,
}

impl CognitoReader {
    pub fn new(settings: &SourceSettings, region: &str) -> CognitoReader {
        CognitoReader {
            client: cognito::Client::new(&sdk_config(settings, region)),
            endpoint: Endpoint::of(settings),
        }
    }

    fn error(&self, operation: &'static str, reason: String) -> SourceError {
        self.endpoint.error(operation, reason)
    }

    /// The ids of every identity pool.
    pub async fn identity_pools(&self) -> Result<Vec<String>, SourceError> {
        const OP: &str = "cognito-identity:ListIdentityPools";
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_identity_pools()
                .max_results(60)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| self.error(OP, describe(&e)))?;
            out.extend(
                page.identity_pools()
                    .iter()
                    .filter_map(|p| p.identity_pool_id().map(str::to_owned)),
            );
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// The pool's (authenticated, unauthenticated) role ARNs.
    pub async fn identity_pool_roles(
        &self,
        pool_id: &str,
    ) -> Result<(Option<String>, Option<String>), SourceError> {
        const OP: &str = "cognito-identity:GetIdentityPoolRoles";
        let out = self
            .client
            .get_identity_pool_roles()
            .identity_pool_id(pool_id)
            .send()
            .await
            .map_err(|e| self.error(OP, describe(&e)))?;
        let roles = out.roles();
        let role = |k: &str| roles.and_then(|r| r.get(k)).cloned();
        Ok((role("authenticated"), role("unauthenticated")))
    }
}
