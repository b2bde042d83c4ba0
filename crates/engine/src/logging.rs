//! The account's logging options: SetV2LoggingOptions and GetV2LoggingOptions, and the
//! older SetLoggingOptions and GetLoggingOptions. AWS keeps the two apart (setting one
//! leaves the other as it was), and so does Palisade; both are per account and region.

use palisade_model::{
    GetLoggingOptionsRequest, GetLoggingOptionsResponse, GetV2LoggingOptionsRequest,
    GetV2LoggingOptionsResponse, LogEventConfiguration, LogLevel, SetLoggingOptionsRequest,
    SetV2LoggingOptionsRequest,
};
use palisade_store::{LoggingOptionsRecord, V2LoggingOptionsRecord};

use crate::required;
use crate::{Engine, EngineError, EngineResult, Scope};

impl Engine {
    /// SetV2LoggingOptions; the model has no output. The request replaces the account's
    /// v2 options as a whole: a member it leaves out is unset afterwards
    /// (`disableAllLogs` becomes false, its documented default).
    pub async fn set_v2_logging_options(
        &self,
        scope: &Scope,
        input: SetV2LoggingOptionsRequest,
    ) -> EngineResult<()> {
        let event_configurations_json = match &input.event_configurations {
            Some(configs) => {
                if let Some(twice) = configs.iter().enumerate().find_map(|(i, c)| {
                    configs[..i]
                        .iter()
                        .any(|earlier| earlier.event_type == c.event_type)
                        .then_some(c.event_type.as_deref().unwrap_or_default())
                }) {
                    return Err(EngineError::InvalidRequest(format!(
                        "eventConfigurations names the eventType '{twice}' more than once."
                    )));
                }
                Some(serde_json::to_string(configs).map_err(|e| {
                    EngineError::Internal(format!("encoding eventConfigurations: {e}"))
                })?)
            }
            None => None,
        };
        let record = V2LoggingOptionsRecord {
            role_arn: input.role_arn,
            default_log_level: input.default_log_level.map(|l| l.as_str().to_owned()),
            disable_all_logs: input.disable_all_logs.unwrap_or(false),
            event_configurations_json,
            updated_at_ms: self.now_ms(),
        };
        self.store().put_v2_logging_options(scope, &record).await?;
        Ok(())
    }

    pub async fn get_v2_logging_options(
        &self,
        scope: &Scope,
        // `verbose` asks AWS to list every event type it supports with its effective
        // configuration; Palisade knows no such catalogue and answers with the
        // configurations that were set, verbose or not.
        _input: GetV2LoggingOptionsRequest,
    ) -> EngineResult<GetV2LoggingOptionsResponse> {
        let record = self
            .store()
            .get_v2_logging_options(scope)
            .await?
            .ok_or_else(|| {
                EngineError::NotConfigured(
                    "V2 logging options are not configured for this account; set them with SetV2LoggingOptions."
                        .into(),
                )
            })?;
        let event_configurations = match &record.event_configurations_json {
            Some(json) => Some(
                serde_json::from_str::<Vec<LogEventConfiguration>>(json).map_err(|e| {
                    EngineError::Internal(format!("stored eventConfigurations: {e}"))
                })?,
            ),
            None => None,
        };
        Ok(GetV2LoggingOptionsResponse {
            default_log_level: record.default_log_level.as_deref().map(LogLevel::from_wire),
            disable_all_logs: Some(record.disable_all_logs),
            event_configurations,
            role_arn: record.role_arn,
        })
    }

    /// SetLoggingOptions (v1); the model has no output. Replaces the v1 options.
    pub async fn set_logging_options(
        &self,
        scope: &Scope,
        input: SetLoggingOptionsRequest,
    ) -> EngineResult<()> {
        let payload = required(input.logging_options_payload, "loggingOptionsPayload")?;
        let record = LoggingOptionsRecord {
            role_arn: required(payload.role_arn, "loggingOptionsPayload.roleArn")?,
            log_level: payload.log_level.map(|l| l.as_str().to_owned()),
            updated_at_ms: self.now_ms(),
        };
        self.store().put_logging_options(scope, &record).await?;
        Ok(())
    }

    pub async fn get_logging_options(
        &self,
        scope: &Scope,
        _input: GetLoggingOptionsRequest,
    ) -> EngineResult<GetLoggingOptionsResponse> {
        // The model gives GetLoggingOptions no NotConfiguredException (unlike the v2
        // call), so an account that never set v1 options gets an answer with no members.
        let Some(record) = self.store().get_logging_options(scope).await? else {
            return Ok(GetLoggingOptionsResponse::default());
        };
        Ok(GetLoggingOptionsResponse {
            log_level: record.log_level.as_deref().map(LogLevel::from_wire),
            role_arn: Some(record.role_arn),
        })
    }
}
