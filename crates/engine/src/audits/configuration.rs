//! The account audit configuration: which checks are enabled, with what thresholds, the
//! role AWS would assume, and the SNS notification target.

use std::collections::BTreeMap;

use palisade_model::{
    AuditCheckConfiguration, AuditNotificationTarget, DeleteAccountAuditConfigurationRequest,
    DeleteAccountAuditConfigurationResponse, DescribeAccountAuditConfigurationRequest,
    DescribeAccountAuditConfigurationResponse, UpdateAccountAuditConfigurationRequest,
    UpdateAccountAuditConfigurationResponse,
};
use palisade_store::{AuditConfigurationRecord, Scope};
use serde::{Deserialize, Serialize};

use super::catalogue::{self, THRESHOLD_DAYS};
use super::scheduled_checks;
use crate::{Engine, EngineError, EngineResult};

/// One check's stored setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CheckSetting {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configuration: BTreeMap<String, String>,
}

/// The stored SNS target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NotificationTarget {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// An account's audit configuration, decoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditConfiguration {
    pub role_arn: Option<String>,
    pub checks: BTreeMap<String, CheckSetting>,
    pub notifications: BTreeMap<String, NotificationTarget>,
}

impl AuditConfiguration {
    fn from_record(r: AuditConfigurationRecord) -> EngineResult<Self> {
        let bad = |e: serde_json::Error| {
            EngineError::Internal(format!("stored audit configuration is unreadable: {e}"))
        };
        Ok(Self {
            role_arn: r.role_arn,
            checks: serde_json::from_str(&r.checks_json).map_err(bad)?,
            notifications: serde_json::from_str(&r.notifications_json).map_err(bad)?,
        })
    }

    fn to_record(&self, now_ms: i64) -> EngineResult<AuditConfigurationRecord> {
        let bad = |e: serde_json::Error| EngineError::Internal(e.to_string());
        Ok(AuditConfigurationRecord {
            role_arn: self.role_arn.clone(),
            checks_json: serde_json::to_string(&self.checks).map_err(bad)?,
            notifications_json: serde_json::to_string(&self.notifications).map_err(bad)?,
            updated_at_ms: now_ms,
        })
    }

    pub fn is_enabled(&self, check: &str) -> bool {
        self.checks.get(check).is_some_and(|c| c.enabled)
    }

    /// The check's configuration with defaults filled in.
    pub fn effective_configuration(&self, check: &catalogue::Check) -> BTreeMap<String, String> {
        let mut out = self
            .checks
            .get(check.name)
            .map(|c| c.configuration.clone())
            .unwrap_or_default();
        if let Some((key, default)) = check.setting {
            out.entry(key.to_owned())
                .or_insert_with(|| default.to_string());
        }
        out
    }
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::InvalidRequest(message.into())
}

fn validate_check_configuration(
    name: &str,
    given: &AuditCheckConfiguration,
) -> EngineResult<&'static catalogue::Check> {
    let check = catalogue::find(name).ok_or_else(|| {
        invalid(format!(
            "auditCheckConfigurations: '{name}' is not an audit check name."
        ))
    })?;
    for (key, value) in given.configuration.iter().flatten() {
        let Some((accepted, _)) = check.setting.filter(|(k, _)| k == key) else {
            return Err(invalid(format!(
                "auditCheckConfigurations.{name}.configuration: {name} does not accept '{key}'."
            )));
        };
        let days: Option<u32> = value.trim().parse().ok();
        if !days.is_some_and(|d| THRESHOLD_DAYS.contains(&d)) || value.trim() != value {
            return Err(invalid(format!(
                "auditCheckConfigurations.{name}.configuration.{accepted}: '{value}' must be a \
                 whole number of days from {} to {}.",
                THRESHOLD_DAYS.start(),
                THRESHOLD_DAYS.end()
            )));
        }
    }
    Ok(check)
}

fn validate_target(kind: &str, t: &AuditNotificationTarget) -> EngineResult<()> {
    if t.enabled == Some(true) {
        let arn = t.target_arn.as_deref().unwrap_or("");
        if !arn.starts_with("arn:") || arn.split(':').nth(2) != Some("sns") {
            return Err(invalid(format!(
                "auditNotificationTargetConfigurations.{kind}.targetArn: an enabled target needs \
                 the ARN of an SNS topic."
            )));
        }
        if t.role_arn.is_none() {
            return Err(invalid(format!(
                "auditNotificationTargetConfigurations.{kind}.roleArn: an enabled target needs \
                 a role ARN."
            )));
        }
    }
    Ok(())
}

impl Engine {
    pub(crate) async fn audit_configuration(
        &self,
        scope: &Scope,
    ) -> EngineResult<AuditConfiguration> {
        match self.store().get_audit_configuration(scope).await? {
            Some(r) => AuditConfiguration::from_record(r),
            None => Ok(AuditConfiguration::default()),
        }
    }

    pub async fn update_account_audit_configuration(
        &self,
        scope: &Scope,
        input: UpdateAccountAuditConfigurationRequest,
    ) -> EngineResult<UpdateAccountAuditConfigurationResponse> {
        let existing = self.store().get_audit_configuration(scope).await?;
        let first = existing.is_none();
        let mut config = match existing {
            Some(r) => AuditConfiguration::from_record(r)?,
            None => AuditConfiguration::default(),
        };
        if first {
            if input.role_arn.is_none() {
                return Err(invalid(
                    "roleArn is required the first time an account's audit configuration is set.",
                ));
            }
            let enables_one = input
                .audit_check_configurations
                .iter()
                .flatten()
                .any(|(_, c)| c.enabled == Some(true));
            if !enables_one {
                return Err(invalid(
                    "auditCheckConfigurations must enable at least one check the first time an \
                     account's audit configuration is set.",
                ));
            }
        }
        // Validate everything before changing anything.
        for (name, given) in input.audit_check_configurations.iter().flatten() {
            validate_check_configuration(name, given)?;
        }
        for (kind, target) in input
            .audit_notification_target_configurations
            .iter()
            .flatten()
        {
            validate_target(kind, target)?;
        }
        // A check a scheduled audit runs cannot be disabled: the schedule would run it
        // disabled. Checked against the schedules as they are now; one created in a race
        // with this update still runs, with that check failing AUDIT_CHECK_DISABLED.
        let disabling: Vec<&String> = input
            .audit_check_configurations
            .iter()
            .flatten()
            .filter(|(_, given)| given.enabled != Some(true))
            .map(|(name, _)| name)
            .collect();
        if !disabling.is_empty() {
            for schedule in self.all_scheduled_audits(scope).await? {
                let used = scheduled_checks::decode_check_names(&schedule)?;
                if let Some(name) = disabling.iter().find(|n| used.contains(n)) {
                    return Err(invalid(format!(
                        "auditCheckConfigurations.{name}: the check is used by scheduled audit \
                         {}; remove it from the schedule (UpdateScheduledAudit) or delete the \
                         schedule first.",
                        schedule.name
                    )));
                }
            }
        }
        if let Some(role_arn) = input.role_arn {
            config.role_arn = Some(role_arn);
        }
        for (name, given) in input.audit_check_configurations.unwrap_or_default() {
            let setting = config.checks.entry(name).or_default();
            // `enabled` defaults to false in the model, and the SDKs that follow it
            // (aws-sdk-rust) leave a false value off the wire: absent means disabled.
            setting.enabled = given.enabled.unwrap_or(false);
            if let Some(configuration) = given.configuration {
                setting.configuration = configuration;
            }
        }
        for (kind, given) in input
            .audit_notification_target_configurations
            .unwrap_or_default()
        {
            config.notifications.insert(
                kind,
                NotificationTarget {
                    enabled: given.enabled.unwrap_or(false),
                    target_arn: given.target_arn,
                    role_arn: given.role_arn,
                },
            );
        }
        let record = config.to_record(self.now_ms())?;
        self.store().put_audit_configuration(scope, &record).await?;
        Ok(UpdateAccountAuditConfigurationResponse {})
    }

    pub async fn describe_account_audit_configuration(
        &self,
        scope: &Scope,
        _input: DescribeAccountAuditConfigurationRequest,
    ) -> EngineResult<DescribeAccountAuditConfigurationResponse> {
        let config = self.audit_configuration(scope).await?;
        let checks = catalogue::CHECKS
            .iter()
            .map(|check| {
                let configuration = config.effective_configuration(check);
                (
                    check.name.to_owned(),
                    AuditCheckConfiguration {
                        enabled: Some(config.is_enabled(check.name)),
                        configuration: (!configuration.is_empty()).then_some(configuration),
                    },
                )
            })
            .collect();
        let targets: BTreeMap<String, AuditNotificationTarget> = config
            .notifications
            .into_iter()
            .map(|(kind, t)| {
                (
                    kind,
                    AuditNotificationTarget {
                        enabled: Some(t.enabled),
                        role_arn: t.role_arn,
                        target_arn: t.target_arn,
                    },
                )
            })
            .collect();
        Ok(DescribeAccountAuditConfigurationResponse {
            audit_check_configurations: Some(checks),
            audit_notification_target_configurations: (!targets.is_empty()).then_some(targets),
            role_arn: config.role_arn,
        })
    }

    pub async fn delete_account_audit_configuration(
        &self,
        scope: &Scope,
        input: DeleteAccountAuditConfigurationRequest,
    ) -> EngineResult<DeleteAccountAuditConfigurationResponse> {
        let not_configured =
            || EngineError::NotFound("The account has no audit configuration.".into());
        if self.store().get_audit_configuration(scope).await?.is_none() {
            return Err(not_configured());
        }
        // Schedules would go on running checks that the deletion disables, so they go
        // with the configuration when asked to, and stand in its way otherwise.
        if input.delete_scheduled_audits == Some(true) {
            self.store().delete_all_scheduled_audits(scope).await?;
        } else {
            let names: Vec<String> = self
                .all_scheduled_audits(scope)
                .await?
                .into_iter()
                .map(|s| s.name)
                .collect();
            if !names.is_empty() {
                return Err(invalid(format!(
                    "The account has scheduled audits ({}); pass deleteScheduledAudits=true to \
                     delete them with the audit configuration, or delete them first \
                     (DeleteScheduledAudit).",
                    names.join(", ")
                )));
            }
        }
        if !self.store().delete_audit_configuration(scope).await? {
            return Err(not_configured());
        }
        Ok(DeleteAccountAuditConfigurationResponse {})
    }
}
