//! One Prometheus query per trigger for every watched service, instead of one per
//! (trigger, service): the trigger's PromQL is rewritten so that each service's
//! series comes back labelled with its service (and namespace), and the engine fans
//! the answer out. A query whose meaning could change under the rewrite stays per
//! service, and config load says which and why.

use promql_parser::label::{Labels, MatchOp, Matcher};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, LabelModifier};

use super::triggers::{expand, Trigger};

/// Stand-ins for `$SERVICE` (and `$DEPLOYMENT`, the same name in backout) and
/// `$NAMESPACE` while the query is parsed and rewritten.
const SERVICE: &str = "__backout_service__";
const NAMESPACE: &str = "__backout_namespace__";

/// A trigger query rewritten to answer for many services at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouped {
    /// The rewritten query, its per-service matchers still holding the stand-ins.
    template: String,
    service_label: String,
    /// `None` when the query does not select by namespace: it is then asked once per
    /// namespace, as the per-service query would have mixed namespaces too.
    namespace_label: Option<String>,
}

/// A trigger asked for many services at once: its query and, when it has one, its
/// volume query, both grouped.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedTrigger {
    pub query: Grouped,
    pub volume: Option<Grouped>,
}

/// How the poller asks for `trigger`: grouped, or (the error) per service and why.
pub fn plan(trigger: &Trigger) -> Result<GroupedTrigger, String> {
    let query = Grouped::analyse(&trigger.query)?;
    let volume = match trigger.volume_query.as_deref() {
        Some(v) => Some(Grouped::analyse(v).map_err(|e| format!("volume_query: {e}"))?),
        None => None,
    };
    Ok(GroupedTrigger { query, volume })
}

/// `trigger` with the reason it will be asked per service recorded, decided at load
/// so `status` can say it (cluster signals are not asked of Prometheus at all).
pub fn settle(mut trigger: Trigger) -> Trigger {
    trigger.per_service = match trigger.cluster {
        Some(_) => None,
        None => plan(&trigger).err(),
    };
    trigger
}

/// What a sub-expression yields, for deciding whether a rewrite keeps its meaning.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Scalar,
    /// A vector not selected per service (a fleet-wide total, `vector(0)`).
    Unkeyed,
    /// A vector whose series carry the service (and namespace) labels.
    Keyed,
}

#[derive(Default)]
struct Rewrite {
    service_label: Option<String>,
    namespace_label: Option<String>,
    /// A selector picked the service but not the namespace.
    keyed_without_namespace: bool,
}

impl Grouped {
    /// The grouped form of `query`, or why it must be asked per service.
    pub fn analyse(query: &str) -> Result<Grouped, String> {
        let text = expand(query, NAMESPACE, SERVICE, SERVICE);
        let mut expr = parser::parse(&text).map_err(|e| format!("not valid PromQL: {e}"))?;
        let mut rewrite = Rewrite::default();
        if rewrite.walk(&mut expr)? != Shape::Keyed {
            return Err("its result is not one series per service ($SERVICE does not pick the series it returns)".into());
        }
        let service_label = rewrite.service_label.expect("a keyed result has one");
        if rewrite.namespace_label.is_some() && rewrite.keyed_without_namespace {
            return Err("some selectors pick the service without its namespace".into());
        }
        let template = expr.to_string();
        // The rewrite must read back as PromQL; if it does not, asking per service is
        // the safe answer.
        parser::parse(&template).map_err(|e| format!("the grouped form does not parse: {e}"))?;
        Ok(Grouped {
            template,
            service_label,
            namespace_label: rewrite.namespace_label,
        })
    }

    pub fn namespaced(&self) -> bool {
        self.namespace_label.is_some()
    }

    /// The query for services `names` in `namespaces`: each stand-in matcher becomes
    /// a regex matcher over exactly those values.
    pub fn query(&self, namespaces: &[&str], names: &[&str]) -> String {
        let mut text = swap(&self.template, &self.service_label, SERVICE, names);
        if let Some(label) = &self.namespace_label {
            text = swap(&text, label, NAMESPACE, namespaces);
        }
        text
    }

    /// The (namespace if labelled, service) a result series belongs to.
    /// `label` reads one of the series' labels by name.
    pub fn service_of<'a>(
        &self,
        label: impl Fn(&str) -> Option<&'a str>,
    ) -> Option<(Option<&'a str>, &'a str)> {
        let service = label(&self.service_label)?;
        let namespace = match &self.namespace_label {
            Some(name) => Some(label(name)?),
            None => None,
        };
        Some((namespace, service))
    }
}

/// `label="<stand-in>"` as the printer writes it, replaced by `label=~"a|b|…"`.
fn swap(template: &str, label: &str, stand_in: &str, values: &[&str]) -> String {
    let equal = Matcher::new(MatchOp::Equal, label, stand_in).to_string();
    let name = &equal[..equal.len() - format!("=\"{stand_in}\"").len()];
    let alternatives: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
    let pattern = alternatives
        .join("|")
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    template.replace(&equal, &format!("{name}=~\"{pattern}\""))
}

impl Rewrite {
    fn walk(&mut self, expr: &mut Expr) -> Result<Shape, String> {
        match expr {
            Expr::NumberLiteral(_) => Ok(Shape::Scalar),
            Expr::StringLiteral(s) if mentions(&s.val) => {
                Err("$SERVICE or $NAMESPACE appears in a string argument".into())
            }
            Expr::StringLiteral(_) => Ok(Shape::Scalar),
            Expr::VectorSelector(vs) => self.selector(vs),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs),
            Expr::Paren(p) => self.walk(&mut p.expr),
            Expr::Unary(u) => self.walk(&mut u.expr),
            Expr::Subquery(s) => self.walk(&mut s.expr),
            Expr::Aggregate(a) => {
                if let Some(param) = &mut a.param {
                    if self.walk(param)? == Shape::Keyed {
                        return Err(format!("{}'s parameter is per service", a.op));
                    }
                }
                let inner = self.walk(&mut a.expr)?;
                if inner != Shape::Keyed {
                    return Ok(inner);
                }
                if a.op.to_string() == "count_values" {
                    return Err("count_values may write over the service label".into());
                }
                let keep = self.labels();
                a.modifier = Some(match a.modifier.take() {
                    None => LabelModifier::Include(Labels::new(
                        keep.iter().map(String::as_str).collect(),
                    )),
                    Some(LabelModifier::Include(by)) => LabelModifier::Include(with(by, &keep)),
                    Some(LabelModifier::Exclude(without)) => {
                        LabelModifier::Exclude(except(without, &keep))
                    }
                });
                Ok(Shape::Keyed)
            }
            Expr::Binary(b) => {
                let (lhs, rhs) = (self.walk(&mut b.lhs)?, self.walk(&mut b.rhs)?);
                match (lhs, rhs) {
                    (Shape::Scalar, other) | (other, Shape::Scalar) => Ok(other),
                    (Shape::Unkeyed, Shape::Unkeyed) => Ok(Shape::Unkeyed),
                    (Shape::Keyed, Shape::Keyed) => {
                        let keep = self.labels();
                        if let Some(modifier) = &mut b.modifier {
                            modifier.matching = match modifier.matching.take() {
                                Some(LabelModifier::Include(on)) => {
                                    Some(LabelModifier::Include(with(on, &keep)))
                                }
                                Some(LabelModifier::Exclude(ignoring)) => {
                                    Some(LabelModifier::Exclude(except(ignoring, &keep)))
                                }
                                None => None,
                            };
                        }
                        Ok(Shape::Keyed)
                    }
                    _ => Err(format!(
                        "`{}` joins a per-service series with one that is not per service",
                        b.op
                    )),
                }
            }
            Expr::Call(call) => {
                let name = call.func.name;
                let mut shapes = Vec::new();
                for arg in &mut call.args.args {
                    shapes.push(self.walk(arg)?);
                }
                let keyed = shapes.contains(&Shape::Keyed);
                // These read or write the labels themselves, or turn "no series" into
                // a value: grouped, they would mean something else.
                const LABEL_SENSITIVE: [&str; 7] = [
                    "absent",
                    "absent_over_time",
                    "scalar",
                    "vector",
                    "label_replace",
                    "label_join",
                    "info",
                ];
                if keyed && LABEL_SENSITIVE.contains(&name) {
                    return Err(format!("{name}() over a per-service series"));
                }
                Ok(if call.func.return_type == ValueType::Scalar {
                    Shape::Scalar
                } else if keyed {
                    Shape::Keyed
                } else {
                    Shape::Unkeyed
                })
            }
            Expr::Extension(_) => Err("an extension expression".into()),
        }
    }

    fn selector(&mut self, vs: &parser::VectorSelector) -> Result<Shape, String> {
        if vs.name.as_deref().is_some_and(mentions)
            || vs
                .matchers
                .or_matchers
                .iter()
                .flatten()
                .any(|m| mentions(&m.value))
        {
            return Err("$SERVICE or $NAMESPACE in a metric name or an `or` matcher".into());
        }
        let (mut service, mut namespace) = (false, false);
        for m in &vs.matchers.matchers {
            if !mentions(&m.value) {
                continue;
            }
            let equal = matches!(m.op, MatchOp::Equal);
            if equal && m.value == SERVICE {
                same_label(&mut self.service_label, &m.name, "$SERVICE")?;
                service = true;
            } else if equal && m.value == NAMESPACE {
                same_label(&mut self.namespace_label, &m.name, "$NAMESPACE")?;
                namespace = true;
            } else {
                return Err(format!(
                    "{}{}{:?} uses a placeholder inside a pattern or a negation",
                    m.name, m.op, m.value
                ));
            }
        }
        if namespace && !service {
            return Err("a selector picks the namespace but not the service".into());
        }
        if service && !namespace {
            self.keyed_without_namespace = true;
        }
        Ok(if service {
            Shape::Keyed
        } else {
            Shape::Unkeyed
        })
    }

    /// The labels every per-service aggregation and match must keep.
    fn labels(&self) -> Vec<String> {
        self.service_label
            .iter()
            .chain(self.namespace_label.iter())
            .cloned()
            .collect()
    }
}

fn mentions(text: &str) -> bool {
    text.contains(SERVICE) || text.contains(NAMESPACE)
}

fn same_label(known: &mut Option<String>, label: &str, placeholder: &str) -> Result<(), String> {
    match known {
        Some(k) if k != label => Err(format!(
            "{placeholder} is matched by two labels ({k} and {label})"
        )),
        _ => {
            *known = Some(label.to_string());
            Ok(())
        }
    }
}

fn with(mut labels: Labels, keep: &[String]) -> Labels {
    for label in keep {
        if !labels.labels.contains(label) {
            labels.labels.push(label.clone());
        }
    }
    labels
}

fn except(mut labels: Labels, keep: &[String]) -> Labels {
    labels.labels.retain(|l| !keep.contains(l));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grouped(query: &str) -> String {
        let g = Grouped::analyse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let text = g.query(&["shop"], &["checkout", "web.v2"]);
        parser::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        text
    }

    #[test]
    fn a_recorded_series_becomes_one_selector_for_every_service() {
        assert_eq!(
            grouped(
                r#"service:http_errors:ratio_rate1m{namespace="$NAMESPACE",service="$SERVICE"}"#
            ),
            r#"service:http_errors:ratio_rate1m{namespace=~"shop",service=~"checkout|web\\.v2"}"#
        );
    }

    #[test]
    fn aggregations_and_matches_keep_the_service_apart() {
        let text = grouped(
            r#"sum(rate(http_requests_total{service="$SERVICE",code=~"5.."}[1m])) / on () sum without (service, pod) (rate(http_requests_total{service="$SERVICE"}[1m]))"#,
        );
        assert!(text.contains("sum by (service) (rate"), "{text}");
        assert!(text.contains("on (service)"), "{text}");
        assert!(text.contains("sum without (pod) ("), "{text}");
        let quantile = grouped(
            r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{deployment="$DEPLOYMENT",namespace="$NAMESPACE"}[5m])))"#,
        );
        assert!(
            quantile.contains("sum by (le, deployment, namespace) ("),
            "{quantile}"
        );
    }

    #[test]
    fn a_query_without_a_namespace_is_grouped_per_namespace() {
        let g = Grouped::analyse(r#"errors{service="$SERVICE"} > 0"#).unwrap();
        assert!(!g.namespaced());
        let metric = [("service", "web"), ("namespace", "shop")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let metric: std::collections::BTreeMap<String, String> = metric;
        assert_eq!(
            g.service_of(|l| metric.get(l).map(String::as_str)),
            Some((None, "web"))
        );
    }

    #[test]
    fn what_a_rewrite_would_change_stays_per_service_with_the_reason() {
        for (query, why) in [
            (r#"errors{namespace="$NAMESPACE"}"#, "not the service"),
            (r#"up{job="api"}"#, "not one series per service"),
            (r#"sum(errors{service="$SERVICE"}) or vector(0)"#, "joins"),
            (r#"absent(errors{service="$SERVICE"})"#, "absent()"),
            (r#"errors{service=~"$SERVICE-.*"}"#, "inside a pattern"),
            (r#"errors{service="$SERVICE"} / on () sum(errors)"#, "joins"),
            (
                r#"errors{service="$SERVICE"} / requests{app="$DEPLOYMENT"}"#,
                "two labels",
            ),
            (
                r#"label_replace(errors{service="$SERVICE"}, "service", "x", "", "")"#,
                "label_replace()",
            ),
        ] {
            let err = Grouped::analyse(query).expect_err(query);
            assert!(err.contains(why), "{query}: {err}");
        }
    }
}
