//! Triggers from the alerting rules a team already has: a Prometheus rule file, or
//! PrometheusRule objects (`monitoring.coreos.com/v1`), become `[[trigger]]` entries.
//!
//! An alert `QUERY > NUMBER` becomes a trigger on QUERY with that comparison and
//! threshold. Every selector in QUERY that does not pick a service and namespace
//! already is narrowed to `$SERVICE` and `$NAMESPACE`, so the fleet-wide alert becomes
//! the per-service signal backout judges. Imported triggers never roll back by
//! themselves: a critical alert pages and suggests, anything else is logged; raising
//! one to auto_rollback is a person's decision.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::TokenType;
use promql_parser::parser::{self, BinaryExpr, Expr};
use serde::{Deserialize, Serialize};

use super::triggers::{built_in, Comparison, Severity, Signal, Unit};

/// The labels that name a service and its namespace in the imported queries.
#[derive(Debug, Clone)]
pub struct Labels {
    pub service: String,
    pub namespace: String,
}

impl Default for Labels {
    fn default() -> Self {
        Labels {
            service: "service".into(),
            namespace: "namespace".into(),
        }
    }
}

/// One `[[trigger]]` as backout.toml takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imported {
    pub name: String,
    pub query: String,
    pub comparison: Comparison,
    pub threshold: f64,
    #[serde(rename = "for")]
    pub for_: String,
    pub severity: Severity,
    pub signal: Signal,
    pub unit: Unit,
}

/// What came of one alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Trigger(Imported),
    Skipped { alert: String, why: String },
}

#[derive(Deserialize)]
struct RuleFile {
    #[serde(default)]
    groups: Vec<Group>,
    /// A PrometheusRule object keeps its groups under `spec`.
    spec: Option<Box<RuleFile>>,
}

#[derive(Deserialize)]
struct Group {
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

/// Every alerting rule in `text` (one YAML document or several), in order; recording
/// rules are not alerts and are left out.
pub fn import(text: &str, labels: &Labels) -> Result<Vec<Outcome>, String> {
    let mut outcomes = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let file = RuleFile::deserialize(document)
            .map_err(|e| format!("not a Prometheus rule file or PrometheusRule: {e}"))?;
        let groups = match file.spec {
            Some(spec) => spec.groups,
            None => file.groups,
        };
        for rule in groups.into_iter().flat_map(|g| g.rules) {
            let Some(alert) = rule.alert.clone() else {
                continue;
            };
            outcomes.push(match convert(&rule, labels) {
                Ok(trigger) => Outcome::Trigger(trigger),
                Err(why) => Outcome::Skipped { alert, why },
            });
        }
    }
    Ok(outcomes)
}

fn convert(rule: &Rule, labels: &Labels) -> Result<Imported, String> {
    let alert = rule.alert.clone().unwrap_or_default();
    let expr = parser::parse(&rule.expr).map_err(|e| format!("not valid PromQL: {e}"))?;
    let (mut query, comparison, threshold) = split(expr)?;
    narrow(&mut query, labels)?;
    let query = query.to_string();
    let for_ = rule.for_.clone().unwrap_or_else(|| "0s".into());
    humantime::parse_duration(&for_).map_err(|e| format!("for: {for_:?}: {e}"))?;
    let severity = match rule.labels.get("severity").map(String::as_str) {
        Some("critical" | "page" | "high" | "error") => Severity::PageAndSuggest,
        _ => Severity::LogOnly,
    };
    let words = format!("{alert} {query}").to_lowercase();
    let has = |any: &[&str]| any.iter().any(|w| words.contains(w));
    let signal = if has(&["latency", "duration", "slow"]) {
        Signal::Latency
    } else if has(&["error", "5..", "fail"]) {
        Signal::ErrorRate
    } else if has(&["restart", "crash"]) {
        Signal::CrashLoop
    } else if has(&["memory", "oom"]) {
        Signal::Memory
    } else if has(&["cpu", "saturation", "throttl"]) {
        Signal::Saturation
    } else {
        Signal::Other
    };
    let unit = if has(&["ratio", "percent"]) || signal == Signal::ErrorRate && threshold < 1.0 {
        Unit::Ratio
    } else if has(&["seconds", "latency", "duration"]) {
        Unit::Seconds
    } else {
        Unit::Plain
    };
    // An alert named like a built-in would silently change the built-in instead.
    let name = if built_in().iter().any(|t| t.name == alert) {
        format!("{alert}-imported")
    } else {
        alert
    };
    Ok(Imported {
        name,
        query,
        comparison,
        threshold,
        for_,
        severity,
        signal,
        unit,
    })
}

/// `QUERY op NUMBER` (or `NUMBER op QUERY`) into its parts.
fn split(expr: Expr) -> Result<(Expr, Comparison, f64), String> {
    let no_threshold = "no `QUERY > NUMBER` comparison at its top: backout needs a threshold";
    let Expr::Binary(BinaryExpr {
        op,
        lhs,
        rhs,
        modifier,
    }) = unparen(expr)
    else {
        return Err(no_threshold.into());
    };
    if modifier.as_ref().is_some_and(|m| m.return_bool) {
        return Err("a `bool` comparison gives 0 or 1, not the value to compare".into());
    }
    let comparison = |op: TokenType, flipped: bool| -> Option<Comparison> {
        let text = op.to_string();
        Some(match (text.as_str(), flipped) {
            (">", false) | ("<", true) => Comparison::Above,
            (">=", false) | ("<=", true) => Comparison::AtLeast,
            ("<", false) | (">", true) => Comparison::Below,
            ("<=", false) | (">=", true) => Comparison::AtMost,
            _ => return None,
        })
    };
    match (unparen(*lhs), unparen(*rhs)) {
        (query, Expr::NumberLiteral(n)) => {
            Ok((query, comparison(op, false).ok_or(no_threshold)?, n.val))
        }
        (Expr::NumberLiteral(n), query) => {
            Ok((query, comparison(op, true).ok_or(no_threshold)?, n.val))
        }
        _ => Err(no_threshold.into()),
    }
}

fn unparen(expr: Expr) -> Expr {
    match expr {
        Expr::Paren(p) => unparen(*p.expr),
        other => other,
    }
}

/// Adds `service="$SERVICE"` and `namespace="$NAMESPACE"` to every selector that does
/// not already pick them.
fn narrow(expr: &mut Expr, labels: &Labels) -> Result<(), String> {
    let selector = |vs: &mut parser::VectorSelector| {
        for (label, value) in [
            (&labels.service, "$SERVICE"),
            (&labels.namespace, "$NAMESPACE"),
        ] {
            if !vs.matchers.matchers.iter().any(|m| &m.name == label) {
                vs.matchers
                    .matchers
                    .push(Matcher::new(MatchOp::Equal, label, value));
            }
        }
    };
    match expr {
        Expr::VectorSelector(vs) => selector(vs),
        Expr::MatrixSelector(ms) => selector(&mut ms.vs),
        Expr::Paren(p) => narrow(&mut p.expr, labels)?,
        Expr::Unary(u) => narrow(&mut u.expr, labels)?,
        Expr::Subquery(s) => narrow(&mut s.expr, labels)?,
        Expr::Aggregate(a) => narrow(&mut a.expr, labels)?,
        Expr::Binary(b) => {
            narrow(&mut b.lhs, labels)?;
            narrow(&mut b.rhs, labels)?;
        }
        Expr::Call(call) => {
            for arg in &mut call.args.args {
                narrow(arg, labels)?;
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::Extension(_) => return Err("an extension expression".into()),
    }
    Ok(())
}

/// The entries as TOML, each skipped alert as a comment saying why.
pub fn to_toml(outcomes: &[Outcome]) -> Result<String, String> {
    #[derive(Serialize)]
    struct File<'a> {
        trigger: Vec<&'a Imported>,
    }
    let triggers: Vec<&Imported> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Trigger(t) => Some(t),
            Outcome::Skipped { .. } => None,
        })
        .collect();
    let mut out = String::from(
        "# Imported by `backout triggers import`: none rolls back by itself; raise a\n# severity to auto_rollback once its signal has earned it.\n",
    );
    for o in outcomes {
        if let Outcome::Skipped { alert, why } = o {
            out.push_str(&format!("# skipped {alert}: {why}\n"));
        }
    }
    if !triggers.is_empty() {
        out.push('\n');
        out.push_str(&toml::to_string(&File { trigger: triggers }).map_err(|e| e.to_string())?);
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
groups:
  - name: shop
    rules:
      - record: job:up:sum
        expr: sum(up)
      - alert: HighErrorRate
        expr: sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05
        for: 5m
        labels: {severity: critical}
      - alert: SlowCheckout
        expr: 2 < histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="checkout"}[5m])))
        labels: {severity: warning}
      - alert: Down
        expr: absent(up{job="api"})
"#;

    fn triggers(outcomes: &[Outcome]) -> Vec<&Imported> {
        outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Trigger(t) => Some(t),
                Outcome::Skipped { .. } => None,
            })
            .collect()
    }

    #[test]
    fn an_alert_becomes_a_per_service_trigger_with_its_threshold() {
        let outcomes = import(RULES, &Labels::default()).unwrap();
        assert_eq!(outcomes.len(), 3, "the recording rule is not an alert");
        let found = triggers(&outcomes);
        let errors = found[0];
        assert_eq!(errors.name, "HighErrorRate");
        assert_eq!(
            errors.query,
            r#"sum(rate(http_requests_total{code=~"5..",namespace="$NAMESPACE",service="$SERVICE"}[5m])) / sum(rate(http_requests_total{namespace="$NAMESPACE",service="$SERVICE"}[5m]))"#
        );
        assert_eq!(
            (errors.comparison, errors.threshold),
            (Comparison::Above, 0.05)
        );
        assert_eq!(
            (errors.severity, errors.signal, errors.unit),
            (Severity::PageAndSuggest, Signal::ErrorRate, Unit::Ratio)
        );
        assert_eq!(errors.for_, "5m");
        // `2 < q` is `q > 2`; a selector that names its service keeps it.
        let slow = found[1];
        assert_eq!((slow.comparison, slow.threshold), (Comparison::Above, 2.0));
        assert!(
            slow.query
                .contains(r#"namespace="$NAMESPACE",service="checkout""#),
            "{}",
            slow.query
        );
        assert_eq!(
            (slow.severity, slow.signal),
            (Severity::LogOnly, Signal::Latency)
        );
        assert!(
            matches!(&outcomes[2], Outcome::Skipped { alert, why } if alert == "Down" && why.contains("threshold"))
        );
        let text = to_toml(&outcomes).unwrap();
        assert!(text.contains("# skipped Down:"), "{text}");
        assert_eq!(text.matches("[[trigger]]").count(), 2, "{text}");
    }

    #[test]
    fn a_prometheus_rule_object_reads_its_spec_and_a_builtin_name_is_not_overridden() {
        let object = r#"
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: shop}
spec:
  groups:
    - name: g
      rules:
        - alert: error-rate
          expr: service:http_errors:ratio_rate1m >= 0.1
"#;
        let outcomes = import(object, &Labels::default()).unwrap();
        let found = triggers(&outcomes);
        assert_eq!(found[0].name, "error-rate-imported");
        assert_eq!(found[0].comparison, Comparison::AtLeast);
        assert!(import("groups: 7", &Labels::default()).is_err());
    }
}
