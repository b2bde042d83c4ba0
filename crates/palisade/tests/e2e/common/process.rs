//! The `palisade` binary: `serve` as a child process, and the `credentials` commands.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::raw::{self, RawRequest};

pub const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A `palisade serve` child process. Killed (SIGKILL) when dropped if still running.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub endpoint: String,
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `palisade serve` on a free port and waits until `/healthz` answers 200.
    /// `data_dir` should sit inside a tempdir: the server's log is written beside it.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[]).await
    }

    /// Like [`start`](Self::start), with extra `serve` arguments (e.g. `--database-url`).
    pub async fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        // A port picked by binding :0 may be taken again before the child binds it;
        // retry a few times rather than flake.
        for attempt in 0..3 {
            let mut server = Self::spawn(data_dir, extra, attempt);
            if server.wait_healthy().await {
                return server;
            }
            let log = server.log_text();
            assert!(
                log.contains("binding"),
                "palisade serve did not become healthy; its log:\n{log}"
            );
        }
        panic!("palisade serve could not bind a free port in 3 attempts");
    }

    fn spawn(data_dir: &Path, extra: &[&str], attempt: usize) -> Self {
        let addr = free_port();
        // Next to the data dir (tests keep it inside a tempdir), so the data dir holds
        // only what the server writes.
        let log = data_dir
            .parent()
            .expect("data dir has a parent")
            .join(format!("serve-{}-{attempt}.log", addr.port()));
        // The device gateway on a port of its own too, unless the test picks one (its
        // default, 8883, would be shared by every server the tests start at once).
        let gateway: &[&str] = if extra.contains(&"--mqtt-listen") {
            &[]
        } else {
            &["--mqtt-listen", "127.0.0.1:0"]
        };
        let child = Command::new(BIN)
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(data_dir)
            .args(gateway)
            .args(extra)
            .env_remove("PALISADE_CONFIG")
            .env("PALISADE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("spawning palisade serve");
        Self {
            child,
            addr,
            endpoint: format!("http://{addr}"),
            data_dir: data_dir.to_owned(),
            log,
        }
    }

    /// Polls `/healthz`; false if the process exits or the deadline passes first.
    async fn wait_healthy(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.child.try_wait().expect("try_wait").is_some() {
                return false;
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                let resp = raw::send(self.addr, RawRequest::get("/healthz")).await;
                if resp.status == 200 {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }

    /// SIGTERM: asks for a graceful shutdown.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An address on localhost no one listened on a moment ago.
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    l.local_addr().expect("local addr")
}

/// Runs `palisade <args>` to completion.
pub fn palisade(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PALISADE_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("running palisade")
}

/// `palisade credentials <args> --data-dir DIR`.
pub fn credentials_cmd(data_dir: &Path, args: &[&str]) -> Output {
    let dir = data_dir.to_str().expect("UTF-8 tempdir path");
    let mut all = vec!["credentials"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", dir]);
    palisade(&all)
}

/// Asserts the command succeeded and returns its stdout.
#[track_caller]
pub fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "palisade failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout")
}

/// A key pair as read from a credentials file or printed by `credentials create`.
#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: Option<String>,
}

/// Parses the `[palisade]` profile of an AWS shared-credentials file.
pub fn read_profile(path: &Path, profile: &str) -> Keys {
    let text = std::fs::read_to_string(path).expect("reading credentials file");
    let header = format!("[{profile}]");
    let mut in_profile = false;
    let (mut id, mut secret) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_profile = line == header;
        } else if let (true, Some((k, v))) = (in_profile, line.split_once('=')) {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_owned()),
                "aws_secret_access_key" => secret = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    Keys {
        access_key_id: id.unwrap_or_else(|| panic!("no aws_access_key_id in {profile}: {text}")),
        secret_access_key: secret
            .unwrap_or_else(|| panic!("no aws_secret_access_key in {profile}: {text}")),
        account_id: None,
    }
}

/// Parses the JSON line `palisade credentials create` prints.
pub fn parse_created(stdout: &str) -> Keys {
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("credentials create printed non-JSON ({e}): {stdout:?}"));
    let field = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("no {k} in {v}"))
            .to_owned()
    };
    Keys {
        access_key_id: field("accessKeyId"),
        secret_access_key: field("secretAccessKey"),
        account_id: Some(field("accountId")),
    }
}

/// `palisade fleet import` of `file` into `account`, straight into the database of
/// `data` (or `db_args`' PostgreSQL).
pub fn fleet_import(file: &Path, account: &str, data: &Path, db_args: &[&str]) {
    let out = Command::new(BIN)
        .args(["fleet", "import"])
        .arg(file)
        .args(["--account-id", account, "--data-dir"])
        .arg(data)
        .args(db_args)
        .env_remove("PALISADE_DATA_DIR")
        .env_remove("PALISADE_DATABASE_URL")
        .env_remove("PALISADE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("running palisade fleet import");
    assert!(
        out.status.success(),
        "fleet import failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
