//! The embedded SQLite engine.
//!
//! One writer connection behind a mutex serialises writes within the process, and
//! every write runs in a `BEGIN IMMEDIATE` transaction so check-then-write sequences
//! (scope limits, uniqueness) stay atomic against other processes on the same file,
//! e.g. the CLI adding a credential while the server runs. Reads go to a small pool of
//! read-only connections, which WAL lets proceed alongside the writer.
//!
//! Writes (which fsync) run on tokio's blocking pool. Reads run inline on the calling
//! task: they are point or short range lookups on a WAL snapshot, which never wait for
//! the writer, and handing each one to another thread cost more than the read itself
//! (measured: the wake-ups of `spawn_blocking` were a third of the server's CPU under a
//! read-heavy load; see docs/PERFORMANCE.md). Readers use a short busy timeout so the
//! rare wait (another process recovering the WAL index) cannot stall a worker for long.

mod audits;
mod certificates;
mod checkpoint;
mod error;
mod migrate;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rusqlite::{Connection, OpenFlags};

use crate::db::{Db, DbResult};
use crate::{StoreError, StoreResult};
use error::sql_err;

/// How long a connection waits for another connection's lock before giving up with
/// `Unavailable`. Long enough to ride out a concurrent writer in another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers run on async workers, so they give up sooner than the writer.
const READER_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// Read-only connections per store. Reads are short, so a few cover a 2-core host.
const READERS: usize = 4;

/// Per-connection prepared statement cache; comfortably above the number of distinct
/// statements the engine issues, so hot statements are never re-prepared.
const STATEMENT_CACHE: usize = 64;

/// A [`Store`](crate::Store) backed by one SQLite database file.
///
/// Cloning is cheap and shares the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The writer connection inside the writer's turn (see [`Inner::writer_turn`]).
    writer: Mutex<Mutex<Connection>>,
    /// Read-only connections, each inside its turn like the writer: a read body has its
    /// connection to itself from its first statement to its last.
    readers: Vec<Mutex<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    /// The server secret never changes once created, so it is read at most once.
    secret: OnceLock<Vec<u8>>,
    checkpointer: checkpoint::Checkpointer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.inner.path.display())
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and its parent directory,
    /// and brings the schema up to date.
    ///
    /// This blocks on disk I/O and, if another process holds the write lock, for up to
    /// the busy timeout: call it at startup or from a blocking context.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let writer = Mutex::new(open_writer(path)?);
        migrate::run(&writer)?;
        // Readers are opened after the writer has put the file in WAL mode and created
        // the schema, which read-only connections cannot do themselves.
        let readers = (0..READERS)
            .map(|_| open_reader(path).map(|c| Mutex::new(Mutex::new(c))))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                secret: OnceLock::new(),
                checkpointer: checkpoint::Checkpointer::start(path)?,
            }),
        })
    }

    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The server secret, once read (it never changes once created).
    pub(crate) fn secret_cell(&self) -> &OnceLock<Vec<u8>> {
        &self.inner.secret
    }

    /// Runs `f` on a read-only connection, inline (see the module docs for why).
    pub(crate) async fn read<T>(
        &self,
        f: impl AsyncFnOnce(&Db<'_>) -> DbResult<T>,
    ) -> StoreResult<T> {
        settle(f(&Db::Lite(&self.inner.reader_turn())))
    }

    /// Runs `f` on a read-only connection on the blocking pool: for the few reads that
    /// scan a large range (an audit's million findings), which would otherwise hold an
    /// async worker for a noticeable time.
    pub(crate) async fn scan<T: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&Db<'_>) -> DbResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = Arc::clone(&self.inner);
        blocking(move || settle(f(&Db::Lite(&inner.reader_turn())))).await
    }

    /// Runs `f` inside a `BEGIN IMMEDIATE` transaction on the writer connection, on the
    /// blocking pool. The transaction commits if `f` returns `Ok` and rolls back
    /// otherwise, so a failed operation writes nothing.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&Db<'_>) -> DbResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let turn = inner.writer_turn();
            lock(&turn)
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(sql_err)?;
            let out = settle(f(&Db::Lite(&turn))).and_then(|out| {
                lock(&turn)
                    .execute_batch("COMMIT")
                    .map(|()| out)
                    .map_err(sql_err)
            });
            match out {
                Ok(out) => {
                    inner.checkpointer.committed();
                    Ok(out)
                }
                Err(e) => {
                    rollback(&lock(&turn));
                    Err(e)
                }
            }
        })
        .await
    }

    /// After a batch of an import: nothing to do on SQLite (PostgreSQL refreshes its
    /// planner's statistics).
    pub(crate) async fn imported(&self, _items: &[crate::ImportItem]) {}

    /// A write of one statement: on SQLite, the same as [`SqliteStore::write`].
    pub(crate) async fn write_one<T: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&Db<'_>) -> DbResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.write(f).await
    }
}

/// The outcome of a body run on SQLite: its statements never wait, so its future is
/// ready at the first poll.
fn settle<T>(body: impl std::future::Future<Output = DbResult<T>>) -> StoreResult<T> {
    match body.now_or_never() {
        Some(outcome) => outcome.map_err(error::fail_err),
        None => Err(StoreError::Internal(
            "a SQLite operation waited on something other than SQLite".into(),
        )),
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "rolling back an abandoned transaction failed");
        }
    }
}

impl Inner {
    /// The writer's turn: held for a whole transaction, so writes of this process run
    /// one at a time (BEGIN IMMEDIATE orders them against other processes).
    fn writer_turn(&self) -> MutexGuard<'_, Mutex<Connection>> {
        let turn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // A panic mid-transaction poisons the mutex and may leave the transaction open;
        // roll it back so the next writer starts clean instead of failing forever.
        rollback(&lock(&turn));
        turn
    }

    /// A reader's turn, preferring an idle reader, starting from a rotating position so
    /// load spreads; if all are busy, waits for the one at that position.
    fn reader_turn(&self) -> MutexGuard<'_, Mutex<Connection>> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(turn) => return turn,
                // Read statements reset on drop, so a poisoned reader is still usable.
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.readers[start]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs blocking database work off the async runtime.
async fn blocking<T, F>(f: F) -> StoreResult<T>
where
    F: FnOnce() -> StoreResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(format!("storage task failed: {e}")))?
}

fn open_writer(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(sql_err)?;
    configure(&conn)?;
    enable_wal(&conn)?;
    // FULL makes every commit fsync the WAL, so an acknowledged write survives power
    // loss, not only a process crash.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sql_err)?;
    // The checkpointer thread copies the WAL back; the writer only steps in if it lags.
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        checkpoint::WRITER_BACKSTOP_PAGES,
    )
    .map_err(sql_err)?;
    Ok(conn)
}

fn open_reader(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(sql_err)?;
    configure(&conn)?;
    conn.busy_timeout(READER_BUSY_TIMEOUT).map_err(sql_err)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> StoreResult<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Switches the file to WAL (a persistent property of the file). The switch needs an
/// exclusive lock, and when another process is opening the same fresh file at the same
/// moment SQLite can report busy without consulting the busy handler, so retry here.
fn enable_wal(conn: &Connection) -> StoreResult<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let result = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0));
        match result {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(StoreError::Unavailable(format!(
                    "database refused WAL mode (journal_mode is {mode})"
                )))
            }
            Err(e) if error::is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(sql_err(e)),
        }
    }
}
