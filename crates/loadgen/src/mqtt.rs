//! `mqtt`: TLS MQTT 3.1.1 load against the device gateway, or any MQTT broker's TLS
//! listener, with the device certificates `mqtt-setup` made.
//!
//! A thin client of its own: one tokio task per connection, tokio-rustls (aws-lc-rs,
//! as the gateway), rumqttc's MQTT 3.1.1 codec (`mqttbytes::v4`) to read packets and
//! write the control packets. rumqttc's event loop is not used: at 10,000 connections
//! its per-connection channels and state cost more than this loop.
//!
//! Modes:
//! - `hold`: open N connections at a target rate (full TLS handshakes: no resumption),
//!   hold them (PINGREQ every half keep-alive), then DISCONNECT. Reports how many
//!   connected, the achieved connect rate, the connect latency (TCP connect to CONNACK)
//!   and how many were still open at the end of the hold.
//! - `publish`: M subscriber and M publisher connections; publisher i sends QoS 0 to
//!   `<prefix>/<i>`, which subscriber i alone subscribes to. A target rate (total) or
//!   as fast as the connections take. Reports messages received per second in the
//!   measured window and the end-to-end latency from the send time in each payload.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{BufMut, BytesMut};
use hdrhistogram::Histogram;
use rumqttc::mqttbytes::v4;
use rumqttc::mqttbytes::QoS;
use rustls::client::Resumption;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::mqtt_setup;

/// Latencies are recorded in microseconds up to a minute.
const HIST_MAX_US: u64 = 60_000_000;
/// Largest packet read.
const MAX_PACKET: usize = 256 * 1024;
/// Bytes of the payload header: send time (ns since the process epoch) and sequence.
const STAMP: usize = 16;

/// The process's time origin: payload timestamps are nanoseconds since it.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Where and as whom to connect.
pub struct MqttTarget {
    pub addr: SocketAddr,
    pub sni: ServerName<'static>,
    /// One client configuration per device (its certificate and key), in device order.
    configs: Vec<Arc<ClientConfig>>,
    pub keep_alive: u16,
    pub client_prefix: String,
    pub connect_timeout: Duration,
}

/// Options every mode takes.
pub struct TargetOptions {
    pub host: String,
    pub ca_file: PathBuf,
    pub sni: String,
    pub devices_dir: PathBuf,
    /// Devices to load (at most the fleet's size); connections take them in turn.
    pub devices: usize,
    pub keep_alive: u16,
    pub client_prefix: String,
    pub connect_timeout: Duration,
}

/// `host:port` with a loopback IP (or `localhost`): this tool sends nothing elsewhere.
pub fn loopback_addr(host: &str) -> Result<SocketAddr> {
    let fixed = host.replacen("localhost:", "127.0.0.1:", 1);
    let addr: SocketAddr = fixed
        .parse()
        .with_context(|| format!("--host {host:?} is not IP:PORT (or localhost:PORT)"))?;
    if !addr.ip().is_loopback() {
        bail!("refusing --host {host}: only loopback targets are allowed");
    }
    Ok(addr)
}

impl MqttTarget {
    pub fn load(o: &TargetOptions) -> Result<Self> {
        let addr = loopback_addr(&o.host)?;
        let sni = ServerName::try_from(o.sni.clone())
            .with_context(|| format!("--sni {:?} is not a server name", o.sni))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&o.ca_file)
            .with_context(|| format!("reading {}", o.ca_file.display()))?
        {
            roots
                .add(cert.with_context(|| format!("{}", o.ca_file.display()))?)
                .context("the CA file's certificate")?;
        }
        if roots.is_empty() {
            bail!("{} holds no certificate", o.ca_file.display());
        }
        let roots = Arc::new(roots);
        let available = mqtt_setup::fleet_size(&o.devices_dir)?;
        let wanted = if o.devices == 0 {
            available
        } else {
            o.devices.min(available)
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut configs = Vec::with_capacity(wanted);
        for i in 0..wanted {
            let crt = mqtt_setup::device_cert_path(&o.devices_dir, i);
            let key = mqtt_setup::device_key_path(&o.devices_dir, i);
            let chain = vec![CertificateDer::from_pem_file(&crt)
                .with_context(|| format!("reading {}", crt.display()))?];
            let key = PrivateKeyDer::from_pem_file(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(chain, key)
                .context("a device certificate and key")?;
            // Every connection a full handshake, as a fleet of devices makes them.
            config.resumption = Resumption::disabled();
            configs.push(Arc::new(config));
        }
        Ok(Self {
            addr,
            sni,
            configs,
            keep_alive: o.keep_alive,
            client_prefix: o.client_prefix.clone(),
            connect_timeout: o.connect_timeout,
        })
    }
}

/// Why a connection attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    Tcp,
    Tls,
    /// The CONNACK's return code.
    Refused(u8),
    /// The server closed before the CONNACK, or sent something else.
    Closed,
    Timeout,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Tcp => write!(f, "tcp"),
            Failure::Tls => write!(f, "tls"),
            Failure::Refused(c) => write!(f, "connack-refused-{c}"),
            Failure::Closed => write!(f, "closed-before-connack"),
            Failure::Timeout => write!(f, "timeout"),
        }
    }
}

pub struct Conn {
    pub stream: TlsStream<TcpStream>,
    pub buf: BytesMut,
}

/// How long each step of a successful connect took.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub tls: Duration,
    pub total: Duration,
}

fn write_packet(packet: &v4::Packet, out: &mut BytesMut) {
    packet
        .write(out, usize::MAX)
        .expect("a control packet the tool builds always encodes");
}

/// TCP connect, TLS handshake (device `device`'s certificate), CONNECT, CONNACK.
pub async fn open(
    t: &MqttTarget,
    device: usize,
    client_id: &str,
) -> Result<(Conn, Timing), Failure> {
    let started = Instant::now();
    let attempt = async {
        let tcp = TcpStream::connect(t.addr).await.map_err(|_| Failure::Tcp)?;
        let _ = tcp.set_nodelay(true);
        let config = t.configs[device % t.configs.len()].clone();
        let mut stream = TlsConnector::from(config)
            .connect(t.sni.clone(), tcp)
            .await
            .map_err(|_| Failure::Tls)?;
        let tls = started.elapsed();
        let mut connect = v4::Connect::new(client_id);
        connect.keep_alive = t.keep_alive;
        connect.clean_session = true;
        let mut out = BytesMut::with_capacity(64);
        write_packet(&v4::Packet::Connect(connect), &mut out);
        stream.write_all(&out).await.map_err(|_| Failure::Closed)?;
        let mut buf = BytesMut::with_capacity(256);
        loop {
            match v4::Packet::read(&mut buf, MAX_PACKET) {
                Ok(v4::Packet::ConnAck(ack)) => {
                    if ack.code != v4::ConnectReturnCode::Success {
                        return Err(Failure::Refused(ack.code as u8));
                    }
                    break;
                }
                Ok(_) => return Err(Failure::Closed),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(_) => return Err(Failure::Closed),
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Err(Failure::Closed),
                Ok(_) => {}
            }
        }
        Ok((
            Conn { stream, buf },
            Timing {
                tls,
                total: started.elapsed(),
            },
        ))
    };
    match timeout(t.connect_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout),
    }
}

async fn disconnect(conn: &mut Conn) {
    let mut out = BytesMut::with_capacity(2);
    write_packet(&v4::Packet::Disconnect, &mut out);
    let _ = conn.stream.write_all(&out).await;
    let _ = conn.stream.shutdown().await;
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, HIST_MAX_US)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

fn max_ms(h: &Histogram<u64>) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.max() as f64 / 1000.0
}

// ---------------------------------------------------------------------------------
// hold

pub struct HoldConfig {
    pub connections: usize,
    /// New connections per second (0: as fast as `max_inflight` allows).
    pub rate: f64,
    pub max_inflight: usize,
    pub hold: Duration,
    /// Written (with the number connected) once every attempt has ended.
    pub ready_file: Option<PathBuf>,
    /// Device index of the first connection.
    pub first_device: usize,
}

#[derive(Debug)]
pub struct HoldReport {
    pub target: String,
    pub attempted: usize,
    pub connected: usize,
    pub failures: Vec<(Failure, usize)>,
    /// From the first attempt to the last CONNACK.
    pub connect_phase: Duration,
    pub connect: Histogram<u64>,
    pub tls: Histogram<u64>,
    pub held: Duration,
    /// Connections open when the hold ended.
    pub open_at_end: usize,
}

impl HoldReport {
    pub fn rate(&self) -> f64 {
        self.connected as f64 / self.connect_phase.as_secs_f64().max(1e-9)
    }

    pub fn print(&self, json: bool) {
        let failures: String = self
            .failures
            .iter()
            .map(|(f, n)| format!("{f}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        eprintln!(
            "mqtt hold {}: {}/{} connected in {:.2} s ({:.0} connections/s){}",
            self.target,
            self.connected,
            self.attempted,
            self.connect_phase.as_secs_f64(),
            self.rate(),
            if failures.is_empty() {
                String::new()
            } else {
                format!("; failed: {failures}")
            }
        );
        eprintln!(
            "  connect (TCP to CONNACK) ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}; \
             TLS handshake p50 {:.2}  p99 {:.2}",
            ms(&self.connect, 0.5),
            ms(&self.connect, 0.9),
            ms(&self.connect, 0.99),
            max_ms(&self.connect),
            ms(&self.tls, 0.5),
            ms(&self.tls, 0.99),
        );
        eprintln!(
            "  held {:.1} s: {} of {} still open at the end",
            self.held.as_secs_f64(),
            self.open_at_end,
            self.connected
        );
        if json {
            let failures: serde_json::Map<String, serde_json::Value> = self
                .failures
                .iter()
                .map(|(f, n)| (f.to_string(), json!(n)))
                .collect();
            println!(
                "{}",
                json!({
                    "mode": "hold",
                    "target": self.target,
                    "attempted": self.attempted,
                    "connected": self.connected,
                    "failures": failures,
                    "connectPhaseSeconds": self.connect_phase.as_secs_f64(),
                    "connectsPerSecond": self.rate(),
                    "connectMs": {"p50": ms(&self.connect, 0.5), "p90": ms(&self.connect, 0.9),
                                  "p99": ms(&self.connect, 0.99), "max": max_ms(&self.connect)},
                    "tlsMs": {"p50": ms(&self.tls, 0.5), "p99": ms(&self.tls, 0.99)},
                    "heldSeconds": self.held.as_secs_f64(),
                    "openAtEnd": self.open_at_end,
                })
            );
        }
    }
}

pub async fn hold(t: Arc<MqttTarget>, config: HoldConfig) -> Result<HoldReport> {
    let n = config.connections;
    let inflight = Arc::new(Semaphore::new(config.max_inflight.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (result_tx, mut result_rx) =
        tokio::sync::mpsc::unbounded_channel::<(Result<Timing, Failure>, Instant)>();
    let open_now = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let spawner = {
        let t = t.clone();
        let open_now = open_now.clone();
        let first = config.first_device;
        let rate = config.rate;
        tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(n);
            for i in 0..n {
                if rate > 0.0 {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let permit = inflight
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let (t, tx, mut stop, open_now) = (
                    t.clone(),
                    result_tx.clone(),
                    stop_rx.clone(),
                    open_now.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let client_id = format!("{}-hold-{i}", t.client_prefix);
                    let result = open(&t, first + i, &client_id).await;
                    drop(permit);
                    let (mut conn, timing) = match result {
                        Ok(ok) => ok,
                        Err(f) => {
                            let _ = tx.send((Err(f), Instant::now()));
                            return;
                        }
                    };
                    open_now.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send((Ok(timing), Instant::now()));
                    drop(tx);
                    let ping_every = Duration::from_secs(u64::from(t.keep_alive.max(2)) / 2);
                    let mut pings =
                        tokio::time::interval_at((Instant::now() + ping_every).into(), ping_every);
                    let mut ping = BytesMut::with_capacity(2);
                    write_packet(&v4::Packet::PingReq, &mut ping);
                    let lost = loop {
                        tokio::select! {
                            _ = stop.changed() => break false,
                            _ = pings.tick() => {
                                if conn.stream.write_all(&ping).await.is_err() {
                                    break true;
                                }
                            }
                            read = conn.stream.read_buf(&mut conn.buf) => {
                                match read {
                                    Ok(0) | Err(_) => break true,
                                    // PINGRESPs: nothing else is expected.
                                    Ok(_) => conn.buf.clear(),
                                }
                            }
                        }
                    };
                    open_now.fetch_sub(1, Ordering::Relaxed);
                    if !lost {
                        disconnect(&mut conn).await;
                    }
                }));
            }
            tasks
        })
    };

    let mut connect = histogram();
    let mut tls = histogram();
    let mut failures = std::collections::BTreeMap::<Failure, usize>::new();
    let mut last = started;
    let mut connected = 0;
    let mut progress = Instant::now();
    for done in 0..n {
        let Some((result, at)) = result_rx.recv().await else {
            bail!("a connection task ended without a result");
        };
        match result {
            Ok(timing) => {
                connected += 1;
                last = last.max(at);
                let _ = connect.record(us(timing.total));
                let _ = tls.record(us(timing.tls));
            }
            Err(f) => *failures.entry(f).or_default() += 1,
        }
        if progress.elapsed() >= Duration::from_secs(2) {
            progress = Instant::now();
            eprintln!(
                "  ... {} of {n} attempts done, {connected} connected, {:.1} s",
                done + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let connect_phase = last - started;
    if let Some(path) = &config.ready_file {
        std::fs::write(path, format!("{connected}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let hold_started = Instant::now();
    tokio::time::sleep(config.hold).await;
    let open_at_end = open_now.load(Ordering::Relaxed);
    let held = hold_started.elapsed();
    let _ = stop_tx.send(true);
    let tasks = spawner.await.context("the connecting task panicked")?;
    let closing = async {
        for task in tasks {
            let _ = task.await;
        }
    };
    if timeout(Duration::from_secs(30), closing).await.is_err() {
        eprintln!("  (some connections took over 30 s to close)");
    }
    Ok(HoldReport {
        target: t.addr.to_string(),
        attempted: n,
        connected,
        failures: failures.into_iter().collect(),
        connect_phase,
        connect,
        tls,
        held,
        open_at_end,
    })
}

// ---------------------------------------------------------------------------------
// publish

pub struct PublishConfig {
    pub pairs: usize,
    /// Messages per second in total (0: as fast as the connections take them).
    pub rate: f64,
    pub payload: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub topic_prefix: String,
    pub first_device: usize,
}

#[derive(Debug)]
pub struct PublishReport {
    pub target: String,
    pub pairs: usize,
    pub target_rate: f64,
    pub sent: u64,
    pub received: u64,
    pub measured: Duration,
    pub received_in_window: u64,
    pub sent_in_window: u64,
    pub latency: Histogram<u64>,
}

impl PublishReport {
    pub fn rate(&self) -> f64 {
        self.received_in_window as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    pub fn print(&self, json: bool) {
        let l = &self.latency;
        eprintln!(
            "mqtt publish {}: {} pairs, QoS 0, target {}: {:.0} messages/s received \
             ({} in {:.1} s; {:.0}/s sent)",
            self.target,
            self.pairs,
            if self.target_rate > 0.0 {
                format!("{:.0}/s", self.target_rate)
            } else {
                "max".into()
            },
            self.rate(),
            self.received_in_window,
            self.measured.as_secs_f64(),
            self.sent_in_window as f64 / self.measured.as_secs_f64().max(1e-9),
        );
        eprintln!(
            "  end-to-end latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            ms(l, 0.5),
            ms(l, 0.9),
            ms(l, 0.99),
            ms(l, 0.999),
            max_ms(l)
        );
        eprintln!(
            "  sent {} in all, received {} ({} not received within 1 s of the publishers' end)",
            self.sent,
            self.received,
            self.sent.saturating_sub(self.received)
        );
        if json {
            println!(
                "{}",
                json!({
                    "mode": "publish",
                    "target": self.target,
                    "pairs": self.pairs,
                    "targetRate": self.target_rate,
                    "messagesPerSecond": self.rate(),
                    "sentPerSecond": self.sent_in_window as f64 / self.measured.as_secs_f64().max(1e-9),
                    "measuredSeconds": self.measured.as_secs_f64(),
                    "sent": self.sent,
                    "received": self.received,
                    "latencyMs": {"p50": ms(l, 0.5), "p90": ms(l, 0.9), "p99": ms(l, 0.99),
                                  "p999": ms(l, 0.999), "max": max_ms(l)},
                })
            );
        }
    }
}

/// A QoS 0 PUBLISH to `topic` with a `payload`-byte body: the fixed header and topic,
/// made once; the body (send time, sequence, padding) is appended per message.
fn publish_head(topic: &str, payload: usize) -> BytesMut {
    let remaining = 2 + topic.len() + payload;
    let mut head = BytesMut::with_capacity(8 + topic.len());
    head.put_u8(0x30);
    let mut x = remaining;
    loop {
        let mut byte = (x % 128) as u8;
        x /= 128;
        if x > 0 {
            byte |= 0x80;
        }
        head.put_u8(byte);
        if x == 0 {
            break;
        }
    }
    head.put_u16(topic.len() as u16);
    head.put_slice(topic.as_bytes());
    head
}

fn append_message(out: &mut BytesMut, head: &[u8], seq: u64, payload: usize) {
    out.put_slice(head);
    out.put_u64(now_ns());
    out.put_u64(seq);
    out.put_bytes(b'x', payload - STAMP);
}

struct Window {
    start_ns: u64,
    end_ns: u64,
}

pub async fn publish(t: Arc<MqttTarget>, config: PublishConfig) -> Result<PublishReport> {
    if config.payload < STAMP {
        bail!("--payload must be at least {STAMP} bytes");
    }
    let m = config.pairs;
    // Subscribers first, each subscribed before any publisher starts.
    let mut subscribers = Vec::with_capacity(m);
    for i in 0..m {
        let client_id = format!("{}-sub-{i}", t.client_prefix);
        let (mut conn, _) = open(&t, config.first_device + i, &client_id)
            .await
            .map_err(|f| anyhow::anyhow!("subscriber {i} could not connect: {f}"))?;
        let topic = format!("{}/{i}", config.topic_prefix);
        let mut out = BytesMut::new();
        let mut sub = v4::Subscribe::new(topic.as_str(), QoS::AtMostOnce);
        sub.pkid = 1;
        write_packet(&v4::Packet::Subscribe(sub), &mut out);
        conn.stream.write_all(&out).await?;
        loop {
            match v4::Packet::read(&mut conn.buf, MAX_PACKET) {
                Ok(v4::Packet::SubAck(ack)) => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, v4::SubscribeReasonCode::Failure))
                    {
                        bail!("subscriber {i}: SUBSCRIBE to {topic} refused");
                    }
                    break;
                }
                Ok(_) => {}
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                    if conn.stream.read_buf(&mut conn.buf).await? == 0 {
                        bail!("subscriber {i}: closed before its SUBACK");
                    }
                }
                Err(e) => bail!("subscriber {i}: {e:?}"),
            }
        }
        subscribers.push(conn);
    }
    let mut publishers = Vec::with_capacity(m);
    for i in 0..m {
        let client_id = format!("{}-pub-{i}", t.client_prefix);
        let (conn, _) = open(&t, config.first_device + m + i, &client_id)
            .await
            .map_err(|f| anyhow::anyhow!("publisher {i} could not connect: {f}"))?;
        publishers.push(conn);
    }
    eprintln!(
        "  {m} subscribers and {m} publishers connected to {}",
        t.addr
    );

    let begin = now_ns();
    let window = Arc::new(Window {
        start_ns: begin + config.warmup.as_nanos() as u64,
        end_ns: begin + (config.warmup + config.duration).as_nanos() as u64,
    });
    let (stop_pub_tx, stop_pub_rx) = watch::channel(false);
    let (stop_sub_tx, stop_sub_rx) = watch::channel(false);
    let sent = Arc::new(AtomicU64::new(0));
    let sent_in_window = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let received_in_window = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(histogram()));

    let mut sub_tasks = Vec::new();
    for mut conn in subscribers {
        let (window, mut stop) = (window.clone(), stop_sub_rx.clone());
        let (received, received_in_window, latency) = (
            received.clone(),
            received_in_window.clone(),
            latency.clone(),
        );
        sub_tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let (mut all, mut counted) = (0u64, 0u64);
            conn.buf.reserve(64 * 1024);
            'read: loop {
                loop {
                    match v4::Packet::read(&mut conn.buf, MAX_PACKET) {
                        Ok(v4::Packet::Publish(p)) => {
                            let now = now_ns();
                            all += 1;
                            if p.payload.len() >= 8 && now >= window.start_ns && now < window.end_ns
                            {
                                let sent_at =
                                    u64::from_be_bytes(p.payload[..8].try_into().unwrap());
                                counted += 1;
                                let _ = h.record(
                                    (now.saturating_sub(sent_at) / 1000).clamp(1, HIST_MAX_US),
                                );
                            }
                        }
                        Ok(_) => {}
                        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => break,
                        Err(_) => break 'read,
                    }
                }
                if conn.buf.capacity() - conn.buf.len() < 16 * 1024 {
                    conn.buf.reserve(64 * 1024);
                }
                tokio::select! {
                    _ = stop.changed() => break,
                    read = conn.stream.read_buf(&mut conn.buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
            received.fetch_add(all, Ordering::Relaxed);
            received_in_window.fetch_add(counted, Ordering::Relaxed);
            latency
                .lock()
                .unwrap()
                .add(&h)
                .expect("same histogram bounds");
            disconnect(&mut conn).await;
        }));
    }

    let per_publisher = config.rate / m as f64;
    let mut pub_tasks = Vec::new();
    for (i, mut conn) in publishers.into_iter().enumerate() {
        let (window, mut stop) = (window.clone(), stop_pub_rx.clone());
        let (sent, sent_in_window) = (sent.clone(), sent_in_window.clone());
        let head = publish_head(&format!("{}/{i}", config.topic_prefix), config.payload);
        let payload = config.payload;
        pub_tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut out = BytesMut::with_capacity(64 * 1024);
            let (mut seq, mut counted) = (0u64, 0u64);
            let batch_max = (32 * 1024 / (head.len() + payload)).max(1) as u64;
            loop {
                let due = if per_publisher > 0.0 {
                    let due = (started.elapsed().as_secs_f64() * per_publisher) as u64 + 1;
                    if due <= seq {
                        // Next message's time.
                        let at = started + Duration::from_secs_f64(seq as f64 / per_publisher);
                        tokio::select! {
                            _ = stop.changed() => break,
                            _ = tokio::time::sleep_until(at.into()) => {}
                        }
                        continue;
                    }
                    (due - seq).min(batch_max)
                } else {
                    batch_max
                };
                out.clear();
                for k in 0..due {
                    append_message(&mut out, &head, seq + k, payload);
                }
                let now = now_ns();
                // Not raced against the stop: a message is counted once written whole.
                match timeout(Duration::from_secs(5), conn.stream.write_all(&out)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
                seq += due;
                if now >= window.start_ns && now < window.end_ns {
                    counted += due;
                }
                if *stop.borrow() {
                    break;
                }
            }
            sent.fetch_add(seq, Ordering::Relaxed);
            sent_in_window.fetch_add(counted, Ordering::Relaxed);
            disconnect(&mut conn).await;
        }));
    }

    tokio::time::sleep(config.warmup + config.duration).await;
    let _ = stop_pub_tx.send(true);
    for task in pub_tasks {
        let _ = task.await;
    }
    // What is still on its way arrives (and is counted in the totals only).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_sub_tx.send(true);
    for task in sub_tasks {
        let _ = task.await;
    }
    let latency = Arc::try_unwrap(latency)
        .map_err(|_| anyhow::anyhow!("a subscriber still holds the histogram"))?
        .into_inner()
        .unwrap();
    Ok(PublishReport {
        target: t.addr.to_string(),
        pairs: m,
        target_rate: config.rate,
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        measured: config.duration,
        received_in_window: received_in_window.load(Ordering::Relaxed),
        sent_in_window: sent_in_window.load(Ordering::Relaxed),
        latency,
    })
}

/// Raises the open-file soft limit to the hard limit; the new soft limit.
pub fn raise_nofile() -> Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX).context("raising the open-file limit")
}

pub fn check_dir(dir: &Path) -> Result<()> {
    if !dir.join("fleet.json").exists() {
        bail!(
            "{} holds no fleet: run `palisade-loadgen mqtt-setup --out {}` first",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_matches_the_codec() {
        for payload in [16usize, 64, 200, 20_000] {
            let topic = "bench/run/7";
            let head = publish_head(topic, payload);
            let mut ours = BytesMut::new();
            append_message(&mut ours, &head, 3, payload);
            let mut buf = ours.clone();
            match v4::Packet::read(&mut buf, MAX_PACKET).unwrap() {
                v4::Packet::Publish(p) => {
                    assert_eq!(p.topic, topic);
                    assert_eq!(p.qos, QoS::AtMostOnce);
                    assert_eq!(p.payload.len(), payload);
                    assert_eq!(u64::from_be_bytes(p.payload[8..16].try_into().unwrap()), 3);
                    let mut theirs = BytesMut::new();
                    v4::Publish::new(topic, QoS::AtMostOnce, p.payload.to_vec())
                        .write(&mut theirs)
                        .unwrap();
                    assert_eq!(ours, theirs);
                }
                other => panic!("{other:?}"),
            }
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn only_loopback() {
        assert!(loopback_addr("127.0.0.1:8883").is_ok());
        assert!(loopback_addr("localhost:8883").is_ok());
        assert!(loopback_addr("10.0.0.1:8883").is_err());
        assert!(loopback_addr("example.com:8883").is_err());
    }
}
