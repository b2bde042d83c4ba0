//! Devices for the gateway tests: a gateway on a test server's engine, certificates made
//! through the API, and a real MQTT client (rumqttc, 3.1.1 and 5) over TLS with them.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_iot::Client;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

use super::{TestServer, REGION};

/// The machine's Mosquitto, plain MQTT (`.ci/run` starts it when it is not running).
pub const MOSQUITTO: &str = "127.0.0.1:1883";

/// A gateway node on `server`'s engine: embedded broker when `backend` is `None`.
pub async fn start_gateway(
    server: &TestServer,
    backend: Option<&str>,
) -> palisade_gateway::Gateway {
    start_gateway_on(&server.engine, backend).await
}

pub async fn start_gateway_on(
    engine: &palisade_engine::Engine,
    backend: Option<&str>,
) -> palisade_gateway::Gateway {
    let certificate = palisade_gateway::ServerCertificate::Generated {
        hosts: vec!["localhost".into(), "127.0.0.1".into()],
    };
    start_gateway_with(engine, backend, certificate).await
}

/// A gateway node serving `certificate` (`--mqtt-tls-cert` / `--mqtt-tls-key`, or made).
pub async fn start_gateway_with(
    engine: &palisade_engine::Engine,
    backend: Option<&str>,
    certificate: palisade_gateway::ServerCertificate,
) -> palisade_gateway::Gateway {
    // What `palisade serve` runs beside the gateway: registry changes made on another
    // node (through the store) reach this one.
    let sync = engine.clone();
    tokio::spawn(async move {
        let mut seen = sync.registry_epoch_stored().await.unwrap_or_default();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = sync.sync_registry_epoch(&mut seen).await;
        }
    });
    palisade_gateway::Gateway::start(
        engine.clone(),
        palisade_gateway::GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            certificate,
            backend: backend.map(|b| b.parse().expect("backend address")),
            region: REGION.into(),
            node_id: uuid::Uuid::new_v4().to_string(),
        },
    )
    .await
    .expect("gateway starts")
}

/// A device certificate made by CreateKeysAndCertificate (ACTIVE).
#[derive(Clone)]
pub struct DeviceCert {
    pub id: String,
    pub arn: String,
    pub pem: String,
    pub key: String,
}

pub async fn device_cert(client: &Client) -> DeviceCert {
    let out = client
        .create_keys_and_certificate()
        .set_as_active(true)
        .send()
        .await
        .expect("CreateKeysAndCertificate");
    DeviceCert {
        id: out.certificate_id.unwrap(),
        arn: out.certificate_arn.unwrap(),
        pem: out.certificate_pem.unwrap(),
        key: out.key_pair.unwrap().private_key.unwrap(),
    }
}

/// Creates `name` with `document` and attaches it to the certificate.
pub async fn attach_policy(client: &Client, name: &str, document: &str, cert: &DeviceCert) {
    client
        .create_policy()
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .expect("CreatePolicy");
    client
        .attach_policy()
        .policy_name(name)
        .target(&cert.arn)
        .send()
        .await
        .expect("AttachPolicy");
}

pub const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#;

/// What a device saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Connected,
    Refused(String),
    Message(String, String),
    SubAck(Vec<bool>),
    PubAck,
    /// The connection ended (with the client's error text).
    Closed(String),
}

/// A connected (or refused) MQTT 3.1.1 device.
pub struct Device {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<Seen>,
}

pub fn tls(gateway: &palisade_gateway::Gateway, cert: &DeviceCert) -> Arc<rustls::ClientConfig> {
    tls_with(gateway.ca_pem().unwrap(), cert)
}

/// TLS trusting the gateway CA `ca_pem`, with the device's certificate.
pub fn tls_with(ca_pem: &str, cert: &DeviceCert) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(cert.key.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    Arc::new(config)
}

/// Connects as `client_id` and reports what happens until the connection ends (no
/// reconnection).
pub async fn connect(
    gateway: &palisade_gateway::Gateway,
    cert: &DeviceCert,
    client_id: &str,
) -> Device {
    connect_at(
        gateway.local_addr().port(),
        gateway.ca_pem().unwrap(),
        cert,
        client_id,
    )
    .await
}

/// Connects to a gateway on localhost:`port` whose CA is `ca_pem`.
pub async fn connect_at(port: u16, ca_pem: &str, cert: &DeviceCert, client_id: &str) -> Device {
    let mut options = MqttOptions::new(client_id, "localhost", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        tls_with(ca_pem, cert),
    )));
    let (client, eventloop) = AsyncClient::new(options, 16);
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(drive(eventloop, tx));
    Device { client, events }
}

async fn drive(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Seen>) {
    loop {
        let seen = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(a))) => {
                if a.code == ConnectReturnCode::Success {
                    Seen::Connected
                } else {
                    let _ = tx.send(Seen::Refused(format!("{:?}", a.code)));
                    return;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => Seen::Message(
                p.topic.clone(),
                String::from_utf8_lossy(&p.payload).into_owned(),
            ),
            Ok(Event::Incoming(Packet::SubAck(s))) => Seen::SubAck(
                s.return_codes
                    .iter()
                    .map(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)))
                    .collect(),
            ),
            Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
            Ok(Event::Outgoing(Outgoing::Disconnect)) => continue,
            Ok(_) => continue,
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                let _ = tx.send(Seen::Refused(format!("{code:?}")));
                return;
            }
            Err(e) => {
                let _ = tx.send(Seen::Closed(e.to_string()));
                return;
            }
        };
        if tx.send(seen).is_err() {
            return;
        }
    }
}

impl Device {
    /// The next event, within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Seen> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for an event `pick` accepts, skipping others; panics after `within`.
    pub async fn expect<T>(
        &mut self,
        within: Duration,
        mut pick: impl FnMut(&Seen) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(seen) => {
                    if let Some(v) = pick(&seen) {
                        return v;
                    }
                }
                None => panic!("no expected event within {within:?}"),
            }
        }
    }

    /// The next message delivered: (topic, payload).
    pub async fn message(&mut self) -> (String, String) {
        self.expect(Duration::from_secs(10), |s| match s {
            Seen::Message(t, p) => Some((t.clone(), p.clone())),
            _ => None,
        })
        .await
    }

    pub async fn connected(&mut self) {
        let s = self.next(Duration::from_secs(10)).await;
        assert_eq!(s, Some(Seen::Connected), "device should connect");
    }

    pub async fn subscribe(&mut self, filter: &str) -> Vec<bool> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        self.expect(Duration::from_secs(10), |s| match s {
            Seen::SubAck(codes) => Some(codes.clone()),
            _ => None,
        })
        .await
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }

    /// Waits until the connection ends; the error text.
    pub async fn closed(&mut self, within: Duration) -> String {
        self.expect(within, |s| match s {
            Seen::Closed(e) => Some(e.clone()),
            _ => None,
        })
        .await
    }
}

/// Connects to 127.0.0.1:`port` over TLS sending `server_name` (no name lookup), sends
/// an MQTT 3.1.1 CONNECT as `client_id`, and returns the CONNACK's return code (None if
/// the connection ended without one).
pub async fn connack_with_server_name(
    port: u16,
    ca_pem: &str,
    cert: &DeviceCert,
    server_name: &str,
    client_id: &str,
) -> Option<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("TCP connect");
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned()).expect("a DNS name");
    let mut tls = tokio_rustls::TlsConnector::from(tls_with(ca_pem, cert))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    // Protocol "MQTT" level 4, clean session, keep-alive 30 s, then the client id.
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30];
    body.extend((client_id.len() as u16).to_be_bytes());
    body.extend(client_id.as_bytes());
    let mut packet = vec![0x10, u8::try_from(body.len()).expect("a short CONNECT")];
    packet.extend(body);
    tls.write_all(&packet).await.expect("send CONNECT");
    tls.flush().await.expect("flush");
    let mut connack = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut connack)).await {
        Ok(Ok(_)) if connack[0] == 0x20 => Some(connack[3]),
        _ => None,
    }
}
