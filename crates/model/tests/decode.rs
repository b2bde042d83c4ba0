//! The generated decoders and constraint checks, driven through the operation table the
//! API layer routes with.

use palisade_model::runtime::RawRequest;
use palisade_model::{Request, Timestamp, OPERATIONS};

fn decode(
    op: &str,
    labels: &[(&'static str, &str)],
    query: &[(&str, &str)],
    body: &str,
) -> Result<Request, String> {
    let spec = OPERATIONS
        .iter()
        .find(|o| o.name == op)
        .expect("operation in the table");
    let labels: Vec<(&'static str, String)> =
        labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let raw = RawRequest {
        labels: &labels,
        query: &query,
        headers: &[],
        body: body.as_bytes(),
    };
    (spec.decode.expect("implemented"))(&raw).map_err(|e| e.message)
}

const ROLE: &str = "arn:aws:iam::123456789012:role/mitigation";

#[test]
fn every_operation_of_the_model_is_in_the_table() {
    assert_eq!(OPERATIONS.len(), 272);
    assert!(OPERATIONS.windows(2).all(|w| w[0].name < w[1].name));
    let implemented: Vec<_> = OPERATIONS
        .iter()
        .filter(|o| o.decode.is_some())
        .map(|o| o.name)
        .collect();
    assert!(implemented.contains(&"CreateMitigationAction"));
    assert!(!implemented.contains(&"ListJobs"));
}

#[test]
fn decodes_body_and_label() {
    let body = format!(
        r#"{{"roleArn":"{ROLE}","actionParams":{{"publishFindingToSnsParams":{{"topicArn":"arn:aws:sns:us-east-1:123456789012:t"}}}},"unknownMember":1}}"#
    );
    let Request::CreateMitigationAction(r) = decode(
        "CreateMitigationAction",
        &[("actionName", "a-1")],
        &[],
        &body,
    )
    .unwrap() else {
        panic!("wrong variant")
    };
    assert_eq!(r.action_name.as_deref(), Some("a-1"));
    assert_eq!(r.role_arn.as_deref(), Some(ROLE));
    assert!(r
        .action_params
        .unwrap()
        .publish_finding_to_sns_params
        .is_some());
}

#[test]
fn required_members_are_named() {
    let err = decode("CreateMitigationAction", &[("actionName", "a")], &[], "{}").unwrap_err();
    assert!(err.starts_with("2 validation errors detected"), "{err}");
    assert!(
        err.contains(
            "Value null at 'roleArn' failed to satisfy constraint: Member must not be null"
        ),
        "{err}"
    );
    assert!(err.contains("'actionParams'"), "{err}");
}

#[test]
fn pattern_length_and_enum_rules_are_named() {
    let body = format!(
        r#"{{"roleArn":"short","actionParams":{{"enableIoTLoggingParams":{{"roleArnForLogging":"{ROLE}","logLevel":"LOUD"}}}}}}"#
    );
    let err = decode(
        "CreateMitigationAction",
        &[("actionName", "bad name!")],
        &[],
        &body,
    )
    .unwrap_err();
    assert!(err.starts_with("3 validation errors detected"), "{err}");
    assert!(err.contains("Value 'bad name!' at 'actionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"), "{err}");
    assert!(err.contains("Value 'short' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20"), "{err}");
    assert!(err.contains("at 'actionParams.enableIoTLoggingParams.logLevel' failed to satisfy constraint: Member must satisfy enum value set: [DEBUG, INFO, ERROR, WARN, DISABLED]"), "{err}");
}

#[test]
fn list_sizes_and_nested_list_members() {
    let groups: Vec<String> = (0..11).map(|i| format!("\"g{i}\"")).collect();
    let body = format!(
        r#"{{"roleArn":"{ROLE}","actionParams":{{"addThingsToThingGroupParams":{{"thingGroupNames":[{}]}}}}}}"#,
        groups.join(",")
    );
    let err = decode("CreateMitigationAction", &[("actionName", "a")], &[], &body).unwrap_err();
    assert!(err.contains("at 'actionParams.addThingsToThingGroupParams.thingGroupNames' failed to satisfy constraint: Member must have length less than or equal to 10"), "{err}");

    let body = format!(
        r#"{{"roleArn":"{ROLE}","actionParams":{{"addThingsToThingGroupParams":{{"thingGroupNames":["ok","no spaces"]}}}}}}"#
    );
    let err = decode("CreateMitigationAction", &[("actionName", "a")], &[], &body).unwrap_err();
    assert!(
        err.contains("'actionParams.addThingsToThingGroupParams.thingGroupNames.2.member'"),
        "{err}"
    );
}

#[test]
fn tag_keys_use_unicode_classes() {
    let body = r#"{"resourceArn":"arn:aws:iot:us-east-1:123456789012:mitigationaction/a","tags":[{"Key":"Grüße 1:/=+-@","Value":""}]}"#;
    assert!(decode("TagResource", &[], &[], body).is_ok());
    let body = r#"{"resourceArn":"arn:aws:iot:us-east-1:123456789012:mitigationaction/a","tags":[{"Key":"bad*key"}]}"#;
    let err = decode("TagResource", &[], &[], body).unwrap_err();
    assert!(err.contains("'tags.1.member.Key'"), "{err}");
}

#[test]
fn query_members_convert_and_range_check() {
    let Request::ListMitigationActions(r) = decode(
        "ListMitigationActions",
        &[],
        &[("maxResults", "10"), ("actionType", "ENABLE_IOT_LOGGING")],
        "",
    )
    .unwrap() else {
        panic!("wrong variant")
    };
    assert_eq!(r.max_results, Some(10));
    assert_eq!(r.action_type.unwrap().as_str(), "ENABLE_IOT_LOGGING");

    let err = decode("ListMitigationActions", &[], &[("maxResults", "ten")], "").unwrap_err();
    assert!(
        err.contains("'maxResults'") && err.contains("integer"),
        "{err}"
    );
    let err = decode("ListMitigationActions", &[], &[("maxResults", "251")], "").unwrap_err();
    assert!(
        err.contains("Member must have value less than or equal to 250"),
        "{err}"
    );
    let err = decode("ListMitigationActions", &[], &[("actionType", "NOPE")], "").unwrap_err();
    assert!(err.contains("enum value set"), "{err}");
}

#[test]
fn malformed_and_mistyped_bodies() {
    let err = decode(
        "CreateMitigationAction",
        &[("actionName", "a")],
        &[],
        "{not json",
    )
    .unwrap_err();
    assert!(err.starts_with("Malformed JSON request body"), "{err}");
    let err = decode(
        "CreateMitigationAction",
        &[("actionName", "a")],
        &[],
        r#"{"roleArn": 5}"#,
    )
    .unwrap_err();
    assert!(err.starts_with("Invalid request body"), "{err}");
    let err = decode("CreateMitigationAction", &[("actionName", "a")], &[], "[]").unwrap_err();
    assert!(err.starts_with("Invalid request body"), "{err}");
}

#[test]
fn timestamps_on_the_wire() {
    assert_eq!(
        serde_json::to_string(&Timestamp::from_millis(1_560_356_923_434)).unwrap(),
        "1560356923.434"
    );
    assert_eq!(
        serde_json::to_string(&Timestamp::from_millis(1_560_356_923_000)).unwrap(),
        "1560356923"
    );
    assert_eq!(
        Timestamp::parse_query("2019-06-12T16:28:43.434Z"),
        Some(Timestamp::from_millis(1_560_356_923_434))
    );
    assert_eq!(
        Timestamp::parse_query("1560356923.434"),
        Some(Timestamp::from_millis(1_560_356_923_434))
    );
    assert_eq!(Timestamp::parse_query("yesterday"), None);
    let t: Timestamp = serde_json::from_str("1560356923.434").unwrap();
    assert_eq!(t.millis(), 1_560_356_923_434);
}

#[test]
fn nul_characters_are_refused_but_escaped_backslashes_are_not_nul() {
    let body = format!(
        r#"{{"roleArn":"{ROLE}\u0000","actionParams":{{"publishFindingToSnsParams":{{"topicArn":"t"}}}}}}"#
    );
    let err = decode("CreateMitigationAction", &[("actionName", "a")], &[], &body).unwrap_err();
    assert!(err.contains("NUL"), "{err}");
    let body = format!(
        r#"{{"roleArn":"{ROLE}\\u0000","actionParams":{{"publishFindingToSnsParams":{{"topicArn":"t"}}}}}}"#
    );
    let Request::CreateMitigationAction(r) =
        decode("CreateMitigationAction", &[("actionName", "a")], &[], &body).unwrap()
    else {
        panic!("wrong variant")
    };
    assert!(r.role_arn.unwrap().ends_with("\\u0000"));
}
