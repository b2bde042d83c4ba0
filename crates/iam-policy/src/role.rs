//! A role's statements compiled once, and the questions the checks ask of them.

use std::collections::{BTreeSet, HashMap};

use crate::document::{Effect, Statement};
use crate::glob::{explore, Atom, Budget, Class, Glob};

/// Work allowed to the searches of one role, in atom-steps (about a second of a debug
/// build): the examples of the tests take at most a tenth of it.
const WORK_BUDGET: u64 = 10_000_000;

/// One Action/NotAction or Resource/NotResource list: it covers a string when one of
/// its globs matches it, or (negated) when none does.
pub(crate) struct Term {
    globs: Vec<Glob>,
    negated: bool,
}

pub(crate) struct Rule {
    pub effect: Effect,
    /// Action (positive) and/or NotAction (negated); the rule applies to an action that
    /// either covers. Empty: the rule applies to nothing.
    actions: Vec<Term>,
    /// Resource and/or NotResource, likewise.
    resources: Vec<Term>,
    /// The Action patterns, ASCII lower case, for naming services.
    action_patterns: Vec<String>,
    /// The rule has a NotAction list.
    not_action: bool,
    /// A Deny that can be trusted to subtract: no Condition (it might not hold), and not
    /// mixing Action with NotAction or Resource with NotResource (ambiguous).
    subtracts: bool,
}

impl Rule {
    fn new(statement: Statement) -> Rule {
        let mut actions = Vec::new();
        if let Some(list) = &statement.action {
            actions.push(Term {
                globs: list.iter().map(|p| Glob::action(p)).collect(),
                negated: false,
            });
        }
        if let Some(list) = &statement.not_action {
            actions.push(Term {
                globs: list.iter().map(|p| Glob::action(p)).collect(),
                negated: true,
            });
        }
        let mut resources = Vec::new();
        if let Some(list) = &statement.resource {
            resources.push(Term {
                globs: list.iter().map(|p| Glob::resource(p)).collect(),
                negated: false,
            });
        }
        if let Some(list) = &statement.not_resource {
            resources.push(Term {
                globs: list.iter().map(|p| Glob::resource(p)).collect(),
                negated: true,
            });
        }
        let ambiguous = actions.len() > 1 || resources.len() > 1;
        Rule {
            effect: statement.effect,
            subtracts: statement.effect == Effect::Deny && !statement.conditional && !ambiguous,
            action_patterns: statement
                .action
                .unwrap_or_default()
                .iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
            not_action: statement.not_action.is_some(),
            actions,
            resources,
        }
    }

    /// Whether the rule applies to the (lower-case) action name.
    fn applies_to(&self, action: &str) -> bool {
        self.actions.iter().any(|term| {
            let any = term.globs.iter().any(|g| g.matches(action));
            any != term.negated
        })
    }
}

/// Globs laid out side by side for one search, the first being the universe or region
/// the question is about, with where each term's globs sit. Every search only looks at
/// strings the first glob matches, so globs that cannot overlap it are left out.
struct Layout<'g> {
    globs: Vec<&'g Glob>,
}

/// (first glob, end, negated) of each term of one rule.
type Ranges = Vec<(usize, usize, bool)>;

impl<'g> Layout<'g> {
    fn new(first: &'g Glob) -> Self {
        Layout { globs: vec![first] }
    }

    fn add(&mut self, terms: &'g [Term]) -> Ranges {
        terms
            .iter()
            .map(|term| {
                let start = self.globs.len();
                let first = self.globs[0];
                self.globs
                    .extend(term.globs.iter().filter(|g| g.may_overlap(first)));
                (start, self.globs.len(), term.negated)
            })
            .collect()
    }
}

fn covered(ranges: &Ranges, accepts: &[bool]) -> bool {
    ranges.iter().any(|&(start, end, negated)| {
        let any = accepts.get(start..end).is_some_and(|a| a.contains(&true));
        any != negated
    })
}

/// The regions of interest of the IoT questions.
pub(crate) struct Regions {
    /// What an IoT request of the audited account and region can name: one of its IoT
    /// ARNs, or `*` (the resource of actions without resource-level permissions).
    pub iot: Vec<Glob>,
    /// A thing of the audited account and region that the role does not name: `thing/Ω`.
    pub other_thing: Vec<Glob>,
    /// Any resource at all.
    pub any: Vec<Glob>,
}

impl Regions {
    fn new(account_id: &str, region: &str) -> Regions {
        let prefix = format!("arn:aws:iot:{region}:{account_id}:");
        Regions {
            iot: vec![
                Glob::text_then(&prefix, &[Atom::Many(Class::Any)]),
                Glob::from_atoms(vec![Atom::Lit('*')]),
            ],
            other_thing: vec![Glob::text_then(&format!("{prefix}thing/"), &[Atom::Thing])],
            any: vec![Glob::everything()],
        }
    }
}

/// Every action `service:action` of one service (lower case).
pub(crate) fn service_universe(service: &str) -> Glob {
    Glob::text_then(
        &format!("{service}:"),
        &[Atom::One(Class::NotColon), Atom::Many(Class::NotColon)],
    )
}

/// Every action of every service.
fn all_actions() -> Glob {
    Glob::from_atoms(vec![
        Atom::One(Class::NotColon),
        Atom::Many(Class::NotColon),
        Atom::Lit(':'),
        Atom::One(Class::NotColon),
        Atom::Many(Class::NotColon),
    ])
}

pub(crate) struct Role {
    rules: Vec<Rule>,
    pub regions: Regions,
    budget: Budget,
    memo: HashMap<(Vec<usize>, Vec<usize>, usize), bool>,
}

/// Which region of [`Regions`] a question is about (a memo key).
#[derive(Clone, Copy)]
pub(crate) enum RegionKind {
    Iot = 0,
    OtherThing = 1,
}

impl Role {
    pub(crate) fn new(statements: Vec<Statement>, account_id: &str, region: &str) -> Role {
        Role {
            rules: statements.into_iter().map(Rule::new).collect(),
            regions: Regions::new(account_id, region),
            budget: Budget::new(WORK_BUDGET),
            memo: HashMap::new(),
        }
    }

    fn allows(&self) -> impl Iterator<Item = (usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.effect == Effect::Allow)
    }

    fn denies(&self) -> impl Iterator<Item = (usize, &Rule)> {
        self.rules.iter().enumerate().filter(|(_, r)| r.subtracts)
    }

    /// Whether the role, after Denies, allows the plain (lower-case) action on some
    /// resource of the region.
    pub(crate) fn allows_action(&mut self, action: &str, kind: RegionKind) -> bool {
        let allows: Vec<usize> = self
            .allows()
            .filter(|(_, r)| r.applies_to(action))
            .map(|(i, _)| i)
            .collect();
        if allows.is_empty() {
            return false;
        }
        let denies: Vec<usize> = self
            .denies()
            .filter(|(_, r)| r.applies_to(action))
            .map(|(i, _)| i)
            .collect();
        let key = (allows, denies, kind as usize);
        if let Some(&known) = self.memo.get(&key) {
            return known;
        }
        let regions = match kind {
            RegionKind::Iot => &self.regions.iot,
            RegionKind::OtherThing => &self.regions.other_thing,
        };
        let answer = regions.iter().any(|region| {
            let allow_terms: Vec<&[Term]> = key
                .0
                .iter()
                .map(|&i| &self.rules[i].resources[..])
                .collect();
            self.resources_reach(&allow_terms, &key.1, region)
        });
        self.memo.insert(key, answer);
        answer
    }

    /// Is some resource of `region` covered by one of `allows` and by none of the Deny
    /// rules `denies`? Out of budget: yes.
    fn resources_reach(&self, allows: &[&[Term]], denies: &[usize], region: &Glob) -> bool {
        let mut layout = Layout::new(region);
        let allow_ranges: Vec<Ranges> = allows.iter().map(|terms| layout.add(terms)).collect();
        let deny_ranges: Vec<Ranges> = denies
            .iter()
            .filter_map(|&i| self.rules.get(i))
            .map(|r| layout.add(&r.resources))
            .collect();
        explore(&layout.globs, &self.budget, |acc| {
            acc[0]
                && allow_ranges.iter().any(|r| covered(r, acc))
                && !deny_ranges.iter().any(|r| covered(r, acc))
        })
        .unwrap_or(true)
    }

    /// Does the grant of `actions` on `resources` (one Allow, or part of one) survive the
    /// Denies for some action of `universe` and some resource at all? Exact: the actions
    /// of the universe the grant covers are sorted by which Denies cover them, and for
    /// each such set of Denies the resources are searched. Out of budget: yes.
    fn survives(&self, actions: &[Term], resources: &[Term], universe: &Glob) -> bool {
        let denies: Vec<usize> = self.denies().map(|(i, _)| i).collect();
        let mut layout = Layout::new(universe);
        let allow = layout.add(actions);
        let deny_ranges: Vec<Ranges> = denies
            .iter()
            .map(|&i| layout.add(&self.rules[i].actions))
            .collect();
        let mut sets: BTreeSet<Vec<usize>> = BTreeSet::new();
        let explored = explore(&layout.globs, &self.budget, |acc| {
            if acc[0] && covered(&allow, acc) {
                sets.insert(
                    denies
                        .iter()
                        .zip(&deny_ranges)
                        .filter(|(_, r)| covered(r, acc))
                        .map(|(&i, _)| i)
                        .collect(),
                );
            }
            false
        });
        if explored.is_err() {
            return true;
        }
        let any = &self.regions.any[0];
        let mut sets: Vec<Vec<usize>> = sets.into_iter().collect();
        sets.sort_by_key(Vec::len);
        sets.iter()
            .any(|denying| self.resources_reach(&[resources], denying, any))
    }

    /// Whether `actions` cover every action of `universe`. Out of budget: yes.
    fn covers_all(&self, actions: &[Term], universe: &Glob) -> bool {
        let mut layout = Layout::new(universe);
        let ranges = layout.add(actions);
        !explore(&layout.globs, &self.budget, |acc| {
            acc[0] && !covered(&ranges, acc)
        })
        .unwrap_or(false)
    }

    /// Whether `actions` cover some action of `universe`. Out of budget: no.
    fn intersects(&self, actions: &[Term], universe: &Glob) -> bool {
        let mut layout = Layout::new(universe);
        let ranges = layout.add(actions);
        explore(&layout.globs, &self.budget, |acc| {
            acc[0] && covered(&ranges, acc)
        })
        .unwrap_or(false)
    }

    /// Whether every resource `inner` covers is covered by `outer`. Out of budget: no.
    fn includes(&self, outer: &[Term], inner: &[Term]) -> bool {
        let any = &self.regions.any[0];
        let mut layout = Layout::new(any);
        let outer = layout.add(outer);
        let inner = layout.add(inner);
        !explore(&layout.globs, &self.budget, |acc| {
            covered(&inner, acc) && !covered(&outer, acc)
        })
        .unwrap_or(true)
    }

    /// Whether the role, after Denies, allows some action of the service (lower case)
    /// on some resource.
    pub(crate) fn grants_service(&self, service: &str) -> bool {
        let universe = service_universe(service);
        self.allows()
            .any(|(_, r)| self.survives(&r.actions, &r.resources, &universe))
    }

    /// Whether one Allow grants every action of the service (lower case), and no Deny
    /// takes part of the service away on every resource that Allow covers.
    pub(crate) fn grants_all_of_service(&self, service: &str) -> bool {
        let universe = service_universe(service);
        self.allows().any(|(_, allow)| {
            self.covers_all(&allow.actions, &universe)
                && !self.denies().any(|(_, deny)| {
                    self.intersects(&deny.actions, &universe)
                        && self.includes(&deny.resources, &allow.resources)
                })
        })
    }

    /// Whether some Allow looks like full access to some service (`*`, `svc:*`, `s*:*`,
    /// `svc*`, or a NotAction that does not exclude everything), Denies not considered.
    pub(crate) fn may_grant_a_whole_service(&self) -> bool {
        self.allows().any(|(_, r)| {
            let not_action_all = r
                .actions
                .iter()
                .filter(|t| t.negated)
                .all(|t| t.globs.iter().any(|g| g == &Glob::everything()));
            (r.not_action && !not_action_all)
                || r.action_patterns.iter().any(|p| match p.split_once(':') {
                    Some((_, action)) => !action.is_empty() && action.chars().all(|c| c == '*'),
                    None => p.ends_with('*'),
                })
        })
    }

    /// The services (lower case) the role grants at least one action of after Denies;
    /// `*` for a NotAction Allow or a pattern whose service part is only `*`s, and the
    /// service part as written (e.g. `i*`) for other wildcard service parts.
    pub(crate) fn granted_services(&self) -> BTreeSet<String> {
        let mut granted = BTreeSet::new();
        let every = all_actions();
        for (_, rule) in self.allows() {
            if rule.not_action && !granted.contains("*") {
                let terms: Vec<Term> = rule
                    .actions
                    .iter()
                    .filter(|t| t.negated)
                    .map(|t| Term {
                        globs: t.globs.clone(),
                        negated: true,
                    })
                    .collect();
                if self.survives(&terms, &rule.resources, &every) {
                    granted.insert("*".to_owned());
                }
            }
            for pattern in &rule.action_patterns {
                let Some(service) = service_part(pattern).filter(|s| !s.is_empty()) else {
                    continue;
                };
                let entry = if service.chars().all(|c| c == '*') {
                    "*"
                } else {
                    service
                };
                if granted.contains(entry) {
                    continue;
                }
                let term = [Term {
                    globs: vec![Glob::action(pattern)],
                    negated: false,
                }];
                let universe = if Glob::action(entry).is_plain() {
                    service_universe(entry)
                } else {
                    all_actions()
                };
                if self.survives(&term, &rule.resources, &universe) {
                    granted.insert(entry.to_owned());
                }
            }
        }
        granted
    }
}

/// The service part of a (lower-case) action pattern: the text before its first `:`;
/// without a `:`, the text up to and including the first `*` (which can stand for the
/// rest of the service name, the `:` and the action); None for a pattern that names no
/// action at all (no `:` and no `*`).
fn service_part(pattern: &str) -> Option<&str> {
    match pattern.split_once(':') {
        Some((service, _)) => Some(service),
        None => pattern.find('*').map(|star| &pattern[..=star]),
    }
}
