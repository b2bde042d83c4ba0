//! `palisade iam import`: the AWS CLI's output files, recognised by their shape and
//! checked whole before anything is stored.

use palisade_store::{IamDocument, Scope};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{
    IDENTITY_POOL, IDENTITY_POOL_LIST, LAST_ACCESSED, MANAGED_POLICY, POOL_LIST_KEY, ROLE,
};
use crate::{Engine, EngineError, EngineResult};

/// What an import stored, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IamImportSummary {
    pub roles: u64,
    pub managed_policies: u64,
    pub last_accessed_reports: u64,
    pub identity_pools: u64,
    pub identity_pool_lists: u64,
}

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

/// `%XX` escapes decoded (IAM's API URL-encodes policy documents).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
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
