//! Several `palisade serve` processes on one PostgreSQL database behave as one service.

use std::path::PathBuf;

use crate::common::process::*;
use crate::common::*;
use aws_sdk_iot::error::ProvideErrorMetadata;
use aws_sdk_iot::types::MitigationActionType;
use palisade_testdb::TestDatabase;
use tempfile::TempDir;

/// Two nodes on one fresh database, each with its own data dir.
struct Cluster {
    nodes: [ServerProcess; 2],
    db: TestDatabase,
    _root: TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let db = TestDatabase::create().await;
        let root = tempfile::tempdir().expect("tempdir");
        let (dir_a, dir_b): (PathBuf, PathBuf) =
            (root.path().join("node-a"), root.path().join("node-b"));
        let args = ["--database-url", db.url.as_str()];
        // Started together so both race to migrate and bootstrap the empty database.
        let (a, b) = tokio::join!(
            ServerProcess::start_with(&dir_a, &args),
            ServerProcess::start_with(&dir_b, &args),
        );
        Self {
            nodes: [a, b],
            db,
            _root: root,
        }
    }

    /// `palisade credentials create` against the shared database.
    fn create_credentials(&self, account_id: &str) -> crate::common::process::Keys {
        let out = palisade(&[
            "credentials",
            "create",
            "--account-id",
            account_id,
            "--database-url",
            &self.db.url,
        ]);
        parse_created(&stdout_of(&out))
    }

    /// Sends a create and returns the SDK's result, so races can be judged.
    async fn try_create(
        &self,
        node: usize,
        keys: &crate::common::process::Keys,
        name: &str,
    ) -> Result<String, String> {
        self.client(node, keys)
            .create_mitigation_action()
            .action_name(name)
            .role_arn(ROLE_ARN)
            .action_params(params_for(&MitigationActionType::EnableIotLogging))
            .send()
            .await
            .map(|out| out.action_id().unwrap_or_default().to_owned())
            .map_err(|e| e.code().unwrap_or("?").to_owned())
    }

    fn client(&self, node: usize, keys: &crate::common::process::Keys) -> aws_sdk_iot::Client {
        sdk_client(
            &self.nodes[node].endpoint,
            &keys.access_key_id,
            &keys.secret_access_key,
        )
    }
}

#[tokio::test]
async fn nodes_share_one_view_of_the_data() {
    let cluster = Cluster::start().await;
    let keys = cluster.create_credentials("123456789012");
    let (a, b) = (cluster.client(0, &keys), cluster.client(1, &keys));

    // A key made with the CLI works on every node at once.
    let created = create_action(
        &a,
        "shared",
        params_for(&MitigationActionType::PublishFindingToSns),
    )
    .await;
    let seen = b
        .describe_mitigation_action()
        .action_name("shared")
        .send()
        .await
        .expect("describe through node b");
    assert_eq!(seen.action_id(), created.action_id());

    b.delete_mitigation_action()
        .action_name("shared")
        .send()
        .await
        .expect("delete through node b");
    let err = a
        .describe_mitigation_action()
        .action_name("shared")
        .send()
        .await
        .expect_err("gone through node a");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn concurrent_creates_of_one_name_through_both_nodes() {
    let cluster = Cluster::start().await;
    let keys = cluster.create_credentials("123456789012");
    for round in 0..5 {
        let name = format!("contested-{round}");
        let (ra, rb) = tokio::join!(
            cluster.try_create(0, &keys, &name),
            cluster.try_create(1, &keys, &name),
        );
        let codes: Vec<Option<String>> = [ra, rb].into_iter().map(|r| r.err()).collect();
        let wins = codes.iter().filter(|c| c.is_none()).count();
        assert_eq!(
            wins, 1,
            "round {round}: exactly one create wins, got {codes:?}"
        );
        assert!(
            codes.contains(&Some("ResourceAlreadyExistsException".to_owned())),
            "round {round}: the loser gets ResourceAlreadyExistsException, got {codes:?}"
        );
    }
}

#[tokio::test]
async fn nodes_starting_together_bootstrap_one_default_credential() {
    let cluster = Cluster::start().await;
    let out = palisade(&["credentials", "list", "--database-url", &cluster.db.url]);
    let listed = stdout_of(&out);
    assert_eq!(
        listed.lines().count(),
        1,
        "exactly one default credential: {listed}"
    );
    // Whichever node created it wrote its credentials file, and the key works on both.
    let file = cluster
        .nodes
        .iter()
        .map(|n| n.data_dir.join("credentials"))
        .find(|p| p.exists())
        .expect("one node wrote a credentials file");
    let keys = read_profile(&file, "palisade");
    for node in 0..2 {
        cluster
            .client(node, &keys)
            .list_mitigation_actions()
            .send()
            .await
            .unwrap_or_else(|e| panic!("node {node} refused the default key: {e:?}"));
    }
}
