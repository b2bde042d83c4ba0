//! IAM and Amazon Cognito data for the role alias and Cognito audit checks (issue 16),
//! imported from the JSON the AWS CLI prints:
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
//! pool), nothing else. The checks read the pieces back with [`Engine::iam_role`] and
//! friends.

use std::collections::BTreeSet;

use palisade_store::{IamDocument, Scope};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::{Engine, EngineError, EngineResult};

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
const PAGE: usize = 500;

/// What an import stored, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IamImportSummary {
    pub roles: u64,
    pub managed_policies: u64,
    pub last_accessed_reports: u64,
    pub identity_pools: u64,
    pub identity_pool_lists: u64,
}

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

const YEAR_MS: i64 = 365 * 24 * 60 * 60 * 1000;

fn invalid(file: &str, what: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidRequest(format!("{file}: {what}"))
}

/// A policy document as the CLI prints it (an object), or as the API sends it (a
/// string, URL-encoded JSON): its JSON text, checked to be an object.
fn document_text(file: &str, at: &str, value: &Value) -> EngineResult<String> {
    let parsed = match value {
        Value::Object(_) => value.clone(),
        Value::String(s) => {
            let decoded = percent_decode(s);
            serde_json::from_str::<Value>(&decoded)
                .map_err(|e| invalid(file, format!("{at} is not a JSON policy document: {e}")))?
        }
        _ => return Err(invalid(file, format!("{at} is not a policy document"))),
    };
    if !parsed.is_object() {
        return Err(invalid(file, format!("{at} is not a JSON object")));
    }
    Ok(parsed.to_string())
}

/// `%XX` escapes decoded (IAM's API URL-encodes policy documents; `+` is left alone, as
/// IAM encodes a space as `%20`).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn string<'v>(
    file: &str,
    object: &'v Map<String, Value>,
    key: &str,
    at: &str,
) -> EngineResult<&'v str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(file, format!("{at} has no {key}")))
}

fn array<'v>(
    file: &str,
    object: &'v Map<String, Value>,
    key: &str,
    at: &str,
) -> EngineResult<&'v [Value]> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(file, format!("{at}: {key} is not a list"))),
    }
}

fn objects<'v>(
    file: &str,
    items: &'v [Value],
    at: &str,
) -> impl Iterator<Item = EngineResult<(usize, &'v Map<String, Value>)>> + 'v {
    let (file, at) = (file.to_owned(), at.to_owned());
    items.iter().enumerate().map(move |(i, v)| {
        v.as_object()
            .map(|o| (i, o))
            .ok_or_else(|| invalid(&file, format!("{at}[{i}] is not an object")))
    })
}

/// The pieces of one file, recognised by its shape.
fn pieces(
    file: &str,
    text: &str,
    role_arn: Option<&str>,
    now_ms: i64,
) -> EngineResult<Vec<IamDocument>> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| invalid(file, format!("not JSON: {e}")))?;
    let Some(top) = value.as_object() else {
        return Err(invalid(file, "not a JSON object"));
    };
    let piece = |kind: &str, key: &str, body: String| IamDocument {
        kind: kind.to_owned(),
        key: key.to_owned(),
        body,
        source: file.to_owned(),
        stored_at_ms: now_ms,
    };
    let mut out = Vec::new();
    if top.contains_key("RoleDetailList") || top.contains_key("Policies") {
        // get-account-authorization-details.
        for item in objects(
            file,
            array(file, top, "RoleDetailList", "the file")?,
            "RoleDetailList",
        ) {
            let (i, role) = item?;
            let at = format!("RoleDetailList[{i}]");
            let arn = string(file, role, "Arn", &at)?;
            let mut inline = Vec::new();
            for p in objects(
                file,
                array(file, role, "RolePolicyList", &at)?,
                &format!("{at}.RolePolicyList"),
            ) {
                let (j, p) = p?;
                let pat = format!("{at}.RolePolicyList[{j}]");
                let name = string(file, p, "PolicyName", &pat)?;
                let doc = p
                    .get("PolicyDocument")
                    .ok_or_else(|| invalid(file, format!("{pat} has no PolicyDocument")))?;
                let text = document_text(file, &format!("{pat}.PolicyDocument"), doc)?;
                inline.push(serde_json::json!({"PolicyName": name, "PolicyDocument": text}));
            }
            let mut attached = Vec::new();
            for p in objects(
                file,
                array(file, role, "AttachedManagedPolicies", &at)?,
                &format!("{at}.AttachedManagedPolicies"),
            ) {
                let (j, p) = p?;
                attached.push(Value::from(string(
                    file,
                    p,
                    "PolicyArn",
                    &format!("{at}.AttachedManagedPolicies[{j}]"),
                )?));
            }
            let body = serde_json::json!({
                "Arn": arn,
                "RoleName": role.get("RoleName").cloned().unwrap_or(Value::Null),
                "RolePolicyList": inline,
                "AttachedManagedPolicies": attached,
            });
            out.push(piece(ROLE, arn, body.to_string()));
        }
        for item in objects(file, array(file, top, "Policies", "the file")?, "Policies") {
            let (i, policy) = item?;
            let at = format!("Policies[{i}]");
            let arn = string(file, policy, "Arn", &at)?;
            let default = policy.get("DefaultVersionId").and_then(Value::as_str);
            let versions = array(file, policy, "PolicyVersionList", &at)?;
            let mut document = None;
            for v in objects(file, versions, &format!("{at}.PolicyVersionList")) {
                let (j, v) = v?;
                let is_default = v.get("IsDefaultVersion").and_then(Value::as_bool) == Some(true)
                    || (default.is_some() && v.get("VersionId").and_then(Value::as_str) == default);
                if is_default {
                    let doc = v.get("Document").ok_or_else(|| {
                        invalid(file, format!("{at}.PolicyVersionList[{j}] has no Document"))
                    })?;
                    document = Some(document_text(
                        file,
                        &format!("{at}.PolicyVersionList[{j}].Document"),
                        doc,
                    )?);
                }
            }
            let Some(document) = document else {
                return Err(invalid(
                    file,
                    format!("{at} ({arn}) has no default version in PolicyVersionList"),
                ));
            };
            let body = serde_json::json!({"Arn": arn, "Document": document});
            out.push(piece(MANAGED_POLICY, arn, body.to_string()));
        }
        return Ok(out);
    }
    if top.contains_key("ServicesLastAccessed") {
        // get-service-last-accessed-details (SERVICE_LEVEL).
        let Some(role_arn) = role_arn else {
            return Err(invalid(
                file,
                "a service last-accessed report does not say which role it is about: give --role-arn",
            ));
        };
        if !role_arn.starts_with("arn:") || !role_arn.contains(":role/") {
            return Err(invalid(
                file,
                format!("--role-arn {role_arn} is not an IAM role ARN"),
            ));
        }
        match top.get("JobStatus").and_then(Value::as_str) {
            Some("COMPLETED") => {}
            other => {
                return Err(invalid(
                    file,
                    format!(
                        "the report's JobStatus is {}, not COMPLETED",
                        other.unwrap_or("missing")
                    ),
                ))
            }
        }
        let mut services = Vec::new();
        for item in objects(
            file,
            array(file, top, "ServicesLastAccessed", "the file")?,
            "ServicesLastAccessed",
        ) {
            let (i, s) = item?;
            let at = format!("ServicesLastAccessed[{i}]");
            let namespace = string(file, s, "ServiceNamespace", &at)?;
            let last = match s.get("LastAuthenticated") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => Some(
                    OffsetDateTime::parse(t, &Rfc3339)
                        .map_err(|e| invalid(file, format!("{at}.LastAuthenticated {t:?}: {e}")))?
                        .unix_timestamp()
                        * 1000,
                ),
                Some(Value::Number(n)) => Some(
                    n.as_f64()
                        .map(|secs| (secs * 1000.0) as i64)
                        .ok_or_else(|| {
                            invalid(file, format!("{at}.LastAuthenticated is not a time"))
                        })?,
                ),
                Some(_) => {
                    return Err(invalid(
                        file,
                        format!("{at}.LastAuthenticated is not a time"),
                    ))
                }
            };
            services.push(
                serde_json::json!({"ServiceNamespace": namespace, "LastAuthenticatedMs": last}),
            );
        }
        let body = serde_json::json!({"ServicesLastAccessed": services});
        out.push(piece(LAST_ACCESSED, role_arn, body.to_string()));
        return Ok(out);
    }
    if top.contains_key("IdentityPools") {
        // list-identity-pools.
        let mut ids = Vec::new();
        for item in objects(
            file,
            array(file, top, "IdentityPools", "the file")?,
            "IdentityPools",
        ) {
            let (i, pool) = item?;
            ids.push(Value::from(string(
                file,
                pool,
                "IdentityPoolId",
                &format!("IdentityPools[{i}]"),
            )?));
        }
        let body = serde_json::json!({"IdentityPoolIds": ids});
        out.push(piece(IDENTITY_POOL_LIST, POOL_LIST_KEY, body.to_string()));
        return Ok(out);
    }
    if top.contains_key("IdentityPoolId") {
        // get-identity-pool-roles.
        let id = string(file, top, "IdentityPoolId", "the file")?;
        let roles = match top.get("Roles") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(r)) => r.clone(),
            Some(_) => return Err(invalid(file, "Roles is not an object")),
        };
        let mut kept = Map::new();
        for key in ["authenticated", "unauthenticated"] {
            match roles.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(arn)) if arn.starts_with("arn:") => {
                    kept.insert(key.to_owned(), Value::from(arn.as_str()));
                }
                Some(_) => return Err(invalid(file, format!("Roles.{key} is not a role ARN"))),
            }
        }
        let body = serde_json::json!({"IdentityPoolId": id, "Roles": kept});
        out.push(piece(IDENTITY_POOL, id, body.to_string()));
        return Ok(out);
    }
    Err(invalid(
        file,
        "not the output of `aws iam get-account-authorization-details`, `aws iam \
         get-service-last-accessed-details` or `aws cognito-identity get-identity-pool-roles`",
    ))
}

impl Engine {
    /// Imports AWS CLI output files (name, text) into the scope. Every file is checked
    /// before anything is stored: one malformed file refuses the whole import, naming the
    /// file and the problem.
    pub async fn import_iam(
        &self,
        scope: &Scope,
        files: &[(String, String)],
        role_arn: Option<&str>,
    ) -> EngineResult<IamImportSummary> {
        let now_ms = self.now_ms();
        let mut all = Vec::new();
        for (name, text) in files {
            all.extend(pieces(name, text, role_arn, now_ms)?);
        }
        let mut summary = IamImportSummary::default();
        for p in &all {
            match p.kind.as_str() {
                ROLE => summary.roles += 1,
                MANAGED_POLICY => summary.managed_policies += 1,
                LAST_ACCESSED => summary.last_accessed_reports += 1,
                IDENTITY_POOL => summary.identity_pools += 1,
                _ => summary.identity_pool_lists += 1,
            }
        }
        self.store().put_iam_documents(scope, &all).await?;
        Ok(summary)
    }
}

/// `imported from FILE on DAY`.
fn imported_origin(source: &str, stored_at_ms: i64) -> String {
    format!("imported from {source} on {}", day(stored_at_ms))
}

pub(crate) fn day(ms: i64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%7B%22a%22%3A1%7D"), r#"{"a":1}"#);
        assert_eq!(percent_decode("no escapes"), "no escapes");
        assert_eq!(percent_decode("bad %zz and %4"), "bad %zz and %4");
    }

    #[test]
    fn shapes_are_recognised_and_checked() {
        let details = r#"{"RoleDetailList":[{"RoleName":"r","Arn":"arn:aws:iam::123456789012:role/r",
            "RolePolicyList":[{"PolicyName":"i","PolicyDocument":{"Version":"2012-10-17","Statement":[]}}],
            "AttachedManagedPolicies":[{"PolicyName":"m","PolicyArn":"arn:aws:iam::123456789012:policy/m"}]}],
            "Policies":[{"PolicyName":"m","Arn":"arn:aws:iam::123456789012:policy/m","DefaultVersionId":"v2",
            "PolicyVersionList":[{"Document":"%7B%22Statement%22%3A%5B%5D%7D","VersionId":"v2","IsDefaultVersion":true},
                                 {"Document":{"Statement":[]},"VersionId":"v1","IsDefaultVersion":false}]}]}"#;
        let p = pieces("a.json", details, None, 5).unwrap();
        assert_eq!(
            p.iter()
                .map(|p| (p.kind.as_str(), p.key.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (ROLE, "arn:aws:iam::123456789012:role/r"),
                (MANAGED_POLICY, "arn:aws:iam::123456789012:policy/m")
            ]
        );
        assert!(p[1].body.contains(r#"{\"Statement\":[]}"#), "{}", p[1].body);

        let report = r#"{"JobStatus":"COMPLETED","JobType":"SERVICE_LEVEL","ServicesLastAccessed":[
            {"ServiceName":"AWS IoT","ServiceNamespace":"iot","LastAuthenticated":"2026-11-01T10:00:00+00:00","TotalAuthenticatedEntities":1},
            {"ServiceName":"Amazon DynamoDB","ServiceNamespace":"dynamodb","TotalAuthenticatedEntities":0}],"IsTruncated":false}"#;
        let err = pieces("b.json", report, None, 5).unwrap_err().to_string();
        assert!(
            err.contains("b.json") && err.contains("--role-arn"),
            "{err}"
        );
        let p = pieces(
            "b.json",
            report,
            Some("arn:aws:iam::123456789012:role/r"),
            5,
        )
        .unwrap();
        assert_eq!(p[0].kind, LAST_ACCESSED);

        let list =
            r#"{"IdentityPools":[{"IdentityPoolId":"us-east-1:0f0e","IdentityPoolName":"p"}]}"#;
        let p = pieces("l.json", list, None, 5).unwrap();
        assert_eq!(
            (p[0].kind.as_str(), p[0].key.as_str()),
            (IDENTITY_POOL_LIST, POOL_LIST_KEY)
        );
        let pool = r#"{"IdentityPoolId":"us-east-1:0f0e","Roles":{"authenticated":"arn:aws:iam::123456789012:role/a"}}"#;
        let p = pieces("c.json", pool, None, 5).unwrap();
        assert_eq!(
            (p[0].kind.as_str(), p[0].key.as_str()),
            (IDENTITY_POOL, "us-east-1:0f0e")
        );

        for (bad, why) in [
            ("[]", "not a JSON object"),
            ("{}", "not the output of"),
            (
                r#"{"RoleDetailList":[{"RoleName":"r"}]}"#,
                "RoleDetailList[0] has no Arn",
            ),
            (r#"{"RoleDetailList":{}}"#, "RoleDetailList is not a list"),
            (
                r#"{"Policies":[{"Arn":"arn:x","PolicyVersionList":[]}]}"#,
                "no default version",
            ),
            (
                r#"{"IdentityPoolId":"p","Roles":{"authenticated":5}}"#,
                "Roles.authenticated",
            ),
        ] {
            let err = pieces("d.json", bad, None, 5).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
