//! Server settings: command-line flags win over environment variables, which win over
//! the TOML config file, which wins over the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::{Context, Result};
use palisade_store::PostgresOptions;
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7420";
pub const DEFAULT_DATA_DIR: &str = "./palisade-data";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_ACCOUNT: &str = "000000000000";
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
pub const DEFAULT_IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 3;

/// The config file's keys; every one is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub region: Option<String>,
    pub body_limit: Option<usize>,
    pub import_body_limit: Option<usize>,
    pub shutdown_grace_secs: Option<u64>,
    pub default_account_id: Option<String>,
    pub database_url: Option<String>,
    pub database_max_connections: Option<usize>,
    pub database_connect_timeout_ms: Option<u64>,
    pub database_acquire_timeout_ms: Option<u64>,
    pub database_statement_timeout_ms: Option<u64>,
    pub scheduled_audit_time: Option<String>,
    pub sns_endpoint_url: Option<String>,
    pub sns_access_key_id: Option<String>,
    pub sns_secret_access_key: Option<String>,
    pub iam_endpoint_url: Option<String>,
    pub iam_access_key_id: Option<String>,
    pub iam_secret_access_key: Option<String>,
    pub cognito_endpoint_url: Option<String>,
    pub cognito_access_key_id: Option<String>,
    pub cognito_secret_access_key: Option<String>,
    pub crl_fetch: Option<bool>,
    pub crl_fetch_timeout_ms: Option<u64>,
    pub audit_work_lease_ms: Option<u64>,
    pub mqtt_listen: Option<String>,
    pub mqtt_tls_cert: Option<PathBuf>,
    pub mqtt_tls_key: Option<PathBuf>,
    pub mqtt_public_endpoint: Option<String>,
    pub mqtt_backend: Option<String>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// Where the data lives: the data dir's SQLite file unless a PostgreSQL URL is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    Sqlite(PathBuf),
    Postgres {
        url: String,
        options: PostgresOptions,
    },
}

/// Storage options given on the command line or in the environment (clap reads both);
/// shared by `serve` and `credentials`.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL (postgres://user@host:port/db); without it the data dir's SQLite is used.
    #[arg(long, env = "PALISADE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most PostgreSQL connections per process [default: 16].
    #[arg(long, env = "PALISADE_DATABASE_MAX_CONNECTIONS")]
    pub database_max_connections: Option<usize>,
    /// How long opening a PostgreSQL connection may take, in ms [default: 5000].
    #[arg(long, env = "PALISADE_DATABASE_CONNECT_TIMEOUT_MS")]
    pub database_connect_timeout_ms: Option<u64>,
    /// How long a request waits for a free pooled connection, in ms [default: 2000].
    #[arg(long, env = "PALISADE_DATABASE_ACQUIRE_TIMEOUT_MS")]
    pub database_acquire_timeout_ms: Option<u64>,
    /// PostgreSQL statement timeout, in ms [default: 10000].
    #[arg(long, env = "PALISADE_DATABASE_STATEMENT_TIMEOUT_MS")]
    pub database_statement_timeout_ms: Option<u64>,
}

/// Device gateway settings given on the command line or in the environment.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct MqttArgs {
    /// Address of the device gateway (MQTT over TLS), or `off` [default: 127.0.0.1:8883].
    #[arg(long, env = "PALISADE_MQTT_LISTEN")]
    pub mqtt_listen: Option<String>,
    /// The gateway's server certificate chain, PEM, server certificate first [default: one
    /// made on first start under a gateway CA kept in the database, whose certificate is
    /// written to <data-dir>/mqtt-ca.pem].
    #[arg(long, env = "PALISADE_MQTT_TLS_CERT")]
    pub mqtt_tls_cert: Option<PathBuf>,
    /// The private key of --mqtt-tls-cert, PEM.
    #[arg(long, env = "PALISADE_MQTT_TLS_KEY")]
    pub mqtt_tls_key: Option<PathBuf>,
    /// The address DescribeEndpoint answers (HOST or HOST:PORT) [default: the gateway's
    /// listen address, without the port when it is 8883].
    #[arg(long, env = "PALISADE_MQTT_PUBLIC_ENDPOINT")]
    pub mqtt_public_endpoint: Option<String>,
    /// An MQTT broker (HOST:PORT, plain MQTT) the gateway routes messages through: Mosquitto,
    /// or an EMQX or VerneMQ cluster [default: a broker embedded in palisade].
    #[arg(long, env = "PALISADE_MQTT_BACKEND")]
    pub mqtt_backend: Option<String>,
}

/// The device gateway, resolved.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub listen: SocketAddr,
    /// (chain, key) PEM files, when given.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub public_endpoint: Option<String>,
    pub backend: Option<SocketAddr>,
}

pub const DEFAULT_MQTT_LISTEN: &str = "127.0.0.1:8883";

impl MqttArgs {
    /// `None` when the gateway is off.
    pub fn resolve(&self, file: &FileConfig) -> Result<Option<MqttSettings>> {
        let listen = self
            .mqtt_listen
            .clone()
            .or(file.mqtt_listen.clone())
            .unwrap_or_else(|| DEFAULT_MQTT_LISTEN.to_owned());
        if listen.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let listen: SocketAddr = listen.parse().with_context(|| {
            format!("mqtt-listen '{listen}' is not HOST:PORT with an IP host, nor 'off'")
        })?;
        let cert = self.mqtt_tls_cert.clone().or(file.mqtt_tls_cert.clone());
        let key = self.mqtt_tls_key.clone().or(file.mqtt_tls_key.clone());
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!("mqtt-tls-cert and mqtt-tls-key go together: give both or neither"),
        };
        let backend = match self.mqtt_backend.clone().or(file.mqtt_backend.clone()) {
            None => None,
            Some(b) => Some(
                resolve_host_port(&b)
                    .with_context(|| format!("mqtt-backend '{b}' is not a reachable HOST:PORT"))?,
            ),
        };
        Ok(Some(MqttSettings {
            listen,
            tls,
            public_endpoint: self
                .mqtt_public_endpoint
                .clone()
                .or(file.mqtt_public_endpoint.clone()),
            backend,
        }))
    }
}

fn resolve_host_port(text: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("no address"))
}

impl MqttSettings {
    /// What DescribeEndpoint answers: the public endpoint when given, else the listen
    /// address, without the port when it is MQTT's TLS port.
    pub fn endpoint_address(&self, bound: SocketAddr) -> String {
        if let Some(e) = &self.public_endpoint {
            return e.clone();
        }
        let host = match bound.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        if bound.port() == 8883 {
            host
        } else {
            format!("{host}:{}", bound.port())
        }
    }
}

/// Audit settings given on the command line or in the environment.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct AuditArgs {
    /// Time of day (HH:MM, UTC) at which scheduled audits start [default: 00:00].
    #[arg(long, env = "PALISADE_SCHEDULED_AUDIT_TIME")]
    pub scheduled_audit_time: Option<String>,
    /// SNS endpoint for audit notifications and PUBLISH_FINDING_TO_SNS [default: the AWS
    /// endpoint of the topic's region].
    #[arg(long, env = "PALISADE_SNS_ENDPOINT_URL")]
    pub sns_endpoint_url: Option<String>,
    /// Access key id Palisade signs SNS requests with.
    #[arg(long, env = "PALISADE_SNS_ACCESS_KEY_ID")]
    pub sns_access_key_id: Option<String>,
    /// Secret access key Palisade signs SNS requests with.
    #[arg(long, env = "PALISADE_SNS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub sns_secret_access_key: Option<String>,
    /// IAM endpoint the role alias checks read roles from, when an access key is given
    /// [default: AWS's].
    #[arg(long, env = "PALISADE_IAM_ENDPOINT_URL")]
    pub iam_endpoint_url: Option<String>,
    /// Access key id Palisade signs IAM requests with; without it, IAM data comes only
    /// from `palisade iam import`.
    #[arg(long, env = "PALISADE_IAM_ACCESS_KEY_ID")]
    pub iam_access_key_id: Option<String>,
    /// Secret access key Palisade signs IAM requests with.
    #[arg(long, env = "PALISADE_IAM_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub iam_secret_access_key: Option<String>,
    /// Amazon Cognito endpoint the Cognito checks read identity pools from, when an access
    /// key is given [default: AWS's, in the server's region].
    #[arg(long, env = "PALISADE_COGNITO_ENDPOINT_URL")]
    pub cognito_endpoint_url: Option<String>,
    /// Access key id Palisade signs Cognito requests with; without it, identity pools
    /// come only from `palisade iam import`.
    #[arg(long, env = "PALISADE_COGNITO_ACCESS_KEY_ID")]
    pub cognito_access_key_id: Option<String>,
    /// Secret access key Palisade signs Cognito requests with.
    #[arg(
        long,
        env = "PALISADE_COGNITO_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub cognito_secret_access_key: Option<String>,
    /// Fetch CRLs from certificates' distribution points for the revocation checks
    /// [default: true].
    #[arg(long, env = "PALISADE_CRL_FETCH")]
    pub crl_fetch: Option<bool>,
    /// How long one CRL download may take, in ms [default: 5000].
    #[arg(long, env = "PALISADE_CRL_FETCH_TIMEOUT_MS")]
    pub crl_fetch_timeout_ms: Option<u64>,
    /// How long a worker's claim on an audit task lasts, in ms: after a crash the task
    /// resumes once it lapses [default: 60000]. Hidden: tests shorten it.
    #[arg(long, env = "PALISADE_AUDIT_WORK_LEASE_MS", hide = true)]
    pub audit_work_lease_ms: Option<u64>,
}

impl AuditArgs {
    pub fn resolve(&self, file: &FileConfig) -> Result<palisade_engine::AuditSettings> {
        let defaults = palisade_engine::AuditSettings::default();
        let time = self
            .scheduled_audit_time
            .clone()
            .or(file.scheduled_audit_time.clone());
        let scheduled_audit_time_s = match time {
            Some(t) => parse_time_of_day(&t)?,
            None => defaults.scheduled_audit_time_s,
        };
        let work_lease = self
            .audit_work_lease_ms
            .or(file.audit_work_lease_ms)
            .map_or(defaults.work_lease, Duration::from_millis);
        // Renewal runs at a quarter of the lease; below this it would hammer the store.
        anyhow::ensure!(
            work_lease >= Duration::from_millis(400),
            "audit-work-lease-ms must be at least 400"
        );
        Ok(palisade_engine::AuditSettings {
            work_lease,
            scheduled_audit_time_s,
            sns: palisade_engine::SnsSettings {
                endpoint_url: self
                    .sns_endpoint_url
                    .clone()
                    .or(file.sns_endpoint_url.clone()),
                access_key_id: self
                    .sns_access_key_id
                    .clone()
                    .or(file.sns_access_key_id.clone()),
                secret_access_key: self
                    .sns_secret_access_key
                    .clone()
                    .or(file.sns_secret_access_key.clone()),
            },
            iam: source(
                "iam",
                [&self.iam_endpoint_url, &file.iam_endpoint_url],
                [&self.iam_access_key_id, &file.iam_access_key_id],
                [&self.iam_secret_access_key, &file.iam_secret_access_key],
            )?,
            cognito: source(
                "cognito",
                [&self.cognito_endpoint_url, &file.cognito_endpoint_url],
                [&self.cognito_access_key_id, &file.cognito_access_key_id],
                [
                    &self.cognito_secret_access_key,
                    &file.cognito_secret_access_key,
                ],
            )?,
            crl: palisade_engine::CrlSettings {
                fetch: self
                    .crl_fetch
                    .or(file.crl_fetch)
                    .unwrap_or(defaults.crl.fetch),
                fetch_timeout: self
                    .crl_fetch_timeout_ms
                    .or(file.crl_fetch_timeout_ms)
                    .map(Duration::from_millis)
                    .unwrap_or(defaults.crl.fetch_timeout),
            },
        })
    }
}

/// A live IAM or Cognito source: on when an access key id and secret are given (the
/// command line or environment first, then the config file), an error when only one is.
fn source(
    name: &str,
    endpoint: [&Option<String>; 2],
    key: [&Option<String>; 2],
    secret: [&Option<String>; 2],
) -> Result<Option<palisade_iam_source::SourceSettings>> {
    let first = |pair: [&Option<String>; 2]| pair[0].clone().or(pair[1].clone());
    match (first(key), first(secret)) {
        (Some(access_key_id), Some(secret_access_key)) => {
            Ok(Some(palisade_iam_source::SourceSettings {
                endpoint_url: first(endpoint),
                access_key_id,
                secret_access_key,
            }))
        }
        (None, None) => Ok(None),
        _ => anyhow::bail!("--{name}-access-key-id and --{name}-secret-access-key go together"),
    }
}

/// `HH:MM` (UTC) as seconds after midnight.
fn parse_time_of_day(text: &str) -> Result<u32> {
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && text.len() == 5).then_some(h * 3600 + m * 60)
    });
    parsed.with_context(|| format!("scheduled audit time '{text}' is not HH:MM (UTC)"))
}

impl StoreChoice {
    pub fn resolve(data_dir: &Path, given: &DatabaseArgs, file: &FileConfig) -> Result<Self> {
        let Some(url) = given
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
        else {
            return Ok(Self::Sqlite(data_dir.join("palisade.db")));
        };
        anyhow::ensure!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "database URL must start with postgres:// or postgresql://"
        );
        let ms =
            |g: Option<u64>, f: Option<u64>, d: Duration| g.or(f).map_or(d, Duration::from_millis);
        let defaults = PostgresOptions::default();
        let options = PostgresOptions {
            max_connections: given
                .database_max_connections
                .or(file.database_max_connections)
                .unwrap_or(defaults.max_connections),
            connect_timeout: ms(
                given.database_connect_timeout_ms,
                file.database_connect_timeout_ms,
                defaults.connect_timeout,
            ),
            acquire_timeout: ms(
                given.database_acquire_timeout_ms,
                file.database_acquire_timeout_ms,
                defaults.acquire_timeout,
            ),
            statement_timeout: ms(
                given.database_statement_timeout_ms,
                file.database_statement_timeout_ms,
                defaults.statement_timeout,
            ),
        };
        anyhow::ensure!(
            options.max_connections >= 1,
            "database-max-connections must be at least 1"
        );
        Ok(Self::Postgres { url, options })
    }

    /// For logs: never the URL itself, which may carry a password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite:{}", path.display()),
            Self::Postgres { .. } => "postgres".to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreChoice,
    pub region: String,
    pub body_limit: usize,
    pub import_body_limit: usize,
    pub shutdown_grace: std::time::Duration,
    pub default_account_id: String,
    pub audit: palisade_engine::AuditSettings,
}

/// Values given on the command line or in the environment (clap reads both).
#[derive(Debug, Default)]
pub struct Given {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub region: Option<String>,
    pub body_limit: Option<usize>,
    pub import_body_limit: Option<usize>,
    pub shutdown_grace_secs: Option<u64>,
}

impl ServeConfig {
    pub fn resolve(
        given: Given,
        database: &DatabaseArgs,
        audit: &AuditArgs,
        file: FileConfig,
    ) -> Result<Self> {
        let audit = audit.resolve(&file)?;
        let data_dir = data_dir(given.data_dir.clone().or(file.data_dir.clone()));
        let store = StoreChoice::resolve(&data_dir, database, &file)?;
        let listen = given
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen.parse().with_context(|| {
            format!("listen address '{listen}' is not HOST:PORT with an IP host")
        })?;
        let region = given
            .region
            .or(file.region)
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        validate_region(&region)?;
        let default_account_id = file
            .default_account_id
            .clone()
            .unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned());
        palisade_engine::credentials::validate_account_id(&default_account_id)
            .map_err(anyhow::Error::msg)?;
        Ok(Self {
            listen,
            store,
            data_dir,
            region,
            body_limit: given
                .body_limit
                .or(file.body_limit)
                .unwrap_or(DEFAULT_BODY_LIMIT),
            import_body_limit: given
                .import_body_limit
                .or(file.import_body_limit)
                .unwrap_or(DEFAULT_IMPORT_BODY_LIMIT),
            shutdown_grace: std::time::Duration::from_secs(
                given
                    .shutdown_grace_secs
                    .or(file.shutdown_grace_secs)
                    .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
            ),
            default_account_id,
            audit,
        })
    }
}

pub fn data_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

pub fn validate_region(region: &str) -> Result<()> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    anyhow::ensure!(ok, "region '{region}' is not a region name like us-east-1");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_in() {
        let file: FileConfig =
            toml::from_str("listen = \"127.0.0.1:9000\"\nregion = \"eu-west-1\"\n").unwrap();
        let c = ServeConfig::resolve(
            Given {
                region: Some("ap-south-1".into()),
                ..Given::default()
            },
            &DatabaseArgs::default(),
            &AuditArgs::default(),
            file,
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.region, "ap-south-1");
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.body_limit, DEFAULT_BODY_LIMIT);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(ServeConfig::resolve(
            Given {
                listen: Some("nope".into()),
                ..Given::default()
            },
            &DatabaseArgs::default(),
            &AuditArgs::default(),
            FileConfig::default()
        )
        .is_err());
        assert!(ServeConfig::resolve(
            Given {
                region: Some("US EAST".into()),
                ..Given::default()
            },
            &DatabaseArgs::default(),
            &AuditArgs::default(),
            FileConfig::default()
        )
        .is_err());
        assert!(toml::from_str::<FileConfig>("unknown = 1").is_err());
        for bad in ["3:00", "24:00", "12:60", "noon"] {
            assert!(parse_time_of_day(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_time_of_day("03:30").unwrap(), 3 * 3600 + 1800);
    }

    #[test]
    fn audit_work_lease_from_flag_or_file_and_bounded() {
        let lease = |flag: Option<u64>, file: &str| {
            let args = AuditArgs {
                audit_work_lease_ms: flag,
                ..AuditArgs::default()
            };
            args.resolve(&toml::from_str(file).unwrap())
                .map(|s| s.work_lease)
        };
        assert_eq!(lease(None, "").unwrap(), Duration::from_secs(60));
        assert_eq!(
            lease(None, "audit-work-lease-ms = 5000").unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            lease(Some(2000), "audit-work-lease-ms = 5000").unwrap(),
            Duration::from_secs(2)
        );
        assert!(lease(Some(399), "").is_err());
    }

    #[test]
    fn database_url_selects_postgres_with_options() {
        let dir = PathBuf::from("/data");
        let file: FileConfig = toml::from_str(
            "database-url = \"postgres://file@h/db\"\ndatabase-max-connections = 4\ndatabase-acquire-timeout-ms = 250\n",
        )
        .unwrap();
        let given = DatabaseArgs {
            database_url: Some("postgres://flag@h/db".into()),
            ..DatabaseArgs::default()
        };
        let StoreChoice::Postgres { url, options } =
            StoreChoice::resolve(&dir, &given, &file).unwrap()
        else {
            panic!("expected postgres")
        };
        assert_eq!(url, "postgres://flag@h/db");
        assert_eq!(options.max_connections, 4);
        assert_eq!(options.acquire_timeout, Duration::from_millis(250));
        assert_eq!(
            options.connect_timeout,
            PostgresOptions::default().connect_timeout
        );
        assert_eq!(
            StoreChoice::resolve(&dir, &DatabaseArgs::default(), &FileConfig::default()).unwrap(),
            StoreChoice::Sqlite(dir.join("palisade.db"))
        );
        let bad = DatabaseArgs {
            database_url: Some("mysql://x".into()),
            ..DatabaseArgs::default()
        };
        assert!(StoreChoice::resolve(&dir, &bad, &FileConfig::default()).is_err());
    }
}
