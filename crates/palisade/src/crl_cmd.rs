//! `palisade crl import FILE`: stores an operator-supplied CRL for the revocation audit
//! checks (fleets whose CRL distribution points Palisade cannot reach, or certificates
//! without any), straight into the database, whether or not a server runs on it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use palisade_engine::{EngineError, Limits, RandomIds, SystemClock};
use serde_json::json;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The CRL, DER or PEM (one `X509 CRL` block).
    file: PathBuf,
    /// The certificate of the CRL's issuer (PEM or DER). The CRL must verify with it,
    /// and the checks then use it as the issuer's key. Without it, the issuer's key
    /// must come from a registered CA certificate or the certificates' AIA caIssuers URL.
    #[arg(long)]
    issuer_certificate: Option<PathBuf>,
    #[command(flatten)]
    store: crate::StoreArgs,
}

pub async fn import(args: ImportArgs) -> Result<()> {
    let crl =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let issuer = match &args.issuer_certificate {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let store = crate::store::open(&args.store.choice()?).await?;
    let engine = palisade_engine::Engine::new(
        store,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Limits::default(),
    )
    .await
    .context("starting the engine")?;
    let imported = engine
        .import_crl(&crl, issuer.as_deref())
        .await
        .map_err(|e| match e {
            EngineError::InvalidRequest(m) => anyhow::anyhow!("{}: {m}", args.file.display()),
            other => anyhow::Error::new(other).context("storing the CRL"),
        })?;
    if !imported.stored {
        eprintln!(
            "warning: not stored: a CRL of this issuer with a later thisUpdate was imported before"
        );
    }
    println!(
        "{}",
        json!({
            "issuer": imported.issuer,
            "thisUpdate": imported.this_update_ms / 1000,
            "nextUpdate": imported.next_update_ms.map(|ms| ms / 1000),
            "revokedCount": imported.revoked_count,
            "verifiedWithIssuerCertificate": imported.verified,
            "stored": imported.stored,
        })
    );
    Ok(())
}
