//! `fleet`: writes a JSON Lines fleet for `palisade fleet import` (docs/IMPORT.md): N
//! things, each with a certificate of its own, and optionally policies and registered CAs
//! issuing the certificates, for the audit benchmark.
//!
//! Certificates are cheap to make in bulk: one device key is certified over and over,
//! each certificate with its own subject (`CN=<thing name>`) and serial number, so every
//! certificate (and so its id, the SHA-256 of its DER) is distinct. Signing runs on
//! `workers` threads; lines are written in order.
//!
//! Without CAs (`cas == 0`, the registry benchmark's fleet), one unregistered CA key signs
//! everything and each thing line carries its certificate (the `certificatePem`
//! shorthand, registered without a CA). With CAs, certificate `i` is issued by CA
//! `i % cas`; the import format has no CA line, so the CAs go to a file of their own
//! (`cas_out`, one `{"name", "pem"}` object per line) to be registered through the API
//! (`palisade-loadgen register-cas`) before the import, and each device is a `thing` line
//! plus a `certificate` line naming its CA (`caPem`) and its thing.
//!
//! The defaults make the registry benchmark's fleet (no policies, no CAs, nothing
//! expiring), line for line in the same shape as before these options existed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName, DnType, IsCa,
    Issuer, KeyPair, SerialNumber,
};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// Lines made per round (one slice per worker), then written.
const ROUND: usize = 8_192;
/// Expiring certificates end this many days after generation: inside the audit's default
/// 30-day threshold, and still counted (as expired) if the cached fleet is audited later.
const EXPIRING_DAYS: i64 = 10;

pub fn thing_name(i: u64) -> String {
    format!("bench-thing-{i:07}")
}

pub fn policy_name(i: u64) -> String {
    format!("bench-policy-{i:06}")
}

fn ca_name(k: u64) -> String {
    format!("bench-ca-{k:04}")
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Things, each with one device certificate.
    pub things: u64,
    /// Number of the first thing.
    pub first: u64,
    /// Registered CAs issuing the device certificates; 0: one unregistered issuer.
    pub cas: u64,
    /// The first `expiring_cas` CAs expire within the audit threshold.
    pub expiring_cas: u64,
    /// Policies (see [`policy_document`] for the mix); certificate `i` gets policy
    /// `i % policies`.
    pub policies: u64,
    /// Device certificates per thousand that expire within the audit threshold.
    pub expiring_per_mille: u32,
    /// When set, device certificates carry a CRL distribution point
    /// `{base}/<issuer name>.crl`, for the revocation checks.
    pub crl_url_base: Option<String>,
    /// Where the CAs go (only with `cas > 0`).
    pub cas_out: Option<PathBuf>,
    /// The account and region the policies' ARNs name: the ones the fleet is imported
    /// into, or the policy analysis cannot tell a device's own resources from others'.
    pub account_id: String,
    pub region: String,
    pub workers: usize,
}

impl FleetSpec {
    /// The registry benchmark's fleet: things with certificates, nothing else.
    #[cfg(test)]
    pub fn plain(things: u64, first: u64, workers: usize) -> Self {
        Self {
            things,
            first,
            cas: 0,
            expiring_cas: 0,
            policies: 0,
            expiring_per_mille: 0,
            crl_url_base: None,
            cas_out: None,
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            workers,
        }
    }

    fn check(&self) -> Result<()> {
        if self.expiring_per_mille > 1000 {
            bail!("--expiring-per-mille must be at most 1000");
        }
        if self.expiring_cas > self.cas {
            bail!("--expiring-cas must be at most --cas");
        }
        if self.cas > 10_000 {
            bail!("--cas must be at most 10000");
        }
        if self.cas > 0 && self.cas_out.is_none() {
            bail!("--cas needs a file for the CAs (--cas-out)");
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            bail!("--account-id must be 12 digits");
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!("--region must be a region name like us-east-1");
        }
        if let Some(base) = &self.crl_url_base {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                bail!("--crl-url-base must be an http:// or https:// URL");
            }
        }
        Ok(())
    }

    fn expiring(&self, i: u64) -> bool {
        // Spread evenly: certificate i expires when the running count of expiring
        // certificates steps up at i.
        let m = u64::from(self.expiring_per_mille);
        (i + 1) * m / 1000 != i * m / 1000
    }
}

fn fixed_validity(params: &mut CertificateParams) {
    params.not_before = time::macros::datetime!(2024-01-01 00:00:00 UTC);
    params.not_after = time::macros::datetime!(2049-12-31 23:59:59 UTC);
}

/// One issuer of device certificates.
struct Ca {
    name: String,
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    /// CRL distribution point of the certificates it issues.
    crl_url: Option<String>,
}

fn make_ca(name: String, expires: Option<OffsetDateTime>, crl_base: Option<&str>) -> Result<Ca> {
    let key = KeyPair::generate().context("CA key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Palisade bench");
    dn.push(DnType::CommonName, format!("Palisade bench CA {name}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    fixed_validity(&mut params);
    if let Some(at) = expires {
        params.not_after = at;
    }
    let pem = params.self_signed(&key).context("signing a CA")?.pem();
    Ok(Ca {
        crl_url: crl_base.map(|b| format!("{}/{name}.crl", b.trim_end_matches('/'))),
        name,
        issuer: Issuer::new(params, key),
        pem,
    })
}

/// Policy number `i`. The mix, by `i % 100`: 0–4 `iot:*` on `*` and 5 Connect for any
/// client (overly permissive), 6–8 a Deny with an MQTT wildcard, 9 a Deny of a topic
/// filter still reachable through an allowed wildcard subscription (potential
/// misconfigurations), the other 90 a device policy confined to the thing's own
/// resources (compliant).
pub fn policy_document(i: u64, account_id: &str, region: &str) -> Value {
    // Not `arn:aws:iot:*:*:`: a `*` matches across `:` and `/`, so it would reach every
    // topic and client, and the analysis (rightly) calls such a policy broad.
    let arn = |rest: &str| format!("arn:aws:iot:{region}:{account_id}:{rest}");
    let thing = "${iot:Connection.Thing.ThingName}";
    let own_client = arn(&format!("client/{thing}"));
    let own_topic = arn(&format!("topic/fleet/{}/{thing}/*", i % 1000));
    let own_filter = arn(&format!("topicfilter/fleet/{}/{thing}/*", i % 1000));
    let own_shadow = arn(&format!("thing/{thing}"));
    let statements = match i % 100 {
        0..=4 => json!([{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]),
        5 => json!([
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": arn("client/*")},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": own_topic},
        ]),
        6..=8 => json!([
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": own_client},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": own_topic},
            {"Effect": "Deny", "Action": "iot:Publish",
             "Resource": arn(&format!("topic/fleet/{}/+/control", i % 1000))},
        ]),
        9 => json!([
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": own_client},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": arn("topicfilter/building/#")},
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": arn("topic/building/*")},
            {"Effect": "Deny", "Action": "iot:Subscribe",
             "Resource": arn("topicfilter/building/control_room/*")},
        ]),
        _ => json!([
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": own_client},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": own_topic},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": own_filter},
            {"Effect": "Allow", "Action": ["iot:GetThingShadow", "iot:UpdateThingShadow"],
             "Resource": own_shadow},
        ]),
    };
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// What each generator thread shares.
struct Shared<'a> {
    spec: &'a FleetSpec,
    device_key: &'a KeyPair,
    /// Without registered CAs: the one issuer.
    cas: &'a [Ca],
    expiring_at: OffsetDateTime,
}

/// The lines of device `i`.
fn device_lines(i: u64, s: &Shared<'_>) -> Result<Vec<String>> {
    let name = thing_name(i);
    let ca = &s.cas[(i % s.cas.len() as u64) as usize];
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Palisade bench");
    dn.push(DnType::CommonName, name.as_str());
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&(i + 1).to_be_bytes()));
    fixed_validity(&mut params);
    if s.spec.expiring(i) {
        params.not_after = s.expiring_at;
    }
    if let Some(url) = &ca.crl_url {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![url.clone()],
        }];
    }
    let pem = params
        .signed_by(s.device_key, &ca.issuer)
        .context("signing a device certificate")?
        .pem();
    let attributes = json!({"fleet": "bench", "batch": (i / 10_000).to_string()});
    let policies: Vec<String> = if s.spec.policies > 0 {
        vec![policy_name(i % s.spec.policies)]
    } else {
        Vec::new()
    };
    if s.spec.cas == 0 {
        let mut line = json!({
            "type": "thing",
            "name": name,
            "attributes": attributes,
            "certificatePem": pem,
            "certificateStatus": "ACTIVE",
        });
        if !policies.is_empty() {
            line["certificatePolicies"] = json!(policies);
        }
        return Ok(vec![line.to_string()]);
    }
    let thing = json!({"type": "thing", "name": name, "attributes": attributes});
    let mut certificate = json!({
        "type": "certificate",
        "pem": pem,
        "status": "ACTIVE",
        "caPem": ca.pem,
        "things": [name],
    });
    if !policies.is_empty() {
        certificate["policies"] = json!(policies);
    }
    Ok(vec![thing.to_string(), certificate.to_string()])
}

fn create(path: &Path) -> Result<(PathBuf, BufWriter<File>)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let partial = path.with_extension("partial");
    let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    Ok((partial, BufWriter::with_capacity(1 << 20, file)))
}

/// Flushes and moves the file into place: a fleet file exists only when complete.
fn finish(partial: &Path, mut file: BufWriter<File>, path: &Path) -> Result<()> {
    file.flush()?;
    drop(file);
    std::fs::rename(partial, path)
        .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))
}

/// Writes the fleet `spec` describes to `out` (replacing it), and its CAs to
/// `spec.cas_out`.
pub fn generate(out: &Path, spec: &FleetSpec) -> Result<()> {
    spec.check()?;
    let started = Instant::now();
    let now = OffsetDateTime::from_unix_timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs() as i64,
    )?;
    let expiring_at = now + time::Duration::days(EXPIRING_DAYS);
    let crl_base = spec.crl_url_base.as_deref();
    let cas: Vec<Ca> = if spec.cas == 0 {
        vec![make_ca("unregistered".into(), None, crl_base)?]
    } else {
        (0..spec.cas)
            .map(|k| {
                make_ca(
                    ca_name(k),
                    (k < spec.expiring_cas).then_some(expiring_at),
                    crl_base,
                )
            })
            .collect::<Result<_>>()?
    };
    if let (Some(path), true) = (&spec.cas_out, spec.cas > 0) {
        let (partial, mut file) = create(path)?;
        for ca in &cas {
            writeln!(file, "{}", json!({"name": ca.name, "pem": ca.pem}))?;
        }
        finish(&partial, file, path)?;
    }
    let device_key = KeyPair::generate().context("device key")?;
    let shared = Shared {
        spec,
        device_key: &device_key,
        cas: &cas,
        expiring_at,
    };

    let (partial, mut file) = create(out)?;
    for i in 0..spec.policies {
        let line = json!({"type": "policy", "name": policy_name(i), "document": policy_document(i, &spec.account_id, &spec.region)});
        file.write_all(line.to_string().as_bytes())?;
        file.write_all(b"\n")?;
    }
    let workers = spec.workers.max(1);
    let mut next = spec.first;
    let end = spec.first + spec.things;
    while next < end {
        let round_end = end.min(next + ROUND as u64);
        let per = (round_end - next).div_ceil(workers as u64);
        let parts: Vec<Result<Vec<String>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers as u64)
                .map(|w| {
                    let (lo, hi) = (next + w * per, round_end.min(next + (w + 1) * per));
                    let shared = &shared;
                    s.spawn(move || {
                        let mut lines = Vec::new();
                        for i in lo..hi {
                            lines.extend(device_lines(i, shared)?);
                        }
                        Ok(lines)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a generator thread panicked")))
                })
                .collect()
        });
        for part in parts {
            for l in part? {
                file.write_all(l.as_bytes())?;
                file.write_all(b"\n")?;
            }
        }
        next = round_end;
        if (next - spec.first) % 100_000 < ROUND as u64 {
            eprintln!(
                "fleet: {} of {} things, {:.0} s",
                next - spec.first,
                spec.things,
                started.elapsed().as_secs_f64()
            );
        }
    }
    finish(&partial, file, out)?;
    eprintln!(
        "fleet: wrote {} things, {} policies, {} CAs to {} in {:.1} s",
        spec.things,
        spec.policies,
        spec.cas,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_are_distinct_things_with_distinct_certificates() {
        let dir = tempfile_dir();
        let out = dir.join("fleet.jsonl");
        generate(&out, &FleetSpec::plain(5, 10, 2)).unwrap();
        let lines = read_lines(&out);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["name"], "bench-thing-0000010");
        assert_eq!(lines[4]["name"], "bench-thing-0000014");
        assert!(lines.iter().all(|l| l.get("certificatePolicies").is_none()));
        let pems: std::collections::HashSet<&str> = lines
            .iter()
            .map(|l| l["certificatePem"].as_str().unwrap())
            .collect();
        assert_eq!(pems.len(), 5);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cas_policies_and_expiring_certificates() {
        let dir = tempfile_dir();
        let out = dir.join("fleet.jsonl");
        let cas_out = dir.join("cas.jsonl");
        let spec = FleetSpec {
            things: 200,
            first: 0,
            cas: 3,
            expiring_cas: 1,
            policies: 7,
            expiring_per_mille: 100,
            crl_url_base: Some("http://127.0.0.1:9/crl".into()),
            cas_out: Some(cas_out.clone()),
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            workers: 2,
        };
        generate(&out, &spec).unwrap();
        let cas = read_lines(&cas_out);
        assert_eq!(cas.len(), 3);
        assert_eq!(cas[2]["name"], "bench-ca-0002");
        let lines = read_lines(&out);
        // Policies first, then a thing and a certificate per device.
        assert_eq!(lines.len(), 7 + 2 * 200);
        assert!(lines[..7].iter().all(|l| l["type"] == "policy"));
        assert_eq!(lines[7]["type"], "thing");
        let cert = &lines[8];
        assert_eq!(cert["type"], "certificate");
        assert_eq!(cert["things"], json!(["bench-thing-0000000"]));
        assert_eq!(cert["policies"], json!(["bench-policy-000000"]));
        assert_eq!(cert["caPem"], cas[0]["pem"]);
        assert_eq!(lines[10]["caPem"], cas[1]["pem"]);
        assert_eq!((0..200).filter(|&i| spec.expiring(i)).count(), 20);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn policy_mix_as_the_audit_sees_it() {
        let (mut broad, mut misconfigured) = (0, 0);
        for i in 0..1000 {
            let text = policy_document(i, "123456789012", "eu-west-1").to_string();
            assert!(text.len() <= 2048, "policy {i} is {} bytes", text.len());
            let analysis = palisade_iot_policy::analyse(&text, "123456789012", "eu-west-1")
                .expect("a valid document");
            let expect_broad = i % 100 <= 5;
            assert_eq!(
                analysis.overly_permissive.is_some(),
                expect_broad,
                "policy {i}"
            );
            broad += u32::from(expect_broad);
            let expect_misconfigured = (6..=9).contains(&(i % 100));
            assert_eq!(
                !analysis.misconfigurations.is_empty(),
                expect_misconfigured,
                "policy {i}: {:?}",
                analysis.misconfigurations
            );
            misconfigured += u32::from(expect_misconfigured);
        }
        assert_eq!((broad, misconfigured), (60, 40));
    }

    #[test]
    fn refuses_inconsistent_specs() {
        let mut spec = FleetSpec::plain(1, 0, 1);
        spec.expiring_per_mille = 1001;
        assert!(spec.check().is_err());
        let mut spec = FleetSpec::plain(1, 0, 1);
        spec.cas = 2;
        assert!(spec.check().is_err(), "CAs need --cas-out");
        spec.cas_out = Some("x".into());
        spec.expiring_cas = 3;
        assert!(spec.check().is_err());
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("palisade-fleet-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    }
}
