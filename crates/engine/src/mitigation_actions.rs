//! Mitigation action definitions: CreateMitigationAction and its siblings.

use palisade_model::{
    CreateMitigationActionRequest, CreateMitigationActionResponse, DeleteMitigationActionRequest,
    DeleteMitigationActionResponse, DescribeMitigationActionRequest,
    DescribeMitigationActionResponse, ListMitigationActionsRequest, ListMitigationActionsResponse,
    LogLevel, MitigationActionIdentifier, MitigationActionParams, MitigationActionType, Timestamp,
    UpdateMitigationActionRequest, UpdateMitigationActionResponse,
};
use palisade_store::{MitigationActionRecord, MitigationActionUpdate, StoreError};

use crate::required;
use crate::tagging::checked_tags;
use crate::{arn, paging, Engine, EngineError, EngineResult, Scope};

const LISTING: &str = "mitigation-actions";
const DEFAULT_PAGE: usize = 25;

/// The action type a params document stands for: exactly one member must be set.
fn action_type(params: &MitigationActionParams) -> EngineResult<MitigationActionType> {
    let set: Vec<MitigationActionType> = [
        (
            params.update_device_certificate_params.is_some(),
            MitigationActionType::UpdateDeviceCertificate,
        ),
        (
            params.update_ca_certificate_params.is_some(),
            MitigationActionType::UpdateCaCertificate,
        ),
        (
            params.add_things_to_thing_group_params.is_some(),
            MitigationActionType::AddThingsToThingGroup,
        ),
        (
            params.replace_default_policy_version_params.is_some(),
            MitigationActionType::ReplaceDefaultPolicyVersion,
        ),
        (
            params.enable_iot_logging_params.is_some(),
            MitigationActionType::EnableIotLogging,
        ),
        (
            params.publish_finding_to_sns_params.is_some(),
            MitigationActionType::PublishFindingToSns,
        ),
    ]
    .into_iter()
    .filter_map(|(is_set, t)| is_set.then_some(t))
    .collect();
    match set.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(EngineError::InvalidRequest(
            "actionParams must set exactly one action's parameters; none was given.".into(),
        )),
        many => Err(EngineError::InvalidRequest(format!(
            "actionParams must set exactly one action's parameters; got {} ({}).",
            many.len(),
            many.iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Domain rules on params beyond the model's constraints.
fn check_params(params: &MitigationActionParams) -> EngineResult<MitigationActionType> {
    let t = action_type(params)?;
    if let Some(p) = &params.enable_iot_logging_params {
        if p.log_level == Some(LogLevel::Disabled) {
            return Err(EngineError::InvalidRequest(
                "actionParams.enableIoTLoggingParams.logLevel: DISABLED is not allowed for an ENABLE_IOT_LOGGING action; use DEBUG, INFO, ERROR or WARN.".into(),
            ));
        }
    }
    if let Some(p) = &params.add_things_to_thing_group_params {
        let names = p.thing_group_names.as_deref().unwrap_or_default();
        let mut sorted: Vec<&String> = names.iter().collect();
        sorted.sort();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(EngineError::InvalidRequest(
                "actionParams.addThingsToThingGroupParams.thingGroupNames must not name a thing group twice.".into(),
            ));
        }
    }
    Ok(t)
}

fn params_json(params: &MitigationActionParams) -> EngineResult<String> {
    serde_json::to_string(params)
        .map_err(|e| EngineError::Internal(format!("encoding actionParams: {e}")))
}

fn not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!("Mitigation action {name} does not exist."))
}

impl Engine {
    pub async fn create_mitigation_action(
        &self,
        scope: &Scope,
        input: CreateMitigationActionRequest,
    ) -> EngineResult<CreateMitigationActionResponse> {
        let name = required(input.action_name, "actionName")?;
        let role_arn = required(input.role_arn, "roleArn")?;
        let params = required(input.action_params, "actionParams")?;
        let action_type = check_params(&params)?;
        let tags = checked_tags(
            input.tags.unwrap_or_default(),
            self.inner.limits.tags_per_resource,
        )?;
        let now = self.now_ms();
        let record = MitigationActionRecord {
            arn: arn::mitigation_action(scope, &name),
            id: self.inner.ids.uuid(),
            name,
            action_type: action_type.as_str().to_owned(),
            role_arn,
            params_json: params_json(&params)?,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let limit = self.inner.limits.mitigation_actions_per_account;
        match self.store().create_mitigation_action(scope, &record, &tags, limit).await {
            Ok(()) => Ok(CreateMitigationActionResponse {
                action_arn: Some(record.arn),
                action_id: Some(record.id),
            }),
            Err(StoreError::AlreadyExists) => {
                let existing = self.store().get_mitigation_action(scope, &record.name).await?;
                Err(EngineError::AlreadyExists {
                    message: format!("Mitigation action {} already exists.", record.name),
                    resource_id: existing.as_ref().map(|r| r.id.clone()),
                    resource_arn: Some(record.arn),
                })
            }
            Err(StoreError::LimitExceeded { limit }) => Err(EngineError::LimitExceeded(format!(
                "An account can have at most {limit} mitigation actions; delete one before creating another."
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn describe_mitigation_action(
        &self,
        scope: &Scope,
        input: DescribeMitigationActionRequest,
    ) -> EngineResult<DescribeMitigationActionResponse> {
        let name = required(input.action_name, "actionName")?;
        let record = self
            .store()
            .get_mitigation_action(scope, &name)
            .await?
            .ok_or_else(|| not_found(&name))?;
        let params: MitigationActionParams = serde_json::from_str(&record.params_json)
            .map_err(|e| EngineError::Internal(format!("stored actionParams of {name}: {e}")))?;
        Ok(DescribeMitigationActionResponse {
            action_arn: Some(record.arn),
            action_id: Some(record.id),
            action_name: Some(record.name),
            action_params: Some(params),
            action_type: Some(MitigationActionType::from_wire(&record.action_type)),
            creation_date: Some(Timestamp::from_millis(record.created_at_ms)),
            last_modified_date: Some(Timestamp::from_millis(record.updated_at_ms)),
            role_arn: Some(record.role_arn),
        })
    }

    pub async fn update_mitigation_action(
        &self,
        scope: &Scope,
        input: UpdateMitigationActionRequest,
    ) -> EngineResult<UpdateMitigationActionResponse> {
        let name = required(input.action_name, "actionName")?;
        let params = match &input.action_params {
            Some(p) => Some((check_params(p)?.as_str().to_owned(), params_json(p)?)),
            None => None,
        };
        let record = if input.role_arn.is_none() && params.is_none() {
            // Nothing to change: answer as AWS does for a no-op update, without
            // touching lastModifiedDate.
            self.store()
                .get_mitigation_action(scope, &name)
                .await?
                .ok_or_else(|| not_found(&name))?
        } else {
            let update = MitigationActionUpdate {
                role_arn: input.role_arn,
                params,
                updated_at_ms: self.now_ms(),
            };
            match self
                .store()
                .update_mitigation_action(scope, &name, &update)
                .await
            {
                Ok(r) => r,
                Err(StoreError::NotFound) => return Err(not_found(&name)),
                Err(e) => return Err(e.into()),
            }
        };
        Ok(UpdateMitigationActionResponse {
            action_arn: Some(record.arn),
            action_id: Some(record.id),
        })
    }

    pub async fn delete_mitigation_action(
        &self,
        scope: &Scope,
        input: DeleteMitigationActionRequest,
    ) -> EngineResult<DeleteMitigationActionResponse> {
        let name = required(input.action_name, "actionName")?;
        // The model lists no ResourceNotFoundException here: deleting a name that does not
        // exist succeeds, which also makes retries of a delete safe.
        self.store().delete_mitigation_action(scope, &name).await?;
        Ok(DeleteMitigationActionResponse {})
    }

    pub async fn list_mitigation_actions(
        &self,
        scope: &Scope,
        input: ListMitigationActionsRequest,
    ) -> EngineResult<ListMitigationActionsResponse> {
        let filter = input.action_type.as_ref().map(|t| t.as_str().to_owned());
        let filter_key = filter.as_deref().unwrap_or("");
        let tokens = &self.inner.tokens;
        let after = match &input.next_token {
            Some(t) if !t.is_empty() => Some(tokens.open(scope, LISTING, filter_key, t)?),
            _ => None,
        };
        let size = paging::page_size(input.max_results, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_mitigation_actions(scope, filter.as_deref(), after.as_deref(), n)
        })
        .await?;
        let next_token = page.next(|last| tokens.issue(scope, LISTING, filter_key, &last.name));
        let records = page.items;
        Ok(ListMitigationActionsResponse {
            action_identifiers: Some(
                records
                    .into_iter()
                    .map(|r| MitigationActionIdentifier {
                        action_arn: Some(r.arn),
                        action_name: Some(r.name),
                        creation_date: Some(Timestamp::from_millis(r.created_at_ms)),
                    })
                    .collect(),
            ),
            next_token,
        })
    }
}
