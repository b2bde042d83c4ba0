//! The documented examples of the four role checks (reference §2.1, §2.3 applied to IAM
//! statements, §2.5), plus the semantics around them.

use std::collections::BTreeSet;

use palisade_iam_policy::{
    analyse_role, non_thing_admin_actions, unused_services, Finding, PolicyError, RoleAnalysis,
    RoleUse, ALLOWS_ACCESS_TO_IOT_ADMIN_ACTIONS, ALLOWS_ACCESS_TO_IOT_NON_THING_ADMIN_ACTIONS,
    ALLOWS_ACCESS_TO_IOT_THING_ADMIN_WRITE_ACTIONS, ALLOWS_ACCESS_TO_SECURITY_AUDITING_SERVICES,
    ALLOWS_ACCESS_TO_UNUSED_SERVICES, ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS,
    ALLOWS_BROAD_ACCESS_TO_IOT_THING_ADMIN_READ_ACTIONS, ALLOWS_BROAD_ACCESS_TO_USED_SERVICES,
    AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK, IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK,
    UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK,
};
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

const AUTH: RoleUse = RoleUse::CognitoAuthenticated;
const UNAUTH: RoleUse = RoleUse::CognitoUnauthenticated;
const ALIAS: RoleUse = RoleUse::RoleAlias;

const WRITE: &str = ALLOWS_ACCESS_TO_IOT_THING_ADMIN_WRITE_ACTIONS;
const READ: &str = ALLOWS_BROAD_ACCESS_TO_IOT_THING_ADMIN_READ_ACTIONS;
const NON_THING: &str = ALLOWS_ACCESS_TO_IOT_NON_THING_ADMIN_ACTIONS;
const ADMIN: &str = ALLOWS_ACCESS_TO_IOT_ADMIN_ACTIONS;
const DATA: &str = ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS;
const AUDITING: &str = ALLOWS_ACCESS_TO_SECURITY_AUDITING_SERVICES;
const USED: &str = ALLOWS_BROAD_ACCESS_TO_USED_SERVICES;

fn arn(rest: &str) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT}:{rest}")
}

fn doc(statements: Value) -> String {
    json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

fn allow(actions: &[&str], resources: &[String]) -> Value {
    json!({ "Effect": "Allow", "Action": actions, "Resource": resources })
}

fn deny(actions: &[&str], resources: &[String]) -> Value {
    json!({ "Effect": "Deny", "Action": actions, "Resource": resources })
}

fn attached(mut statement: Value) -> Value {
    statement["Condition"] = json!({ "Bool": { "iot:Connection.Thing.IsAttached": "true" } });
    statement
}

fn all() -> Vec<String> {
    vec!["*".to_owned()]
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn analyse_docs(
    documents: &[String],
    role_use: RoleUse,
    used: Option<&BTreeSet<String>>,
) -> RoleAnalysis {
    let texts: Vec<&str> = documents.iter().map(String::as_str).collect();
    analyse_role(&texts, ACCOUNT, REGION, role_use, used).expect("valid documents")
}

fn analyse(statements: Value, role_use: RoleUse) -> RoleAnalysis {
    analyse_docs(&[doc(statements)], role_use, Some(&set(&["iot"])))
}

fn codes(statements: Value, role_use: RoleUse) -> Vec<&'static str> {
    analyse(statements, role_use)
        .overly_permissive
        .iter()
        .map(|f| f.reason_code)
        .collect()
}

fn reason(statements: Value, role_use: RoleUse, code: &str) -> Option<String> {
    analyse(statements, role_use)
        .overly_permissive
        .into_iter()
        .find(|f| f.reason_code == code)
        .map(|f| f.reason)
}

const NONE: [&str; 0] = [];

#[test]
fn check_names() {
    assert_eq!(ALIAS.check_name(), IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK);
    assert_eq!(
        AUTH.check_name(),
        AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK
    );
    assert_eq!(
        UNAUTH.check_name(),
        UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK
    );
}

/// §2.3's table, one row per example, as IAM statements, judged the same for every use.
#[test]
fn data_plane_examples() {
    let thing_name = "${iot:Connection.Thing.ThingName}";
    let cases: Vec<(&str, Value, bool)> = vec![
        (
            "connect any client",
            allow(&["iot:Connect"], &[arn("client/*")]),
            true,
        ),
        (
            "connect ClientId without IsAttached",
            allow(&["iot:Connect"], &[arn("client/${iot:ClientId}")]),
            true,
        ),
        (
            "connect ClientId with IsAttached",
            attached(allow(&["iot:Connect"], &[arn("client/${iot:ClientId}")])),
            false,
        ),
        (
            "connect own thing name with IsAttached",
            attached(allow(
                &["iot:Connect"],
                &[arn(&format!("client/{thing_name}"))],
            )),
            false,
        ),
        (
            "publish any device's shadow update",
            allow(
                &["iot:Publish"],
                &[arn("topic/$aws/things/*/shadow/update")],
            ),
            true,
        ),
        (
            "publish any device's reserved topics",
            allow(&["iot:Publish"], &[arn("topic/$aws/things/*")]),
            true,
        ),
        (
            "publish own shadow",
            allow(
                &["iot:Publish"],
                &[arn(&format!("topic/$aws/things/{thing_name}/shadow/*"))],
            ),
            false,
        ),
        (
            "subscribe any device's topics",
            allow(&["iot:Subscribe"], &[arn("topicfilter/$aws/things/*")]),
            true,
        ),
        (
            "subscribe with #",
            allow(&["iot:Subscribe"], &[arn("topicfilter/$aws/things/#")]),
            true,
        ),
        (
            "subscribe with +",
            allow(
                &["iot:Subscribe"],
                &[arn("topicfilter/$aws/things/+/shadow/update")],
            ),
            true,
        ),
        (
            "subscribe own shadow and jobs",
            allow(
                &["iot:Subscribe"],
                &[
                    arn(&format!("topicfilter/$aws/things/{thing_name}/shadow/*")),
                    arn(&format!("topicfilter/$aws/things/{thing_name}/jobs/*")),
                ],
            ),
            false,
        ),
        (
            "receive is bounded by subscribe",
            allow(&["iot:Receive"], &[arn("topic/$aws/things/*")]),
            false,
        ),
        (
            "shadow and job APIs on every thing",
            allow(
                &[
                    "iot:DeleteThingShadow",
                    "iot:GetThingShadow",
                    "iot:UpdateThingShadow",
                    "iot:DescribeJobExecution",
                    "iot:GetPendingJobExecutions",
                    "iot:StartNextPendingJobExecution",
                    "iot:UpdateJobExecution",
                ],
                &[arn("thing/*")],
            ),
            true,
        ),
        (
            "shadow and job APIs on named things",
            allow(
                &[
                    "iot:DeleteThingShadow",
                    "iot:GetThingShadow",
                    "iot:UpdateThingShadow",
                    "iot:DescribeJobExecution",
                    "iot:GetPendingJobExecutions",
                    "iot:StartNextPendingJobExecution",
                    "iot:UpdateJobExecution",
                ],
                &[arn("thing/MyThing1"), arn("thing/MyThing2")],
            ),
            false,
        ),
        (
            "Cognito identity in the thing position",
            allow(
                &["iot:GetThingShadow"],
                &[arn("thing/${cognito-identity.amazonaws.com:sub}")],
            ),
            false,
        ),
    ];
    for (name, statement, broad) in cases {
        for role_use in [ALIAS, AUTH, UNAUTH] {
            let found = codes(json!([statement.clone()]), role_use);
            let expected: &[&str] = if broad { &[DATA] } else { &[] };
            assert_eq!(found, expected, "{name} ({role_use:?})");
        }
    }
}

#[test]
fn data_plane_message_is_awss_with_role() {
    assert_eq!(
        reason(json!([allow(&["iot:*"], &all())]), AUTH, DATA).as_deref(),
        Some(
            "Role allows broad access to IoT data plane actions: [iot:Subscribe, iot:Connect, \
             iot:GetThingShadow, iot:DeleteThingShadow, iot:UpdateThingShadow, iot:Publish]."
        )
    );
}

/// §2.5, thing write: non-compliant on any resource for both Cognito roles.
#[test]
fn thing_write_examples() {
    for resource in [arn("thing/MyThing"), arn("thing/*"), "*".to_owned()] {
        let statement = json!([allow(&["iot:CreateThing", "iot:DeleteThing"], &[resource])]);
        assert_eq!(codes(statement.clone(), AUTH), [WRITE]);
        assert_eq!(codes(statement.clone(), ALIAS), [WRITE]);
        assert_eq!(codes(statement.clone(), UNAUTH), [ADMIN]);
        assert_eq!(
            reason(statement, AUTH, WRITE).as_deref(),
            Some("Role allows access to IoT thing admin write actions: [iot:CreateThing, iot:DeleteThing].")
        );
    }
    // Every write action, each alone.
    for action in palisade_iam_policy::THING_ADMIN_WRITE_ACTIONS {
        let statement = json!([allow(&[&format!("iot:{action}")], &all())]);
        assert_eq!(codes(statement.clone(), AUTH), [WRITE], "{action}");
        assert_eq!(codes(statement, UNAUTH), [ADMIN], "{action}");
    }
}

/// §2.5, thing admin read: broad on `thing/*`, compliant on a named thing or a prefix
/// for the authenticated role; non-compliant even for one named thing when
/// unauthenticated.
#[test]
fn thing_read_examples() {
    let read = ["iot:DescribeThing", "iot:ListThingPrincipals"];
    let cases: Vec<(String, bool)> = vec![
        (arn("thing/*"), true),
        ("*".to_owned(), true),
        ("arn:aws:iot:*:*:thing/*".to_owned(), true),
        (arn("thing/MyThing"), false),
        (arn("thing/MyThing*"), false),
        (arn("thing/MyThing?"), false),
        (arn("thing/${cognito-identity.amazonaws.com:sub}"), false),
    ];
    for (resource, broad) in cases {
        let statement = json!([allow(&read, std::slice::from_ref(&resource))]);
        let expected: &[&str] = if broad { &[READ] } else { &[] };
        assert_eq!(codes(statement.clone(), AUTH), expected, "{resource}");
        assert_eq!(codes(statement.clone(), ALIAS), expected, "{resource}");
        assert_eq!(codes(statement, UNAUTH), [ADMIN], "{resource}");
    }
    assert_eq!(
        reason(json!([allow(&read, &all())]), AUTH, READ).as_deref(),
        Some(
            "Role allows broad access to IoT thing admin read actions: [iot:DescribeThing, \
             iot:ListThingPrincipals]."
        )
    );
    assert_eq!(
        reason(
            json!([allow(&["iot:DescribeThing"], &[arn("thing/MyThing")])]),
            UNAUTH,
            ADMIN
        )
        .as_deref(),
        Some("Role allows access to IoT admin actions: [iot:DescribeThing].")
    );
    // NotResource reaches every thing it does not list.
    let not_resource = json!([{
        "Effect": "Allow", "Action": "iot:DescribeThing", "NotResource": arn("thing/MyThing")
    }]);
    assert_eq!(codes(not_resource, AUTH), [READ]);
}

/// §2.5, non-thing admin: non-compliant for both roles.
#[test]
fn non_thing_admin_examples() {
    let statement = json!([allow(&["iot:CreatePolicy", "iot:AttachPolicy"], &all())]);
    assert_eq!(codes(statement.clone(), AUTH), [NON_THING]);
    assert_eq!(codes(statement.clone(), ALIAS), [NON_THING]);
    assert_eq!(codes(statement.clone(), UNAUTH), [ADMIN]);
    assert_eq!(
        reason(statement, AUTH, NON_THING).as_deref(),
        Some("Role allows access to IoT non-thing admin actions: [iot:AttachPolicy, iot:CreatePolicy].")
    );
}

#[test]
fn iot_star_lists_ten_actions_and_counts_the_rest() {
    let statement = json!([allow(&["iot:*"], &all())]);
    assert_eq!(
        codes(statement.clone(), AUTH),
        [READ, NON_THING, WRITE, DATA]
    );
    assert_eq!(codes(statement.clone(), UNAUTH), [ADMIN, DATA]);
    let non_thing = non_thing_admin_actions();
    let first: Vec<String> = non_thing[..10].iter().map(|a| format!("iot:{a}")).collect();
    assert_eq!(
        reason(statement.clone(), AUTH, NON_THING),
        Some(format!(
            "Role allows access to IoT non-thing admin actions: [{}] and {} more.",
            first.join(", "),
            non_thing.len() - 10
        ))
    );
    assert_eq!(
        reason(statement, UNAUTH, ADMIN),
        Some(format!(
            "Role allows access to IoT admin actions: [iot:AddThingToThingGroup, \
             iot:AttachThingPrincipal, iot:CreateThing, iot:DeleteThing, \
             iot:DetachThingPrincipal, iot:ListThings, iot:ListThingsInThingGroup, \
             iot:RegisterThing, iot:RemoveThingFromThingGroup, iot:UpdateThing] and {} more.",
            1 + 4 + non_thing.len()
        ))
    );
}

/// The role alias check's own reasons: full access to a used service, and any access
/// to a security auditing service.
#[test]
fn role_alias_examples() {
    let used = set(&["iot", "s3"]);
    let run = |statements: Value| -> Vec<Finding> {
        analyse_docs(&[doc(statements)], ALIAS, Some(&used)).overly_permissive
    };
    let found = run(json!([allow(&["s3:*"], &all())]));
    assert_eq!(
        found,
        [Finding {
            reason_code: USED,
            reason: "Role allows broad access to services it used in the last year: [s3].".into()
        }]
    );
    // Full access to an unused service is the unused check's business, not this one's.
    assert!(run(json!([allow(&["dynamodb:*"], &all())])).is_empty());
    // Some actions of a used service are fine.
    assert!(run(json!([allow(&["s3:GetObject", "s3:Put*"], &all())])).is_empty());
    // `s3*` (no colon) and `S3:*` cover every s3 action too.
    assert_eq!(run(json!([allow(&["s3*"], &all())]))[0].reason_code, USED);
    assert_eq!(run(json!([allow(&["S3:*"], &all())]))[0].reason_code, USED);
    // A Deny of part of the service on every resource ends full access; on one bucket it
    // does not.
    assert!(run(json!([
        allow(&["s3:*"], &all()),
        deny(&["s3:DeleteBucket"], &all())
    ]))
    .is_empty());
    assert_eq!(
        run(json!([
            allow(&["s3:*"], &all()),
            deny(&["s3:DeleteBucket"], &["arn:aws:s3:::logs".to_owned()])
        ]))[0]
            .reason_code,
        USED
    );

    let found = run(json!([allow(
        &["iam:GetRole", "cloudtrail:LookupEvents"],
        &all()
    )]));
    assert_eq!(
        found,
        [Finding {
            reason_code: AUDITING,
            reason: "Role allows access to security auditing services: [cloudtrail, iam].".into()
        }]
    );
    for service in ["guardduty", "inspector", "trustedadvisor"] {
        let action = format!("{service}:List*");
        assert_eq!(
            run(json!([allow(&[&action], &all())]))[0].reason_code,
            AUDITING
        );
    }

    // `*`: every reason of the check at once, in the table's order.
    let codes: Vec<&str> = run(json!([allow(&["*"], &all())]))
        .iter()
        .map(|f| f.reason_code)
        .collect();
    assert_eq!(codes, [USED, AUDITING, READ, NON_THING, WRITE, DATA]);
    let found = run(json!([allow(&["*"], &all())]));
    assert_eq!(
        found[0].reason,
        "Role allows broad access to services it used in the last year: [iot, s3]."
    );
    assert_eq!(
        found[1].reason,
        "Role allows access to security auditing services: [cloudtrail, guardduty, iam, \
         inspector, trustedadvisor]."
    );
}

#[test]
fn service_prefix_wildcards() {
    let analysis = analyse(json!([allow(&["i*:*"], &all())]), ALIAS);
    let auditing = analysis
        .overly_permissive
        .iter()
        .find(|f| f.reason_code == AUDITING)
        .map(|f| f.reason.as_str());
    assert_eq!(
        auditing,
        Some("Role allows access to security auditing services: [iam, inspector].")
    );
    // `i*:*` reaches iot: the admin classes and the data plane too, and full access to
    // iot, which was used.
    let codes: Vec<&str> = analysis
        .overly_permissive
        .iter()
        .map(|f| f.reason_code)
        .collect();
    assert_eq!(codes, [USED, AUDITING, READ, NON_THING, WRITE, DATA]);
    assert_eq!(analysis.granted_services, set(&["i*"]));
    // `?am:Get*` reaches iam; `*:GetRole` reaches iam; `*Role` too.
    for pattern in ["?am:Get*", "*:GetRole", "*Role", "IAM:getrole"] {
        assert_eq!(
            codes_of(json!([allow(&[pattern], &all())]), ALIAS),
            [AUDITING],
            "{pattern}"
        );
    }
    // `ia?:*` does not reach inspector; `c*:*` reaches cloudtrail.
    assert_eq!(
        reason(json!([allow(&["c*:*"], &all())]), ALIAS, AUDITING).as_deref(),
        Some("Role allows access to security auditing services: [cloudtrail].")
    );
    // `io*:Create*` reaches iot:CreateThing and non-thing admin creations, not iam.
    assert_eq!(
        codes_of(json!([allow(&["io*:Create*"], &all())]), AUTH),
        [NON_THING, WRITE]
    );
}

fn codes_of(statements: Value, role_use: RoleUse) -> Vec<&'static str> {
    codes(statements, role_use)
}

#[test]
fn not_action_grants_everything_it_does_not_list() {
    let statement = json!([{ "Effect": "Allow", "NotAction": "iam:*", "Resource": "*" }]);
    let analysis = analyse(statement.clone(), ALIAS);
    assert_eq!(
        analysis.overly_permissive[1].reason,
        "Role allows access to security auditing services: [cloudtrail, guardduty, inspector, \
         trustedadvisor]."
    );
    assert_eq!(analysis.granted_services, set(&["*"]));
    assert_eq!(
        codes(statement, AUTH),
        [READ, NON_THING, WRITE, DATA],
        "NotAction iam:* grants all of iot"
    );
    // NotAction of all of iot grants no IoT action.
    let statement =
        json!([{ "Effect": "Allow", "NotAction": ["iot:*", "iam:*"], "Resource": "*" }]);
    assert_eq!(codes(statement.clone(), AUTH), NONE);
    assert_eq!(codes(statement, UNAUTH), NONE);
    // NotAction "*" grants nothing.
    let statement = json!([{ "Effect": "Allow", "NotAction": "*", "Resource": "*" }]);
    let analysis = analyse(statement, ALIAS);
    assert!(analysis.overly_permissive.is_empty());
    assert!(analysis.granted_services.is_empty());
}

#[test]
fn conditions_do_not_narrow_allows_and_conditional_denies_do_not_subtract() {
    let mut statement = allow(&["iot:CreateThing"], &all());
    statement["Condition"] = json!({ "StringEquals": { "aws:SourceVpc": "vpc-1" } });
    assert_eq!(codes(json!([statement.clone()]), AUTH), [WRITE]);
    let mut conditional_deny = deny(&["iot:CreateThing"], &all());
    conditional_deny["Condition"] = json!({ "Bool": { "aws:SecureTransport": "false" } });
    assert_eq!(
        codes(
            json!([allow(&["iot:CreateThing"], &all()), conditional_deny]),
            AUTH
        ),
        [WRITE]
    );
}

#[test]
fn denies_subtract_across_documents() {
    let allow_doc = doc(json!([allow(&["iot:*", "iam:GetRole"], &all())]));
    let run = |deny_statements: Value| -> Vec<&'static str> {
        analyse_docs(
            &[allow_doc.clone(), doc(deny_statements)],
            ALIAS,
            Some(&set(&["iot"])),
        )
        .overly_permissive
        .iter()
        .map(|f| f.reason_code)
        .collect()
    };
    assert_eq!(
        run(json!([])),
        [USED, AUDITING, READ, NON_THING, WRITE, DATA]
    );
    // Deny everything: nothing left.
    assert_eq!(run(json!([deny(&["*"], &all())])), NONE);
    // Deny iot and iam in another policy.
    assert_eq!(run(json!([deny(&["iot:*", "iam:*"], &all())])), NONE);
    // Deny the data plane on every resource (Deny in one document, Allow in another).
    assert_eq!(
        run(json!([deny(
            &[
                "iot:Connect",
                "iot:Publish",
                "iot:Subscribe",
                "iot:*ThingShadow",
                "iot:*JobExecution*",
                "iot:ListNamedShadowsForThing"
            ],
            &all()
        )])),
        [AUDITING, READ, NON_THING, WRITE],
        "and iot:* is no longer full access to iot"
    );
    // Denying one write action leaves the others; denying all of them removes the code
    // (the data plane survives: its Deny is not for its actions).
    let analysis = analyse_docs(
        &[
            doc(json!([allow(
                &["iot:CreateThing", "iot:DeleteThing"],
                &all()
            )])),
            doc(json!([deny(&["iot:DeleteThing"], &all())])),
        ],
        AUTH,
        None,
    );
    assert_eq!(
        analysis.overly_permissive[0].reason,
        "Role allows access to IoT thing admin write actions: [iot:CreateThing]."
    );
    // A Deny on one thing does not take away the grant on the others.
    assert_eq!(
        codes(
            json!([
                allow(&["iot:CreateThing"], &all()),
                deny(&["iot:CreateThing"], &[arn("thing/a")])
            ]),
            AUTH
        ),
        [WRITE]
    );
    // A Deny on every thing leaves the broad read compliant for the authenticated role.
    assert_eq!(
        codes(
            json!([
                allow(&["iot:DescribeThing"], &all()),
                deny(&["iot:DescribeThing"], &[arn("thing/*")])
            ]),
            AUTH
        ),
        NONE
    );
    // Two Denies whose union covers the grant subtract together.
    assert_eq!(
        codes(
            json!([
                allow(&["iot:CreateThing"], &[arn("thing/a*")]),
                deny(&["iot:CreateThing"], &[arn("thing/a")]),
                deny(&["iot:CreateThing"], &[arn("thing/a?*")])
            ]),
            AUTH
        ),
        NONE
    );
    // A Deny with NotResource covers what it does not list.
    assert_eq!(
        codes(
            json!([
                allow(&["iot:CreateThing"], &[arn("thing/a")]),
                { "Effect": "Deny", "Action": "iot:*", "NotResource": arn("thing/b") }
            ]),
            AUTH
        ),
        NONE
    );
    // A Deny with NotAction covers the actions it does not list.
    assert_eq!(
        codes(
            json!([
                allow(&["iot:CreateThing", "iot:CreatePolicy"], &all()),
                { "Effect": "Deny", "NotAction": "iot:CreatePolicy", "Resource": "*" }
            ]),
            AUTH
        ),
        [NON_THING]
    );
    // Security auditing: a Deny of iam's reads leaves its writes.
    assert_eq!(
        analyse_docs(
            &[
                doc(json!([allow(&["iam:*"], &all())])),
                doc(json!([deny(&["iam:Get*", "iam:List*"], &all())]))
            ],
            ALIAS,
            Some(&set(&["iot"]))
        )
        .overly_permissive[0]
            .reason_code,
        AUDITING
    );
    assert_eq!(
        analyse_docs(
            &[
                doc(json!([allow(&["iam:Get*"], &all())])),
                doc(json!([deny(&["iam:*"], &all())]))
            ],
            ALIAS,
            Some(&set(&["iot"]))
        )
        .overly_permissive,
        []
    );
}

#[test]
fn iot_resources_of_other_accounts_and_regions_are_not_this_audits() {
    let statement = json!([allow(
        &["iot:CreateThing"],
        &["arn:aws:iot:eu-west-1:123456789012:thing/*".to_owned()]
    )]);
    assert_eq!(codes(statement, AUTH), NONE);
    let statement = json!([allow(
        &["iot:CreateThing"],
        &["arn:aws:iot:*:*:thing/*".to_owned()]
    )]);
    assert_eq!(codes(statement, AUTH), [WRITE]);
}

#[test]
fn unused_services_example() {
    // The reference's example: the role used only IoT in the past year, but also allows
    // iam:GetRole and dynamodb:PutItem.
    let used = set(&["iot"]);
    let analysis = analyse_docs(
        &[doc(json!([
            allow(
                &["iot:Connect"],
                &[arn("client/${iot:Connection.Thing.ThingName}")]
            ),
            allow(&["iam:GetRole"], &all()),
            allow(
                &["dynamodb:PutItem"],
                &["arn:aws:dynamodb:us-east-1:123456789012:table/t".to_owned()]
            ),
        ]))],
        ALIAS,
        Some(&used),
    );
    assert_eq!(analysis.granted_services, set(&["dynamodb", "iam", "iot"]));
    assert_eq!(
        unused_services(&analysis, &used),
        Some(Finding {
            reason_code: ALLOWS_ACCESS_TO_UNUSED_SERVICES,
            reason: "Role allows access to services it did not use in the last year: \
                     [dynamodb, iam]."
                .into()
        })
    );
    assert_eq!(
        unused_services(&analysis, &set(&["IoT", "iam", "dynamodb"])),
        None
    );
    // `*` counts as unused unless everything was used.
    let analysis = analyse_docs(&[doc(json!([allow(&["*"], &all())]))], ALIAS, Some(&used));
    assert_eq!(analysis.granted_services, set(&["*"]));
    assert_eq!(
        unused_services(&analysis, &used).map(|f| f.reason),
        Some("Role allows access to services it did not use in the last year: [*].".into())
    );
    assert_eq!(unused_services(&analysis, &set(&["*"])), None);
    // A service whose every action is denied is not granted.
    let analysis = analyse_docs(
        &[
            doc(json!([allow(&["iot:*", "s3:*"], &all())])),
            doc(json!([deny(&["s3:*"], &all())])),
        ],
        ALIAS,
        Some(&used),
    );
    assert_eq!(analysis.granted_services, set(&["iot"]));
    assert_eq!(unused_services(&analysis, &used), None);
}

#[test]
fn tidy_least_privilege_role_has_no_findings() {
    let thing = "${iot:Connection.Thing.ThingName}";
    let statements = json!([
        attached(allow(&["iot:Connect"], &[arn(&format!("client/{thing}"))])),
        allow(
            &["iot:Publish", "iot:Receive"],
            &[arn(&format!("topic/$aws/things/{thing}/*"))]
        ),
        allow(
            &["iot:Subscribe"],
            &[arn(&format!("topicfilter/$aws/things/{thing}/*"))]
        ),
        allow(
            &["iot:GetThingShadow", "iot:UpdateThingShadow"],
            &[arn(&format!("thing/{thing}"))]
        ),
        allow(&["s3:GetObject"], &["arn:aws:s3:::firmware/*".to_owned()]),
    ]);
    let used = set(&["iot", "s3"]);
    for role_use in [ALIAS, AUTH, UNAUTH] {
        let analysis = analyse_docs(&[doc(statements.clone())], role_use, Some(&used));
        assert_eq!(analysis.overly_permissive, [], "{role_use:?}");
        assert_eq!(analysis.undecided, NONE);
        assert_eq!(analysis.granted_services, used);
        assert_eq!(unused_services(&analysis, &used), None);
        // Without last-accessed data nothing is undecided: no full service access.
        let analysis = analyse_docs(&[doc(statements.clone())], role_use, None);
        assert_eq!(analysis.undecided, NONE);
    }
    // An authenticated role may read its own things by name or prefix.
    let statements = json!([allow(
        &["iot:DescribeThing", "iot:ListThingPrincipals"],
        &[
            arn("thing/${cognito-identity.amazonaws.com:sub}"),
            arn("thing/sensor-*")
        ]
    )]);
    assert_eq!(codes(statements, AUTH), NONE);
}

#[test]
fn undecided_without_last_accessed_data() {
    for actions in [&["s3:*"][..], &["*"], &["s3*"], &["i*:*"]] {
        let analysis = analyse_docs(&[doc(json!([allow(actions, &all())]))], ALIAS, None);
        assert_eq!(analysis.undecided, [USED], "{actions:?}");
        assert!(!analysis
            .overly_permissive
            .iter()
            .any(|f| f.reason_code == USED));
    }
    let analysis = analyse_docs(
        &[doc(
            json!([{ "Effect": "Allow", "NotAction": "iam:*", "Resource": "*" }]),
        )],
        ALIAS,
        None,
    );
    assert_eq!(analysis.undecided, [USED]);
    // Only the role alias check has the code.
    let analysis = analyse_docs(&[doc(json!([allow(&["*"], &all())]))], AUTH, None);
    assert_eq!(analysis.undecided, NONE);
    // Some actions only: decided.
    let analysis = analyse_docs(
        &[doc(json!([allow(&["s3:GetObject", "s3:List*"], &all())]))],
        ALIAS,
        None,
    );
    assert_eq!(analysis.undecided, NONE);
}

#[test]
fn documents_are_read_strictly() {
    let run = |texts: &[&str]| analyse_role(texts, ACCOUNT, REGION, ALIAS, None);
    assert_eq!(
        run(&[
            r#"{"Statement":[]}"#,
            r#"{"Statement":{"Effect":"Allow","Effect":"Deny","Action":"*","Resource":"*"}}"#
        ]),
        Err(PolicyError::DuplicateKey {
            document: 1,
            key: "Effect".into()
        })
    );
    let error = run(&[r#"{"Statement":[],"Statement":[]}"#]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "policy document 0 has the key `Statement` twice"
    );
    assert!(matches!(
        run(&[r#"{"Statement":{"Effect":"Allow","Condition":{"Bool":{"a":"1","a":"2"}}}}"#]),
        Err(PolicyError::DuplicateKey { key, .. }) if key == "a"
    ));
    for (text, expected) in [
        ("", "NotJson"),
        ("{", "NotJson"),
        ("nul", "NotJson"),
        ("{\"Statement\":[]} {}", "NotJson"),
        ("null", "NotAnObject"),
        ("[]", "NotAnObject"),
        ("\"policy\"", "NotAnObject"),
        ("{}", "MissingStatement"),
        (r#"{"Version":"2012-10-17"}"#, "MissingStatement"),
        (r#"{"Statement":5}"#, "InvalidStatement"),
        (r#"{"Statement":"Allow"}"#, "InvalidStatement"),
        (r#"{"Statement":null}"#, "InvalidStatement"),
    ] {
        let error = run(&[text]).expect_err(text);
        assert!(
            format!("{error:?}").starts_with(expected),
            "{text}: {error:?}"
        );
    }
}

#[test]
fn odd_but_valid_documents_do_not_panic() {
    let cases = [
        r#"{"Statement":[1,"x",null,{"Effect":"Maybe"},{}]}"#,
        r#"{"Statement":{"Effect":"Allow","Action":5,"Resource":{}}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":[]}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"","Resource":""}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":":","Resource":"${"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"arn:aws:iot:${}:${$}${*}${?}"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"ïöt:*","Resource":"é*"}}"#,
        r#"{"Statement":{"Effect":"Deny","Action":"*","NotAction":"*","Resource":"*","NotResource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":["iot:*"],"NotAction":["iot:C*"],"Resource":"*","NotResource":"x"}}"#,
    ];
    for text in cases {
        for role_use in [ALIAS, AUTH, UNAUTH] {
            assert!(
                analyse_role(&[text], ACCOUNT, REGION, role_use, Some(&set(&["iot"]))).is_ok(),
                "{text}"
            );
        }
    }
    // No Action or no Resource: the statement applies to nothing.
    for text in &cases[2..5] {
        let analysis = analyse_role(&[text], ACCOUNT, REGION, AUTH, None).unwrap();
        assert_eq!(analysis.overly_permissive, [], "{text}");
        assert!(analysis.granted_services.is_empty(), "{text}");
    }
    // An ambiguous Allow (Action and NotAction) grants the union.
    let analysis = analyse_role(&[cases[10]], ACCOUNT, REGION, AUTH, None).unwrap();
    assert_eq!(
        analysis
            .overly_permissive
            .iter()
            .map(|f| f.reason_code)
            .collect::<Vec<_>>(),
        [READ, NON_THING, WRITE, DATA]
    );
    // No documents at all: nothing granted.
    let analysis = analyse_role(&[], ACCOUNT, REGION, ALIAS, None).unwrap();
    assert_eq!(analysis, RoleAnalysis::default());
}

#[test]
fn pathological_patterns_end_in_time() {
    let star = "*a".repeat(200);
    let statements: Vec<Value> = (0..40)
        .map(|i| {
            json!({
                "Effect": if i % 2 == 0 { "Allow" } else { "Deny" },
                "Action": [format!("{star}{i}"), format!("i*{i}?*:*")],
                "Resource": [format!("{star}{i}*b*c*"), format!("arn:*:{i}*")],
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let texts = [doc(Value::Array(statements))];
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert!(analyse_role(&texts, ACCOUNT, REGION, ALIAS, None).is_ok());
    assert!(started.elapsed().as_secs() < 60);
}

/// A large read-only role in the style of AWS's managed policies (hundreds of patterns
/// over a hundred services) stays well within the work budget: a role that ran out would
/// keep denied services granted.
#[test]
fn large_managed_style_role() {
    let mut actions: Vec<String> = (0..120)
        .flat_map(|i| ["Get*", "List*", "Describe*"].map(|verb| format!("service{i}:{verb}")))
        .collect();
    actions.extend(
        [
            "s3:Get*",
            "s3:List*",
            "iam:Get*",
            "iot:Describe*",
            "iot:List*",
        ]
        .map(String::from),
    );
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let analysis = analyse_docs(
        &[
            doc(json!([allow(&actions, &all())])),
            doc(json!([
                deny(&["s3:*", "service7:*"], &all()),
                deny(&["iot:ListThing*"], &all())
            ])),
        ],
        ALIAS,
        Some(&set(&["iot", "s3"])),
    );
    let codes: Vec<&str> = analysis
        .overly_permissive
        .iter()
        .map(|f| f.reason_code)
        .collect();
    assert_eq!(
        codes,
        [AUDITING, READ, NON_THING, DATA],
        "DATA: iot:Describe* has DescribeJobExecution"
    );
    assert_eq!(analysis.granted_services.len(), 120 - 1 + 2);
    assert!(!analysis.granted_services.contains("s3"));
    assert!(!analysis.granted_services.contains("service7"));
    assert!(analysis.granted_services.contains("service8"));
}

/// Documents assembled at random from pieces of IAM syntax, valid JSON or not: every one
/// is answered (Ok or a PolicyError), none panics.
#[test]
fn random_documents_never_panic() {
    const PIECES: [&str; 24] = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"Effect\"",
        "\"Allow\"",
        "\"Deny\"",
        "\"Action\"",
        "\"NotAction\"",
        "\"Resource\"",
        "\"NotResource\"",
        "\"Condition\"",
        "\"Statement\"",
        "\"*\"",
        "\"iot:*\"",
        "\"i?:*\"",
        "\"arn:aws:iot:us-east-1:123456789012:thing/*\"",
        "\"${aws:username}\"",
        "1",
        "null",
        "\"s3:Get*\"",
        "\"thing/?*\"",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut answered = 0;
    for _ in 0..300 {
        let mut text = String::from("{\"Statement\":[");
        let length = 5 + next() % 40;
        for _ in 0..length {
            text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
        }
        if next() % 2 == 0 {
            text.push_str("]}");
        }
        for role_use in [ALIAS, AUTH, UNAUTH] {
            let _ = analyse_role(&[&text], ACCOUNT, REGION, role_use, Some(&set(&["iot"])));
            answered += 1;
        }
    }
    // Well-formed statements with random pieces in every slot.
    let values = [
        json!("*"),
        json!("iot:*"),
        json!(["iot:Create*", "iam:?et*"]),
        json!(5),
        json!({}),
        json!(null),
        json!(["${aws:username}", "arn:aws:iot:*:*:thing/?*"]),
        json!([]),
        json!({ "Bool": { "a": "true" } }),
    ];
    for _ in 0..300 {
        let mut statement = serde_json::Map::new();
        statement.insert(
            "Effect".into(),
            json!(if next() % 3 == 0 { "Deny" } else { "Allow" }),
        );
        for key in [
            "Action",
            "NotAction",
            "Resource",
            "NotResource",
            "Condition",
        ] {
            if next() % 2 == 0 {
                statement.insert(
                    key.into(),
                    values[(next() % values.len() as u64) as usize].clone(),
                );
            }
        }
        let text = doc(json!([statement]));
        for role_use in [ALIAS, AUTH, UNAUTH] {
            assert!(
                analyse_role(&[&text], ACCOUNT, REGION, role_use, None).is_ok(),
                "{text}"
            );
            answered += 1;
        }
    }
    assert_eq!(answered, 1800);
}
