//! Audit suppressions: CreateAuditSuppression, DescribeAuditSuppression,
//! UpdateAuditSuppression, DeleteAuditSuppression and ListAuditSuppressions. The audit
//! runner reads a check's suppressions in force when the check runs (evaluate.rs).

use palisade_model::{
    AuditSuppression, CreateAuditSuppressionRequest, CreateAuditSuppressionResponse,
    DeleteAuditSuppressionRequest, DeleteAuditSuppressionResponse, DescribeAuditSuppressionRequest,
    DescribeAuditSuppressionResponse, ListAuditSuppressionsRequest, ListAuditSuppressionsResponse,
    ResourceIdentifier, Timestamp, UpdateAuditSuppressionRequest, UpdateAuditSuppressionResponse,
};
use palisade_store::{
    AuditSuppressionFilter, AuditSuppressionKey, AuditSuppressionRecord, AuditSuppressionUpdate,
    Scope, SuppressionRefusal,
};

use super::catalogue::{self, Check};
use super::findings::resource_key;
use crate::{paging, required, Engine, EngineError, EngineResult};

/// Most suppressions an account holds per region. AWS models LimitExceeded but
/// publishes no quota; this bounds what an audit check loads into memory.
const MAX_SUPPRESSIONS: usize = 10_000;
const SUPPRESSIONS_LISTING: &str = "audit-suppressions";
const DEFAULT_PAGE: usize = 25;

/// The `ResourceIdentifier` member that names a resource of each check resource type.
fn identifier_member(resource_type: &str) -> &'static str {
    match resource_type {
        "DEVICE_CERTIFICATE" => "deviceCertificateId",
        "CA_CERTIFICATE" => "caCertificateId",
        "IOT_POLICY" => "policyVersionIdentifier",
        "ACCOUNT_SETTINGS" => "account",
        "CLIENT_ID" => "clientId",
        "COGNITO_IDENTITY_POOL" => "cognitoIdentityPoolId",
        "ROLE_ALIAS" => "roleAliasArn",
        "ISSUER_CERTIFICATE" => "issuerCertificateIdentifier",
        _ => "unknown",
    }
}

fn non_empty(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

/// The members of `id` that are set (with a non-empty value).
fn set_members(id: &ResourceIdentifier) -> Vec<&'static str> {
    let policy = id
        .policy_version_identifier
        .as_ref()
        .is_some_and(|p| non_empty(&p.policy_name) || non_empty(&p.policy_version_id));
    let issuer = id.issuer_certificate_identifier.as_ref().is_some_and(|i| {
        non_empty(&i.issuer_certificate_serial_number)
            || non_empty(&i.issuer_certificate_subject)
            || non_empty(&i.issuer_id)
    });
    [
        ("account", non_empty(&id.account)),
        ("caCertificateId", non_empty(&id.ca_certificate_id)),
        ("clientId", non_empty(&id.client_id)),
        (
            "cognitoIdentityPoolId",
            non_empty(&id.cognito_identity_pool_id),
        ),
        (
            "deviceCertificateArn",
            non_empty(&id.device_certificate_arn),
        ),
        ("deviceCertificateId", non_empty(&id.device_certificate_id)),
        ("iamRoleArn", non_empty(&id.iam_role_arn)),
        ("issuerCertificateIdentifier", issuer),
        ("policyVersionIdentifier", policy),
        ("roleAliasArn", non_empty(&id.role_alias_arn)),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// The check and the canonical key of the resource a request names, once the
/// identifier is known to name a resource of the kind the check reports.
fn target(
    check_name: Option<String>,
    resource: Option<ResourceIdentifier>,
) -> EngineResult<(&'static Check, ResourceIdentifier, String)> {
    let name = required(check_name, "checkName")?;
    let check = catalogue::find(&name).ok_or_else(|| {
        EngineError::InvalidRequest(format!(
            "Request contains an invalid Audit Check Name: checkName '{name}' is not an audit \
             check name."
        ))
    })?;
    let resource = required(resource, "resourceIdentifier")?;
    let member = identifier_member(check.resource_type);
    let set = set_members(&resource);
    if set != [member] {
        return Err(EngineError::InvalidRequest(format!(
            "resourceIdentifier must carry exactly resourceIdentifier.{member} for {} (a {} \
             check); it carries {}.",
            check.name,
            check.resource_type,
            if set.is_empty() {
                "none".to_owned()
            } else {
                set.join(", ")
            }
        )));
    }
    if let Some(p) = &resource.policy_version_identifier {
        if !non_empty(&p.policy_name) || !non_empty(&p.policy_version_id) {
            return Err(EngineError::InvalidRequest(
                "resourceIdentifier.policyVersionIdentifier needs both policyName and \
                 policyVersionId."
                    .into(),
            ));
        }
    }
    let key = resource_key(&resource);
    Ok((check, resource, key))
}

fn future_expiration(date: Timestamp, now_ms: i64) -> EngineResult<i64> {
    let ms = date.millis();
    if ms <= now_ms {
        return Err(EngineError::InvalidRequest(
            "expirationDate must be in the future.".into(),
        ));
    }
    Ok(ms)
}

/// Create's `(expiration_ms, suppress_indefinitely)`: exactly one of a future
/// expirationDate and suppressIndefinitely=true.
fn new_lifetime(
    expiration: Option<Timestamp>,
    indefinitely: Option<bool>,
    now_ms: i64,
) -> EngineResult<(Option<i64>, bool)> {
    match (expiration, indefinitely.unwrap_or(false)) {
        (Some(_), true) => Err(EngineError::InvalidRequest(
            "Give either expirationDate or suppressIndefinitely=true, not both.".into(),
        )),
        (Some(date), false) => Ok((Some(future_expiration(date, now_ms)?), false)),
        (None, true) => Ok((None, true)),
        (None, false) => Err(EngineError::InvalidRequest(
            "Give either expirationDate or suppressIndefinitely=true.".into(),
        )),
    }
}

/// Update's lifetime change, if any: none when neither member is given.
fn changed_lifetime(
    expiration: Option<Timestamp>,
    indefinitely: Option<bool>,
    now_ms: i64,
) -> EngineResult<Option<(Option<i64>, bool)>> {
    match (expiration, indefinitely) {
        (None, None) => Ok(None),
        (None, Some(false)) => Err(EngineError::InvalidRequest(
            "suppressIndefinitely=false needs an expirationDate to end the suppression.".into(),
        )),
        (expiration, indefinitely) => new_lifetime(expiration, indefinitely, now_ms).map(Some),
    }
}

fn not_found(check: &str) -> EngineError {
    EngineError::NotFound(format!(
        "No suppression of {check} exists for that resourceIdentifier."
    ))
}

fn invalid_token() -> EngineError {
    EngineError::InvalidRequest("The pagination token (nextToken) is invalid.".into())
}

fn to_model(r: AuditSuppressionRecord) -> EngineResult<AuditSuppression> {
    let resource: ResourceIdentifier = serde_json::from_str(&r.resource_json).map_err(|e| {
        EngineError::Internal(format!(
            "stored suppression of {} is unreadable: {e}",
            r.check_name
        ))
    })?;
    Ok(AuditSuppression {
        check_name: Some(r.check_name),
        description: r.description,
        expiration_date: r.expiration_ms.map(Timestamp::from_millis),
        resource_identifier: Some(resource),
        suppress_indefinitely: Some(r.suppress_indefinitely),
    })
}

impl Engine {
    pub async fn create_audit_suppression(
        &self,
        scope: &Scope,
        input: CreateAuditSuppressionRequest,
    ) -> EngineResult<CreateAuditSuppressionResponse> {
        let (check, resource, key) = target(input.check_name, input.resource_identifier)?;
        let token = required(input.client_request_token, "clientRequestToken")?;
        let now = self.now_ms();
        let (expiration_ms, suppress_indefinitely) =
            new_lifetime(input.expiration_date, input.suppress_indefinitely, now)?;
        let record = AuditSuppressionRecord {
            check_name: check.name.to_owned(),
            resource_key: key,
            resource_json: serde_json::to_string(&resource)
                .map_err(|e| EngineError::Internal(e.to_string()))?,
            expiration_ms,
            suppress_indefinitely,
            description: input.description,
            client_request_token: token,
            created_at_ms: now,
            updated_at_ms: now,
        };
        match self
            .store()
            .create_audit_suppression(scope, &record, MAX_SUPPRESSIONS)
            .await?
        {
            // A retry of a create that succeeded succeeds again, changing nothing.
            Ok(_) => Ok(CreateAuditSuppressionResponse {}),
            Err(SuppressionRefusal::KeyExists) => Err(EngineError::AlreadyExists {
                message: format!(
                    "A suppression of {} for that resourceIdentifier already exists.",
                    check.name
                ),
                resource_id: None,
                resource_arn: None,
            }),
            Err(SuppressionRefusal::TokenInUse) => Err(EngineError::InvalidRequest(
                "clientRequestToken was already used to create a suppression of another \
                 check or resource."
                    .into(),
            )),
            Err(SuppressionRefusal::LimitReached) => Err(EngineError::LimitExceeded(format!(
                "An account holds at most {MAX_SUPPRESSIONS} audit suppressions per region."
            ))),
        }
    }

    pub async fn describe_audit_suppression(
        &self,
        scope: &Scope,
        input: DescribeAuditSuppressionRequest,
    ) -> EngineResult<DescribeAuditSuppressionResponse> {
        let (check, _, key) = target(input.check_name, input.resource_identifier)?;
        let record = self
            .store()
            .get_audit_suppression(scope, check.name, &key)
            .await?
            .ok_or_else(|| not_found(check.name))?;
        let s = to_model(record)?;
        Ok(DescribeAuditSuppressionResponse {
            check_name: s.check_name,
            description: s.description,
            expiration_date: s.expiration_date,
            resource_identifier: s.resource_identifier,
            suppress_indefinitely: s.suppress_indefinitely,
        })
    }

    pub async fn update_audit_suppression(
        &self,
        scope: &Scope,
        input: UpdateAuditSuppressionRequest,
    ) -> EngineResult<UpdateAuditSuppressionResponse> {
        let (check, _, key) = target(input.check_name, input.resource_identifier)?;
        let now = self.now_ms();
        let update = AuditSuppressionUpdate {
            lifetime: changed_lifetime(input.expiration_date, input.suppress_indefinitely, now)?,
            description: input.description,
            updated_at_ms: now,
        };
        self.store()
            .update_audit_suppression(scope, check.name, &key, &update)
            .await?
            .ok_or_else(|| not_found(check.name))?;
        Ok(UpdateAuditSuppressionResponse {})
    }

    pub async fn delete_audit_suppression(
        &self,
        scope: &Scope,
        input: DeleteAuditSuppressionRequest,
    ) -> EngineResult<DeleteAuditSuppressionResponse> {
        let (check, _, key) = target(input.check_name, input.resource_identifier)?;
        // The model has no ResourceNotFound for this operation: deleting what is not
        // there succeeds, which also makes a retried delete harmless.
        self.store()
            .delete_audit_suppression(scope, check.name, &key)
            .await?;
        Ok(DeleteAuditSuppressionResponse {})
    }

    pub async fn list_audit_suppressions(
        &self,
        scope: &Scope,
        input: ListAuditSuppressionsRequest,
    ) -> EngineResult<ListAuditSuppressionsResponse> {
        let filter = AuditSuppressionFilter {
            check_name: input.check_name.clone(),
            resource_key: input.resource_identifier.as_ref().map(resource_key),
        };
        let ascending = input.ascending_order.unwrap_or(true);
        let filter_text = format!("{filter:?}/{ascending}");
        let after = match input.next_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => {
                let last =
                    self.inner
                        .tokens
                        .open(scope, SUPPRESSIONS_LISTING, &filter_text, token)?;
                // Check names hold no '/', so only the key (last) may.
                let mut parts = last.splitn(3, '/');
                let (Some(ms), Some(check), Some(key)) = (parts.next(), parts.next(), parts.next())
                else {
                    return Err(invalid_token());
                };
                Some(AuditSuppressionKey {
                    expires_ms: ms.parse().map_err(|_| invalid_token())?,
                    check_name: check.to_owned(),
                    resource_key: key.to_owned(),
                })
            }
            None => None,
        };
        let size = paging::page_size(input.max_results, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_audit_suppressions(scope, &filter, ascending, after.as_ref(), n)
        })
        .await?;
        let next_token = page.next(|last| {
            let k = last.listing_key();
            self.inner.tokens.issue(
                scope,
                SUPPRESSIONS_LISTING,
                &filter_text,
                &format!("{}/{}/{}", k.expires_ms, k.check_name, k.resource_key),
            )
        });
        let records = page.items;
        Ok(ListAuditSuppressionsResponse {
            next_token,
            suppressions: Some(
                records
                    .into_iter()
                    .map(to_model)
                    .collect::<EngineResult<_>>()?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_resource_type_has_a_member() {
        for check in catalogue::CHECKS {
            assert_ne!(
                identifier_member(check.resource_type),
                "unknown",
                "{}",
                check.name
            );
        }
    }

    #[test]
    fn lifetimes() {
        let now = 1_000;
        let at = |ms| Some(Timestamp::from_millis(ms));
        assert_eq!(
            new_lifetime(at(2_000), None, now).ok(),
            Some((Some(2_000), false))
        );
        assert_eq!(new_lifetime(None, Some(true), now).ok(), Some((None, true)));
        assert!(new_lifetime(at(2_000), Some(true), now).is_err());
        assert!(new_lifetime(None, Some(false), now).is_err());
        assert!(new_lifetime(at(1_000), None, now).is_err());
        assert_eq!(changed_lifetime(None, None, now).ok(), Some(None));
        assert!(changed_lifetime(None, Some(false), now).is_err());
        assert_eq!(
            changed_lifetime(at(3_000), Some(false), now).ok(),
            Some(Some((Some(3_000), false)))
        );
    }
}
