//! MQTT 3.1.1 and MQTT 5 packets as the gateway handles them: read from a buffer,
//! inspected (what a policy is asked about), rewritten (topics move under the account's
//! prefix at the broker), written back. The codec is rumqttc's, for both versions.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// Largest packet a device may send or receive: AWS IoT Core's 128 KB, plus headers.
pub(crate) const MAX_PACKET: usize = 128 * 1024 + 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V4,
    V5,
}

// One packet at a time, moved through the session: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Packet {
    V4(v4::Packet),
    V5(v5::Packet),
}

/// A packet that could not be read: malformed, too large, or a protocol the gateway
/// does not speak.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Malformed(pub String);

/// Why a CONNECT is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectRefusal {
    NotAuthorized,
    BadClientId,
    ServerUnavailable,
}

/// The protocol level a CONNECT at the head of `buf` announces: `Ok(None)` until
/// enough bytes are there.
pub(crate) fn connect_version(buf: &[u8]) -> Result<Option<Version>, Malformed> {
    if buf.first().is_some_and(|b| b >> 4 != 1) {
        return Err(Malformed("the first packet is not CONNECT".into()));
    }
    let Some((at, _)) = frame(buf)? else {
        return Ok(None);
    };
    // Protocol name (a two-byte length and "MQTT"), then the level.
    let Some(name_len) = buf.get(at..at + 2) else {
        return Ok(None);
    };
    let name_len = usize::from(u16::from_be_bytes([name_len[0], name_len[1]]));
    let Some(&level) = buf.get(at + 2 + name_len) else {
        return Ok(None);
    };
    match level {
        4 => Ok(Some(Version::V4)),
        5 => Ok(Some(Version::V5)),
        other => Err(Malformed(format!(
            "MQTT protocol level {other} is not supported (4 for MQTT 3.1.1, 5 for MQTT 5)"
        ))),
    }
}

/// The fixed header's length and the remaining length of the frame at the head of
/// `buf`; `Ok(None)` until the fixed header is all there.
fn frame(buf: &[u8]) -> Result<Option<(usize, usize)>, Malformed> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((2 + i, remaining)));
        }
    }
    Err(Malformed("a malformed remaining length".into()))
}

impl Packet {
    /// The next whole packet in `buf`, removed from it; `Ok(None)` until one is there.
    /// Once a whole frame is there, anything the codec cannot read in it is malformed
    /// (the codec would otherwise ask for more bytes of a frame it already took).
    pub(crate) fn read(version: Version, buf: &mut BytesMut) -> Result<Option<Packet>, Malformed> {
        let Some((header_len, remaining)) = frame(buf)? else {
            return Ok(None);
        };
        if remaining + header_len > MAX_PACKET {
            return Err(Malformed(format!(
                "a packet of {} bytes is larger than the {MAX_PACKET} allowed",
                remaining + header_len
            )));
        }
        if buf.len() < header_len + remaining {
            return Ok(None);
        }
        // MQTT 5 lets a DISCONNECT leave out its reason code and properties; rumqttc's
        // reader wants both.
        if version == Version::V5 && buf[0] == 0xE0 && remaining <= 1 {
            let reason = match buf.get(2) {
                Some(0x04) => v5::DisconnectReasonCode::DisconnectWithWillMessage,
                _ => v5::DisconnectReasonCode::NormalDisconnection,
            };
            let _ = buf.split_to(header_len + remaining);
            return Ok(Some(Packet::V5(v5::Packet::Disconnect(
                v5::Disconnect::new(reason),
            ))));
        }
        let mut frame = buf.split_to(header_len + remaining);
        let read = match version {
            Version::V4 => v4::Packet::read(&mut frame, MAX_PACKET)
                .map(Packet::V4)
                .map_err(|e| format!("{e:?}")),
            Version::V5 => v5::Packet::read(&mut frame, Some(MAX_PACKET as u32))
                .map(Packet::V5)
                .map_err(|e| format!("{e:?}")),
        };
        read.map(Some).map_err(Malformed)
    }

    pub(crate) fn write(&self, buf: &mut BytesMut) -> Result<(), Malformed> {
        let written = match self {
            Packet::V4(p) => p.write(buf, usize::MAX).map_err(|e| format!("{e:?}")),
            Packet::V5(p) => p.write(buf, None).map_err(|e| format!("{e:?}")),
        };
        written.map(|_| ()).map_err(Malformed)
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Packet::V4(p) => match p {
                v4::Packet::Connect(_) => Kind::Connect,
                v4::Packet::Publish(_) => Kind::Publish,
                v4::Packet::Subscribe(_) => Kind::Subscribe,
                v4::Packet::Unsubscribe(_) => Kind::Unsubscribe,
                v4::Packet::Disconnect => Kind::Disconnect,
                v4::Packet::SubAck(_) => Kind::SubAck,
                v4::Packet::ConnAck(_) => Kind::ConnAck,
                _ => Kind::Other,
            },
            Packet::V5(p) => match p {
                v5::Packet::Connect(..) => Kind::Connect,
                v5::Packet::Publish(_) => Kind::Publish,
                v5::Packet::Subscribe(_) => Kind::Subscribe,
                v5::Packet::Unsubscribe(_) => Kind::Unsubscribe,
                v5::Packet::Disconnect(_) => Kind::Disconnect,
                v5::Packet::SubAck(_) => Kind::SubAck,
                v5::Packet::ConnAck(_) => Kind::ConnAck,
                _ => Kind::Other,
            },
        }
    }

    /// A PUBLISH's topic, QoS (0 to 2), retain flag and packet id.
    pub(crate) fn publish(&self) -> Option<PublishView<'_>> {
        match self {
            Packet::V4(v4::Packet::Publish(p)) => Some(PublishView {
                topic: Topic::Text(&p.topic),
                qos: p.qos as u8,
                retain: p.retain,
                pkid: p.pkid,
                alias: None,
            }),
            Packet::V5(v5::Packet::Publish(p)) => Some(PublishView {
                topic: Topic::Bytes(&p.topic),
                qos: p.qos as u8,
                retain: p.retain,
                pkid: p.pkid,
                alias: p.properties.as_ref().and_then(|pr| pr.topic_alias),
            }),
            _ => None,
        }
    }

    /// Gives a PUBLISH this topic (and no topic alias).
    pub(crate) fn set_publish_topic(&mut self, topic: String) {
        match self {
            Packet::V4(v4::Packet::Publish(p)) => p.topic = topic,
            Packet::V5(v5::Packet::Publish(p)) => {
                p.topic = Bytes::from(topic);
                if let Some(props) = p.properties.as_mut() {
                    props.topic_alias = None;
                }
            }
            _ => {}
        }
    }

    /// The filters of a SUBSCRIBE, or the topics of an UNSUBSCRIBE.
    pub(crate) fn filters(&self) -> Vec<String> {
        match self {
            Packet::V4(v4::Packet::Subscribe(s)) => {
                s.filters.iter().map(|f| f.path.clone()).collect()
            }
            Packet::V4(v4::Packet::Unsubscribe(u)) => u.topics.clone(),
            Packet::V5(v5::Packet::Subscribe(s)) => {
                s.filters.iter().map(|f| f.path.clone()).collect()
            }
            Packet::V5(v5::Packet::Unsubscribe(u)) => u.filters.clone(),
            _ => Vec::new(),
        }
    }

    /// Keeps the filters whose `keep` is true, each rewritten by `rewrite`.
    pub(crate) fn retain_filters(&mut self, keep: &[bool], rewrite: impl Fn(&str) -> String) {
        fn apply<T>(items: &mut Vec<T>, keep: &[bool], mut f: impl FnMut(&mut T)) {
            let mut i = 0;
            items.retain(|_| {
                i += 1;
                keep.get(i - 1).copied().unwrap_or(false)
            });
            items.iter_mut().for_each(&mut f);
        }
        match self {
            Packet::V4(v4::Packet::Subscribe(s)) => {
                apply(&mut s.filters, keep, |f| f.path = rewrite(&f.path))
            }
            Packet::V4(v4::Packet::Unsubscribe(u)) => {
                apply(&mut u.topics, keep, |t| *t = rewrite(t))
            }
            Packet::V5(v5::Packet::Subscribe(s)) => {
                apply(&mut s.filters, keep, |f| f.path = rewrite(&f.path))
            }
            Packet::V5(v5::Packet::Unsubscribe(u)) => {
                apply(&mut u.filters, keep, |t| *t = rewrite(t))
            }
            _ => {}
        }
    }

    pub(crate) fn pkid(&self) -> u16 {
        match self {
            Packet::V4(v4::Packet::Subscribe(s)) => s.pkid,
            Packet::V4(v4::Packet::SubAck(s)) => s.pkid,
            Packet::V4(v4::Packet::Unsubscribe(u)) => u.pkid,
            Packet::V4(v4::Packet::Publish(p)) => p.pkid,
            Packet::V5(v5::Packet::Subscribe(s)) => s.pkid,
            Packet::V5(v5::Packet::SubAck(s)) => s.pkid,
            Packet::V5(v5::Packet::Unsubscribe(u)) => u.pkid,
            Packet::V5(v5::Packet::Publish(p)) => p.pkid,
            _ => 0,
        }
    }

    /// Merges a broker's SUBACK for the allowed filters back into the device's order:
    /// `allowed[i]` says whether the device's filter `i` was forwarded; refused ones
    /// answer 0x80 (not authorized, on MQTT 5: 0x87).
    pub(crate) fn merge_suback(&mut self, allowed: &[bool]) {
        match self {
            Packet::V4(v4::Packet::SubAck(s)) => {
                let mut forwarded = std::mem::take(&mut s.return_codes).into_iter();
                s.return_codes = allowed
                    .iter()
                    .map(|&ok| {
                        if ok {
                            forwarded.next().unwrap_or(v4::SubscribeReasonCode::Failure)
                        } else {
                            v4::SubscribeReasonCode::Failure
                        }
                    })
                    .collect();
            }
            Packet::V5(v5::Packet::SubAck(s)) => {
                let mut forwarded = std::mem::take(&mut s.return_codes).into_iter();
                s.return_codes = allowed
                    .iter()
                    .map(|&ok| {
                        if ok {
                            forwarded
                                .next()
                                .unwrap_or(v5::SubscribeReasonCode::Unspecified)
                        } else {
                            v5::SubscribeReasonCode::NotAuthorized
                        }
                    })
                    .collect();
            }
            _ => {}
        }
    }
}

/// A SUBACK refusing every filter (none was forwarded).
pub(crate) fn suback_refused(version: Version, pkid: u16, count: usize) -> Packet {
    match version {
        Version::V4 => Packet::V4(v4::Packet::SubAck(v4::SubAck::new(
            pkid,
            vec![v4::SubscribeReasonCode::Failure; count],
        ))),
        Version::V5 => Packet::V5(v5::Packet::SubAck(v5::SubAck {
            pkid,
            return_codes: vec![v5::SubscribeReasonCode::NotAuthorized; count],
            properties: None,
        })),
    }
}

/// A PUBACK to a broker for a message the device may not receive (so the broker does
/// not send it again), or to an MQTT 5 device whose publish was refused.
pub(crate) fn puback(version: Version, pkid: u16, refused: bool) -> Packet {
    match version {
        Version::V4 => Packet::V4(v4::Packet::PubAck(v4::PubAck::new(pkid))),
        Version::V5 => {
            let mut ack = v5::PubAck::new(pkid, None);
            if refused {
                ack.reason = v5::PubAckReason::NotAuthorized;
            }
            Packet::V5(v5::Packet::PubAck(ack))
        }
    }
}

/// A server DISCONNECT for MQTT 5 (`None` on 3.1.1, which has none: the gateway just
/// closes the connection).
pub(crate) fn disconnect(version: Version, reason: v5::DisconnectReasonCode) -> Option<Packet> {
    match version {
        Version::V4 => None,
        Version::V5 => Some(Packet::V5(v5::Packet::Disconnect(v5::Disconnect::new(
            reason,
        )))),
    }
}

/// A CONNACK refusing the connection.
pub(crate) fn connack_refused(version: Version, refusal: ConnectRefusal) -> Packet {
    match version {
        Version::V4 => Packet::V4(v4::Packet::ConnAck(v4::ConnAck::new(
            match refusal {
                ConnectRefusal::NotAuthorized => v4::ConnectReturnCode::NotAuthorized,
                ConnectRefusal::BadClientId => v4::ConnectReturnCode::BadClientId,
                ConnectRefusal::ServerUnavailable => v4::ConnectReturnCode::ServiceUnavailable,
            },
            false,
        ))),
        Version::V5 => Packet::V5(v5::Packet::ConnAck(v5::ConnAck {
            session_present: false,
            code: match refusal {
                ConnectRefusal::NotAuthorized => v5::ConnectReturnCode::NotAuthorized,
                ConnectRefusal::BadClientId => v5::ConnectReturnCode::ClientIdentifierNotValid,
                ConnectRefusal::ServerUnavailable => v5::ConnectReturnCode::ServerUnavailable,
            },
            properties: None,
        })),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect,
    ConnAck,
    Publish,
    Subscribe,
    SubAck,
    Unsubscribe,
    Disconnect,
    Other,
}

pub(crate) enum Topic<'a> {
    Text(&'a str),
    Bytes(&'a Bytes),
}

pub(crate) struct PublishView<'a> {
    pub(crate) topic: Topic<'a>,
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) pkid: u16,
    pub(crate) alias: Option<u16>,
}

impl PublishView<'_> {
    /// The topic as text (`None`: not UTF-8).
    pub(crate) fn topic(&self) -> Option<&str> {
        match self.topic {
            Topic::Text(t) => Some(t),
            Topic::Bytes(b) => std::str::from_utf8(b).ok(),
        }
    }
}

/// What the gateway learns from a device's CONNECT and what it sends on to the broker.
#[derive(Debug, Clone)]
pub(crate) struct ConnectView {
    pub(crate) client_id: String,
    pub(crate) clean_session: bool,
    pub(crate) keep_alive: u16,
    /// The will topic and whether it is retained.
    pub(crate) will: Option<(String, bool)>,
}

impl Packet {
    pub(crate) fn connect(&self) -> Option<ConnectView> {
        match self {
            Packet::V4(v4::Packet::Connect(c)) => Some(ConnectView {
                client_id: c.client_id.clone(),
                clean_session: c.clean_session,
                keep_alive: c.keep_alive,
                will: c.last_will.as_ref().map(|w| (w.topic.clone(), w.retain)),
            }),
            Packet::V5(v5::Packet::Connect(c, will, _)) => Some(ConnectView {
                client_id: c.client_id.clone(),
                clean_session: c.clean_start,
                keep_alive: c.keep_alive,
                will: will
                    .as_ref()
                    .map(|w| (String::from_utf8_lossy(&w.topic).into_owned(), w.retain)),
            }),
            _ => None,
        }
    }

    /// The CONNECT sent to the broker: the device's, with the broker-side client id and
    /// will topic, the keep-alive the gateway enforces, and no credentials (the
    /// device authenticated with its certificate; the broker trusts the gateway).
    pub(crate) fn upstream_connect(
        &self,
        client_id: String,
        will_topic: Option<String>,
        keep_alive: u16,
    ) -> Option<Packet> {
        match self {
            Packet::V4(v4::Packet::Connect(c)) => {
                let mut c = c.clone();
                c.client_id = client_id;
                c.keep_alive = keep_alive;
                c.login = None;
                if let (Some(w), Some(t)) = (c.last_will.as_mut(), will_topic) {
                    w.topic = t;
                }
                Some(Packet::V4(v4::Packet::Connect(c)))
            }
            Packet::V5(v5::Packet::Connect(c, will, _)) => {
                let mut c = c.clone();
                let mut will = will.clone();
                c.client_id = client_id;
                c.keep_alive = keep_alive;
                // The broker sends full topics: the gateway rewrites each one.
                if let Some(p) = c.properties.as_mut() {
                    p.topic_alias_max = None;
                    p.authentication_method = None;
                    p.authentication_data = None;
                }
                if let (Some(w), Some(t)) = (will.as_mut(), will_topic) {
                    w.topic = Bytes::from(t);
                }
                Some(Packet::V5(v5::Packet::Connect(c, will, None)))
            }
            _ => None,
        }
    }

    /// Whether a CONNACK accepts, and adjusts an accepting MQTT 5 CONNACK to what the
    /// gateway offers (AWS IoT Core's: QoS 1 at most, no subscription identifiers,
    /// topic aliases from the device).
    pub(crate) fn accept_connack(&mut self) -> bool {
        match self {
            Packet::V4(v4::Packet::ConnAck(a)) => a.code == v4::ConnectReturnCode::Success,
            Packet::V5(v5::Packet::ConnAck(a)) => {
                let accepted = a.code == v5::ConnectReturnCode::Success;
                let props = a.properties.get_or_insert_with(empty_connack_properties);
                props.max_qos = Some(1);
                props.subscription_identifiers_available = Some(0);
                props.topic_alias_max = Some(TOPIC_ALIASES);
                props.assigned_client_identifier = None;
                accepted
            }
            _ => false,
        }
    }
}

/// Topic aliases an MQTT 5 device may use (AWS IoT Core's default).
pub(crate) const TOPIC_ALIASES: u16 = 8;

fn empty_connack_properties() -> v5::ConnAckProperties {
    v5::ConnAckProperties {
        session_expiry_interval: None,
        receive_max: None,
        max_qos: None,
        retain_available: None,
        max_packet_size: None,
        assigned_client_identifier: None,
        topic_alias_max: None,
        reason_string: None,
        user_properties: Vec::new(),
        wildcard_subscription_available: None,
        subscription_identifiers_available: None,
        shared_subscription_available: None,
        server_keep_alive: None,
        response_information: None,
        server_reference: None,
        authentication_method: None,
        authentication_data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_mqtt5_disconnect_is_a_normal_disconnection() {
        let mut buf = BytesMut::from(&[0xE0u8, 0x00, 0xC0, 0x00][..]);
        let p = Packet::read(Version::V5, &mut buf).unwrap().unwrap();
        assert_eq!(p.kind(), Kind::Disconnect);
        let next = Packet::read(Version::V5, &mut buf).unwrap().unwrap();
        assert_eq!(next.kind(), Kind::Other);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_reason_only_mqtt5_disconnect_is_read_whole() {
        let mut buf = BytesMut::from(&[0xE0u8, 0x01, 0x04, 0xC0, 0x00][..]);
        let p = Packet::read(Version::V5, &mut buf).unwrap().unwrap();
        assert_eq!(p.kind(), Kind::Disconnect);
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn a_partial_frame_waits_and_a_bad_whole_frame_is_malformed() {
        let mut partial = BytesMut::from(&[0x30u8, 0x05, 0x00][..]);
        assert!(Packet::read(Version::V4, &mut partial).unwrap().is_none());
        assert_eq!(partial.len(), 3);
        // A PUBLISH whose topic length runs past its frame.
        let mut bad = BytesMut::from(&[0x30u8, 0x02, 0x00, 0x09][..]);
        assert!(Packet::read(Version::V4, &mut bad).is_err());
    }

    #[test]
    fn connect_version_waits_for_enough_bytes() {
        assert!(connect_version(&[0x10]).unwrap().is_none());
        assert!(connect_version(&[0x20, 0x02]).is_err());
        let connect = [0x10, 0x0a, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05];
        assert_eq!(connect_version(&connect).unwrap(), Some(Version::V5));
    }
}
