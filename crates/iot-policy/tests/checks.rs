//! The documented compliant and non-compliant examples of both checks (AWS's check pages
//! and §2.3/§2.4 of the behaviour reference), plus the semantics around them.

use palisade_iot_policy::{
    analyse, Analysis, PolicyError, ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS,
    POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT,
    TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS,
};
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn arn(rest: &str) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT}:{rest}")
}

fn run(document: &Value) -> Analysis {
    analyse(&document.to_string(), ACCOUNT, REGION).expect("a valid document")
}

fn policy(statements: Value) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn allow(actions: &[&str], resources: &[String]) -> Value {
    json!({ "Effect": "Allow", "Action": actions, "Resource": resources })
}

fn deny(actions: &[&str], resources: &[String]) -> Value {
    json!({ "Effect": "Deny", "Action": actions, "Resource": resources })
}

fn attached(mut statement: Value, value: Value) -> Value {
    statement["Condition"] = json!({ "Bool": { "iot:Connection.Thing.IsAttached": value } });
    statement
}

fn broad(statements: Value) -> Vec<&'static str> {
    let analysis = run(&policy(statements));
    assert_eq!(
        analysis.overly_permissive.is_some(),
        !analysis.broad_actions.is_empty()
    );
    analysis.broad_actions
}

fn reason(statements: Value) -> Option<String> {
    run(&policy(statements)).overly_permissive.map(|f| {
        assert_eq!(f.reason_code, ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS);
        f.reason
    })
}

fn codes(statements: Value) -> Vec<&'static str> {
    run(&policy(statements))
        .misconfigurations
        .iter()
        .map(|f| f.reason_code)
        .collect()
}

const SHADOW_AND_JOBS: [&str; 7] = [
    "iot:DeleteThingShadow",
    "iot:GetThingShadow",
    "iot:UpdateThingShadow",
    "iot:DescribeJobExecution",
    "iot:GetPendingJobExecutions",
    "iot:StartNextPendingJobExecution",
    "iot:UpdateJobExecution",
];

// ---- IOT_POLICY_OVERLY_PERMISSIVE_CHECK ----

#[test]
fn iot_star_on_star_gives_awss_message() {
    let expected = "Policy allows broad access to IoT data plane actions: [iot:Subscribe, \
                    iot:Connect, iot:GetThingShadow, iot:DeleteThingShadow, \
                    iot:UpdateThingShadow, iot:Publish].";
    assert_eq!(
        reason(json!([allow(&["iot:*"], &["*".into()])])).as_deref(),
        Some(expected)
    );
    // The statement as an object, and "*" as the action, read the same.
    let one = policy(json!({ "Effect": "Allow", "Action": "*", "Resource": "*" }));
    assert_eq!(
        run(&one).overly_permissive.map(|f| f.reason).as_deref(),
        Some(expected)
    );
    assert_eq!(
        run(&one).broad_actions.len(),
        11,
        "job actions and ListNamedShadowsForThing are broad too, just not listed"
    );
}

#[test]
fn connect_examples() {
    let connect = |resource: &str| allow(&["iot:Connect"], &[arn(resource)]);
    assert_eq!(broad(json!([connect("client/*")])), ["iot:Connect"]);
    // Without IsAttached, ${iot:ClientId} is any client ID.
    assert_eq!(
        broad(json!([connect("client/${iot:ClientId}")])),
        ["iot:Connect"]
    );
    assert_eq!(
        broad(json!([attached(
            connect("client/${iot:ClientId}"),
            json!("true")
        )])),
        [""; 0]
    );
    assert_eq!(
        broad(json!([attached(
            connect("client/${iot:ClientId}"),
            json!(true)
        )])),
        [""; 0]
    );
    assert_eq!(
        broad(json!([attached(
            connect("client/${iot:ClientId}"),
            json!("false")
        )])),
        ["iot:Connect"]
    );
    // AWS's compliant example.
    assert_eq!(
        broad(json!([attached(
            connect("client/${iot:Connection.Thing.ThingName}"),
            json!("true")
        )])),
        [""; 0]
    );
    // The thing name is bound by the registry even without the condition.
    assert_eq!(
        broad(json!([connect("client/${iot:Connection.Thing.ThingName}")])),
        [""; 0]
    );
    // IsAttached binds ${iot:ClientId}; it does not make a literal `*` narrow.
    assert_eq!(
        broad(json!([attached(connect("client/*"), json!("true"))])),
        ["iot:Connect"]
    );
    assert_eq!(broad(json!([connect("client/sensor-1")])), [""; 0]);
    assert_eq!(broad(json!([connect("client/sensor-*")])), [""; 0]);
    assert_eq!(broad(json!([connect("client/*-sensor")])), [""; 0]);
    assert_eq!(broad(json!([connect("client/?")])), [""; 0]);
}

#[test]
fn is_attached_only_counts_in_its_own_statement() {
    let statements = json!([
        attached(
            allow(&["iot:Connect"], &[arn("client/${iot:ClientId}")]),
            json!("true")
        ),
        allow(
            &["iot:Publish"],
            &[arn("topic/$aws/things/${iot:ClientId}/shadow/update")]
        ),
    ]);
    assert_eq!(broad(statements), ["iot:Publish"]);
}

#[test]
fn publish_examples() {
    let publish = |resource: &str| allow(&["iot:Publish"], &[arn(resource)]);
    assert_eq!(
        broad(json!([publish("topic/$aws/things/*/shadow/update")])),
        ["iot:Publish"]
    );
    assert_eq!(
        broad(json!([publish("topic/$aws/things/*")])),
        ["iot:Publish"]
    );
    assert_eq!(broad(json!([publish("topic/*")])), ["iot:Publish"]);
    assert_eq!(broad(json!([publish("topic/$aws/*")])), ["iot:Publish"]);
    // AWS's compliant example: a wildcard only below the device's own thing.
    assert_eq!(
        broad(json!([publish(
            "topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"
        )])),
        [""; 0]
    );
    assert_eq!(broad(json!([publish("topic/sensors/*")])), [""; 0]);
    assert_eq!(
        broad(json!([publish("topic/$aws/things/MyThing/*")])),
        [""; 0]
    );
    assert_eq!(
        broad(json!([publish("topic/$aws/things/My*/shadow/update")])),
        [""; 0]
    );
    // `+` is literal in a topic resource.
    assert_eq!(
        broad(json!([publish("topic/$aws/things/+/shadow/update")])),
        [""; 0]
    );
}

#[test]
fn subscribe_examples() {
    let subscribe = |resource: &str| allow(&["iot:Subscribe"], &[arn(resource)]);
    for noncompliant in [
        "topicfilter/$aws/things/*",
        "topicfilter/$aws/things/#",
        "topicfilter/$aws/things/+/shadow/update",
        "topicfilter/$aws/things/*/shadow/update",
        "topicfilter/$aws/#",
        "topicfilter/*",
    ] {
        assert_eq!(
            broad(json!([subscribe(noncompliant)])),
            ["iot:Subscribe"],
            "{noncompliant}"
        );
    }
    // AWS's compliant example (its JSON, with the missing comma restored).
    let compliant = json!({
        "Effect": "Allow",
        "Action": ["iot:Subscribe"],
        "Resource": [
            arn("topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"),
            arn("topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*"),
        ]
    });
    assert_eq!(broad(json!([compliant])), [""; 0]);
    for compliant in [
        "topicfilter/building/#",
        "topicfilter/$aws/things/MyThing/#",
        // Per MQTT, `#` does not match `$` topics.
        "topicfilter/#",
    ] {
        assert_eq!(broad(json!([subscribe(compliant)])), [""; 0], "{compliant}");
    }
}

#[test]
fn policy_variables() {
    let publish = |resource: &str| allow(&["iot:Publish"], &[arn(resource)]);
    // Client IDs may contain `/`, so a client-chosen ID can name another thing's topics.
    assert_eq!(
        broad(json!([publish("topic/${iot:ClientId}/*")])),
        ["iot:Publish"]
    );
    assert_eq!(
        broad(json!([attached(
            publish("topic/${iot:ClientId}/*"),
            json!("true")
        )])),
        [""; 0]
    );
    for bound in [
        "${iot:Connection.Thing.Attributes[building]}",
        "${iot:Connection.Thing.ThingTypeName}",
        "${iot:Certificate.Subject.CommonName}",
        "${cognito-identity.amazonaws.com:sub}",
        "${iot:NoSuchVariable}",
    ] {
        assert_eq!(
            broad(json!([
                publish(&format!("topic/$aws/things/{bound}/shadow/*")),
                allow(&["iot:Connect"], &[arn(&format!("client/{bound}"))]),
                allow(&["iot:GetThingShadow"], &[arn(&format!("thing/{bound}"))]),
            ])),
            [""; 0],
            "{bound}"
        );
    }
}

#[test]
fn data_plane_actions_in_message_order() {
    assert_eq!(
        palisade_iot_policy::data_plane_actions().collect::<Vec<_>>(),
        [
            "iot:Subscribe",
            "iot:Connect",
            "iot:GetThingShadow",
            "iot:DeleteThingShadow",
            "iot:UpdateThingShadow",
            "iot:Publish",
            "iot:DescribeJobExecution",
            "iot:GetPendingJobExecutions",
            "iot:StartNextPendingJobExecution",
            "iot:UpdateJobExecution",
            "iot:ListNamedShadowsForThing",
        ]
    );
}

#[test]
fn receive_is_never_flagged() {
    assert_eq!(
        broad(json!([allow(
            &["iot:Receive"],
            &[arn("topic/$aws/things/*")]
        )])),
        [""; 0]
    );
    assert_eq!(
        broad(json!([allow(&["iot:Receive"], &["*".into()])])),
        [""; 0]
    );
}

#[test]
fn shadow_and_job_api_examples() {
    assert_eq!(
        reason(json!([allow(&SHADOW_AND_JOBS, &[arn("thing/*")])])).as_deref(),
        Some(
            "Policy allows broad access to IoT data plane actions: [iot:GetThingShadow, \
             iot:DeleteThingShadow, iot:UpdateThingShadow]."
        )
    );
    // Job actions alone are still non-compliant, and then they are listed.
    let jobs = &SHADOW_AND_JOBS[3..];
    assert_eq!(
        reason(json!([allow(jobs, &[arn("thing/*")])])).as_deref(),
        Some(
            "Policy allows broad access to IoT data plane actions: \
             [iot:DescribeJobExecution, iot:GetPendingJobExecutions, \
             iot:StartNextPendingJobExecution, iot:UpdateJobExecution]."
        )
    );
    // AWS's compliant example, as printed (with a stray `/` before `thing`) and as meant.
    for prefix in [format!("arn:aws:iot:{REGION}:{ACCOUNT}:/"), arn("")] {
        let resources = [
            format!("{prefix}thing/MyThing1"),
            format!("{prefix}thing/MyThing2"),
        ];
        assert_eq!(broad(json!([allow(&SHADOW_AND_JOBS, &resources)])), [""; 0]);
    }
    // A named shadow of any thing.
    assert_eq!(
        broad(json!([allow(
            &["iot:GetThingShadow"],
            &[arn("thing/*/config")]
        )])),
        ["iot:GetThingShadow"]
    );
    assert_eq!(
        broad(json!([allow(
            &["iot:GetThingShadow"],
            &[arn("thing/MyThing*")]
        )])),
        [""; 0]
    );
    assert_eq!(
        broad(json!([allow(
            &["iot:ListNamedShadowsForThing"],
            &[arn("thing/*")]
        )])),
        ["iot:ListNamedShadowsForThing"]
    );
}

#[test]
fn partial_action_wildcards_and_case() {
    assert_eq!(
        broad(json!([allow(&["iot:Get*"], &["*".into()])])),
        ["iot:GetThingShadow", "iot:GetPendingJobExecutions"]
    );
    assert_eq!(
        broad(json!([allow(
            &["IOT:PUBLISH", "iot:connect"],
            &["*".into()]
        )])),
        ["iot:Connect", "iot:Publish"]
    );
    assert_eq!(
        broad(json!([allow(&["iot:*Shadow"], &["*".into()])])),
        [
            "iot:GetThingShadow",
            "iot:DeleteThingShadow",
            "iot:UpdateThingShadow"
        ]
    );
    assert_eq!(
        broad(json!([allow(&["iot:CreateThing", "s3:*"], &["*".into()])])),
        [""; 0]
    );
}

#[test]
fn account_region_and_arn_wildcards() {
    let connect = |resource: &str| allow(&["iot:Connect"], &[resource.to_owned()]);
    assert_eq!(
        broad(json!([connect("arn:aws:iot:*:*:client/*")])),
        ["iot:Connect"]
    );
    assert_eq!(
        broad(json!([connect("arn:aws:iot:us-east-?:*:client/*")])),
        ["iot:Connect"]
    );
    assert_eq!(broad(json!([connect("arn:aws:iot:*")])), ["iot:Connect"]);
    assert_eq!(
        broad(json!([connect(
            "arn:aws:iot:eu-west-1:123456789012:client/*"
        )])),
        [""; 0]
    );
    assert_eq!(
        broad(json!([connect(
            "arn:aws:iot:us-east-1:999999999999:client/*"
        )])),
        [""; 0]
    );
    // `${$}` escapes the dollar sign.
    assert_eq!(
        broad(json!([allow(
            &["iot:Publish"],
            &[arn("topic/${$}aws/things/*")]
        )])),
        ["iot:Publish"]
    );
}

#[test]
fn deny_subtracts_what_it_covers() {
    let all = || allow(&["iot:*"], &["*".into()]);
    assert_eq!(
        reason(json!([all(), deny(&["iot:Connect"], &["*".into()])])).as_deref(),
        Some(
            "Policy allows broad access to IoT data plane actions: [iot:Subscribe, \
             iot:GetThingShadow, iot:DeleteThingShadow, iot:UpdateThingShadow, iot:Publish]."
        )
    );
    assert_eq!(
        broad(json!([all(), deny(&["iot:*"], &[arn("thing/*")])])),
        ["iot:Subscribe", "iot:Connect", "iot:Publish"]
    );
    assert_eq!(broad(json!([all(), deny(&["*"], &["*".into()])])), [""; 0]);
    // Denying only the shadow topics leaves other devices' job topics open.
    let publish = allow(&["iot:Publish"], &[arn("topic/$aws/things/*")]);
    assert_eq!(
        broad(json!([
            publish,
            deny(&["iot:Publish"], &[arn("topic/$aws/things/*/shadow/*")])
        ])),
        ["iot:Publish"]
    );
    assert_eq!(
        broad(json!([
            publish,
            deny(&["iot:Publish"], &[arn("topic/$aws/things/*")])
        ])),
        [""; 0]
    );
    // A Deny of one's own thing only covers one device.
    assert_eq!(
        broad(json!([
            publish,
            deny(
                &["iot:Publish"],
                &[arn("topic/$aws/things/${iot:Connection.Thing.ThingName}/*")]
            )
        ])),
        ["iot:Publish"]
    );
    // A conditional Deny might not apply, so it removes nothing.
    let conditional = attached(deny(&["iot:Connect"], &["*".into()]), json!("false"));
    assert!(broad(json!([all(), conditional])).contains(&"iot:Connect"));
    // A Deny in another account removes nothing.
    assert!(broad(json!([
        all(),
        deny(
            &["iot:Connect"],
            &["arn:aws:iot:us-east-1:999999999999:client/*".into()]
        )
    ]))
    .contains(&"iot:Connect"));
}

#[test]
fn subscribe_deny_must_cover_every_wildcard_filter() {
    let subscribe = allow(&["iot:Subscribe"], &[arn("topicfilter/*")]);
    // `$aws/things/*` leaves `$aws/+/+/…` open: a literal match, not an MQTT one.
    assert_eq!(
        broad(json!([
            subscribe,
            deny(&["iot:Subscribe"], &[arn("topicfilter/$aws/things/*")])
        ])),
        ["iot:Subscribe"]
    );
    assert_eq!(
        broad(json!([
            subscribe,
            deny(&["iot:Subscribe"], &[arn("topicfilter/$aws/*")])
        ])),
        [""; 0]
    );
}

#[test]
fn not_action_and_not_resource() {
    assert_eq!(
        broad(json!([{ "Effect": "Allow", "NotAction": "iot:Connect", "Resource": "*" }])),
        [
            "iot:Subscribe",
            "iot:GetThingShadow",
            "iot:DeleteThingShadow",
            "iot:UpdateThingShadow",
            "iot:Publish",
            "iot:DescribeJobExecution",
            "iot:GetPendingJobExecutions",
            "iot:StartNextPendingJobExecution",
            "iot:UpdateJobExecution",
            "iot:ListNamedShadowsForThing",
        ]
    );
    assert_eq!(
        broad(
            json!([{ "Effect": "Allow", "Action": "iot:Connect", "NotResource": arn("client/admin") }])
        ),
        ["iot:Connect"]
    );
    assert_eq!(
        broad(json!([{ "Effect": "Allow", "Action": "iot:Connect", "NotResource": "*" }])),
        [""; 0]
    );
    assert_eq!(
        broad(
            json!([{ "Effect": "Allow", "Action": "iot:Connect", "NotResource": arn("client/*") }])
        ),
        [""; 0]
    );
    // Deny NotAction: denies everything but Publish.
    assert_eq!(
        broad(json!([
            allow(&["iot:*"], &["*".into()]),
            { "Effect": "Deny", "NotAction": "iot:Publish", "Resource": "*" }
        ])),
        ["iot:Publish"]
    );
    // Deny NotResource: denies everything but the listed resource.
    assert_eq!(
        broad(json!([
            allow(&["iot:Connect"], &["*".into()]),
            { "Effect": "Deny", "Action": "iot:Connect", "NotResource": arn("client/sensor-1") }
        ])),
        [""; 0]
    );
    assert_eq!(
        broad(json!([
            allow(&["iot:Connect"], &["*".into()]),
            { "Effect": "Deny", "Action": "iot:Connect", "NotResource": arn("client/sensor-*") }
        ])),
        [""; 0]
    );
    assert_eq!(
        broad(json!([
            allow(&["iot:Connect"], &["*".into()]),
            { "Effect": "Deny", "Action": "iot:Connect", "NotResource": arn("client/*") }
        ])),
        ["iot:Connect"]
    );
}

#[test]
fn typical_device_policy_is_compliant() {
    let thing = "${iot:Connection.Thing.ThingName}";
    let analysis = run(&policy(json!([
        attached(
            allow(&["iot:Connect"], &[arn(&format!("client/{thing}"))]),
            json!("true")
        ),
        allow(
            &["iot:Publish", "iot:Receive"],
            &[
                arn(&format!("topic/$aws/things/{thing}/shadow/*")),
                arn(&format!("topic/sensors/{thing}/telemetry")),
            ]
        ),
        allow(
            &["iot:Subscribe"],
            &[arn(&format!("topicfilter/$aws/things/{thing}/shadow/*"))]
        ),
        allow(
            &["iot:GetThingShadow", "iot:UpdateThingShadow"],
            &[arn(&format!("thing/{thing}"))]
        ),
    ])));
    assert_eq!(analysis, Analysis::default());
}

// ---- IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK ----

fn building(deny_subscribe: &str, deny_receive: Option<&str>) -> Value {
    let mut statements = vec![
        allow(&["iot:Subscribe"], &[arn("topicfilter/building/*")]),
        deny(&["iot:Subscribe"], &[arn(deny_subscribe)]),
        allow(&["iot:Receive"], &[arn("topic/building/*")]),
    ];
    if let Some(topic) = deny_receive {
        statements.push(deny(&["iot:Receive"], &[arn(topic)]));
    }
    Value::Array(statements)
}

#[test]
fn mqtt_wildcard_in_deny_example() {
    let analysis = run(&policy(building(
        "topicfilter/building/control_room/#",
        None,
    )));
    assert_eq!(analysis.overly_permissive, None);
    assert_eq!(analysis.misconfigurations.len(), 1);
    let finding = &analysis.misconfigurations[0];
    assert_eq!(
        finding.reason_code,
        POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT
    );
    assert_eq!(
        finding.reason,
        format!(
            "Policy contains MQTT wildcards (+ or #) in Deny statement resources, where they \
             match only themselves: [{}].",
            arn("topicfilter/building/control_room/#")
        )
    );
    assert_eq!(
        codes(json!([deny(&["iot:Publish"], &[arn("topic/a/+/b")])])),
        [POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT]
    );
    // MQTT wildcards in an Allow are no misconfiguration (at worst, a literal filter).
    assert_eq!(
        codes(json!([allow(
            &["iot:Subscribe"],
            &[arn("topicfilter/a/#")]
        )])),
        [""; 0]
    );
    // A conditional Deny still carries the mistake.
    assert_eq!(
        codes(json!([attached(
            deny(&["iot:Subscribe"], &[arn("topicfilter/a/#")]),
            json!("true")
        )])),
        [POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT]
    );
    // Only topic and topic-filter resources.
    assert_eq!(
        codes(json!([deny(&["iot:Connect"], &[arn("client/a#b")])])),
        [""; 0]
    );
}

#[test]
fn topic_filters_intended_to_deny_example() {
    let analysis = run(&policy(building(
        "topicfilter/building/control_room/*",
        None,
    )));
    assert_eq!(analysis.overly_permissive, None);
    assert_eq!(
        analysis.misconfigurations,
        [palisade_iot_policy::Finding {
            reason_code: TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS,
            reason: format!(
                "Policy denies subscribing to topic filters whose messages can still be \
                 received through an allowed MQTT wildcard subscription: [{}].",
                arn("topicfilter/building/control_room/*")
            ),
        }]
    );
}

#[test]
fn documented_fix_is_compliant() {
    let fixed = building(
        "topicfilter/building/control_room/*",
        Some("topic/building/control_room/*"),
    );
    assert_eq!(run(&policy(fixed)), Analysis::default());
    // Denying Receive on one topic of the sub-tree leaves the others open.
    let partial = building(
        "topicfilter/building/control_room/*",
        Some("topic/building/control_room/data1"),
    );
    assert_eq!(
        codes(partial),
        [TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS]
    );
    // Both mistakes at once, in the stable order.
    let mut both = building("topicfilter/building/control_room/*", None);
    if let Value::Array(statements) = &mut both {
        statements.push(deny(
            &["iot:Subscribe"],
            &[arn("topicfilter/building/lobby/#")],
        ));
    }
    assert_eq!(
        codes(both),
        [
            POLICY_CONTAINS_MQTT_WILDCARDS_IN_DENY_STATEMENT,
            TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS
        ]
    );
}

#[test]
fn topic_filter_rule_needs_a_wildcard_subscription_and_receive() {
    let deny_room = deny(
        &["iot:Subscribe"],
        &[arn("topicfilter/building/control_room/*")],
    );
    let receive = allow(&["iot:Receive"], &[arn("topic/building/*")]);
    // Only specific filters may be subscribed: no wildcard reaches the denied sub-tree.
    assert_eq!(
        codes(json!([
            allow(&["iot:Subscribe"], &[arn("topicfilter/building/lobby/*")]),
            deny_room,
            receive
        ])),
        [""; 0]
    );
    // No Receive on the sub-tree: nothing is delivered.
    assert_eq!(
        codes(json!([
            allow(&["iot:Subscribe"], &[arn("topicfilter/building/*")]),
            deny_room,
            allow(&["iot:Receive"], &[arn("topic/building/lobby/*")])
        ])),
        [""; 0]
    );
    // `building/+/#` is enough, and `#` at the root too.
    assert_eq!(
        codes(json!([
            allow(&["iot:Subscribe"], &[arn("topicfilter/building/+/#")]),
            deny_room,
            receive
        ])),
        [TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS]
    );
    assert_eq!(
        codes(json!([
            allow(&["iot:Subscribe"], &[arn("topicfilter/#")]),
            deny_room,
            receive
        ])),
        [TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS]
    );
    // A Deny on the wildcard filters themselves closes the gap.
    assert_eq!(
        codes(json!([
            allow(&["iot:Subscribe"], &[arn("topicfilter/building/*")]),
            deny_room,
            deny(&["iot:Subscribe"], &[arn("topicfilter/building/*")]),
            receive
        ])),
        [""; 0]
    );
    // iot:* Allows count as Subscribe and Receive.
    assert_eq!(
        codes(json!([allow(&["iot:*"], &[arn("*")]), deny_room])),
        [TOPIC_FILTERS_INTENDED_TO_DENY_ALLOWED_USING_WILDCARDS]
    );
}

// ---- input handling ----

#[test]
fn documents_without_statements_are_errors() {
    let err = |doc: &str| analyse(doc, ACCOUNT, REGION).unwrap_err();
    assert!(matches!(err("not json"), PolicyError::NotJson(_)));
    assert!(matches!(err(""), PolicyError::NotJson(_)));
    assert_eq!(err("[]"), PolicyError::NotAnObject);
    assert_eq!(err("\"x\""), PolicyError::NotAnObject);
    assert_eq!(
        err(r#"{"Version":"2012-10-17"}"#),
        PolicyError::MissingStatement
    );
    assert_eq!(err(r#"{"Statement":7}"#), PolicyError::InvalidStatement);
    assert!(!err("[]").to_string().is_empty());
    // Deep nesting hits serde_json's recursion limit instead of the stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(err(&deep), PolicyError::NotJson(_)));
}

#[test]
fn odd_statements_are_skipped() {
    let analysis = run(&policy(json!([
        1,
        null,
        { "Effect": "Allow" },
        { "Effect": "Permit", "Action": "*", "Resource": "*" },
        { "Effect": "Allow", "Action": 5, "Resource": "*" },
        { "Effect": "Allow", "Action": ["iot:Connect", 5], "Resource": [null, arn("client/*")] },
        { "Effect": "Allow", "Action": "iot:Publish", "Resource": {} },
    ])));
    assert_eq!(analysis.broad_actions, ["iot:Connect"]);
    assert_eq!(run(&policy(json!([]))), Analysis::default());
}
