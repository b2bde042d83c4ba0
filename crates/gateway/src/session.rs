//! One device connection: TLS, CONNECT (authenticated by the certificate, authorized by
//! its policies), a connection to the broker for it, then every packet both ways,
//! authorized as AWS IoT Core authorizes it, until one side ends it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use palisade_engine::{AuthRefusal, DeviceAuthorization, DeviceIdentity};
use palisade_store::{ConnectionClose, ConnectionRecord};
use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode as Dr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use crate::packets::{self, ConnectRefusal, Kind, Packet, Version};
use crate::sessions::Kick;
use crate::Shared;

/// How long a device has to finish the TLS handshake and send CONNECT.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
/// How long the broker has to accept the gateway's connection.
const BROKER_WITHIN: Duration = Duration::from_secs(10);
/// Longest client id AWS IoT Core accepts, in bytes.
const MAX_CLIENT_ID: usize = 128;

/// How a connection ended: the model's DisconnectReasonValue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    ClientDisconnect,
    DuplicateClientId,
    KeepAlive,
    AuthError,
    ClientError,
    ServerInitiated,
    Shutdown,
    ConnectionLost,
    ServerError,
}

impl Ended {
    fn reason(self) -> &'static str {
        match self {
            Ended::ClientDisconnect => "CLIENT_INITIATED_DISCONNECT",
            Ended::DuplicateClientId => "DUPLICATE_CLIENTID",
            Ended::KeepAlive => "MQTT_KEEP_ALIVE_TIMEOUT",
            Ended::AuthError => "AUTH_ERROR",
            Ended::ClientError => "CLIENT_ERROR",
            Ended::ServerInitiated | Ended::Shutdown => "SERVER_INITIATED_DISCONNECT",
            Ended::ConnectionLost => "CONNECTION_LOST",
            Ended::ServerError => "SERVER_ERROR",
        }
    }

    /// The MQTT 5 DISCONNECT the device is sent, if any.
    fn disconnect_code(self) -> Option<Dr> {
        match self {
            Ended::DuplicateClientId => Some(Dr::SessionTakenOver),
            Ended::KeepAlive => Some(Dr::KeepAliveTimeout),
            Ended::AuthError => Some(Dr::NotAuthorized),
            Ended::ClientError => Some(Dr::ProtocolError),
            Ended::ServerInitiated => Some(Dr::AdministrativeAction),
            Ended::Shutdown => Some(Dr::ServerShuttingDown),
            Ended::ServerError => Some(Dr::UnspecifiedError),
            Ended::ClientDisconnect | Ended::ConnectionLost => None,
        }
    }
}

/// Serves one accepted TCP connection to its end. Never panics on device input; every
/// failure ends this connection only.
pub(crate) async fn serve(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let Ok(Ok(tls)) = timeout(CONNECT_WITHIN, shared.acceptor.accept(tcp)).await else {
        return;
    };
    let (certificate_der, server_name) = {
        let (_, conn) = tls.get_ref();
        let der = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        (der, conn.server_name().map(str::to_owned))
    };
    let Some(certificate_der) = certificate_der else {
        return;
    };
    let mut device = tls;
    let mut inbuf = BytesMut::with_capacity(1024);
    let Ok(Some((version, connect))) =
        timeout(CONNECT_WITHIN, read_connect(&mut device, &mut inbuf)).await
    else {
        return;
    };
    let Some(view) = connect.connect() else {
        return;
    };

    let identity = match shared
        .engine
        .authenticate_device(&shared.region, &certificate_der, server_name.as_deref())
        .await
    {
        Ok(Ok(identity)) => identity,
        Ok(Err(refusal)) => {
            tracing::info!(%peer, ?refusal, "device certificate refused");
            let code = match refusal {
                AuthRefusal::NotRegistered
                | AuthRefusal::NotActive(_)
                | AuthRefusal::AccountNotChosen
                | AuthRefusal::Unreadable => ConnectRefusal::NotAuthorized,
            };
            refuse(&mut device, version, code).await;
            return;
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "authenticating a device failed");
            refuse(&mut device, version, ConnectRefusal::ServerUnavailable).await;
            return;
        }
    };

    let client_id = view.client_id.clone();
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID {
        refuse(&mut device, version, ConnectRefusal::BadClientId).await;
        return;
    }
    let auth = match shared
        .engine
        .device_authorization(&identity, &client_id, &peer.ip().to_string())
        .await
    {
        Ok(auth) => auth,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "reading a device's policies failed");
            refuse(&mut device, version, ConnectRefusal::ServerUnavailable).await;
            return;
        }
    };
    let will_allowed = view.will.as_ref().is_none_or(|(topic, retain)| {
        auth.allows("iot:Publish", "topic", topic)
            && (!retain || auth.allows("iot:RetainPublish", "topic", topic))
    });
    if !auth.allows("iot:Connect", "client", &client_id) || !will_allowed {
        tracing::info!(%peer, client_id, "device not authorized to connect");
        refuse(&mut device, version, ConnectRefusal::NotAuthorized).await;
        return;
    }

    let account = identity.scope.account_id.clone();
    shared.sessions.take_over(&account, &client_id);
    let keep_alive = aws_keep_alive(view.keep_alive);
    let session_id = uuid::Uuid::new_v4().to_string();
    let record = ConnectionRecord {
        id: session_id.clone(),
        certificate_id: identity.certificate_id.clone(),
        client_id: client_id.clone(),
        thing_name: auth.thing_name.clone(),
        source_ip: peer.ip().to_string(),
        source_port: Some(i64::from(peer.port())),
        node_id: Some(shared.node_id.clone()),
        connected_at_ms: now_ms(),
        disconnected_at_ms: None,
        disconnect_reason: None,
        clean_session: Some(view.clean_session),
        keep_alive_secs: Some(i64::from(keep_alive)),
        messages_in: 0,
        messages_out: 0,
        bytes_in: 0,
        bytes_out: 0,
    };
    // Recorded (taking over the client id's older session in the store) before the
    // broker sees the new connection, so the older one's node finds the takeover
    // recorded when its broker connection ends.
    if !shared.recorder.open(identity.scope.clone(), record).await {
        tracing::warn!(%peer, "recording a connection failed: refused");
        refuse(&mut device, version, ConnectRefusal::ServerUnavailable).await;
        return;
    }
    let mut counters = Counters::default();
    let (kick_tx, kick_rx) = mpsc::channel(1);
    shared.sessions.insert(
        &account,
        &client_id,
        &session_id,
        &identity.certificate_id,
        kick_tx,
    );

    let prefix = format!("{account}/");
    let ended =
        match connect_broker(&shared, &connect, &prefix, &client_id, &view, keep_alive).await {
            Some((upstream, upbuf, connack)) => {
                let mut session = Session {
                    shared: &shared,
                    identity: &identity,
                    auth,
                    client_id: &client_id,
                    source_ip: peer.ip().to_string(),
                    version,
                    prefix,
                    epoch: shared.engine.registry_epoch(),
                    aliases: Vec::new(),
                    pending_subscribes: Vec::new(),
                    counters: &mut counters,
                    to_device: BytesMut::new(),
                    to_broker: BytesMut::new(),
                };
                if session.send_device(&mut device, &connack).await.is_err() {
                    Ended::ConnectionLost
                } else {
                    session
                        .pump(
                            &mut device,
                            inbuf,
                            upstream,
                            upbuf,
                            kick_rx,
                            keep_alive,
                            &session_id,
                        )
                        .await
                }
            }
            None => {
                refuse(&mut device, version, ConnectRefusal::ServerUnavailable).await;
                Ended::ServerError
            }
        };
    shared.sessions.remove(&account, &client_id, &session_id);
    shared.recorder.close(ConnectionClose {
        scope: identity.scope.clone(),
        id: session_id,
        at_ms: now_ms(),
        reason: ended.reason().to_owned(),
        messages_in: counters.messages_in,
        messages_out: counters.messages_out,
        bytes_in: counters.bytes_in,
        bytes_out: counters.bytes_out,
    });
    let _ = device.shutdown().await;
}

/// Reads the CONNECT that must open the connection.
async fn read_connect<S: AsyncRead + Unpin>(
    device: &mut S,
    buf: &mut BytesMut,
) -> Option<(Version, Packet)> {
    loop {
        if let Some(version) = packets::connect_version(buf).ok()? {
            if let Some(p) = Packet::read(version, buf).ok()? {
                return (p.kind() == Kind::Connect).then_some((version, p));
            }
        }
        if buf.len() > packets::MAX_PACKET || device.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

async fn refuse<S: AsyncWrite + Unpin>(device: &mut S, version: Version, why: ConnectRefusal) {
    let mut out = BytesMut::new();
    if packets::connack_refused(version, why)
        .write(&mut out)
        .is_ok()
    {
        let _ = device.write_all(&out).await;
    }
    let _ = device.shutdown().await;
}

/// AWS IoT Core's keep-alive: 30 to 1200 seconds, 0 meaning 1200.
fn aws_keep_alive(requested: u16) -> u16 {
    match requested {
        0 => 1200,
        k => k.clamp(30, 1200),
    }
}

/// Connects to the broker as the device (its client id and topics under the account's
/// prefix) and reads its CONNACK.
async fn connect_broker(
    shared: &Shared,
    connect: &Packet,
    prefix: &str,
    client_id: &str,
    view: &packets::ConnectView,
    keep_alive: u16,
) -> Option<(TcpStream, BytesMut, Packet)> {
    let upstream_connect = connect.upstream_connect(
        broker_client_id(prefix, client_id),
        view.will.as_ref().map(|(t, _)| format!("{prefix}{t}")),
        keep_alive,
    )?;
    let version = match connect {
        Packet::V4(_) => Version::V4,
        Packet::V5(_) => Version::V5,
    };
    let attempt = async {
        let addr = match version {
            Version::V4 => shared.backend.v4,
            Version::V5 => shared.backend.v5,
        };
        let mut upstream = TcpStream::connect(addr).await.ok()?;
        let _ = upstream.set_nodelay(true);
        let mut out = BytesMut::new();
        upstream_connect.write(&mut out).ok()?;
        upstream.write_all(&out).await.ok()?;
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            if let Some(p) = Packet::read(version, &mut buf).ok()? {
                return (p.kind() == Kind::ConnAck).then_some((upstream, buf, p));
            }
            if upstream.read_buf(&mut buf).await.ok()? == 0 {
                return None;
            }
        }
    };
    let Ok(Some((upstream, buf, mut connack))) = timeout(BROKER_WITHIN, attempt).await else {
        tracing::warn!(client_id, broker = ?shared.backend, "connecting to the broker failed");
        return None;
    };
    if !connack.accept_connack() {
        tracing::warn!(client_id, "the broker refused the gateway's connection");
        return None;
    }
    Some((upstream, buf, connack))
}

#[derive(Default)]
struct Counters {
    messages_in: i64,
    messages_out: i64,
    bytes_in: i64,
    bytes_out: i64,
}

struct Session<'a> {
    shared: &'a Shared,
    identity: &'a DeviceIdentity,
    auth: DeviceAuthorization,
    client_id: &'a str,
    source_ip: String,
    version: Version,
    prefix: String,
    /// The registry epoch `auth` was read at.
    epoch: u64,
    /// MQTT 5 topic aliases the device set.
    aliases: Vec<(u16, String)>,
    /// SUBSCRIBEs forwarded with some filters refused: packet id and which were kept.
    pending_subscribes: Vec<(u16, Vec<bool>)>,
    counters: &'a mut Counters,
    /// What the packets of one read send on, written at once when the read is handled.
    to_device: BytesMut,
    to_broker: BytesMut,
}

/// What handling one packet decided.
enum Step {
    Continue,
    End(Ended),
}

impl Session<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn pump<D: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        device: &mut D,
        mut inbuf: BytesMut,
        mut upstream: TcpStream,
        mut upbuf: BytesMut,
        mut kicks: mpsc::Receiver<Kick>,
        keep_alive: u16,
        session_id: &str,
    ) -> Ended {
        // AWS: disconnected after 1.5 times the keep-alive without a packet.
        let allowance = Duration::from_millis(u64::from(keep_alive) * 1500);
        let mut deadline = Instant::now() + allowance;
        // A CONNECT's bytes may have arrived with more packets behind them.
        let mut pending_input = !inbuf.is_empty();
        loop {
            if pending_input {
                pending_input = false;
                let step = self.device_packets(&mut inbuf).await;
                let flushed = self.flush(device, &mut upstream).await;
                match (step, flushed) {
                    (Step::End(e), _) | (Step::Continue, Err(e)) => {
                        return self.end(device, e).await
                    }
                    (Step::Continue, Ok(())) => {}
                }
            }
            tokio::select! {
                read = device.read_buf(&mut inbuf) => {
                    match read {
                        Ok(0) | Err(_) => return Ended::ConnectionLost,
                        Ok(n) => {
                            self.counters.bytes_in += n as i64;
                            deadline = Instant::now() + allowance;
                            pending_input = true;
                        }
                    }
                    if inbuf.len() > packets::MAX_PACKET * 2 {
                        return self.end(device, Ended::ClientError).await;
                    }
                }
                read = upstream.read_buf(&mut upbuf) => {
                    match read {
                        Ok(0) | Err(_) => {
                            let why = self.broker_gone(session_id).await;
                            return self.end(device, why).await;
                        }
                        Ok(_) => {
                            let step = self.broker_packets(&mut upbuf).await;
                            let flushed = self.flush(device, &mut upstream).await;
                            match (step, flushed) {
                                (Step::End(e), _) | (Step::Continue, Err(e)) => {
                                    return self.end(device, e).await
                                }
                                (Step::Continue, Ok(())) => {}
                            }
                        }
                    }
                }
                kick = kicks.recv() => {
                    let why = match kick {
                        Some(Kick::TakenOver) => Ended::DuplicateClientId,
                        Some(Kick::CertificateInactive) => Ended::ServerInitiated,
                        Some(Kick::Shutdown) | None => Ended::Shutdown,
                    };
                    return self.end(device, why).await;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return self.end(device, Ended::KeepAlive).await;
                }
            }
        }
    }

    /// The broker closed the connection: a takeover recorded by another node, or the
    /// broker going away.
    async fn broker_gone(&self, session_id: &str) -> Ended {
        let closed = self
            .shared
            .engine
            .closed_connections_among(&[session_id.to_owned()])
            .await
            .unwrap_or_default();
        match closed.first().map(|(_, reason)| reason.as_str()) {
            Some("DUPLICATE_CLIENTID") => Ended::DuplicateClientId,
            _ => Ended::ServerInitiated,
        }
    }

    async fn end<D: AsyncWrite + Unpin>(&mut self, device: &mut D, why: Ended) -> Ended {
        if let Some(code) = why.disconnect_code() {
            if let Some(p) = packets::disconnect(self.version, code) {
                let _ = self.send_device(device, &p).await;
            }
        }
        why
    }

    /// Re-reads the connection's policies when the registry has changed since.
    async fn refresh(&mut self) {
        let now = self.shared.engine.registry_epoch();
        if now == self.epoch {
            return;
        }
        if let Ok(auth) = self
            .shared
            .engine
            .device_authorization(self.identity, self.client_id, &self.source_ip)
            .await
        {
            self.auth = auth;
            self.epoch = now;
        }
    }

    async fn device_packets(&mut self, inbuf: &mut BytesMut) -> Step {
        loop {
            let mut packet = match Packet::read(self.version, inbuf) {
                Ok(Some(p)) => p,
                Ok(None) => return Step::Continue,
                Err(e) => {
                    tracing::debug!(client_id = self.client_id, error = %e, "malformed packet");
                    return Step::End(Ended::ClientError);
                }
            };
            self.refresh().await;
            let step = match packet.kind() {
                Kind::Publish => self.device_publish(&mut packet),
                Kind::Subscribe => self.device_subscribe(&mut packet),
                Kind::Unsubscribe => {
                    let prefix = self.prefix.clone();
                    let keep = vec![true; packet.filters().len()];
                    packet.retain_filters(&keep, |f| with_prefix(&prefix, f));
                    self.queue_broker(&packet)
                }
                Kind::Disconnect => {
                    let _ = self.queue_broker(&packet);
                    Step::End(Ended::ClientDisconnect)
                }
                Kind::Connect => Step::End(Ended::ClientError),
                _ => self.queue_broker(&packet),
            };
            if let Step::End(e) = step {
                return Step::End(e);
            }
        }
    }

    fn device_publish(&mut self, packet: &mut Packet) -> Step {
        let Some(view) = packet.publish() else {
            return Step::End(Ended::ClientError);
        };
        let (qos, retain, pkid, alias) = (view.qos, view.retain, view.pkid, view.alias);
        let Some(mut topic) = view.topic().map(str::to_owned) else {
            return Step::End(Ended::ClientError);
        };
        if self.version == Version::V5 && qos > 1 {
            // AWS IoT Core's maximum QoS is 1.
            if let Some(p) = packets::disconnect(self.version, Dr::QoSNotSupported) {
                let _ = self.queue_device(&p);
            }
            return Step::End(Ended::ClientError);
        }
        if let Some(alias) = alias {
            if alias == 0 || alias > packets::TOPIC_ALIASES {
                return Step::End(Ended::ClientError);
            }
            if topic.is_empty() {
                match self.aliases.iter().find(|(a, _)| *a == alias) {
                    Some((_, t)) => topic = t.clone(),
                    None => return Step::End(Ended::ClientError),
                }
            } else {
                self.aliases.retain(|(a, _)| *a != alias);
                self.aliases.push((alias, topic.clone()));
            }
        }
        self.counters.messages_in += 1;
        let allowed = self.auth.allows("iot:Publish", "topic", &topic)
            && (!retain || self.auth.allows("iot:RetainPublish", "topic", &topic));
        if !allowed {
            tracing::info!(client_id = self.client_id, topic, "publish not authorized");
            return match (self.version, qos) {
                (Version::V5, 1) => {
                    if self
                        .queue_device(&packets::puback(self.version, pkid, true))
                        .is_err()
                    {
                        return Step::End(Ended::ConnectionLost);
                    }
                    Step::Continue
                }
                _ => Step::End(Ended::AuthError),
            };
        }
        packet.set_publish_topic(format!("{}{topic}", self.prefix));
        self.queue_broker(packet)
    }

    fn device_subscribe(&mut self, packet: &mut Packet) -> Step {
        let filters = packet.filters();
        let keep: Vec<bool> = filters
            .iter()
            .map(|f| self.auth.allows("iot:Subscribe", "topicfilter", f))
            .collect();
        let pkid = packet.pkid();
        if !keep.iter().any(|k| *k) {
            let refusal = packets::suback_refused(self.version, pkid, filters.len());
            return match self.queue_device(&refusal) {
                Ok(()) => Step::Continue,
                Err(()) => Step::End(Ended::ConnectionLost),
            };
        }
        if keep.iter().any(|k| !*k) {
            self.pending_subscribes.retain(|(p, _)| *p != pkid);
            self.pending_subscribes.push((pkid, keep.clone()));
        }
        let prefix = self.prefix.clone();
        packet.retain_filters(&keep, |f| with_prefix(&prefix, f));
        self.queue_broker(packet)
    }

    async fn broker_packets(&mut self, upbuf: &mut BytesMut) -> Step {
        loop {
            let mut packet = match Packet::read(self.version, upbuf) {
                Ok(Some(p)) => p,
                Ok(None) => return Step::Continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the broker sent a malformed packet");
                    return Step::End(Ended::ServerError);
                }
            };
            match packet.kind() {
                Kind::Publish => {
                    let Some(view) = packet.publish() else {
                        continue;
                    };
                    let (qos, pkid) = (view.qos, view.pkid);
                    let topic = view
                        .topic()
                        .and_then(|t| t.strip_prefix(self.prefix.as_str()))
                        .map(str::to_owned);
                    self.refresh().await;
                    let deliver = topic
                        .as_deref()
                        .is_some_and(|t| self.auth.allows("iot:Receive", "topic", t));
                    match (deliver, topic) {
                        (true, Some(topic)) => {
                            packet.set_publish_topic(topic);
                            self.counters.messages_out += 1;
                            if self.queue_device(&packet).is_err() {
                                return Step::End(Ended::ConnectionLost);
                            }
                        }
                        _ => {
                            // Not delivered; acknowledged so the broker does not retry.
                            if qos == 1 {
                                let ack = packets::puback(self.version, pkid, false);
                                if let Step::End(e) = self.queue_broker(&ack) {
                                    return Step::End(e);
                                }
                            }
                        }
                    }
                }
                Kind::SubAck => {
                    let pkid = packet.pkid();
                    if let Some(i) = self.pending_subscribes.iter().position(|(p, _)| *p == pkid) {
                        let (_, keep) = self.pending_subscribes.swap_remove(i);
                        packet.merge_suback(&keep);
                    }
                    if self.queue_device(&packet).is_err() {
                        return Step::End(Ended::ConnectionLost);
                    }
                }
                Kind::Disconnect => return Step::End(Ended::ServerInitiated),
                _ => {
                    if self.queue_device(&packet).is_err() {
                        return Step::End(Ended::ConnectionLost);
                    }
                }
            }
        }
    }

    /// Queues a packet for the device (written by [`flush`](Self::flush)).
    fn queue_device(&mut self, packet: &Packet) -> Result<(), ()> {
        let before = self.to_device.len();
        packet.write(&mut self.to_device).map_err(|_| ())?;
        self.counters.bytes_out += (self.to_device.len() - before) as i64;
        Ok(())
    }

    /// Queues a packet for the broker (written by [`flush`](Self::flush)).
    fn queue_broker(&mut self, packet: &Packet) -> Step {
        match packet.write(&mut self.to_broker) {
            Ok(()) => Step::Continue,
            Err(_) => Step::End(Ended::ClientError),
        }
    }

    /// Writes what the packets of one read queued: one write (and one TLS record
    /// flush) each way, however many packets the read held.
    async fn flush<D: AsyncWrite + Unpin>(
        &mut self,
        device: &mut D,
        upstream: &mut TcpStream,
    ) -> Result<(), Ended> {
        if !self.to_broker.is_empty() {
            upstream
                .write_all(&self.to_broker)
                .await
                .map_err(|_| Ended::ServerInitiated)?;
            self.to_broker.clear();
        }
        if !self.to_device.is_empty() {
            device
                .write_all(&self.to_device)
                .await
                .map_err(|_| Ended::ConnectionLost)?;
            device.flush().await.map_err(|_| Ended::ConnectionLost)?;
            self.to_device.clear();
        }
        Ok(())
    }

    /// Sends one packet to the device now.
    async fn send_device<D: AsyncWrite + Unpin>(
        &mut self,
        device: &mut D,
        packet: &Packet,
    ) -> Result<(), ()> {
        self.queue_device(packet)?;
        device.write_all(&self.to_device).await.map_err(|_| ())?;
        self.to_device.clear();
        device.flush().await.map_err(|_| ())
    }
}

/// A filter under the account's prefix. Shared subscriptions keep their
/// `$share/<name>/` head in front.
fn with_prefix(prefix: &str, filter: &str) -> String {
    if let Some(rest) = filter.strip_prefix("$share/") {
        if let Some((name, inner)) = rest.split_once('/') {
            return format!("$share/{name}/{prefix}{inner}");
        }
    }
    format!("{prefix}{filter}")
}

/// The device's client id at the broker: under its account (`<account>:<id>`), and
/// hex-encoded (`<account>~<hex>`) when it holds a character some brokers refuse in a
/// client id (rumqttd refuses `/`, `+`, `#` and `$`). The two forms never collide: the
/// first never holds `~`.
fn broker_client_id(prefix: &str, client_id: &str) -> String {
    let account = prefix.trim_end_matches('/');
    let plain = client_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
    if plain {
        format!("{account}:{client_id}")
    } else {
        let hex: String = client_id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{account}~{hex}")
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_is_clamped_as_aws_does() {
        assert_eq!(aws_keep_alive(0), 1200);
        assert_eq!(aws_keep_alive(5), 30);
        assert_eq!(aws_keep_alive(60), 60);
        assert_eq!(aws_keep_alive(5000), 1200);
    }

    #[test]
    fn broker_client_ids_are_per_account_and_broker_safe() {
        assert_eq!(broker_client_id("1/", "dev-1"), "1:dev-1");
        assert_eq!(broker_client_id("1/", "a/b"), "1~612f62");
    }

    #[test]
    fn shared_subscriptions_keep_their_head() {
        assert_eq!(with_prefix("1/", "a/#"), "1/a/#");
        assert_eq!(with_prefix("1/", "$share/g/a/#"), "$share/g/1/a/#");
    }
}
