//! `palisade fleet import FILE`: bulk import from JSON Lines (docs/IMPORT.md), straight
//! into the database, whether or not a server runs on it.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use palisade_api::ApiError;
use palisade_engine::{
    EngineError, ImportObserver, ImportOptions, ImportSummary, Limits, LineError, RandomIds, Scope,
    SystemClock, DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE,
};
use serde_json::json;

use crate::config;

/// Errors printed with the summary; `--errors-file` gets all of them.
const PRINTED_ERRORS: usize = 20;
/// Without a terminal, a progress line this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The JSON Lines file to import (see docs/IMPORT.md).
    file: PathBuf,
    /// The 12-digit account the resources belong to.
    #[arg(long)]
    account_id: String,
    /// The region the resources belong to [default: the config file's, else us-east-1].
    #[arg(long, env = "PALISADE_REGION")]
    region: Option<String>,
    /// Lines per batch; each batch is one database transaction.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Threads parsing certificates [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Write every failed line here, one JSON object per line.
    #[arg(long)]
    errors_file: Option<PathBuf>,
    #[command(flatten)]
    store: crate::StoreArgs,
}

/// Some lines failed: the exit status says so (2), after the summary was printed.
#[derive(Debug)]
pub struct LinesFailed(pub u64);

impl std::fmt::Display for LinesFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line(s) failed", self.0)
    }
}

impl std::error::Error for LinesFailed {}

/// An AWS error code and a message for a line's error. Internal causes are shown here:
/// the operator running the import owns the database.
pub fn describe(error: EngineError) -> (&'static str, String) {
    let message = match &error {
        EngineError::Internal(_) | EngineError::Unavailable(_) => Some(error.to_string()),
        _ => None,
    };
    let api = ApiError::from(error);
    (api.code, message.unwrap_or(api.message))
}

/// What an import opens before reading a line (`fleet import`, `connections import`).
pub struct ImportSetup {
    pub input: File,
    pub errors_file: Option<BufWriter<File>>,
    pub engine: palisade_engine::Engine,
    pub scope: Scope,
}

/// Opens the input and the errors file, and an engine on the store; the scope is the
/// account and the region given, or the config file's region, or the default.
pub async fn prepare(
    file: &std::path::Path,
    account_id: &str,
    region: Option<&str>,
    errors_file: Option<&std::path::Path>,
    store: &crate::StoreArgs,
) -> Result<ImportSetup> {
    let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let errors_file = match errors_file {
        Some(path) => Some(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let (engine, scope) = engine_and_scope(account_id, region, store).await?;
    Ok(ImportSetup {
        input,
        errors_file,
        engine,
        scope,
    })
}

/// An engine on the store, and the scope of the account and the region given (or the
/// config file's region, or the default): what every offline import writes through.
pub async fn engine_and_scope(
    account_id: &str,
    region: Option<&str>,
    store: &crate::StoreArgs,
) -> Result<(palisade_engine::Engine, Scope)> {
    palisade_engine::credentials::validate_account_id(account_id).map_err(anyhow::Error::msg)?;
    let file_config = config::FileConfig::load(store.config.as_deref())?;
    let region = region
        .map(str::to_owned)
        .or(file_config.region.clone())
        .unwrap_or_else(|| config::DEFAULT_REGION.to_owned());
    config::validate_region(&region)?;
    let store = crate::store::open(&store.choice()?).await?;
    let engine = palisade_engine::Engine::new(
        store,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Limits::default(),
    )
    .await
    .context("starting the engine")?;
    let scope = Scope {
        account_id: account_id.to_owned(),
        region,
    };
    Ok((engine, scope))
}

pub async fn import(args: ImportArgs) -> Result<()> {
    palisade_engine::credentials::validate_account_id(&args.account_id)
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        (1..=MAX_BATCH_SIZE).contains(&args.batch_size),
        "--batch-size must be between 1 and {MAX_BATCH_SIZE}"
    );
    let ImportSetup {
        input,
        errors_file,
        engine,
        scope,
    } = prepare(
        &args.file,
        &args.account_id,
        args.region.as_deref(),
        args.errors_file.as_deref(),
        &args.store,
    )
    .await?;
    let mut options = ImportOptions {
        batch_size: args.batch_size,
        ..ImportOptions::default()
    };
    if let Some(workers) = args.workers {
        options.workers = workers.max(1);
    }
    let mut observer = CliObserver::new(errors_file);
    let started = Instant::now();
    let summary = engine
        .import(&scope, input, &options, &mut observer)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let elapsed = started.elapsed();
    observer.finish();
    print_summary(&summary, &observer, elapsed);
    if let Some(e) = observer.errors_file_failure.take() {
        anyhow::bail!("writing the errors file failed: {e}");
    }
    if summary.failed_lines > 0 {
        return Err(LinesFailed(summary.failed_lines).into());
    }
    Ok(())
}

struct CliObserver {
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
    printed: Vec<String>,
    errors: u64,
    errors_file: Option<BufWriter<File>>,
    errors_file_failure: Option<std::io::Error>,
}

impl CliObserver {
    fn new(errors_file: Option<BufWriter<File>>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} lines ({per_sec}, ETA {eta}) {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            last_log: Instant::now(),
            printed: Vec::new(),
            errors: 0,
            errors_file,
            errors_file_failure: None,
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some(mut f) = self.errors_file.take() {
            if let Err(e) = f.flush() {
                self.errors_file_failure.get_or_insert(e);
            }
        }
    }
}

impl ImportObserver for CliObserver {
    fn progress(&mut self, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                if self.errors > 0 {
                    bar.set_message(format!("{} failed", self.errors));
                }
            }
            None => {
                let now = Instant::now();
                if now.duration_since(self.last_log) >= LOG_EVERY || (done == total && done > 0) {
                    self.last_log = now;
                    let secs = self.started.elapsed().as_secs_f64().max(0.001);
                    eprintln!(
                        "import: {done}/{total} lines, {:.0} lines/s, {} failed",
                        done as f64 / secs,
                        self.errors
                    );
                }
            }
        }
    }

    fn error(&mut self, error: LineError) {
        self.errors += 1;
        let line = error.line;
        let resource = error.resource.map(|r| r.as_str());
        let name = error.name.clone();
        let (code, message) = describe(error.error);
        if self.printed.len() < PRINTED_ERRORS {
            let what = match (resource, &name) {
                (Some(r), Some(n)) => format!("{r} {n}: "),
                (Some(r), None) => format!("{r}: "),
                _ => String::new(),
            };
            self.printed
                .push(format!("line {line}: {what}{code}: {message}"));
        }
        if let Some(f) = self.errors_file.as_mut() {
            let record = json!({
                "line": line,
                "type": resource,
                "name": name,
                "code": code,
                "message": message,
            });
            if let Err(e) = writeln!(f, "{record}") {
                self.errors_file_failure.get_or_insert(e);
                self.errors_file = None;
            }
        }
    }
}

fn print_summary(summary: &ImportSummary, observer: &CliObserver, elapsed: Duration) {
    let c = &summary.created;
    let u = &summary.unchanged;
    let secs = elapsed.as_secs_f64();
    println!(
        "Imported {} line(s) in {secs:.1}s ({:.0} lines/s).",
        summary.lines_read,
        summary.lines_read as f64 / secs.max(0.001)
    );
    println!(
        "  created:   {} policies, {} thing groups, {} things, {} certificates",
        c.policies, c.thing_groups, c.things, c.certificates
    );
    println!(
        "  unchanged: {} policies, {} thing groups, {} things, {} certificates (already there, identical)",
        u.policies, u.thing_groups, u.things, u.certificates
    );
    println!("  failed:    {} line(s)", summary.failed_lines);
    if !observer.printed.is_empty() {
        println!();
        for line in &observer.printed {
            println!("{line}");
        }
        let more = observer
            .errors
            .saturating_sub(observer.printed.len() as u64);
        if more > 0 {
            println!("... and {more} more (use --errors-file to get them all)");
        }
    }
}
