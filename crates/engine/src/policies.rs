//! IoT policies and their versions: CreatePolicy, GetPolicy, ListPolicies, DeletePolicy,
//! CreatePolicyVersion, GetPolicyVersion, ListPolicyVersions, SetDefaultPolicyVersion,
//! DeletePolicyVersion; the policy ARN check tagging needs; and the marker-based paging
//! shared with role aliases.

use palisade_model::{
    CreatePolicyRequest, CreatePolicyResponse, CreatePolicyVersionRequest,
    CreatePolicyVersionResponse, DeletePolicyRequest, DeletePolicyVersionRequest, GetPolicyRequest,
    GetPolicyResponse, GetPolicyVersionRequest, GetPolicyVersionResponse, ListPoliciesRequest,
    ListPoliciesResponse, ListPolicyVersionsRequest, ListPolicyVersionsResponse, Policy,
    PolicyVersion, SetDefaultPolicyVersionRequest, Timestamp,
};
use palisade_store::{
    NewPolicy, NewPolicyVersion, PolicyRecord, PolicyRefusal, PolicyVersionRecord, StoreError,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::required;
use crate::tagging::checked_tags;
use crate::{paging, Engine, EngineError, EngineResult, Scope};

const LISTING: &str = "policies";
/// ListPolicies' page size when the request names none. AWS does not document its
/// default; the model's maximum keeps round trips few.
const DEFAULT_PAGE: usize = 250;
/// AWS keeps at most five versions of a policy.
pub(crate) const MAX_POLICY_VERSIONS: usize = 5;
/// AWS's documented bound on a policy document, whitespace not counted.
const MAX_DOCUMENT_CHARS: usize = 2048;
/// The only policy language version AWS IoT accepts.
const POLICY_LANGUAGE_VERSION: &str = "2012-10-17";

pub(crate) fn policy_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:policy/{name}",
        scope.region, scope.account_id
    )
}

fn policy_not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!("The policy {name} does not exist."))
}

fn version_not_found(name: &str, version: &str) -> EngineError {
    EngineError::NotFound(format!("The policy {name} has no version {version}."))
}

fn unexpected(refusal: PolicyRefusal) -> EngineError {
    EngineError::Internal(format!("unexpected policy refusal {refusal:?}"))
}

/// A version id from the wire. The model guarantees digits; a value that is not the
/// canonical form of an id we could have issued ("01", or beyond i64) names no version,
/// so it becomes an id no version has and the store reports it missing.
fn version_id(wire: &str) -> i64 {
    match wire.parse::<i64>() {
        Ok(id) if id.to_string() == wire => id,
        _ => -1,
    }
}

/// Checks that a policy document is one AWS IoT would accept: JSON, an object with
/// `Version` "2012-10-17" and a `Statement` that is an object or a non-empty array of
/// objects, each with `Effect` Allow or Deny and an `Action` and a `Resource` that are a
/// string or a non-empty array of strings. The document is stored as given; this only
/// reads it.
pub(crate) fn check_document(document: &str) -> EngineResult<()> {
    document_problem(document).map_or(Ok(()), |why| {
        Err(EngineError::MalformedPolicy(format!(
            "The policy document is malformed: {why}"
        )))
    })
}

fn document_problem(document: &str) -> Option<String> {
    let chars = document.chars().filter(|c| !c.is_whitespace()).count();
    if chars == 0 {
        return Some("it is empty.".into());
    }
    if chars > MAX_DOCUMENT_CHARS {
        return Some(format!(
            "it has {chars} characters besides whitespace; at most {MAX_DOCUMENT_CHARS} are allowed."
        ));
    }
    let value: Value = match serde_json::from_str(document) {
        Ok(v) => v,
        Err(e) => return Some(format!("it is not valid JSON ({e}).")),
    };
    let Value::Object(top) = value else {
        return Some("it must be a JSON object.".into());
    };
    if let Some(key) = top
        .keys()
        .find(|k| !matches!(k.as_str(), "Version" | "Statement" | "Id"))
    {
        return Some(format!(
            "unknown element '{key}'; a policy has Version, Statement and optionally Id."
        ));
    }
    match top.get("Version") {
        Some(Value::String(v)) if v == POLICY_LANGUAGE_VERSION => {}
        Some(other) => {
            return Some(format!(
                "Version is {other}; AWS IoT policies use \"{POLICY_LANGUAGE_VERSION}\"."
            ))
        }
        None => {
            return Some(format!(
                "Version is missing; AWS IoT policies use \"{POLICY_LANGUAGE_VERSION}\"."
            ))
        }
    }
    if let Some(id) = top.get("Id").filter(|id| !id.is_string()) {
        return Some(format!("Id must be a string, not {id}."));
    }
    match top.get("Statement") {
        None => Some("Statement is missing.".into()),
        Some(Value::Object(statement)) => statement_problem(statement, "Statement"),
        Some(Value::Array(statements)) if statements.is_empty() => {
            Some("Statement must hold at least one statement.".into())
        }
        Some(Value::Array(statements)) => {
            statements.iter().enumerate().find_map(|(i, s)| match s {
                Value::Object(statement) => {
                    statement_problem(statement, &format!("Statement[{i}]"))
                }
                _ => Some(format!("Statement[{i}] must be an object.")),
            })
        }
        Some(_) => Some("Statement must be an object or an array of objects.".into()),
    }
}

fn statement_problem(statement: &Map<String, Value>, at: &str) -> Option<String> {
    if let Some(key) = statement.keys().find(|k| {
        !matches!(
            k.as_str(),
            "Sid" | "Effect" | "Action" | "Resource" | "Condition"
        )
    }) {
        return Some(format!(
            "{at} has the unknown element '{key}'; a statement has Effect, Action, Resource and optionally Sid and Condition."
        ));
    }
    match statement.get("Effect") {
        Some(Value::String(e)) if e == "Allow" || e == "Deny" => {}
        Some(other) => {
            return Some(format!(
                "{at}.Effect is {other}; use \"Allow\" or \"Deny\"."
            ))
        }
        None => return Some(format!("{at}.Effect is missing.")),
    }
    for element in ["Action", "Resource"] {
        let ok = match statement.get(element) {
            None => return Some(format!("{at}.{element} is missing.")),
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(items)) => {
                !items.is_empty()
                    && items
                        .iter()
                        .all(|i| i.as_str().is_some_and(|s| !s.is_empty()))
            }
            Some(_) => false,
        };
        if !ok {
            return Some(format!(
                "{at}.{element} must be a non-empty string or a non-empty array of non-empty strings."
            ));
        }
    }
    if let Some(sid) = statement.get("Sid").filter(|s| !s.is_string()) {
        return Some(format!("{at}.Sid must be a string, not {sid}."));
    }
    if let Some(condition) = statement.get("Condition").filter(|c| !c.is_object()) {
        return Some(format!(
            "{at}.Condition must be an object, not {condition}."
        ));
    }
    None
}

impl Engine {
    /// A new opaque generation id, shaped like AWS's (64 hex digits).
    pub(crate) fn generation_id(&self) -> String {
        Sha256::digest(self.inner.ids.uuid().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `arn` names an existing policy of the caller (for tagging).
    pub(crate) async fn policy_arn_exists(
        &self,
        scope: &Scope,
        id: &str,
        arn: &str,
    ) -> EngineResult<bool> {
        Ok(self
            .store()
            .get_policy(scope, id)
            .await?
            .is_some_and(|p| p.arn == arn))
    }

    pub async fn create_policy(
        &self,
        scope: &Scope,
        input: CreatePolicyRequest,
    ) -> EngineResult<CreatePolicyResponse> {
        let name = required(input.policy_name, "policyName")?;
        let document = required(input.policy_document, "policyDocument")?;
        check_document(&document)?;
        let tags = checked_tags(
            input.tags.unwrap_or_default(),
            self.inner.limits.tags_per_resource,
        )?;
        let policy = NewPolicy {
            arn: policy_arn(scope, &name),
            name,
            document,
            generation_id: self.generation_id(),
            created_at_ms: self.now_ms(),
        };
        match self.store().create_policy(scope, &policy, &tags).await {
            Ok(()) => Ok(CreatePolicyResponse {
                policy_arn: Some(policy.arn),
                policy_document: Some(policy.document),
                policy_name: Some(policy.name),
                policy_version_id: Some("1".into()),
            }),
            Err(StoreError::AlreadyExists) => Err(EngineError::AlreadyExists {
                message: format!(
                    "Policy cannot be created - name already exists (name={})",
                    policy.name
                ),
                resource_id: Some(policy.name),
                resource_arn: Some(policy.arn),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_policy(
        &self,
        scope: &Scope,
        input: GetPolicyRequest,
    ) -> EngineResult<GetPolicyResponse> {
        let name = required(input.policy_name, "policyName")?;
        let (policy, version) = self
            .store()
            .get_policy_version(scope, &name, None)
            .await?
            .ok_or_else(|| policy_not_found(&name))?;
        let version = version.ok_or_else(|| {
            EngineError::Internal(format!("policy {name} has no default version"))
        })?;
        Ok(GetPolicyResponse {
            creation_date: Some(Timestamp::from_millis(policy.created_at_ms)),
            default_version_id: Some(policy.default_version_id.to_string()),
            generation_id: Some(policy.generation_id),
            last_modified_date: Some(Timestamp::from_millis(policy.updated_at_ms)),
            policy_arn: Some(policy.arn),
            policy_document: Some(version.document),
            policy_name: Some(policy.name),
        })
    }

    pub async fn list_policies(
        &self,
        scope: &Scope,
        input: ListPoliciesRequest,
    ) -> EngineResult<ListPoliciesResponse> {
        let descending = !input.ascending_order.unwrap_or(true);
        let after = self.open_marker(scope, LISTING, descending, input.marker.as_deref())?;
        let size = paging::page_size(input.page_size, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_policies(scope, after.as_deref(), descending, n)
        })
        .await?;
        let next_marker =
            page.next(|last| self.issue_marker(scope, LISTING, descending, &last.name));
        let records = page.items;
        Ok(ListPoliciesResponse {
            next_marker,
            policies: Some(
                records
                    .into_iter()
                    .map(|p| Policy {
                        policy_arn: Some(p.arn),
                        policy_name: Some(p.name),
                    })
                    .collect(),
            ),
        })
    }

    /// DeletePolicy; the model has no output.
    pub async fn delete_policy(
        &self,
        scope: &Scope,
        input: DeletePolicyRequest,
    ) -> EngineResult<()> {
        let name = required(input.policy_name, "policyName")?;
        match self.store().delete_policy(scope, &name).await? {
            Ok(()) => Ok(()),
            Err(PolicyRefusal::NoSuchPolicy) => Err(policy_not_found(&name)),
            Err(PolicyRefusal::OtherVersions) => Err(EngineError::DeleteConflict(format!(
                "The policy {name} cannot be deleted because it has versions besides the default; delete them with DeletePolicyVersion first."
            ))),
            Err(PolicyRefusal::Attached) => Err(EngineError::DeleteConflict(format!(
                "The policy {name} cannot be deleted because it is attached to one or more targets; detach it first."
            ))),
            Err(other) => Err(unexpected(other)),
        }
    }

    /// Adds a version to a policy, optionally making it the default, in one store
    /// transaction. `document` must already be checked. Shared with the
    /// REPLACE_DEFAULT_POLICY_VERSION mitigation, which needs exactly this.
    pub(crate) async fn add_policy_version(
        &self,
        scope: &Scope,
        name: &str,
        document: String,
        set_as_default: bool,
    ) -> EngineResult<(PolicyRecord, PolicyVersionRecord)> {
        let version = NewPolicyVersion {
            document,
            set_as_default,
            generation_id: self.generation_id(),
            created_at_ms: self.now_ms(),
        };
        match self
            .store()
            .create_policy_version(scope, name, &version, MAX_POLICY_VERSIONS)
            .await?
        {
            Ok(created) => Ok(created),
            Err(PolicyRefusal::NoSuchPolicy) => Err(policy_not_found(name)),
            Err(PolicyRefusal::TooManyVersions { limit }) => {
                Err(EngineError::VersionsLimitExceeded(format!(
                    "The policy {name} already has the maximum of {limit} versions; delete a version that is not the default before creating another."
                )))
            }
            Err(other) => Err(unexpected(other)),
        }
    }

    pub async fn create_policy_version(
        &self,
        scope: &Scope,
        input: CreatePolicyVersionRequest,
    ) -> EngineResult<CreatePolicyVersionResponse> {
        let name = required(input.policy_name, "policyName")?;
        let document = required(input.policy_document, "policyDocument")?;
        check_document(&document)?;
        let (policy, version) = self
            .add_policy_version(
                scope,
                &name,
                document,
                input.set_as_default.unwrap_or(false),
            )
            .await?;
        Ok(CreatePolicyVersionResponse {
            is_default_version: Some(policy.default_version_id == version.version_id),
            policy_arn: Some(policy.arn),
            policy_document: Some(version.document),
            policy_version_id: Some(version.version_id.to_string()),
        })
    }

    pub async fn get_policy_version(
        &self,
        scope: &Scope,
        input: GetPolicyVersionRequest,
    ) -> EngineResult<GetPolicyVersionResponse> {
        let name = required(input.policy_name, "policyName")?;
        let wire_id = required(input.policy_version_id, "policyVersionId")?;
        let (policy, version) = self
            .store()
            .get_policy_version(scope, &name, Some(version_id(&wire_id)))
            .await?
            .ok_or_else(|| policy_not_found(&name))?;
        let version = version.ok_or_else(|| version_not_found(&name, &wire_id))?;
        Ok(GetPolicyVersionResponse {
            creation_date: Some(Timestamp::from_millis(version.created_at_ms)),
            generation_id: Some(policy.generation_id),
            is_default_version: Some(policy.default_version_id == version.version_id),
            // Versions never change once created.
            last_modified_date: Some(Timestamp::from_millis(version.created_at_ms)),
            policy_arn: Some(policy.arn),
            policy_document: Some(version.document),
            policy_name: Some(policy.name),
            policy_version_id: Some(version.version_id.to_string()),
        })
    }

    pub async fn list_policy_versions(
        &self,
        scope: &Scope,
        input: ListPolicyVersionsRequest,
    ) -> EngineResult<ListPolicyVersionsResponse> {
        let name = required(input.policy_name, "policyName")?;
        let (policy, versions) = self
            .store()
            .list_policy_versions(scope, &name)
            .await?
            .ok_or_else(|| policy_not_found(&name))?;
        Ok(ListPolicyVersionsResponse {
            // Newest first, as AWS lists them.
            policy_versions: Some(
                versions
                    .into_iter()
                    .rev()
                    .map(|v| PolicyVersion {
                        create_date: Some(Timestamp::from_millis(v.created_at_ms)),
                        is_default_version: Some(v.version_id == policy.default_version_id),
                        version_id: Some(v.version_id.to_string()),
                    })
                    .collect(),
            ),
        })
    }

    /// SetDefaultPolicyVersion; the model has no output.
    pub async fn set_default_policy_version(
        &self,
        scope: &Scope,
        input: SetDefaultPolicyVersionRequest,
    ) -> EngineResult<()> {
        let name = required(input.policy_name, "policyName")?;
        let wire_id = required(input.policy_version_id, "policyVersionId")?;
        let outcome = self
            .store()
            .set_default_policy_version(
                scope,
                &name,
                version_id(&wire_id),
                &self.generation_id(),
                self.now_ms(),
            )
            .await?;
        match outcome {
            Ok(_) => Ok(()),
            Err(PolicyRefusal::NoSuchPolicy) => Err(policy_not_found(&name)),
            Err(PolicyRefusal::NoSuchVersion) => Err(version_not_found(&name, &wire_id)),
            Err(other) => Err(unexpected(other)),
        }
    }

    /// DeletePolicyVersion; the model has no output.
    pub async fn delete_policy_version(
        &self,
        scope: &Scope,
        input: DeletePolicyVersionRequest,
    ) -> EngineResult<()> {
        let name = required(input.policy_name, "policyName")?;
        let wire_id = required(input.policy_version_id, "policyVersionId")?;
        let outcome = self
            .store()
            .delete_policy_version(scope, &name, version_id(&wire_id), self.now_ms())
            .await?;
        match outcome {
            Ok(()) => Ok(()),
            Err(PolicyRefusal::NoSuchPolicy) => Err(policy_not_found(&name)),
            Err(PolicyRefusal::NoSuchVersion) => Err(version_not_found(&name, &wire_id)),
            Err(PolicyRefusal::DefaultVersion) => Err(EngineError::DeleteConflict(format!(
                "Version {wire_id} is the default version of the policy {name} and cannot be deleted on its own; make another version the default first, or delete the policy."
            ))),
            Err(other) => Err(unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(doc: &str) -> String {
        document_problem(doc).unwrap_or_else(|| panic!("{doc} should be refused"))
    }

    #[test]
    fn accepts_documents_aws_iot_accepts() {
        for doc in [
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["iot:Connect","iot:Publish"],"Resource":["arn:aws:iot:us-east-1:1:client/a"]}]}"#,
            "{\n  \"Version\": \"2012-10-17\",\n  \"Id\": \"x\",\n  \"Statement\": [\n    {\"Sid\": \"s\", \"Effect\": \"Allow\", \"Action\": \"iot:Connect\", \"Resource\": \"*\", \"Condition\": {\"Bool\": {\"iot:Connection.Thing.IsAttached\": \"true\"}}}\n  ]\n}",
        ] {
            assert_eq!(document_problem(doc), None, "{doc}");
        }
    }

    #[test]
    fn refuses_malformed_documents_saying_why() {
        let cases = [
            ("", "empty"),
            ("   \n\t", "empty"),
            ("{", "not valid JSON"),
            ("[]", "JSON object"),
            (r#"{"Statement":[]}"#, "Version is missing"),
            (r#"{"Version":"2008-10-17","Statement":{}}"#, "2012-10-17"),
            (r#"{"Version":"2012-10-17"}"#, "Statement is missing"),
            (r#"{"Version":"2012-10-17","Statement":[]}"#, "at least one"),
            (
                r#"{"Version":"2012-10-17","Statement":"x"}"#,
                "object or an array",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[1]}"#,
                "Statement[0] must be an object",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Action":"iot:*","Resource":"*"}}"#,
                "Effect is missing",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"allow","Action":"iot:*","Resource":"*"}}"#,
                "Allow",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"*"}}"#,
                "Action is missing",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
                "Action must be",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"},{"Effect":"Allow","Action":"iot:*","Resource":[1]}]}"#,
                "Statement[1].Resource must be",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*","Principal":"*"}}"#,
                "'Principal'",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":{},"Extra":1}"#,
                "'Extra'",
            ),
        ];
        for (doc, needle) in cases {
            let why = problem(doc);
            assert!(why.contains(needle), "{doc}: {why:?} lacks {needle:?}");
        }
    }

    #[test]
    fn length_limit_ignores_whitespace() {
        let statement = r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"}"#;
        let wrap = |resource: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"iot:*","Resource":"{resource}"}}}}"#
            )
        };
        let base = wrap("").chars().count();
        let fits = wrap(&"a".repeat(MAX_DOCUMENT_CHARS - base));
        assert_eq!(fits.chars().count(), MAX_DOCUMENT_CHARS);
        assert_eq!(document_problem(&fits), None);
        let padded = fits.replace(',', ",\n    ").replace('{', "{ ");
        assert_eq!(document_problem(&padded), None);
        let over = wrap(&"a".repeat(MAX_DOCUMENT_CHARS - base + 1));
        assert!(problem(&over).contains("2048"));
        assert_eq!(
            document_problem(&format!(
                r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#
            )),
            None
        );
    }

    #[test]
    fn version_ids_must_be_canonical() {
        assert_eq!(version_id("1"), 1);
        assert_eq!(version_id("42"), 42);
        assert_eq!(version_id("01"), -1);
        assert_eq!(version_id("99999999999999999999"), -1);
    }
}
