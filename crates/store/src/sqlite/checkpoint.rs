//! WAL checkpoints on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold, on
//! the single writer: every writer waiting behind that commit waits for the copy of the
//! WAL into the database file and its fsync too. Here the writer's own threshold is set
//! high, as a backstop only, and a background connection checkpoints (`PASSIVE`: it
//! never waits for, nor blocks, readers or the writer) shortly after commits, so the
//! writer's critical section is its transaction and the WAL fsync alone. Durability is
//! unchanged: a commit is durable once its WAL frames are synced, whoever copies them
//! into the database file later.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use rusqlite::Connection;

use super::configure;
use super::error::sql_err;
use crate::StoreResult;

/// WAL pages after which the writer checkpoints itself, when the background
/// checkpointer falls behind (or cannot run): about 64 MiB of 4 KiB pages, so the WAL
/// and the readers' walk of its index stay bounded.
pub(super) const WRITER_BACKSTOP_PAGES: i64 = 16_384;

/// How long the checkpointer lets commits gather before copying them: pages written by
/// several commits (a task's statistics row, the work queue's page) are copied once.
const GATHER: Duration = Duration::from_millis(50);

/// Wakes the checkpointer after commits. Dropping it stops the thread.
pub(super) struct Checkpointer {
    wake: SyncSender<()>,
}

impl Checkpointer {
    /// Starts the thread with its own connection to `path`.
    pub(super) fn start(path: &Path) -> StoreResult<Checkpointer> {
        let conn = Connection::open(path).map_err(sql_err)?;
        configure(&conn)?;
        // One pending wake-up is enough: the checkpoint after it covers every commit
        // made before it runs.
        let (wake, woken) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &woken))
            .map_err(|e| {
                crate::StoreError::Unavailable(format!("cannot start the checkpointer: {e}"))
            })?;
        Ok(Checkpointer { wake })
    }

    /// Called after each commit; never blocks.
    pub(super) fn committed(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

fn run(conn: &Connection, woken: &Receiver<()>) {
    loop {
        if woken.recv().is_err() {
            return;
        }
        // Let more commits land before copying; the wake-up they leave is taken here,
        // since this checkpoint covers them.
        std::thread::sleep(GATHER);
        let _ = woken.try_recv();
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            // The writer's backstop checkpoints meanwhile; the next commit retries.
            tracing::debug!(error = %e, "background WAL checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::{NewWorkItem, SqliteStore, WorkQueue};

    /// Commits well under the writer's backstop reach the database file anyway: the
    /// background thread copied them.
    #[tokio::test]
    async fn commits_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("palisade.db");
        let store = SqliteStore::open(&path).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        // 2 MiB in all: about 500 pages, under SQLite's default threshold (1,000) too.
        for n in 0..8 {
            store
                .enqueue_work(&NewWorkItem {
                    id: format!("item-{n}"),
                    queue: "checkpoint-test".into(),
                    payload: "x".repeat(256 * 1024),
                    run_after_ms: 0,
                })
                .await
                .unwrap();
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let size = std::fs::metadata(&path).unwrap().len();
            if size >= before + 2 * 1024 * 1024 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the database file is still {size} bytes (was {before}): no checkpoint ran"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
