//! Kubernetes label and field selectors, with the operators kubectl and kube-rs send.
//! The simulator serves them and backout's config uses them, so they live here.

use std::collections::BTreeSet;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// A parsed `fieldSelector` over dotted JSON paths such as `metadata.name`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// Splits on commas that are not inside `( )`, as `in (a,b)` needs.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse_set(raw: &str, whole: &str) -> Result<BTreeSet<String>, String> {
    let inner = raw
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!("unable to parse requirement: {whole:?}: expected a set like (a,b)")
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let bad = || {
        format!(
            "unable to parse requirement: {part:?}: found an unexpected operator or an invalid key"
        )
    };
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) {
            Ok(Requirement::NotExists(key.into()))
        } else {
            Err(bad())
        };
    }
    for (op, not) in [(" notin ", true), (" in ", false)] {
        if let Some((key, set)) = part.split_once(op) {
            let key = key.trim();
            if !valid_key(key) {
                return Err(bad());
            }
            let set = parse_set(set, part)?;
            return Ok(if not {
                Requirement::NotIn(key.into(), set)
            } else {
                Requirement::In(key.into(), set)
            });
        }
    }
    for (op, not) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(op) {
            let (key, value) = (key.trim(), value.trim());
            if !valid_key(key) || value.contains(['=', '!', '(', ')', ' ']) {
                return Err(bad());
            }
            return Ok(if not {
                Requirement::NotEquals(key.into(), value.into())
            } else {
                Requirement::Equals(key.into(), value.into())
            });
        }
    }
    if valid_key(part) {
        Ok(Requirement::Exists(part.into()))
    } else {
        Err(bad())
    }
}

impl LabelSelector {
    pub fn parse(raw: &str) -> Result<Self, String> {
        split_top_level(raw)
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<_, _>>()
            .map(LabelSelector)
    }

    /// A `key=value` every match must have, for looking candidates up in an index.
    pub fn required_pair(&self) -> Option<(&str, &str)> {
        self.0.iter().find_map(|req| match req {
            Requirement::Equals(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            Requirement::NotIn(k, set) => !get(k).is_some_and(|v| set.contains(v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// `matchLabels` (or a Service's selector map) as the `a=b,c=d` string lists take.
pub fn from_labels(labels: &Value) -> String {
    labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn field_value<'a>(obj: &'a Value, path: &str) -> Option<&'a str> {
    path.split('.')
        .try_fold(obj, |v, seg| v.get(seg))
        .and_then(Value::as_str)
}

impl FieldSelector {
    pub fn parse(raw: &str) -> Result<Self, String> {
        split_top_level(raw)
            .into_iter()
            .map(|part| {
                let (field, negate, value) = if let Some((f, v)) = part.split_once("!=") {
                    (f, true, v)
                } else if let Some((f, v)) = part.split_once("==") {
                    (f, false, v)
                } else if let Some((f, v)) = part.split_once('=') {
                    (f, false, v)
                } else {
                    return Err(format!(
                        "invalid selector: '{part}'; can't understand '{part}'"
                    ));
                };
                if !valid_key(field.trim()) {
                    return Err(format!(
                        "invalid selector: '{part}'; field label not supported"
                    ));
                }
                Ok((field.trim().to_string(), negate, value.trim().to_string()))
            })
            .collect::<Result<_, _>>()
            .map(FieldSelector)
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, negate, want)| {
            let have = field_value(obj, field).unwrap_or("");
            (have == want) != *negate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    #[test]
    fn label_operators_match_as_kubernetes_defines_them() {
        let obj = labelled(json!({"app": "web", "tier": "front"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (api, web)", true),
            ("app notin (api,web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=back", false),
            ("", true),
        ];
        for (raw, want) in cases {
            assert_eq!(
                LabelSelector::parse(raw).unwrap().matches(&obj),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected_with_the_requirement() {
        for raw in ["app=web=x", "app in web", "a b c", "=web"] {
            let err = LabelSelector::parse(raw).unwrap_err();
            assert!(err.contains("unable to parse requirement"), "{raw}: {err}");
        }
    }

    #[test]
    fn field_selectors_follow_dotted_paths() {
        let ev = json!({"metadata": {"name": "e1"}, "involvedObject": {"name": "web", "kind": "Deployment"}});
        assert!(FieldSelector::parse("involvedObject.name=web")
            .unwrap()
            .matches(&ev));
        assert!(
            FieldSelector::parse("metadata.name!=e2,involvedObject.kind=Deployment")
                .unwrap()
                .matches(&ev)
        );
        assert!(!FieldSelector::parse("metadata.name=e2")
            .unwrap()
            .matches(&ev));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
