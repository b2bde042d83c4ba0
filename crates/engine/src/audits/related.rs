//! ListRelatedResourcesForAuditFinding.

use palisade_model::{
    ListRelatedResourcesForAuditFindingRequest, ListRelatedResourcesForAuditFindingResponse,
};

use crate::{Engine, EngineError, EngineResult, Scope};

impl Engine {
    pub async fn list_related_resources_for_audit_finding(
        &self,
        _scope: &Scope,
        _input: ListRelatedResourcesForAuditFindingRequest,
    ) -> EngineResult<ListRelatedResourcesForAuditFindingResponse> {
        Err(EngineError::InvalidRequest(
            "ListRelatedResourcesForAuditFinding is not supported yet.".into(),
        ))
    }
}
