//! The four checks that judge IAM roles (issue 16): the role behind each role alias
//! (IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK, IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK)
//! and the roles of each Amazon Cognito identity pool (AUTHENTICATED_ and
//! UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK), with palisade-iam-policy's
//! analysis over the IAM data of `crate::iam`.
//!
//! Every role a check needs is resolved before any finding is written: a role without
//! data (or whose attached managed policy is missing) fails the check, naming it, rather
//! than leave a resource silently unjudged.

use std::collections::BTreeSet;

use palisade_iam_policy::{RoleAnalysis, RoleUse};
use palisade_model::{RelatedResource, ResourceIdentifier, ResourceType};
use palisade_store::{RoleAliasRecord, Scope};

use super::findings::Draft;
use super::sink::{Outcome, Sink, PAGE};
use crate::iam::{IamView, RoleGap, RolePolicies};
use crate::{Engine, EngineResult};

const NO_DATA: &str = "DATA_SOURCE_NOT_AVAILABLE";
/// Most names a check's message lists.
const LISTED: usize = 5;

/// Which of the four checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IamCheck {
    RoleAliasOverlyPermissive,
    RoleAliasUnusedServices,
    CognitoAuthenticated,
    CognitoUnauthenticated,
}

/// `[a, b, c]`, or the first few and how many more.
fn listed(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(LISTED).map(String::as_str).collect();
    match names.len().saturating_sub(LISTED) {
        0 => format!("[{}]", shown.join(", ")),
        more => format!("[{}] and {more} more", shown.join(", ")),
    }
}

fn role_related(role_arn: &str) -> Vec<RelatedResource> {
    vec![RelatedResource {
        resource_type: Some(ResourceType::from_wire("IAM_ROLE")),
        resource_identifier: Some(ResourceIdentifier {
            iam_role_arn: Some(role_arn.to_owned()),
            ..ResourceIdentifier::default()
        }),
        additional_info: None,
    }]
}

fn failed(check: &str, message: String) -> Outcome {
    Outcome::Failed {
        error_code: NO_DATA.to_owned(),
        message: format!("{check} cannot be evaluated: {message}"),
    }
}

/// Why the roles in `gaps` could not be judged, for a check's message.
fn gaps_message(gaps: &[(String, RoleGap)]) -> String {
    let of = |want: fn(&RoleGap) -> Option<String>| -> Vec<String> {
        gaps.iter()
            .filter_map(|(r, g)| want(g).map(|detail| format!("{r}{detail}")))
            .collect()
    };
    let unknown = of(|g| (*g == RoleGap::Unknown).then(String::new));
    let partial = of(|g| match g {
        RoleGap::MissingManagedPolicy(p) => Some(format!(" (managed policy {p})")),
        _ => None,
    });
    let failed: BTreeSet<String> = gaps
        .iter()
        .filter_map(|(_, g)| match g {
            RoleGap::SourceFailed(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        parts.push(format!(
            "Palisade has no IAM data for the roles {}",
            listed(&unknown)
        ));
    }
    if !partial.is_empty() {
        parts.push(format!(
            "the managed policies attached to {} are missing",
            listed(&partial)
        ));
    }
    for e in failed {
        parts.push(format!("reading IAM failed: {e}"));
    }
    format!(
        "{}. Import the output of `aws iam get-account-authorization-details` with \
         `palisade iam import`, or give an IAM endpoint that has them.",
        parts.join("; ")
    )
}

impl Engine {
    /// Runs one of the four checks into `sink`: the number of resources judged and a
    /// note, or the check's failure.
    pub(super) async fn evaluate_iam_check(
        &self,
        scope: &Scope,
        sink: &mut Sink<'_>,
        which: IamCheck,
        task_start_ms: i64,
    ) -> EngineResult<Result<(i64, Option<String>), Outcome>> {
        match which {
            IamCheck::RoleAliasOverlyPermissive | IamCheck::RoleAliasUnusedServices => {
                self.role_alias_check(scope, sink, which, task_start_ms)
                    .await
            }
            IamCheck::CognitoAuthenticated | IamCheck::CognitoUnauthenticated => {
                self.cognito_check(scope, sink, which == IamCheck::CognitoAuthenticated)
                    .await
            }
        }
    }

    async fn role_aliases(&self, scope: &Scope) -> EngineResult<Vec<RoleAliasRecord>> {
        let mut out: Vec<RoleAliasRecord> = Vec::new();
        loop {
            let after = out.last().map(|a| a.alias.clone());
            let page = self
                .store()
                .list_role_aliases(scope, after.as_deref(), false, PAGE)
                .await?;
            let n = page.len();
            out.extend(page);
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    /// The roles named, each with its documents, or the gaps that stop the check.
    async fn resolve_roles<'a>(
        view: &mut IamView<'_>,
        arns: impl Iterator<Item = &'a str>,
    ) -> EngineResult<Result<Vec<RolePolicies>, Vec<(String, RoleGap)>>> {
        let (mut roles, mut gaps) = (Vec::new(), Vec::new());
        let mut seen = BTreeSet::new();
        for arn in arns {
            if !seen.insert(arn.to_owned()) {
                continue;
            }
            match view.role(arn).await? {
                Ok(role) => roles.push(role),
                Err(gap) => gaps.push((arn.to_owned(), gap)),
            }
        }
        Ok(if gaps.is_empty() {
            Ok(roles)
        } else {
            Err(gaps)
        })
    }

    fn analyse(
        scope: &Scope,
        role: &RolePolicies,
        role_use: RoleUse,
        used: Option<&BTreeSet<String>>,
    ) -> Result<RoleAnalysis, String> {
        let documents: Vec<&str> = role.documents.iter().map(String::as_str).collect();
        palisade_iam_policy::analyse_role(
            &documents,
            &scope.account_id,
            &scope.region,
            role_use,
            used,
        )
        .map_err(|e| format!("the policies of {} cannot be read: {e}", role.arn))
    }

    async fn role_alias_check(
        &self,
        scope: &Scope,
        sink: &mut Sink<'_>,
        which: IamCheck,
        task_start_ms: i64,
    ) -> EngineResult<Result<(i64, Option<String>), Outcome>> {
        let check = match which {
            IamCheck::RoleAliasOverlyPermissive => {
                palisade_iam_policy::IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK
            }
            _ => palisade_iam_policy::IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK,
        };
        let aliases = self.role_aliases(scope).await?;
        if aliases.is_empty() {
            return Ok(Ok((0, None)));
        }
        let mut view = IamView::new(self, scope);
        let roles =
            match Self::resolve_roles(&mut view, aliases.iter().map(|a| a.role_arn.as_str()))
                .await?
            {
                Ok(roles) => roles,
                Err(gaps) => return Ok(Err(failed(check, gaps_message(&gaps)))),
            };
        let mut judged = 0;
        // Role aliases whose roles have no last-accessed data, and why.
        let mut undecided: Vec<String> = Vec::new();
        let mut drafts: Vec<(Draft, String)> = Vec::new();
        for alias in &aliases {
            let Some(role) = roles.iter().find(|r| r.arn == alias.role_arn) else {
                continue;
            };
            // Without a report, the alias as the check's message names it (with why).
            let (report, missing) = match view.last_accessed(&role.arn, task_start_ms).await? {
                Ok(Some(report)) => (Some(report), None),
                Ok(None) => (None, Some(alias.alias.clone())),
                Err(e) => (None, Some(format!("{} ({e})", alias.alias))),
            };
            let used = report.as_ref().map(|r| &r.used);
            let analysis = match Self::analyse(scope, role, RoleUse::RoleAlias, used) {
                Ok(a) => a,
                Err(why) => return Ok(Err(failed(check, format!("{why}.")))),
            };
            let provenance = match &report {
                Some(r) => format!("IAM data {}; last-accessed data {}", role.origin, r.origin),
                None => format!("IAM data {}", role.origin),
            };
            let findings = match which {
                IamCheck::RoleAliasOverlyPermissive => {
                    if !analysis.undecided.is_empty() {
                        undecided.extend(missing);
                    }
                    analysis.overly_permissive
                }
                _ => match &report {
                    Some(r) => palisade_iam_policy::unused_services(&analysis, &r.used)
                        .into_iter()
                        .collect(),
                    None => {
                        undecided.extend(missing);
                        continue;
                    }
                },
            };
            judged += 1;
            for f in findings {
                drafts.push((
                    Draft {
                        resource: ResourceIdentifier {
                            role_alias_arn: Some(alias.arn.clone()),
                            ..ResourceIdentifier::default()
                        },
                        reason_code: f.reason_code,
                        reason: format!("{} ({provenance}.)", f.reason),
                    },
                    role.arn.clone(),
                ));
            }
        }
        if which == IamCheck::RoleAliasUnusedServices && judged == 0 {
            return Ok(Err(failed(
                check,
                format!(
                    "Palisade has no service last-accessed data for the roles of the role \
                     aliases {}. Import the output of `aws iam get-service-last-accessed-details` \
                     with `palisade iam import --role-arn`, or give an IAM endpoint that \
                     answers it.",
                    listed(&undecided)
                ),
            )));
        }
        for (draft, role_arn) in drafts {
            sink.push_with(draft, Some(role_related(&role_arn))).await?;
        }
        let note = (!undecided.is_empty()).then(|| match which {
            IamCheck::RoleAliasOverlyPermissive => format!(
                "Broad access to used services (ALLOWS_BROAD_ACCESS_TO_USED_SERVICES) could not \
                 be decided for the role aliases {}: their roles have no service last-accessed \
                 data.",
                listed(&undecided)
            ),
            _ => format!(
                "The role aliases {} were not judged: their roles have no service last-accessed \
                 data.",
                listed(&undecided)
            ),
        });
        Ok(Ok((judged, note)))
    }

    async fn cognito_check(
        &self,
        scope: &Scope,
        sink: &mut Sink<'_>,
        authenticated: bool,
    ) -> EngineResult<Result<(i64, Option<String>), Outcome>> {
        let (check, role_use) = if authenticated {
            (
                palisade_iam_policy::AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK,
                RoleUse::CognitoAuthenticated,
            )
        } else {
            (
                palisade_iam_policy::UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK,
                RoleUse::CognitoUnauthenticated,
            )
        };
        let mut view = IamView::new(self, scope);
        let pools = match view.pools().await? {
            Ok(Some(pools)) => pools,
            Ok(None) => {
                return Ok(Err(failed(
                    check,
                    "Palisade has no Amazon Cognito identity pools. Import the output of `aws \
                     cognito-identity list-identity-pools` and of `aws cognito-identity \
                     get-identity-pool-roles` for each pool with `palisade iam import`, or give \
                     a Cognito endpoint."
                        .to_owned(),
                )))
            }
            Err(problems) => {
                return Ok(Err(failed(
                    check,
                    format!(
                        "the roles of identity pools could not be had: {}.",
                        listed(&problems)
                    ),
                )))
            }
        };
        let role_of = |p: &crate::iam::IdentityPool| {
            if authenticated {
                p.authenticated.clone()
            } else {
                p.unauthenticated.clone()
            }
        };
        let arns: Vec<String> = pools.iter().filter_map(role_of).collect();
        let roles = match Self::resolve_roles(&mut view, arns.iter().map(String::as_str)).await? {
            Ok(roles) => roles,
            Err(gaps) => return Ok(Err(failed(check, gaps_message(&gaps)))),
        };
        for pool in &pools {
            let Some(arn) = role_of(pool) else { continue };
            let Some(role) = roles.iter().find(|r| r.arn == arn) else {
                continue;
            };
            let analysis = match Self::analyse(scope, role, role_use, None) {
                Ok(a) => a,
                Err(why) => return Ok(Err(failed(check, format!("{why}.")))),
            };
            let provenance = format!(
                "identity pool data {}; IAM data {}",
                pool.origin, role.origin
            );
            for f in analysis.overly_permissive {
                let draft = Draft {
                    resource: ResourceIdentifier {
                        cognito_identity_pool_id: Some(pool.id.clone()),
                        ..ResourceIdentifier::default()
                    },
                    reason_code: f.reason_code,
                    reason: format!("{} ({provenance}.)", f.reason),
                };
                sink.push_with(draft, Some(role_related(&arn))).await?;
            }
        }
        Ok(Ok((pools.len() as i64, None)))
    }
}
