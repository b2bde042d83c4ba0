//! Scheduled audits: Create/Describe/Update/Delete/ListScheduledAudits. The scheduler
//! that starts their runs is in `scheduler.rs`.
//!
//! Day rules (the model cannot express them): DAILY takes no day; WEEKLY and BIWEEKLY
//! take a `dayOfWeek` and no `dayOfMonth`; MONTHLY takes a `dayOfMonth` (the model
//! restricts it to 1..31 or LAST) and no `dayOfWeek`. An update is merged with the
//! stored schedule and the result must obey the same rules: a frequency changed to
//! DAILY drops the stored day fields, to WEEKLY/BIWEEKLY keeps a stored `dayOfWeek`
//! unless one is given and drops `dayOfMonth`, to MONTHLY the other way round. A day
//! field given that the resulting frequency does not take is refused.

use palisade_model::{
    AuditFrequency, CreateScheduledAuditRequest, CreateScheduledAuditResponse, DayOfWeek,
    DeleteScheduledAuditRequest, DeleteScheduledAuditResponse, DescribeScheduledAuditRequest,
    DescribeScheduledAuditResponse, ListScheduledAuditsRequest, ListScheduledAuditsResponse,
    ScheduledAuditMetadata, UpdateScheduledAuditRequest, UpdateScheduledAuditResponse,
};
use palisade_store::{
    ScheduledAuditRecord, ScheduledAuditRefusal, ScheduledAuditUpdate, StoreError,
};

use super::catalogue;
use super::configuration::AuditConfiguration;
use super::scheduled_checks::{decode_check_names, encode_check_names};
use super::scheduler::{Cadence, Timing};
use crate::tagging::checked_tags;
use crate::{paging, required, Engine, EngineError, EngineResult, Scope};

/// Most scheduled audits per account and region (AWS's quota).
pub(crate) const MAX_SCHEDULED_AUDITS: usize = 5;
const LISTING: &str = "scheduled-audits";
const DEFAULT_PAGE: usize = 25;

pub(crate) fn scheduled_audit_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:scheduledaudit/{name}",
        scope.region, scope.account_id
    )
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::InvalidRequest(message.into())
}

fn not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!("Scheduled audit {name} does not exist."))
}

/// A frequency and its day fields after the day rules, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Days {
    frequency: String,
    day_of_week: Option<String>,
    day_of_month: Option<String>,
}

/// Applies the day rules to a frequency with the day fields given in the request
/// (`given_*`) and, for an update, those stored (`kept_*`, used when none is given).
fn days(
    frequency: &AuditFrequency,
    given_week: Option<&DayOfWeek>,
    given_month: Option<&str>,
    kept_week: Option<&str>,
    kept_month: Option<&str>,
) -> EngineResult<Days> {
    let frequency = frequency.as_str().to_owned();
    let week = given_week.map(|d| d.as_str().to_owned());
    let month = given_month.map(str::to_owned);
    let (day_of_week, day_of_month) = match frequency.as_str() {
        "DAILY" => {
            if week.is_some() || month.is_some() {
                return Err(invalid(
                    "A DAILY scheduled audit takes neither dayOfWeek nor dayOfMonth.",
                ));
            }
            (None, None)
        }
        "WEEKLY" | "BIWEEKLY" => {
            if month.is_some() {
                return Err(invalid(format!(
                    "dayOfMonth: a {frequency} scheduled audit takes dayOfWeek, not dayOfMonth."
                )));
            }
            let week = week
                .or_else(|| kept_week.map(str::to_owned))
                .ok_or_else(|| {
                    invalid(format!(
                        "dayOfWeek is required for a {frequency} scheduled audit."
                    ))
                })?;
            (Some(week), None)
        }
        "MONTHLY" => {
            if week.is_some() {
                return Err(invalid(
                    "dayOfWeek: a MONTHLY scheduled audit takes dayOfMonth, not dayOfWeek.",
                ));
            }
            let month = month
                .or_else(|| kept_month.map(str::to_owned))
                .ok_or_else(|| {
                    invalid(
                        "dayOfMonth is required for a MONTHLY scheduled audit (1 to 31 or LAST).",
                    )
                })?;
            (None, Some(month))
        }
        other => {
            return Err(invalid(format!(
                "frequency: '{other}' is not one of DAILY, WEEKLY, BIWEEKLY, MONTHLY."
            )))
        }
    };
    // The model's pattern and enum already hold; this catches what slips past them.
    if Cadence::from_parts(&frequency, day_of_week.as_deref(), day_of_month.as_deref()).is_none() {
        return Err(invalid(format!(
            "dayOfWeek/dayOfMonth: {} / {} is not a valid day for a {frequency} scheduled audit.",
            day_of_week.as_deref().unwrap_or("-"),
            day_of_month.as_deref().unwrap_or("-")
        )));
    }
    Ok(Days {
        frequency,
        day_of_week,
        day_of_month,
    })
}

/// The target checks, each a known check enabled in the account's audit configuration;
/// repeated names are kept once, in the order first given.
fn target_checks(names: Vec<String>, config: &AuditConfiguration) -> EngineResult<Vec<String>> {
    if names.is_empty() {
        return Err(invalid("targetCheckNames must name at least one check."));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let check = catalogue::find(&name).ok_or_else(|| {
            invalid(format!(
                "targetCheckNames: '{name}' is not an audit check name."
            ))
        })?;
        if !config.is_enabled(check.name) {
            return Err(invalid(format!(
                "targetCheckNames: {name} is not enabled in the account's audit configuration \
                 (UpdateAccountAuditConfiguration)."
            )));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

fn metadata(record: ScheduledAuditRecord) -> ScheduledAuditMetadata {
    ScheduledAuditMetadata {
        day_of_month: record.day_of_month,
        day_of_week: record.day_of_week.as_deref().map(DayOfWeek::from_wire),
        frequency: Some(AuditFrequency::from_wire(&record.frequency)),
        scheduled_audit_arn: Some(record.arn),
        scheduled_audit_name: Some(record.name),
    }
}

impl Engine {
    /// The next occurrence of `days` for a schedule whose timing is set at `now`.
    fn first_run(&self, days: &Days, now: i64) -> EngineResult<i64> {
        let cadence = Cadence::from_parts(
            &days.frequency,
            days.day_of_week.as_deref(),
            days.day_of_month.as_deref(),
        )
        .ok_or_else(|| EngineError::Internal("day rules let an invalid timing pass".into()))?;
        Ok(Timing {
            cadence,
            time_of_day_ms: self.scheduled_time_of_day_ms(),
            anchor_ms: now,
        }
        .first_at_or_after(now))
    }

    /// Every scheduled audit of the scope (at most the quota's worth).
    pub(crate) async fn all_scheduled_audits(
        &self,
        scope: &Scope,
    ) -> EngineResult<Vec<ScheduledAuditRecord>> {
        let mut out: Vec<ScheduledAuditRecord> = Vec::new();
        loop {
            let after = out.last().map(|r| r.name.clone());
            let page = self
                .store()
                .list_scheduled_audits(scope, after.as_deref(), 100)
                .await?;
            let done = page.len() < 100;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    pub async fn create_scheduled_audit(
        &self,
        scope: &Scope,
        input: CreateScheduledAuditRequest,
    ) -> EngineResult<CreateScheduledAuditResponse> {
        let name = required(input.scheduled_audit_name, "scheduledAuditName")?;
        let frequency = required(input.frequency, "frequency")?;
        let days = days(
            &frequency,
            input.day_of_week.as_ref(),
            input.day_of_month.as_deref(),
            None,
            None,
        )?;
        let tags = checked_tags(
            input.tags.unwrap_or_default(),
            self.inner.limits.tags_per_resource,
        )?;
        let config = self.audit_configuration(scope).await?;
        let checks = target_checks(
            required(input.target_check_names, "targetCheckNames")?,
            &config,
        )?;
        let now = self.now_ms();
        let arn = scheduled_audit_arn(scope, &name);
        let record = ScheduledAuditRecord {
            name: name.clone(),
            arn: arn.clone(),
            next_run_ms: self.first_run(&days, now)?,
            frequency: days.frequency,
            day_of_week: days.day_of_week,
            day_of_month: days.day_of_month,
            checks_json: encode_check_names(&checks)?,
            anchor_ms: now,
            created_at_ms: now,
            updated_at_ms: now,
        };
        match self
            .store()
            .create_scheduled_audit(scope, &record, &tags, MAX_SCHEDULED_AUDITS)
            .await
        {
            Ok(Ok(())) => Ok(CreateScheduledAuditResponse {
                scheduled_audit_arn: Some(arn),
            }),
            Ok(Err(ScheduledAuditRefusal::NameExists)) | Err(StoreError::AlreadyExists) => {
                Err(EngineError::AlreadyExists {
                    message: format!("Scheduled audit {name} already exists."),
                    resource_id: None,
                    resource_arn: Some(arn),
                })
            }
            Ok(Err(ScheduledAuditRefusal::LimitReached)) => {
                Err(EngineError::LimitExceeded(format!(
                    "An account can have at most {MAX_SCHEDULED_AUDITS} scheduled audits per \
                     region."
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn describe_scheduled_audit(
        &self,
        scope: &Scope,
        input: DescribeScheduledAuditRequest,
    ) -> EngineResult<DescribeScheduledAuditResponse> {
        let name = required(input.scheduled_audit_name, "scheduledAuditName")?;
        let record = self
            .store()
            .get_scheduled_audit(scope, &name)
            .await?
            .ok_or_else(|| not_found(&name))?;
        let checks = decode_check_names(&record)?;
        let m = metadata(record);
        Ok(DescribeScheduledAuditResponse {
            day_of_month: m.day_of_month,
            day_of_week: m.day_of_week,
            frequency: m.frequency,
            scheduled_audit_arn: m.scheduled_audit_arn,
            scheduled_audit_name: m.scheduled_audit_name,
            target_check_names: Some(checks),
        })
    }

    pub async fn update_scheduled_audit(
        &self,
        scope: &Scope,
        input: UpdateScheduledAuditRequest,
    ) -> EngineResult<UpdateScheduledAuditResponse> {
        let name = required(input.scheduled_audit_name, "scheduledAuditName")?;
        let existing = self
            .store()
            .get_scheduled_audit(scope, &name)
            .await?
            .ok_or_else(|| not_found(&name))?;
        let frequency = input
            .frequency
            .unwrap_or_else(|| AuditFrequency::from_wire(&existing.frequency));
        let days = days(
            &frequency,
            input.day_of_week.as_ref(),
            input.day_of_month.as_deref(),
            existing.day_of_week.as_deref(),
            existing.day_of_month.as_deref(),
        )?;
        let checks = match input.target_check_names {
            Some(names) => {
                let config = self.audit_configuration(scope).await?;
                target_checks(names, &config)?
            }
            None => decode_check_names(&existing)?,
        };
        let now = self.now_ms();
        let timing_changed = days.frequency != existing.frequency
            || days.day_of_week != existing.day_of_week
            || days.day_of_month != existing.day_of_month;
        let timing = if timing_changed {
            Some((now, self.first_run(&days, now)?))
        } else {
            None
        };
        let update = ScheduledAuditUpdate {
            frequency: days.frequency,
            day_of_week: days.day_of_week,
            day_of_month: days.day_of_month,
            checks_json: encode_check_names(&checks)?,
            timing,
            updated_at_ms: now,
        };
        let updated = self
            .store()
            .update_scheduled_audit(scope, &name, &update)
            .await?
            .ok_or_else(|| not_found(&name))?;
        Ok(UpdateScheduledAuditResponse {
            scheduled_audit_arn: Some(updated.arn),
        })
    }

    pub async fn delete_scheduled_audit(
        &self,
        scope: &Scope,
        input: DeleteScheduledAuditRequest,
    ) -> EngineResult<DeleteScheduledAuditResponse> {
        let name = required(input.scheduled_audit_name, "scheduledAuditName")?;
        if !self.store().delete_scheduled_audit(scope, &name).await? {
            return Err(not_found(&name));
        }
        Ok(DeleteScheduledAuditResponse {})
    }

    pub async fn list_scheduled_audits(
        &self,
        scope: &Scope,
        input: ListScheduledAuditsRequest,
    ) -> EngineResult<ListScheduledAuditsResponse> {
        let tokens = &self.inner.tokens;
        let after = match input.next_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => Some(tokens.open(scope, LISTING, "", token)?),
            None => None,
        };
        let size = paging::page_size(input.max_results, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| {
            self.store()
                .list_scheduled_audits(scope, after.as_deref(), n)
        })
        .await?;
        let next_token = page.next(|last| tokens.issue(scope, LISTING, "", &last.name));
        let records = page.items;
        Ok(ListScheduledAuditsResponse {
            next_token,
            scheduled_audits: Some(records.into_iter().map(metadata).collect()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(f: &str, week: Option<&str>, month: Option<&str>) -> EngineResult<Days> {
        days(
            &AuditFrequency::from_wire(f),
            week.map(DayOfWeek::from_wire).as_ref(),
            month,
            None,
            None,
        )
    }

    #[test]
    fn create_day_rules() {
        assert!(ok("DAILY", None, None).is_ok());
        assert!(ok("DAILY", Some("MON"), None).is_err());
        assert!(ok("DAILY", None, Some("1")).is_err());
        assert!(ok("WEEKLY", Some("MON"), None).is_ok());
        assert!(ok("WEEKLY", None, None).is_err());
        assert!(ok("BIWEEKLY", Some("SUN"), Some("3")).is_err());
        assert!(ok("MONTHLY", None, Some("LAST")).is_ok());
        assert!(ok("MONTHLY", None, Some("31")).is_ok());
        assert!(ok("MONTHLY", None, None).is_err());
        assert!(ok("MONTHLY", Some("MON"), Some("1")).is_err());
        assert!(ok("MONTHLY", None, Some("32")).is_err());
        assert!(ok("HOURLY", None, None).is_err());
    }

    #[test]
    fn update_merges_day_fields() {
        let merged = |f: &str, week: Option<&str>, month: Option<&str>, kw, km| {
            days(
                &AuditFrequency::from_wire(f),
                week.map(DayOfWeek::from_wire).as_ref(),
                month,
                kw,
                km,
            )
        };
        // To DAILY: the stored day goes.
        let d = merged("DAILY", None, None, Some("MON"), None).unwrap();
        assert_eq!((d.day_of_week, d.day_of_month), (None, None));
        // WEEKLY keeps a stored day of week, drops a stored day of month.
        let d = merged("WEEKLY", None, None, Some("FRI"), Some("3")).unwrap();
        assert_eq!(
            (d.day_of_week.as_deref(), d.day_of_month),
            (Some("FRI"), None)
        );
        assert!(merged("BIWEEKLY", None, None, None, Some("3")).is_err());
        // MONTHLY: a stored day of month, or a given one.
        let d = merged("MONTHLY", None, None, Some("FRI"), Some("LAST")).unwrap();
        assert_eq!(
            (d.day_of_week, d.day_of_month.as_deref()),
            (None, Some("LAST"))
        );
        let d = merged("MONTHLY", None, Some("2"), None, Some("LAST")).unwrap();
        assert_eq!(d.day_of_month.as_deref(), Some("2"));
        assert!(merged("MONTHLY", None, None, Some("FRI"), None).is_err());
        assert!(merged("MONTHLY", Some("MON"), None, None, Some("1")).is_err());
    }
}
