//! Role aliases: CreateRoleAlias, DescribeRoleAlias, UpdateRoleAlias, DeleteRoleAlias,
//! ListRoleAliases, and the role alias ARN check tagging needs.

use palisade_model::{
    CreateRoleAliasRequest, CreateRoleAliasResponse, DeleteRoleAliasRequest,
    DeleteRoleAliasResponse, DescribeRoleAliasRequest, DescribeRoleAliasResponse,
    ListRoleAliasesRequest, ListRoleAliasesResponse, RoleAliasDescription, Timestamp,
    UpdateRoleAliasRequest, UpdateRoleAliasResponse,
};
use palisade_store::{RoleAliasRecord, RoleAliasUpdate, StoreError};

use crate::required;
use crate::tagging::checked_tags;
use crate::{paging, Engine, EngineError, EngineResult, Scope};

const LISTING: &str = "role-aliases";
/// ListRoleAliases' page size when the request names none. AWS does not document its
/// default; the model's maximum keeps round trips few.
const DEFAULT_PAGE: usize = 250;
/// AWS's documented default for `credentialDurationSeconds`.
const DEFAULT_CREDENTIAL_DURATION_SECONDS: i32 = 3600;

fn role_alias_arn(scope: &Scope, alias: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:rolealias/{alias}",
        scope.region, scope.account_id
    )
}

fn not_found(alias: &str) -> EngineError {
    EngineError::NotFound(format!("The role alias {alias} does not exist."))
}

impl Engine {
    /// Whether `arn` names an existing role alias of the caller (for tagging).
    pub(crate) async fn role_alias_arn_exists(
        &self,
        scope: &Scope,
        id: &str,
        arn: &str,
    ) -> EngineResult<bool> {
        Ok(self
            .store()
            .get_role_alias(scope, id)
            .await?
            .is_some_and(|r| r.arn == arn))
    }

    pub async fn create_role_alias(
        &self,
        scope: &Scope,
        input: CreateRoleAliasRequest,
    ) -> EngineResult<CreateRoleAliasResponse> {
        let alias = required(input.role_alias, "roleAlias")?;
        let role_arn = required(input.role_arn, "roleArn")?;
        let tags = checked_tags(
            input.tags.unwrap_or_default(),
            self.inner.limits.tags_per_resource,
        )?;
        let now = self.now_ms();
        let record = RoleAliasRecord {
            arn: role_alias_arn(scope, &alias),
            alias,
            role_arn,
            credential_duration_seconds: input
                .credential_duration_seconds
                .unwrap_or(DEFAULT_CREDENTIAL_DURATION_SECONDS),
            created_at_ms: now,
            updated_at_ms: now,
        };
        match self.store().create_role_alias(scope, &record, &tags).await {
            Ok(()) => Ok(CreateRoleAliasResponse {
                role_alias: Some(record.alias),
                role_alias_arn: Some(record.arn),
            }),
            Err(StoreError::AlreadyExists) => Err(EngineError::AlreadyExists {
                message: format!("The role alias {} already exists.", record.alias),
                resource_id: Some(record.alias),
                resource_arn: Some(record.arn),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn describe_role_alias(
        &self,
        scope: &Scope,
        input: DescribeRoleAliasRequest,
    ) -> EngineResult<DescribeRoleAliasResponse> {
        let alias = required(input.role_alias, "roleAlias")?;
        let r = self
            .store()
            .get_role_alias(scope, &alias)
            .await?
            .ok_or_else(|| not_found(&alias))?;
        Ok(DescribeRoleAliasResponse {
            role_alias_description: Some(RoleAliasDescription {
                creation_date: Some(Timestamp::from_millis(r.created_at_ms)),
                credential_duration_seconds: Some(r.credential_duration_seconds),
                last_modified_date: Some(Timestamp::from_millis(r.updated_at_ms)),
                owner: Some(scope.account_id.clone()),
                role_alias: Some(r.alias),
                role_alias_arn: Some(r.arn),
                role_arn: Some(r.role_arn),
            }),
        })
    }

    pub async fn update_role_alias(
        &self,
        scope: &Scope,
        input: UpdateRoleAliasRequest,
    ) -> EngineResult<UpdateRoleAliasResponse> {
        let alias = required(input.role_alias, "roleAlias")?;
        let record = if input.role_arn.is_none() && input.credential_duration_seconds.is_none() {
            // Nothing to change: answer without touching lastModifiedDate.
            self.store()
                .get_role_alias(scope, &alias)
                .await?
                .ok_or_else(|| not_found(&alias))?
        } else {
            let update = RoleAliasUpdate {
                role_arn: input.role_arn,
                credential_duration_seconds: input.credential_duration_seconds,
                updated_at_ms: self.now_ms(),
            };
            match self.store().update_role_alias(scope, &alias, &update).await {
                Ok(r) => r,
                Err(StoreError::NotFound) => return Err(not_found(&alias)),
                Err(e) => return Err(e.into()),
            }
        };
        Ok(UpdateRoleAliasResponse {
            role_alias: Some(record.alias),
            role_alias_arn: Some(record.arn),
        })
    }

    pub async fn delete_role_alias(
        &self,
        scope: &Scope,
        input: DeleteRoleAliasRequest,
    ) -> EngineResult<DeleteRoleAliasResponse> {
        let alias = required(input.role_alias, "roleAlias")?;
        // Unlike DeleteMitigationAction, the model lists ResourceNotFoundException here.
        if self.store().delete_role_alias(scope, &alias).await? {
            Ok(DeleteRoleAliasResponse {})
        } else {
            Err(not_found(&alias))
        }
    }

    pub async fn list_role_aliases(
        &self,
        scope: &Scope,
        input: ListRoleAliasesRequest,
    ) -> EngineResult<ListRoleAliasesResponse> {
        let descending = !input.ascending_order.unwrap_or(true);
        let after = self.open_marker(scope, LISTING, descending, input.marker.as_deref())?;
        let size = paging::page_size(input.page_size, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_role_aliases(scope, after.as_deref(), descending, n)
        })
        .await?;
        let next_marker =
            page.next(|last| self.issue_marker(scope, LISTING, descending, &last.alias));
        let records = page.items;
        Ok(ListRoleAliasesResponse {
            next_marker,
            role_aliases: Some(records.into_iter().map(|r| r.alias).collect()),
        })
    }
}
