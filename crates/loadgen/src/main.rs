//! `palisade-loadgen`: a small, self-contained HTTP/1.1 load generator for Palisade.
//!
//! Subcommands:
//! - `ceiling`: a trivial axum server answering `GET /mitigationactions/actions/{name}` with a
//!   fixed Describe-like JSON body. It is the upper bound to compare the real server against.
//! - `setup`: creates the benchmark mitigation action through a SigV4-signed request.
//! - `run`: N keep-alive connections, each driven by one worker task that signs every request
//!   individually with the real AWS SigV4 signer and records latencies in an HDR histogram;
//!   `--op` picks DescribeMitigationAction (default), DescribeCertificate or paging through
//!   ListCertificates.
//! - `fleet`: writes a JSON Lines fleet (things with a certificate each; optionally
//!   policies, expiring certificates and registered CAs issuing them) for
//!   `palisade fleet import`.
//! - `register-cas`: registers the CAs `fleet --cas` wrote, through the API.
//! - `audit`: enables the audit checks, starts an on-demand audit and measures
//!   DescribeAuditTask at a steady rate until it ends (bench/audit.sh).
//! - `mitigate`: creates an UPDATE_DEVICE_CERTIFICATE mitigation action, starts an audit
//!   mitigation actions task over a finished audit's findings of one check and measures
//!   DescribeAuditMitigationActionsTask at a steady rate until it ends
//!   (bench/mitigation.sh).
//! - `mqtt-setup`: makes a device CA and N ECDSA P-256 device certificates, registers
//!   them ACTIVE with an allow-all policy, and writes them to a directory (bench/gateway.sh).
//! - `mqtt hold` / `mqtt publish`: TLS MQTT load with those certificates against the
//!   device gateway or any broker's TLS listener: N held connections at a target connect
//!   rate, or QoS 0 publish throughput and end-to-end latency (mqtt.rs).
//!
//! Only loopback endpoints are accepted: this tool never sends traffic anywhere else.

mod audit;
mod ceiling;
mod client;
mod endpoint;
mod fleet;
mod mitigate;
mod mqtt;
mod mqtt_setup;
mod poll;
mod run;
mod setup;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "palisade-loadgen",
    version,
    about = "Load generator for Palisade"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a fixed Describe-like response: the ceiling to compare the real server against.
    Ceiling(CeilingArgs),
    /// Create the benchmark mitigation action (HTTP 409 "already exists" is fine).
    Setup(SetupArgs),
    /// Drive signed requests (DescribeMitigationAction by default) over N keep-alive connections.
    Run(RunArgs),
    /// Write a JSON Lines fleet of things, each with its own certificate, for `palisade fleet import`.
    Fleet(FleetArgs),
    /// Register (SNI_ONLY, active) the CAs written by `fleet --cas`; already registered is fine.
    RegisterCas(RegisterCasArgs),
    /// Enable the audit checks, start an on-demand audit and measure DescribeAuditTask until it ends.
    Audit(AuditArgs),
    /// Start an UPDATE_DEVICE_CERTIFICATE mitigation task over an audit's findings and
    /// measure DescribeAuditMitigationActionsTask until it ends.
    Mitigate(MitigateArgs),
    /// Make a device CA and N device certificates (ECDSA P-256), register them ACTIVE
    /// with an allow-all policy, write them to a directory (for `mqtt`).
    MqttSetup(MqttSetupArgs),
    /// TLS MQTT 3.1.1 load with `mqtt-setup`'s certificates: hold connections, or publish.
    Mqtt {
        #[command(subcommand)]
        mode: MqttMode,
    },
}

#[derive(Debug, Args)]
struct MqttSetupArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Device certificates to make and register.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// The directory the CA, the devices' certificates and keys go to (kept certificates
    /// are reused).
    #[arg(long)]
    out: PathBuf,
    /// The allow-all policy attached to every device certificate.
    #[arg(long, default_value = "bench-mqtt-allow-all")]
    policy: String,
}

#[derive(Debug, Subcommand)]
enum MqttMode {
    /// Open N connections at a target rate, hold them, report connect rate and latency.
    Hold(MqttHoldArgs),
    /// M publishers and M subscribers, QoS 0: messages/s received and end-to-end latency.
    Publish(MqttPublishArgs),
}

#[derive(Debug, Args)]
struct MqttTargetArgs {
    /// The TLS MQTT listener, IP:PORT on loopback (the gateway, or a broker's TLS port).
    #[arg(long)]
    host: String,
    /// The CA the server's certificate is checked against (the gateway's mqtt-ca.pem).
    #[arg(long)]
    ca_file: PathBuf,
    /// The TLS server name sent and checked.
    #[arg(long, default_value = "localhost")]
    sni: String,
    /// The directory `mqtt-setup --out` wrote.
    #[arg(long)]
    devices_dir: PathBuf,
    /// MQTT keep-alive in seconds (PINGREQ every half of it while holding).
    #[arg(long, default_value_t = 60)]
    keep_alive: u16,
    /// Client ids are <prefix>-hold-<i>, <prefix>-pub-<i>, <prefix>-sub-<i>.
    #[arg(long, default_value = "bench")]
    client_prefix: String,
    /// Give up on a connection (TCP, TLS and CONNACK) after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Device index of the first connection (connections take devices in turn, wrapping
    /// around the fleet).
    #[arg(long, default_value_t = 0)]
    first_device: usize,
    /// Print the human-readable summary on stderr and one JSON line on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct MqttHoldArgs {
    #[command(flatten)]
    target: MqttTargetArgs,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// New connections per second (0: as fast as --max-inflight allows).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Connection attempts in progress at most (the schedule waits when it is reached).
    #[arg(long, default_value_t = 2000)]
    max_inflight: usize,
    /// How long to hold the connections once every attempt has ended.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    hold: Duration,
    /// Written (the number connected) when every attempt has ended and the hold begins.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Exit 0 even if some connections failed or dropped.
    #[arg(long)]
    allow_errors: bool,
}

#[derive(Debug, Args)]
struct MqttPublishArgs {
    #[command(flatten)]
    target: MqttTargetArgs,
    /// Publisher/subscriber pairs (2 connections each).
    #[arg(long, default_value_t = 16)]
    pairs: usize,
    /// Messages per second in total (0: as fast as the connections take them).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Payload bytes (at least 16: the send time and a sequence number).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Warm-up before measuring.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Measured duration (at most 10 minutes).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Topics are <prefix>/<i> [default: bench/<unix ms>].
    #[arg(long)]
    topic_prefix: Option<String>,
}

#[derive(Debug, Args)]
struct MitigateArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The finished audit whose findings the task targets [default: the newest COMPLETED
    /// on-demand audit, from ListAuditTasks].
    #[arg(long)]
    audit_task_id: Option<String>,
    /// The check whose findings get the action.
    #[arg(long, default_value = "DEVICE_CERTIFICATE_EXPIRING_CHECK")]
    check: String,
    /// The mitigation task's id [default: bench-<unix ms>].
    #[arg(long)]
    task_id: Option<String>,
    /// The role ARN of the UPDATE_DEVICE_CERTIFICATE action (created as --name if missing).
    #[arg(
        long,
        default_value = "arn:aws:iam::000000000000:role/bench-mitigation"
    )]
    role_arn: String,
    /// DescribeAuditMitigationActionsTask requests per second while the task runs (1 to 1000).
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Fail if the task has not ended by then, e.g. 10m (at most 1 hour).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// How often to print the task's progress.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    progress_every: Duration,
    /// Print the human-readable summary on stderr and one JSON line on stdout.
    #[arg(long)]
    json: bool,
    /// Exit 0 even if some DescribeAuditMitigationActionsTask requests failed.
    #[arg(long)]
    allow_errors: bool,
}

#[derive(Debug, Args)]
struct RegisterCasArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The CA file `fleet --cas-out` wrote.
    #[arg(long)]
    file: PathBuf,
    /// Concurrent connections (1 to 64).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[derive(Debug, Args)]
struct AuditArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Checks to enable and audit, comma-separated [default: every certificate and policy
    /// check, the revocation checks and LOGGING_DISABLED_CHECK].
    #[arg(long, value_delimiter = ',')]
    checks: Vec<String>,
    /// The audit role ARN set in the account audit configuration.
    #[arg(long, default_value = "arn:aws:iam::000000000000:role/bench-audit")]
    role_arn: String,
    /// DescribeAuditTask requests per second while the audit runs (1 to 1000).
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Fail if the audit has not ended by then, e.g. 10m (at most 1 hour).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// Print the human-readable summary on stderr and one JSON line on stdout.
    #[arg(long)]
    json: bool,
    /// Exit 0 even if some DescribeAuditTask requests failed.
    #[arg(long)]
    allow_errors: bool,
}

#[derive(Debug, Args)]
struct FleetArgs {
    /// Where to write the fleet (replaced if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Number of things (and certificates).
    #[arg(long, default_value_t = 1_000_000)]
    things: u64,
    /// Number of the first thing (names are bench-thing-NNNNNNN).
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Signing threads [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Registered CAs issuing the certificates, evenly (0: certificates registered
    /// without a CA). Needs --cas-out; register them with `register-cas` before importing.
    #[arg(long, default_value_t = 0)]
    cas: u64,
    /// Where the CAs go, one {"name","pem"} object per line.
    #[arg(long)]
    cas_out: Option<PathBuf>,
    /// How many of the CAs expire within 30 days.
    #[arg(long, default_value_t = 0)]
    expiring_cas: u64,
    /// Policies (a mix, mostly compliant; see fleet.rs); certificate i gets policy i % N.
    #[arg(long, default_value_t = 0)]
    policies: u64,
    /// Device certificates per thousand that expire within 30 days.
    #[arg(long, default_value_t = 0)]
    expiring_per_mille: u32,
    /// Give device certificates a CRL distribution point under this URL
    /// ({base}/<CA name>.crl).
    #[arg(long)]
    crl_url_base: Option<String>,
    /// The account the fleet is imported into (the policies' ARNs name it).
    #[arg(long, default_value = "000000000000")]
    account_id: String,
    /// The region the fleet is imported into (the policies' ARNs name it).
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

/// What `run` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OpName {
    DescribeMitigationAction,
    DescribeCertificate,
    ListCertificates,
}

#[derive(Debug, Args)]
struct CeilingArgs {
    /// Loopback address to listen on, e.g. 127.0.0.1:9000.
    #[arg(long)]
    listen: SocketAddr,
}

/// Connection and identity options shared by `setup` and `run`.
#[derive(Debug, Args)]
struct TargetArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    endpoint: String,
    /// AWS access key id used for SigV4 signing.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    /// AWS secret access key used for SigV4 signing.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret: String,
    /// Signing region.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Mitigation action name ([a-zA-Z0-9_-]{1,128}).
    #[arg(long, default_value = "bench-action")]
    name: String,
}

#[derive(Debug, Args)]
struct SetupArgs {
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Number of HTTP/1.1 keep-alive connections (one worker task each).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured duration, e.g. 20s, 1500ms, 2m (at most 10 minutes).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before measuring (requests are sent but not recorded).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// Stop after this many requests in total (warm-up included).
    #[arg(long)]
    max_requests: Option<u64>,
    /// Print the human-readable summary on stderr and one JSON line on stdout.
    #[arg(long)]
    json: bool,
    /// Exit 0 even if some requests failed (non-200 or transport errors).
    #[arg(long)]
    allow_errors: bool,
    /// The operation every request makes.
    #[arg(long, value_enum, default_value = "describe-mitigation-action")]
    op: OpName,
    /// The certificate DescribeCertificate asks for (64 hex digits).
    #[arg(long)]
    certificate_id: Option<String>,
    /// ListCertificates page size (1 to 250).
    #[arg(long, default_value_t = 250)]
    page_size: u32,
}

/// Parses durations such as `20s`, `1500ms`, `2m`, `1.5s`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (expected e.g. 20s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" | "sec" | "secs" => value,
        "m" | "min" | "mins" => value * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?} (use ms, s or m)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Mitigation action names as the model defines them: `[a-zA-Z0-9_-]+`, at most 128 chars.
/// Keeping to this alphabet also means the path needs no percent-encoding.
fn check_action_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        bail!("invalid action name {name:?}: must match [a-zA-Z0-9_-]{{1,128}}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building tokio runtime")?;
    match cli.command {
        Command::MqttSetup(args) => {
            let target = client::Target::from_args(&args.target)?;
            let config = mqtt_setup::MqttSetupConfig {
                devices: args.devices,
                out: args.out,
                policy: args.policy,
            };
            runtime.block_on(mqtt_setup::setup(&target, &config))
        }
        Command::Mqtt { mode } => runtime.block_on(run_mqtt(mode)),
        Command::Ceiling(args) => runtime.block_on(ceiling::serve(args.listen)),
        Command::Setup(args) => {
            let target = client::Target::from_args(&args.target)?;
            runtime.block_on(setup::setup(&target))
        }
        Command::Run(args) => {
            if args.connections == 0 || args.connections > 4096 {
                bail!("--connections must be between 1 and 4096");
            }
            if args.duration.is_zero() || args.duration > Duration::from_secs(600) {
                bail!("--duration must be greater than 0 and at most 10m");
            }
            if args.warmup > Duration::from_secs(120) {
                bail!("--warmup must be at most 2m");
            }
            let target = client::Target::from_args(&args.target)?;
            let op = match args.op {
                OpName::DescribeMitigationAction => run::Op::DescribeMitigationAction,
                OpName::DescribeCertificate => {
                    let id = args
                        .certificate_id
                        .clone()
                        .context("--op describe-certificate needs --certificate-id")?;
                    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                        bail!("--certificate-id must be 64 hex digits");
                    }
                    run::Op::DescribeCertificate(id)
                }
                OpName::ListCertificates => {
                    if !(1..=250).contains(&args.page_size) {
                        bail!("--page-size must be between 1 and 250");
                    }
                    run::Op::ListCertificates {
                        page_size: args.page_size,
                    }
                }
            };
            let config = run::RunConfig {
                op,
                connections: args.connections,
                duration: args.duration,
                warmup: args.warmup,
                max_requests: args.max_requests,
            };
            let report = runtime.block_on(run::run(target, config))?;
            report.print(args.json);
            if report.errors > 0 && !args.allow_errors {
                bail!("{} request(s) failed", report.errors);
            }
            Ok(())
        }
        Command::Fleet(args) => {
            let workers = args
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let spec = fleet::FleetSpec {
                things: args.things,
                first: args.first,
                cas: args.cas,
                expiring_cas: args.expiring_cas,
                policies: args.policies,
                expiring_per_mille: args.expiring_per_mille,
                crl_url_base: args.crl_url_base,
                cas_out: args.cas_out,
                account_id: args.account_id,
                region: args.region,
                workers,
            };
            fleet::generate(&args.out, &spec)
        }
        Command::RegisterCas(args) => {
            let target = client::Target::from_args(&args.target)?;
            runtime.block_on(audit::register_cas(&target, &args.file, args.concurrency))
        }
        Command::Audit(args) => {
            if !(1..=1000).contains(&args.rate) {
                bail!("--rate must be between 1 and 1000");
            }
            if args.timeout.is_zero() || args.timeout > Duration::from_secs(3600) {
                bail!("--timeout must be greater than 0 and at most 1 hour");
            }
            let target = client::Target::from_args(&args.target)?;
            let checks = if args.checks.is_empty() {
                audit::DEFAULT_CHECKS
                    .iter()
                    .map(|c| c.to_string())
                    .collect()
            } else {
                args.checks
            };
            let config = audit::AuditConfig {
                checks,
                role_arn: args.role_arn,
                rate: args.rate,
                timeout: args.timeout,
            };
            let report = runtime.block_on(audit::audit(&target, &config))?;
            report.print(args.json);
            if report.status != "COMPLETED" {
                bail!(
                    "audit task {} ended {}, not COMPLETED",
                    report.task_id,
                    report.status
                );
            }
            if report.errors > 0 && !args.allow_errors {
                bail!("{} DescribeAuditTask request(s) failed", report.errors);
            }
            Ok(())
        }
        Command::Mitigate(args) => {
            if !(1..=1000).contains(&args.rate) {
                bail!("--rate must be between 1 and 1000");
            }
            if args.timeout.is_zero() || args.timeout > Duration::from_secs(3600) {
                bail!("--timeout must be greater than 0 and at most 1 hour");
            }
            if args.progress_every < Duration::from_millis(100) {
                bail!("--progress-every must be at least 100ms");
            }
            for id in [&args.task_id, &args.audit_task_id].into_iter().flatten() {
                check_action_name(id).context("--task-id and --audit-task-id")?;
            }
            let target = client::Target::from_args(&args.target)?;
            let config = mitigate::MitigateConfig {
                audit_task_id: args.audit_task_id,
                check: args.check,
                action_name: args.target.name.clone(),
                role_arn: args.role_arn,
                task_id: args.task_id,
                rate: args.rate,
                timeout: args.timeout,
                progress_every: args.progress_every,
            };
            let report = runtime.block_on(mitigate::mitigate(&target, &config))?;
            report.print(args.json);
            if report.status != "COMPLETED" {
                bail!(
                    "mitigation task {} ended {}, not COMPLETED",
                    report.task_id,
                    report.status
                );
            }
            if report.poll.errors > 0 && !args.allow_errors {
                bail!(
                    "{} DescribeAuditMitigationActionsTask request(s) failed",
                    report.poll.errors
                );
            }
            Ok(())
        }
    }
}

fn mqtt_target(args: &MqttTargetArgs, devices: usize) -> Result<std::sync::Arc<mqtt::MqttTarget>> {
    mqtt::check_dir(&args.devices_dir)?;
    let limit = mqtt::raise_nofile()?;
    eprintln!("open-file limit: {limit}");
    let target = mqtt::MqttTarget::load(&mqtt::TargetOptions {
        host: args.host.clone(),
        ca_file: args.ca_file.clone(),
        sni: args.sni.clone(),
        devices_dir: args.devices_dir.clone(),
        devices: args.first_device.saturating_add(devices),
        keep_alive: args.keep_alive,
        client_prefix: args.client_prefix.clone(),
        connect_timeout: args.connect_timeout,
    })?;
    Ok(std::sync::Arc::new(target))
}

async fn run_mqtt(mode: MqttMode) -> Result<()> {
    match mode {
        MqttMode::Hold(args) => {
            if args.connections == 0 || args.connections > 100_000 {
                bail!("--connections must be between 1 and 100000");
            }
            if !(0.0..=100_000.0).contains(&args.rate) {
                bail!("--rate must be between 0 and 100000");
            }
            if args.hold > Duration::from_secs(3600) {
                bail!("--hold must be at most 1 hour");
            }
            let target = mqtt_target(&args.target, args.connections)?;
            let report = mqtt::hold(
                target,
                mqtt::HoldConfig {
                    connections: args.connections,
                    rate: args.rate,
                    max_inflight: args.max_inflight,
                    hold: args.hold,
                    ready_file: args.ready_file,
                    first_device: args.target.first_device,
                },
            )
            .await?;
            report.print(args.target.json);
            if (report.connected < report.attempted || report.open_at_end < report.connected)
                && !args.allow_errors
            {
                bail!(
                    "{} of {} connections failed, {} dropped while held",
                    report.attempted - report.connected,
                    report.attempted,
                    report.connected - report.open_at_end
                );
            }
            Ok(())
        }
        MqttMode::Publish(args) => {
            if args.pairs == 0 || args.pairs > 5_000 {
                bail!("--pairs must be between 1 and 5000");
            }
            if args.duration.is_zero() || args.duration > Duration::from_secs(600) {
                bail!("--duration must be greater than 0 and at most 10m");
            }
            if !(0.0..=10_000_000.0).contains(&args.rate) {
                bail!("--rate must be between 0 (max) and 10000000");
            }
            if !(16..=128 * 1024).contains(&args.payload) {
                bail!("--payload must be between 16 and 131072 bytes");
            }
            let target = mqtt_target(&args.target, 2 * args.pairs)?;
            let topic_prefix = args.topic_prefix.unwrap_or_else(|| {
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                format!("bench/{ms}")
            });
            let report = mqtt::publish(
                target,
                mqtt::PublishConfig {
                    pairs: args.pairs,
                    rate: args.rate,
                    payload: args.payload,
                    warmup: args.warmup,
                    duration: args.duration,
                    topic_prefix,
                    first_device: args.target.first_device,
                },
            )
            .await?;
            report.print(args.target.json);
            if report.received_in_window == 0 {
                bail!("no message was received in the measured window");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn action_names() {
        assert!(check_action_name("bench-action_1").is_ok());
        assert!(check_action_name("").is_err());
        assert!(check_action_name("bad name!").is_err());
        assert!(check_action_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from([
            "palisade-loadgen",
            "run",
            "--endpoint",
            "http://127.0.0.1:1",
            "--access-key",
            "AK",
            "--secret",
            "SK",
            "--duration",
            "5s",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Run(args) => {
                assert_eq!(args.connections, 64);
                assert_eq!(args.duration, Duration::from_secs(5));
                assert_eq!(args.warmup, Duration::from_secs(3));
                assert_eq!(args.target.region, "us-east-1");
                assert_eq!(args.target.name, "bench-action");
                assert!(args.json);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
