//! The device gateway with real MQTT clients over TLS: authentication by registered
//! certificates, authorization by IoT policies (with variables and thing groups),
//! routing through the embedded broker and through the machine's Mosquitto, session
//! takeover, and certificates cut off when they stop being ACTIVE.

use std::time::Duration;

use crate::common::devices::*;
use crate::common::*;
use aws_sdk_iot::types::{AttributePayload, CertificateStatus};
use rumqttc::{QoS, SubscribeFilter};

fn uniq() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

const SECS: Duration = Duration::from_secs(10);

fn policy(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

/// Two devices on one certificate: one subscribes, the other publishes, through
/// `backend`.
async fn roundtrip(kind: StoreKind, backend: Option<&str>) {
    let server = TestServer::start(kind).await;
    let client = server.client_a();
    let cert = device_cert(&client).await;
    attach_policy(&client, "all", ALLOW_ALL, &cert).await;
    let gateway = start_gateway(&server, backend).await;
    let u = uniq();

    let mut sub = connect(&gateway, &cert, &format!("sub-{u}")).await;
    sub.connected().await;
    assert_eq!(sub.subscribe(&format!("t/{u}/#")).await, vec![true]);
    let mut publisher = connect(&gateway, &cert, &format!("pub-{u}")).await;
    publisher.connected().await;
    publisher.publish(&format!("t/{u}/x"), "hello").await;
    let got = sub.message().await;
    assert_eq!(got, (format!("t/{u}/x"), "hello".to_owned()));
    gateway.shutdown().await;
}

/// A server certificate for `gateway.test` and `*.gateway.test` under a CA of its own,
/// as an operator gives it with `--mqtt-tls-cert`: (CA PEM, the gateway's certificate).
fn wildcard_certificate() -> (String, palisade_gateway::ServerCertificate) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let names = vec!["gateway.test".to_owned(), "*.gateway.test".to_owned()];
    let leaf = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let given = palisade_gateway::ServerCertificate::Given {
        chain_pem: format!("{}{ca_pem}", leaf.pem()),
        key_pem: key.serialize_pem(),
    };
    (ca_pem, given)
}

per_engine! {
    /// One certificate registered in two accounts: the first label of the TLS server
    /// name chooses the account (whose policies then decide), and without a label naming
    /// one of them the connection is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_server_name_chooses_among_accounts() {
        let server = TestServer::start(ENGINE).await;
        let (a, b) = (server.client_a(), server.client_b());
        let cert = device_cert(&a).await;
        b.register_certificate_without_ca()
            .certificate_pem(&cert.pem)
            .status(CertificateStatus::Active)
            .send()
            .await
            .expect("the same certificate registered in account B");
        let only = |prefix: &str| {
            policy(&format!(
                r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:{REGION}:*:client/{prefix}-*"}}"#
            ))
        };
        attach_policy(&a, "only-a", &only("a"), &cert).await;
        let b_cert = DeviceCert {
            arn: cert.arn.replace(ACCOUNT_A, ACCOUNT_B),
            ..cert.clone()
        };
        attach_policy(&b, "only-b", &only("b"), &b_cert).await;
        let (ca_pem, given) = wildcard_certificate();
        let gateway = start_gateway_with(&server.engine, None, given).await;
        let port = gateway.local_addr().port();
        let connack = |name: String, client: &'static str| {
            let (ca_pem, cert) = (ca_pem.clone(), cert.clone());
            async move { connack_with_server_name(port, &ca_pem, &cert, &name, client).await }
        };
        // 0: accepted; 5: not authorized.
        assert_eq!(connack(format!("{ACCOUNT_A}.gateway.test"), "a-1").await, Some(0));
        assert_eq!(connack(format!("{ACCOUNT_A}.gateway.test"), "b-1").await, Some(5));
        assert_eq!(connack(format!("{ACCOUNT_B}.gateway.test"), "b-1").await, Some(0));
        assert_eq!(connack(format!("{ACCOUNT_B}.gateway.test"), "a-1").await, Some(5));
        assert_eq!(connack("gateway.test".to_owned(), "a-1").await, Some(5));
        assert_eq!(connack("999999999999.gateway.test".to_owned(), "a-1").await, Some(5));
        gateway.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn devices_talk_through_the_embedded_broker() {
        roundtrip(ENGINE, None).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn devices_talk_through_mosquitto() {
        roundtrip(ENGINE, Some(MOSQUITTO)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unregistered_and_inactive_certificates_are_refused() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let gateway = start_gateway(&server, None).await;

        // A certificate no account registered.
        let key = rcgen::KeyPair::generate().unwrap();
        let made = rcgen::CertificateParams::new(vec!["stranger".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let stranger = DeviceCert {
            id: String::new(),
            arn: String::new(),
            pem: made.pem(),
            key: key.serialize_pem(),
        };
        let mut d = connect(&gateway, &stranger, "stranger").await;
        assert_eq!(d.next(SECS).await, Some(Seen::Refused("NotAuthorized".into())));

        // Registered and allowed everything, but INACTIVE.
        let cert = device_cert(&client).await;
        attach_policy(&client, "all", ALLOW_ALL, &cert).await;
        client
            .update_certificate()
            .certificate_id(&cert.id)
            .new_status(CertificateStatus::Inactive)
            .send()
            .await
            .unwrap();
        let mut d = connect(&gateway, &cert, "dev").await;
        assert_eq!(d.next(SECS).await, Some(Seen::Refused("NotAuthorized".into())));

        // Active again: it connects.
        client
            .update_certificate()
            .certificate_id(&cert.id)
            .new_status(CertificateStatus::Active)
            .send()
            .await
            .unwrap();
        let mut d = connect(&gateway, &cert, "dev").await;
        d.connected().await;
        gateway.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_packet_is_authorized_by_the_policies() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let gateway = start_gateway(&server, None).await;
        let arn = |kind: &str, name: &str| format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:{kind}/{name}");

        // The listener may do everything on ok/ except receive ok/private.
        let listener_cert = device_cert(&client).await;
        attach_policy(
            &client,
            "listener",
            &policy(&format!(
                r#"{{"Effect":"Allow","Action":["iot:Connect","iot:Subscribe","iot:Receive"],"Resource":"*"}},
                   {{"Effect":"Deny","Action":"iot:Subscribe","Resource":"{}"}},
                   {{"Effect":"Deny","Action":"iot:Receive","Resource":"{}"}}"#,
                arn("topicfilter", "secret/*"),
                arn("topic", "ok/private")
            )),
            &listener_cert,
        )
        .await;
        // The talker may connect only as "talker", and publish only under ok/.
        let talker_cert = device_cert(&client).await;
        attach_policy(
            &client,
            "talker",
            &policy(&format!(
                r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"{}"}},
                   {{"Effect":"Allow","Action":"iot:Publish","Resource":"{}"}}"#,
                arn("client", "talker"),
                arn("topic", "ok/*")
            )),
            &talker_cert,
        )
        .await;

        let mut wrong_id = connect(&gateway, &talker_cert, "someone-else").await;
        assert_eq!(
            wrong_id.next(SECS).await,
            Some(Seen::Refused("NotAuthorized".into()))
        );

        let mut listener = connect(&gateway, &listener_cert, "listener").await;
        listener.connected().await;
        assert_eq!(listener.subscribe("secret/#").await, vec![false]);
        listener
            .client
            .subscribe_many([
                SubscribeFilter::new("ok/#".into(), QoS::AtLeastOnce),
                SubscribeFilter::new("secret/x".into(), QoS::AtLeastOnce),
            ])
            .await
            .unwrap();
        let codes = listener
            .expect(SECS, |s| match s {
                Seen::SubAck(c) => Some(c.clone()),
                _ => None,
            })
            .await;
        assert_eq!(codes, vec![true, false]);

        let mut talker = connect(&gateway, &talker_cert, "talker").await;
        talker.connected().await;
        talker.publish("ok/private", "not for you").await;
        talker.publish("ok/public", "hello").await;
        let got = listener.message().await;
        assert_eq!(got, ("ok/public".to_owned(), "hello".to_owned()));

        // A publish outside ok/ disconnects an MQTT 3.1.1 client.
        talker.publish("elsewhere", "x").await;
        talker.closed(SECS).await;
        gateway.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn policy_variables_and_thing_group_policies_apply() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let gateway = start_gateway(&server, None).await;
        let cert = device_cert(&client).await;
        let thing = format!("dev-{}", uniq());
        client
            .create_thing()
            .thing_name(&thing)
            .attribute_payload(AttributePayload::builder().attributes("room", "r1").build())
            .send()
            .await
            .unwrap();
        client
            .attach_thing_principal()
            .thing_name(&thing)
            .principal(&cert.arn)
            .send()
            .await
            .unwrap();
        let prefix = format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:");
        attach_policy(
            &client,
            "own",
            &policy(&format!(
                r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"{prefix}client/${{iot:Connection.Thing.ThingName}}"}},
                   {{"Effect":"Allow","Action":"iot:Publish","Resource":"{prefix}topic/rooms/${{iot:Connection.Thing.Attributes[room]}}/*"}},
                   {{"Effect":"Allow","Action":"iot:Receive","Resource":"*"}}"#
            )),
            &cert,
        )
        .await;
        // Subscribing is granted by the parent of the thing's group.
        client.create_thing_group().thing_group_name("building").send().await.unwrap();
        client
            .create_thing_group()
            .thing_group_name("floor")
            .parent_group_name("building")
            .send()
            .await
            .unwrap();
        client
            .add_thing_to_thing_group()
            .thing_group_name("floor")
            .thing_name(&thing)
            .send()
            .await
            .unwrap();
        client
            .create_policy()
            .policy_name("building")
            .policy_document(policy(&format!(
                r#"{{"Effect":"Allow","Action":"iot:Subscribe","Resource":"{prefix}topicfilter/rooms/*"}}"#
            )))
            .send()
            .await
            .unwrap();
        client
            .attach_policy()
            .policy_name("building")
            .target(format!("{prefix}thinggroup/building"))
            .send()
            .await
            .unwrap();

        // Not the thing's name: the thing is not resolved, the variable grants nothing.
        let mut other = connect(&gateway, &cert, "other").await;
        assert_eq!(other.next(SECS).await, Some(Seen::Refused("NotAuthorized".into())));

        let mut dev = connect(&gateway, &cert, &thing).await;
        dev.connected().await;
        assert_eq!(dev.subscribe("rooms/#").await, vec![true]);
        dev.publish("rooms/r1/temp", "21").await;
        let got = dev.message().await;
        assert_eq!(got, ("rooms/r1/temp".to_owned(), "21".to_owned()));
        dev.publish("rooms/r2/temp", "19").await;
        dev.closed(SECS).await;
        gateway.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_connection_takes_the_client_id_over() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let cert = device_cert(&client).await;
        attach_policy(&client, "all", ALLOW_ALL, &cert).await;
        let gateway = start_gateway(&server, Some(MOSQUITTO)).await;
        let id = format!("dup-{}", uniq());
        let mut first = connect(&gateway, &cert, &id).await;
        first.connected().await;
        let mut second = connect(&gateway, &cert, &id).await;
        second.connected().await;
        first.closed(SECS).await;
        // The newer session works.
        assert_eq!(second.subscribe(&format!("{id}/#")).await, vec![true]);
        second.publish(&format!("{id}/x"), "still here").await;
        second
            .expect(SECS, |s| matches!(s, Seen::Message(..)).then_some(()))
            .await;
        gateway.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deactivating_a_certificate_cuts_its_devices_off() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let cert = device_cert(&client).await;
        attach_policy(&client, "all", ALLOW_ALL, &cert).await;
        let gateway = start_gateway(&server, None).await;
        let mut dev = connect(&gateway, &cert, "victim").await;
        dev.connected().await;
        client
            .update_certificate()
            .certificate_id(&cert.id)
            .new_status(CertificateStatus::Inactive)
            .send()
            .await
            .unwrap();
        // Within a second by design; the bound here only keeps a failure from hanging.
        dev.closed(Duration::from_secs(5)).await;
        let mut again = connect(&gateway, &cert, "victim").await;
        assert_eq!(again.next(SECS).await, Some(Seen::Refused("NotAuthorized".into())));
        gateway.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_policy_change_applies_from_the_next_packet() {
        let server = TestServer::start(ENGINE).await;
        let client = server.client_a();
        let cert = device_cert(&client).await;
        attach_policy(&client, "all", ALLOW_ALL, &cert).await;
        let gateway = start_gateway(&server, None).await;
        let mut dev = connect(&gateway, &cert, "changing").await;
        dev.connected().await;
        assert_eq!(dev.subscribe("a/#").await, vec![true]);
        client
            .detach_policy()
            .policy_name("all")
            .target(&cert.arn)
            .send()
            .await
            .unwrap();
        assert_eq!(dev.subscribe("b/#").await, vec![false]);
        gateway.shutdown().await;
    }
}

/// Two gateway nodes on one PostgreSQL database and one Mosquitto: a client id taken
/// over on the other node, and a certificate deactivated through one node cutting off
/// a device on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_sessions_and_cut_offs() {
    let db = palisade_testdb::TestDatabase::create().await;
    let a = TestServer::start_on(
        std::sync::Arc::new(db.connect().await),
        None,
        tempfile::tempdir().unwrap(),
        palisade_engine::Limits::default(),
        palisade_api::ServerConfig::default(),
    )
    .await;
    let b = TestServer::start_on(
        std::sync::Arc::new(db.connect().await),
        None,
        tempfile::tempdir().unwrap(),
        palisade_engine::Limits::default(),
        palisade_api::ServerConfig::default(),
    )
    .await;
    let client = a.client_a();
    let cert = device_cert(&client).await;
    attach_policy(&client, "all", ALLOW_ALL, &cert).await;
    let (gw_a, gw_b) = (
        start_gateway(&a, Some(MOSQUITTO)).await,
        start_gateway(&b, Some(MOSQUITTO)).await,
    );
    let id = format!("roaming-{}", uniq());
    let mut on_a = connect(&gw_a, &cert, &id).await;
    on_a.connected().await;
    let mut on_b = connect(&gw_b, &cert, &id).await;
    on_b.connected().await;
    on_a.closed(SECS).await;

    // Deactivated through node A's API; the device is on node B.
    client
        .update_certificate()
        .certificate_id(&cert.id)
        .new_status(CertificateStatus::Inactive)
        .send()
        .await
        .unwrap();
    on_b.closed(Duration::from_secs(5)).await;
    gw_a.shutdown().await;
    gw_b.shutdown().await;
    drop((a, b));
    drop(db);
}

/// Connection history, the two checks and a mitigation over real connections; MQTT 5.
mod history {
    use super::*;

    /// The connection history as GetThingConnectivityData shows it: (connected, reason).
    async fn connectivity(client: &aws_sdk_iot::Client, thing: &str) -> (bool, Option<String>) {
        let out = client
            .get_thing_connectivity_data()
            .thing_name(thing)
            .send()
            .await
            .expect("GetThingConnectivityData");
        (
            out.connected().unwrap_or(false),
            out.disconnect_reason().map(|r| r.as_str().to_owned()),
        )
    }

    /// Polls until `want` holds (the close is recorded in a batch behind the disconnect).
    async fn wait_connectivity(
        client: &aws_sdk_iot::Client,
        thing: &str,
        want: (bool, Option<&str>),
    ) {
        let want = (want.0, want.1.map(str::to_owned));
        let mut last = None;
        for _ in 0..100 {
            let now = connectivity(client, thing).await;
            if now == want {
                return;
            }
            last = Some(now);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("connectivity of {thing}: {last:?}, wanted {want:?}");
    }

    async fn thing_for(client: &aws_sdk_iot::Client, name: &str, cert: &DeviceCert) {
        client.create_thing().thing_name(name).send().await.unwrap();
        client
            .attach_thing_principal()
            .thing_name(name)
            .principal(&cert.arn)
            .send()
            .await
            .unwrap();
    }

    const SHARED: &str = "DEVICE_CERTIFICATE_SHARED_CHECK";
    const CONFLICTING: &str = "CONFLICTING_CLIENT_IDS_CHECK";

    per_engine! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn connections_are_recorded_with_their_reasons() {
            let server = TestServer::start(ENGINE).await;
            let client = server.client_a();
            let cert = device_cert(&client).await;
            attach_policy(&client, "all", ALLOW_ALL, &cert).await;
            let gateway = start_gateway(&server, None).await;
            thing_for(&client, "meter", &cert).await;
            assert_eq!(connectivity(&client, "meter").await, (false, None));

            let mut dev = connect(&gateway, &cert, "meter").await;
            dev.connected().await;
            wait_connectivity(&client, "meter", (true, None)).await;
            dev.client.disconnect().await.unwrap();
            wait_connectivity(&client, "meter", (false, Some("CLIENT_INITIATED_DISCONNECT"))).await;

            // Taken over by a second connection with the same client id.
            let mut first = connect(&gateway, &cert, "meter").await;
            first.connected().await;
            let mut second = connect(&gateway, &cert, "meter").await;
            second.connected().await;
            first.closed(SECS).await;
            wait_connectivity(&client, "meter", (true, None)).await;
            // Server shutdown closes the rest.
            gateway.shutdown().await;
            wait_connectivity(&client, "meter", (false, Some("SERVER_INITIATED_DISCONNECT"))).await;
        }

        /// Done-when of issue 15: both checks find real connections, and a deactivation
        /// mitigation disconnects the devices it names.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn connection_checks_find_real_connections_and_mitigation_cuts_them_off() {
            let server = TestServer::start(ENGINE).await;
            let client = server.client_a();
            let shared = device_cert(&client).await;
            attach_policy(&client, "all", ALLOW_ALL, &shared).await;
            let honest = device_cert(&client).await;
            client
                .attach_policy()
                .policy_name("all")
                .target(&honest.arn)
                .send()
                .await
                .unwrap();
            let gateway = start_gateway(&server, None).await;

            // One certificate, two devices at once: shared.
            let mut one = connect(&gateway, &shared, "copy-1").await;
            one.connected().await;
            let mut two = connect(&gateway, &shared, "copy-2").await;
            two.connected().await;
            // One client id taken over: conflicting.
            let mut old = connect(&gateway, &honest, "twin").await;
            old.connected().await;
            let mut new = connect(&gateway, &honest, "twin").await;
            new.connected().await;
            old.closed(SECS).await;
            tokio::time::sleep(Duration::from_millis(300)).await;

            crate::common::mitigation::enable_checks(&client, &[SHARED, CONFLICTING]).await;
            let audit = crate::common::mitigation::run_audit(&client, &[SHARED, CONFLICTING]).await;
            let shared_findings =
                crate::common::mitigation::audit_findings(&client, &audit, Some(SHARED)).await;
            assert_eq!(shared_findings.len(), 1, "{shared_findings:?}");
            let f = &shared_findings[0];
            assert_eq!(
                f.non_compliant_resource()
                    .and_then(|r| r.resource_identifier())
                    .and_then(|i| i.device_certificate_id()),
                Some(shared.id.as_str())
            );
            assert_eq!(f.reason_for_non_compliance_code(), Some("CERTIFICATE_SHARED_BY_MULTIPLE_DEVICES"));
            let conflicting =
                crate::common::mitigation::audit_findings(&client, &audit, Some(CONFLICTING)).await;
            assert_eq!(conflicting.len(), 1, "{conflicting:?}");
            assert_eq!(
                conflicting[0]
                    .non_compliant_resource()
                    .and_then(|r| r.resource_identifier())
                    .and_then(|i| i.client_id()),
                Some("twin")
            );

            // Deactivate the shared certificate through a mitigation task: both copies go.
            create_action(
                &client,
                "deactivate",
                params_for(&aws_sdk_iot::types::MitigationActionType::UpdateDeviceCertificate),
            )
            .await;
            crate::common::mitigation::start_task(
                &client,
                "cut-shared",
                crate::common::mitigation::audit_target(&audit),
                &[(SHARED, &["deactivate"])],
            )
            .await;
            crate::common::mitigation::wait_task(&client, "cut-shared").await;
            one.closed(Duration::from_secs(5)).await;
            two.closed(Duration::from_secs(5)).await;
            // The other certificate's device stays.
            assert_eq!(new.subscribe("still/#").await, vec![true]);
            gateway.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn mqtt5_refusals_carry_reason_codes() {
            use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet as P5, PubAckReason, SubscribeReasonCode};
            use rumqttc::v5::{AsyncClient, Event, MqttOptions};
            let server = TestServer::start(ENGINE).await;
            let client = server.client_a();
            let cert = device_cert(&client).await;
            let arn = |kind: &str, name: &str| format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:{kind}/{name}");
            attach_policy(
                &client,
                "narrow",
                &policy(&format!(
                    r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}},
                       {{"Effect":"Allow","Action":["iot:Publish","iot:Subscribe","iot:Receive"],"Resource":["{}","{}","{}"]}}"#,
                    arn("topic", "ok"),
                    arn("topicfilter", "ok"),
                    arn("topic", "ok")
                )),
                &cert,
            )
            .await;
            let gateway = start_gateway(&server, None).await;
            let mut options = MqttOptions::new("five", "localhost", gateway.local_addr().port());
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls(&gateway, &cert)),
            ));
            let (mqtt, mut events) = AsyncClient::new(options, 16);
            let mut seen = Vec::new();
            let mut step = 0;
            let deadline = tokio::time::Instant::now() + SECS;
            while seen.len() < 4 {
                let ev = tokio::time::timeout_at(deadline, events.poll())
                    .await
                    .expect("events in time")
                    .expect("connection stays up");
                match ev {
                    Event::Incoming(P5::ConnAck(a)) => {
                        assert_eq!(a.code, ConnectReturnCode::Success);
                        mqtt.subscribe("no", rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await.unwrap();
                    }
                    Event::Incoming(P5::SubAck(s)) => {
                        seen.push(format!("{:?}", s.return_codes));
                        if step == 0 {
                            step = 1;
                            mqtt.subscribe("ok", rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await.unwrap();
                        } else {
                            mqtt.publish("no", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, "x").await.unwrap();
                        }
                    }
                    Event::Incoming(P5::PubAck(a)) => {
                        seen.push(format!("{:?}", a.reason));
                        if a.reason == PubAckReason::NotAuthorized {
                            mqtt.publish("ok", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, "y").await.unwrap();
                        }
                    }
                    Event::Incoming(P5::Publish(p)) => {
                        seen.push(format!("message {}", String::from_utf8_lossy(&p.topic)));
                    }
                    _ => {}
                }
            }
            assert_eq!(seen[0], format!("{:?}", vec![SubscribeReasonCode::NotAuthorized]));
            assert!(seen[1].contains("Success"), "{seen:?}");
            assert_eq!(seen[2], format!("{:?}", PubAckReason::NotAuthorized));
            assert!(seen[3..].iter().any(|s| s == "message ok" || s.contains("Success")), "{seen:?}");
            gateway.shutdown().await;
        }
    }
}
