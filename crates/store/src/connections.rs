//! The MQTT connection history (issue 15): every connection through the device gateway,
//! or imported from a broker Palisade does not front, with what the gateway's nodes
//! share (their TLS material, the registry epoch they poll).
//!
//! Connection ids are UUIDs, global across accounts, so a node can ask which of its
//! sessions another node closed without knowing their scopes. The two connection audit
//! checks read a scope's connections in pages ordered by certificate or by client id
//! (then connection time), each through an index of its own, so a check never holds more
//! than a page and the connections of one group.

use palisade_store_macros::engines;

use std::collections::{HashMap, HashSet};

use crate::db::{sql_limit, Db, DbResult, Dialect, Row};
use crate::{Scope, StoreResult};

/// One MQTT connection through the gateway, or one imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// The session identifier: a UUID made by the gateway or by the import.
    pub id: String,
    /// 64 hex, lower case.
    pub certificate_id: String,
    pub client_id: String,
    /// The thing resolved at connect, when attached.
    pub thing_name: Option<String>,
    pub source_ip: String,
    pub source_port: Option<i64>,
    /// The gateway node holding it; `None` when imported.
    pub node_id: Option<String>,
    pub connected_at_ms: i64,
    pub disconnected_at_ms: Option<i64>,
    /// One of the model's `DisconnectReasonValue` names.
    pub disconnect_reason: Option<String>,
    pub clean_session: Option<bool>,
    pub keep_alive_secs: Option<i64>,
    pub messages_in: i64,
    pub messages_out: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
}

/// The end of a connection, with its final counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionClose {
    pub scope: Scope,
    pub id: String,
    pub at_ms: i64,
    pub reason: String,
    pub messages_in: i64,
    pub messages_out: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
}

/// How [`ConnectionStore::scan_connections`] orders (and groups) a scope's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionOrder {
    /// By certificate id, then connection time, then id.
    Certificate,
    /// By client id, then connection time, then id.
    ClientId,
}

/// Where a scan continues: after the connection with this group (certificate or client
/// id, as ordered), connection time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionKey {
    pub group: String,
    pub connected_at_ms: i64,
    pub id: String,
}

/// The disconnect reason a takeover records on the connection taken over.
pub const DUPLICATE_CLIENTID: &str = "DUPLICATE_CLIENTID";

/// First key of the advisory locks that serialise connects of one client id (so two
/// nodes connecting it at once cannot both leave their connection open); see
/// scheduled.rs for the numbers taken (9 is kept free).
const CLIENT_ID_LOCK_SPACE: i32 = 13;
/// One node purges connections at a time.
const CONNECTION_PURGE_LOCK_SPACE: i32 = 14;
/// Rows one purge transaction deletes at most, so neither engine's writer is held long.
const PURGE_CHUNK: i64 = 2_000;
const REGISTRY_EPOCH: &str = "registry_epoch";

macro_rules! connection_columns {
    () => {
        "id, certificate_id, client_id, thing_name, source_ip, source_port, node_id, \
         connected_at_ms, disconnected_at_ms, disconnect_reason, clean_session, \
         keep_alive_secs, messages_in, messages_out, bytes_in, bytes_out"
    };
}

/// A scan's statement: the scope's connections overlapping [$3, $4], ordered by
/// `$group` then time and id, `$after` restricting to those after a key, at most $5.
macro_rules! scan_sql {
    ($group:literal, $after:literal) => {
        sql!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE account_id = $1 AND region = $2",
            $after,
            " AND connected_at_ms <= $4",
            " AND (disconnected_at_ms IS NULL OR disconnected_at_ms >= $3)",
            " ORDER BY ",
            $group,
            ", connected_at_ms, id LIMIT $5"
        )
    };
}

fn connection(row: &Row<'_>) -> DbResult<ConnectionRecord> {
    Ok(from_row!(row => ConnectionRecord {
        id, certificate_id, client_id, thing_name, source_ip, source_port, node_id,
        connected_at_ms, disconnected_at_ms, disconnect_reason, clean_session,
        keep_alive_secs, messages_in, messages_out, bytes_in, bytes_out
    }))
}

#[engines]
pub trait ConnectionStore: Send + Sync {
    /// Records new connections in one transaction (the gateway batches them and answers
    /// CONNACK after this returns, so it is durable on return). For each, any other
    /// connection of the same scope and client id that is still open is closed at the
    /// new one's connected_at with reason DUPLICATE_CLIENTID (AWS: the older session is
    /// taken over). Returns the ids so closed.
    async fn open_connections(
        &self,
        opens: &[(Scope, ConnectionRecord)],
    ) -> StoreResult<Vec<String>> {
        if opens.is_empty() {
            return Ok(Vec::new());
        }
        let opens = opens.to_vec();
        self.write(async move |db| open(db, opens).await).await
    }

    /// Closes connections in one transaction. disconnected_at and disconnect_reason are
    /// set only where still NULL (a takeover recorded first keeps its reason); the
    /// counters are always written.
    async fn close_connections(&self, closes: &[ConnectionClose]) -> StoreResult<()> {
        if closes.is_empty() {
            return Ok(());
        }
        let closes = closes.to_vec();
        self.write(async move |db| close(db, closes).await).await
    }

    /// At a node's start: closes every connection still open on `node_id` (`kill -9`
    /// recovery). Returns how many.
    async fn close_node_connections(
        &self,
        node_id: &str,
        at_ms: i64,
        reason: &str,
    ) -> StoreResult<u64> {
        let (node_id, reason) = (node_id.to_owned(), reason.to_owned());
        self.write_one(async move |db| {
            db.execute(
                sql!(
                    "UPDATE connections SET disconnected_at_ms = $2, disconnect_reason = $3",
                    " WHERE node_id = $1 AND disconnected_at_ms IS NULL"
                ),
                &[&node_id, &at_ms, &reason],
            )
            .await
        })
        .await
    }

    /// Of these connection ids (any scope), the ones closed in the store, with their
    /// reason (how a node learns that another node took a session over).
    async fn closed_connections_among(&self, ids: &[String]) -> StoreResult<Vec<(String, String)>> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.read(async |db| {
            db.query_any(
                sql!(
                    "SELECT id, COALESCE(disconnect_reason, 'UNKNOWN') FROM connections",
                    " WHERE disconnected_at_ms IS NOT NULL AND id = ANY($1::text[])"
                ),
                &[],
                &ids,
                |row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)),
            )
            .await
        })
        .await
    }

    /// Gateway TLS material shared by all nodes: the value stored under `name`, or
    /// `value` stored now if none was (so concurrent first starts converge on one). Not
    /// scoped by account.
    async fn gateway_secret_or_insert(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.write(async move |db| {
            db.execute(
                sql!(
                    "INSERT INTO gateway_secrets (name, value) VALUES ($1, $2)",
                    " ON CONFLICT (name) DO NOTHING"
                ),
                &[&name, &value],
            )
            .await?;
            // A statement of its own: on PostgreSQL its snapshot includes a winner that
            // committed while the insert waited on its key.
            db.value(
                sql!("SELECT value FROM gateway_secrets WHERE name = $1"),
                &[&name],
            )
            .await?
            .ok_or_else(|| crate::db::corrupt("gateway secret missing right after insert"))
        })
        .await
    }

    /// A counter bumped whenever the registry changes in a way the gateway must re-read
    /// (certificates, policies, attachments, groups), so every node polls one value to
    /// learn of changes made on another.
    async fn registry_epoch(&self) -> StoreResult<i64> {
        self.read(async |db| {
            db.value(sql!("SELECT epoch FROM registry_epoch WHERE id = 1"), &[])
                .await?
                .ok_or_else(|| crate::db::corrupt(format!("{REGISTRY_EPOCH} row missing")))
        })
        .await
    }

    /// Adds one to the registry epoch; the new value.
    async fn bump_registry_epoch(&self) -> StoreResult<i64> {
        self.write_one(async move |db| {
            db.query_one(
                sql!("UPDATE registry_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch"),
                &[],
                |row| row.get::<i64>(0),
            )
            .await
        })
        .await
    }

    /// Adds connections as given (the import: no takeover is applied, their ids are new
    /// UUIDs), in one transaction; how many were new (an id already stored is skipped).
    async fn import_connections(
        &self,
        scope: &Scope,
        records: &[ConnectionRecord],
    ) -> StoreResult<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        let (scope, records) = (scope.clone(), records.to_vec());
        self.write(async move |db| {
            let mut n = 0;
            for chunk in records.chunks(500) {
                let taken = stored_ids(db, chunk.iter()).await?;
                let fresh: Vec<ConnectionRecord> = chunk
                    .iter()
                    .filter(|r| !taken.contains(&r.id))
                    .cloned()
                    .collect();
                insert(db, &scope, &fresh).await?;
                n += fresh.len() as u64;
            }
            Ok(n)
        })
        .await
    }

    /// Up to `limit` of the scope's connections that overlap `[from_ms, to_ms]` (connected
    /// at or before `to_ms`, and open or disconnected at or after `from_ms`), in `order`,
    /// after `after`. The connection audit checks sweep them group by group.
    async fn scan_connections(
        &self,
        scope: &Scope,
        order: ConnectionOrder,
        (from_ms, to_ms): (i64, i64),
        after: Option<&ConnectionKey>,
        limit: usize,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        let (scope, after) = (scope.clone(), after.cloned());
        self.scan(async move |db| {
            let limit = sql_limit(limit);
            // Two statements rather than one with `($n IS NULL OR ...)`: the key
            // comparison must be a plain range condition for the index to seek to it
            // (PostgreSQL's generic plans would otherwise filter from the group's start,
            // every page).
            let Some(after) = &after else {
                let params: [&dyn crate::db::Param; 5] =
                    [&scope.account_id, &scope.region, &from_ms, &to_ms, &limit];
                let sql = match order {
                    ConnectionOrder::Certificate => scan_sql!("certificate_id", ""),
                    ConnectionOrder::ClientId => scan_sql!("client_id", ""),
                };
                return db.query(sql, &params, connection).await;
            };
            let params: [&dyn crate::db::Param; 8] = [
                &scope.account_id,
                &scope.region,
                &from_ms,
                &to_ms,
                &limit,
                &after.group,
                &after.connected_at_ms,
                &after.id,
            ];
            let sql = match order {
                ConnectionOrder::Certificate => scan_sql!(
                    "certificate_id",
                    " AND (certificate_id, connected_at_ms, id) > ($6, $7, $8)"
                ),
                ConnectionOrder::ClientId => scan_sql!(
                    "client_id",
                    " AND (client_id, connected_at_ms, id) > ($6, $7, $8)"
                ),
            };
            db.query(sql, &params, connection).await
        })
        .await
    }

    /// The newest connection (by connection time) recorded for the thing: of those whose
    /// thing name is `thing_name`, else of those whose client id is `thing_name` (AWS
    /// tracks a thing's connectivity under a client id equal to its name).
    async fn latest_thing_connection(
        &self,
        scope: &Scope,
        thing_name: &str,
    ) -> StoreResult<Option<ConnectionRecord>> {
        self.read(async |db| {
            let params: [&dyn crate::db::Param; 3] =
                [&scope.account_id, &scope.region, &thing_name];
            if let Some(c) = db
                .query_opt(
                    sql!(
                        "SELECT ",
                        connection_columns!(),
                        " FROM connections WHERE account_id = $1 AND region = $2",
                        " AND thing_name = $3 ORDER BY connected_at_ms DESC, id DESC LIMIT 1"
                    ),
                    &params,
                    connection,
                )
                .await?
            {
                return Ok(Some(c));
            }
            db.query_opt(
                sql!(
                    "SELECT ",
                    connection_columns!(),
                    " FROM connections WHERE account_id = $1 AND region = $2",
                    " AND client_id = $3 ORDER BY connected_at_ms DESC, id DESC LIMIT 1"
                ),
                &params,
                connection,
            )
            .await
        })
        .await
    }

    /// Deletes, in every scope, connections that were closed before `before_ms` (the
    /// retention), in transactions of a bounded size; how many went.
    async fn purge_connections(&self, before_ms: i64) -> StoreResult<u64> {
        let mut purged = 0;
        loop {
            let n = self
                .write(async move |db| {
                    db.lock(CONNECTION_PURGE_LOCK_SPACE, "connections").await?;
                    db.execute(
                        sql!(
                            "DELETE FROM connections WHERE id IN (SELECT id FROM connections",
                            " WHERE disconnected_at_ms IS NOT NULL AND disconnected_at_ms < $1",
                            " LIMIT $2)"
                        ),
                        &[&before_ms, &PURGE_CHUNK],
                    )
                    .await
                })
                .await?;
            purged += n;
            if n < PURGE_CHUNK as u64 {
                return Ok(purged);
            }
        }
    }
}

/// [`ConnectionStore::open_connections`]'s body, in a handful of statements whatever the
/// batch's size: the gateway opens connections in batches at its connect rate.
async fn open(db: &Db<'_>, mut opens: Vec<(Scope, ConnectionRecord)>) -> DbResult<Vec<String>> {
    // A retry after a commit whose answer was lost (the gateway retries a failed batch):
    // what that commit stored stays as it is, and is not taken over by itself.
    let stored = stored_ids(db, opens.iter().map(|(_, r)| r)).await?;
    if !stored.is_empty() {
        opens.retain(|(_, r)| !stored.contains(&r.id));
        if opens.is_empty() {
            return Ok(Vec::new());
        }
    }
    // PostgreSQL: without the lock, two transactions connecting one client id at once
    // would each find nothing open and both stay open. Sorted, so two batches never wait
    // on each other in a cycle.
    let mut locks: Vec<(i32, String)> = opens
        .iter()
        .map(|(s, r)| {
            (
                CLIENT_ID_LOCK_SPACE,
                format!("{}\n{}", s.key(), r.client_id),
            )
        })
        .collect();
    locks.sort();
    locks.dedup();
    db.lock_all(&locks).await?;
    // Within the batch, each connect takes over the one before it of its client id; the
    // first of each client id takes over what the store holds open.
    let mut closed = Vec::new();
    let mut latest: HashMap<(Scope, String), usize> = HashMap::new();
    let mut first_at: Vec<(Scope, String, i64)> = Vec::new();
    for i in 0..opens.len() {
        let (scope, record) = &opens[i];
        let (key, at) = (
            (scope.clone(), record.client_id.clone()),
            record.connected_at_ms,
        );
        match latest.insert(key, i) {
            Some(earlier) => {
                let taken = &mut opens[earlier].1;
                if taken.disconnected_at_ms.is_none() {
                    taken.disconnected_at_ms = Some(at);
                    taken.disconnect_reason = Some(DUPLICATE_CLIENTID.to_owned());
                    closed.push(taken.id.clone());
                }
            }
            None => first_at.push((scope.clone(), record.client_id.clone(), at)),
        }
    }
    let mut taken_over = if db.dialect() == Dialect::Postgres {
        let accounts: Vec<&str> = first_at
            .iter()
            .map(|(s, _, _)| s.account_id.as_str())
            .collect();
        let regions: Vec<&str> = first_at.iter().map(|(s, _, _)| s.region.as_str()).collect();
        let clients: Vec<&str> = first_at.iter().map(|(_, c, _)| c.as_str()).collect();
        let times: Vec<i64> = first_at.iter().map(|(_, _, at)| *at).collect();
        db.query_pg(
            "UPDATE connections c SET disconnected_at_ms = u.at, disconnect_reason = $5
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
                 AS u(account_id, region, client_id, at)
             WHERE c.account_id = u.account_id AND c.region = u.region
               AND c.client_id = u.client_id AND c.disconnected_at_ms IS NULL
             RETURNING c.id",
            &[&accounts, &regions, &clients, &times, &DUPLICATE_CLIENTID],
            |row| row.get::<String>(0),
        )
        .await?
    } else {
        // In process: one indexed update per client id costs no round trip.
        let mut ids = Vec::new();
        for (scope, client_id, at) in &first_at {
            ids.extend(
                db.query(
                    sql!(
                        "UPDATE connections SET disconnected_at_ms = $4, disconnect_reason = $5",
                        " WHERE account_id = $1 AND region = $2 AND client_id = $3",
                        " AND disconnected_at_ms IS NULL RETURNING id"
                    ),
                    &[
                        &scope.account_id,
                        &scope.region,
                        client_id,
                        at,
                        &DUPLICATE_CLIENTID,
                    ],
                    |row| row.get::<String>(0),
                )
                .await?,
            );
        }
        ids
    };
    taken_over.append(&mut closed);
    // One multi-row insert per scope (a batch is mostly one account's).
    let mut by_scope: HashMap<Scope, Vec<ConnectionRecord>> = HashMap::new();
    for (scope, record) in opens {
        by_scope.entry(scope).or_default().push(record);
    }
    for (scope, records) in &by_scope {
        insert(db, scope, records).await?;
    }
    Ok(taken_over)
}

/// [`ConnectionStore::close_connections`]'s body: on PostgreSQL one statement for the
/// batch, on SQLite one indexed update per connection, in process.
async fn close(db: &Db<'_>, closes: Vec<ConnectionClose>) -> DbResult<()> {
    if db.dialect() == Dialect::Sqlite {
        for c in &closes {
            db.execute(
                sql!(
                    "UPDATE connections SET",
                    " disconnected_at_ms = COALESCE(disconnected_at_ms, $4),",
                    " disconnect_reason = COALESCE(disconnect_reason, $5),",
                    " messages_in = $6, messages_out = $7, bytes_in = $8, bytes_out = $9",
                    " WHERE account_id = $1 AND region = $2 AND id = $3"
                ),
                &[
                    &c.scope.account_id,
                    &c.scope.region,
                    &c.id,
                    &c.at_ms,
                    &c.reason,
                    &c.messages_in,
                    &c.messages_out,
                    &c.bytes_in,
                    &c.bytes_out,
                ],
            )
            .await?;
        }
        return Ok(());
    }
    // An UPDATE ... FROM applies one row of the list to each connection, so a connection
    // closed twice in the batch is merged first as the loop above would apply it: the
    // first time and reason, the last counters.
    let mut merged: Vec<ConnectionClose> = Vec::with_capacity(closes.len());
    let mut at: HashMap<(Scope, String), usize> = HashMap::new();
    for c in closes {
        match at.get(&(c.scope.clone(), c.id.clone())) {
            Some(&i) => {
                let m = &mut merged[i];
                (m.messages_in, m.messages_out, m.bytes_in, m.bytes_out) =
                    (c.messages_in, c.messages_out, c.bytes_in, c.bytes_out);
            }
            None => {
                at.insert((c.scope.clone(), c.id.clone()), merged.len());
                merged.push(c);
            }
        }
    }
    let column = |f: fn(&ConnectionClose) -> &str| merged.iter().map(f).collect::<Vec<&str>>();
    let number = |f: fn(&ConnectionClose) -> i64| merged.iter().map(f).collect::<Vec<i64>>();
    db.execute_pg(
        "UPDATE connections c SET
             disconnected_at_ms = COALESCE(c.disconnected_at_ms, u.at),
             disconnect_reason = COALESCE(c.disconnect_reason, u.reason),
             messages_in = u.messages_in, messages_out = u.messages_out,
             bytes_in = u.bytes_in, bytes_out = u.bytes_out
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                     $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
             AS u(account_id, region, id, at, reason, messages_in, messages_out, bytes_in,
                  bytes_out)
         WHERE c.id = u.id AND c.account_id = u.account_id AND c.region = u.region",
        &[
            &column(|c| &c.scope.account_id),
            &column(|c| &c.scope.region),
            &column(|c| &c.id),
            &number(|c| c.at_ms),
            &column(|c| &c.reason),
            &number(|c| c.messages_in),
            &number(|c| c.messages_out),
            &number(|c| c.bytes_in),
            &number(|c| c.bytes_out),
        ],
    )
    .await?;
    Ok(())
}

/// Which of these connections' ids are stored already.
async fn stored_ids(
    db: &Db<'_>,
    records: impl Iterator<Item = &ConnectionRecord>,
) -> DbResult<HashSet<String>> {
    let ids: Vec<&str> = records.map(|r| r.id.as_str()).collect();
    let sql = sql!("SELECT id FROM connections WHERE id = ANY($1::text[])");
    let stored = db.query_any(sql, &[], &ids, |row| row.get(0)).await?;
    Ok(stored.into_iter().collect())
}

/// Inserts connections as given.
async fn insert(db: &Db<'_>, scope: &Scope, records: &[ConnectionRecord]) -> DbResult<()> {
    db.insert_rows(
        concat!(
            "connections (account_id, region, ",
            connection_columns!(),
            ")"
        ),
        scope,
        records,
        |r| {
            [
                &r.id,
                &r.certificate_id,
                &r.client_id,
                &r.thing_name,
                &r.source_ip,
                &r.source_port,
                &r.node_id,
                &r.connected_at_ms,
                &r.disconnected_at_ms,
                &r.disconnect_reason,
                &r.clean_session,
                &r.keep_alive_secs,
                &r.messages_in,
                &r.messages_out,
                &r.bytes_in,
                &r.bytes_out,
            ]
        },
    )
    .await
}
