//! ListRelatedResourcesForAuditFinding.
//!
//! Findings of INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK keep their
//! related resources (the device certificates the revoked intermediate signed, possibly
//! very many) in the store beside the finding, and DescribeAuditFinding shows none of
//! them; other findings carry theirs in the finding itself (at most a few).

use palisade_model::{
    AuditFinding, ListRelatedResourcesForAuditFindingRequest,
    ListRelatedResourcesForAuditFindingResponse, RelatedResource,
};
use palisade_store::RelatedResourceRecord;

use crate::{paging, required, Engine, EngineError, EngineResult, Scope};

const LISTING: &str = "audit-related-resources";
const DEFAULT_PAGE: usize = 25;
/// The check whose related resources live in the store.
pub(crate) const STORED_FOR: &str = "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK";
/// Every check whose findings keep their related resources in the store: [`STORED_FOR`]
/// and the two connection checks (one related resource per connection involved, which a
/// busy certificate or client id can have many of).
pub(crate) fn related_in_store(check_name: &str) -> bool {
    matches!(
        check_name,
        STORED_FOR | "DEVICE_CERTIFICATE_SHARED_CHECK" | "CONFLICTING_CLIENT_IDS_CHECK"
    )
}
/// Stored related resources read at once when all of a finding's are wanted.
const READ_PAGE: usize = 1_000;
const DEVICE_CERTIFICATE: &str = "DEVICE_CERTIFICATE";

fn invalid_token() -> EngineError {
    EngineError::InvalidRequest("The pagination token (nextToken) is invalid.".into())
}

fn decode(finding_id: &str, row: &RelatedResourceRecord) -> EngineResult<RelatedResource> {
    serde_json::from_str::<RelatedResource>(&row.resource_json).map_err(|e| {
        EngineError::Internal(format!(
            "stored related resource of finding {finding_id} is unreadable: {e}"
        ))
    })
}

impl Engine {
    pub async fn list_related_resources_for_audit_finding(
        &self,
        scope: &Scope,
        input: ListRelatedResourcesForAuditFindingRequest,
    ) -> EngineResult<ListRelatedResourcesForAuditFindingResponse> {
        let id = required(input.finding_id, "findingId")?;
        if let Some(n) = input.max_results.filter(|n| !(1..=250).contains(n)) {
            return Err(EngineError::InvalidRequest(format!(
                "maxResults must be between 1 and 250, not {n}."
            )));
        }
        let size = paging::page_size(input.max_results, DEFAULT_PAGE);
        let record = self
            .store()
            .get_audit_finding(scope, &id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("Audit finding {id} does not exist.")))?;
        let after = match input.next_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => Some(self.inner.tokens.open(scope, LISTING, &id, token)?),
            None => None,
        };
        let (resources, last) = if related_in_store(&record.check_name) {
            let page = paging::Page::fetch(size, |n| {
                self.store()
                    .list_related_resources(scope, &id, after.as_deref(), n)
            })
            .await?;
            let last = page.next(|r| r.sort_key.clone());
            let resources = page
                .items
                .iter()
                .map(|r| decode(&id, r))
                .collect::<EngineResult<Vec<_>>>()?;
            (resources, last)
        } else {
            let finding: AuditFinding = serde_json::from_str(&record.body_json).map_err(|e| {
                EngineError::Internal(format!("stored finding {id} is unreadable: {e}"))
            })?;
            let all = finding.related_resources.unwrap_or_default();
            let start = match after {
                Some(position) => position
                    .parse::<usize>()
                    .map_err(|_| invalid_token())?
                    .saturating_add(1),
                None => 0,
            };
            let page: Vec<RelatedResource> = all.iter().skip(start).take(size).cloned().collect();
            let end = start + page.len();
            let last = (end < all.len() && !page.is_empty()).then(|| (end - 1).to_string());
            (page, last)
        };
        Ok(ListRelatedResourcesForAuditFindingResponse {
            next_token: last.map(|key| self.inner.tokens.issue(scope, LISTING, &id, &key)),
            related_resources: Some(resources),
        })
    }

    /// The ids of the DEVICE_CERTIFICATE resources ListRelatedResourcesForAuditFinding
    /// lists for a finding of [`STORED_FOR`], in its order; `None` if there are more
    /// than `limit`, so a caller never holds more than `limit` of them.
    pub(crate) async fn related_device_certificates(
        &self,
        scope: &Scope,
        finding_id: &str,
        limit: usize,
    ) -> EngineResult<Option<Vec<String>>> {
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let rows = self
                .store()
                .list_related_resources(scope, finding_id, after.as_deref(), READ_PAGE)
                .await?;
            for row in &rows {
                let resource = decode(finding_id, row)?;
                if resource.resource_type.as_ref().map(|t| t.as_str()) != Some(DEVICE_CERTIFICATE) {
                    continue;
                }
                let Some(id) = resource
                    .resource_identifier
                    .and_then(|r| r.device_certificate_id)
                else {
                    continue;
                };
                if ids.len() == limit {
                    return Ok(None);
                }
                ids.push(id);
            }
            match rows.last() {
                Some(last) if rows.len() == READ_PAGE => after = Some(last.sort_key.clone()),
                _ => return Ok(Some(ids)),
            }
        }
    }
}
