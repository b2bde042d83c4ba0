//! Time per `analyse` call on a few representative documents, with std's clock only
//! (no criterion: one figure per document is all the audit's budget needs).
//!
//! `cargo bench -p palisade-iot-policy`

use std::hint::black_box;
use std::time::{Duration, Instant};

use palisade_iot_policy::analyse;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn documents() -> Vec<(&'static str, String)> {
    let a = |rest: &str| format!("arn:aws:iot:{REGION}:{ACCOUNT}:{rest}");
    let thing = "${iot:Connection.Thing.ThingName}";
    vec![
        (
            "typical device policy (4 statements)",
            format!(
                r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"iot:Connect","Resource":"{}","Condition":{{"Bool":{{"iot:Connection.Thing.IsAttached":"true"}}}}}},
                {{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["{}","{}"]}},
                {{"Effect":"Allow","Action":"iot:Subscribe","Resource":["{}","{}"]}},
                {{"Effect":"Allow","Action":["iot:GetThingShadow","iot:UpdateThingShadow"],"Resource":"{}"}}]}}"#,
                a(&format!("client/{thing}")),
                a(&format!("topic/$aws/things/{thing}/shadow/*")),
                a(&format!("topic/sensors/{thing}/telemetry")),
                a(&format!("topicfilter/$aws/things/{thing}/shadow/*")),
                a(&format!("topicfilter/$aws/things/{thing}/jobs/*")),
                a(&format!("thing/{thing}")),
            ),
        ),
        (
            "iot:* on *",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#
                .to_owned(),
        ),
        (
            "AWS misconfiguration example (Allow/Deny/Allow)",
            format!(
                r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"iot:Subscribe","Resource":"{}"}},
                {{"Effect":"Deny","Action":"iot:Subscribe","Resource":"{}"}},
                {{"Effect":"Allow","Action":"iot:Receive","Resource":"{}"}}]}}"#,
                a("topicfilter/building/*"),
                a("topicfilter/building/control_room/*"),
                a("topic/building/*"),
            ),
        ),
        (
            "broad Allow narrowed by three Denies",
            format!(
                r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":["iot:Publish","iot:Subscribe","iot:Receive"],"Resource":["{}","{}","{}"]}},
                {{"Effect":"Deny","Action":"iot:Publish","Resource":"{}"}},
                {{"Effect":"Deny","Action":"iot:Subscribe","Resource":["{}","{}"]}},
                {{"Effect":"Deny","Action":"iot:Receive","Resource":"{}"}}]}}"#,
                a("topic/*"),
                a("topicfilter/*"),
                a("topic/$aws/things/*"),
                a("topic/$aws/things/*/shadow/*"),
                a("topicfilter/$aws/*"),
                a("topicfilter/#"),
                a("topic/$aws/things/*/jobs/*"),
            ),
        ),
    ]
}

fn main() {
    // A fixed count instead, for profilers (`ANALYSE_ITERATIONS=1000 valgrind …`).
    let fixed: Option<u32> = std::env::var("ANALYSE_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok());
    let only = std::env::var("ANALYSE_ONLY").unwrap_or_default();
    for (name, doc) in documents() {
        if !name.contains(only.as_str()) {
            continue;
        }
        if let Some(n) = fixed {
            for _ in 0..n {
                black_box(analyse(black_box(&doc), ACCOUNT, REGION).ok());
            }
            continue;
        }
        // Warm up, then size the run to about half a second.
        let mut n = 1u32;
        let per_call = loop {
            let start = Instant::now();
            for _ in 0..n {
                black_box(analyse(black_box(&doc), ACCOUNT, REGION).ok());
            }
            let took = start.elapsed();
            if took > Duration::from_millis(500) {
                break took / n;
            }
            n *= 2;
        };
        println!("{per_call:>10.2?} per call  {name}");
    }
}
