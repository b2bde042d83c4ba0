//! `kill -9` of `palisade serve` while a device is connected through its gateway: the
//! acknowledged connection was recorded, and the next start closes it in the history
//! (SERVER_INITIATED_DISCONNECT) instead of leaving it open for ever.

use std::time::Duration;

use crate::common::devices::*;
use crate::common::process::*;
use crate::common::sdk_client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_leaves_no_connection_open_in_the_history() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut server = ServerProcess::start(&data).await;
    let keys = read_profile(&data.join("credentials"), "palisade");
    let client = sdk_client(
        &server.endpoint,
        &keys.access_key_id,
        &keys.secret_access_key,
    );
    let cert = device_cert(&client).await;
    attach_policy(&client, "all", ALLOW_ALL, &cert).await;
    client
        .create_thing()
        .thing_name("survivor")
        .send()
        .await
        .unwrap();
    client
        .attach_thing_principal()
        .thing_name("survivor")
        .principal(&cert.arn)
        .send()
        .await
        .unwrap();
    let endpoint = client
        .describe_endpoint()
        .endpoint_type("iot:Data-ATS")
        .send()
        .await
        .unwrap()
        .endpoint_address()
        .unwrap()
        .to_owned();
    let port: u16 = endpoint.rsplit_once(':').unwrap().1.parse().unwrap();
    let ca = std::fs::read_to_string(data.join("mqtt-ca.pem")).unwrap();

    let mut device = connect_at(port, &ca, &cert, "survivor").await;
    device.connected().await;
    // CONNACK came after the connection was recorded durably.
    let connected = client
        .get_thing_connectivity_data()
        .thing_name("survivor")
        .send()
        .await
        .unwrap();
    assert_eq!(connected.connected(), Some(true));

    server.kill_hard();
    device.closed(Duration::from_secs(10)).await;

    let server = ServerProcess::start(&data).await;
    let client = sdk_client(
        &server.endpoint,
        &keys.access_key_id,
        &keys.secret_access_key,
    );
    let after = client
        .get_thing_connectivity_data()
        .thing_name("survivor")
        .send()
        .await
        .unwrap();
    assert_eq!(after.connected(), Some(false), "{after:?}");
    assert_eq!(
        after.disconnect_reason().map(|r| r.as_str()),
        Some("SERVER_INITIATED_DISCONNECT")
    );
}
