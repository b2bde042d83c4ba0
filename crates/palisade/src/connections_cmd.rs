//! `palisade connections import FILE`: connection history from a broker Palisade does
//! not front, as JSON Lines (docs/IMPORT.md), straight into the database, whether or not
//! a server runs on it. Reports failed lines like `palisade fleet import` and exits 2 if
//! any failed.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use crate::fleet_cmd::{describe, prepare, ImportSetup, LinesFailed};

/// Errors printed with the summary; `--errors-file` gets all of them.
const PRINTED_ERRORS: usize = 20;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The JSON Lines file of connections to import (see docs/IMPORT.md).
    file: PathBuf,
    /// The 12-digit account the connections belong to.
    #[arg(long)]
    account_id: String,
    /// The region they belong to [default: the config file's, else us-east-1].
    #[arg(long, env = "PALISADE_REGION")]
    region: Option<String>,
    /// Write every failed line here, one JSON object per line.
    #[arg(long)]
    errors_file: Option<PathBuf>,
    #[command(flatten)]
    store: crate::StoreArgs,
}

pub async fn import(args: ImportArgs) -> Result<()> {
    palisade_engine::credentials::validate_account_id(&args.account_id)
        .map_err(anyhow::Error::msg)?;
    let ImportSetup {
        input,
        mut errors_file,
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
    let started = Instant::now();
    let mut printed = Vec::new();
    let mut write_failure = None;
    let summary = engine
        .import_connections(&scope, BufReader::new(input), |e| {
            let line = e.line;
            let (code, message) = describe(e.error);
            if printed.len() < PRINTED_ERRORS {
                printed.push(format!("line {line}: {code}: {message}"));
            }
            if let Some(f) = errors_file.as_mut() {
                let record = json!({"line": line, "code": code, "message": message});
                if let Err(e) = writeln!(f, "{record}") {
                    write_failure.get_or_insert(e);
                }
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(mut f) = errors_file.take() {
        if let Err(e) = f.flush() {
            write_failure.get_or_insert(e);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "Imported {} line(s) in {secs:.1}s: {} connection(s) recorded, {} line(s) failed.",
        summary.lines_read, summary.imported, summary.failed_lines
    );
    if !printed.is_empty() {
        println!();
        for line in &printed {
            println!("{line}");
        }
        let more = summary.failed_lines.saturating_sub(printed.len() as u64);
        if more > 0 {
            println!("... and {more} more (use --errors-file to get them all)");
        }
    }
    if let Some(e) = write_failure {
        anyhow::bail!("writing the errors file failed: {e}");
    }
    if summary.failed_lines > 0 {
        return Err(LinesFailed(summary.failed_lines).into());
    }
    Ok(())
}
