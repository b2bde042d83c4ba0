//! Publishing messages to Amazon SNS topics, for audit notifications and the
//! PUBLISH_FINDING_TO_SNS mitigation action.
//!
//! [`Publisher`] sends SNS `Publish` requests through aws-sdk-sns, signed with static
//! credentials from Palisade's configuration, to the AWS endpoint of the topic's region
//! or to a configured endpoint (an SNS-compatible service, or a test double on
//! loopback). The SDK's types stay inside this crate: callers pass strings and get a
//! message id or a [`PublishError`] that says what failed and whether trying again later
//! can help, so the engine does not depend on the SDK.
//!
//! The SDK's own retries are off: the callers retry from a durable queue with their own
//! backoff, and one call here is one request.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sns::config::http::HttpResponse;
use aws_sdk_sns::config::retry::RetryConfig;
use aws_sdk_sns::config::timeout::TimeoutConfig;
use aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::operation::publish::PublishError as SdkPublishError;
use aws_sdk_sns::Client;

/// How to reach SNS: plain values, so callers need none of the SDK's types.
#[derive(Clone, Default)]
pub struct PublisherSettings {
    /// `None`: the AWS endpoint of the topic's region.
    pub endpoint_url: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// How long connecting may take.
    pub connect_timeout: Option<Duration>,
    /// How long one publish may take, all in.
    pub operation_timeout: Option<Duration>,
}

impl fmt::Debug for PublisherSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublisherSettings")
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a message was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Palisade has no SNS access key id and secret configured.
    #[error("no SNS credentials are configured (--sns-access-key-id and --sns-secret-access-key)")]
    NoCredentials,
    /// The topic ARN is not an SNS topic ARN with a region.
    #[error("'{0}' is not the ARN of an SNS topic")]
    InvalidTopicArn(String),
    /// The request did not get an SNS answer: connection refused, DNS, TLS, timeout, or
    /// a response that is not SNS's.
    #[error("SNS endpoint {endpoint} unreachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// SNS answered with an error.
    #[error("SNS refused the message: {code} (HTTP {status}): {message}")]
    Rejected {
        /// The AWS error code, e.g. `NotFound`, `AuthorizationError`, `Throttling`.
        code: String,
        message: String,
        status: u16,
    },
    /// The request could not be built (a bug, or a value the SDK refuses).
    #[error("the SNS request could not be built: {0}")]
    Invalid(String),
}

impl PublishError {
    /// Whether the same message may go through later: the endpoint was unreachable, or
    /// SNS answered with throttling or a server error. Missing credentials, a bad ARN or
    /// a refusal (unknown topic, denied) stay as they are until someone changes
    /// something.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Rejected { code, status, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        code.as_str(),
                        "Throttling"
                            | "ThrottlingException"
                            | "ThrottledException"
                            | "RequestThrottled"
                            | "InternalError"
                            | "InternalFailure"
                            | "ServiceUnavailable"
                            | "KMSThrottling"
                    )
            }
            Self::NoCredentials | Self::InvalidTopicArn(_) | Self::Invalid(_) => false,
        }
    }
}

/// The region of an SNS topic ARN (`arn:PARTITION:sns:REGION:ACCOUNT:NAME`).
pub fn topic_region(topic_arn: &str) -> Result<&str, PublishError> {
    let parts: Vec<&str> = topic_arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "sns", region, account, name]
            if !partition.is_empty()
                && !region.is_empty()
                && !account.is_empty()
                && !name.is_empty() =>
        {
            Ok(region)
        }
        _ => Err(PublishError::InvalidTopicArn(topic_arn.to_owned())),
    }
}

/// Publishes to SNS. Cheap to clone; clones share their clients (and connection pools).
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PublisherSettings,
    /// One client per region: a topic's region decides the endpoint and the signing
    /// scope, and a client holds one region.
    clients: Mutex<HashMap<String, Client>>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl Publisher {
    pub fn new(settings: PublisherSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                clients: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Publishes `message` (for Palisade's uses, a JSON document) to `topic_arn`, with an
    /// optional subject; returns SNS's message id.
    pub async fn publish(
        &self,
        topic_arn: &str,
        message: &str,
        subject: Option<&str>,
    ) -> Result<String, PublishError> {
        let region = topic_region(topic_arn)?;
        let client = self.client(region)?;
        let out = client
            .publish()
            .topic_arn(topic_arn)
            .message(message)
            .set_subject(subject.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.describe(region, e))?;
        Ok(out.message_id.unwrap_or_default())
    }

    fn client(&self, region: &str) -> Result<Client, PublishError> {
        let s = &self.inner.settings;
        let (Some(key), Some(secret)) = (
            s.access_key_id.as_deref().filter(|k| !k.is_empty()),
            s.secret_access_key.as_deref().filter(|k| !k.is_empty()),
        ) else {
            return Err(PublishError::NoCredentials);
        };
        // A poisoned lock only means another publish panicked mid-insert; the map is
        // still a valid cache.
        let mut clients = self
            .inner
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(region) {
            return Ok(client.clone());
        }
        let mut config = aws_sdk_sns::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(Credentials::new(key, secret, None, None, "palisade"))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(s.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
                    .operation_timeout(s.operation_timeout.unwrap_or(DEFAULT_OPERATION_TIMEOUT))
                    .build(),
            );
        if let Some(url) = s.endpoint_url.as_deref().filter(|u| !u.is_empty()) {
            config = config.endpoint_url(url);
        }
        let client = Client::from_conf(config.build());
        clients.insert(region.to_owned(), client.clone());
        Ok(client)
    }

    fn endpoint(&self, region: &str) -> String {
        match &self.inner.settings.endpoint_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!("sns.{region} (AWS)"),
        }
    }

    fn describe(&self, region: &str, e: SdkError<SdkPublishError, HttpResponse>) -> PublishError {
        let unreachable = |reason: String| PublishError::Unreachable {
            endpoint: self.endpoint(region),
            reason,
        };
        match e {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let err = service.err();
                PublishError::Rejected {
                    code: err.code().unwrap_or("Unknown").to_owned(),
                    message: err.message().unwrap_or_default().to_owned(),
                    status,
                }
            }
            SdkError::ConstructionFailure(_) => PublishError::Invalid(error_chain(&e)),
            SdkError::TimeoutError(_) => unreachable("timed out".into()),
            _ => unreachable(error_chain(&e)),
        }
    }
}

/// An error and its sources on one line: the SDK's top-level messages ("dispatch
/// failure") say little without the cause ("connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_topic_arn() {
        assert_eq!(
            topic_region("arn:aws:sns:eu-west-1:123456789012:alerts"),
            Ok("eu-west-1")
        );
        assert_eq!(
            topic_region("arn:aws-cn:sns:cn-north-1:123456789012:a:b"),
            Ok("cn-north-1")
        );
        for bad in [
            "",
            "alerts",
            "arn:aws:sqs:eu-west-1:123456789012:alerts",
            "arn:aws:sns::123456789012:alerts",
            "arn:aws:sns:eu-west-1:123456789012",
            "arn:aws:sns:eu-west-1::alerts",
        ] {
            assert_eq!(
                topic_region(bad),
                Err(PublishError::InvalidTopicArn(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn which_errors_are_worth_retrying() {
        let rejected = |code: &str, status| PublishError::Rejected {
            code: code.into(),
            message: String::new(),
            status,
        };
        assert!(PublishError::Unreachable {
            endpoint: "x".into(),
            reason: "refused".into()
        }
        .is_retryable());
        assert!(rejected("Throttling", 400).is_retryable());
        assert!(rejected("InternalError", 500).is_retryable());
        assert!(rejected("Whatever", 503).is_retryable());
        assert!(!rejected("NotFound", 404).is_retryable());
        assert!(!rejected("AuthorizationError", 403).is_retryable());
        assert!(!PublishError::NoCredentials.is_retryable());
        assert!(!PublishError::InvalidTopicArn("x".into()).is_retryable());
    }

    #[tokio::test]
    async fn no_credentials_is_reported_before_any_request() {
        let publisher = Publisher::new(PublisherSettings {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        });
        let err = publisher
            .publish("arn:aws:sns:us-east-1:123456789012:t", "{}", None)
            .await
            .unwrap_err();
        assert_eq!(err, PublishError::NoCredentials);
    }

    #[tokio::test]
    async fn an_endpoint_nobody_listens_on_is_unreachable() {
        // Bind and drop: the port is free, and refuses connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let publisher = Publisher::new(PublisherSettings {
            endpoint_url: Some(format!("http://127.0.0.1:{port}")),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("secret".into()),
            ..Default::default()
        });
        let err = publisher
            .publish("arn:aws:sns:us-east-1:123456789012:t", "{}", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PublishError::Unreachable { .. }) && err.is_retryable(),
            "{err:?}"
        );
        let secret = format!("{:?}", publisher);
        assert!(!secret.contains("\"secret\""), "{secret}");
    }
}
