//! Rollback triggers: a query, a threshold and a comparison, a for-duration and a
//! severity. The built-ins mirror seed 001; backout.toml overrides them by name.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Comparison {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparison {
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::AtLeast => value >= threshold,
            Comparison::Below => value < threshold,
            Comparison::AtMost => value <= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Above => ">",
            Comparison::AtLeast => ">=",
            Comparison::Below => "<",
            Comparison::AtMost => "<=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    LogOnly,
    PageAndSuggest,
    AutoRollback,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::LogOnly => "log_only",
            Severity::PageAndSuggest => "page_and_suggest",
            Severity::AutoRollback => "auto_rollback",
        }
    }
}

/// What kind of signal a trigger watches; gate 4 and the signal matrix read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    ErrorRate,
    CrashLoop,
    Latency,
    Saturation,
    Memory,
    /// Pods that do not become ready, or a rollout past its progress deadline.
    Availability,
    Other,
}

/// How a trigger's values read on screen: a ratio as a percentage, seconds as ms
/// below one second, a count as a whole number, a multiple with ×.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Ratio,
    Seconds,
    Count,
    Multiple,
    #[default]
    Plain,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Ratio => {
                let pct = v * 100.0;
                if pct != 0.0 && pct.abs() < 1.0 {
                    format!("{pct:.2}%")
                } else {
                    format!("{pct:.1}%")
                }
            }
            Unit::Seconds if v.abs() < 1.0 => format!("{:.0}ms", v * 1000.0),
            Unit::Seconds => format!("{v:.2}s"),
            Unit::Count => format!("{v:.0}"),
            Unit::Multiple => format!("{v:.1}×"),
            Unit::Plain => format!("{v:.3}"),
        }
    }
}

/// A signal read from the Kubernetes API itself, about the pods of the revision that
/// runs now: it needs no Prometheus, and is clean whenever the watch is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterSignal {
    /// The most restarts of one pod started in the last ten minutes.
    Restarts,
    /// How many pods wait in CrashLoopBackOff.
    CrashLoopBackOff,
    /// The longest any pod has been unready, in seconds.
    Unready,
    /// 1 when the rollout is past its progress deadline, else 0.
    ProgressDeadline,
    /// How many alerts naming the service fire in Alertmanager (`[alertmanager]`).
    Alerts,
}

impl ClusterSignal {
    pub fn label(self) -> &'static str {
        match self {
            ClusterSignal::Restarts => "restarts per new pod",
            ClusterSignal::CrashLoopBackOff => "pods in CrashLoopBackOff",
            ClusterSignal::Unready => "seconds a pod has been unready",
            ClusterSignal::ProgressDeadline => "progress deadline exceeded",
            ClusterSignal::Alerts => "alerts firing in Alertmanager",
        }
    }
}

impl Signal {
    pub fn label(self) -> &'static str {
        match self {
            Signal::ErrorRate => "error rate",
            Signal::CrashLoop => "crash loop",
            Signal::Latency => "latency",
            Signal::Saturation => "saturation",
            Signal::Memory => "memory",
            Signal::Availability => "availability",
            Signal::Other => "other",
        }
    }

    /// A clean failure signal, one that may roll back without a person.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Signal::ErrorRate | Signal::CrashLoop | Signal::Availability
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    pub name: String,
    /// PromQL with `$SERVICE`, `$NAMESPACE` and `$DEPLOYMENT` placeholders.
    pub query: String,
    pub comparison: Comparison,
    pub threshold: f64,
    #[serde(with = "humantime_serde")]
    pub for_: Duration,
    #[serde(with = "humantime_serde")]
    pub keep_firing_for: Duration,
    pub severity: Severity,
    pub signal: Signal,
    /// How its values read on screen.
    #[serde(default)]
    pub unit: Unit,
    /// Requests per second for the same service; under the policy's minimum the
    /// ratio is no_data rather than a breach.
    pub volume_query: Option<String>,
    /// Read from the Kubernetes API instead of Prometheus; `query` is then unused.
    pub cluster: Option<ClusterSignal>,
    /// Why this trigger is asked once per service rather than once for all
    /// ([`super::grouping::settle`], at load).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_service: Option<String>,
}

impl Trigger {
    pub fn query_for(&self, namespace: &str, service: &str, deployment: &str) -> String {
        expand(&self.query, namespace, service, deployment)
    }
}

pub fn expand(query: &str, namespace: &str, service: &str, deployment: &str) -> String {
    query
        .replace("$NAMESPACE", namespace)
        .replace("$SERVICE", service)
        .replace("$DEPLOYMENT", deployment)
}

const SELECTOR: &str = r#"{namespace="$NAMESPACE",service="$SERVICE"}"#;

pub fn built_in() -> Vec<Trigger> {
    let volume = Some(format!("service:http_requests:rate1m{SELECTOR}"));
    let t = |name: &str,
             metric: &str,
             threshold: f64,
             for_secs: u64,
             severity,
             signal,
             unit,
             volume: &Option<String>| Trigger {
        name: name.into(),
        query: format!("{metric}{SELECTOR}"),
        comparison: Comparison::Above,
        threshold,
        for_: Duration::from_secs(for_secs),
        keep_firing_for: Duration::ZERO,
        severity,
        signal,
        unit,
        volume_query: volume.clone(),
        cluster: None,
        per_service: None,
    };
    let cluster =
        |name: &str, signal: ClusterSignal, comparison, threshold, for_secs, kind, unit| Trigger {
            name: name.into(),
            query: String::new(),
            comparison,
            threshold,
            for_: Duration::from_secs(for_secs),
            keep_firing_for: Duration::ZERO,
            severity: Severity::AutoRollback,
            signal: kind,
            unit,
            volume_query: None,
            cluster: Some(signal),
            per_service: None,
        };
    let from_prometheus = vec![
        t(
            "error-rate",
            "service:http_errors:ratio_rate1m",
            0.05,
            120,
            Severity::AutoRollback,
            Signal::ErrorRate,
            Unit::Ratio,
            &volume,
        ),
        t(
            "crash-loop",
            "service:kube_pod_container_restarts:increase5m",
            3.0,
            60,
            Severity::AutoRollback,
            Signal::CrashLoop,
            Unit::Count,
            &None,
        ),
        t(
            "p99-latency",
            "service:http_request_duration_seconds:p99_1m",
            5.0,
            180,
            Severity::PageAndSuggest,
            Signal::Latency,
            Unit::Seconds,
            &None,
        ),
        t(
            "slo-burn",
            "service:slo_error_budget:burn_rate1m",
            14.4,
            120,
            Severity::AutoRollback,
            Signal::ErrorRate,
            Unit::Multiple,
            &volume,
        ),
    ];
    // Seed 000's cluster signals: they need no metrics, so a crash loop is caught
    // when Prometheus is absent or blind.
    let from_cluster = [
        cluster(
            "pod-restarts",
            ClusterSignal::Restarts,
            Comparison::AtLeast,
            3.0,
            30,
            Signal::CrashLoop,
            Unit::Count,
        ),
        cluster(
            "crash-loop-backoff",
            ClusterSignal::CrashLoopBackOff,
            Comparison::AtLeast,
            1.0,
            60,
            Signal::CrashLoop,
            Unit::Count,
        ),
        cluster(
            "pods-unready",
            ClusterSignal::Unready,
            Comparison::Above,
            300.0,
            0,
            Signal::Availability,
            Unit::Seconds,
        ),
        cluster(
            "progress-deadline",
            ClusterSignal::ProgressDeadline,
            Comparison::AtLeast,
            1.0,
            0,
            Signal::Availability,
            Unit::Count,
        ),
    ];
    from_prometheus
        .into_iter()
        .chain(from_cluster)
        .map(super::grouping::settle)
        .collect()
}

/// A `[[trigger]]` table: changes a built-in by name, or defines a new trigger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerOverride {
    pub name: String,
    pub query: Option<String>,
    pub comparison: Option<Comparison>,
    pub threshold: Option<f64>,
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub for_: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub keep_firing_for: Option<Duration>,
    pub severity: Option<Severity>,
    pub signal: Option<Signal>,
    /// ratio, seconds, count, multiple or plain: how values read on screen.
    pub unit: Option<Unit>,
    pub volume_query: Option<String>,
    /// A signal from the Kubernetes API (restarts, crash_loop_back_off, unready,
    /// progress_deadline) instead of a PromQL `query`.
    pub cluster: Option<ClusterSignal>,
    /// `false` removes a built-in trigger.
    pub enabled: Option<bool>,
}

/// The `alerts` trigger, built in when `[alertmanager]` is configured: page and
/// suggest on any alert naming the service, never roll back on one alone.
fn alerts() -> Trigger {
    Trigger {
        name: "alerts".into(),
        query: String::new(),
        comparison: Comparison::AtLeast,
        threshold: 1.0,
        for_: Duration::ZERO,
        keep_firing_for: Duration::ZERO,
        severity: Severity::PageAndSuggest,
        signal: Signal::Other,
        unit: Unit::Count,
        volume_query: None,
        cluster: Some(ClusterSignal::Alerts),
        per_service: None,
    }
}

pub fn merge(
    overrides: &[toml::Spanned<TriggerOverride>],
    text: &str,
    alertmanager: bool,
) -> Result<Vec<Trigger>, String> {
    let mut triggers = built_in();
    if alertmanager {
        triggers.push(alerts());
    }
    for spanned in overrides {
        let o = spanned.get_ref();
        let line = super::line_of(text, spanned.span().start);
        let at = |msg: String| format!("line {line}: [[trigger]] {:?}: {msg}", o.name);
        if o.enabled == Some(false) {
            triggers.retain(|t| t.name != o.name);
            continue;
        }
        let base = match triggers.iter().position(|t| t.name == o.name) {
            Some(i) => triggers.remove(i),
            None => Trigger {
                name: o.name.clone(),
                query: match o.cluster {
                    Some(_) => o.query.clone().unwrap_or_default(),
                    None => o.query.clone().ok_or_else(|| at("a new trigger needs `query` (PromQL) or `cluster`".into()))?,
                },
                comparison: o.comparison.unwrap_or(Comparison::Above),
                threshold: o.threshold.ok_or_else(|| at("a new trigger needs `threshold`".into()))?,
                for_: Duration::ZERO,
                keep_firing_for: Duration::ZERO,
                severity: o.severity.ok_or_else(|| {
                    at("a new trigger needs `severity`: auto_rollback, page_and_suggest or log_only".into())
                })?,
                signal: o.signal.unwrap_or(Signal::Other),
                unit: Unit::Plain,
                volume_query: None,
                cluster: o.cluster,
                per_service: None,
            },
        };
        let merged = Trigger {
            name: base.name,
            query: o.query.clone().unwrap_or(base.query),
            comparison: o.comparison.unwrap_or(base.comparison),
            threshold: o.threshold.unwrap_or(base.threshold),
            for_: o.for_.unwrap_or(base.for_),
            keep_firing_for: o.keep_firing_for.unwrap_or(base.keep_firing_for),
            severity: o.severity.unwrap_or(base.severity),
            signal: o.signal.unwrap_or(base.signal),
            unit: o.unit.unwrap_or(base.unit),
            volume_query: o.volume_query.clone().or(base.volume_query),
            cluster: o.cluster.or(base.cluster),
            per_service: None,
        };
        if !merged.threshold.is_finite() {
            return Err(at("threshold must be a finite number".into()));
        }
        for (key, d) in [
            ("for", merged.for_),
            ("keep_firing_for", merged.keep_firing_for),
        ] {
            if d > super::LONGEST {
                return Err(at(format!(
                    "{key} is longer than the longest backout accepts ({})",
                    humantime::format_duration(super::LONGEST)
                )));
            }
        }
        if merged.cluster.is_some() {
            if o.query.is_some() {
                return Err(at("give `query` or `cluster`, not both: a cluster signal is read from the Kubernetes API".into()));
            }
        } else if let Err(e) =
            promql_parser::parser::parse(&expand(&merged.query, "ns", "svc", "deploy"))
        {
            return Err(at(format!("query is not valid PromQL: {e}")));
        }
        triggers.push(super::grouping::settle(merged));
    }
    Ok(triggers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn an_override_changes_only_what_it_names() {
        let c = Config::parse(
            Path::new("b.toml"),
            "[[trigger]]\nname = \"error-rate\"\nfor = \"10s\"\n",
        )
        .unwrap();
        let t = c.triggers.iter().find(|t| t.name == "error-rate").unwrap();
        assert_eq!(t.for_, Duration::from_secs(10));
        assert_eq!(t.threshold, 0.05);
        assert_eq!(t.severity, Severity::AutoRollback);
    }

    #[test]
    fn a_new_trigger_needs_query_threshold_and_severity() {
        let err = Config::parse(
            Path::new("b.toml"),
            "\n[[trigger]]\nname = \"queue\"\nthreshold = 5.0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 2") && err.contains("needs `query`"),
            "{err}"
        );
        let ok = "[[trigger]]\nname = \"queue\"\nquery = 'queue_depth{service=\"$SERVICE\"}'\nthreshold = 5.0\nseverity = \"log_only\"\n";
        let c = Config::parse(Path::new("b.toml"), ok).unwrap();
        assert_eq!(
            c.triggers
                .last()
                .unwrap()
                .query_for("shop", "checkout", "checkout"),
            "queue_depth{service=\"checkout\"}"
        );
    }

    #[test]
    fn bad_promql_is_refused_at_load() {
        let text = "[[trigger]]\nname = \"error-rate\"\nquery = 'sum(rate(x[1m]'\n";
        let err = Config::parse(Path::new("b.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid PromQL"), "{err}");
    }

    #[test]
    fn a_for_duration_too_long_for_the_clock_is_refused() {
        let text = "[[trigger]]\nname = \"error-rate\"\nfor = \"999999999999s\"\n";
        let err = Config::parse(Path::new("b.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("error-rate") && err.contains("longest"),
            "{err}"
        );
    }

    #[test]
    fn a_built_in_can_be_switched_off() {
        let c = Config::parse(
            Path::new("b.toml"),
            "[[trigger]]\nname = \"p99-latency\"\nenabled = false\n",
        )
        .unwrap();
        assert!(c.triggers.iter().all(|t| t.name != "p99-latency"));
    }

    #[test]
    fn values_read_in_their_units() {
        assert_eq!(Unit::Ratio.format(0.25), "25.0%");
        assert_eq!(Unit::Ratio.format(0.002), "0.20%");
        assert_eq!(Unit::Seconds.format(0.45), "450ms");
        assert_eq!(Unit::Seconds.format(7.0), "7.00s");
        assert_eq!(Unit::Count.format(6.0), "6");
        assert_eq!(Unit::Multiple.format(14.4), "14.4×");
        let error_rate = built_in()
            .into_iter()
            .find(|t| t.name == "error-rate")
            .unwrap();
        assert_eq!(error_rate.unit, Unit::Ratio);
    }
}
