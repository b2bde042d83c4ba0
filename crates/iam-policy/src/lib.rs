//! Analysis of IAM roles for four Device Defender audit checks:
//! `IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK`,
//! `IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK`,
//! `AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK` and
//! `UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK`.
//!
//! [`analyse_role`] reads every policy document of one role (its inline policies and the
//! default versions of its attached managed policies) together, as IAM evaluates them,
//! and reports what the overly permissive check of the role's use finds;
//! [`unused_services`] answers the unused-services check from the same analysis and the
//! role's last-accessed data. The audit engine turns both into findings.
//!
//! # The model of IAM policies
//!
//! - A document is a JSON object whose `Statement` is one statement or an array of them;
//!   anything else is a [`PolicyError`], and so is an object anywhere in the document
//!   with the same key twice (IAM refuses such documents; serde_json would keep the
//!   last). Within a valid document, what cannot be read (a non-object statement, an
//!   Effect other than Allow/Deny, a non-string action) is skipped, as in
//!   palisade-iot-policy. Effect is compared ASCII case-insensitively, like there.
//! - A statement has `Action` or `NotAction`, `Resource` or `NotResource` (each a string
//!   or an array of strings) and maybe a `Condition`. A statement without any action
//!   list, or without any resource list, applies to nothing (IAM refuses it). An Allow
//!   with both Action and NotAction (or both Resource and NotResource), which IAM's
//!   grammar forbids, grants the union; such a Deny is ignored.
//! - Action names (`service:Action`) match ASCII case-insensitively with `*` and `?`,
//!   in the service prefix too: `i*:*` reaches `iam`, `inspector` and `iot`, `*` every
//!   action of every service. The actions of a service are `service:` followed by one or
//!   more characters other than `:`, so `*:*` covers everything `*` does. `NotAction`
//!   in an Allow grants every action it does not list.
//! - Resources match case-sensitively with `*` (any run of characters, `/` and `:`
//!   included) and `?` (one character). `${name}` is a policy variable: one value fixed by
//!   the caller's credentials (`${cognito-identity.amazonaws.com:sub}`,
//!   `${aws:username}`), never a whole-name wildcard; `${*}`, `${?}` and `${$}` are those
//!   characters. Only `*` or the same variable covers a variable's value: a Deny of
//!   `thing/?*` does not take away an Allow of `thing/${aws:username}` (the value might
//!   be empty), which errs towards reporting.
//! - Conditions narrow nothing in an Allow (they are not evaluated). A Deny subtracts
//!   only when it has no Condition (it might not hold for a request) and, for each
//!   action, only where it covers the resources; a grant survives when some action and
//!   resource the Allow covers is covered by no such Deny. This is decided exactly for
//!   these globs (a search over the product of their automata), within a work budget per
//!   role; a role that exhausts it (pathological patterns far beyond IAM's size limits)
//!   gets the answer that reports.
//!
//! # IoT permission classes (reference §2.5)
//!
//! - Thing admin write: [`THING_ADMIN_WRITE_ACTIONS`]; thing admin read:
//!   [`THING_ADMIN_READ_ACTIONS`]; data plane: [`DATA_PLANE_ACTIONS`]; non-thing admin:
//!   every other operation of the AWS IoT API model ([`non_thing_admin_actions`], 256 of
//!   them), as `iot:<Operation>`.
//! - "Allowed" (write, non-thing admin, any admin action of an unauthenticated role)
//!   means: allowed after Denies on some resource an IoT request of the audited account
//!   and region can name, an ARN `arn:aws:iot:{region}:{account}:…` or `*` (the resource
//!   of actions without resource-level permissions, such as ListThings). So a grant on
//!   another account's or region's resources is not reported in this audit, and a Deny
//!   on `arn:aws:iot:*` alone leaves `*` (hence ListThings-like actions) allowed.
//! - "Broad" thing admin read (authenticated role and role alias) means allowed after
//!   Denies on `arn:aws:iot:{region}:{account}:thing/Ω`, Ω a thing the role does not
//!   name: only a whole-name `*` reaches it (`thing/*`, `*`), not a named thing, a prefix
//!   (`thing/MyThing*`), `?` or a policy variable.
//! - Data plane: [`palisade_iot_policy::analyse`] on one document made of every statement
//!   of every document (`{"Version":"2012-10-17","Statement":[…]}`), so a Deny in one
//!   policy subtracts from an Allow in another; its rules are §2.3's. Its message is
//!   reused with "Policy" replaced by "Role".
//!
//! # The overly permissive checks
//!
//! One [`Finding`] per reason code, in the order of the reference's table:
//!
//! | reason code | role alias | authenticated Cognito | unauthenticated Cognito |
//! |---|---|---|---|
//! | `ALLOWS_BROAD_ACCESS_TO_USED_SERVICES` | 1 | | |
//! | `ALLOWS_ACCESS_TO_SECURITY_AUDITING_SERVICES` | 2 | | |
//! | `ALLOWS_ACCESS_TO_IOT_ADMIN_ACTIONS` (write, read even of one named thing, or non-thing admin) | | | 1 |
//! | `ALLOWS_BROAD_ACCESS_TO_IOT_THING_ADMIN_READ_ACTIONS` | 3 | 1 | |
//! | `ALLOWS_ACCESS_TO_IOT_NON_THING_ADMIN_ACTIONS` | 4 | 2 | |
//! | `ALLOWS_ACCESS_TO_IOT_THING_ADMIN_WRITE_ACTIONS` | 5 | 3 | |
//! | `ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS` | 6 | 4 | 2 |
//!
//! - `ALLOWS_BROAD_ACCESS_TO_USED_SERVICES`: for a service in the used set, one Allow's
//!   actions cover every action of the service (`s3:*`, `s*`, `*`, a NotAction not
//!   naming it), whatever its resources, and no Deny takes any of the service's actions away on every resource
//!   that Allow covers (a Deny of `s3:DeleteBucket` on `*` ends full access; one on a
//!   single bucket does not). Without last-accessed data (`used_services` None) the code
//!   is [`RoleAnalysis::undecided`] when some Allow looks like full access to a service
//!   (an action pattern `…:*`, a `:`-less pattern ending in `*`, or a NotAction not
//!   excluding everything; Denies not considered), and decided compliant otherwise.
//! - `ALLOWS_ACCESS_TO_SECURITY_AUDITING_SERVICES`: any action of `iam`, `cloudtrail`,
//!   `guardduty`, `inspector` or `trustedadvisor` allowed after Denies on any resource.
//!
//! Messages list what was found, in a stable order: IoT actions in the class's order
//! (the reference's for write and read, the model's alphabetical one for non-thing
//! admin; write, read, then non-thing for the unauthenticated role's admin list), at most
//! [`LISTED_ACTIONS`] of them followed by "and N more"; services alphabetically. E.g.
//! `Role allows access to IoT thing admin write actions: [iot:CreateThing,
//! iot:DeleteThing].`
//!
//! # Granted and unused services
//!
//! [`RoleAnalysis::granted_services`] holds the service namespaces (lower case) of which
//! the role allows at least one action after Denies, on any resource. A pattern whose
//! service part is wildcards only (`*`, `*:Get*`) or a NotAction Allow adds `*`; a pattern
//! with another wildcard service part adds that part as written (`i*` for `i*:*`, `s3*`
//! for the `:`-less `s3*`), since the services it reaches cannot be listed. The
//! unused-services check reports the granted entries not in the used set; `*` and other
//! wildcard entries always count as unused unless the used set holds `*`.

mod classes;
mod document;
mod glob;
mod role;

use std::collections::BTreeSet;
use std::fmt;

pub use classes::{
    non_thing_admin_actions, DATA_PLANE_ACTIONS, THING_ADMIN_READ_ACTIONS,
    THING_ADMIN_WRITE_ACTIONS,
};
/// One reason a check flags the role: `reasonForNonComplianceCode` and the
/// human-readable `reasonForNonCompliance` (the same type as the IoT policy checks').
pub use palisade_iot_policy::Finding;

use role::{RegionKind, Role};

/// Check name of the role alias overly permissive check.
pub const IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK: &str = "IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK";
/// Check name of the role alias unused services check.
pub const IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK: &str =
    "IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK";
/// Check name of the authenticated Cognito role check.
pub const AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK: &str =
    "AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK";
/// Check name of the unauthenticated Cognito role check.
pub const UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK: &str =
    "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK";

/// Full access to a service the role used in the last year (role alias).
pub const ALLOWS_BROAD_ACCESS_TO_USED_SERVICES: &str = "ALLOWS_BROAD_ACCESS_TO_USED_SERVICES";
/// Any access to a security auditing service (role alias).
pub const ALLOWS_ACCESS_TO_SECURITY_AUDITING_SERVICES: &str =
    "ALLOWS_ACCESS_TO_SECURITY_AUDITING_SERVICES";
/// Thing admin read actions on things the role does not name.
pub const ALLOWS_BROAD_ACCESS_TO_IOT_THING_ADMIN_READ_ACTIONS: &str =
    "ALLOWS_BROAD_ACCESS_TO_IOT_THING_ADMIN_READ_ACTIONS";
/// Any non-thing admin action.
pub const ALLOWS_ACCESS_TO_IOT_NON_THING_ADMIN_ACTIONS: &str =
    "ALLOWS_ACCESS_TO_IOT_NON_THING_ADMIN_ACTIONS";
/// Any thing admin write action.
pub const ALLOWS_ACCESS_TO_IOT_THING_ADMIN_WRITE_ACTIONS: &str =
    "ALLOWS_ACCESS_TO_IOT_THING_ADMIN_WRITE_ACTIONS";
/// Any admin action at all (unauthenticated Cognito role).
pub const ALLOWS_ACCESS_TO_IOT_ADMIN_ACTIONS: &str = "ALLOWS_ACCESS_TO_IOT_ADMIN_ACTIONS";
/// Broad data-plane access (§2.3).
pub use palisade_iot_policy::ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS;
/// Services granted but not used in the last year (role alias).
pub const ALLOWS_ACCESS_TO_UNUSED_SERVICES: &str = "ALLOWS_ACCESS_TO_UNUSED_SERVICES";

/// The security auditing services, whose any access a role alias's role is flagged for.
pub const SECURITY_AUDITING_SERVICES: [&str; 5] = [
    "cloudtrail",
    "guardduty",
    "iam",
    "inspector",
    "trustedadvisor",
];

/// How many IoT actions a message lists before "and N more".
pub const LISTED_ACTIONS: usize = 10;

/// How the audited role is used, which decides its overly permissive check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleUse {
    /// The role behind an IoT role alias.
    RoleAlias,
    /// The authenticated role of a Cognito identity pool.
    CognitoAuthenticated,
    /// The unauthenticated role of a Cognito identity pool.
    CognitoUnauthenticated,
}

impl RoleUse {
    /// The name of the overly permissive check of this use.
    pub fn check_name(self) -> &'static str {
        match self {
            RoleUse::RoleAlias => IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK,
            RoleUse::CognitoAuthenticated => AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK,
            RoleUse::CognitoUnauthenticated => UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK,
        }
    }
}

/// What the checks find in one role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleAnalysis {
    /// The overly permissive check of the role's use
    /// ([`RoleUse::check_name`]): one Finding per reason code, in the order of the
    /// table in the crate docs. Empty when compliant.
    pub overly_permissive: Vec<Finding>,
    /// Reason codes that could not be decided for lack of last-accessed data:
    /// `ALLOWS_BROAD_ACCESS_TO_USED_SERVICES` for a role alias analysed without
    /// `used_services` whose role may grant full access to some service.
    pub undecided: Vec<&'static str>,
    /// IAM service namespaces (lower case) the role allows at least one action of after
    /// Denies; `*` when a statement reaches every service (Action `*`, NotAction), and a
    /// wildcard service part as written (`i*`) otherwise (see the crate docs).
    pub granted_services: BTreeSet<String>,
}

/// Why a role could not be analysed: one of its documents (`document`, an index into
/// the slice given to [`analyse_role`]) is not an IAM policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// Not JSON; carries serde_json's description.
    NotJson { document: usize, detail: String },
    /// JSON, but not an object.
    NotAnObject { document: usize },
    /// An object without `Statement`.
    MissingStatement { document: usize },
    /// `Statement` is neither an object nor an array.
    InvalidStatement { document: usize },
    /// An object of the document has the key twice.
    DuplicateKey { document: usize, key: String },
    /// The data-plane analysis refused the combined document (cannot happen: it is built
    /// from documents already read).
    DataPlane(palisade_iot_policy::PolicyError),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::NotJson { document, detail } => {
                write!(f, "policy document {document} is not JSON: {detail}")
            }
            PolicyError::NotAnObject { document } => {
                write!(f, "policy document {document} is not a JSON object")
            }
            PolicyError::MissingStatement { document } => {
                write!(f, "policy document {document} has no Statement")
            }
            PolicyError::InvalidStatement { document } => write!(
                f,
                "policy document {document}'s Statement is neither an object nor an array"
            ),
            PolicyError::DuplicateKey { document, key } => {
                write!(f, "policy document {document} has the key `{key}` twice")
            }
            PolicyError::DataPlane(e) => write!(f, "the role's combined document: {e}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Analyses one IAM role of account `account_id`, audited in `region`: `documents` are
/// the JSON texts of all its policy documents, `used_services` the IAM service
/// namespaces it used in the last year (GetServiceLastAccessedDetails), if known.
///
/// Never panics. Errors when a document is not a JSON object with a Statement that is
/// an object or an array, or has a duplicate key (see the crate docs).
pub fn analyse_role(
    documents: &[&str],
    account_id: &str,
    region: &str,
    role_use: RoleUse,
    used_services: Option<&BTreeSet<String>>,
) -> Result<RoleAnalysis, PolicyError> {
    let mut statements = Vec::new();
    for (i, text) in documents.iter().enumerate() {
        let value = document::parse_strict(text, i)?;
        statements.extend(document::statement_values(value, i)?);
    }
    let combined = serde_json::json!({ "Version": "2012-10-17", "Statement": statements });
    let data_plane = palisade_iot_policy::analyse(&combined.to_string(), account_id, region)
        .map_err(PolicyError::DataPlane)?
        .overly_permissive
        .map(|f| Finding {
            reason_code: f.reason_code,
            reason: f.reason.replacen("Policy allows", "Role allows", 1),
        });

    let mut role = Role::new(
        statements.iter().filter_map(document::statement).collect(),
        account_id,
        region,
    );
    let mut findings = Vec::new();
    let mut undecided = Vec::new();

    let write = granted(&mut role, &THING_ADMIN_WRITE_ACTIONS, RegionKind::Iot);
    let non_thing = granted(&mut role, non_thing_admin_actions(), RegionKind::Iot);
    match role_use {
        RoleUse::RoleAlias | RoleUse::CognitoAuthenticated => {
            if role_use == RoleUse::RoleAlias {
                match used_services {
                    Some(used) => {
                        let broad: Vec<String> = used
                            .iter()
                            .map(|s| s.to_ascii_lowercase())
                            .filter(|s| !s.is_empty() && !s.contains(['*', '?', ':']))
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .filter(|s| role.grants_all_of_service(s))
                            .collect();
                        if !broad.is_empty() {
                            findings.push(Finding {
                                reason_code: ALLOWS_BROAD_ACCESS_TO_USED_SERVICES,
                                reason: format!(
                                    "Role allows broad access to services it used in the last \
                                     year: [{}].",
                                    broad.join(", ")
                                ),
                            });
                        }
                    }
                    None if role.may_grant_a_whole_service() => {
                        undecided.push(ALLOWS_BROAD_ACCESS_TO_USED_SERVICES);
                    }
                    None => {}
                }
                let auditing: Vec<&str> = SECURITY_AUDITING_SERVICES
                    .into_iter()
                    .filter(|s| role.grants_service(s))
                    .collect();
                if !auditing.is_empty() {
                    findings.push(Finding {
                        reason_code: ALLOWS_ACCESS_TO_SECURITY_AUDITING_SERVICES,
                        reason: format!(
                            "Role allows access to security auditing services: [{}].",
                            auditing.join(", ")
                        ),
                    });
                }
            }
            let broad_read = granted(&mut role, &THING_ADMIN_READ_ACTIONS, RegionKind::OtherThing);
            push(
                &mut findings,
                ALLOWS_BROAD_ACCESS_TO_IOT_THING_ADMIN_READ_ACTIONS,
                "Role allows broad access to IoT thing admin read actions",
                &broad_read,
            );
            push(
                &mut findings,
                ALLOWS_ACCESS_TO_IOT_NON_THING_ADMIN_ACTIONS,
                "Role allows access to IoT non-thing admin actions",
                &non_thing,
            );
            push(
                &mut findings,
                ALLOWS_ACCESS_TO_IOT_THING_ADMIN_WRITE_ACTIONS,
                "Role allows access to IoT thing admin write actions",
                &write,
            );
        }
        RoleUse::CognitoUnauthenticated => {
            let read = granted(&mut role, &THING_ADMIN_READ_ACTIONS, RegionKind::Iot);
            let admin: Vec<&str> = write
                .iter()
                .chain(&read)
                .chain(&non_thing)
                .copied()
                .collect();
            push(
                &mut findings,
                ALLOWS_ACCESS_TO_IOT_ADMIN_ACTIONS,
                "Role allows access to IoT admin actions",
                &admin,
            );
        }
    }
    findings.extend(data_plane);

    let granted_services = role.granted_services();
    Ok(RoleAnalysis {
        overly_permissive: findings,
        undecided,
        granted_services,
    })
}

/// IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK: the services the role grants
/// but did not use in the last year (`used_services`, IAM namespaces, compared ASCII
/// case-insensitively), None when there are none. Wildcard entries of
/// `granted_services` (`*`, `i*`) count as unused unless `used_services` holds `*`.
pub fn unused_services(
    analysis: &RoleAnalysis,
    used_services: &BTreeSet<String>,
) -> Option<Finding> {
    let used: BTreeSet<String> = used_services
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if used.contains("*") {
        return None;
    }
    let unused: Vec<&str> = analysis
        .granted_services
        .iter()
        .filter(|s| s.contains(['*', '?']) || !used.contains(s.as_str()))
        .map(String::as_str)
        .collect();
    (!unused.is_empty()).then(|| Finding {
        reason_code: ALLOWS_ACCESS_TO_UNUSED_SERVICES,
        reason: format!(
            "Role allows access to services it did not use in the last year: [{}].",
            unused.join(", ")
        ),
    })
}

/// The actions of `names` (IoT operation names) the role allows in the region.
fn granted(role: &mut Role, names: &[&'static str], kind: RegionKind) -> Vec<&'static str> {
    names
        .iter()
        .copied()
        .filter(|name| role.allows_action(&format!("iot:{}", name.to_ascii_lowercase()), kind))
        .collect()
}

/// Adds a finding listing `actions` as `iot:<name>`, when there are any.
fn push(findings: &mut Vec<Finding>, code: &'static str, text: &str, actions: &[&str]) {
    if actions.is_empty() {
        return;
    }
    let listed: Vec<String> = actions
        .iter()
        .take(LISTED_ACTIONS)
        .map(|a| format!("iot:{a}"))
        .collect();
    let more = match actions.len().saturating_sub(LISTED_ACTIONS) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    findings.push(Finding {
        reason_code: code,
        reason: format!("{text}: [{}]{more}.", listed.join(", ")),
    });
}
