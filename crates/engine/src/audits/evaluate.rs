//! Evaluating one check over the registry. Resources are read in pages and findings are
//! written in batches as they are found, so memory stays bounded however large the
//! fleet is.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use palisade_model::{PolicyVersionIdentifier, ResourceIdentifier};
use palisade_store::{
    CaCertificateRecord, CertificateFacts, CertificateInUse, CertificateKey, Scope, Store,
};

use super::catalogue::{self, Check, Evaluation};
use super::connections::ConnectionCheck;
use super::findings::Draft;
use super::revocation;
use super::sink::{in_use, Examined, Outcome, Sink, PAGE};
use crate::{Engine, EngineResult};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn days_setting(configuration: &BTreeMap<String, String>, key: &str, default: u32) -> i64 {
    configuration
        .get(key)
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(i64::from(default))
}

fn expiry(
    facts: &CertificateFacts,
    now_ms: i64,
    threshold_days: i64,
) -> Option<(&'static str, String)> {
    if facts.not_after_ms <= now_ms {
        Some((
            "CERTIFICATE_PAST_EXPIRATION",
            "Certificate has expired.".to_owned(),
        ))
    } else if facts.not_after_ms - now_ms <= threshold_days * DAY_MS {
        let days = (facts.not_after_ms - now_ms + DAY_MS - 1) / DAY_MS;
        Some((
            "CERTIFICATE_APPROACHING_EXPIRATION",
            format!("Certificate will expire in {days} day(s), within the {threshold_days}-day threshold."),
        ))
    } else {
        None
    }
}

fn device(id: &str) -> ResourceIdentifier {
    ResourceIdentifier {
        device_certificate_id: Some(id.to_owned()),
        ..ResourceIdentifier::default()
    }
}

fn ca(id: &str) -> ResourceIdentifier {
    ResourceIdentifier {
        ca_certificate_id: Some(id.to_owned()),
        ..ResourceIdentifier::default()
    }
}

/// Reads the certificates of kind `R` page by page, feeding every one in use to
/// `judge`; how many were examined.
async fn examine_pages<R: Examined>(
    store: &dyn Store,
    scope: &Scope,
    sink: &mut Sink<'_>,
    judge: impl Fn(&R) -> Option<Draft>,
) -> EngineResult<i64> {
    let mut after: Option<CertificateKey> = None;
    let mut total = 0;
    loop {
        let page = R::page(store, scope, after.as_ref()).await?;
        for cert in page.iter().filter(|c| in_use(c.status())) {
            total += 1;
            if let Some(draft) = judge(cert) {
                sink.push(draft).await?;
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.key()),
            _ => return Ok(total),
        }
    }
}

/// A test of one certificate that needs nothing but the certificate.
type PlainJudge = Box<dyn Fn(&CertificateInUse) -> Option<Draft> + Send + Sync>;

/// How a device certificate check judges one certificate in the shared pass.
pub(crate) enum DeviceJudge {
    /// From the certificate alone, without I/O.
    Plain(PlainJudge),
    /// Against its issuer's CRL (REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK), through a
    /// resolver that fetches and caches CRLs for the length of the pass.
    Revocation,
}

/// How a check that examines each device certificate judges one; `None` for other
/// checks. Such checks share one pass over the fleet (see
/// [`Engine::evaluate_device_checks`]).
pub(crate) fn device_judge(
    check: &Check,
    configuration: &BTreeMap<String, String>,
    now_ms: i64,
) -> Option<DeviceJudge> {
    Some(match check.evaluation {
        Evaluation::DeviceCertificateExpiring => {
            let threshold = days_setting(
                configuration,
                catalogue::CERT_EXPIRATION_THRESHOLD_IN_DAYS,
                30,
            );
            DeviceJudge::Plain(Box::new(move |c: &CertificateInUse| {
                expiry(&c.facts, now_ms, threshold).map(|(code, reason)| Draft {
                    resource: device(&c.id),
                    reason_code: code,
                    reason,
                })
            }))
        }
        Evaluation::DeviceCertificateAge => {
            let threshold = days_setting(configuration, catalogue::CERT_AGE_THRESHOLD_IN_DAYS, 365);
            DeviceJudge::Plain(Box::new(move |c: &CertificateInUse| {
                let age_days = (now_ms - c.created_at_ms).div_euclid(DAY_MS);
                (age_days >= threshold).then(|| Draft {
                    resource: device(&c.id),
                    reason_code: "CERTIFICATE_PAST_AGE_THRESHOLD",
                    reason: format!(
                        "Certificate has been active for {age_days} day(s), at or past the \
                         {threshold}-day threshold."
                    ),
                })
            }))
        }
        Evaluation::DeviceCertificateKeyQuality => {
            DeviceJudge::Plain(Box::new(|c: &CertificateInUse| {
                palisade_key_quality::check_spki(&c.facts.public_key_der).map(|v| Draft {
                    resource: device(&c.id),
                    reason_code: v.reason_code(),
                    reason: v.reason().to_owned(),
                })
            }))
        }
        Evaluation::RevokedDeviceCertificate => DeviceJudge::Revocation,
        _ => return None,
    })
}

impl Engine {
    /// A sink for `check`'s findings, with the check's suppressions in force now.
    async fn sink<'a>(
        &'a self,
        scope: &'a Scope,
        task_id: &'a str,
        task_start_ms: i64,
        check: &'static Check,
        now_ms: i64,
    ) -> EngineResult<Sink<'a>> {
        let suppressed_keys = self
            .store()
            .active_audit_suppression_keys(scope, check.name, now_ms)
            .await?
            .into_iter()
            .collect();
        Ok(Sink::new(
            self,
            scope,
            (task_id, task_start_ms),
            check,
            now_ms,
            suppressed_keys,
        ))
    }

    /// Runs several device certificate checks that have a [`device_judge`] in one pass
    /// over the fleet: the read of a million certificates is most of such a check's
    /// cost, so each certificate is read once and judged by all of them. One outcome
    /// per check, in the order given.
    pub(crate) async fn evaluate_device_checks(
        &self,
        scope: &Scope,
        task_id: &str,
        task_start_ms: i64,
        checks: &[(&'static Check, DeviceJudge)],
    ) -> EngineResult<Vec<Outcome>> {
        let now_ms = self.now_ms();
        let mut sinks = Vec::with_capacity(checks.len());
        for (check, _) in checks {
            sinks.push(
                self.sink(scope, task_id, task_start_ms, check, now_ms)
                    .await?,
            );
        }
        let mut resolver = revocation::Resolver::new(self, scope);
        let mut pages = self.store().certificates_in_use(scope, PAGE, now_ms);
        let mut total = 0;
        while let Some(page) = pages.next().await {
            for cert in &page? {
                total += 1;
                for ((_, judge), sink) in checks.iter().zip(sinks.iter_mut()) {
                    let draft = match judge {
                        DeviceJudge::Plain(judge) => judge(cert),
                        DeviceJudge::Revocation => {
                            revocation::judge_device_certificate(&mut resolver, cert).await?
                        }
                    };
                    if let Some(draft) = draft {
                        sink.push(draft).await?;
                    }
                }
            }
        }
        let mut outcomes = Vec::with_capacity(sinks.len());
        for ((_, judge), mut sink) in checks.iter().zip(sinks) {
            sink.flush().await?;
            outcomes.push(match judge {
                DeviceJudge::Plain(_) => Outcome::Completed {
                    total,
                    non_compliant: sink.found,
                    suppressed: sink.suppressed,
                    message: None,
                },
                DeviceJudge::Revocation => {
                    let scan = resolver.scan(total, "device certificate(s)");
                    let note = scan.note.clone();
                    match scan.into_result(&mut sink).await? {
                        Ok(total) => Outcome::Completed {
                            total,
                            non_compliant: sink.found,
                            suppressed: sink.suppressed,
                            message: note,
                        },
                        Err(failed) => failed,
                    }
                }
            });
        }
        Ok(outcomes)
    }

    /// Runs `check` for the task, writing its findings; what it examined and found.
    pub(crate) async fn evaluate_check(
        &self,
        scope: &Scope,
        task_id: &str,
        task_start_ms: i64,
        check: &'static Check,
        configuration: &BTreeMap<String, String>,
    ) -> EngineResult<Outcome> {
        let now_ms = self.now_ms();
        if let Some(judge) = device_judge(check, configuration, now_ms) {
            let mut outcomes = self
                .evaluate_device_checks(scope, task_id, task_start_ms, &[(check, judge)])
                .await?;
            return outcomes.pop().ok_or_else(|| {
                crate::EngineError::Internal("a device pass lost its check".into())
            });
        }
        let mut sink = self
            .sink(scope, task_id, task_start_ms, check, now_ms)
            .await?;
        let mut message = None;
        let total = match check.evaluation {
            Evaluation::Iam(which) => {
                match self
                    .evaluate_iam_check(scope, &mut sink, which, task_start_ms)
                    .await?
                {
                    Ok((total, note)) => {
                        message = note;
                        total
                    }
                    Err(failed) => return Ok(failed),
                }
            }
            Evaluation::DeviceCertificateExpiring
            | Evaluation::DeviceCertificateAge
            | Evaluation::DeviceCertificateKeyQuality
            | Evaluation::RevokedDeviceCertificate => {
                // Handled above, by the shared device certificate pass.
                return Err(crate::EngineError::Internal(format!(
                    "{} reached the single-check path",
                    check.name
                )));
            }
            Evaluation::CaCertificateExpiring => {
                self.ca_certificates(scope, &mut sink, |c| {
                    expiry(&c.facts, now_ms, 30).map(|(code, reason)| Draft {
                        resource: ca(&c.id),
                        reason_code: code,
                        reason,
                    })
                })
                .await?
            }
            Evaluation::CaCertificateKeyQuality => {
                self.ca_certificates(scope, &mut sink, |c| {
                    palisade_key_quality::check_spki(&c.facts.public_key_der).map(|v| Draft {
                        resource: ca(&c.id),
                        reason_code: v.reason_code(),
                        reason: v.reason().to_owned(),
                    })
                })
                .await?
            }
            Evaluation::PolicyOverlyPermissive | Evaluation::PolicyPotentialMisconfiguration => {
                let permissive = check.evaluation == Evaluation::PolicyOverlyPermissive;
                self.policies(scope, &mut sink, |analysis| {
                    if permissive {
                        analysis.overly_permissive.into_iter().collect()
                    } else {
                        analysis.misconfigurations
                    }
                })
                .await?
            }
            Evaluation::RevokedCaCertificate => {
                let scan = self.revoked_ca_certificates(scope, &mut sink).await?;
                message = scan.note.clone();
                match scan.into_result(&mut sink).await? {
                    Ok(total) => total,
                    Err(failed) => return Ok(failed),
                }
            }
            Evaluation::IntermediateCaRevoked => {
                let scan = self.revoked_intermediate_cas(scope, &mut sink).await?;
                message = scan.note.clone();
                match scan.into_result(&mut sink).await? {
                    Ok(total) => total,
                    Err(failed) => return Ok(failed),
                }
            }
            Evaluation::SharedCertificate => {
                self.evaluate_connection_check(
                    scope,
                    &mut sink,
                    ConnectionCheck::SharedCertificate,
                    task_start_ms,
                )
                .await?
            }
            Evaluation::ConflictingClientIds => {
                self.evaluate_connection_check(
                    scope,
                    &mut sink,
                    ConnectionCheck::ConflictingClientIds,
                    task_start_ms,
                )
                .await?
            }
            Evaluation::LoggingDisabled => {
                let v2 = self.store().get_v2_logging_options(scope).await?;
                let v1 = self.store().get_logging_options(scope).await?;
                let v2_on = v2.is_some_and(|o| {
                    !o.disable_all_logs
                        && o.default_log_level
                            .as_deref()
                            .is_some_and(|l| l != "DISABLED")
                });
                let v1_on =
                    v1.is_some_and(|o| o.log_level.as_deref().is_some_and(|l| l != "DISABLED"));
                if !v1_on && !v2_on {
                    sink.push(Draft {
                        resource: ResourceIdentifier {
                            account: Some(scope.account_id.clone()),
                            ..ResourceIdentifier::default()
                        },
                        reason_code: "LOGGING_DISABLED",
                        reason: "Logging to CloudWatch is not enabled (neither v1 nor v2 logging \
                                 options enable it)."
                            .to_owned(),
                    })
                    .await?;
                }
                1
            }
        };
        sink.flush().await?;
        Ok(Outcome::Completed {
            total,
            non_compliant: sink.found,
            suppressed: sink.suppressed,
            message,
        })
    }

    /// Feeds every active CA certificate to `judge`; how many there were.
    async fn ca_certificates(
        &self,
        scope: &Scope,
        sink: &mut Sink<'_>,
        judge: impl Fn(&CaCertificateRecord) -> Option<Draft>,
    ) -> EngineResult<i64> {
        examine_pages(self.store(), scope, sink, judge).await
    }

    /// Analyses every policy's default version; `pick` chooses the findings of the check.
    async fn policies(
        &self,
        scope: &Scope,
        sink: &mut Sink<'_>,
        pick: impl Fn(palisade_iot_policy::Analysis) -> Vec<palisade_iot_policy::Finding>,
    ) -> EngineResult<i64> {
        let mut after: Option<String> = None;
        let mut total = 0;
        loop {
            let page = self
                .store()
                .list_policies_with_default_versions(scope, after.as_deref(), PAGE)
                .await?;
            for (policy, version) in &page {
                // A policy always has its default version; the outer join keeps pages
                // full-length (so paging stays right) even if one were missing.
                let Some(version) = version else {
                    continue;
                };
                total += 1;
                // Documents were validated when stored; one that no longer parses has
                // nothing the analyser can judge.
                let Ok(analysis) = palisade_iot_policy::analyse(
                    &version.document,
                    &scope.account_id,
                    &scope.region,
                ) else {
                    continue;
                };
                for finding in pick(analysis) {
                    sink.push(Draft {
                        resource: ResourceIdentifier {
                            policy_version_identifier: Some(PolicyVersionIdentifier {
                                policy_name: Some(policy.name.clone()),
                                policy_version_id: Some(version.version_id.to_string()),
                            }),
                            ..ResourceIdentifier::default()
                        },
                        reason_code: finding.reason_code,
                        reason: finding.reason,
                    })
                    .await?;
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.0.name.clone()),
                _ => return Ok(total),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(not_after_ms: i64) -> CertificateFacts {
        CertificateFacts {
            subject: String::new(),
            issuer: String::new(),
            subject_der: Vec::new(),
            issuer_der: Vec::new(),
            serial_number: String::new(),
            not_before_ms: 0,
            not_after_ms,
            key_algorithm: "EC".into(),
            key_bits: Some(256),
            key_curve: Some("P-256".into()),
            public_key_der: Vec::new(),
            crl_distribution_points: Vec::new(),
        }
    }

    #[test]
    fn expiry_boundaries() {
        let now = 1_000 * DAY_MS;
        let code = |not_after| expiry(&facts(not_after), now, 30).map(|(c, _)| c);
        assert_eq!(code(now), Some("CERTIFICATE_PAST_EXPIRATION"));
        assert_eq!(code(now - 1), Some("CERTIFICATE_PAST_EXPIRATION"));
        assert_eq!(code(now + 1), Some("CERTIFICATE_APPROACHING_EXPIRATION"));
        assert_eq!(
            code(now + 30 * DAY_MS),
            Some("CERTIFICATE_APPROACHING_EXPIRATION")
        );
        assert_eq!(code(now + 30 * DAY_MS + 1), None);
    }

    #[test]
    fn thresholds_fall_back_to_defaults() {
        let mut c = BTreeMap::new();
        assert_eq!(days_setting(&c, "K", 30), 30);
        c.insert("K".to_owned(), "45".to_owned());
        assert_eq!(days_setting(&c, "K", 30), 45);
    }
}
