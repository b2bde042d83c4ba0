//! Property-style loops: mangled documents never panic, and the analysis behaves like a
//! policy evaluation should (a Deny never adds a finding, an Allow never removes one,
//! statement order does not matter).

use palisade_iot_policy::{analyse, Analysis};
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ACTIONS: &[&str] = &[
    "*",
    "iot:*",
    "iot:Connect",
    "iot:Publish",
    "iot:Subscribe",
    "iot:Receive",
    "iot:Get*",
    "iot:*Shadow",
    "iot:UpdateJobExecution",
    "IOT:PUBLISH",
    "iot:CreateThing",
    "s3:*",
];

const RESOURCES: &[&str] = &[
    "*",
    "client/*",
    "client/${iot:ClientId}",
    "client/${iot:Connection.Thing.ThingName}",
    "client/sensor-?",
    "topic/*",
    "topic/$aws/things/*",
    "topic/$aws/things/*/shadow/*",
    "topic/$aws/things/${iot:Connection.Thing.ThingName}/*",
    "topic/$aws/things/${iot:ClientId}/jobs/*",
    "topic/building/*",
    "topic/building/control_room/*",
    "topicfilter/*",
    "topicfilter/#",
    "topicfilter/$aws/things/+/shadow/update",
    "topicfilter/$aws/#",
    "topicfilter/building/*",
    "topicfilter/building/control_room/#",
    "topicfilter/building/control_room/*",
    "thing/*",
    "thing/MyThing1",
    "thing/*/named",
    "@arn:aws:iot:*:*:thing/*",
    "@arn:aws:iot:eu-west-1:999999999999:topic/*",
    "@arn:aws:iot:*",
    "@*${iot:Certificate.Subject.CommonName}*",
];

fn resource(rng: &mut Rng) -> String {
    let r = rng.pick(RESOURCES);
    match r.strip_prefix('@') {
        Some(full) => full.to_owned(),
        None if *r == "*" => "*".to_owned(),
        None => format!("arn:aws:iot:{REGION}:{ACCOUNT}:{r}"),
    }
}

fn list(rng: &mut Rng, one: impl Fn(&mut Rng) -> String) -> Value {
    let n = 1 + rng.below(3);
    let items: Vec<String> = (0..n).map(|_| one(rng)).collect();
    if n == 1 && rng.below(2) == 0 {
        json!(items[0])
    } else {
        json!(items)
    }
}

fn statement(rng: &mut Rng, effect: &str, conditions: bool) -> Value {
    let mut s = serde_json::Map::new();
    s.insert("Effect".into(), json!(effect));
    let actions = list(rng, |r| (*r.pick(ACTIONS)).to_owned());
    let key = if rng.below(6) == 0 {
        "NotAction"
    } else {
        "Action"
    };
    s.insert(key.into(), actions);
    let resources = list(rng, resource);
    let key = if rng.below(6) == 0 {
        "NotResource"
    } else {
        "Resource"
    };
    s.insert(key.into(), resources);
    if conditions && rng.below(4) == 0 {
        s.insert(
            "Condition".into(),
            json!({ "Bool": { "iot:Connection.Thing.IsAttached": "true" } }),
        );
    }
    Value::Object(s)
}

fn random_statements(rng: &mut Rng) -> Vec<Value> {
    (0..1 + rng.below(4))
        .map(|_| {
            let effect = if rng.below(4) == 0 { "Deny" } else { "Allow" };
            statement(rng, effect, true)
        })
        .collect()
}

fn analysed(statements: &[Value]) -> Analysis {
    let doc = json!({ "Version": "2012-10-17", "Statement": statements }).to_string();
    analyse(&doc, ACCOUNT, REGION).expect("generated documents are valid")
}

fn codes(analysis: &Analysis) -> Vec<&'static str> {
    analysis
        .misconfigurations
        .iter()
        .map(|f| f.reason_code)
        .collect()
}

#[test]
fn a_deny_never_adds_and_an_allow_never_removes_broad_actions() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..1500 {
        let base = random_statements(&mut rng);
        let before = analysed(&base);

        let mut denied = base.clone();
        // Unconditional, so it is trusted to subtract.
        denied.push(statement(&mut rng, "Deny", false));
        let after_deny = analysed(&denied);
        assert!(
            after_deny
                .broad_actions
                .iter()
                .all(|a| before.broad_actions.contains(a)),
            "a Deny added broad actions: {base:?} + {:?}",
            denied.last()
        );

        let mut allowed = base.clone();
        allowed.push(statement(&mut rng, "Allow", true));
        let after_allow = analysed(&allowed);
        assert!(
            before
                .broad_actions
                .iter()
                .all(|a| after_allow.broad_actions.contains(a)),
            "an Allow removed broad actions: {base:?} + {:?}",
            allowed.last()
        );

        let mut reversed = base.clone();
        reversed.reverse();
        let after_reverse = analysed(&reversed);
        assert_eq!(
            before.broad_actions, after_reverse.broad_actions,
            "{base:?}"
        );
        assert_eq!(codes(&before), codes(&after_reverse), "{base:?}");
    }
}

/// Cuts, duplicates and splices of valid documents, with JSON punctuation and pattern
/// characters thrown in: any outcome is fine except a panic.
#[test]
fn mangled_documents_never_panic() {
    const NOISE: &[char] = &[
        '{',
        '}',
        '[',
        ']',
        '"',
        ',',
        ':',
        '*',
        '?',
        '$',
        '#',
        '+',
        '/',
        '\\',
        '0',
        'é',
        '\u{0}',
        '\u{1F600}',
        ' ',
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut outcomes = [0usize; 2];
    for _ in 0..3000 {
        let statements = random_statements(&mut rng);
        let text = json!({ "Version": "2012-10-17", "Statement": statements }).to_string();
        let mut chars: Vec<char> = text.chars().collect();
        for _ in 0..1 + rng.below(4) {
            let len = chars.len();
            let at = rng.below(len + 1);
            match rng.below(5) {
                0 => chars.truncate(at),
                1 => {
                    let end = (at + rng.below(8)).min(len);
                    chars.drain(at.min(end)..end);
                }
                2 => chars.insert(at.min(chars.len()), *rng.pick(NOISE)),
                3 => {
                    let end = (at + rng.below(30)).min(len);
                    let piece: Vec<char> = chars[at.min(end)..end].to_vec();
                    let to = rng.below(chars.len() + 1);
                    chars.splice(to..to, piece);
                }
                _ => {
                    if let Some(c) = chars.get_mut(at) {
                        *c = *rng.pick(NOISE);
                    }
                }
            }
        }
        let mangled: String = chars.into_iter().collect();
        let outcome = analyse(&mangled, ACCOUNT, REGION);
        outcomes[usize::from(outcome.is_ok())] += 1;
    }
    // Both paths were exercised.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// Patterns built to make the subset construction work hard finish (the search has a
/// state budget) and err towards reporting.
#[test]
fn hostile_patterns_terminate() {
    let stars = format!(
        "arn:aws:iot:{REGION}:{ACCOUNT}:topic/$aws/things/*{}",
        "a*".repeat(60)
    );
    let denies: Vec<Value> = (0..20)
        .map(|i| {
            json!({
                "Effect": "Deny",
                "Action": "iot:Publish",
                "Resource": format!("*{}b*", "?".repeat(i))
            })
        })
        .collect();
    let mut statements =
        vec![json!({ "Effect": "Allow", "Action": "iot:Publish", "Resource": stars })];
    statements.extend(denies);
    // Truly broad (a topic without `b` under any thing), and reported whether the search
    // proves it or runs out of budget.
    assert_eq!(analysed(&statements).broad_actions, ["iot:Publish"]);

    // Odd strings in every position.
    let odd = [
        "",
        "${",
        "${}",
        "$",
        "arn:aws:iot:::::",
        "\u{0}",
        "*?*?*?*?",
        "${iot:ClientId",
    ];
    for s in odd {
        let doc = json!({ "Statement": [
            { "Effect": "Allow", "Action": s, "Resource": s },
            { "Effect": "Deny", "Action": "*", "Resource": s, "Condition": s },
            { "Effect": "Deny", "NotAction": s, "NotResource": s },
        ]});
        let _ = analyse(&doc.to_string(), s, s);
    }
}
