//! A document's statements compiled once for all the questions the checks ask.

use crate::actions::{self, ActionSet, ACTIONS};
use crate::document::{Effect, Statement};
use crate::pattern::{self, Budget, Pattern, Prefix, Side, Term, WORK_BUDGET};

pub(crate) struct Rule<'a> {
    pub statement: Statement<'a>,
    pub actions: ActionSet,
    /// A Deny that can be trusted to subtract from Allows: unconditional (a condition
    /// might not hold for the request) and not mixing Action with NotAction or Resource
    /// with NotResource (ambiguous). Allows are always used, conditions or not: apart
    /// from IsAttached, conditions are not evaluated, so they never narrow a grant.
    pub subtracts: bool,
    resources: Vec<Pattern>,
    not_resources: Vec<Pattern>,
}

pub(crate) struct Policy<'a> {
    pub rules: Vec<Rule<'a>>,
    budget: Budget,
}

impl<'a> Policy<'a> {
    /// Compiles the statements against the account's resources: every pattern has read
    /// the prefix `arn:aws:iot:{region}:{account}:` of the resources the account's
    /// devices can request, so regions of interest start after it.
    pub(crate) fn new(statements: Vec<Statement<'a>>, account_id: &str, region: &str) -> Self {
        let arn_prefix = Prefix::new(format!("arn:aws:iot:{region}:{account_id}:"));
        let rules = statements
            .into_iter()
            .map(|statement| {
                let actions = actions::applies_to(
                    statement.action.as_deref(),
                    statement.not_action.as_deref(),
                );
                let side = match statement.effect {
                    Effect::Allow => Side::Allow {
                        client_id_bound: statement.is_attached,
                    },
                    Effect::Deny => Side::Deny,
                };
                // Only statements about data-plane actions ever reach the search. A
                // pattern outside the account matches none of its resources, so leaving
                // it out changes neither a Resource nor a NotResource list.
                let compile = |list: &Option<Vec<&str>>| match list {
                    Some(list) if actions != 0 => list
                        .iter()
                        .filter_map(|r| Pattern::compile(r, side, &arn_prefix))
                        .collect(),
                    _ => Vec::new(),
                };
                let resources = compile(&statement.resource);
                let not_resources = compile(&statement.not_resource);
                let ambiguous = (statement.action.is_some() && statement.not_action.is_some())
                    || (statement.resource.is_some() && statement.not_resource.is_some());
                let subtracts =
                    statement.effect == Effect::Deny && !statement.conditional && !ambiguous;
                Rule {
                    statement,
                    actions,
                    subtracts,
                    resources,
                    not_resources,
                }
            })
            .collect();
        Policy {
            rules,
            budget: Budget::new(WORK_BUDGET),
        }
    }

    /// Indices of the Allow rules that apply to `action`.
    pub(crate) fn allow_rules(&self, action: usize) -> Vec<usize> {
        self.rule_indices(action, |r| r.statement.effect == Effect::Allow)
    }

    /// Indices of the Deny rules that subtract from `action`.
    pub(crate) fn deny_rules(&self, action: usize) -> Vec<usize> {
        self.rule_indices(action, |r| r.subtracts)
    }

    fn rule_indices(&self, action: usize, keep: impl Fn(&Rule<'_>) -> bool) -> Vec<usize> {
        let bit: ActionSet = 1 << action;
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.actions & bit != 0 && keep(r))
            .map(|(i, _)| i)
            .collect()
    }

    fn terms(&self, rules: &[usize]) -> Vec<Term<'_>> {
        let mut terms = Vec::with_capacity(rules.len());
        for rule in rules.iter().filter_map(|&i| self.rules.get(i)) {
            if rule.statement.resource.is_some() {
                terms.push(Term {
                    negated: false,
                    patterns: &rule.resources,
                });
            }
            if rule.statement.not_resource.is_some() {
                terms.push(Term {
                    negated: true,
                    patterns: &rule.not_resources,
                });
            }
        }
        terms
    }

    /// Does the policy let `ACTIONS[action]` through on some resource in one of `regions`?
    pub(crate) fn reachable(&self, action: usize, regions: &[Pattern]) -> bool {
        self.reachable_with(&self.allow_rules(action), &self.deny_rules(action), regions)
    }

    /// Does the policy let the action of the Allow rules `allows` (less the Deny rules
    /// `denies`) through on some resource in one of `regions`?
    pub(crate) fn reachable_with(
        &self,
        allows: &[usize],
        denies: &[usize],
        regions: &[Pattern],
    ) -> bool {
        if allows.is_empty() {
            return false;
        }
        let (allows, denies) = (self.terms(allows), self.terms(denies));
        regions
            .iter()
            .any(|region| pattern::reachable(region, &allows, &denies, &self.budget))
    }
}

/// Splits `arn:{partition}:iot:{region}:{account}:{type}/{name}` into type and name.
pub(crate) fn resource_type_and_name(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some("iot"), Some(_), Some(_), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    rest.split_once('/')
}

/// The name of `ACTIONS[i]`.
pub(crate) fn action_name(i: usize) -> &'static str {
    ACTIONS.get(i).map_or("", |a| a.name)
}
