//! `palisade`: the self-hosted AWS IoT Device Defender Audit service.

mod config;
mod connections_cmd;
mod credentials_cmd;
mod crl_cmd;
mod fleet_cmd;
mod iam_cmd;
mod serve;
mod store;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: a request makes a few dozen small
/// allocations across hyper, SigV4, the engine and the store, and glibc's malloc and
/// free were about 7% of the server's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "Self-hosted AWS IoT Device Defender Audit"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Manage the access keys clients sign requests with.
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
    /// Work on the fleet registry in bulk.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// MQTT connection history from a broker Palisade does not front.
    Connections {
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// Certificate revocation lists for the revocation audit checks.
    Crl {
        #[command(subcommand)]
        command: CrlCommand,
    },
    /// IAM roles and Amazon Cognito identity pools for the role alias and Cognito checks.
    Iam {
        #[command(subcommand)]
        command: IamCommand,
    },
}

#[derive(Subcommand)]
enum IamCommand {
    /// Store the JSON the AWS CLI prints for `aws iam get-account-authorization-details`,
    /// `aws iam get-service-last-accessed-details` (with --role-arn), `aws
    /// cognito-identity list-identity-pools` and `get-identity-pool-roles`; each file is
    /// recognised by its shape, a re-import replaces what it covers, and a malformed file
    /// refuses the whole import. Prints a JSON summary.
    Import(iam_cmd::ImportArgs),
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Import policies, thing groups, things and certificates from a JSON Lines file
    /// (docs/IMPORT.md). Exits 2 if any line failed.
    Import(fleet_cmd::ImportArgs),
}

#[derive(Subcommand)]
enum ConnectionsCommand {
    /// Import connections (JSON Lines, docs/IMPORT.md) for the connection audit checks
    /// and GetThingConnectivityData. Exits 2 if any line failed.
    Import(connections_cmd::ImportArgs),
}

#[derive(Subcommand)]
enum CrlCommand {
    /// Store a CRL (DER or PEM) for the revocation checks to use beside, or without
    /// network reach instead of, the CRLs at distribution points; prints a JSON summary.
    Import(crl_cmd::ImportArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7420].
    #[arg(long, env = "PALISADE_LISTEN")]
    listen: Option<String>,
    /// Directory holding the database and the default credentials [default: ./palisade-data].
    #[arg(long, env = "PALISADE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The AWS region this server answers as [default: us-east-1].
    #[arg(long, env = "PALISADE_REGION")]
    region: Option<String>,
    /// Largest request body accepted, in bytes [default: 1048576].
    #[arg(long, env = "PALISADE_BODY_LIMIT")]
    body_limit: Option<usize>,
    /// Largest body of POST /palisade/import, in bytes [default: 67108864].
    #[arg(long, env = "PALISADE_IMPORT_BODY_LIMIT")]
    import_body_limit: Option<usize>,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM [default: 3].
    #[arg(long, env = "PALISADE_SHUTDOWN_GRACE_SECS")]
    shutdown_grace_secs: Option<u64>,
    /// TOML config file (keys: the long names of these flags, e.g. listen, data-dir, scheduled-audit-time).
    #[arg(long, env = "PALISADE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    database: config::DatabaseArgs,
    #[command(flatten)]
    audit: config::AuditArgs,
    #[command(flatten)]
    mqtt: config::MqttArgs,
    /// Log format.
    #[arg(long, env = "PALISADE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(clap::Args)]
struct StoreArgs {
    /// Data directory of the server [default: ./palisade-data].
    #[arg(long, env = "PALISADE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    database: config::DatabaseArgs,
    /// TOML config file (only its data-dir and database keys are used here).
    #[arg(long, env = "PALISADE_CONFIG")]
    config: Option<PathBuf>,
}

impl StoreArgs {
    fn choice(&self) -> Result<config::StoreChoice> {
        let file = config::FileConfig::load(self.config.as_deref())?;
        let data_dir = config::data_dir(self.data_dir.clone().or(file.data_dir.clone()));
        config::StoreChoice::resolve(&data_dir, &self.database, &file)
    }
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// Create an access key for an account and print it as JSON.
    Create {
        /// The 12-digit account id the key acts for.
        #[arg(long)]
        account_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List access keys (without their secrets), one JSON object per line.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete an access key.
    Delete {
        access_key_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<fleet_cmd::LinesFailed>() => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Credentials { command } => match command {
            CredentialsCommand::Create { account_id, store } => {
                credentials_cmd::create(&store.choice()?, &account_id).await
            }
            CredentialsCommand::List { store } => credentials_cmd::list(&store.choice()?).await,
            CredentialsCommand::Delete {
                access_key_id,
                store,
            } => credentials_cmd::delete(&store.choice()?, &access_key_id).await,
        },
        Command::Fleet { command } => match command {
            FleetCommand::Import(args) => fleet_cmd::import(args).await,
        },
        Command::Connections { command } => match command {
            ConnectionsCommand::Import(args) => connections_cmd::import(args).await,
        },
        Command::Crl { command } => match command {
            CrlCommand::Import(args) => crl_cmd::import(args).await,
        },
        Command::Iam { command } => match command {
            IamCommand::Import(args) => iam_cmd::import(args).await,
        },
    }
}
