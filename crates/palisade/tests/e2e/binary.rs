//! The `palisade` binary out of process: first start, the credentials commands against
//! a running server, durability across `kill -9`, and graceful shutdown on SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::process::*;
use crate::common::*;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_iot::types::MitigationActionType;
use aws_sdk_iot::Client;
use tempfile::TempDir;

/// The server's default account on first start.
const DEFAULT_ACCOUNT: &str = "000000000000";

/// A tempdir and a data dir inside it that does not exist yet.
fn fresh_data_dir() -> (TempDir, PathBuf) {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    (root, data)
}

fn credentials_file(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials")
}

/// A client that reads its keys from profile `[palisade]` of the server's credentials
/// file, as the AWS CLI and SDKs would.
#[allow(deprecated)] // ProfileFileCredentialsProvider still takes aws-config's alias of EnvConfigFiles
fn profile_client(endpoint: &str, credentials_file: &Path) -> Client {
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    let files = ProfileFiles::builder()
        .with_file(ProfileFileKind::Credentials, credentials_file)
        .build();
    let provider = ProfileFileCredentialsProvider::builder()
        .profile_files(files)
        .profile_name("palisade")
        .build();
    Client::from_conf(
        sdk_config_builder(endpoint)
            .credentials_provider(provider)
            .build(),
    )
}

fn keys_client(endpoint: &str, keys: &Keys) -> Client {
    sdk_client(endpoint, &keys.access_key_id, &keys.secret_access_key)
}

#[tokio::test]
async fn first_start_writes_a_private_working_credentials_file() {
    let (_root, data) = fresh_data_dir();
    let server = ServerProcess::start(&data).await;
    let path = credentials_file(&data);

    let mode = std::fs::metadata(&path)
        .expect("credentials file exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials file mode is {mode:o}");
    let keys = read_profile(&path, "palisade");
    assert!(keys.access_key_id.starts_with("AKIA"), "{keys:?}");
    assert_eq!(keys.secret_access_key.len(), 40);

    let client = profile_client(&server.endpoint, &path);
    let out = create_action(
        &client,
        "first",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    assert_eq!(
        out.action_arn(),
        Some(action_arn(DEFAULT_ACCOUNT, "first").as_str())
    );
    let listed = stdout_of(&credentials_cmd(&data, &["list"]));
    assert!(listed.contains(&keys.access_key_id), "{listed}");

    // A later start keeps the existing credential and file.
    let before = std::fs::read(&path).expect("read");
    drop(server);
    let server = ServerProcess::start(&data).await;
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert_eq!(
        list_all_names(&profile_client(&server.endpoint, &path)).await,
        ["first"]
    );
}

#[tokio::test]
async fn credentials_create_requires_a_twelve_digit_account() {
    let (_root, data) = fresh_data_dir();
    for bad in ["12345", "1234567890123", "12345678901a"] {
        let out = credentials_cmd(&data, &["create", "--account-id", bad]);
        assert!(!out.status.success(), "account id {bad} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("12 digits"), "stderr: {stderr}");
        assert!(out.stdout.is_empty(), "printed a credential for {bad}");
    }
}

/// Lists with `client` until the server refuses its key, for at most `within`.
async fn wait_until_refused(client: &Client, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        match client.list_mitigation_actions().send().await {
            Err(e) => return e.code().unwrap_or_default().to_owned(),
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(_) => panic!("a deleted credential still works after {within:?}"),
        }
    }
}

#[tokio::test]
async fn credentials_managed_by_the_cli_while_the_server_runs() {
    let (_root, data) = fresh_data_dir();
    let server = ServerProcess::start(&data).await;

    let created = parse_created(&stdout_of(&credentials_cmd(
        &data,
        &["create", "--account-id", "123456789012"],
    )));
    assert_eq!(created.account_id.as_deref(), Some("123456789012"));

    // Accepted at once, acting for its account.
    let client = keys_client(&server.endpoint, &created);
    let out = create_action(
        &client,
        "via-cli-key",
        params_for(&MitigationActionType::UpdateDeviceCertificate),
    )
    .await;
    assert_eq!(
        out.action_arn(),
        Some(action_arn("123456789012", "via-cli-key").as_str())
    );

    // Listed, as JSON lines without secrets.
    let listed = stdout_of(&credentials_cmd(&data, &["list"]));
    let entries: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(entries.len(), 2, "{listed}");
    let entry = entries
        .iter()
        .find(|e| e["accessKeyId"] == created.access_key_id.as_str())
        .unwrap_or_else(|| panic!("new key not listed: {listed}"));
    assert_eq!(entry["accountId"], "123456789012");
    assert!(
        !listed.contains(&created.secret_access_key),
        "list shows a secret"
    );

    // Deleted: gone from the list, refused by the server (after its short cache).
    stdout_of(&credentials_cmd(&data, &["delete", &created.access_key_id]));
    let listed = stdout_of(&credentials_cmd(&data, &["list"]));
    assert!(!listed.contains(&created.access_key_id), "{listed}");
    let code = wait_until_refused(&client, Duration::from_secs(10)).await;
    assert_eq!(code, "UnrecognizedClientException");

    // Deleting it again fails.
    let again = credentials_cmd(&data, &["delete", &created.access_key_id]);
    assert!(!again.status.success(), "deleting a deleted key succeeded");
}

#[tokio::test]
async fn actions_and_page_tokens_survive_kill_dash_nine() {
    let (_root, data) = fresh_data_dir();
    let mut server = ServerProcess::start(&data).await;
    let path = credentials_file(&data);
    let client = profile_client(&server.endpoint, &path);
    let params = params_for(&MitigationActionType::AddThingsToThingGroup);
    let created = create_action(&client, "durable-0", params.clone()).await;
    for name in ["durable-1", "durable-2"] {
        create_action(&client, name, params.clone()).await;
    }
    let first_page = client
        .list_mitigation_actions()
        .max_results(1)
        .send()
        .await
        .expect("list");
    let token = first_page.next_token().expect("a next token").to_owned();

    server.kill_hard();
    let server = ServerProcess::start(&data).await;
    let client = profile_client(&server.endpoint, &path);
    let d = describe_action(&client, "durable-0").await;
    assert_eq!(d.action_id(), created.action_id());
    assert_eq!(d.action_params(), Some(&params));
    assert_eq!(d.role_arn(), Some(ROLE_ARN));
    assert_eq!(
        list_all_names(&client).await,
        ["durable-0", "durable-1", "durable-2"]
    );

    // Page tokens are signed with a secret kept in the database, so they outlive the process.
    let next = client
        .list_mitigation_actions()
        .max_results(1)
        .next_token(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("token after restart: {}", DisplayErrorContext(e)));
    let names: Vec<&str> = next
        .action_identifiers()
        .iter()
        .filter_map(|a| a.action_name())
        .collect();
    assert_eq!(names, ["durable-1"]);
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let (_root, data) = fresh_data_dir();
    let mut server = ServerProcess::start(&data).await;
    let client = profile_client(&server.endpoint, &credentials_file(&data));
    client
        .list_mitigation_actions()
        .send()
        .await
        .unwrap_or_else(|e| panic!("list: {}", DisplayErrorContext(e)));

    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| {
            panic!(
                "still running 10s after SIGTERM; log:\n{}",
                server.log_text()
            )
        });
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; log:\n{}",
        server.log_text()
    );
    assert!(
        server.log_text().contains("palisade stopped"),
        "log:\n{}",
        server.log_text()
    );
}

/// Starts a server, opens a connection that sends `sent` and then stays open, sends
/// SIGTERM, and asserts the process exits with status 0 within five seconds.
async fn assert_sigterm_exits_with_open_connection(sent: &[u8]) {
    use tokio::io::AsyncWriteExt;

    let (_root, data) = fresh_data_dir();
    let mut server = ServerProcess::start(&data).await;
    let mut conn = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    conn.write_all(sent).await.expect("write");
    // Let the server take the bytes in before the signal.
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.terminate();
    let status = server.wait_exit(Duration::from_secs(5)).await;
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 5s after SIGTERM with a connection that sent {:?}; log:\n{}",
            String::from_utf8_lossy(sent),
            server.log_text()
        )
    });
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log_text());
    drop(conn);
}

#[tokio::test]
async fn sigterm_closes_an_idle_keep_alive_connection() {
    assert_sigterm_exits_with_open_connection(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
}

#[tokio::test]
async fn sigterm_exits_despite_a_client_stalled_in_its_headers() {
    assert_sigterm_exits_with_open_connection(
        b"GET /mitigationactions/actions HTTP/1.1\r\nhost: x\r\n",
    )
    .await;
}

#[tokio::test]
async fn sigterm_exits_despite_a_client_stalled_in_its_body() {
    assert_sigterm_exits_with_open_connection(
        b"POST /mitigationactions/actions/x HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n0123456789",
    )
    .await;
}
