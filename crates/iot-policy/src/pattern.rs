//! Resource patterns and the search that decides whether some request inside a region
//! of interest gets through a set of Allow and Deny resource patterns.
//!
//! Resources are compared as strings over an alphabet of ordinary characters plus two
//! abstract symbols:
//!
//! - **Ω** ([`Sym::Thing`]): "some other device's name or client ID", a value the policy
//!   author did not write down. Only `*` matches it. Regions of interest put Ω where a
//!   device's identity goes (`client/Ω`, `topic/$aws/things/Ω/…`, `thing/Ω`), so a pattern
//!   reaches Ω exactly when it lets a device act for devices it does not name.
//! - **β** ([`Sym::Bound`]): "the value of a device-bound policy variable", such as
//!   `${iot:Connection.Thing.ThingName}`. Only the variable itself and `*` match it, so a
//!   variable in the identity position does not reach Ω.
//!
//! IoT policy wildcards are `*` (any run of characters, `/` included) and `?` (one
//! character); MQTT's `+` and `#` are literal characters in policies.

mod search;

pub(crate) use search::{reachable, Budget, Term, WORK_BUDGET};

/// One element of a compiled pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Atom {
    Lit(char),
    /// `?`: one ordinary character (never a whole name, so it does not match Ω or β).
    One,
    /// `*`: any run of symbols.
    Star,
    /// A device-bound policy variable: matches β only.
    Bound,
    /// Ω, used only in regions of interest.
    Thing,
}

/// A symbol of the strings the search builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sym {
    Char(char),
    /// Any ordinary character that no literal at the current positions mentions: such
    /// characters all move every pattern the same way, so one stands for all of them.
    Other,
    Thing,
    Bound,
}

impl Atom {
    fn accepts(self, sym: Sym) -> bool {
        match (self, sym) {
            (Atom::Lit(a), Sym::Char(b)) => a == b,
            (Atom::One, Sym::Char(_) | Sym::Other) => true,
            (Atom::Thing, Sym::Thing) | (Atom::Bound, Sym::Bound) => true,
            _ => false,
        }
    }
}

/// Which side of the policy a pattern comes from; it decides how `${iot:ClientId}` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// In an Allow, `${iot:ClientId}` is whatever the client chose (a `*`) unless the
    /// statement requires `iot:Connection.Thing.IsAttached`, which ties the client ID to
    /// a thing attached to the device's certificate.
    Allow { client_id_bound: bool },
    /// In a Deny every variable is device-bound: it denies the requesting device's own
    /// resource and so never covers other devices' resources.
    Deny,
}

/// A compiled pattern (consecutive `*` collapsed, which the search relies on), with the
/// positions it is in once the audited account's ARN prefix has been read: every region
/// of interest starts with that prefix, so it is read once per pattern here instead of
/// once per question asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    atoms: Vec<Atom>,
    start: Vec<u64>,
}

/// The ARN prefix of the audited account's resources, as text and as literal atoms.
pub(crate) struct Prefix {
    text: String,
    atoms: Vec<Atom>,
    /// No character that a pattern would read as a wildcard or variable, so a pattern
    /// that starts with the same text reads it literally.
    plain: bool,
}

impl Prefix {
    pub(crate) fn new(text: String) -> Self {
        let atoms = text.chars().map(Atom::Lit).collect();
        let plain = !text.contains(['*', '?', '$']);
        Prefix { text, atoms, plain }
    }
}

/// A piece of a region of interest.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Part<'s> {
    Lit(&'s str),
    Thing,
    Star,
}

impl Pattern {
    /// Compiles a Resource/NotResource string of an IoT policy and reads `prefix` (the
    /// account's `arn:aws:iot:{region}:{account}:`) through it. None when the pattern
    /// matches nothing that starts with `prefix` (another account, region or service).
    pub(crate) fn compile(text: &str, side: Side, prefix: &Prefix) -> Option<Pattern> {
        // Usually the resource spells the prefix out; then there is nothing to read.
        if let Some(rest) = text
            .strip_prefix(prefix.text.as_str())
            .filter(|_| prefix.plain)
        {
            let atoms = atoms(rest, side);
            let start = initial(&atoms);
            return Some(Pattern { atoms, start });
        }
        let mut atoms = atoms(text, side);
        let mut start = read(&atoms, &initial(&atoms), &prefix.atoms)?;
        // Usually the pattern spelled the prefix out and sits at one position after it:
        // drop what is behind, so the search deals with short patterns.
        if let Some(p) = single(&start).filter(|p| *p > 0) {
            atoms.drain(..p);
            start = initial(&atoms);
        }
        Some(Pattern { atoms, start })
    }

    /// Builds a region of interest (what follows the account's ARN prefix) from literal
    /// text, Ω and `*`.
    pub(crate) fn region(parts: &[Part<'_>]) -> Pattern {
        let len = parts
            .iter()
            .map(|p| match p {
                Part::Lit(s) => s.len(),
                _ => 1,
            })
            .sum();
        let mut atoms = Vec::with_capacity(len);
        for part in parts {
            match part {
                Part::Lit(s) => atoms.extend(s.chars().map(Atom::Lit)),
                Part::Thing => atoms.push(Atom::Thing),
                Part::Star => push(&mut atoms, Atom::Star),
            }
        }
        let start = initial(&atoms);
        Pattern { atoms, start }
    }

    /// A cheap necessary condition for two patterns to share a string: their trailing
    /// literal runs agree. (Leading runs are compared when the search starts.)
    fn may_overlap(&self, other: &Pattern) -> bool {
        self.atoms
            .iter()
            .rev()
            .zip(other.atoms.iter().rev())
            .take_while(|(x, y)| matches!(x, Atom::Lit(_)) && matches!(y, Atom::Lit(_)))
            .all(|(x, y)| x == y)
    }
}

/// The atoms of a Resource/NotResource string.
fn atoms(text: &str, side: Side) -> Vec<Atom> {
    let mut atoms = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '$' {
            if let Some(body) = rest.strip_prefix("${") {
                if let Some(end) = body.find('}') {
                    push(&mut atoms, variable(&body[..end], side));
                    rest = &body[end + 1..];
                    continue;
                }
            }
        }
        push(
            &mut atoms,
            match c {
                '*' => Atom::Star,
                '?' => Atom::One,
                c => Atom::Lit(c),
            },
        );
        rest = &rest[c.len_utf8()..];
    }
    atoms
}

/// The positions of a pattern before anything is read.
fn initial(atoms: &[Atom]) -> Vec<u64> {
    let mut bits = vec![0; (atoms.len() + 1).div_ceil(64)];
    add(atoms, &mut bits, 0);
    bits
}

/// The positions after reading literal `text` from `start`; None once none is left.
/// A single position followed by the same literal text (the usual case: a pattern that
/// spells out the same ARN) jumps over it at once.
fn read(atoms: &[Atom], start: &[u64], text: &[Atom]) -> Option<Vec<u64>> {
    let mut from = 0;
    let mut bits = match single(start) {
        Some(p) => {
            let same = atoms
                .get(p..)
                .unwrap_or_default()
                .iter()
                .zip(text)
                .take_while(|(a, b)| a == b)
                .count();
            from = same;
            let mut bits = vec![0; start.len()];
            add(atoms, &mut bits, p + same);
            bits
        }
        None => start.to_vec(),
    };
    let mut next = Vec::new();
    for atom in &text[from..] {
        if matches_everything(atoms, &bits) {
            break; // and it will whatever follows
        }
        let Atom::Lit(c) = *atom else {
            break; // only literal text is ever read
        };
        next.clear();
        next.resize(bits.len(), 0);
        step(atoms, &bits, Sym::Char(c), &mut next);
        std::mem::swap(&mut bits, &mut next);
        if bits.iter().all(|w| *w == 0) {
            return None;
        }
    }
    Some(bits)
}

/// The only active position, if there is exactly one.
fn single(bits: &[u64]) -> Option<usize> {
    if bits.iter().map(|w| w.count_ones()).sum::<u32>() != 1 {
        return None;
    }
    let w = bits.iter().position(|w| *w != 0)?;
    Some(w * 64 + bits[w].trailing_zeros() as usize)
}

/// The pattern sits on a trailing `*`: it matches every continuation.
fn matches_everything(atoms: &[Atom], bits: &[u64]) -> bool {
    atoms.last() == Some(&Atom::Star) && get(bits, atoms.len() - 1)
}

fn push(atoms: &mut Vec<Atom>, atom: Atom) {
    if !(atom == Atom::Star && atoms.last() == Some(&Atom::Star)) {
        atoms.push(atom);
    }
}

/// How a `${…}` policy variable reads. `${*}`, `${?}` and `${$}` are IAM's escapes for
/// the literal characters. `${iot:ClientId}` is the only variable whose value the client
/// picks freely; every other one (thing name, type and attributes, certificate fields,
/// Cognito identity, …) resolves to one value fixed by the registry or the credentials,
/// so it restricts a grant to that device's own resources. Unknown variables read the
/// same way: AWS leaves a resource with an unresolvable variable unmatched, so it grants
/// nothing broad either.
fn variable(name: &str, side: Side) -> Atom {
    match name {
        "*" => Atom::Lit('*'),
        "?" => Atom::Lit('?'),
        "$" => Atom::Lit('$'),
        _ if name.eq_ignore_ascii_case("iot:ClientId") => match side {
            Side::Allow {
                client_id_bound: false,
            } => Atom::Star,
            _ => Atom::Bound,
        },
        _ => Atom::Bound,
    }
}

/// Activates position `i` of a pattern, and the one after it when `i` is a `*` (stars
/// are collapsed, so the closure is a single step).
fn add(atoms: &[Atom], bits: &mut [u64], i: usize) {
    set(bits, i);
    if atoms.get(i) == Some(&Atom::Star) {
        set(bits, i + 1);
    }
}

/// Adds to `dst` the positions reached from `src` by reading `sym`.
fn step(atoms: &[Atom], src: &[u64], sym: Sym, dst: &mut [u64]) {
    for i in ones(src) {
        match atoms.get(i) {
            Some(Atom::Star) => add(atoms, dst, i),
            Some(atom) if atom.accepts(sym) => add(atoms, dst, i + 1),
            _ => {}
        }
    }
}

fn get(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| (w >> (i % 64)) & 1 == 1)
}

fn set(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w |= 1 << (i % 64);
    }
}

/// Indices of the set bits.
fn ones(bits: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().flat_map(|(w, &word)| {
        let mut rest = word;
        std::iter::from_fn(move || {
            (rest != 0).then(|| {
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                w * 64 + b
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: Side = Side::Allow {
        client_id_bound: false,
    };

    fn reaches(region: &Pattern, allows: &[Term<'_>], denies: &[Term<'_>]) -> bool {
        reachable(region, allows, denies, &Budget::new(WORK_BUDGET))
    }

    fn c(s: &str, side: Side) -> Pattern {
        Pattern::compile(s, side, &Prefix::new(String::new()))
            .expect("an empty prefix is always read")
    }

    fn p(s: &str) -> Pattern {
        c(s, ALLOW)
    }

    fn term(patterns: &[Pattern]) -> Term<'_> {
        Term {
            negated: false,
            patterns,
        }
    }

    fn not_term(patterns: &[Pattern]) -> Term<'_> {
        Term {
            negated: true,
            patterns,
        }
    }

    /// A region that is one concrete string: "does the policy allow exactly this?".
    fn lit(s: &str) -> Pattern {
        Pattern::region(&[Part::Lit(s)])
    }

    fn matches(pattern: &str, text: &str) -> bool {
        reaches(&lit(text), &[term(&[p(pattern)])], &[])
    }

    #[test]
    fn compiles_wildcards_variables_and_escapes() {
        use Atom::*;
        assert_eq!(p("a**?").atoms, [Lit('a'), Star, One]);
        assert_eq!(p("${iot:ClientId}").atoms, [Star]);
        assert_eq!(p("${IOT:CLIENTID}").atoms, [Star]);
        let bound = c(
            "${iot:ClientId}",
            Side::Allow {
                client_id_bound: true,
            },
        );
        assert_eq!(bound.atoms, [Bound]);
        assert_eq!(c("${iot:ClientId}", Side::Deny).atoms, [Bound]);
        assert_eq!(
            p("x${iot:Connection.Thing.ThingName}").atoms,
            [Lit('x'), Bound]
        );
        assert_eq!(p("${*}${?}${$}").atoms, [Lit('*'), Lit('?'), Lit('$')]);
        // An unclosed variable is literal text.
        assert_eq!(p("${a").atoms, [Lit('$'), Lit('{'), Lit('a')]);
        assert_eq!(p("é+#").atoms, [Lit('é'), Lit('+'), Lit('#')]);
    }

    #[test]
    fn glob_matching_of_concrete_strings() {
        assert!(matches("*", "anything/at/all"));
        assert!(matches("a/*/c", "a/b/x/c"));
        assert!(matches("a/?/c", "a/b/c"));
        assert!(!matches("a/?/c", "a/bb/c"));
        assert!(matches("a/+/c", "a/+/c"));
        assert!(!matches("a/+/c", "a/b/c"));
        assert!(!matches("a/#", "a/b"));
        assert!(matches("*b*b*", "abab"));
        assert!(!matches("*b*b*", "ab"));
        assert!(!matches("abc", "ab"));
        assert!(matches("", ""));
        assert!(!matches("x", ""));
    }

    #[test]
    fn thing_symbol_is_reached_only_by_star() {
        let region = Pattern::region(&[Part::Lit("t/"), Part::Thing, Part::Lit("/"), Part::Star]);
        let reach = |s: &str| reaches(&region, &[term(&[p(s)])], &[]);
        assert!(reach("t/*"));
        assert!(reach("*"));
        assert!(reach("t/*/shadow"));
        assert!(reach("*/shadow/*"));
        assert!(!reach("t/a*/x"));
        // `*` spans `/`: this is `x` under any thing, e.g. `t/Ω/a/x`.
        assert!(reach("t/*a/x"));
        // `?` is one character, never a whole name.
        assert!(!reach("t/?/*"));
        assert!(!reach("t/?/x"));
        assert!(!reach("t/${iot:Connection.Thing.ThingName}/*"));
        assert!(reach("t/${iot:ClientId}/*"));
        assert!(!reach("u/*"));
    }

    #[test]
    fn denies_subtract_exactly() {
        let region = Pattern::region(&[Part::Lit("t/"), Part::Thing, Part::Lit("/"), Part::Star]);
        let allow = [p("t/*")];
        let deny = |s: &str| reaches(&region, &[term(&allow)], &[term(&[c(s, Side::Deny)])]);
        assert!(!deny("t/*"));
        assert!(!deny("*"));
        assert!(!deny("t/*/*"));
        assert!(deny("t/*/shadow/*"), "jobs topics stay reachable");
        assert!(
            deny("t/${iot:ClientId}/*"),
            "a variable in a Deny covers one device"
        );
        assert!(deny("t/a*"));
        let all = [c("t/*/*", Side::Deny)];
        assert!(!reaches(&region, &[term(&allow)], &[term(&all)]));
        // Two denies that only cover the region together.
        let q = Pattern::region(&[Part::Lit("q/"), Part::Star]);
        let allow_q = [p("q/*")];
        let dq = |s: &str| c(s, Side::Deny);
        let a = [dq("q/a*")];
        assert!(reaches(&q, &[term(&allow_q)], &[term(&a)]));
        assert!(reaches(&q, &[term(&allow_q)], &[not_term(&a)]));
        assert!(!reaches(&q, &[term(&allow_q)], &[term(&a), not_term(&a)]));
    }

    #[test]
    fn an_exhausted_budget_answers_reachable() {
        let region = Pattern::region(&[Part::Lit("t/"), Part::Thing, Part::Lit("/"), Part::Star]);
        let allow = [p("t/*")];
        let deny = [c("t/*/*", Side::Deny)];
        let ask = |budget: u64| {
            reachable(
                &region,
                &[term(&allow)],
                &[term(&deny)],
                &Budget::new(budget),
            )
        };
        assert!(!ask(WORK_BUDGET));
        assert!(ask(0));
        let budget = Budget::new(WORK_BUDGET);
        reachable(&region, &[term(&allow)], &[term(&deny)], &budget);
        assert!(budget.get() < WORK_BUDGET, "searching costs");
    }

    #[test]
    fn not_resource_terms() {
        let region = lit("t/x");
        assert!(reaches(&region, &[not_term(&[p("t/y")])], &[]));
        assert!(!reaches(&region, &[not_term(&[p("t/*")])], &[]));
        assert!(!reaches(&region, &[not_term(&[p("*")])], &[]));
        // A Deny with NotResource denies everything it does not list.
        let allow = [p("*")];
        assert!(!reaches(&region, &[term(&allow)], &[not_term(&[p("t/y")])]));
        assert!(reaches(&region, &[term(&allow)], &[not_term(&[p("t/?")])]));
    }

    #[test]
    fn overlap_prefilter_is_sound() {
        assert!(!p("abc").may_overlap(&p("abd")));
        assert!(!p("a*c").may_overlap(&p("a*d")));
        assert!(p("ab*").may_overlap(&p("a*")));
        assert!(p("*x").may_overlap(&p("a*x")));
    }

    #[test]
    fn long_patterns_use_several_words() {
        let long = "a".repeat(200);
        assert!(matches(&format!("{long}*"), &format!("{long}b")));
        assert!(!matches(&format!("{long}?"), &long));
    }
}
