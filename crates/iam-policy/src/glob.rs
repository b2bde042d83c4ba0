//! Globs (`*`, `?`) as small automata, and the search that explores every string several
//! of them read at once.
//!
//! Strings are made of ordinary characters plus two abstract symbols, as in
//! palisade-iot-policy:
//!
//! - Ω ([`Sym::Thing`]): "a thing name the policy does not write down". Only `*` matches
//!   it, so a resource reaches `thing/Ω` exactly when a whole-name `*` stands there.
//! - β ([`Sym::Bound`]): "the value of a policy variable" (`${aws:username}`,
//!   `${cognito-identity.amazonaws.com:sub}`, …). Only the variable and `*` match it.
//!
//! The search is a breadth-first walk of the product of the globs' subset automata over
//! the characters the globs mention, `:`, one stand-in for every other character, and Ω
//! and β when a glob mentions them (elsewhere they would be strings no request has). It is exact; a [`Budget`] bounds its work, and a caller
//! whose budget runs out takes the answer that reports rather than the one that hides.

use std::cell::Cell;
use std::collections::{BTreeSet, HashSet, VecDeque};

/// Which characters a wildcard stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Any ordinary character (`?`, `*`; `*` also matches Ω and β).
    Any,
    /// Any ordinary character but `:` (the parts of an action name).
    NotColon,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Atom {
    Lit(char),
    /// One character of the class.
    One(Class),
    /// Any run of the class.
    Many(Class),
    /// A policy variable: matches β only.
    Bound,
    /// Ω: used in regions of interest only.
    Thing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Sym {
    Char(char),
    /// A character no glob of the search mentions (and not `:`).
    Other,
    Thing,
    Bound,
}

impl Atom {
    fn accepts(self, sym: Sym) -> bool {
        match (self, sym) {
            (Atom::Lit(a), Sym::Char(b)) => a == b,
            (Atom::One(Class::Any) | Atom::Many(Class::Any), Sym::Char(_) | Sym::Other) => true,
            (Atom::One(Class::NotColon) | Atom::Many(Class::NotColon), Sym::Char(c)) => c != ':',
            (Atom::One(Class::NotColon) | Atom::Many(Class::NotColon), Sym::Other) => true,
            (Atom::Many(Class::Any), Sym::Thing | Sym::Bound) => true,
            (Atom::Bound, Sym::Bound) | (Atom::Thing, Sym::Thing) => true,
            _ => false,
        }
    }
}

/// A compiled glob. Its automaton's states are positions `0..=atoms.len()`; a subset of
/// them (sorted) is one state of the deterministic automaton the search runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    atoms: Vec<Atom>,
}

type Set = Vec<u32>;

impl Glob {
    pub(crate) fn from_atoms(atoms: Vec<Atom>) -> Glob {
        Glob { atoms }
    }

    /// An IAM action pattern: ASCII case-folded, `*` and `?` wildcards, no variables.
    pub(crate) fn action(pattern: &str) -> Glob {
        Glob::from_atoms(
            pattern
                .chars()
                .map(|c| match c {
                    '*' => Atom::Many(Class::Any),
                    '?' => Atom::One(Class::Any),
                    c => Atom::Lit(c.to_ascii_lowercase()),
                })
                .collect(),
        )
    }

    /// An IAM resource pattern: case-sensitive, `*` and `?` wildcards, `${name}` a policy
    /// variable (β), except `${*}`, `${?}` and `${$}`, which are those characters. An
    /// unclosed `${` is literal text.
    pub(crate) fn resource(pattern: &str) -> Glob {
        let mut atoms = Vec::with_capacity(pattern.len());
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("${") {
                if let Some(end) = after.find('}') {
                    atoms.push(match &after[..end] {
                        "*" => Atom::Lit('*'),
                        "?" => Atom::Lit('?'),
                        "$" => Atom::Lit('$'),
                        _ => Atom::Bound,
                    });
                    rest = &after[end + 1..];
                    continue;
                }
            }
            atoms.push(match c {
                '*' => Atom::Many(Class::Any),
                '?' => Atom::One(Class::Any),
                c => Atom::Lit(c),
            });
            rest = &rest[c.len_utf8()..];
        }
        Glob { atoms }
    }

    /// Every string, Ω and β included.
    pub(crate) fn everything() -> Glob {
        Glob::from_atoms(vec![Atom::Many(Class::Any)])
    }

    /// Literal text followed by more atoms.
    pub(crate) fn text_then(text: &str, more: &[Atom]) -> Glob {
        let mut atoms: Vec<Atom> = text.chars().map(Atom::Lit).collect();
        atoms.extend_from_slice(more);
        Glob { atoms }
    }

    /// Whether the glob has no wildcard (it matches one string, its text).
    pub(crate) fn is_plain(&self) -> bool {
        self.atoms.iter().all(|a| matches!(a, Atom::Lit(_)))
    }

    /// Whether the glob could match a string `other` matches, judging by the literal
    /// text both start with: one must be a prefix of the other. A cheap filter that
    /// keeps the searches small when a role has many patterns of other services.
    pub(crate) fn may_overlap(&self, other: &Glob) -> bool {
        self.atoms
            .iter()
            .zip(&other.atoms)
            .take_while(|(a, b)| matches!((a, b), (Atom::Lit(_), Atom::Lit(_))))
            .all(|(a, b)| a == b)
    }

    fn literals(&self) -> impl Iterator<Item = char> + '_ {
        self.atoms.iter().filter_map(|a| match a {
            Atom::Lit(c) => Some(*c),
            _ => None,
        })
    }

    fn closure(&self, marks: &mut [bool]) {
        for (i, atom) in self.atoms.iter().enumerate() {
            if marks[i] && matches!(atom, Atom::Many(_)) {
                marks[i + 1] = true;
            }
        }
    }

    fn collect(marks: &[bool]) -> Set {
        (0u32..)
            .zip(marks)
            .filter(|(_, &m)| m)
            .map(|(i, _)| i)
            .collect()
    }

    fn start(&self) -> Set {
        let mut marks = vec![false; self.atoms.len() + 1];
        marks[0] = true;
        self.closure(&mut marks);
        Self::collect(&marks)
    }

    fn step(&self, set: &Set, sym: Sym) -> Set {
        if set.is_empty() {
            return Set::new();
        }
        let mut marks = vec![false; self.atoms.len() + 1];
        for &i in set {
            let i = i as usize;
            match self.atoms.get(i) {
                Some(&atom @ Atom::Many(_)) if atom.accepts(sym) => marks[i] = true,
                Some(&atom) if atom.accepts(sym) => marks[i + 1] = true,
                _ => {}
            }
        }
        self.closure(&mut marks);
        Self::collect(&marks)
    }

    fn accepting(&self, set: &Set) -> bool {
        set.last().is_some_and(|&i| i as usize == self.atoms.len())
    }

    /// Whether the glob matches the plain string `text`.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let mut set = self.start();
        for c in text.chars() {
            set = self.step(&set, Sym::Char(c));
            if set.is_empty() {
                return false;
            }
        }
        self.accepting(&set)
    }
}

/// Work allowed to the searches of one analysis, in glob-steps.
pub(crate) struct Budget(Cell<u64>);

/// The budget ran out before the search finished.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OutOfBudget;

impl Budget {
    pub(crate) fn new(units: u64) -> Budget {
        Budget(Cell::new(units))
    }

    fn spend(&self, units: u64) -> Result<(), OutOfBudget> {
        let left = self.0.get();
        if left < units {
            self.0.set(0);
            return Err(OutOfBudget);
        }
        self.0.set(left - units);
        Ok(())
    }
}

/// Explores every string the globs read together, calling `visit` with which globs
/// accept it (one flag per glob, in order) for each distinct state reached, until `visit`
/// returns true (then Ok(true)) or every state has been seen (Ok(false)). Strings the
/// first glob can no longer match are not extended: it is the universe or region the
/// question is about.
pub(crate) fn explore(
    globs: &[&Glob],
    budget: &Budget,
    mut visit: impl FnMut(&[bool]) -> bool,
) -> Result<bool, OutOfBudget> {
    let mut chars: BTreeSet<char> = globs.iter().flat_map(|g| g.literals()).collect();
    chars.insert(':');
    let mut alphabet: Vec<Sym> = chars.into_iter().map(Sym::Char).collect();
    alphabet.push(Sym::Other);
    // Ω and β only where a glob mentions them: elsewhere they would be strings no
    // request has (`?` matches neither, so `a?*` with `a` would not cover `a*`).
    let mentions = |atom: Atom| globs.iter().any(|g| g.atoms.contains(&atom));
    if mentions(Atom::Thing) {
        alphabet.push(Sym::Thing);
    }
    if mentions(Atom::Bound) {
        alphabet.push(Sym::Bound);
    }
    let start: Vec<Set> = globs.iter().map(|g| g.start()).collect();
    let mut seen: HashSet<Vec<Set>> = HashSet::from([start.clone()]);
    let mut queue = VecDeque::from([start]);
    let mut accepts = vec![false; globs.len()];
    // A step costs about the atoms of every glob still alive.
    let width = |state: &[Set]| -> u64 {
        globs
            .iter()
            .zip(state)
            .filter(|(_, s)| !s.is_empty())
            .map(|(g, _)| g.atoms.len() as u64 + 1)
            .sum()
    };
    while let Some(state) = queue.pop_front() {
        let cost = width(&state);
        budget.spend(cost)?;
        for ((flag, glob), set) in accepts.iter_mut().zip(globs).zip(&state) {
            *flag = glob.accepting(set);
        }
        if visit(&accepts) {
            return Ok(true);
        }
        if state.first().is_none_or(|s| s.is_empty()) {
            continue;
        }
        for &sym in &alphabet {
            budget.spend(cost)?;
            let next: Vec<Set> = globs
                .iter()
                .zip(&state)
                .map(|(g, s)| g.step(s, sym))
                .collect();
            if seen.insert(next.clone()) {
                queue.push_back(next);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(Glob::action("IOT:Create*").matches("iot:creatething"));
        assert!(Glob::action("i*:*").matches("iam:getrole"));
        assert!(!Glob::action("iot:?").matches("iot:"));
        assert!(Glob::action("*").matches(""));
        assert!(!Glob::resource("a${x}b").matches("a${x}b"));
        assert!(Glob::resource("a${*}b").matches("a*b"));
        assert!(Glob::resource("a${b").matches("a${b"));
        assert!(Glob::resource("thing/é*").matches("thing/éa"));
    }

    fn exists(globs: &[&Glob], want: &[bool]) -> bool {
        let budget = Budget::new(1_000_000);
        explore(globs, &budget, |acc| acc == want).unwrap()
    }

    #[test]
    fn searches() {
        let region = Glob::text_then("thing/", &[Atom::Thing]);
        // A whole-name star reaches Ω; a prefix, `?` and a variable do not.
        assert!(exists(
            &[&region, &Glob::resource("thing/*")],
            &[true, true]
        ));
        assert!(exists(&[&region, &Glob::resource("*")], &[true, true]));
        assert!(!exists(
            &[&region, &Glob::resource("thing/My*")],
            &[true, true]
        ));
        assert!(!exists(
            &[&region, &Glob::resource("thing/?")],
            &[true, true]
        ));
        assert!(!exists(
            &[&region, &Glob::resource("thing/${aws:username}")],
            &[true, true]
        ));
        // Subtraction: `a*` less `a*` is empty, `*` less `a*` is not.
        let any = Glob::everything();
        assert!(!exists(
            &[&any, &Glob::resource("a*"), &Glob::resource("a*")],
            &[true, true, false]
        ));
        assert!(exists(
            &[&any, &Glob::resource("*"), &Glob::resource("a*")],
            &[true, true, false]
        ));
        // The union of two Denies covers what neither covers alone.
        assert!(!exists(
            &[
                &any,
                &Glob::resource("x/?"),
                &Glob::resource("x/a"),
                &Glob::resource("x/*")
            ],
            &[true, true, false, false]
        ));
    }

    #[test]
    fn budget_runs_out() {
        let globs: Vec<Glob> = (0..8)
            .map(|i| Glob::resource(&format!("*{i}*{i}*{i}*")))
            .collect();
        let refs: Vec<&Glob> = globs.iter().collect();
        let budget = Budget::new(1_000);
        assert_eq!(explore(&refs, &budget, |_| false), Err(OutOfBudget));
    }
}
