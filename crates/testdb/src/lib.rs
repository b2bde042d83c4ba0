//! Fresh, throwaway PostgreSQL databases for tests.
//!
//! [`TestDatabase::create`] makes a new database with a random name on the server at
//! `PALISADE_TEST_DATABASE_URL` (default [`DEFAULT_ADMIN_URL`]) and drops it again
//! when the `TestDatabase` is dropped. A server that cannot be reached is a test
//! failure with instructions, never a silent skip.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_postgres::NoTls;

use palisade_store::{PostgresOptions, PostgresStore};

/// The environment variable naming the administrative connection URL.
pub const ADMIN_URL_VAR: &str = "PALISADE_TEST_DATABASE_URL";

/// Where tests look for PostgreSQL unless [`ADMIN_URL_VAR`] says otherwise.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long creating or dropping a test database may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A database of its own for one test, dropped (with any connections still open to it)
/// when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// Connection URL of the fresh database.
    pub url: String,
    /// Its name, `palisade_test_<16 hex digits>`.
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database.
    ///
    /// # Panics
    ///
    /// If PostgreSQL is not reachable at the admin URL, or refuses to create the
    /// database; the message says how to start the local server.
    pub async fn create() -> TestDatabase {
        let admin_url = admin_url();
        let name = format!("palisade_test_{:016x}", rand::random::<u64>());
        let admin = admin_connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url}: {e}. Start it with: \
                 pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
                 (or set {ADMIN_URL_VAR})"
            )
        });
        let create = format!("CREATE DATABASE \"{name}\"");
        match tokio::time::timeout(ADMIN_TIMEOUT, admin.batch_execute(&create)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!(
                "cannot create test database {name} at {admin_url}: {}",
                describe(&e)
            ),
            Err(_) => panic!("creating test database {name} at {admin_url} timed out"),
        }
        TestDatabase {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// This database's connection string, pointed at a [`TcpProxy`] on `port`.
    pub fn url_via(&self, port: u16) -> String {
        via(&self.url, port)
    }

    /// A store on this database with default options.
    ///
    /// # Panics
    ///
    /// If connecting or migrating fails.
    pub async fn connect(&self) -> PostgresStore {
        self.connect_with(PostgresOptions::default()).await
    }

    /// A store on this database with the given options.
    ///
    /// # Panics
    ///
    /// If connecting or migrating fails.
    pub async fn connect_with(&self, opts: PostgresOptions) -> PostgresStore {
        PostgresStore::connect(&self.url, opts)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.name))
    }

    /// A plain tokio-postgres client on this database, for inspecting or tampering
    /// with it directly. The connection is driven by a spawned task.
    ///
    /// # Panics
    ///
    /// If connecting fails.
    pub async fn raw_client(&self) -> tokio_postgres::Client {
        admin_connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run on an async worker (or while one is shutting down), where
        // blocking on the runtime is not allowed: drop the database from a thread of
        // its own with a small runtime, and wait for it so the test process does not
        // exit first.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropper = std::thread::Builder::new()
            .name("drop-test-database".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => return Err(format!("cannot start a runtime: {e}")),
                };
                runtime.block_on(async {
                    let admin = admin_connect(&admin_url).await?;
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    match tokio::time::timeout(ADMIN_TIMEOUT, admin.batch_execute(&drop)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(describe(&e)),
                        Err(_) => Err("timed out".to_owned()),
                    }
                })
            });
        let result = match dropper {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|_| Err("the dropping thread panicked".to_owned())),
            Err(e) => Err(format!("cannot spawn a thread: {e}")),
        };
        if let Err(e) = result {
            // Never panic in drop (it may run during a panic); a leftover database is
            // only litter.
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

fn admin_url() -> String {
    std::env::var(ADMIN_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// Connects with a bounded wait and drives the connection on a spawned task.
async fn admin_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    config.connect_timeout(Duration::from_secs(5));
    let connecting = tokio::time::timeout(Duration::from_secs(10), config.connect(NoTls));
    let (client, connection) = match connecting.await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(describe(&e)),
        Err(_) => return Err("timed out connecting".to_owned()),
    };
    tokio::spawn(async move {
        // Errors surface on the client's next call; nothing to do here.
        let _ = connection.await;
    });
    Ok(client)
}

fn describe(e: &tokio_postgres::Error) -> String {
    palisade_store::describe_postgres_error(e)
}

/// `url` with its database replaced by `db`: the path of a `postgres://` URL, or a
/// trailing `dbname=` in a `key=value` connection string (the last one wins).
fn with_database(url: &str, db: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={db}");
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let authority = &before_query[..before_query.find('/').unwrap_or(before_query.len())];
    format!("{}{authority}/{db}{query}", &url[..rest_start])
}

/// Where the test server listens (from `PALISADE_TEST_DATABASE_URL`, if it names a
/// TCP host), for the proxy to forward to.
fn upstream() -> SocketAddr {
    let url = std::env::var(ADMIN_URL_VAR).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    let config: tokio_postgres::Config = url.parse().expect("admin url");
    let host = config.get_hosts().iter().find_map(|host| match host {
        tokio_postgres::config::Host::Tcp(name) => Some(name.clone()),
        #[allow(unreachable_patterns)]
        _ => None,
    });
    let host = match host.as_deref() {
        None | Some("localhost") => "127.0.0.1".to_owned(),
        Some(host) => host.to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}").parse().expect("upstream address")
}

/// A connection string for `url`'s database, pointed at a proxy on `port`.
fn via(url: &str, port: u16) -> String {
    let config: tokio_postgres::Config = url.parse().expect("test database url");
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut conn = format!(
        "host=127.0.0.1 port={port} dbname={}",
        quote(config.get_dbname().expect("dbname"))
    );
    if let Some(user) = config.get_user() {
        conn.push_str(&format!(" user={}", quote(user)));
    }
    if let Some(password) = config.get_password() {
        conn.push_str(&format!(
            " password={}",
            quote(&String::from_utf8_lossy(password))
        ));
    }
    conn
}

/// A TCP proxy in front of the test server that can be cut (listener and every
/// forwarded connection closed) or frozen (everything left open, nothing forwarded).
pub struct TcpProxy {
    port: u16,
    accept: JoinHandle<()>,
    frozen: watch::Sender<bool>,
}

impl TcpProxy {
    /// Listens on `port` (0 for any) of 127.0.0.1 and forwards to the test server.
    pub async fn start(port: u16) -> TcpProxy {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream();
        let (frozen, watching) = watch::channel(false);
        let accept = tokio::spawn(async move {
            // Dropping this task (on cut) drops the set, which aborts every forwarder
            // and so closes both ends of every forwarded connection.
            let mut forwarders = JoinSet::new();
            let mut freeze = watching.clone();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        forwarders.spawn(forward(client, upstream, watching.clone()));
                    }
                    _ = async { let _ = freeze.wait_for(|f| *f).await; } => {
                        // Stop accepting but keep listening: connects complete in the
                        // kernel and are then never answered.
                        std::future::pending::<()>().await;
                    }
                }
            }
        });
        TcpProxy {
            port,
            accept,
            frozen,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Keeps every connection open but forwards nothing more (a hung host).
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Closes the listener and every forwarded connection, and waits until they are.
    pub async fn cut(&mut self) {
        self.accept.abort();
        let _ = (&mut self.accept).await;
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut frozen: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = async { let _ = frozen.wait_for(|f| *f).await; } => {
            // Hold both ends open and silent until the proxy is cut.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_urls_and_strings() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "t1"),
            "postgresql://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:1", "t1"),
            "postgres://u@h:1/t1"
        );
        assert_eq!(
            with_database("host=h user=u", "t1"),
            "host=h user=u dbname=t1"
        );
    }
}
