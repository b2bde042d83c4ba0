//! IOT_POLICY_OVERLY_PERMISSIVE_CHECK: which data-plane actions the policy grants on
//! other devices' resources.

use std::sync::OnceLock;

use crate::actions::{Kind, Tier, ACTIONS};
use crate::pattern::{Part, Pattern};
use crate::policy::Policy;

/// Indices into [`ACTIONS`] of the actions granted broadly, in table order.
pub(crate) fn broad_actions(policy: &Policy<'_>) -> Vec<usize> {
    // The thing-scoped actions usually come from the same statements; they then share
    // one answer instead of searching eight times.
    let mut memo: Vec<(Kind, Vec<usize>, Vec<usize>, bool)> = Vec::new();
    let mut broad = Vec::new();
    for (i, action) in ACTIONS.iter().enumerate() {
        if action.tier == Tier::NotAssessed {
            continue;
        }
        let allows = policy.allow_rules(i);
        if allows.is_empty() {
            continue;
        }
        let denies = policy.deny_rules(i);
        let known = memo
            .iter()
            .find(|(k, a, d, _)| *k == action.kind && *a == allows && *d == denies)
            .map(|m| m.3);
        let granted = known.unwrap_or_else(|| {
            let granted = policy.reachable_with(&allows, &denies, regions(action.kind));
            memo.push((action.kind, allows, denies, granted));
            granted
        });
        if granted {
            broad.push(i);
        }
    }
    broad
}

/// The resources of devices the policy does not name, per resource kind, after the
/// account's ARN prefix. Ω is "some other device": only a `*` in the identity position
/// reaches it. Built once: they depend on nothing but the kind.
fn regions(kind: Kind) -> &'static [Pattern] {
    static REGIONS: OnceLock<[Vec<Pattern>; 4]> = OnceLock::new();
    let all = REGIONS.get_or_init(|| {
        use Part::{Lit, Star, Thing};
        let filter = |rest: &[Part<'_>]| {
            let mut parts = vec![Lit("topicfilter/$aws/")];
            parts.extend_from_slice(rest);
            Pattern::region(&parts)
        };
        [
            // Any client ID at all.
            vec![Pattern::region(&[Lit("client/"), Thing])],
            // Any other device's reserved topics (shadow, jobs, …).
            vec![Pattern::region(&[
                Lit("topic/$aws/things/"),
                Thing,
                Lit("/"),
                Star,
            ])],
            // Filters that reach other devices' reserved topics, either naming one the
            // policy does not restrict, or with an MQTT wildcard at or above the thing
            // name. Per MQTT, a filter starting with a wildcard does not match `$`
            // topics, so `#` and `+/…` are not listed.
            vec![
                filter(&[Lit("things/"), Thing, Lit("/"), Star]),
                filter(&[Lit("things/+")]),
                filter(&[Lit("things/+/"), Star]),
                filter(&[Lit("things/#")]),
                filter(&[Lit("+/+/"), Star]),
                filter(&[Lit("+/#")]),
                filter(&[Lit("#")]),
            ],
            // A thing, or one of its named shadows (`thing/<name>/<shadowName>`).
            vec![
                Pattern::region(&[Lit("thing/"), Thing]),
                Pattern::region(&[Lit("thing/"), Thing, Lit("/"), Star]),
            ],
        ]
    });
    match kind {
        Kind::Client => &all[0],
        Kind::Topic => &all[1],
        Kind::TopicFilter => &all[2],
        Kind::Thing => &all[3],
    }
}

/// The actions the finding's message names: the core ones if any is broad, else the
/// secondary ones.
pub(crate) fn listed(broad: &[usize]) -> Vec<&'static str> {
    let of = |tier: Tier| -> Vec<&'static str> {
        broad
            .iter()
            .filter_map(|&i| ACTIONS.get(i))
            .filter(|a| a.tier == tier)
            .map(|a| a.name)
            .collect()
    };
    let core = of(Tier::Core);
    if core.is_empty() {
        of(Tier::Secondary)
    } else {
        core
    }
}
