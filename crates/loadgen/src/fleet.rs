//! `fleet`: writes a JSON Lines fleet for `palisade fleet import` (docs/IMPORT.md): N
//! things, each with a certificate of its own (the `certificatePem` shorthand).
//!
//! Certificates are cheap to make in bulk: one ECDSA P-256 CA key signs them all, for one
//! device key, each with its own subject (`CN=<thing name>`) and serial number, so every
//! certificate (and so its id, the SHA-256 of its DER) is distinct. Signing runs on
//! `workers` threads; lines are written in order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    SerialNumber,
};

/// Lines made per round (one slice per worker), then written.
const ROUND: usize = 8_192;

pub fn thing_name(i: u64) -> String {
    format!("bench-thing-{i:07}")
}

fn validity(params: &mut CertificateParams) {
    params.not_before = time::macros::datetime!(2024-01-01 00:00:00 UTC);
    params.not_after = time::macros::datetime!(2049-12-31 23:59:59 UTC);
}

/// One line of the fleet file.
fn line(i: u64, device_key: &KeyPair, issuer: &Issuer<'_, KeyPair>) -> Result<String> {
    let name = thing_name(i);
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Palisade bench");
    dn.push(DnType::CommonName, name.as_str());
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&(i + 1).to_be_bytes()));
    validity(&mut params);
    let cert = params
        .signed_by(device_key, issuer)
        .context("signing a device certificate")?;
    let value = serde_json::json!({
        "type": "thing",
        "name": name,
        "attributes": {"fleet": "bench", "batch": (i / 10_000).to_string()},
        "certificatePem": cert.pem(),
        "certificateStatus": "ACTIVE",
    });
    Ok(value.to_string())
}

/// Writes `things` lines to `out` (replacing it), numbered from `first`.
pub fn generate(out: &Path, things: u64, first: u64, workers: usize) -> Result<()> {
    let started = Instant::now();
    let ca_key = KeyPair::generate().context("CA key")?;
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Palisade bench CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    validity(&mut ca);
    let issuer = Issuer::new(ca, ca_key);
    let device_key = KeyPair::generate().context("device key")?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let partial = out.with_extension("partial");
    let mut file = BufWriter::with_capacity(
        1 << 20,
        File::create(&partial).with_context(|| format!("creating {}", partial.display()))?,
    );
    let workers = workers.max(1);
    let mut next = first;
    let end = first + things;
    while next < end {
        let round_end = end.min(next + ROUND as u64);
        let per = (round_end - next).div_ceil(workers as u64);
        let parts: Vec<Result<Vec<String>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers as u64)
                .map(|w| {
                    let (lo, hi) = (next + w * per, round_end.min(next + (w + 1) * per));
                    let (device_key, issuer) = (&device_key, &issuer);
                    s.spawn(move || (lo..hi).map(|i| line(i, device_key, issuer)).collect())
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
        if (next - first) % 100_000 < ROUND as u64 {
            eprintln!(
                "fleet: {} of {things} lines, {:.0} s",
                next - first,
                started.elapsed().as_secs_f64()
            );
        }
    }
    file.flush()?;
    drop(file);
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    eprintln!(
        "fleet: wrote {things} lines to {} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_distinct_things_with_distinct_certificates() {
        let dir = tempfile_dir();
        let out = dir.join("fleet.jsonl");
        generate(&out, 5, 10, 2).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["name"], "bench-thing-0000010");
        assert_eq!(lines[4]["name"], "bench-thing-0000014");
        let pems: std::collections::HashSet<&str> = lines
            .iter()
            .map(|l| l["certificatePem"].as_str().unwrap())
            .collect();
        assert_eq!(pems.len(), 5);
        std::fs::remove_dir_all(dir).unwrap();
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
