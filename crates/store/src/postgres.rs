//! The PostgreSQL engine, for deployments where several nodes share one database.
//!
//! Connections come from a deadpool pool. Every wait is bounded so that, when the
//! database is unreachable, calls fail fast with `Unavailable` instead of piling up:
//! waiting for a free connection (`acquire_timeout`), opening one (`connect_timeout`),
//! and each operation on an open one (`statement_timeout` on the server, plus a
//! client-side deadline in case the server cannot even be told). A connection that
//! failed at the transport level or missed the deadline is dropped, never handed back,
//! so the pool refills itself with fresh connections once the database is back.
//!
//! Check-then-write sequences (the per-scope action limit, the per-resource tag limit)
//! run in a transaction that first takes a transaction-scoped advisory lock on the
//! scope or resource, so they stay atomic against other nodes; key uniqueness is the
//! primary key's job, as in the SQLite engine.

mod audits;
mod certificates;
mod error;
mod import;
mod migrate;

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{
    ClientWrapper, Hook, HookError, Manager, ManagerConfig, Object, Pool, PoolError,
    RecyclingMethod, Runtime, TimeoutType,
};
use tokio_postgres::NoTls;

use crate::db::{Db, DbResult};
use crate::{StoreError, StoreResult};
use error::Fail;

/// A PostgreSQL error with its SQLSTATE, as the store reports it (and tests print it).
pub use error::describe as describe_error;

/// Connection pool and timeout settings for [`PostgresStore::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Most connections the store keeps open at once (at least one).
    pub max_connections: usize,
    /// How long opening one connection (TCP, startup, session setup) may take. Zero
    /// means no limit.
    pub connect_timeout: Duration,
    /// How long a request waits for a pooled connection when all are in use. Zero
    /// means not at all: fail at once when every connection is busy.
    pub acquire_timeout: Duration,
    /// The server-side `statement_timeout` of every connection. Each operation also
    /// gets a client-side deadline of this plus `connect_timeout`, so a server that
    /// stopped answering altogether cannot hold a request for longer. Zero disables
    /// both.
    pub statement_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// A [`Store`](crate::Store) backed by a PostgreSQL database.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Where the store connects, for log lines and errors (no password).
    target: String,
    /// Upper bound on getting a connection from the pool, whatever it has to do.
    acquire_deadline: Option<Duration>,
    /// Upper bound on one operation on a connection.
    operation_deadline: Option<Duration>,
    /// The server secret never changes once created, so it is read at most once.
    secret: OnceLock<Vec<u8>>,
    health: Health,
    /// When bulk imports last refreshed the planner's statistics.
    import_stats: import::StatsSchedule,
    /// When audits last refreshed audit_findings' statistics.
    finding_stats: audits::FindingStats,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresStore({})", self.inner.target)
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value`
    /// connection string) and brings the schema up to date.
    ///
    /// `Unavailable` if the database cannot be reached within the options' timeouts;
    /// `Internal` if the URL is invalid or the schema is newer than this build knows.
    pub async fn connect(url: &str, opts: PostgresOptions) -> StoreResult<PostgresStore> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::Internal(format!("invalid PostgreSQL connection string: {e}"))
        })?;
        if let Some(connect_timeout) = limit(opts.connect_timeout) {
            config.connect_timeout(connect_timeout);
        }
        config
            // Notice a peer that vanished without closing the connection (a dead host,
            // a dropped route) even while idle or mid-write.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        if let Some(statement_timeout) = limit(opts.statement_timeout) {
            // Give up on a connection whose sent data stays unacknowledged this long.
            config.tcp_user_timeout(statement_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("palisade");
        }
        let target = describe_target(&config);

        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A closed connection is never handed out; one that breaks without the
                // client noticing fails its next operation, which then drops it.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let statement_timeout_ms = opts.statement_timeout.as_millis();
        let setup_deadline = limit(opts.connect_timeout);
        let pool = Pool::builder(manager)
            .max_size(opts.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.acquire_timeout))
            .create_timeout(limit(opts.connect_timeout))
            .recycle_timeout(limit(opts.connect_timeout))
            .post_create(Hook::async_fn(move |client: &mut ClientWrapper, _| {
                Box::pin(async move {
                    let set = format!("SET statement_timeout = {statement_timeout_ms}");
                    match within(setup_deadline, client.batch_execute(&set)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(HookError::Backend(e)),
                        Err(_) => Err(HookError::message(
                            "setting statement_timeout on a new connection timed out",
                        )),
                    }
                })
            }))
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build connection pool: {e}")))?;

        let store = PostgresStore {
            inner: Arc::new(Inner {
                pool,
                target,
                acquire_deadline: limit(opts.connect_timeout).map(|c| c + opts.acquire_timeout),
                operation_deadline: limit(opts.statement_timeout).map(|s| s + opts.connect_timeout),
                secret: OnceLock::new(),
                health: Health::new(),
                import_stats: import::StatsSchedule::default(),
                finding_stats: audits::FindingStats::default(),
            }),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Brings the schema up to date on one pooled connection.
    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        // Migrations may legitimately run longer than an ordinary operation.
        let outcome = within(
            self.inner.operation_deadline.map(|d| d * 3),
            migrate::run(&mut conn),
        )
        .await;
        conn.finish(outcome)
    }

    /// A connection from the pool, within the acquire deadline.
    async fn conn(&self) -> StoreResult<Conn<'_>> {
        let inner = &*self.inner;
        match within(inner.acquire_deadline, inner.pool.get()).await {
            Ok(Ok(obj)) => Ok(Conn { obj, inner }),
            Ok(Err(e)) => Err(inner.pool_failure(e)),
            Err(_) => Err(inner.unavailable(
                FailureKind::Connect,
                format!(
                    "no PostgreSQL connection to {} within {:?}",
                    inner.target,
                    inner.acquire_deadline.unwrap_or_default()
                ),
            )),
        }
    }

    /// Runs one operation's body under the operation deadline; hand the outcome to
    /// [`Conn::finish`].
    async fn deadline<F: std::future::Future>(
        &self,
        body: F,
    ) -> Result<F::Output, tokio::time::error::Elapsed> {
        within(self.inner.operation_deadline, body).await
    }
}

impl PostgresStore {
    /// The server secret, once read (it never changes once created).
    pub(crate) fn secret_cell(&self) -> &OnceLock<Vec<u8>> {
        &self.inner.secret
    }

    /// Runs `f` on a pooled connection, outside a transaction.
    pub(crate) async fn read<T>(
        &self,
        f: impl AsyncFnOnce(&Db<'_>) -> DbResult<T>,
    ) -> StoreResult<T> {
        let conn = self.conn().await?;
        let outcome = self.deadline(f(&Db::Pg(&conn))).await;
        conn.finish(outcome)
    }

    /// [`PostgresStore::read`]; SQLite runs these on its blocking pool.
    pub(crate) async fn scan<T: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&Db<'_>) -> DbResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.read(f).await
    }

    /// Runs `f` in a transaction that commits if `f` returns `Ok` and rolls back
    /// otherwise, so a failed operation writes nothing.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&Db<'_>) -> DbResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let mut conn = self.conn().await?;
        let outcome = self
            .deadline(async {
                let tx = conn.transaction().await?;
                let out = f(&Db::PgTx(&tx)).await?;
                tx.commit().await?;
                Ok(out)
            })
            .await;
        conn.finish(outcome)
    }

    /// A write of one statement, which is a transaction of its own: no `BEGIN` and
    /// `COMMIT` round trips.
    pub(crate) async fn write_one<T: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&Db<'_>) -> DbResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.read(f).await
    }
}

/// A pooled connection, borrowed for one operation. Dereferences to deadpool's client
/// (so `prepare_cached` and `transaction` are at hand); [`Conn::finish`] turns the
/// operation's outcome into the store's result and decides whether the connection goes
/// back to the pool.
struct Conn<'s> {
    obj: Object,
    inner: &'s Inner,
}

impl Deref for Conn<'_> {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        &self.obj
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut ClientWrapper {
        &mut self.obj
    }
}

impl Conn<'_> {
    fn finish<T>(
        self,
        outcome: Result<Result<T, Fail>, tokio::time::error::Elapsed>,
    ) -> StoreResult<T> {
        let inner = self.inner;
        match outcome {
            Ok(Ok(value)) => {
                inner.health.succeeded(&inner.target);
                Ok(value)
            }
            Ok(Err(Fail::Store(e))) => {
                // A domain outcome: the database answered.
                inner.health.succeeded(&inner.target);
                Err(e)
            }
            Ok(Err(Fail::Pg(e))) => {
                let err = error::classify(&e);
                if error::connection_lost(&e) {
                    self.discard_all();
                    let StoreError::Unavailable(text) = err else {
                        return Err(err);
                    };
                    return Err(inner.unavailable(
                        FailureKind::Lost,
                        format!("PostgreSQL connection to {} failed: {text}", inner.target),
                    ));
                }
                if let StoreError::Unavailable(text) = err {
                    // Alive but busy: a statement or lock timeout, a deadlock.
                    return Err(inner.unavailable(FailureKind::Busy, text));
                }
                Err(err)
            }
            Ok(Err(Fail::Lite(e))) => Err(StoreError::Internal(e.to_string())),
            Err(_) => {
                // The connection may be stuck mid-exchange: never reuse it. Dropping it
                // closes the socket, and the server rolls back whatever was open.
                self.discard_all();
                Err(inner.unavailable(
                    FailureKind::Stalled,
                    format!(
                        "PostgreSQL at {} did not answer within {:?}",
                        inner.target,
                        inner.operation_deadline.unwrap_or_default()
                    ),
                ))
            }
        }
    }

    /// Closes this connection for good, and the idle ones too: when one connection
    /// broke or stalled, the others most likely share its fate (a restarted server, a
    /// dead route), and each would otherwise cost a request its own failure, or its
    /// own full deadline, before being found out. The pool opens fresh ones on demand.
    fn discard_all(self) {
        let inner = self.inner;
        drop(Object::take(self.obj));
        drop(inner.pool.retain(|_, _| false));
    }
}

impl Inner {
    fn pool_failure(&self, e: PoolError) -> StoreError {
        let (kind, text) = match e {
            PoolError::Timeout(TimeoutType::Wait) => (
                FailureKind::Exhausted,
                format!(
                    "all PostgreSQL connections to {} stayed busy; gave up waiting for one",
                    self.target
                ),
            ),
            PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => (
                FailureKind::Connect,
                format!("connecting to PostgreSQL at {} timed out", self.target),
            ),
            PoolError::Backend(e) => (
                FailureKind::Connect,
                format!(
                    "cannot connect to PostgreSQL at {}: {}",
                    self.target,
                    error::describe(&e)
                ),
            ),
            PoolError::PostCreateHook(e) => (
                FailureKind::Connect,
                format!(
                    "cannot set up a PostgreSQL connection to {}: {}",
                    self.target,
                    match &e {
                        HookError::Backend(e) => error::describe(e),
                        HookError::Message(m) => m.to_string(),
                    }
                ),
            ),
            PoolError::Closed => (
                FailureKind::Connect,
                "the PostgreSQL connection pool is closed".to_owned(),
            ),
            PoolError::NoRuntimeSpecified => {
                return StoreError::Internal("connection pool has no runtime".into())
            }
        };
        self.unavailable(kind, text)
    }

    /// Logs (rate-limited) and builds an `Unavailable` error.
    fn unavailable(&self, kind: FailureKind, text: String) -> StoreError {
        self.health.failed(kind, &text);
        StoreError::Unavailable(text)
    }
}

/// The kinds of unavailability, each logged on its own schedule.
#[derive(Debug, Clone, Copy)]
enum FailureKind {
    /// A new connection could not be opened.
    Connect,
    /// Every connection was busy for the whole acquire timeout.
    Exhausted,
    /// A connection broke during an operation.
    Lost,
    /// An operation got no answer within its deadline.
    Stalled,
    /// The server answered but gave up: statement or lock timeout, deadlock, too many
    /// connections and the like.
    Busy,
}

const FAILURE_KINDS: usize = 5;

/// At most one log line per failure kind in this interval; the rest are counted.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Rate-limits failure logs, so an outage under load logs a line every few seconds
/// rather than one per request, and logs when the database is back.
struct Health {
    epoch: Instant,
    /// Per kind: milliseconds after `epoch` (plus one, so 0 means never) of the last
    /// line logged, and how many failures went unlogged since.
    last_logged: [AtomicU64; FAILURE_KINDS],
    suppressed: [AtomicU64; FAILURE_KINDS],
    /// Set by a connection-level failure, cleared (and logged) by the next success.
    down: AtomicBool,
}

impl Health {
    fn new() -> Health {
        Health {
            epoch: Instant::now(),
            last_logged: Default::default(),
            suppressed: Default::default(),
            down: AtomicBool::new(false),
        }
    }

    fn failed(&self, kind: FailureKind, text: &str) {
        if !matches!(kind, FailureKind::Exhausted | FailureKind::Busy) {
            self.down.store(true, Ordering::Relaxed);
        }
        let i = kind as usize;
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let last = self.last_logged[i].load(Ordering::Relaxed);
        let interval = u64::try_from(LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= interval;
        if !due
            || self.last_logged[i]
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed[i].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed[i].swap(0, Ordering::Relaxed);
        match kind {
            FailureKind::Connect => {
                tracing::error!(suppressed, "PostgreSQL unreachable: {text}");
            }
            FailureKind::Exhausted => {
                tracing::warn!(suppressed, "PostgreSQL pool exhausted: {text}");
            }
            FailureKind::Lost => {
                tracing::error!(suppressed, "PostgreSQL connection lost: {text}");
            }
            FailureKind::Stalled => {
                tracing::error!(suppressed, "PostgreSQL not answering: {text}");
            }
            FailureKind::Busy => {
                tracing::warn!(suppressed, "PostgreSQL too busy: {text}");
            }
        }
    }

    fn succeeded(&self, target: &str) {
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("PostgreSQL at {target} is reachable again");
        }
    }
}

/// `user@host:port/dbname`, for messages; never the password.
fn describe_target(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let host = if hosts.is_empty() {
        "localhost".to_owned()
    } else {
        hosts.join(",")
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    if user.is_empty() {
        format!("{host}:{port}/{db}")
    } else {
        format!("{user}@{host}:{port}/{db}")
    }
}

/// A timeout option as a limit: zero means none.
fn limit(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

/// Awaits `f`, giving up after `limit` if there is one.
async fn within<F: std::future::Future>(
    limit: Option<Duration>,
    f: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, f).await,
        None => Ok(f.await),
    }
}
