//! The scheduler: starts each scheduled audit once per period, on one node of many.
//!
//! Every schedule row carries `next_run_ms`, its next occurrence not yet started. Each
//! node runs a scheduler loop beside its audit worker that ticks about once a second:
//! one indexed read of the schedules of every account that are due
//! (`next_run_ms <= now`), and for each, one store transaction that moves `next_run_ms`
//! to the first occurrence after now only if it still holds the value read
//! (compare-and-set) and inserts the SCHEDULED_AUDIT_TASK with its work item. Of several
//! nodes ticking together exactly one wins; the task id is derived from the schedule and
//! the occurrence, so even a replayed start is a no-op.
//!
//! Catch-up: a node that was down (or a database nobody ticked on) finds the schedule
//! due with `next_run_ms` in the past. Only the most recent occurrence at or before now
//! runs, once; the ones in between are skipped, and occurrences before the schedule's
//! timing was set (its anchor) never run.
//!
//! Occurrences are computed in UTC by the pure functions of [`Timing`]: the time of day
//! is the server's `scheduled_audit_time_s`, and the day comes from the schedule.

use std::time::Duration;

use palisade_store::{
    AuditTaskRecord, DueScheduledAudit, NewWorkItem, ScheduledAuditRecord, ScheduledRunOutcome,
    Scope,
};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::catalogue;
use super::tasks::{new_task, CheckProgress, TaskChecks, IN_PROGRESS};
use crate::{Engine, EngineError, EngineResult};

pub(crate) const DAY_MS: i64 = 24 * 60 * 60 * 1000;
pub(crate) const SCHEDULED: &str = "SCHEDULED_AUDIT_TASK";
/// How often a worker looks for due schedules.
const TICK_EVERY: Duration = Duration::from_secs(1);
/// Due schedules handled per tick; more wait for the next tick, a second later.
const DUE_BATCH: usize = 100;
/// More days than any two consecutive occurrences are apart (a month, or a fortnight
/// plus the days to the first weekday), bounding every calendar walk.
const MAX_GAP_DAYS: i64 = 62;

/// Which days a schedule runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cadence {
    Daily,
    /// Weekday 0 is Sunday.
    Weekly(u32),
    /// Every other week on the weekday, counted from the first such day at or after
    /// the anchor.
    Biweekly(u32),
    Monthly(MonthDay),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MonthDay {
    /// 1 to 31; a month shorter than that runs on its last day.
    Day(u32),
    Last,
}

/// When a schedule's occurrences are, all in UTC milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub cadence: Cadence,
    /// Milliseconds after midnight.
    pub time_of_day_ms: i64,
    /// No occurrence is before it.
    pub anchor_ms: i64,
}

/// The wire names of `DayOfWeek`, Sunday first as in [`Cadence`].
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

pub(crate) fn weekday_number(name: &str) -> Option<u32> {
    WEEKDAYS.iter().position(|d| *d == name).map(|i| i as u32)
}

/// Parses a `dayOfMonth`: `1`..`31` or `LAST`.
pub(crate) fn month_day(text: &str) -> Option<MonthDay> {
    if text == "LAST" {
        return Some(MonthDay::Last);
    }
    let n: u32 = text.parse().ok()?;
    ((1..=31).contains(&n) && !text.starts_with('0')).then_some(MonthDay::Day(n))
}

impl Cadence {
    /// The cadence of a frequency with its day fields, if they fit together.
    pub(crate) fn from_parts(
        frequency: &str,
        day_of_week: Option<&str>,
        day_of_month: Option<&str>,
    ) -> Option<Cadence> {
        match (frequency, day_of_week, day_of_month) {
            ("DAILY", None, None) => Some(Cadence::Daily),
            ("WEEKLY", Some(d), None) => weekday_number(d).map(Cadence::Weekly),
            ("BIWEEKLY", Some(d), None) => weekday_number(d).map(Cadence::Biweekly),
            ("MONTHLY", None, Some(d)) => month_day(d).map(Cadence::Monthly),
            _ => None,
        }
    }
}

/// Days since 1970-01-01 → (year, month 1..12, day 1..31), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// 0 is Sunday; 1970-01-01 was a Thursday.
pub(crate) fn weekday_of(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

impl Timing {
    fn at(&self, day: i64) -> i64 {
        day * DAY_MS + self.time_of_day_ms
    }

    /// The first day at or after the anchor whose occurrence time is not before it.
    fn first_day(&self) -> i64 {
        let day = self.anchor_ms.div_euclid(DAY_MS);
        if self.at(day) < self.anchor_ms {
            day + 1
        } else {
            day
        }
    }

    fn occurs_on(&self, day: i64) -> bool {
        match self.cadence {
            Cadence::Daily => true,
            Cadence::Weekly(weekday) => weekday_of(day) == weekday,
            Cadence::Biweekly(weekday) => {
                let first = self.first_day();
                let first = first + i64::from((weekday + 7 - weekday_of(first)) % 7);
                day >= first && (day - first) % 14 == 0
            }
            Cadence::Monthly(wanted) => {
                let (year, month, dom) = civil_from_days(day);
                let last = days_in_month(year, month);
                dom == match wanted {
                    MonthDay::Day(n) => n.min(last),
                    MonthDay::Last => last,
                }
            }
        }
    }

    /// The first occurrence at or after `t` (and not before the anchor).
    pub(crate) fn first_at_or_after(&self, t: i64) -> i64 {
        let t = t.max(self.anchor_ms);
        let mut day = t.div_euclid(DAY_MS);
        if self.at(day) < t {
            day += 1;
        }
        for _ in 0..MAX_GAP_DAYS {
            if self.occurs_on(day) {
                break;
            }
            day += 1;
        }
        self.at(day)
    }

    /// The latest occurrence at or before `t`, unless that would be before the anchor.
    pub(crate) fn latest_at_or_before(&self, t: i64) -> Option<i64> {
        let mut day = t.div_euclid(DAY_MS);
        if self.at(day) > t {
            day -= 1;
        }
        for _ in 0..MAX_GAP_DAYS {
            let at = self.at(day);
            if at < self.anchor_ms {
                return None;
            }
            if self.occurs_on(day) {
                return Some(at);
            }
            day -= 1;
        }
        None
    }
}

impl Engine {
    /// Starts due scheduled audits about once a second until `stopped`. It runs beside
    /// the audit worker rather than between its tasks, so a long audit on this node does
    /// not delay a schedule that falls due meanwhile.
    pub(crate) async fn scheduler_loop(self, mut stopped: watch::Receiver<bool>) {
        loop {
            if *stopped.borrow() {
                return;
            }
            if let Err(e) = self.run_due_scheduled_audits().await {
                tracing::warn!(error = %e, "scheduler: starting due scheduled audits failed");
            }
            tokio::select! {
                _ = stopped.changed() => {}
                _ = tokio::time::sleep(TICK_EVERY) => {}
            }
        }
    }
}

/// The id of the task one occurrence of one schedule starts: the same on every node,
/// so a start replayed anywhere inserts nothing new. The creation time tells a schedule
/// from an earlier one of the same name.
fn scheduled_task_id(scope: &Scope, record: &ScheduledAuditRecord, occurrence_ms: i64) -> String {
    let mut hash = Sha256::new();
    for part in [
        scope.account_id.as_str(),
        scope.region.as_str(),
        record.name.as_str(),
        &record.created_at_ms.to_string(),
        &occurrence_ms.to_string(),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Engine {
    pub(crate) fn scheduled_time_of_day_ms(&self) -> i64 {
        i64::from(self.audit_settings().scheduled_audit_time_s) * 1000
    }

    /// The timing of a stored schedule under the server's time of day.
    pub(crate) fn timing_of(&self, record: &ScheduledAuditRecord) -> EngineResult<Timing> {
        let cadence = Cadence::from_parts(
            &record.frequency,
            record.day_of_week.as_deref(),
            record.day_of_month.as_deref(),
        )
        .ok_or_else(|| {
            EngineError::Internal(format!(
                "stored scheduled audit {} has an unreadable timing",
                record.name
            ))
        })?;
        Ok(Timing {
            cadence,
            time_of_day_ms: self.scheduled_time_of_day_ms(),
            anchor_ms: record.anchor_ms,
        })
    }

    /// One scheduler tick: starts every due schedule's run (up to a batch); returns how
    /// many tasks this node started.
    pub(crate) async fn run_due_scheduled_audits(&self) -> EngineResult<usize> {
        let now = self.now_ms();
        let due = self.store().due_scheduled_audits(now, DUE_BATCH).await?;
        let mut started = 0;
        for schedule in &due {
            match self.start_due(schedule, now).await {
                Ok(true) => started += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    account = %schedule.scope.account_id,
                    scheduled_audit = %schedule.record.name,
                    error = %e,
                    "scheduler: starting a scheduled audit failed; retried next tick"
                ),
            }
        }
        if started > 0 {
            self.inner.audit_wakeup.notify_one();
        }
        Ok(started)
    }

    async fn start_due(&self, due: &DueScheduledAudit, now: i64) -> EngineResult<bool> {
        let record = &due.record;
        let timing = self.timing_of(record)?;
        let next = timing.first_at_or_after(now.saturating_add(1));
        // An occurrence earlier than the stored next run was started already (or
        // precedes a change of the server's time of day): never start it again.
        let occurrence = timing
            .latest_at_or_before(now)
            .filter(|o| *o >= record.next_run_ms);
        let start = match occurrence {
            Some(o) => Some(self.scheduled_task(&due.scope, record, o, now).await?),
            None => None,
        };
        let outcome = self
            .store()
            .advance_scheduled_audit(
                &due.scope,
                &record.name,
                record.next_run_ms,
                next,
                start.as_ref().map(|(task, work)| (task, work)),
            )
            .await?;
        if outcome == ScheduledRunOutcome::Started {
            if let Some((task, _)) = &start {
                tracing::info!(
                    account = %due.scope.account_id,
                    scheduled_audit = %record.name,
                    task = %task.task_id,
                    "scheduled audit started"
                );
            }
        }
        Ok(outcome == ScheduledRunOutcome::Started)
    }

    /// The task (and its work item) one occurrence starts, with the schedule's checks
    /// as they are now. A check disabled since the schedule was made (possible only by
    /// racing the two requests) fails alone with AUDIT_CHECK_DISABLED.
    async fn scheduled_task(
        &self,
        scope: &Scope,
        record: &ScheduledAuditRecord,
        occurrence_ms: i64,
        now: i64,
    ) -> EngineResult<(AuditTaskRecord, NewWorkItem)> {
        let names = super::scheduled_checks::decode_check_names(record)?;
        let config = self.audit_configuration(scope).await?;
        let mut checks = TaskChecks::new();
        for name in names {
            let failed = |code: &str, message: String| CheckProgress {
                status: "FAILED".into(),
                configuration: Default::default(),
                total: 0,
                non_compliant: 0,
                suppressed: 0,
                error_code: Some(code.into()),
                message: Some(message),
            };
            let progress = match catalogue::find(&name) {
                Some(check) if config.is_enabled(check.name) => CheckProgress {
                    status: IN_PROGRESS.into(),
                    configuration: config.effective_configuration(check),
                    total: 0,
                    non_compliant: 0,
                    suppressed: 0,
                    error_code: None,
                    message: None,
                },
                Some(_) => failed(
                    "AUDIT_CHECK_DISABLED",
                    format!("{name} is not enabled in the account's audit configuration."),
                ),
                None => failed(
                    "CHECK_NOT_SUPPORTED",
                    format!("{name} is not a check this Palisade knows."),
                ),
            };
            checks.insert(name, progress);
        }
        let task_id = scheduled_task_id(scope, record, occurrence_ms);
        new_task(
            scope,
            &task_id,
            SCHEDULED,
            Some(record.name.clone()),
            &checks,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 60 * 60 * 1000;

    fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        // Inverse of civil_from_days, found by search around an estimate: tests only.
        let estimate = (year - 1970) * 365 + (year - 1969) / 4 + i64::from(month - 1) * 30;
        (estimate - 40..estimate + 40)
            .find(|d| civil_from_days(*d) == (year, month, day))
            .expect("a valid date")
    }

    /// Milliseconds of `year-month-day hour:00` UTC.
    fn utc(year: i64, month: u32, day: u32, hour: i64) -> i64 {
        days_from_civil(year, month, day) * DAY_MS + hour * HOUR
    }

    fn timing(cadence: Cadence, anchor_ms: i64) -> Timing {
        Timing {
            cadence,
            time_of_day_ms: 3 * HOUR,
            anchor_ms,
        }
    }

    #[test]
    fn civil_calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(weekday_of(0), 4);
        // 2024-02-29 was a Thursday, 2030-01-06 a Sunday.
        assert_eq!(weekday_of(days_from_civil(2024, 2, 29)), 4);
        assert_eq!(weekday_of(days_from_civil(2030, 1, 6)), 0);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2023, 4), 30);
        assert_eq!(days_in_month(2023, 12), 31);
        // Consecutive days are consecutive dates, across a leap day and a year end.
        let mut prev = civil_from_days(days_from_civil(1999, 12, 31));
        for d in days_from_civil(2000, 1, 1)..days_from_civil(2000, 1, 1) + 800 {
            let (y, m, day) = civil_from_days(d);
            assert!(
                (day == prev.2 + 1 && m == prev.1)
                    || (day == 1 && (m == prev.1 + 1 || (m == 1 && y == prev.0 + 1))),
                "{prev:?} -> {:?}",
                (y, m, day)
            );
            prev = (y, m, day);
        }
    }

    #[test]
    fn parsing_parts() {
        assert_eq!(
            Cadence::from_parts("DAILY", None, None),
            Some(Cadence::Daily)
        );
        assert_eq!(
            Cadence::from_parts("WEEKLY", Some("WED"), None),
            Some(Cadence::Weekly(3))
        );
        assert_eq!(
            Cadence::from_parts("BIWEEKLY", Some("SUN"), None),
            Some(Cadence::Biweekly(0))
        );
        assert_eq!(
            Cadence::from_parts("MONTHLY", None, Some("LAST")),
            Some(Cadence::Monthly(MonthDay::Last))
        );
        assert_eq!(
            Cadence::from_parts("MONTHLY", None, Some("31")),
            Some(Cadence::Monthly(MonthDay::Day(31)))
        );
        for bad in [
            Cadence::from_parts("DAILY", Some("MON"), None),
            Cadence::from_parts("WEEKLY", None, None),
            Cadence::from_parts("WEEKLY", Some("MON"), Some("1")),
            Cadence::from_parts("MONTHLY", None, Some("32")),
            Cadence::from_parts("MONTHLY", None, Some("0")),
            Cadence::from_parts("MONTHLY", None, Some("01")),
            Cadence::from_parts("MONTHLY", Some("MON"), Some("1")),
            Cadence::from_parts("HOURLY", None, None),
        ] {
            assert_eq!(bad, None);
        }
    }

    #[test]
    fn daily() {
        let created = utc(2030, 1, 7, 12);
        let t = timing(Cadence::Daily, created);
        // 03:00 that day is before the creation: the first run is the next day.
        assert_eq!(t.first_at_or_after(created), utc(2030, 1, 8, 3));
        assert_eq!(t.latest_at_or_before(created), None);
        assert_eq!(t.latest_at_or_before(utc(2030, 1, 8, 2)), None);
        assert_eq!(
            t.latest_at_or_before(utc(2030, 1, 8, 3)),
            Some(utc(2030, 1, 8, 3))
        );
        assert_eq!(
            t.first_at_or_after(utc(2030, 1, 8, 3) + 1),
            utc(2030, 1, 9, 3)
        );
        // Catch-up after days away: only the latest.
        assert_eq!(
            t.latest_at_or_before(utc(2030, 1, 20, 1)),
            Some(utc(2030, 1, 19, 3))
        );
        // Created just before the time of day: it runs that same day.
        let t = timing(Cadence::Daily, utc(2030, 1, 7, 2));
        assert_eq!(t.first_at_or_after(t.anchor_ms), utc(2030, 1, 7, 3));
    }

    #[test]
    fn weekly_only_on_its_day() {
        // 2030-01-07 is a Monday; WED = 3.
        let t = timing(Cadence::Weekly(3), utc(2030, 1, 7, 12));
        assert_eq!(t.first_at_or_after(t.anchor_ms), utc(2030, 1, 9, 3));
        assert_eq!(t.latest_at_or_before(utc(2030, 1, 8, 23)), None);
        assert_eq!(
            t.latest_at_or_before(utc(2030, 1, 15, 23)),
            Some(utc(2030, 1, 9, 3))
        );
        assert_eq!(
            t.first_at_or_after(utc(2030, 1, 9, 3) + 1),
            utc(2030, 1, 16, 3)
        );
        for day in 7..=20 {
            let at = utc(2030, 1, day, 3);
            assert_eq!(
                t.occurs_on(at.div_euclid(DAY_MS)),
                day == 9 || day == 16,
                "day {day}"
            );
        }
    }

    #[test]
    fn biweekly_counts_from_the_first_day_after_creation() {
        // Created Monday 2030-01-07 at noon; MON: the first run is the next Monday.
        let t = timing(Cadence::Biweekly(1), utc(2030, 1, 7, 12));
        assert_eq!(t.first_at_or_after(t.anchor_ms), utc(2030, 1, 14, 3));
        assert_eq!(
            t.first_at_or_after(utc(2030, 1, 14, 3) + 1),
            utc(2030, 1, 28, 3)
        );
        assert_eq!(
            t.latest_at_or_before(utc(2030, 1, 27, 3)),
            Some(utc(2030, 1, 14, 3))
        );
        assert_eq!(
            t.latest_at_or_before(utc(2030, 2, 12, 3)),
            Some(utc(2030, 2, 11, 3))
        );
        assert_eq!(t.latest_at_or_before(utc(2030, 1, 13, 3)), None);
        // Created on the day before the time: that day is the first.
        let t = timing(Cadence::Biweekly(1), utc(2030, 1, 7, 1));
        assert_eq!(t.first_at_or_after(t.anchor_ms), utc(2030, 1, 7, 3));
        assert_eq!(t.first_at_or_after(utc(2030, 1, 7, 4)), utc(2030, 1, 21, 3));
    }

    #[test]
    fn monthly_falls_back_to_the_last_day() {
        let anchor = utc(2030, 1, 1, 0);
        let t31 = timing(Cadence::Monthly(MonthDay::Day(31)), anchor);
        let last = timing(Cadence::Monthly(MonthDay::Last), anchor);
        let t29 = timing(Cadence::Monthly(MonthDay::Day(29)), anchor);
        let t15 = timing(Cadence::Monthly(MonthDay::Day(15)), anchor);
        let mut at = anchor;
        let mut runs31 = Vec::new();
        for _ in 0..6 {
            at = t31.first_at_or_after(at + 1);
            runs31.push(civil_from_days(at.div_euclid(DAY_MS)));
        }
        assert_eq!(
            runs31,
            [
                (2030, 1, 31),
                (2030, 2, 28),
                (2030, 3, 31),
                (2030, 4, 30),
                (2030, 5, 31),
                (2030, 6, 30)
            ]
        );
        assert_eq!(
            last.first_at_or_after(utc(2030, 2, 1, 0)),
            utc(2030, 2, 28, 3)
        );
        assert_eq!(
            t29.first_at_or_after(utc(2030, 2, 1, 0)),
            utc(2030, 2, 28, 3)
        );
        assert_eq!(
            t15.first_at_or_after(utc(2030, 2, 16, 0)),
            utc(2030, 3, 15, 3)
        );
        // Leap years: the 29th exists.
        let leap = timing(Cadence::Monthly(MonthDay::Day(31)), utc(2028, 2, 1, 0));
        assert_eq!(leap.first_at_or_after(leap.anchor_ms), utc(2028, 2, 29, 3));
        assert_eq!(
            leap.latest_at_or_before(utc(2028, 3, 30, 0)),
            Some(utc(2028, 2, 29, 3))
        );
        let leap29 = timing(Cadence::Monthly(MonthDay::Day(29)), utc(2028, 2, 1, 0));
        assert_eq!(
            leap29.first_at_or_after(leap29.anchor_ms),
            utc(2028, 2, 29, 3)
        );
        // Catch-up over months: only the most recent.
        assert_eq!(
            t15.latest_at_or_before(utc(2030, 7, 20, 0)),
            Some(utc(2030, 7, 15, 3))
        );
    }

    #[test]
    fn task_ids_are_stable_and_distinct() {
        let scope = Scope {
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
        };
        let record = ScheduledAuditRecord {
            name: "nightly".into(),
            arn: String::new(),
            frequency: "DAILY".into(),
            day_of_week: None,
            day_of_month: None,
            checks_json: "[]".into(),
            anchor_ms: 1,
            next_run_ms: 2,
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        let a = scheduled_task_id(&scope, &record, 1_000);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, scheduled_task_id(&scope, &record, 1_000));
        assert_ne!(a, scheduled_task_id(&scope, &record, 1_001));
        let recreated = ScheduledAuditRecord {
            created_at_ms: 5,
            ..record.clone()
        };
        assert_ne!(a, scheduled_task_id(&scope, &recreated, 1_000));
    }
}
