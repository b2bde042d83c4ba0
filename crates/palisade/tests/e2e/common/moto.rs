//! A real SNS (and SQS) on loopback for the tests that publish: moto, the Python AWS
//! mock from PyPI, in server mode.
//!
//! The first test that needs it creates a venv with `moto[server]` under the target
//! directory (`target/test-venv`, about 40 s once; reused after that). Creation is
//! guarded by an exclusive lock on `target/test-venv.lock`, so test threads and
//! concurrent test processes wait for one installer instead of racing. Each [`Moto`]
//! runs its own `moto_server` on a free 127.0.0.1 port (so tests share no state) and
//! kills it when dropped.
//!
//! Tests talk to moto (create topics and queues, subscribe, read messages) through boto3,
//! which moto installs, by running small Python snippets in the venv: that costs the
//! test build nothing, where an SQS SDK crate would add minutes of compilation.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// What the venv installs. Bounded above so a new major version cannot change the
/// tests' ground under them unannounced.
const MOTO_REQUIREMENT: &str = "moto[server]>=5.1,<6";
/// The account moto puts every resource in, whatever the credentials.
pub const MOTO_ACCOUNT: &str = "123456789012";
/// Any key works with moto; these are what Palisade signs its SNS requests with.
pub const MOTO_ACCESS_KEY_ID: &str = "testing";
pub const MOTO_SECRET_ACCESS_KEY: &str = "testing";
const MOTO_REGION: &str = "us-east-1";

/// The target directory of this test build (`.../target`), from the test binary's own
/// path (`target/debug/deps/e2e-<hash>`), so `CARGO_TARGET_DIR` is honoured.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("test binary lives in <target>/<profile>/deps")
}

/// The venv's directory, created with moto in it on first use.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let dir = target_dir().join("test-venv");
        ensure_venv(&dir);
        dir
    })
}

fn venv_python() -> PathBuf {
    venv().join("bin").join("python")
}

fn ensure_venv(dir: &Path) {
    let marker = dir.join(".palisade-moto");
    let ready = || fs::read_to_string(&marker).is_ok_and(|m| m == MOTO_REQUIREMENT);
    if ready() {
        return;
    }
    let lock_path = dir.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", lock_path.display()));
    // Released when `lock` drops (or the process dies), so a crashed installer never
    // blocks the next one.
    File::lock(&lock).unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
    if ready() {
        return;
    }
    let started = Instant::now();
    eprintln!(
        "moto: creating {} with {MOTO_REQUIREMENT} (once; about a minute)",
        dir.display()
    );
    // A half-made venv from an interrupted run is started over.
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap_or_else(|e| panic!("removing {}: {e}", dir.display()));
    }
    run(Command::new("python3").arg("-m").arg("venv").arg(dir));
    run(Command::new(dir.join("bin").join("python")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        MOTO_REQUIREMENT,
    ]));
    let mut f = File::create(&marker).expect("venv marker");
    f.write_all(MOTO_REQUIREMENT.as_bytes())
        .expect("writing the venv marker");
    eprintln!("moto: venv ready in {:.0?}", started.elapsed());
}

#[track_caller]
fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port nobody listens on now (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `moto_server`, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:<port>`, for Palisade's `--sns-endpoint-url`.
    pub endpoint: String,
}

/// A topic with an SQS queue subscribed to it (raw delivery: each queue message's body
/// is exactly what was published).
#[derive(Debug, Clone)]
pub struct TopicQueue {
    pub topic_arn: String,
    pub queue_url: String,
}

/// boto3 against moto; one operation per run, its result as JSON on stdout.
const BOTO: &str = r#"
import json, sys, time
import boto3
endpoint, op, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
kw = dict(endpoint_url=endpoint, region_name=args.get("region", "us-east-1"),
          aws_access_key_id="testing", aws_secret_access_key="testing")
sns, sqs = boto3.client("sns", **kw), boto3.client("sqs", **kw)
if op == "topic_with_queue":
    topic = sns.create_topic(Name=args["name"])["TopicArn"]
    url = sqs.create_queue(QueueName=args["name"])["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn,
                  Attributes={"RawMessageDelivery": "true"})
    out = {"topic_arn": topic, "queue_url": url}
elif op == "receive":
    # Until at least one message arrives or the time is up; received messages are deleted.
    deadline = time.time() + args["seconds"]
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=args["queue_url"], MaxNumberOfMessages=10,
                                  WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            out.append(m["Body"])
            sqs.delete_message(QueueUrl=args["queue_url"], ReceiptHandle=m["ReceiptHandle"])
        if out or time.time() >= deadline:
            break
elif op == "iam_role":
    # A role with inline policies and customer managed policies attached.
    iam = boto3.client("iam", **kw)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
             "Principal": {"Service": "credentials.iot.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    arn = iam.create_role(RoleName=args["name"], AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    for i, doc in enumerate(args.get("inline", [])):
        iam.put_role_policy(RoleName=args["name"], PolicyName=f"inline-{i}", PolicyDocument=json.dumps(doc))
    for i, doc in enumerate(args.get("managed", [])):
        policy = iam.create_policy(PolicyName=f"{args['name']}-managed-{i}", PolicyDocument=json.dumps(doc))
        iam.attach_role_policy(RoleName=args["name"], PolicyArn=policy["Policy"]["Arn"])
    out = {"arn": arn}
elif op == "identity_pool":
    cognito = boto3.client("cognito-identity", **kw)
    pool = cognito.create_identity_pool(IdentityPoolName=args["name"], AllowUnauthenticatedIdentities=True)
    out = {"id": pool["IdentityPoolId"]}
else:
    raise SystemExit(f"unknown operation {op}")
print(json.dumps(out))
"#;

impl Moto {
    /// Starts moto on a free port.
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts moto on `port` (a test that first needs the endpoint unreachable picks
    /// the port, then starts moto on it).
    pub async fn start_on(port: u16) -> Self {
        let venv = tokio::task::spawn_blocking(venv).await.expect("venv setup");
        let log = tempfile::NamedTempFile::new().expect("moto log");
        let (log, log_path) = log.keep().expect("keeping the moto log");
        let mut child = Command::new(venv.join("bin").join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("moto_server status") {
                panic!(
                    "moto_server exited ({status}) before listening on {port}:\n{}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "moto_server not listening on {port} after 30 s:\n{}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = fs::remove_file(&log_path);
        Self {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The ARN moto gives the topic `name` in us-east-1.
    pub fn topic_arn(name: &str) -> String {
        format!("arn:aws:sns:{MOTO_REGION}:{MOTO_ACCOUNT}:{name}")
    }

    /// Palisade's SNS settings for this server.
    pub fn sns_settings(&self) -> palisade_engine::SnsSettings {
        Self::sns_settings_for(&self.endpoint)
    }

    /// Palisade's SNS settings for an endpoint, with moto's credentials.
    pub fn sns_settings_for(endpoint: &str) -> palisade_engine::SnsSettings {
        palisade_engine::SnsSettings {
            endpoint_url: Some(endpoint.to_owned()),
            access_key_id: Some(MOTO_ACCESS_KEY_ID.into()),
            secret_access_key: Some(MOTO_SECRET_ACCESS_KEY.into()),
        }
    }

    /// Palisade's settings for reading IAM or Cognito from this server.
    pub fn source_settings(&self) -> palisade_iam_source::SourceSettings {
        palisade_iam_source::SourceSettings {
            endpoint_url: Some(self.endpoint.clone()),
            access_key_id: MOTO_ACCESS_KEY_ID.into(),
            secret_access_key: MOTO_SECRET_ACCESS_KEY.into(),
        }
    }

    /// Runs one boto3 operation of [`BOTO`] against this server.
    pub async fn boto(&self, op: &str, args: Value) -> Value {
        let out = tokio::process::Command::new(venv_python())
            .args(["-c", BOTO, &self.endpoint, op, &args.to_string()])
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| panic!("running boto3 {op}: {e}"));
        assert!(
            out.status.success(),
            "boto3 {op} {args} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "boto3 {op}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Creates topic `name` and queue `name`, and subscribes the queue to the topic.
    pub async fn topic_with_queue(&self, name: &str) -> TopicQueue {
        let out = self.boto("topic_with_queue", json!({ "name": name })).await;
        TopicQueue {
            topic_arn: out["topic_arn"].as_str().expect("topic_arn").to_owned(),
            queue_url: out["queue_url"].as_str().expect("queue_url").to_owned(),
        }
    }

    /// The bodies of the messages on the queue (deleting them), waiting up to `within`
    /// for the first one; empty if none came.
    pub async fn receive(&self, queue_url: &str, within: Duration) -> Vec<String> {
        let out = self
            .boto(
                "receive",
                json!({ "queue_url": queue_url, "seconds": within.as_secs_f64() }),
            )
            .await;
        out.as_array()
            .expect("message list")
            .iter()
            .map(|b| b.as_str().expect("message body").to_owned())
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
