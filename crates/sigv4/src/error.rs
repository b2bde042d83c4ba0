//! Verification failures, each mapped to the error code and message AWS sends.

/// Why a request was not authenticated.
///
/// Every variant is answered with HTTP 403 by the caller; [`SigV4Error::code`]
/// is the AWS error type (`__type` / `x-amzn-ErrorType`) and `Display` (also
/// [`SigV4Error::message`]) the human message, both modelled on AWS's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor presigned query parameters.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,

    /// The authentication data is structurally broken or incomplete; the
    /// string is the full message.
    #[error("{0}")]
    Incomplete(String),

    /// An `Authorization` header and presigned query parameters at once.
    ///
    /// Rejected rather than picking one: whichever we ignored could carry
    /// parameters the client never signed.
    #[error(
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter \
         or the Authorization header should be specified."
    )]
    MultipleAuthMethods,

    /// `X-Amz-Date` is not `yyyyMMdd'T'HHmmss'Z'`.
    #[error("Date must be in ISO-8601 'basic format' (yyyyMMdd'T'HHmmss'Z'). Got '{0}'.")]
    MalformedAmzDate(String),

    /// The `Date` header (used when `X-Amz-Date` is absent) is not an HTTP date.
    #[error(
        "Date header must be an RFC 1123 date (e.g. 'Sun, 30 Aug 2015 12:36:00 GMT'). Got '{0}'."
    )]
    MalformedHttpDate(String),

    /// Credential scope names another region than this endpoint serves.
    #[error("Credential should be scoped to a valid region, not '{0}'.")]
    WrongRegion(String),

    /// Credential scope names another service; AWS names the expected one.
    #[error("Credential should be scoped to correct service: '{expected}'.")]
    WrongService {
        /// The service this endpoint verifies for.
        expected: String,
        /// The service named in the credential scope.
        got: String,
    },

    /// Credential scope does not end in `aws4_request`.
    #[error("Credential should be scoped with a valid terminator: 'aws4_request', not '{0}'.")]
    WrongTerminator(String),

    /// The scope's date is not the request date's `yyyyMMdd`.
    #[error(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
         '{scope_date}' != '{request_day}', from '{request_date}'."
    )]
    ScopeDateMismatch {
        /// Date in the credential scope.
        scope_date: String,
        /// `yyyyMMdd` of the request date.
        request_day: String,
        /// The request date, ISO-8601 basic format.
        request_date: String,
    },

    /// The request date is older than `now - max_skew`.
    #[error("Signature expired: {date} is now earlier than {earliest} ({now} - {skew}.)")]
    SignatureExpired {
        /// Request date.
        date: String,
        /// Oldest accepted date.
        earliest: String,
        /// Server time.
        now: String,
        /// Allowed skew, e.g. `15 min`.
        skew: String,
    },

    /// The request date is later than `now + max_skew`.
    #[error("Signature not yet current: {date} is still later than {latest} ({now} + {skew}.)")]
    SignatureNotYetCurrent {
        /// Request date.
        date: String,
        /// Latest accepted date.
        latest: String,
        /// Server time.
        now: String,
        /// Allowed skew, e.g. `15 min`.
        skew: String,
    },

    /// A presigned request used after `X-Amz-Date + X-Amz-Expires`.
    #[error("Signature expired: {expired_at} is now earlier than {now} ({date} + {expires} sec.)")]
    PresignedExpired {
        /// `X-Amz-Date`.
        date: String,
        /// `X-Amz-Expires`, seconds.
        expires: u32,
        /// `X-Amz-Date + X-Amz-Expires`.
        expired_at: String,
        /// Server time.
        now: String,
    },

    /// `x-amz-content-sha256` is neither `UNSIGNED-PAYLOAD` nor the body's hash.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    PayloadHashMismatch,

    /// The signature is wrong (bad secret, tampered request, absent signed header...).
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. \
         Consult the service documentation for details."
    )]
    SignatureMismatch,

    /// The access key id is unknown. Produced by the caller after a failed
    /// secret lookup; provided here so all auth errors share one type.
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
}

impl SigV4Error {
    /// AWS error code for the response body / `x-amzn-ErrorType`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::Incomplete(_) | Self::MalformedAmzDate(_) | Self::MalformedHttpDate(_) => {
                "IncompleteSignatureException"
            }
            Self::MultipleAuthMethods
            | Self::WrongRegion(_)
            | Self::WrongService { .. }
            | Self::WrongTerminator(_)
            | Self::ScopeDateMismatch { .. }
            | Self::SignatureExpired { .. }
            | Self::SignatureNotYetCurrent { .. }
            | Self::PresignedExpired { .. }
            | Self::PayloadHashMismatch
            | Self::SignatureMismatch => "InvalidSignatureException",
            Self::UnknownAccessKey => "UnrecognizedClientException",
        }
    }

    /// Human-readable message for the response body (same as `Display`).
    pub fn message(&self) -> String {
        self.to_string()
    }
}
