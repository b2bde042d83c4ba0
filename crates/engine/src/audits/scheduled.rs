//! Scheduled audits: Create/Describe/Update/Delete/ListScheduledAudits, and the
//! scheduler that starts each one once per period.

use palisade_model::{
    CreateScheduledAuditRequest, CreateScheduledAuditResponse, DeleteScheduledAuditRequest,
    DeleteScheduledAuditResponse, DescribeScheduledAuditRequest, DescribeScheduledAuditResponse,
    ListScheduledAuditsRequest, ListScheduledAuditsResponse, UpdateScheduledAuditRequest,
    UpdateScheduledAuditResponse,
};

use crate::{Engine, EngineError, EngineResult, Scope};

fn todo() -> EngineError {
    EngineError::InvalidRequest("Scheduled audits are not supported yet.".into())
}

impl Engine {
    pub async fn create_scheduled_audit(
        &self,
        _scope: &Scope,
        _input: CreateScheduledAuditRequest,
    ) -> EngineResult<CreateScheduledAuditResponse> {
        Err(todo())
    }

    pub async fn describe_scheduled_audit(
        &self,
        _scope: &Scope,
        _input: DescribeScheduledAuditRequest,
    ) -> EngineResult<DescribeScheduledAuditResponse> {
        Err(todo())
    }

    pub async fn update_scheduled_audit(
        &self,
        _scope: &Scope,
        _input: UpdateScheduledAuditRequest,
    ) -> EngineResult<UpdateScheduledAuditResponse> {
        Err(todo())
    }

    pub async fn delete_scheduled_audit(
        &self,
        _scope: &Scope,
        _input: DeleteScheduledAuditRequest,
    ) -> EngineResult<DeleteScheduledAuditResponse> {
        Err(todo())
    }

    pub async fn list_scheduled_audits(
        &self,
        _scope: &Scope,
        _input: ListScheduledAuditsRequest,
    ) -> EngineResult<ListScheduledAuditsResponse> {
        Err(todo())
    }
}
