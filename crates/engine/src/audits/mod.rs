//! Device Defender audits: the account audit configuration, on-demand audit tasks run
//! by a background worker over the registry, and their findings.

mod catalogue;
mod configuration;
mod connections;
mod evaluate;
mod findings;
mod iam_checks;
mod mitigation;
mod notifications;
mod related;
mod revocation;
mod runner;
mod scheduled;
mod scheduled_checks;
mod scheduler;
mod sink;
mod suppressions;
mod tasks;

pub use runner::BackgroundWork;

/// The work queue audit tasks run from.
const AUDIT_QUEUE: &str = "audit";

/// How long audit tasks and findings are kept (AWS: 90 days).
pub(crate) const RETENTION_MS: i64 = 90 * 24 * 60 * 60 * 1000;
