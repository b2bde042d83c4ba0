//! The embedded broker, when no `--mqtt-backend` is given: rumqttd, on a loopback port
//! only the gateway connects to.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::{Backend, GatewayError};

/// Starts rumqttd on its own threads (it runs its own runtimes) and waits until it
/// accepts connections; its MQTT 3.1.1 and MQTT 5 addresses (rumqttd listens for each
/// version on a port of its own).
pub(crate) fn start() -> Result<Backend, GatewayError> {
    let (v4_addr, v5_addr) = (free_port()?, free_port()?);
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        // AWS IoT Core's 128 KB payloads, with room for the topic and properties.
        max_payload_size: 136 * 1024,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = |name: &str, listen: SocketAddr| ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: connections.clone(),
    };
    let mut v4 = HashMap::new();
    v4.insert("gateway-v4".to_owned(), server("gateway-v4", v4_addr));
    let mut v5 = HashMap::new();
    v5.insert("gateway-v5".to_owned(), server("gateway-v5", v5_addr));
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(v4),
        v5: Some(v5),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = ?e, "the embedded broker stopped");
            }
        })
        .map_err(|e| GatewayError::Broker(e.to_string()))?;
    // Listening once its ports are taken (a probe connection would be logged by
    // rumqttd as a failed client).
    for addr in [v4_addr, v5_addr] {
        let up = (0..250).any(|_| {
            let taken = TcpListener::bind(addr).is_err();
            if !taken {
                std::thread::sleep(Duration::from_millis(20));
            }
            taken
        });
        if !up {
            return Err(GatewayError::Broker(format!(
                "the embedded broker did not start listening on {addr}"
            )));
        }
    }
    Ok(Backend {
        v4: v4_addr,
        v5: v5_addr,
    })
}

/// rumqttd takes a port, not a listener: a free one is found by binding port 0.
fn free_port() -> Result<SocketAddr, GatewayError> {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| GatewayError::Broker(format!("finding a port: {e}")))?;
    probe
        .local_addr()
        .map_err(|e| GatewayError::Broker(e.to_string()))
}
