//! IAM and Amazon Cognito data for the role alias and Cognito audit checks (issue 16):
//! read live from IAM and Cognito (`view.rs`, through palisade-iam-source), or imported
//! from the JSON the AWS CLI prints (`import.rs`):
//!
//! - `aws iam get-account-authorization-details`: roles (inline policies, attached
//!   managed policies) and managed policies with their versions;
//! - `aws iam get-service-last-accessed-details` for one role (named by `--role-arn` at
//!   import, since the output does not say which role it is about);
//! - `aws cognito-identity get-identity-pool-roles`: a pool's authenticated and
//!   unauthenticated roles;
//! - `aws cognito-identity list-identity-pools`: which pools the account has (so that an
//!   account without any can say so).
//!
//! A file is recognised by its shape and checked whole before anything is stored; a
//! re-import replaces what it covers (a role, a managed policy, a role's report, a
//! pool), nothing else. A check reads through an [`IamView`], which prefers imported
//! pieces and asks the live sources for the rest.

mod import;
mod view;

use std::collections::BTreeSet;

pub use import::IamImportSummary;
pub(crate) use view::IamView;

pub(crate) const ROLE: &str = "role";
pub(crate) const MANAGED_POLICY: &str = "managed_policy";
pub(crate) const LAST_ACCESSED: &str = "last_accessed";
pub(crate) const IDENTITY_POOL: &str = "identity_pool";
/// The account's list of identity pools (`aws cognito-identity list-identity-pools`),
/// one piece under [`POOL_LIST_KEY`]: how an account says which pools it has (none,
/// perhaps), so the Cognito checks can tell "no pools" from "no data".
pub(crate) const IDENTITY_POOL_LIST: &str = "identity_pool_list";
pub(crate) const POOL_LIST_KEY: &str = "pools";

/// Most pieces read per page when the checks list a kind.
pub(crate) const PAGE: usize = 500;

/// One IAM role as the checks judge it: the JSON texts of its policy documents (inline,
/// then the default versions of its attached managed policies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RolePolicies {
    pub arn: String,
    pub documents: Vec<String>,
    /// Where the data came from and when, for the findings' messages
    /// (`imported from auth.json on 2026-12-07`, `read from IAM at URL on 2026-12-07`).
    pub origin: String,
}

/// Why a role cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoleGap {
    /// Neither imported nor found in IAM.
    Unknown,
    /// The role is known, but a managed policy attached to it is not.
    MissingManagedPolicy(String),
    /// The live source failed (its error).
    SourceFailed(String),
}

/// A role's service last-accessed report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastAccessed {
    /// Services (IAM namespaces) authenticated to within the year before `as_of_ms`.
    pub used: BTreeSet<String>,
    pub origin: String,
}

/// An identity pool's roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdentityPool {
    pub id: String,
    pub authenticated: Option<String>,
    pub unauthenticated: Option<String>,
    pub origin: String,
}

pub(crate) const YEAR_MS: i64 = 365 * 24 * 60 * 60 * 1000;
