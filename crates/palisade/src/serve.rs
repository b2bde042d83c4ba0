//! `palisade serve`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use palisade_api::ServerConfig;
use palisade_engine::clock::Clock;
use palisade_engine::{Engine, Limits, RandomIds, SystemClock};
use palisade_store::Credential;

use crate::config::{FileConfig, Given, ServeConfig};
use crate::ServeArgs;

const BOOTSTRAP_MARKER: &str = "bootstrap/default-credential";

pub async fn run(args: ServeArgs) -> Result<()> {
    init_tracing(&args.log_format);
    let file = FileConfig::load(args.config.as_deref())?;
    let cfg = ServeConfig::resolve(
        Given {
            listen: args.listen,
            data_dir: args.data_dir,
            region: args.region,
            body_limit: args.body_limit,
            import_body_limit: args.import_body_limit,
            shutdown_grace_secs: args.shutdown_grace_secs,
        },
        &args.database,
        &args.audit,
        file,
    )?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data dir {}", cfg.data_dir.display()))?;
    let store = crate::store::open(&cfg.store).await?;
    let engine = Engine::with_settings(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Limits::default(),
        cfg.audit.clone(),
    )
    .await
    .context("starting the engine")?;

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    // Several nodes may start at once on an empty shared database: the once-marker lets
    // exactly one of them create the default credential.
    if store.list_credentials().await?.is_empty()
        && store
            .mark_once(BOOTSTRAP_MARKER, SystemClock.now_ms())
            .await?
    {
        let cred = engine.create_credential(&cfg.default_account_id).await?;
        write_credentials_file(&cfg.data_dir, &cred)?;
        print_first_start(&cfg, addr, &cred);
    }
    tracing::info!(%addr, region = %cfg.region, store = %cfg.store.describe(), "palisade listening");
    let engine_for_work = engine.clone();
    let router = palisade_api::router(
        engine,
        ServerConfig {
            region: cfg.region.clone(),
            body_limit: cfg.body_limit,
            import_body_limit: cfg.import_body_limit,
            ..ServerConfig::default()
        },
    );
    let background = engine_for_work.start_background_work();
    palisade_api::serve(listener, router, shutdown_signal(), cfg.shutdown_grace).await?;
    // Requests are done; the audit worker stops after the check it is in (an
    // interrupted task resumes at that check on the next start, or on another node).
    background.stop().await;
    tracing::info!("palisade stopped");
    Ok(())
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Writes the default credential as an AWS shared-credentials file, readable by its owner only.
fn write_credentials_file(data_dir: &Path, cred: &Credential) -> Result<()> {
    let path = data_dir.join("credentials");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(
        f,
        "[palisade]\naws_access_key_id = {}\naws_secret_access_key = {}\n# account {}",
        cred.access_key_id, cred.secret_access_key, cred.account_id
    )?;
    f.sync_all()?;
    Ok(())
}

fn print_first_start(cfg: &ServeConfig, addr: std::net::SocketAddr, cred: &Credential) {
    let creds = cfg.data_dir.join("credentials");
    eprintln!(
        "\nCreated a credential for account {account} in {creds}.\n\
         Point the AWS CLI at this server with:\n\n  \
         export AWS_SHARED_CREDENTIALS_FILE={creds}\n  \
         export AWS_PROFILE=palisade AWS_REGION={region}\n  \
         aws --endpoint-url http://{addr} iot list-mitigation-actions\n",
        account = cred.account_id,
        creds = creds.display(),
        region = cfg.region,
    );
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
