//! Audit findings: how they are identified and stored, and ListAuditFindings /
//! DescribeAuditFinding.

use palisade_model::{
    AuditFinding, AuditFindingSeverity, DescribeAuditFindingRequest, DescribeAuditFindingResponse,
    ListAuditFindingsRequest, ListAuditFindingsResponse, NonCompliantResource, RelatedResource,
    ResourceIdentifier, ResourceType, Timestamp,
};
use palisade_store::{AuditFindingFilter, AuditFindingKey, AuditFindingRecord, Scope};
use sha2::{Digest, Sha256};

use super::catalogue;
use crate::{paging, required, Engine, EngineError, EngineResult};

const FINDINGS_LISTING: &str = "audit-findings";
const DEFAULT_PAGE: usize = 25;

/// A finding as a check produces it, before it belongs to a task.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub resource: ResourceIdentifier,
    pub reason_code: &'static str,
    pub reason: String,
}

/// The canonical text of a resource identifier: its set members, sorted, so the same
/// resource always has the same key whichever way it was written.
pub(crate) fn resource_key(id: &ResourceIdentifier) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut put = |name: &str, value: &Option<String>| {
        if let Some(v) = value {
            parts.push(format!("{name}={v}"));
        }
    };
    put("account", &id.account);
    put("caCertificateId", &id.ca_certificate_id);
    put("clientId", &id.client_id);
    put("cognitoIdentityPoolId", &id.cognito_identity_pool_id);
    put("deviceCertificateArn", &id.device_certificate_arn);
    put("deviceCertificateId", &id.device_certificate_id);
    put("iamRoleArn", &id.iam_role_arn);
    put("roleAliasArn", &id.role_alias_arn);
    if let Some(p) = &id.policy_version_identifier {
        put("policyName", &p.policy_name);
        put("policyVersionId", &p.policy_version_id);
    }
    if let Some(i) = &id.issuer_certificate_identifier {
        put(
            "issuerCertificateSerialNumber",
            &i.issuer_certificate_serial_number,
        );
        put("issuerCertificateSubject", &i.issuer_certificate_subject);
        put("issuerId", &i.issuer_id);
    }
    parts.sort();
    parts.join("\n")
}

/// Stable for (task, check, resource, reason): re-running a check after a crash writes
/// the same ids again, which the store skips.
///
/// The first 8 characters follow the resource a mitigation changes (see
/// [`locality_prefix`]), the other 24 are a hash of the whole identity. An audit's
/// findings of one check share one finding time, so listing order is id order, and a
/// mitigation task's chunks (runs of consecutive findings) then name neighbouring
/// certificates: their status rows share pages, and a chunk of a thousand
/// deactivations writes tens of pages instead of a thousand.
fn finding_id(
    task_id: &str,
    check: &str,
    resource: &ResourceIdentifier,
    reason_code: &str,
) -> String {
    let key = resource_key(resource);
    let mut h = Sha256::new();
    for part in [task_id, check, &key, reason_code] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let hash: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    match locality_prefix(resource) {
        Some(prefix) => format!("{prefix}{}", &hash[8..]),
        None => hash,
    }
}

/// The leading 8 characters of the certificate a finding names (a device certificate,
/// else a CA), when that id is lowercase hex as AWS makes them (a SHA-256 of the DER).
/// Certificate ids are already public in the finding, so the prefix discloses nothing.
fn locality_prefix(resource: &ResourceIdentifier) -> Option<&str> {
    let id = resource
        .device_certificate_id
        .as_deref()
        .or(resource.ca_certificate_id.as_deref())?;
    let prefix = id.get(..8)?;
    prefix
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        .then_some(prefix)
}

pub(crate) fn to_record(
    task_id: &str,
    task_start_ms: i64,
    check: &catalogue::Check,
    found_at_ms: i64,
    draft: Draft,
    is_suppressed: bool,
) -> EngineResult<AuditFindingRecord> {
    to_record_with(
        task_id,
        task_start_ms,
        check,
        found_at_ms,
        draft,
        is_suppressed,
        None,
    )
}

/// [`to_record`], with related resources in the finding itself.
pub(crate) fn to_record_with(
    task_id: &str,
    task_start_ms: i64,
    check: &catalogue::Check,
    found_at_ms: i64,
    draft: Draft,
    is_suppressed: bool,
    related_resources: Option<Vec<RelatedResource>>,
) -> EngineResult<AuditFindingRecord> {
    let key = resource_key(&draft.resource);
    let id = finding_id(task_id, check.name, &draft.resource, draft.reason_code);
    let finding = AuditFinding {
        check_name: Some(check.name.to_owned()),
        finding_id: Some(id.clone()),
        finding_time: Some(Timestamp::from_millis(found_at_ms)),
        is_suppressed: Some(is_suppressed),
        non_compliant_resource: Some(NonCompliantResource {
            additional_info: None,
            resource_identifier: Some(draft.resource),
            resource_type: Some(ResourceType::from_wire(check.resource_type)),
        }),
        reason_for_non_compliance: Some(draft.reason),
        reason_for_non_compliance_code: Some(draft.reason_code.to_owned()),
        related_resources,
        severity: Some(AuditFindingSeverity::from_wire(check.severity)),
        task_id: Some(task_id.to_owned()),
        task_start_time: Some(Timestamp::from_millis(task_start_ms)),
    };
    Ok(AuditFindingRecord {
        finding_id: id,
        task_id: task_id.to_owned(),
        check_name: check.name.to_owned(),
        task_start_ms,
        finding_time_ms: found_at_ms,
        resource_key: key,
        is_suppressed,
        body_json: serde_json::to_string(&finding)
            .map_err(|e| EngineError::Internal(e.to_string()))?,
    })
}

fn from_record(r: AuditFindingRecord) -> EngineResult<AuditFinding> {
    let mut finding: AuditFinding = serde_json::from_str(&r.body_json).map_err(|e| {
        EngineError::Internal(format!(
            "stored finding {} is unreadable: {e}",
            r.finding_id
        ))
    })?;
    finding.is_suppressed = Some(r.is_suppressed);
    Ok(finding)
}

fn invalid_token() -> EngineError {
    EngineError::InvalidRequest("The pagination token (nextToken) is invalid.".into())
}

impl Engine {
    pub async fn list_audit_findings(
        &self,
        scope: &Scope,
        input: ListAuditFindingsRequest,
    ) -> EngineResult<ListAuditFindingsResponse> {
        let by_time = input.start_time.is_some() || input.end_time.is_some();
        let filter = match (&input.task_id, input.start_time, input.end_time) {
            (Some(_), _, _) if by_time => {
                return Err(EngineError::InvalidRequest(
                    "Give either taskId or startTime and endTime, not both.".into(),
                ))
            }
            (Some(task_id), None, None) => AuditFindingFilter {
                task_id: Some(task_id.clone()),
                ..AuditFindingFilter::default()
            },
            (None, Some(start), Some(end)) if end.millis() < start.millis() => {
                return Err(EngineError::InvalidRequest(
                    "endTime must not be before startTime.".into(),
                ))
            }
            (None, Some(start), Some(end)) => AuditFindingFilter {
                found_from_ms: Some(start.millis()),
                found_to_ms: Some(end.millis()),
                ..AuditFindingFilter::default()
            },
            _ => {
                return Err(EngineError::InvalidRequest(
                    "Give either taskId, or both startTime and endTime.".into(),
                ))
            }
        };
        let filter = AuditFindingFilter {
            check_name: input.check_name.clone(),
            resource_key: input.resource_identifier.as_ref().map(resource_key),
            suppressed: input.list_suppressed_findings,
            ..filter
        };
        let filter_text = format!("{filter:?}");
        let after = match input.next_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => {
                let last = self
                    .inner
                    .tokens
                    .open(scope, FINDINGS_LISTING, &filter_text, token)?;
                let (ms, id) = last.split_once('/').ok_or_else(invalid_token)?;
                Some(AuditFindingKey {
                    finding_time_ms: ms.parse().map_err(|_| invalid_token())?,
                    finding_id: id.to_owned(),
                })
            }
            None => None,
        };
        let size = paging::page_size(input.max_results, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_audit_findings(scope, &filter, after.as_ref(), n)
        })
        .await?;
        let next_token = page.next(|last| {
            self.inner.tokens.issue(
                scope,
                FINDINGS_LISTING,
                &filter_text,
                &format!("{}/{}", last.finding_time_ms, last.finding_id),
            )
        });
        let records = page.items;
        Ok(ListAuditFindingsResponse {
            findings: Some(
                records
                    .into_iter()
                    .map(from_record)
                    .collect::<EngineResult<_>>()?,
            ),
            next_token,
        })
    }

    pub async fn describe_audit_finding(
        &self,
        scope: &Scope,
        input: DescribeAuditFindingRequest,
    ) -> EngineResult<DescribeAuditFindingResponse> {
        let id = required(input.finding_id, "findingId")?;
        let record = self
            .store()
            .get_audit_finding(scope, &id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("Audit finding {id} does not exist.")))?;
        Ok(DescribeAuditFindingResponse {
            finding: Some(from_record(record)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_model::PolicyVersionIdentifier;

    #[test]
    fn keys_and_ids_are_stable() {
        let a = ResourceIdentifier {
            policy_version_identifier: Some(PolicyVersionIdentifier {
                policy_name: Some("p".into()),
                policy_version_id: Some("1".into()),
            }),
            ..ResourceIdentifier::default()
        };
        assert_eq!(resource_key(&a), "policyName=p\npolicyVersionId=1");
        let id = finding_id("t", "C", &a, "R");
        assert_eq!(id, finding_id("t", "C", &a.clone(), "R"));
        assert_ne!(id, finding_id("t", "C", &a, "S"));
        assert_eq!(id.len(), 32);
    }

    #[test]
    fn certificate_findings_sort_by_certificate() {
        let device = |id: &str| ResourceIdentifier {
            device_certificate_id: Some(id.into()),
            ..ResourceIdentifier::default()
        };
        let low = finding_id("t", "C", &device(&format!("0a{}", "f".repeat(62))), "R");
        let high = finding_id("t", "C", &device(&format!("fa{}", "0".repeat(62))), "R");
        assert!(low.starts_with("0affffff") && high.starts_with("fa000000"));
        assert_eq!((low.len(), high.len()), (32, 32));
        // Same certificate, other reason: same prefix, other id.
        let other = finding_id("t", "C", &device(&format!("0a{}", "f".repeat(62))), "S");
        assert!(other.starts_with("0affffff") && other != low);
        // Ids that are not lowercase hex get no prefix.
        let odd = finding_id("t", "C", &device("NOT-HEX-ID"), "R");
        assert!(odd.bytes().all(|b| b.is_ascii_hexdigit()) && odd.len() == 32);
    }
}
