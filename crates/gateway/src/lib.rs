//! The device gateway: devices connect over MQTT 3.1.1 or MQTT 5 over TLS with their
//! client certificates, are authenticated by the registry (registered and ACTIVE) and
//! authorized packet by packet by their IoT policies, as AWS IoT Core's gateway does;
//! their messages are routed by a real broker (an external one, or rumqttd embedded);
//! every connection is recorded for the audit's connection checks.
//!
//! Each device connection is one broker connection: the device's client id and topics
//! go to the broker under the account's prefix (`<accountId>/`), so accounts never see
//! each other's messages and client ids, and the broker's own session rules (one
//! session per client id, wills, retained messages, persistent sessions) apply.

mod broker;
mod packets;
mod record;
mod session;
mod sessions;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use palisade_engine::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use record::Recorder;
use sessions::{Kick, Sessions};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway TLS: {0}")]
    Tls(String),
    #[error("the embedded MQTT broker: {0}")]
    Broker(String),
    #[error("the MQTT listener on {addr}: {error}")]
    Listen { addr: String, error: std::io::Error },
    #[error("{0}")]
    Engine(#[from] palisade_engine::EngineError),
}

/// Where the broker listens for each protocol version (one address for both, for an
/// external broker such as Mosquitto, EMQX or VerneMQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    pub v4: SocketAddr,
    pub v5: SocketAddr,
}

/// The server certificate the gateway presents.
#[derive(Debug, Clone)]
pub enum ServerCertificate {
    /// Given by the operator (`--mqtt-tls-cert`, `--mqtt-tls-key`): PEM, the server
    /// certificate first.
    Given { chain_pem: String, key_pem: String },
    /// Made on first start from a gateway CA kept in the database (every node of a
    /// PostgreSQL deployment serves the same chain), for these host names and
    /// addresses.
    Generated { hosts: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub certificate: ServerCertificate,
    /// `None`: the embedded broker.
    pub backend: Option<SocketAddr>,
    /// The region whose registry authenticates devices.
    pub region: String,
    /// This node's identity in the connection history (its open connections are
    /// closed on its next start after a crash).
    pub node_id: String,
}

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) backend: Backend,
    pub(crate) region: String,
    pub(crate) node_id: String,
    pub(crate) sessions: Sessions,
    pub(crate) recorder: Recorder,
}

/// A running gateway.
pub struct Gateway {
    local_addr: SocketAddr,
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    recorder_task: tokio::task::JoinHandle<()>,
}

/// Name of the gateway CA in the database.
const CA_SECRET: &str = "mqtt-gateway-ca";

impl Gateway {
    /// Prepares the TLS material and the broker, closes what a crash of this node left
    /// open in the connection history, and starts accepting devices.
    pub async fn start(engine: Engine, config: GatewayConfig) -> Result<Gateway, GatewayError> {
        let (chain_pem, key_pem, ca_pem) = match &config.certificate {
            ServerCertificate::Given { chain_pem, key_pem } => {
                (chain_pem.clone(), key_pem.clone(), None)
            }
            ServerCertificate::Generated { hosts } => {
                let (chain, key, ca) = generated_material(&engine, hosts).await?;
                (chain, key, Some(ca))
            }
        };
        let tls = tls::server_config(&chain_pem, &key_pem)?;
        let backend = match config.backend {
            Some(addr) => Backend { v4: addr, v5: addr },
            None => tokio::task::spawn_blocking(broker::start)
                .await
                .map_err(|e| GatewayError::Broker(e.to_string()))??,
        };
        let recovered = engine
            .close_node_connections(&config.node_id, "SERVER_INITIATED_DISCONNECT")
            .await?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "closed connections a previous run of this node left open"
            );
        }
        let listener = listen(config.listen).map_err(|error| GatewayError::Listen {
            addr: config.listen.to_string(),
            error,
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|error| GatewayError::Listen {
                addr: config.listen.to_string(),
                error,
            })?;
        let (recorder, recorder_task) = Recorder::start(engine.clone());
        let shared = Arc::new(Shared {
            engine,
            acceptor: TlsAcceptor::from(tls),
            backend,
            region: config.region.clone(),
            node_id: config.node_id.clone(),
            sessions: Sessions::default(),
            recorder,
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept(shared.clone(), listener, stopped.clone()));
        tokio::spawn(enforce(shared.clone(), stopped));
        tracing::info!(%local_addr, broker = ?backend, "device gateway listening");
        Ok(Gateway {
            local_addr,
            ca_pem,
            shared,
            stop,
            recorder_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The gateway CA devices trust, PEM, when the gateway made its own certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Stops accepting, disconnects every device (SERVER_INITIATED_DISCONNECT) and
    /// records their ends.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.shared.sessions.kick_all(Kick::Shutdown);
        for _ in 0..100 {
            if self.shared.sessions.len() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shared.recorder.flush().await;
        drop(self.shared);
        self.recorder_task.abort();
    }
}

/// The gateway CA (made once, shared through the database) and a server certificate
/// for `hosts` issued under it: (chain, key, CA certificate), PEM.
async fn generated_material(
    engine: &Engine,
    hosts: &[String],
) -> Result<(String, String, String), GatewayError> {
    let fresh = tls::make_authority()?;
    let stored = engine
        .gateway_secret_or_insert(
            CA_SECRET,
            format!("{}{}", fresh.certificate_pem, fresh.key_pem).as_bytes(),
        )
        .await?;
    let stored = String::from_utf8(stored)
        .map_err(|_| GatewayError::Tls("the stored gateway CA is not PEM".into()))?;
    let split = stored
        .find("-----BEGIN PRIVATE KEY-----")
        .ok_or_else(|| GatewayError::Tls("the stored gateway CA has no key".into()))?;
    let authority = tls::Authority {
        certificate_pem: stored[..split].to_owned(),
        key_pem: stored[split..].to_owned(),
    };
    let mut hosts = hosts.to_vec();
    hosts.sort();
    hosts.dedup();
    let (chain, key) = tls::issue_server_certificate(&authority, &hosts)?;
    let name = format!("mqtt-gateway-server/{}", hosts.join(","));
    let stored = engine
        .gateway_secret_or_insert(&name, format!("{chain}{key}").as_bytes())
        .await?;
    let stored = String::from_utf8(stored)
        .map_err(|_| GatewayError::Tls("the stored server certificate is not PEM".into()))?;
    let split = stored
        .find("-----BEGIN PRIVATE KEY-----")
        .ok_or_else(|| GatewayError::Tls("the stored server certificate has no key".into()))?;
    Ok((
        stored[..split].to_owned(),
        stored[split..].to_owned(),
        authority.certificate_pem,
    ))
}

/// The gateway's listener, with a backlog for connection bursts (a fleet reconnecting
/// after an outage): the default of 128 overflowed at a burst of 1,000 and cost each
/// connection a SYN retry, about a second.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn accept(shared: Arc<Shared>, listener: TcpListener, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(session::serve(shared.clone(), tcp, peer));
                }
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a device connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stopped.changed() => return,
        }
    }
}

/// Live enforcement: when the registry changes (here or, through the store, on another
/// node), the sessions whose certificate is no longer ACTIVE are closed. Checked every
/// 200 ms, and every 10 s whatever happened.
async fn enforce(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut seen = shared.engine.registry_epoch();
    let mut since_full = Duration::ZERO;
    let tick = Duration::from_millis(200);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stopped.changed() => return,
        }
        since_full += tick;
        let now = shared.engine.registry_epoch();
        if now == seen && since_full < Duration::from_secs(10) {
            continue;
        }
        let held = shared.sessions.certificates();
        if held.is_empty() {
            seen = now;
            since_full = Duration::ZERO;
            continue;
        }
        match shared
            .engine
            .certificates_to_cut_off(&shared.region, &held)
            .await
        {
            Ok(cut) => {
                for (account, id, status) in cut {
                    let n = shared.sessions.kick_certificate(&account, &id);
                    tracing::info!(
                        account,
                        certificate_id = id,
                        status = status.as_deref().unwrap_or("deleted"),
                        sessions = n,
                        "certificate no longer active: its connections are closed"
                    );
                }
                seen = now;
                since_full = Duration::ZERO;
            }
            Err(e) => tracing::warn!(error = %e, "checking connected certificates failed"),
        }
    }
}
