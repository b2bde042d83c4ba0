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

use crate::config::{FileConfig, Given, MqttSettings, ServeConfig};
use crate::ServeArgs;

const BOOTSTRAP_MARKER: &str = "bootstrap/default-credential";

pub async fn run(args: ServeArgs) -> Result<()> {
    init_tracing(&args.log_format);
    // Each device holds a socket to the gateway and one to the broker, and every API
    // client one more: the common soft limit of 1,024 would cap a node at a few hundred
    // devices. The hard limit is the operator's to set.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(open_files = n, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
    let file = FileConfig::load(args.config.as_deref())?;
    let mqtt = args.mqtt.resolve(&file)?;
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
    let registry_sync = tokio::spawn(sync_registry(engine.clone()));
    let gateway = match &mqtt {
        Some(m) => Some(start_gateway(&engine, &cfg, m).await?),
        None => None,
    };
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
    if let Some(gateway) = gateway {
        gateway.shutdown().await;
    }
    registry_sync.abort();
    tracing::info!("palisade stopped");
    Ok(())
}

/// Starts the device gateway: its node id (kept in the data dir, so a restart closes
/// what a crash left open), its certificate, and the CA file devices trust.
async fn start_gateway(
    engine: &Engine,
    cfg: &ServeConfig,
    mqtt: &MqttSettings,
) -> Result<palisade_gateway::Gateway> {
    let node_id = node_id(&cfg.data_dir)?;
    let certificate = match &mqtt.tls {
        Some((cert, key)) => palisade_gateway::ServerCertificate::Given {
            chain_pem: std::fs::read_to_string(cert)
                .with_context(|| format!("reading {}", cert.display()))?,
            key_pem: std::fs::read_to_string(key)
                .with_context(|| format!("reading {}", key.display()))?,
        },
        None => {
            let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            let ip = mqtt.listen.ip();
            if !ip.is_unspecified() {
                hosts.push(ip.to_string());
            }
            if let Some(public) = &mqtt.public_endpoint {
                let host = public.rsplit_once(':').map_or(public.as_str(), |(h, _)| h);
                hosts.push(host.trim_matches(['[', ']']).to_owned());
            }
            palisade_gateway::ServerCertificate::Generated { hosts }
        }
    };
    let gateway = palisade_gateway::Gateway::start(
        engine.clone(),
        palisade_gateway::GatewayConfig {
            listen: mqtt.listen,
            certificate,
            backend: mqtt.backend,
            region: cfg.region.clone(),
            node_id,
        },
    )
    .await
    .context("starting the device gateway")?;
    if let Some(ca) = gateway.ca_pem() {
        let path = cfg.data_dir.join("mqtt-ca.pem");
        std::fs::write(&path, ca).with_context(|| format!("writing {}", path.display()))?;
    }
    let endpoint = mqtt.endpoint_address(gateway.local_addr());
    engine.set_data_endpoint(Some(endpoint.clone()));
    tracing::info!(addr = %gateway.local_addr(), endpoint, "device gateway listening");
    Ok(gateway)
}

/// This node's id in the connection history, kept in the data dir.
fn node_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("gateway-node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_owned());
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// Keeps this node's registry change counter in step with the other nodes' (through the
/// store), so a certificate deactivated on one node cuts its devices off on every node.
async fn sync_registry(engine: Engine) {
    let mut seen = engine.registry_epoch_stored().await.unwrap_or_default();
    let mut failing = false;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        match engine.sync_registry_epoch(&mut seen).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "syncing registry changes with the store failed");
            }
            Err(_) => {}
        }
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off,rustls=error"));
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
