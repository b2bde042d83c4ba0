//! The data-plane actions the two checks reason about, and matching of a statement's
//! Action/NotAction patterns against them.

/// What kind of resource an action is authorised against, which decides the region of
/// "other devices' resources" the overly permissive check probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `client/<clientId>`
    Client,
    /// `topic/<topicName>`
    Topic,
    /// `topicfilter/<topicFilter>`
    TopicFilter,
    /// `thing/<thingName>[/<shadowName>]`
    Thing,
}

/// Whether and how an action appears in the overly permissive finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Listed whenever broadly granted.
    Core,
    /// Assessed, but listed only when no core action is broadly granted (see the crate
    /// docs: AWS's published message for `iot:*` on `*` names the core actions only).
    Secondary,
    /// Never assessed for breadth (Receive is bounded by Subscribe).
    NotAssessed,
}

#[derive(Debug)]
pub(crate) struct Action {
    /// As written in policies and in AWS's message, e.g. `iot:Subscribe`.
    pub name: &'static str,
    pub kind: Kind,
    pub tier: Tier,
}

/// In the order AWS's message lists them (`[iot:Subscribe, iot:Connect,
/// iot:GetThingShadow, iot:DeleteThingShadow, iot:UpdateThingShadow, iot:Publish]` for
/// `iot:*` on `*`), then the secondary actions in the order AWS's check page lists them.
pub(crate) const ACTIONS: [Action; 12] = [
    action("iot:Subscribe", Kind::TopicFilter, Tier::Core),
    action("iot:Connect", Kind::Client, Tier::Core),
    action("iot:GetThingShadow", Kind::Thing, Tier::Core),
    action("iot:DeleteThingShadow", Kind::Thing, Tier::Core),
    action("iot:UpdateThingShadow", Kind::Thing, Tier::Core),
    action("iot:Publish", Kind::Topic, Tier::Core),
    action("iot:DescribeJobExecution", Kind::Thing, Tier::Secondary),
    action("iot:GetPendingJobExecutions", Kind::Thing, Tier::Secondary),
    action(
        "iot:StartNextPendingJobExecution",
        Kind::Thing,
        Tier::Secondary,
    ),
    action("iot:UpdateJobExecution", Kind::Thing, Tier::Secondary),
    action("iot:ListNamedShadowsForThing", Kind::Thing, Tier::Secondary),
    action("iot:Receive", Kind::Topic, Tier::NotAssessed),
];

pub(crate) const SUBSCRIBE: usize = 0;
pub(crate) const RECEIVE: usize = 11;

/// The data-plane actions the overly permissive check assesses, in the order its
/// findings list them (`iot:Receive` is never assessed, so it is not among them).
pub fn data_plane_actions() -> impl Iterator<Item = &'static str> {
    ACTIONS
        .iter()
        .filter(|a| a.tier != Tier::NotAssessed)
        .map(|a| a.name)
}

/// Bit `i` stands for `ACTIONS[i]`.
pub(crate) type ActionSet = u16;

const ALL: ActionSet = (1 << ACTIONS.len()) - 1;

const fn action(name: &'static str, kind: Kind, tier: Tier) -> Action {
    Action { name, kind, tier }
}

/// The actions a statement applies to: those an Action pattern matches, or those no
/// NotAction pattern matches. A statement with both (invalid in IAM's grammar) gets the
/// union; callers decide whether such a statement is trusted at all.
pub(crate) fn applies_to(action: Option<&[&str]>, not_action: Option<&[&str]>) -> ActionSet {
    let mut set = 0;
    if let Some(patterns) = action {
        set |= patterns.iter().fold(0, |acc, p| acc | matching(p));
    }
    if let Some(patterns) = not_action {
        set |= ALL & !patterns.iter().fold(0, |acc, p| acc | matching(p));
    }
    set
}

fn matching(pattern: &str) -> ActionSet {
    if pattern == "*" || pattern.eq_ignore_ascii_case("iot:*") {
        return ALL;
    }
    let wild = pattern.contains(['*', '?']);
    ACTIONS
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            if wild {
                glob_ignore_case(pattern.as_bytes(), a.name.as_bytes())
            } else {
                pattern.eq_ignore_ascii_case(a.name)
            }
        })
        .fold(0, |acc, (i, _)| acc | (1 << i))
}

/// `*`/`?` matching, ASCII case-insensitive (action names are case-insensitive in IAM).
/// Greedy with one backtrack point, so linear in practice and never recursive.
fn glob_ignore_case(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p + 1, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((after_star, from)) => {
                    p = after_star;
                    n = from + 1;
                    backtrack = Some((after_star, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: ActionSet) -> Vec<&'static str> {
        ACTIONS
            .iter()
            .enumerate()
            .filter(|(i, _)| set & (1 << i) != 0)
            .map(|(_, a)| a.name)
            .collect()
    }

    #[test]
    fn action_patterns() {
        assert_eq!(applies_to(Some(&["*"]), None), ALL);
        assert_eq!(applies_to(Some(&["IOT:*"]), None), ALL);
        assert_eq!(
            names(applies_to(Some(&["iot:publish"]), None)),
            ["iot:Publish"]
        );
        assert_eq!(
            names(applies_to(Some(&["iot:Get*"]), None)),
            ["iot:GetThingShadow", "iot:GetPendingJobExecutions"]
        );
        assert_eq!(
            names(applies_to(Some(&["iot:*ThingShadow"]), None)),
            [
                "iot:GetThingShadow",
                "iot:DeleteThingShadow",
                "iot:UpdateThingShadow"
            ]
        );
        assert_eq!(
            names(applies_to(Some(&["iot:?onnect"]), None)),
            ["iot:Connect"]
        );
        assert_eq!(
            names(applies_to(Some(&["iot:CreateThing", "s3:*"]), None)),
            [""; 0]
        );
        assert_eq!(
            applies_to(None, Some(&["iot:Connect"])),
            ALL & !(1 << 1),
            "NotAction covers all but the listed"
        );
        assert_eq!(applies_to(None, Some(&["*"])), 0);
        assert_eq!(applies_to(None, None), 0);
        assert_eq!(
            names(applies_to(Some(&["iot:Connect"]), Some(&["iot:*"]))),
            ["iot:Connect"]
        );
    }

    #[test]
    fn glob() {
        assert!(glob_ignore_case(b"a*b*c", b"aXXbYYc"));
        assert!(glob_ignore_case(b"*", b""));
        assert!(glob_ignore_case(b"**", b"abc"));
        assert!(!glob_ignore_case(b"a*b", b"a"));
        assert!(!glob_ignore_case(b"", b"a"));
        assert!(glob_ignore_case(b"*ab", b"aab"));
        assert!(!glob_ignore_case(b"?", b""));
    }
}
