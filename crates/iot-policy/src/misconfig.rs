//! IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK: Deny statements that do not deny what
//! their author evidently meant to.

use crate::actions::{RECEIVE, SUBSCRIBE};
use crate::document::Effect;
use crate::pattern::{Part, Pattern};
use crate::policy::{resource_type_and_name, Policy};

/// Resources of Deny statements that name a topic or topic filter containing `+` or `#`.
/// Those are literal characters in IoT policies, so such a Deny matches only a filter
/// spelled exactly that way, not the sub-tree the author meant. Every Deny counts, with
/// or without a condition and whatever its actions, since the mistake is in the resource
/// itself; only Resource is read (a NotResource with `#` narrows the Deny's exemption,
/// which errs towards denying).
pub(crate) fn mqtt_wildcards_in_deny<'a>(policy: &Policy<'a>) -> Vec<&'a str> {
    let mut found: Vec<&str> = Vec::new();
    for rule in &policy.rules {
        if rule.statement.effect != Effect::Deny {
            continue;
        }
        for &resource in rule.statement.resource.iter().flatten() {
            let wild = matches!(
                resource_type_and_name(resource),
                Some(("topic" | "topicfilter", name)) if name.contains(['+', '#'])
            );
            if wild && !found.contains(&resource) {
                found.push(resource);
            }
        }
    }
    found
}

/// Resources `…:topicfilter/P/*` of Deny statements on Subscribe that a client can work
/// around: some Allow lets it subscribe with an MQTT wildcard filter above P (such as
/// `#`, `A/#` for an ancestor A of P, or `…/+/#`), and some topic under P is still allowed
/// for Receive, so messages of the denied sub-tree are delivered through the wildcard
/// subscription. A Deny Receive covering `topic/P/*` closes the gap (AWS's documented fix).
///
/// Only Denies whose P is plain text are examined: with a wildcard, variable or MQTT
/// wildcard in P the intended sub-tree cannot be named (the last case is the other reason
/// code's business).
pub(crate) fn denied_filters_reachable<'a>(policy: &Policy<'a>) -> Vec<&'a str> {
    let mut found: Vec<&str> = Vec::new();
    for rule in &policy.rules {
        if rule.statement.effect != Effect::Deny || rule.actions & (1 << SUBSCRIBE) == 0 {
            continue;
        }
        for &resource in rule.statement.resource.iter().flatten() {
            let Some(("topicfilter", name)) = resource_type_and_name(resource) else {
                continue;
            };
            let Some(subtree) = name.strip_suffix("/*") else {
                continue;
            };
            if subtree.is_empty()
                || subtree.contains(['*', '?', '+', '#'])
                || subtree.contains("${")
                || found.contains(&resource)
            {
                continue;
            }
            if wildcard_subscription_allowed(policy, subtree) && receive_allowed(policy, subtree) {
                found.push(resource);
            }
        }
    }
    found
}

/// Can the client subscribe with a filter that covers `subtree/…` from above?
fn wildcard_subscription_allowed(policy: &Policy<'_>, subtree: &str) -> bool {
    let levels: Vec<&str> = subtree.split('/').collect();
    // Per MQTT, a filter that starts with a wildcard does not match `$` topics.
    let from = usize::from(subtree.starts_with('$'));
    let mut filters = Vec::with_capacity(2 * levels.len());
    for depth in from..levels.len() {
        let above = levels[..depth].join("/");
        // `A/#` for a strict ancestor A (the root included), and `A/+/#`.
        for last in ["#", "+/#"] {
            let filter = if depth == 0 {
                last.to_owned()
            } else {
                format!("{above}/{last}")
            };
            filters.push(Pattern::region(&[
                Part::Lit("topicfilter/"),
                Part::Lit(&filter),
            ]));
        }
    }
    policy.reachable(SUBSCRIBE, &filters)
}

/// Is some topic under `subtree/` allowed for Receive (and not denied)?
fn receive_allowed(policy: &Policy<'_>, subtree: &str) -> bool {
    let region = Pattern::region(&[
        Part::Lit("topic/"),
        Part::Lit(subtree),
        Part::Lit("/"),
        Part::Star,
    ]);
    policy.reachable(RECEIVE, &[region])
}
