//! The two checks over the connection history: DEVICE_CERTIFICATE_SHARED_CHECK (a
//! certificate used at the same time by connections with different client ids) and
//! CONFLICTING_CLIENT_IDS_CHECK (a client id whose session another connection took over).
//!
//! Both sweep the connections that overlap the check's window, in pages ordered by their
//! group (certificate or client id) and then by connection time, so a check holds one
//! page and the connections of one group that are still open at the sweep's point, never
//! the history. Related resources (one per connection involved, newest first) are written
//! to the store as they are found, before their finding, like those of the intermediate
//! CA check (see related.rs).

use std::collections::BTreeMap;

use palisade_model::{RelatedResource, ResourceIdentifier, ResourceType};
use palisade_store::{
    ConnectionKey, ConnectionOrder, ConnectionRecord, RelatedResourceRecord, Scope,
    DUPLICATE_CLIENTID,
};

use super::findings::Draft;
use super::sink::{Sink, PAGE};
use crate::{Engine, EngineError, EngineResult};

/// The on-demand window, and a scheduled audit's when it has no previous run (AWS: the
/// 31 days before the audit starts).
pub(crate) const WINDOW_MS: i64 = 31 * 24 * 60 * 60 * 1000;
/// Related resources written at once.
const RELATED_BATCH: usize = 1_000;
/// The newest related resources a finding carries itself (ListAuditFindings and
/// DescribeAuditFinding show them, as AWS's examples do); ListRelatedResourcesForAuditFinding
/// lists them all.
const SHOWN: usize = 10;

/// The group (certificate or client id) a sweep is at.
struct Group {
    key: String,
    sweep: Sweep,
    finding_id: String,
    /// Its [`SHOWN`] newest involved connections' related resources, by sort key.
    newest: BTreeMap<String, RelatedResource>,
}

/// Which of the two checks a sweep evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionCheck {
    SharedCertificate,
    ConflictingClientIds,
}

impl ConnectionCheck {
    fn order(self) -> ConnectionOrder {
        match self {
            ConnectionCheck::SharedCertificate => ConnectionOrder::Certificate,
            ConnectionCheck::ConflictingClientIds => ConnectionOrder::ClientId,
        }
    }

    fn group(self, c: &ConnectionRecord) -> &str {
        match self {
            ConnectionCheck::SharedCertificate => &c.certificate_id,
            ConnectionCheck::ConflictingClientIds => &c.client_id,
        }
    }

    fn draft(self, group: &str) -> Draft {
        match self {
            ConnectionCheck::SharedCertificate => Draft {
                resource: ResourceIdentifier {
                    device_certificate_id: Some(group.to_owned()),
                    ..ResourceIdentifier::default()
                },
                reason_code: "CERTIFICATE_SHARED_BY_MULTIPLE_DEVICES",
                // AWS's own wording, as its examples show it.
                reason: "Certificate shared by one or more devices.".to_owned(),
            },
            ConnectionCheck::ConflictingClientIds => Draft {
                resource: ResourceIdentifier {
                    client_id: Some(group.to_owned()),
                    ..ResourceIdentifier::default()
                },
                reason_code: "DUPLICATE_CLIENT_ID_ACROSS_CONNECTIONS",
                reason: "Multiple connections used this client ID, each taking over the \
                         session of the one before."
                    .to_owned(),
            },
        }
    }

    /// The related resource a connection involved in a finding contributes: for a shared
    /// certificate, the client id that used it; for a conflicting client id, the
    /// certificate that connected with it.
    fn related(self, c: &ConnectionRecord) -> RelatedResource {
        let mut info = BTreeMap::new();
        // Epoch milliseconds as strings, as AWS shows them.
        info.insert("CONNECTION_TIME".to_owned(), c.connected_at_ms.to_string());
        if let Some(at) = c.disconnected_at_ms {
            info.insert("DISCONNECTION_TIME".to_owned(), at.to_string());
        }
        let (resource_type, identifier) = match self {
            ConnectionCheck::SharedCertificate => (
                "CLIENT_ID",
                ResourceIdentifier {
                    client_id: Some(c.client_id.clone()),
                    ..ResourceIdentifier::default()
                },
            ),
            ConnectionCheck::ConflictingClientIds => (
                "DEVICE_CERTIFICATE",
                ResourceIdentifier {
                    device_certificate_id: Some(c.certificate_id.clone()),
                    ..ResourceIdentifier::default()
                },
            ),
        };
        RelatedResource {
            additional_info: Some(info),
            resource_identifier: Some(identifier),
            resource_type: Some(ResourceType::from_wire(resource_type)),
        }
    }
}

/// Listing order of a finding's related resources: newest connection first.
fn sort_key(c: &ConnectionRecord) -> String {
    let newest_first = u64::try_from(i64::MAX - c.connected_at_ms.max(0)).unwrap_or(0);
    format!("{newest_first:020}/{}", c.id)
}

/// One connection of the group the sweep is at, still open at the sweep's point.
struct Active {
    connection: ConnectionRecord,
    /// Whether it is part of the finding already (its related resource was written).
    involved: bool,
}

/// The sweep over one group's connections, in connection time order.
pub(super) struct Sweep {
    check: ConnectionCheck,
    window: (i64, i64),
    active: Vec<Active>,
    /// Connections just found involved, whose related resources are still to be written.
    pub(crate) newly_involved: Vec<ConnectionRecord>,
    /// Whether the group has a finding.
    pub(crate) found: bool,
}

impl Sweep {
    pub(super) fn new(check: ConnectionCheck, window: (i64, i64)) -> Sweep {
        Sweep {
            check,
            window,
            active: Vec::new(),
            newly_involved: Vec::new(),
            found: false,
        }
    }

    fn in_window(&self, from: i64, to: Option<i64>) -> bool {
        from <= self.window.1 && to.is_none_or(|to| to >= self.window.0)
    }

    /// Takes the group's next connection (connection times never decrease).
    pub(super) fn push(&mut self, c: ConnectionRecord) {
        let start = c.connected_at_ms;
        // Connections that ended before this one started can overlap nothing after it
        // either. One that ended exactly at its start stays for a takeover's sake.
        self.active.retain(|a| {
            a.connection
                .disconnected_at_ms
                .is_none_or(|end| end >= start)
        });
        let mut c_involved = false;
        if self.check == ConnectionCheck::ConflictingClientIds
            && c.disconnect_reason.as_deref() == Some(DUPLICATE_CLIENTID)
            && c.disconnected_at_ms
                .is_some_and(|end| self.in_window(end, Some(end)))
        {
            // Taken over within the window, whether or not the connection that took it
            // over is in the history (an import may hold only one side).
            c_involved = true;
        }
        let window = self.window;
        for a in &mut self.active {
            let prior = &a.connection;
            let overlap_end = match (prior.disconnected_at_ms, c.disconnected_at_ms) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
            let overlaps = prior.disconnected_at_ms.is_none_or(|end| end > start)
                && start <= window.1
                && overlap_end.is_none_or(|end| end >= window.0);
            let hit = match self.check {
                ConnectionCheck::SharedCertificate => overlaps && prior.client_id != c.client_id,
                ConnectionCheck::ConflictingClientIds => {
                    // Overlapping sessions of one client id (imported data that records
                    // no takeover), or the one that took a session over at its end.
                    overlaps
                        || (prior.disconnect_reason.as_deref() == Some(DUPLICATE_CLIENTID)
                            && prior.disconnected_at_ms == Some(start)
                            && start >= window.0
                            && start <= window.1)
                }
            };
            if hit {
                c_involved = true;
                if !a.involved {
                    a.involved = true;
                    self.newly_involved.push(a.connection.clone());
                }
            }
        }
        if c_involved {
            self.newly_involved.push(c.clone());
            self.found = true;
        }
        self.active.push(Active {
            connection: c,
            involved: c_involved,
        });
    }
}

impl Engine {
    /// The window of the connection checks for the task: on demand, the 31 days before
    /// it started; scheduled, since the previous run of its scheduled audit (31 days
    /// when there was none). Palisade reads connections without AWS's lag of up to two
    /// hours, so the window ends at the task's start.
    async fn connection_window(
        &self,
        scope: &Scope,
        task_id: &str,
        task_start_ms: i64,
    ) -> EngineResult<(i64, i64)> {
        let mut from = task_start_ms - WINDOW_MS;
        if let Some(task) = self.store().get_audit_task(scope, task_id).await? {
            if let Some(name) = task.scheduled_audit_name.as_deref() {
                if let Some(previous) = self
                    .store()
                    .previous_scheduled_audit_start(scope, name, task_start_ms)
                    .await?
                {
                    from = previous;
                }
            }
        }
        Ok((from, task_start_ms))
    }

    /// Evaluates one of the connection checks into `sink`; how many certificates (or
    /// client ids) it examined.
    pub(super) async fn evaluate_connection_check(
        &self,
        scope: &Scope,
        sink: &mut Sink<'_>,
        check: ConnectionCheck,
        task_start_ms: i64,
    ) -> EngineResult<i64> {
        let window = self
            .connection_window(scope, sink.task_id(), task_start_ms)
            .await?;
        let mut group: Option<Group> = None;
        let mut related: Vec<RelatedResourceRecord> = Vec::new();
        let mut after: Option<ConnectionKey> = None;
        let mut total = 0;
        loop {
            let page = self
                .store()
                .scan_connections(scope, check.order(), window, after.as_ref(), PAGE)
                .await?;
            for c in &page {
                let key = check.group(c);
                if group.as_ref().is_none_or(|g| g.key != key) {
                    if let Some(done) = group.take() {
                        self.end_group(scope, sink, check, done, &mut related)
                            .await?;
                    }
                    total += 1;
                    let finding_id = sink.finding_id(&check.draft(key))?;
                    group = Some(Group {
                        key: key.to_owned(),
                        sweep: Sweep::new(check, window),
                        finding_id,
                        newest: BTreeMap::new(),
                    });
                }
                let Some(g) = group.as_mut() else {
                    return Err(EngineError::Internal("a sweep lost its group".into()));
                };
                g.sweep.push(c.clone());
                for involved in g.sweep.newly_involved.drain(..) {
                    let (key, resource) = (sort_key(&involved), check.related(&involved));
                    related.push(RelatedResourceRecord {
                        sort_key: key.clone(),
                        resource_json: serde_json::to_string(&resource)
                            .map_err(|e| EngineError::Internal(e.to_string()))?,
                    });
                    g.newest.insert(key, resource);
                    if g.newest.len() > SHOWN {
                        g.newest.pop_last();
                    }
                }
                if related.len() >= RELATED_BATCH {
                    self.store()
                        .insert_related_resources(scope, sink.task_id(), &g.finding_id, &related)
                        .await?;
                    related.clear();
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => {
                    after = Some(ConnectionKey {
                        group: check.group(last).to_owned(),
                        connected_at_ms: last.connected_at_ms,
                        id: last.id.clone(),
                    })
                }
                _ => break,
            }
        }
        if let Some(done) = group.take() {
            self.end_group(scope, sink, check, done, &mut related)
                .await?;
        }
        Ok(total)
    }

    /// Writes the group's last related resources, then its finding if it has one (so a
    /// finding is never listed before its related resources are all there).
    async fn end_group(
        &self,
        scope: &Scope,
        sink: &mut Sink<'_>,
        check: ConnectionCheck,
        group: Group,
        related: &mut Vec<RelatedResourceRecord>,
    ) -> EngineResult<()> {
        if !related.is_empty() {
            self.store()
                .insert_related_resources(scope, sink.task_id(), &group.finding_id, related)
                .await?;
            related.clear();
        }
        if group.sweep.found {
            // Ascending sort key: newest first.
            let newest = group.newest.into_values().collect();
            sink.push_with(check.draft(&group.key), Some(newest))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(
        client: &str,
        cert: &str,
        from: i64,
        to: Option<i64>,
        reason: Option<&str>,
    ) -> ConnectionRecord {
        ConnectionRecord {
            id: format!("{client}-{cert}-{from}"),
            certificate_id: cert.to_owned(),
            client_id: client.to_owned(),
            thing_name: None,
            source_ip: "192.0.2.1".into(),
            source_port: None,
            node_id: None,
            connected_at_ms: from,
            disconnected_at_ms: to,
            disconnect_reason: reason.map(str::to_owned),
            clean_session: None,
            keep_alive_secs: None,
            messages_in: 0,
            messages_out: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    fn sweep(
        check: ConnectionCheck,
        window: (i64, i64),
        conns: Vec<ConnectionRecord>,
    ) -> Vec<String> {
        let mut s = Sweep::new(check, window);
        let mut involved = Vec::new();
        for c in conns {
            s.push(c);
            involved.extend(s.newly_involved.drain(..).map(|c| c.id));
        }
        assert_eq!(s.found, !involved.is_empty());
        involved
    }

    const SHARED: ConnectionCheck = ConnectionCheck::SharedCertificate;
    const CONFLICT: ConnectionCheck = ConnectionCheck::ConflictingClientIds;

    #[test]
    fn shared_needs_overlap_with_another_client_id() {
        let w = (0, 10_000);
        // Back to back, or the same client id: not shared.
        assert!(sweep(
            SHARED,
            w,
            vec![
                conn("a", "c", 100, Some(200), None),
                conn("b", "c", 200, Some(300), None),
                conn("b", "c", 250, Some(400), None),
            ]
        )
        .is_empty());
        // Overlapping with another client id: both, once each, and a third that overlaps.
        assert_eq!(
            sweep(
                SHARED,
                w,
                vec![
                    conn("a", "c", 100, Some(500), None),
                    conn("b", "c", 200, None, None),
                    conn("a", "c", 600, Some(700), None),
                    conn("d", "c", 800, Some(900), None),
                ]
            ),
            vec!["a-c-100", "b-c-200", "a-c-600", "d-c-800"]
        );
    }

    #[test]
    fn shared_overlap_must_be_in_the_window() {
        // Both connections reach into the window, but they overlap only before it.
        assert!(sweep(
            SHARED,
            (1_000, 2_000),
            vec![
                conn("a", "c", 100, Some(1_500), None),
                conn("b", "c", 200, Some(300), None),
            ]
        )
        .is_empty());
    }

    #[test]
    fn conflicting_takeover_or_overlap() {
        let w = (0, 10_000);
        // A takeover: the taken-over session and the one that took it.
        assert_eq!(
            sweep(
                CONFLICT,
                w,
                vec![
                    conn("x", "c1", 100, Some(200), Some(DUPLICATE_CLIENTID)),
                    conn("x", "c2", 200, None, None),
                ]
            ),
            vec!["x-c1-100", "x-c2-200"]
        );
        // Sessions one after another, ended by the client: none.
        assert!(sweep(
            CONFLICT,
            w,
            vec![
                conn(
                    "x",
                    "c1",
                    100,
                    Some(200),
                    Some("CLIENT_INITIATED_DISCONNECT")
                ),
                conn("x", "c2", 200, Some(300), None),
            ]
        )
        .is_empty());
        // Imported data without reasons: overlap.
        assert_eq!(
            sweep(
                CONFLICT,
                w,
                vec![
                    conn("x", "c1", 100, Some(300), None),
                    conn("x", "c2", 200, Some(400), None),
                ]
            ),
            vec!["x-c1-100", "x-c2-200"]
        );
        // A takeover before the window does not count.
        assert!(sweep(
            CONFLICT,
            (1_000, 2_000),
            vec![
                conn("x", "c1", 100, Some(200), Some(DUPLICATE_CLIENTID)),
                conn("x", "c2", 200, Some(1_500), None),
            ]
        )
        .is_empty());
    }

    #[test]
    fn related_resources_sort_newest_first() {
        let old = conn("a", "c", 1_000, None, None);
        let new = conn("a", "c", 2_000, None, None);
        assert!(sort_key(&new) < sort_key(&old));
    }
}
