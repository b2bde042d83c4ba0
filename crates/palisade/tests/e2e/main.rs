//! End-to-end tests: a real `palisade` server (in-process, or the built binary) driven by
//! the real `aws-sdk-iot` client, on SQLite and on PostgreSQL.
//!
//! One test binary with a module per area, rather than one binary per file: each binary
//! links the whole AWS SDK, and twenty of them cost gigabytes of disk and minutes of
//! linking in CI.

mod common;
mod pki;

mod audit_crash;
mod audit_notifications;
mod audits;
mod auth;
mod binary;
mod ca_certificates;
mod certificates;
mod connections;
mod gateway;
mod gateway_crash;
mod iam;
mod import;
mod import_http;
mod isolation;
mod listing;
mod logging;
mod mitigation_actions;
mod mitigation_crash;
mod mitigation_multi_node;
mod mitigation_tasks;
mod multi_node;
mod outage;
mod policies;
mod principals;
mod protocol;
mod related_resources;
mod revocation;
mod role_aliases;
mod scheduled_audits;
mod suppressions;
mod tagging;
mod thing_groups;
mod things;
