//! Matching a request's method and path against the URI templates of every operation in
//! the model (implemented or not), before any I/O happens.

use std::collections::HashMap;

use palisade_model::{OperationSpec, OPERATIONS};
use percent_encoding::percent_decode_str;

#[derive(Debug)]
enum Segment {
    Literal(&'static str),
    Label(&'static str),
    /// `{name+}`: the rest of the path, slashes included.
    Greedy(&'static str),
}

struct Route {
    spec: &'static OperationSpec,
    segments: Vec<Segment>,
    literals: usize,
}

/// The routing table, built once from the generated operation list.
pub struct Routes {
    /// Keyed by method and first path segment, which nearly every template has as a literal.
    by_prefix: HashMap<(&'static str, &'static str), Vec<Route>>,
    /// Templates whose first segment is a label.
    by_method: HashMap<&'static str, Vec<Route>>,
}

/// The operation a request addresses and its decoded URI labels.
pub struct Matched {
    pub spec: &'static OperationSpec,
    pub labels: Vec<(&'static str, String)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NoSuchPath,
    /// A label is not valid percent-encoded UTF-8, or holds a NUL.
    BadLabel(String),
}

impl Routes {
    pub fn new() -> Self {
        let mut by_prefix: HashMap<_, Vec<Route>> = HashMap::new();
        let mut by_method: HashMap<_, Vec<Route>> = HashMap::new();
        for spec in OPERATIONS {
            let segments = parse_template(spec.uri);
            let literals = segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            let route = Route {
                spec,
                segments,
                literals,
            };
            match route.segments.first() {
                Some(Segment::Literal(first)) => by_prefix
                    .entry((spec.method, *first))
                    .or_default()
                    .push(route),
                _ => by_method.entry(spec.method).or_default().push(route),
            }
        }
        // Most specific first: more literal segments win over labels.
        for routes in by_prefix.values_mut().chain(by_method.values_mut()) {
            routes.sort_by_key(|r| std::cmp::Reverse(r.literals));
        }
        Self {
            by_prefix,
            by_method,
        }
    }

    pub fn find(&self, method: &str, raw_path: &str) -> Result<Matched, RouteError> {
        let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
        let segs: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let first = segs.first().copied().unwrap_or("");
        let candidates = self
            .by_prefix
            .get(&(method, first))
            .into_iter()
            .flatten()
            .chain(self.by_method.get(method).into_iter().flatten());
        for route in candidates {
            if let Some(labels) = matches(route, &segs)? {
                return Ok(Matched {
                    spec: route.spec,
                    labels,
                });
            }
        }
        Err(RouteError::NoSuchPath)
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

fn parse_template(uri: &'static str) -> Vec<Segment> {
    let path = uri.split('?').next().unwrap_or(uri);
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.is_empty() {
        return Vec::new();
    }
    path.split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('+') {
                    Some(greedy) => Segment::Greedy(greedy),
                    None => Segment::Label(name),
                },
                None => Segment::Literal(s),
            },
        )
        .collect()
}

fn decode(raw: &str) -> Result<String, RouteError> {
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .filter(|s| !s.contains('\0'))
        .map(|s| s.into_owned())
        .ok_or_else(|| RouteError::BadLabel(raw.to_owned()))
}

fn matches(
    route: &Route,
    segs: &[&str],
) -> Result<Option<Vec<(&'static str, String)>>, RouteError> {
    let mut labels = Vec::new();
    for (i, seg) in route.segments.iter().enumerate() {
        match seg {
            Segment::Greedy(name) => {
                let rest = &segs[i.min(segs.len())..];
                if rest.is_empty() || rest.iter().all(|s| s.is_empty()) {
                    return Ok(None);
                }
                labels.push((*name, decode(&rest.join("/"))?));
                return Ok(Some(labels));
            }
            _ if i >= segs.len() => return Ok(None),
            Segment::Literal(lit) => {
                if *lit != segs[i] {
                    return Ok(None);
                }
            }
            Segment::Label(name) => {
                // An empty label never matches: `/mitigationactions/actions/` is not an action.
                if segs[i].is_empty() {
                    return Ok(None);
                }
                labels.push((*name, decode(segs[i])?));
            }
        }
    }
    Ok((route.segments.len() == segs.len()).then_some(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_implemented_and_unimplemented() {
        let r = Routes::new();
        let m = r
            .find("GET", "/mitigationactions/actions/my-action")
            .unwrap();
        assert_eq!(m.spec.name, "DescribeMitigationAction");
        assert_eq!(m.labels, vec![("actionName", "my-action".to_owned())]);
        assert_eq!(
            r.find("GET", "/mitigationactions/actions")
                .unwrap()
                .spec
                .name,
            "ListMitigationActions"
        );
        assert_eq!(r.find("POST", "/tags").unwrap().spec.name, "TagResource");
        assert_eq!(r.find("GET", "/jobs").unwrap().spec.name, "ListJobs");
        assert!(r.find("GET", "/jobs").unwrap().spec.decode.is_none());
        assert!(matches!(
            r.find("GET", "/nope/nothing"),
            Err(RouteError::NoSuchPath)
        ));
    }

    #[test]
    fn decodes_labels_and_rejects_empty() {
        let r = Routes::new();
        let m = r.find("GET", "/things/a%3Ab").unwrap();
        assert_eq!(m.labels, vec![("thingName", "a:b".to_owned())]);
        assert!(r.find("GET", "/mitigationactions/actions/").is_err());
        assert!(matches!(
            r.find("GET", "/things/%FF"),
            Err(RouteError::BadLabel(_))
        ));
    }

    #[test]
    fn literal_beats_label() {
        let r = Routes::new();
        // `/policies/{policyName}/version` (a literal) vs `/policies/{policyName}/version/{policyVersionId}`.
        let m = r.find("GET", "/policies/p1/version/3").unwrap();
        assert_eq!(m.spec.name, "GetPolicyVersion");
    }

    #[test]
    fn greedy_label() {
        let r = Routes::new();
        let m = r.find("GET", "/destinations/arn:aws:iot:x/y").unwrap();
        assert_eq!(m.spec.name, "GetTopicRuleDestination");
        assert_eq!(m.labels[0].1, "arn:aws:iot:x/y");
    }
}
