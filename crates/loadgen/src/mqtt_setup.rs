//! `mqtt-setup`: the device fleet of the gateway benchmark (bench/gateway.sh).
//!
//! Makes a device CA and N device certificates under it, each with an ECDSA P-256 key of
//! its own (`CN=bench-device-NNNNN`), registers them through the API and writes them
//! to a directory:
//!
//! - the CA is registered with RegisterCACertificate in `SNI_ONLY` mode, active (the
//!   simplest route the API offers: no verification certificate needed);
//! - the certificates go in with `POST /palisade/import` (docs/IMPORT.md): one `policy`
//!   line (allow `iot:*` on `*`) and one `certificate` line per device (`caPem`,
//!   `ACTIVE`, the policy attached), up to [`IMPORT_CHUNK`] lines a request. One
//!   transaction per 5,000 lines on the server: far faster than 10,000 RegisterCertificate
//!   and AttachPolicy calls;
//! - the directory gets `ca.crt` / `ca.key` (the device CA), `devices/NNNNN.crt` /
//!   `devices/NNNNN.key` (numbered from 0), `mosquitto-server.crt` / `.key` (a server
//!   certificate for `localhost` and `127.0.0.1` under the same CA, for the benchmark's
//!   own TLS Mosquitto) and `fleet.json` (count, account, policy).
//!
//! Running it again on a directory that already holds a fleet reuses its certificates
//! (so a benchmark can keep one fleet across server restarts); everything it registers
//! is idempotent on the server (an existing CA and identical lines are fine).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use serde_json::{json, Value};

use crate::client::{self, Target, Template};

/// Certificate lines per `POST /palisade/import` (some 2.3 KB each: well under the
/// default 64 MiB body limit).
pub const IMPORT_CHUNK: usize = 10_000;

pub struct MqttSetupConfig {
    pub devices: usize,
    pub out: PathBuf,
    pub policy: String,
}

pub fn device_cert_path(dir: &Path, i: usize) -> PathBuf {
    dir.join("devices").join(format!("{i:05}.crt"))
}

pub fn device_key_path(dir: &Path, i: usize) -> PathBuf {
    dir.join("devices").join(format!("{i:05}.key"))
}

fn validity(params: &mut CertificateParams) {
    params.not_before = time::macros::datetime!(2024-01-01 00:00:00 UTC);
    params.not_after = time::macros::datetime!(2049-12-31 23:59:59 UTC);
}

/// The device CA's parameters: the same every time, so a CA kept in a directory signs
/// again from its key alone (its subject and key usages rebuilt from here).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Palisade bench");
    dn.push(DnType::CommonName, "Palisade gateway bench device CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params);
    params
}

/// The device CA: made, or read back from `dir`.
fn device_ca(dir: &Path) -> Result<(String, Issuer<'static, KeyPair>)> {
    let (crt, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    if crt.exists() && key_path.exists() {
        let pem = fs::read_to_string(&crt)?;
        let key = KeyPair::from_pem(&fs::read_to_string(&key_path)?).context("ca.key")?;
        return Ok((pem, Issuer::new(ca_params(), key)));
    }
    let key = KeyPair::generate().context("CA key")?;
    let params = ca_params();
    let pem = params.self_signed(&key).context("signing the CA")?.pem();
    fs::write(&key_path, key.serialize_pem())?;
    fs::write(&crt, &pem)?;
    Ok((pem, Issuer::new(params, key)))
}

/// Device `i`'s certificate PEM, made (with its key) if `dir` does not hold it yet.
fn device(dir: &Path, i: usize, issuer: &Issuer<'static, KeyPair>) -> Result<String> {
    let (crt, key_path) = (device_cert_path(dir, i), device_key_path(dir, i));
    if crt.exists() && key_path.exists() {
        return Ok(fs::read_to_string(&crt)?);
    }
    let key = KeyPair::generate().context("device key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Palisade bench");
    dn.push(DnType::CommonName, format!("bench-device-{i:05}"));
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&(i as u64 + 1).to_be_bytes()));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut params);
    let pem = params
        .signed_by(&key, issuer)
        .context("signing a device certificate")?
        .pem();
    fs::write(&key_path, key.serialize_pem())?;
    fs::write(&crt, &pem)?;
    Ok(pem)
}

/// A server certificate for `localhost` / `127.0.0.1` under the device CA, for the
/// benchmark's own TLS Mosquitto.
fn mosquitto_server(dir: &Path, issuer: &Issuer<'static, KeyPair>) -> Result<()> {
    let crt = dir.join("mosquitto-server.crt");
    if crt.exists() {
        return Ok(());
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Palisade bench Mosquitto");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params);
    let pem = params.signed_by(&key, issuer)?.pem();
    fs::write(dir.join("mosquitto-server.key"), key.serialize_pem())?;
    fs::write(&crt, pem)?;
    Ok(())
}

pub fn allow_all_policy() -> Value {
    json!({"Version": "2012-10-17",
           "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})
}

pub async fn setup(target: &Target, config: &MqttSetupConfig) -> Result<()> {
    if config.devices == 0 || config.devices > 99_999 {
        bail!("--devices must be between 1 and 99999");
    }
    let dir = &config.out;
    fs::create_dir_all(dir.join("devices"))
        .with_context(|| format!("creating {}", dir.display()))?;

    let started = Instant::now();
    let (ca_pem, issuer) = device_ca(dir)?;
    mosquitto_server(dir, &issuer)?;
    let mut pems = Vec::with_capacity(config.devices);
    for i in 0..config.devices {
        pems.push(device(dir, i, &issuer)?);
    }
    let made = started.elapsed();
    eprintln!(
        "mqtt-setup: {} device certificates (ECDSA P-256) in {}, made or reused in {:.1} s",
        config.devices,
        dir.display(),
        made.as_secs_f64()
    );

    let mut sender = client::connect::<Full<Bytes>>(&target.endpoint).await?;
    let registering = Instant::now();
    let body = json!({"caCertificate": ca_pem, "certificateMode": "SNI_ONLY"});
    let (status, kind, bytes) = crate::audit::call(
        &mut sender,
        target,
        Method::POST,
        "/cacertificate?setAsActive=true",
        Some(&body),
    )
    .await?;
    match (status, kind.as_str()) {
        (StatusCode::OK, _) => eprintln!("mqtt-setup: device CA registered (SNI_ONLY, ACTIVE)"),
        (_, "ResourceAlreadyExistsException") => {
            eprintln!("mqtt-setup: device CA already registered")
        }
        _ => bail!(
            "RegisterCACertificate failed: HTTP {status} ({kind}): {}",
            String::from_utf8_lossy(&bytes)
        ),
    }

    let template = Template::new(target, Method::POST, "/palisade/import", false)?;
    let policy_line =
        json!({"type": "policy", "name": config.policy, "document": allow_all_policy()});
    let (mut created, mut unchanged) = (0u64, 0u64);
    for (n, chunk) in pems.chunks(IMPORT_CHUNK).enumerate() {
        let mut body = String::with_capacity(chunk.len() * 2400);
        body.push_str(&policy_line.to_string());
        body.push('\n');
        for pem in chunk {
            let line = json!({
                "type": "certificate",
                "pem": pem,
                "caPem": ca_pem,
                "status": "ACTIVE",
                "policies": [config.policy],
            });
            body.push_str(&line.to_string());
            body.push('\n');
        }
        let body = Bytes::from(body);
        let request = template.signed(target, &body, Full::new(body.clone()))?;
        let (status, _, answer) = client::send_collect(&mut sender, request).await?;
        if status != StatusCode::OK {
            bail!(
                "POST /palisade/import (chunk {}) failed: HTTP {status}: {}",
                n + 1,
                String::from_utf8_lossy(&answer)
            );
        }
        let summary: Value =
            serde_json::from_slice(&answer).context("the import's answer is not JSON")?;
        if summary["failedLines"].as_u64() != Some(0) {
            bail!(
                "POST /palisade/import (chunk {}) failed lines: {summary}",
                n + 1
            );
        }
        created += summary["created"]["certificates"].as_u64().unwrap_or(0);
        unchanged += summary["unchanged"]["certificates"].as_u64().unwrap_or(0);
    }
    eprintln!(
        "mqtt-setup: {created} certificate(s) registered ACTIVE with policy {:?} attached, \
         {unchanged} already there, in {:.1} s",
        config.policy,
        registering.elapsed().as_secs_f64()
    );
    fs::write(
        dir.join("fleet.json"),
        json!({"devices": config.devices, "policy": config.policy}).to_string(),
    )?;
    Ok(())
}

/// How many devices `dir` holds (its `fleet.json`).
pub fn fleet_size(dir: &Path) -> Result<usize> {
    let path = dir.join("fleet.json");
    let text = fs::read_to_string(&path)
        .with_context(|| format!("reading {} (run mqtt-setup first)", path.display()))?;
    let v: Value = serde_json::from_str(&text)?;
    v["devices"]
        .as_u64()
        .map(|n| n as usize)
        .context("fleet.json has no device count")
}
