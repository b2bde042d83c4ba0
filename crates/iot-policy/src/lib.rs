//! Analysis of AWS IoT policy documents for two Device Defender audit checks:
//! `IOT_POLICY_OVERLY_PERMISSIVE_CHECK` and `IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK`.
//! [`analyse`] reads one document (a policy's default version) and reports what each
//! check finds; the audit engine turns that into findings. [`PolicySet::authorize`]
//! decides one request of a device as AWS IoT Core's gateway does (see its module).
//!
//! # The model of IoT policies
//!
//! - A document is a JSON object whose `Statement` is one statement or an array of them.
//!   Each statement has `Effect` (`Allow`/`Deny`), `Action` or `NotAction`, `Resource` or
//!   `NotResource` (each a string or an array of strings) and optionally `Condition`.
//!   What cannot be read (a non-object statement, an unknown Effect, a non-string
//!   action) is skipped; only a document that is not an object with a `Statement` is an
//!   error.
//! - Action names are matched case-insensitively, with `*` and `?` wildcards (`iot:*`,
//!   `iot:Get*`). `NotAction` applies a statement to every action it does not list, and
//!   `NotResource` to every resource it does not list, so an Allow with either is broad
//!   over whatever it does not exclude. A statement with both Action and NotAction (or
//!   both Resource and NotResource), which IAM's grammar forbids, grants the union if it
//!   is an Allow and is ignored if it is a Deny.
//! - Resources are ARNs `arn:aws:iot:{region}:{account}:{client|topic|topicfilter|thing}/…`
//!   or `*`, matched case-sensitively. `*` matches any run of characters (including `/`
//!   and `:`, so it also covers region and account), `?` one character; MQTT's `+` and `#`
//!   are literal characters. Only resources of the audited account and region (the
//!   arguments of [`analyse`]) matter; the partition is `aws`, as in every ARN Palisade
//!   issues.
//! - Policy variables: `${iot:ClientId}` is chosen by the client, so in an Allow it
//!   counts as `*` (client IDs may contain `/`, so `topic/${iot:ClientId}/*` reaches
//!   `$aws/things/…`) unless the same statement has the condition `Bool`
//!   `iot:Connection.Thing.IsAttached` = `"true"`/`true` (or a list of only such values),
//!   which ties the client ID to a thing attached to the device's certificate. Every other
//!   variable (`${iot:Connection.Thing.ThingName}` with or without that condition, thing
//!   type and attributes, `${iot:Certificate.…}`, Cognito identity, unknown names, …)
//!   resolves to one value fixed by the registry or the credentials, so it confines a
//!   grant to the device's own resources. `${*}`, `${?}` and `${$}` are the literal
//!   characters.
//! - A Deny overrides any Allow. To remove a grant it must hold for every request, so
//!   only Denies without a Condition subtract, and a variable in a Deny (even
//!   `${iot:ClientId}`) denies only the requesting device's own resource. Conditions on
//!   Allows other than IsAttached are not evaluated and never narrow a grant. The audit
//!   thus errs towards reporting.
//! - Whether a grant survives the Denies is decided exactly for these globs (a search over
//!   the product of the patterns' automata), within a work budget per document; a
//!   document that exhausts it (deliberately pathological patterns, or hundreds of
//!   statements, far beyond the server's 2048-character limit) gets "allowed" as the
//!   answer to its remaining questions.
//!
//! # IOT_POLICY_OVERLY_PERMISSIVE_CHECK
//!
//! A device policy should reach that device's own resources only. An action is granted
//! *broadly* when, after Denies, the policy allows it on the resources of a device it
//! does not name, written Ω below. Only a `*` standing for the whole name reaches Ω: a
//! prefix or suffix such as `thing/MyThing*` or `client/*-sensor`, `?` (one character,
//! never a whole name), an explicit name and a device-bound variable do not.
//!
//! | action(s) | broad when the policy allows |
//! |---|---|
//! | `iot:Connect` | `client/Ω` |
//! | `iot:Publish` | `topic/$aws/things/Ω/…` |
//! | `iot:Subscribe` | `topicfilter/$aws/things/Ω/…`, or a filter with an MQTT wildcard at or above the thing name: `$aws/things/+[/…]`, `$aws/things/#`, `$aws/+/+/…`, `$aws/+/#`, `$aws/#` |
//! | `iot:GetThingShadow`, `iot:UpdateThingShadow`, `iot:DeleteThingShadow`, `iot:DescribeJobExecution`, `iot:GetPendingJobExecutions`, `iot:StartNextPendingJobExecution`, `iot:UpdateJobExecution`, `iot:ListNamedShadowsForThing` | `thing/Ω` or `thing/Ω/…` (a named shadow) |
//!
//! `iot:Receive` is never reported: a device receives only what it may subscribe to.
//! `iot:RetainPublish` needs `iot:Publish` as well, which is assessed itself, and
//! retained-message reads are not thing-scoped, so neither is assessed. Plain topics
//! outside `$aws/things/` (`topic/sensors/*`) are not device identities and are not
//! broad. MQTT filters that start with a wildcard (`#`, `+/…`) do not match `$` topics,
//! so `topicfilter/#` is not broad either.
//!
//! The message lists the broad actions in AWS's order: `[iot:Subscribe, iot:Connect,
//! iot:GetThingShadow, iot:DeleteThingShadow, iot:UpdateThingShadow, iot:Publish]`, the
//! exact text AWS reports for `iot:*` on `*`, keeping that relative order for any
//! subset. AWS's list for that policy names none of the job actions although its check
//! page calls `thing/*` on them non-compliant, so the job actions and
//! ListNamedShadowsForThing are listed (in that order) only when none of the six is
//! broad; [`Analysis::broad_actions`] always has all of them.
//!
//! # IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK
//!
//! - `POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT`: a Deny statement (any, with or
//!   without a Condition, whatever its actions) has a Resource that is a topic or topic
//!   filter ARN containing `+` or `#`.
//! - `TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS`: a Deny on Subscribe for
//!   `topicfilter/P/*` (P plain text) while the policy still lets the client subscribe
//!   with an MQTT wildcard filter above P (`#`, `A/#` or `A/+/#` for an ancestor A of P)
//!   and allows Receive on some `topic/P/…` that no Deny covers.
//!
//! Both messages list the offending Deny resources in document order, e.g.
//! `Policy contains MQTT wildcards (+ or #) in Deny statement resources, where they
//! match only themselves: [arn:…:topicfilter/building/control_room/#].` and `Policy
//! denies subscribing to topic filters whose messages can still be received through an
//! allowed MQTT wildcard subscription: [arn:…:topicfilter/building/control_room/*].`
//!
//! # Performance
//!
//! The document is parsed once, into a borrowed tree; patterns are compiled once per
//! analysis against the account's ARN prefix; no regex is involved. `cargo bench -p
//! palisade-iot-policy` prints the time per call for a few documents; on the project's
//! 2-core machine (busy with other builds) a typical four-statement device policy takes
//! about 6 µs, `iot:*` on `*` about 3 µs, and a policy with Denies to subtract about
//! 10 µs.

mod actions;
mod authorize;
mod document;
mod misconfig;
mod pattern;
mod permissive;
mod policy;

use std::fmt;

pub use actions::data_plane_actions;
pub use authorize::{Context, Decision, PolicySet};

/// Check name of the overly permissive check.
pub const OVERLY_PERMISSIVE_CHECK: &str = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK";
/// Check name of the potential misconfiguration check.
pub const POTENTIAL_MISCONFIGURATION_CHECK: &str = "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK";
/// Reason code of the overly permissive check.
pub const ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS: &str =
    "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS";
/// First reason code of the misconfiguration check.
pub const POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT: &str =
    "POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT";
/// Second reason code of the misconfiguration check.
pub const TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS: &str =
    "TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS";

/// What the two policy checks find in one policy document (a policy's default version).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// IOT_POLICY_OVERLY_PERMISSIVE_CHECK: Some when the policy grants data-plane actions
    /// on a broad set of devices.
    pub overly_permissive: Option<Finding>,
    /// IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK: at most one Finding per reason code,
    /// in a stable order (POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT first).
    pub misconfigurations: Vec<Finding>,
    /// Every data-plane action granted broadly, in the order of [`data_plane_actions`]:
    /// a superset of the actions the overly permissive finding's message lists. Empty
    /// exactly when `overly_permissive` is None.
    pub broad_actions: Vec<&'static str>,
}

/// One reason a check flags the policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Finding {
    /// `reasonForNonComplianceCode`, e.g. "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS".
    pub reason_code: &'static str,
    /// `reasonForNonCompliance`, human-readable.
    pub reason: String,
}

/// Why a document could not be analysed. The server validates documents when they are
/// stored, so this marks a document that never went through that validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// Not JSON; carries serde_json's description.
    NotJson(String),
    /// JSON, but not an object.
    NotAnObject,
    /// An object without `Statement`.
    MissingStatement,
    /// `Statement` is neither an object nor an array.
    InvalidStatement,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::NotJson(why) => write!(f, "the policy document is not JSON: {why}"),
            PolicyError::NotAnObject => f.write_str("the policy document is not a JSON object"),
            PolicyError::MissingStatement => f.write_str("the policy document has no Statement"),
            PolicyError::InvalidStatement => {
                f.write_str("the policy document's Statement is neither an object nor an array")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// Analyses one policy document of account `account_id` in `region` for both checks.
///
/// Never panics; statements or elements it cannot read are skipped (see the crate docs
/// for the model). Errors only when the document is not a JSON object with a Statement
/// that is an object or an array.
pub fn analyse(document: &str, account_id: &str, region: &str) -> Result<Analysis, PolicyError> {
    let value = document::Json::parse(document)?;
    let statements = document::statements(&value)?;
    let policy = policy::Policy::new(statements, account_id, region);

    let broad = permissive::broad_actions(&policy);
    let overly_permissive = (!broad.is_empty()).then(|| Finding {
        reason_code: ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS,
        reason: format!(
            "Policy allows broad access to IoT data plane actions: [{}].",
            permissive::listed(&broad).join(", ")
        ),
    });

    let mut misconfigurations = Vec::new();
    let wildcards = misconfig::mqtt_wildcards_in_deny(&policy);
    if !wildcards.is_empty() {
        misconfigurations.push(Finding {
            reason_code: POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT,
            reason: format!(
                "Policy contains MQTT wildcards (+ or #) in Deny statement resources, where \
                 they match only themselves: [{}].",
                wildcards.join(", ")
            ),
        });
    }
    let bypassed = misconfig::denied_filters_reachable(&policy);
    if !bypassed.is_empty() {
        misconfigurations.push(Finding {
            reason_code: TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS,
            reason: format!(
                "Policy denies subscribing to topic filters whose messages can still be \
                 received through an allowed MQTT wildcard subscription: [{}].",
                bypassed.join(", ")
            ),
        });
    }

    Ok(Analysis {
        overly_permissive,
        misconfigurations,
        broad_actions: broad.iter().map(|&i| policy::action_name(i)).collect(),
    })
}
