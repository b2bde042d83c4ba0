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

// First and on its own: its column-list macros must be defined before use.
#[macro_use]
mod rows;

mod actions;
mod audits;
mod certificates;
mod checkpoint;
mod credentials;
mod crls;
mod error;
mod import;
mod meta;
mod migrate;
mod mitigation_tasks;
mod policies;
mod related;
mod scheduled;
mod suppressions;
mod tags;
mod things;
mod work;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

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
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The server secret never changes once created, so it is read at most once.
    secret: OnceLock<Vec<u8>>,
    checkpointer: checkpoint::Checkpointer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
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
        let mut writer = open_writer(path)?;
        migrate::run(&mut writer)?;
        // Readers are opened after the writer has put the file in WAL mode and created
        // the schema, which read-only connections cannot do themselves.
        let readers = (0..READERS)
            .map(|_| open_reader(path).map(Mutex::new))
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

    /// Runs `f` on a read-only connection, inline (see the module docs for why).
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        f(&self.inner.reader())
    }

    /// Runs `f` on a read-only connection on the blocking pool: for the few reads that
    /// scan a large range (an audit's million findings), which would otherwise hold an
    /// async worker for a noticeable time.
    async fn read_scan<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || f(&inner.reader())).await
    }

    /// Runs `f` inside a `BEGIN IMMEDIATE` transaction on the writer connection, on the
    /// blocking pool. The transaction commits if `f` returns `Ok` and rolls back
    /// otherwise, so a failed operation writes nothing.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let mut conn = inner.writer();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let out = f(&tx)?;
            tx.commit().map_err(sql_err)?;
            inner.checkpointer.committed();
            Ok(out)
        })
        .await
    }
}

impl Inner {
    fn writer(&self) -> MutexGuard<'_, Connection> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // A panic mid-transaction poisons the mutex and may leave the transaction open;
        // roll it back so the next writer starts clean instead of failing forever.
        if !conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back an abandoned transaction failed");
            }
        }
        conn
    }

    /// Takes the first idle reader, starting from a rotating position so load spreads;
    /// if all are busy, waits for the one at that position.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(conn) => return conn,
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

/// Converts a caller's `usize` bound to a SQL `LIMIT` value.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
