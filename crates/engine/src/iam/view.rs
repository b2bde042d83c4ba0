//! What a check reads: imported pieces first, the live IAM and Cognito sources for the
//! rest.

use palisade_store::{IamDocument, Scope};
use serde_json::Value;
use time::OffsetDateTime;

use super::{
    IdentityPool, LastAccessed, RoleGap, RolePolicies, IDENTITY_POOL, IDENTITY_POOL_LIST,
    LAST_ACCESSED, MANAGED_POLICY, PAGE, POOL_LIST_KEY, ROLE, YEAR_MS,
};
use crate::{Engine, EngineError, EngineResult};

/// `imported from FILE on DAY`.
fn imported_origin(source: &str, stored_at_ms: i64) -> String {
    format!("imported from {source} on {}", day(stored_at_ms))
}

fn day(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn parse_body(piece: &IamDocument) -> EngineResult<Value> {
    serde_json::from_str(&piece.body).map_err(|e| {
        EngineError::Internal(format!("stored IAM data {} {}: {e}", piece.kind, piece.key))
    })
}

/// The IAM and Cognito data one check reads: what was imported, and for what was not,
/// the live sources when configured, each asked at most once per check. Imported data
/// wins for what it covers (a role, a managed policy, a role's report, the pool list, a
/// pool's roles), so an unreachable live source fails no check whose data is all
/// imported.
pub(crate) struct IamView<'e> {
    engine: &'e Engine,
    scope: &'e Scope,
    now_ms: i64,
    live_iam: Option<palisade_iam_source::IamReader>,
    live_cognito: Option<palisade_iam_source::CognitoReader>,
    details: Option<Result<palisade_iam_source::AuthorizationDetails, String>>,
}

impl<'e> IamView<'e> {
    pub(crate) fn new(engine: &'e Engine, scope: &'e Scope) -> IamView<'e> {
        let settings = engine.audit_settings();
        IamView {
            engine,
            scope,
            now_ms: engine.now_ms(),
            live_iam: settings
                .iam
                .as_ref()
                .map(palisade_iam_source::IamReader::new),
            live_cognito: settings
                .cognito
                .as_ref()
                .map(|c| palisade_iam_source::CognitoReader::new(c, &scope.region)),
            details: None,
        }
    }

    fn live_origin(&self, what: &str) -> String {
        format!("read from {what} on {}", day(self.now_ms))
    }

    /// GetAccountAuthorizationDetails, once.
    async fn details(
        &mut self,
    ) -> Option<&Result<palisade_iam_source::AuthorizationDetails, String>> {
        let reader = self.live_iam.as_ref()?;
        if self.details.is_none() {
            let got = reader
                .authorization_details()
                .await
                .map_err(|e| e.to_string());
            self.details = Some(got);
        }
        self.details.as_ref()
    }

    async fn managed_policy(&mut self, arn: &str) -> EngineResult<Result<String, RoleGap>> {
        let store = self.engine.store();
        if let Some(policy) = store
            .get_iam_document(self.scope, MANAGED_POLICY, arn)
            .await?
        {
            let body = parse_body(&policy)?;
            return Ok(Ok(body["Document"].as_str().unwrap_or("{}").to_owned()));
        }
        Ok(match self.details().await {
            None => Err(RoleGap::MissingManagedPolicy(arn.to_owned())),
            Some(Err(e)) => Err(RoleGap::SourceFailed(e.clone())),
            Some(Ok(d)) => d
                .managed_policies
                .get(arn)
                .cloned()
                .ok_or_else(|| RoleGap::MissingManagedPolicy(arn.to_owned())),
        })
    }

    /// The role's policy documents, or why they cannot be had.
    pub(crate) async fn role(&mut self, arn: &str) -> EngineResult<Result<RolePolicies, RoleGap>> {
        let imported = self
            .engine
            .store()
            .get_iam_document(self.scope, ROLE, arn)
            .await?;
        let (mut documents, attached, origin) = match imported {
            Some(role) => {
                let body = parse_body(&role)?;
                let strings = |key: &str, inner: Option<&str>| -> Vec<String> {
                    body[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| match inner {
                            Some(k) => v[k].as_str().map(str::to_owned),
                            None => v.as_str().map(str::to_owned),
                        })
                        .collect()
                };
                (
                    strings("RolePolicyList", Some("PolicyDocument")),
                    strings("AttachedManagedPolicies", None),
                    imported_origin(&role.source, role.stored_at_ms),
                )
            }
            None => {
                let origin = self.live_origin("IAM");
                match self.details().await {
                    None => return Ok(Err(RoleGap::Unknown)),
                    Some(Err(e)) => return Ok(Err(RoleGap::SourceFailed(e.clone()))),
                    Some(Ok(d)) => match d.roles.iter().find(|r| r.arn == arn) {
                        None => return Ok(Err(RoleGap::Unknown)),
                        Some(r) => (
                            r.inline_documents.clone(),
                            r.attached_policy_arns.clone(),
                            origin,
                        ),
                    },
                }
            }
        };
        for policy in attached {
            match self.managed_policy(&policy).await? {
                Ok(doc) => documents.push(doc),
                Err(gap) => return Ok(Err(gap)),
            }
        }
        Ok(Ok(RolePolicies {
            arn: arn.to_owned(),
            documents,
            origin,
        }))
    }

    /// The role's services used in the year before `as_of_ms`: imported, else read live;
    /// `Ok(None)` without either, `Err` when the live source failed.
    pub(crate) async fn last_accessed(
        &mut self,
        role_arn: &str,
        as_of_ms: i64,
    ) -> EngineResult<Result<Option<LastAccessed>, String>> {
        let in_year = |at: Option<i64>| at.is_some_and(|at| at > as_of_ms - YEAR_MS);
        if let Some(report) = self
            .engine
            .store()
            .get_iam_document(self.scope, LAST_ACCESSED, role_arn)
            .await?
        {
            let body = parse_body(&report)?;
            let used = body["ServicesLastAccessed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| in_year(s["LastAuthenticatedMs"].as_i64()))
                .filter_map(|s| s["ServiceNamespace"].as_str().map(str::to_ascii_lowercase))
                .collect();
            return Ok(Ok(Some(LastAccessed {
                used,
                origin: imported_origin(&report.source, report.stored_at_ms),
            })));
        }
        let Some(reader) = &self.live_iam else {
            return Ok(Ok(None));
        };
        Ok(match reader.services_last_accessed(role_arn).await {
            Ok(services) => Ok(Some(LastAccessed {
                used: services
                    .into_iter()
                    .filter(|(_, at)| in_year(*at))
                    .map(|(ns, _)| ns)
                    .collect(),
                origin: self.live_origin("IAM"),
            })),
            Err(e) => Err(e.to_string()),
        })
    }

    /// The account's identity pools with their roles. `Ok(None)`: nothing says which
    /// pools there are. The list comes from the import when anything about pools was
    /// imported, else from Cognito; a pool's roles from the import, else from Cognito.
    /// `Err`: the pools that could not be had, with why.
    pub(crate) async fn pools(
        &mut self,
    ) -> EngineResult<Result<Option<Vec<IdentityPool>>, Vec<String>>> {
        let store = self.engine.store();
        let mut imported: Vec<IdentityPool> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_iam_documents(self.scope, IDENTITY_POOL, after.as_deref(), PAGE)
                .await?;
            let n = page.len();
            for p in page {
                let body = parse_body(&p)?;
                let role = |k: &str| body["Roles"][k].as_str().map(str::to_owned);
                after = Some(p.key.clone());
                imported.push(IdentityPool {
                    authenticated: role("authenticated"),
                    unauthenticated: role("unauthenticated"),
                    origin: imported_origin(&p.source, p.stored_at_ms),
                    id: p.key,
                });
            }
            if n < PAGE {
                break;
            }
        }
        let list = match store
            .get_iam_document(self.scope, IDENTITY_POOL_LIST, POOL_LIST_KEY)
            .await?
        {
            Some(list) => Some(
                parse_body(&list)?["IdentityPoolIds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<String>>(),
            ),
            None => None,
        };
        let ids: Vec<String> = match (list, &self.live_cognito) {
            (Some(ids), _) => ids,
            (None, _) if !imported.is_empty() => Vec::new(),
            (None, None) => return Ok(Ok(None)),
            (None, Some(reader)) => match reader.identity_pools().await {
                Ok(ids) => ids,
                Err(e) => return Ok(Err(vec![e.to_string()])),
            },
        };
        let mut problems = Vec::new();
        for id in ids {
            if imported.iter().any(|p| p.id == id) {
                continue;
            }
            match &self.live_cognito {
                None => problems.push(format!(
                    "{id}: its roles were not imported (aws cognito-identity \
                     get-identity-pool-roles)"
                )),
                Some(reader) => match reader.identity_pool_roles(&id).await {
                    Ok((authenticated, unauthenticated)) => imported.push(IdentityPool {
                        id,
                        authenticated,
                        unauthenticated,
                        origin: self.live_origin("Amazon Cognito"),
                    }),
                    Err(e) => problems.push(format!("{id}: {e}")),
                },
            }
        }
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        imported.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Ok(Some(imported)))
    }
}
