//! The connections import (`palisade connections import`, `POST /palisade/connections`):
//! connection history from a broker Palisade does not front, as JSON Lines, so the two
//! connection audit checks and GetThingConnectivityData work for fleets that keep their
//! own broker. The format is in docs/IMPORT.md.
//!
//! A bad line is reported with its number and skipped; the others are written in
//! batches, one store transaction each. Imported connections get new UUIDs and no node,
//! and are stored as given: no takeover is applied (the broker decided that already,
//! and says so with `DUPLICATE_CLIENTID`).

use std::io::BufRead;
use std::net::IpAddr;

use palisade_model::DisconnectReasonValue;
use palisade_store::ConnectionRecord;
use serde::{Deserialize, Serialize};

use crate::{Engine, EngineError, EngineResult, Scope};

/// Lines written per store transaction.
const BATCH: usize = 1_000;

/// One line of the import, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Line {
    certificate_id: Option<String>,
    certificate_pem: Option<String>,
    client_id: Option<String>,
    source_ip: Option<String>,
    source_port: Option<i64>,
    connected_at: Option<serde_json::Value>,
    disconnected_at: Option<serde_json::Value>,
    disconnect_reason: Option<String>,
    thing_name: Option<String>,
}

/// A line that was not imported.
#[derive(Debug)]
pub struct ConnectionLineError {
    /// From 1.
    pub line: u64,
    pub error: EngineError,
}

/// What a connections import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionImportSummary {
    /// Lines that were not blank.
    pub lines_read: u64,
    /// Connections written.
    pub imported: u64,
    /// Lines reported as errors; nothing of such a line was written.
    pub failed_lines: u64,
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::InvalidRequest(message.into())
}

/// A time given as an RFC 3339 string or as epoch milliseconds.
fn time_ms(member: &str, value: &serde_json::Value) -> EngineResult<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64().filter(|ms| *ms >= 0).ok_or_else(|| {
            invalid(format!(
                "{member} must be epoch milliseconds (a whole, non-negative number) or an RFC 3339 time; got {n}."
            ))
        }),
        serde_json::Value::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| {
                    invalid(format!(
                        "{member} {s:?} is not an RFC 3339 time such as 2026-12-07T10:00:00Z: {e}."
                    ))
                })?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .ok()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| invalid(format!("{member} {s:?} is before 1970.")))
        }
        other => Err(invalid(format!(
            "{member} must be an RFC 3339 string or epoch milliseconds; got {other}."
        ))),
    }
}

/// A line's connection, or what is wrong with it.
fn parse_line(text: &str, id: String) -> EngineResult<ConnectionRecord> {
    let line: Line = serde_json::from_str(text)
        .map_err(|e| invalid(format!("The line is not a connection object: {e}.")))?;
    let certificate_id = match (line.certificate_id, line.certificate_pem) {
        (Some(_), Some(_)) => {
            return Err(invalid("Give certificateId or certificatePem, not both."))
        }
        (Some(id), None) => {
            let lower = id.to_ascii_lowercase();
            if lower.len() != 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "certificateId {id:?} is not a certificate id (64 hexadecimal characters)."
                )));
            }
            lower
        }
        (None, Some(pem)) => {
            // The id AWS gives a certificate: the SHA-256 of its DER.
            let parsed = crate::certificates::parse_pem(&pem, "certificatePem")?;
            debug_assert_eq!(parsed.id.len(), 64);
            parsed.id
        }
        (None, None) => return Err(invalid("certificateId or certificatePem is required.")),
    };
    let client_id = line
        .client_id
        .ok_or_else(|| invalid("clientId is required."))?;
    if client_id.is_empty() || client_id.chars().count() > 128 {
        return Err(invalid(format!(
            "clientId must be 1 to 128 characters (AWS IoT's limit); got {} characters.",
            client_id.chars().count()
        )));
    }
    let source_ip = line
        .source_ip
        .ok_or_else(|| invalid("sourceIp is required."))?;
    let source_ip = source_ip
        .parse::<IpAddr>()
        .map_err(|_| {
            invalid(format!(
                "sourceIp {source_ip:?} is not an IPv4 or IPv6 address."
            ))
        })?
        .to_string();
    if let Some(port) = line.source_port.filter(|p| !(0..=65_535).contains(p)) {
        return Err(invalid(format!(
            "sourcePort must be between 0 and 65535; got {port}."
        )));
    }
    let connected_at_ms = time_ms(
        "connectedAt",
        line.connected_at
            .as_ref()
            .ok_or_else(|| invalid("connectedAt is required."))?,
    )?;
    let disconnected_at_ms = match &line.disconnected_at {
        Some(v) => Some(time_ms("disconnectedAt", v)?),
        None => None,
    };
    if let Some(end) = disconnected_at_ms.filter(|end| *end < connected_at_ms) {
        return Err(invalid(format!(
            "disconnectedAt ({end} ms) is before connectedAt ({connected_at_ms} ms)."
        )));
    }
    if let Some(reason) = &line.disconnect_reason {
        if !DisconnectReasonValue::VALUES.contains(&reason.as_str()) {
            return Err(invalid(format!(
                "disconnectReason {reason:?} is not one of {}.",
                DisconnectReasonValue::VALUES.join(", ")
            )));
        }
        if disconnected_at_ms.is_none() {
            return Err(invalid(
                "disconnectReason is given without disconnectedAt: a connection still open has no disconnect reason.",
            ));
        }
    }
    if let Some(name) = &line.thing_name {
        let valid = (1..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_-".contains(&b));
        if !valid {
            return Err(invalid(format!(
                "thingName {name:?} is not a thing name (1 to 128 of a-z, A-Z, 0-9, ':', '_', '-')."
            )));
        }
    }
    Ok(ConnectionRecord {
        id,
        certificate_id,
        client_id,
        thing_name: line.thing_name,
        source_ip,
        source_port: line.source_port,
        node_id: None,
        connected_at_ms,
        disconnected_at_ms,
        disconnect_reason: line.disconnect_reason,
        clean_session: None,
        keep_alive_secs: None,
        messages_in: 0,
        messages_out: 0,
        bytes_in: 0,
        bytes_out: 0,
    })
}

impl Engine {
    /// Imports connection history from JSON Lines into `scope`; every bad line goes to
    /// `on_error` and is skipped. An error return is a failure of the input or the store
    /// (batches before it were written).
    pub async fn import_connections(
        &self,
        scope: &Scope,
        input: impl BufRead,
        mut on_error: impl FnMut(ConnectionLineError),
    ) -> EngineResult<ConnectionImportSummary> {
        let mut summary = ConnectionImportSummary::default();
        let mut batch: Vec<ConnectionRecord> = Vec::with_capacity(BATCH);
        for (i, text) in input.lines().enumerate() {
            let line = i as u64 + 1;
            let text = text.map_err(|e| {
                invalid(format!(
                    "Reading line {line} failed: {e} (the input must be UTF-8)."
                ))
            })?;
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            summary.lines_read += 1;
            match parse_line(text, self.inner.ids.uuid()) {
                Ok(record) => batch.push(record),
                Err(error) => {
                    summary.failed_lines += 1;
                    on_error(ConnectionLineError { line, error });
                }
            }
            if batch.len() >= BATCH {
                summary.imported += self.store().import_connections(scope, &batch).await?;
                batch.clear();
            }
        }
        summary.imported += self.store().import_connections(scope, &batch).await?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> EngineResult<ConnectionRecord> {
        parse_line(text, "id".into())
    }

    #[test]
    fn times_in_both_forms() {
        let a = parse(&format!(
            r#"{{"certificateId":"{}","clientId":"c","sourceIp":"192.0.2.1","connectedAt":"2026-12-07T10:00:00Z","disconnectedAt":1796637600500,"disconnectReason":"CONNECTION_LOST"}}"#,
            "A".repeat(64)
        ))
        .expect("valid");
        assert_eq!(a.connected_at_ms, 1_796_637_600_000);
        assert_eq!(a.disconnected_at_ms, Some(1_796_637_600_500));
        assert_eq!(a.certificate_id, "a".repeat(64));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let id = "a".repeat(64);
        let msg = |text: String| match parse(&text) {
            Err(EngineError::InvalidRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg(format!(
            r#"{{"certificateId":"{id}","sourceIp":"192.0.2.1","connectedAt":1}}"#
        ))
        .contains("clientId"));
        assert!(msg(format!(
            r#"{{"certificateId":"{id}","clientId":"c","sourceIp":"nope","connectedAt":1}}"#
        ))
        .contains("sourceIp"));
        assert!(msg(format!(r#"{{"certificateId":"{id}","clientId":"c","sourceIp":"::1","connectedAt":"yesterday"}}"#)).contains("connectedAt"));
        assert!(msg(format!(r#"{{"certificateId":"{id}","clientId":"c","sourceIp":"::1","connectedAt":5,"disconnectedAt":4}}"#)).contains("before"));
        assert!(msg(format!(r#"{{"certificateId":"{id}","clientId":"c","sourceIp":"::1","connectedAt":5,"disconnectedAt":6,"disconnectReason":"BORED"}}"#)).contains("DUPLICATE_CLIENTID"));
        assert!(msg(format!(r#"{{"certificateId":"{id}","clientId":"c","sourceIp":"::1","connectedAt":5,"colour":"red"}}"#)).contains("colour"));
        assert!(msg(
            r#"{"certificateId":"xyz","clientId":"c","sourceIp":"::1","connectedAt":5}"#.into()
        )
        .contains("certificateId"));
    }
}
