//! The search: is there a resource in a region of interest that some Allow term matches
//! and no Deny term matches? Exact for IoT globs, by walking the product of the
//! patterns' automata (subset construction on the fly) from the end of the region's
//! literal lead.

use std::collections::HashSet;

use super::{add, get, matches_everything, ones, read, step, Atom, Pattern, Sym};

/// The Resource or NotResource list of one statement.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Term<'p> {
    /// NotResource: the term matches what none of the patterns match.
    pub negated: bool,
    pub patterns: &'p [Pattern],
}

/// How much searching one document may cost, in units of one pattern brought to a
/// region, or one active pattern position (or word of state) per state visited. The
/// policies of the tests need at most about 1,300; a hostile one could make the subset
/// construction blow up, so once a document has used this much every further question
/// is answered "reachable" (the audit errs towards reporting), which keeps one analysis
/// within about 2 ms.
pub(crate) const WORK_BUDGET: u64 = 100_000;

/// What is left of a document's [`WORK_BUDGET`]; shared by all its questions.
pub(crate) type Budget = std::cell::Cell<u64>;

/// A pattern with the positions it is in once the region's literal lead is read.
struct Started<'p> {
    atoms: &'p [Atom],
    bits: Vec<u64>,
}

impl<'p> Started<'p> {
    /// None when the pattern cannot match any string of the region. `then` is the
    /// region's atom after the lead: when it is Ω, only a pattern on a `*` can go on,
    /// which settles most identity questions without a search.
    fn new(pattern: &'p Pattern, lead: &[Atom], then: Option<&Atom>) -> Option<Self> {
        let bits = read(&pattern.atoms, &pattern.start, lead)?;
        let atoms = pattern.atoms.as_slice();
        if then == Some(&Atom::Thing) && !ones(&bits).any(|i| atoms.get(i) == Some(&Atom::Star)) {
            return None;
        }
        Some(Started { atoms, bits })
    }

    fn matches_everything(&self) -> bool {
        matches_everything(self.atoms, &self.bits)
    }
}

/// Is there a string in `region` that some Allow term matches and no Deny term matches?
pub(crate) fn reachable<'p>(
    region: &'p Pattern,
    allows: &[Term<'p>],
    denies: &[Term<'p>],
    budget: &Budget,
) -> bool {
    // Starting the patterns costs too: it bounds the work on documents with thousands
    // of resources, which the server's size limit rules out but this crate does not.
    let patterns = allows.iter().chain(denies).map(|t| t.patterns.len());
    if !spend(budget, 1 + patterns.sum::<usize>() as u64) {
        return true;
    }
    let lead_len = region
        .atoms
        .iter()
        .take_while(|a| matches!(a, Atom::Lit(_)))
        .count();
    let lead = &region.atoms[..lead_len];
    let start = |term: &Term<'p>| -> Vec<Started<'p>> {
        term.patterns
            .iter()
            .filter(|p| region.may_overlap(p))
            .filter_map(|p| Started::new(p, lead, region.atoms.get(lead_len)))
            .collect()
    };
    let mut allow_all = false;
    let mut allow_terms: Vec<(bool, Vec<Started<'_>>)> = Vec::new();
    for term in allows {
        let kept = start(term);
        let everything = kept.iter().any(Started::matches_everything);
        match (term.negated, kept.is_empty(), everything) {
            (false, true, _) | (true, _, true) => {} // grants nothing in the region
            (false, false, true) | (true, true, false) => allow_all = true,
            (negated, false, false) => allow_terms.push((negated, kept)),
        }
    }
    if !allow_all && allow_terms.is_empty() {
        return false;
    }
    let mut deny_terms: Vec<(bool, Vec<Started<'_>>)> = Vec::new();
    for term in denies {
        let kept = start(term);
        let everything = kept.iter().any(Started::matches_everything);
        match (term.negated, kept.is_empty(), everything) {
            (false, true, _) | (true, _, true) => {} // denies nothing in the region
            (false, false, true) | (true, true, false) => return false, // denies all of it
            (negated, false, false) => deny_terms.push((negated, kept)),
        }
    }
    if deny_terms.is_empty() {
        // Once the region is down to a trailing `*`, any surviving pattern of a Resource
        // list has some continuation it matches.
        let open_end = lead_len + 1 == region.atoms.len() && region.atoms[lead_len] == Atom::Star;
        if allow_all || (open_end && allow_terms.iter().any(|(negated, _)| !negated)) {
            return true;
        }
    }
    if allow_all {
        allow_terms.clear();
    }
    let region = Started {
        atoms: &region.atoms,
        bits: {
            let mut bits = vec![0; (region.atoms.len() + 1).div_ceil(64)];
            add(&region.atoms, &mut bits, lead_len);
            bits
        },
    };
    Search::new(region, allow_all, allow_terms, deny_terms).run(budget)
}

/// A depth-first walk of the product of the patterns' NFAs (subset construction on the
/// fly). Pattern 0 is the region; each state is the concatenation of one bitset of
/// active positions per pattern.
struct Search<'p> {
    patterns: Vec<&'p [Atom]>,
    /// Word offset of each pattern's bitset; one extra entry holds the total.
    offsets: Vec<usize>,
    start: Vec<u64>,
    allow_all: bool,
    /// (negated, first pattern, end) per term.
    allows: Vec<(bool, usize, usize)>,
    denies: Vec<(bool, usize, usize)>,
}

impl<'p> Search<'p> {
    fn new(
        region: Started<'p>,
        allow_all: bool,
        allows: Vec<(bool, Vec<Started<'p>>)>,
        denies: Vec<(bool, Vec<Started<'p>>)>,
    ) -> Self {
        let mut patterns = vec![region.atoms];
        let mut offsets = vec![0];
        let mut start = region.bits;
        let mut spans = |terms: Vec<(bool, Vec<Started<'p>>)>| {
            terms
                .into_iter()
                .map(|(negated, started)| {
                    let first = patterns.len();
                    for s in started {
                        patterns.push(s.atoms);
                        offsets.push(start.len());
                        start.extend_from_slice(&s.bits);
                    }
                    (negated, first, patterns.len())
                })
                .collect::<Vec<_>>()
        };
        let allows = spans(allows);
        let denies = spans(denies);
        offsets.push(start.len());
        Search {
            patterns,
            offsets,
            start,
            allow_all,
            allows,
            denies,
        }
    }

    fn bits<'s>(&self, state: &'s [u64], k: usize) -> &'s [u64] {
        &state[self.offsets[k]..self.offsets[k + 1]]
    }

    fn is_final(&self, state: &[u64], k: usize) -> bool {
        get(self.bits(state, k), self.patterns[k].len())
    }

    fn is_empty(&self, state: &[u64], k: usize) -> bool {
        self.bits(state, k).iter().all(|w| *w == 0)
    }

    fn term_matches(&self, state: &[u64], (negated, start, end): (bool, usize, usize)) -> bool {
        let any = (start..end).any(|k| self.is_final(state, k));
        any != negated
    }

    fn accepting(&self, state: &[u64]) -> bool {
        self.is_final(state, 0)
            && (self.allow_all || self.allows.iter().any(|t| self.term_matches(state, *t)))
            && !self.denies.iter().any(|t| self.term_matches(state, *t))
    }

    /// No continuation can be accepted: the region is exhausted, or every Allow is a
    /// plain Resource list whose patterns have all failed.
    fn dead(&self, state: &[u64]) -> bool {
        self.is_empty(state, 0)
            || (!self.allow_all
                && self.allows.iter().all(|&(negated, start, end)| {
                    !negated && (start..end).all(|k| self.is_empty(state, k))
                }))
    }

    fn step(&self, src: &[u64], sym: Sym, dst: &mut [u64]) {
        dst.fill(0);
        for (k, atoms) in self.patterns.iter().enumerate() {
            let range = self.offsets[k]..self.offsets[k + 1];
            step(atoms, &src[range.clone()], sym, &mut dst[range]);
        }
    }

    /// The symbols worth trying from `state`. While the region is a literal run, only its
    /// next symbol can lead anywhere; once it is open, the literals the other patterns
    /// are waiting for, plus one stand-in for everything else.
    fn candidates(&self, state: &[u64], out: &mut Vec<Sym>) {
        out.clear();
        let region = self.patterns[0];
        let open = ones(self.bits(state, 0))
            .any(|i| matches!(region.get(i), Some(Atom::Star | Atom::One)));
        let from = if open { 0..self.patterns.len() } else { 0..1 };
        for k in from {
            let atoms = self.patterns[k];
            for i in ones(self.bits(state, k)) {
                let sym = match atoms.get(i) {
                    Some(Atom::Lit(c)) => Sym::Char(*c),
                    Some(Atom::Thing) => Sym::Thing,
                    Some(Atom::Bound) => Sym::Bound,
                    _ => continue,
                };
                if !out.contains(&sym) {
                    out.push(sym);
                }
            }
        }
        if open {
            for sym in [Sym::Other, Sym::Thing, Sym::Bound] {
                if !out.contains(&sym) {
                    out.push(sym);
                }
            }
        }
    }

    fn run(self, budget: &Budget) -> bool {
        if self.accepting(&self.start) {
            return true;
        }
        let words = self.start.len();
        let mut current = vec![0; words];
        let mut next = vec![0; words];
        let mut stack = self.start.clone();
        let mut syms = Vec::new();
        // A state can only recur while the region loops on its `*`; before that the
        // region's position advances on every step, so only those states are recorded.
        let mut seen: HashSet<Vec<u64>> = HashSet::new();
        while words > 0 && stack.len() >= words {
            let top = stack.len() - words;
            current.copy_from_slice(&stack[top..]);
            stack.truncate(top);
            self.candidates(&current, &mut syms);
            for &sym in &syms {
                self.step(&current, sym, &mut next);
                if self.dead(&next) {
                    continue;
                }
                if self.accepting(&next) {
                    return true;
                }
                let region = self.patterns[0];
                let looping = ones(self.bits(&next, 0)).any(|i| region.get(i) == Some(&Atom::Star));
                if looping && !seen.insert(next.clone()) {
                    continue;
                }
                if !spend(budget, 1 + words as u64 + ones(&next).count() as u64) {
                    return true;
                }
                stack.extend_from_slice(&next);
            }
        }
        false
    }
}

/// Takes `cost` from the budget; false (and nothing taken) when it does not cover it.
fn spend(budget: &Budget, cost: u64) -> bool {
    match budget.get().checked_sub(cost) {
        Some(left) => {
            budget.set(left);
            true
        }
        None => false,
    }
}
