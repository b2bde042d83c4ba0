//! Connection history writes, batched: every connection waiting for its CONNACK in the
//! same few milliseconds is recorded by one transaction (so recording never limits the
//! connect rate, and an acknowledged connection is durable), and closes go in batches
//! behind them.

use std::time::Duration;

use palisade_engine::Engine;
use palisade_store::{ConnectionClose, ConnectionRecord, Scope};
use tokio::sync::{mpsc, oneshot};

/// Largest batch one transaction records.
const BATCH: usize = 512;

enum Write {
    Open(Scope, ConnectionRecord, oneshot::Sender<bool>),
    Close(ConnectionClose),
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<bool>),
}

/// The handle sessions record through.
#[derive(Clone)]
pub(crate) struct Recorder {
    tx: mpsc::UnboundedSender<Write>,
}

impl Recorder {
    pub(crate) fn start(engine: Engine) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(engine, rx));
        (Recorder { tx }, task)
    }

    /// Records a new connection; true once it is durable, false if it could not be
    /// recorded (the connection is then refused).
    pub(crate) async fn open(&self, scope: Scope, record: ConnectionRecord) -> bool {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Write::Open(scope, record, done)).is_err() {
            return false;
        }
        wait.await.unwrap_or(false)
    }

    /// Waits until everything recorded so far is written.
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Write::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    pub(crate) fn close(&self, close: ConnectionClose) {
        // The writer is gone only at shutdown, when the node's open connections are
        // closed on the next start instead.
        let _ = self.tx.send(Write::Close(close));
    }
}

async fn run(engine: Engine, mut rx: mpsc::UnboundedReceiver<Write>) {
    let mut opens: Vec<(Scope, ConnectionRecord)> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<bool>> = Vec::new();
    let mut closes: Vec<ConnectionClose> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<bool>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(w) = next.take() {
            match w {
                Write::Open(scope, record, done) => {
                    opens.push((scope, record));
                    waiters.push(done);
                }
                Write::Close(c) => closes.push(c),
                Write::Flush(done) => flushes.push(done),
            }
            if opens.len() + closes.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !opens.is_empty() {
            let ok = write_with_retry(|| engine.connections_opened(&opens))
                .await
                .is_ok();
            for w in waiters.drain(..) {
                let _ = w.send(ok);
            }
            opens.clear();
        }
        if !closes.is_empty() {
            // A close that cannot be written now is written by the next start's
            // recovery (the node's open connections are closed then).
            let _ = write_with_retry(|| engine.connections_closed(&closes)).await;
            closes.clear();
        }
        for f in flushes.drain(..) {
            let _ = f.send(true);
        }
    }
}

async fn write_with_retry<T, F, Fut>(mut write: F) -> Result<T, palisade_engine::EngineError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, palisade_engine::EngineError>>,
{
    let mut delay = Duration::from_millis(50);
    for _ in 0..4 {
        match write().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                tracing::warn!(error = %e, "recording connections failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    write().await
}
