//! backout.toml: where Prometheus is, what to watch, the triggers and the decision
//! policy. Found through `--config`, `$BACKOUT_CONFIG`, then the XDG config dir.
//! Every mistake is reported with the file, the line and what to write instead.

pub mod alertmanager;
pub mod compose;
pub mod flags;
pub mod gitops;
pub mod grouping;
pub mod import;
pub mod lambda;
pub mod model;
pub mod notifications;
mod policy;
pub mod registry;
pub mod terraform;
pub mod triggers;

pub use policy::{Policy, LONGEST, SHORTEST_LEASE};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use triggers::{ClusterSignal, Comparison, Severity, Signal, Trigger};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub prometheus: Option<PrometheusConfig>,
    pub alertmanager: Option<alertmanager::AlertmanagerConfig>,
    #[serde(default)]
    pub watch: Vec<WatchConfig>,
    #[serde(default)]
    pub dependencies: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default, rename = "trigger")]
    pub triggers: Vec<toml::Spanned<triggers::TriggerOverride>>,
    #[serde(default)]
    pub production_namespaces: Vec<String>,
    #[serde(default)]
    pub notifications: notifications::NotificationsConfig,
    #[serde(default, rename = "health_check")]
    pub health_checks: Vec<HealthCheck>,
    #[serde(default)]
    pub blue_green: Vec<BlueGreen>,
    #[serde(default)]
    pub gitops: Vec<gitops::GitOpsConfig>,
    #[serde(default)]
    pub registry: Vec<registry::RegistryConfig>,
    #[serde(default)]
    pub terraform: Vec<terraform::TerraformConfig>,
    #[serde(default)]
    pub lambda: Vec<lambda::LambdaConfig>,
    #[serde(default, rename = "flag")]
    pub flags: Vec<flags::FlagConfig>,
    #[serde(default, rename = "model")]
    pub models: Vec<model::ModelConfig>,
    #[serde(default)]
    pub compose: Vec<compose::ComposeConfig>,
}

/// A Service rolled back by switching its selector, not by undoing a Deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlueGreen {
    pub service: String,
    /// The selector label that picks the colour or version, e.g. `color`.
    pub label: String,
    pub namespace: Option<String>,
}

/// A URL that must answer `status` once a rollback of `deployment` is done.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub deployment: String,
    pub url: String,
    #[serde(default = "default_status")]
    pub status: u16,
}

fn default_status() -> u16 {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    pub url: String,
    /// A PEM file of CAs to trust, relative to the config file.
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How much history each trigger's range query asks for.
    #[serde(default = "default_lookback", with = "humantime_serde")]
    pub lookback: Duration,
    /// How many queries may be in flight at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrent: usize,
    #[serde(default)]
    pub auth: Option<PrometheusAuth>,
}

/// The most points one series keeps over the lookback window.
pub const POINTS_PER_SERIES: u32 = 120;

impl PrometheusConfig {
    /// The resolution of every series, asked and kept: the poll interval, or the
    /// smallest multiple of it that keeps a lookback window within
    /// `POINTS_PER_SERIES` points. A 2 s poll over 5 minutes asked 150 points per
    /// series: at 2,000 services, answers of megabytes every poll and most of the
    /// state's memory, for graphs under a hundred columns wide.
    pub fn step(&self) -> Duration {
        let poll = self.poll_interval.max(Duration::from_millis(1));
        let points = self.lookback.as_secs_f64() / poll.as_secs_f64();
        let multiple = (points / f64::from(POINTS_PER_SERIES)).ceil().max(1.0);
        poll * multiple as u32
    }
}

/// Credentials are named by where to read them, never written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusAuth {
    pub bearer_token_env: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_user: Option<String>,
    pub basic_password_env: Option<String>,
    pub basic_password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    pub namespace: String,
    /// Deployment names; empty means every Deployment (matching `selector`).
    #[serde(default)]
    pub deployments: Vec<String>,
    pub selector: Option<String>,
}

fn default_poll() -> Duration {
    Duration::from_secs(15)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_lookback() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_concurrency() -> usize {
    8
}

/// A path in backout.toml is relative to the file.
fn beside(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

/// The configuration in force: the file's values, built-in triggers merged with the
/// file's overrides, and paths resolved against the file's directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Option<PathBuf>,
    pub prometheus: Option<PrometheusConfig>,
    pub alertmanager: Option<alertmanager::AlertmanagerConfig>,
    pub watch: Vec<WatchConfig>,
    pub dependencies: BTreeMap<String, Vec<String>>,
    pub policy: Policy,
    pub triggers: Vec<Trigger>,
    pub production_namespaces: Vec<String>,
    pub notifications: notifications::NotificationsConfig,
    pub health_checks: Vec<HealthCheck>,
    pub blue_green: Vec<BlueGreen>,
    pub gitops: Vec<gitops::GitOpsConfig>,
    pub registry: Vec<registry::RegistryConfig>,
    pub terraform: Vec<terraform::TerraformConfig>,
    pub lambda: Vec<lambda::LambdaConfig>,
    pub flags: Vec<flags::FlagConfig>,
    pub models: Vec<model::ModelConfig>,
    pub compose: Vec<compose::ComposeConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_raw(None, "", RawConfig::default()).expect("the defaults are valid")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {file}: {message}")]
    Invalid { file: String, message: String },
    #[error("config {file}: cannot read it: {source}; check the path given with --config or $BACKOUT_CONFIG")]
    Read {
        file: String,
        source: std::io::Error,
    },
}

pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Config {
    /// The triggers asked of Prometheus; a cluster signal is read from the Kubernetes
    /// API instead.
    pub fn queried(&self) -> impl Iterator<Item = &Trigger> {
        self.triggers.iter().filter(|t| t.cluster.is_none())
    }

    /// The config file to use: `--config`, then `$BACKOUT_CONFIG`, then the XDG config dir.
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_path_buf());
        }
        if let Some(p) = std::env::var_os("BACKOUT_CONFIG").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        let candidate = base.join("backout").join("backout.toml");
        candidate.exists().then_some(candidate)
    }

    /// Loads the located file, or the defaults when there is none.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        match Config::locate(explicit) {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    file: path.display().to_string(),
                    source,
                })?;
                Config::parse(&path, &text)
            }
            None => Ok(Config::default()),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            file: file.clone(),
            message: match e.span() {
                Some(span) => format!(
                    "line {}: {}",
                    line_of(text, span.start),
                    e.message().trim_end()
                ),
                None => e.message().trim_end().to_string(),
            },
        })?;
        Config::from_raw(Some(path), text, raw)
            .map_err(|message| ConfigError::Invalid { file, message })
    }

    fn from_raw(path: Option<&Path>, text: &str, raw: RawConfig) -> Result<Config, String> {
        let base = path.and_then(Path::parent).unwrap_or(Path::new("."));
        let mut prometheus = raw.prometheus;
        if let Some(p) = prometheus.as_mut() {
            p.ca_file.iter_mut().for_each(|ca| beside(base, ca));
            if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
                return Err(format!(
                    "[prometheus] url {:?} must start with http:// or https://",
                    crate::redact::url(&p.url)
                ));
            }
            if p.poll_interval.is_zero() {
                return Err(
                    "[prometheus] poll_interval must be more than 0s, for example \"15s\"".into(),
                );
            }
            if p.timeout.is_zero() {
                return Err(
                    "[prometheus] timeout must be more than 0s, for example \"10s\"".into(),
                );
            }
        }
        policy::durations_in_range(&raw.policy, prometheus.as_ref())?;
        // NaN compares false with every count, so its triggers would wait for data for ever.
        let min = raw.policy.min_requests;
        if !(min.is_finite() && min >= 0.0) {
            return Err(format!(
                "[policy] min_requests = {min} must be a number of requests, 0 or more, for example 20"
            ));
        }
        for w in &raw.watch {
            if let Some(sel) = &w.selector {
                crate::k8s::selectors::LabelSelector::parse(sel).map_err(|e| {
                    format!(
                        "[[watch]] namespace {:?}: selector {sel:?}: {e}",
                        w.namespace
                    )
                })?;
            }
        }
        if let Some(am) = &raw.alertmanager {
            am.check()?;
        }
        for g in &raw.gitops {
            g.check()?;
        }
        for r in &raw.registry {
            r.check()?;
        }
        for l in &raw.lambda {
            l.check()?;
        }
        for f in &raw.flags {
            f.check()?;
        }
        for m in &raw.models {
            m.check()?;
        }
        for c in &raw.compose {
            c.check()?;
        }
        let triggers = triggers::merge(&raw.triggers, text, raw.alertmanager.is_some())?;
        Ok(Config {
            source: path.map(Path::to_path_buf),
            prometheus,
            alertmanager: raw.alertmanager,
            watch: raw.watch,
            dependencies: raw.dependencies,
            policy: raw.policy,
            triggers,
            production_namespaces: raw.production_namespaces,
            notifications: raw.notifications,
            health_checks: raw.health_checks,
            blue_green: raw.blue_green,
            gitops: raw.gitops,
            registry: raw.registry,
            flags: raw
                .flags
                .into_iter()
                .map(|mut f| {
                    f.ca_file.iter_mut().for_each(|ca| beside(base, ca));
                    f
                })
                .collect(),
            models: raw
                .models
                .into_iter()
                .map(|mut m| {
                    m.ca_file.iter_mut().for_each(|ca| beside(base, ca));
                    m
                })
                .collect(),
            compose: raw
                .compose
                .into_iter()
                .map(|mut c| {
                    c.ca_file.iter_mut().for_each(|ca| beside(base, ca));
                    c
                })
                .collect(),
            lambda: raw
                .lambda
                .into_iter()
                .map(|mut l| {
                    l.ca_file.iter_mut().for_each(|ca| beside(base, ca));
                    l
                })
                .collect(),
            terraform: raw
                .terraform
                .into_iter()
                .map(|mut t| {
                    beside(base, &mut t.state);
                    t
                })
                .collect(),
        })
    }

    /// Services that `service` depends on.
    pub fn depends_on(&self, service: &str) -> &[String] {
        self.dependencies.get(service).map_or(&[], Vec::as_slice)
    }

    /// Services that depend on `service`.
    pub fn dependents(&self, service: &str) -> Vec<&str> {
        self.dependencies
            .iter()
            .filter(|(_, deps)| deps.iter().any(|d| d == service))
            .map(|(s, _)| s.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("backout.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_series_step_is_a_multiple_of_the_poll_that_keeps_the_window_small() {
        let prometheus = |poll: &str, lookback: &str| {
            let text = format!(
                "[prometheus]\nurl = \"http://p\"\npoll_interval = \"{poll}\"\nlookback = \"{lookback}\"\n"
            );
            parse(&text).unwrap().prometheus.unwrap()
        };
        let step = |poll, lookback| prometheus(poll, lookback).step();
        assert_eq!(
            step("15s", "30m"),
            Duration::from_secs(15),
            "the defaults: 120 points"
        );
        assert_eq!(
            step("2s", "5m"),
            Duration::from_secs(4),
            "150 points would be too many"
        );
        assert_eq!(
            step("1m", "5m"),
            Duration::from_secs(60),
            "never finer than the poll"
        );
        assert_eq!(step("500ms", "10m"), Duration::from_secs(5));
        for (poll, lookback) in [("2s", "5m"), ("7s", "3h"), ("15s", "30m"), ("1s", "1d")] {
            let p = prometheus(poll, lookback);
            let points = p.lookback.as_secs_f64() / p.step().as_secs_f64();
            assert!(
                points <= f64::from(POINTS_PER_SERIES),
                "{poll} over {lookback}: {points}"
            );
        }
    }

    #[test]
    fn defaults_carry_the_built_in_triggers_and_the_article_windows() {
        let c = parse("").unwrap();
        let names: Vec<_> = c.triggers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "error-rate",
                "crash-loop",
                "p99-latency",
                "slo-burn",
                "pod-restarts",
                "crash-loop-backoff",
                "pods-unready",
                "progress-deadline"
            ]
        );
        assert_eq!(c.policy.onset_window, Duration::from_secs(900));
        assert_eq!(c.policy.migration_window, Duration::from_secs(1800));
        assert!(!c.policy.auto_rollback);
    }

    #[test]
    fn an_unknown_severity_names_the_line_and_the_choices() {
        let err = parse("\n[[trigger]]\nname = \"error-rate\"\nseverity = \"auto\"\n").unwrap_err();
        assert!(err.starts_with("config backout.toml: line 4:"), "{err}");
        assert!(
            err.contains("auto_rollback")
                && err.contains("page_and_suggest")
                && err.contains("log_only"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_names_the_line() {
        let err = parse("[policy]\nonset_window = \"15m\"\ncoldown = \"5m\"\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("coldown"), "{err}");
    }

    #[test]
    fn a_duration_too_long_for_the_clock_is_refused_naming_its_key() {
        for key in [
            "[policy]\nverification_window",
            "[policy]\nblackout",
            "[prometheus]\nurl = \"http://p\"\nlookback",
        ] {
            let err = parse(&format!("{key} = \"999999999999s\"\n")).unwrap_err();
            let name = key.rsplit('\n').next().unwrap();
            assert!(
                err.contains(name) && err.contains("longest"),
                "{key}: {err}"
            );
        }
        assert!(parse("[policy]\nlease_duration = \"1s\"\n")
            .unwrap_err()
            .contains("lease_duration"));
        assert!(parse("[policy]\nverification_window = \"30days\"\n").is_ok());
    }

    #[test]
    fn a_min_requests_that_no_count_can_meet_is_refused() {
        for bad in ["nan", "-5.0", "inf"] {
            let err = parse(&format!("[policy]\nmin_requests = {bad}\n")).unwrap_err();
            assert!(err.contains("min_requests"), "{bad}: {err}");
        }
        assert!(parse("[policy]\nmin_requests = 0.0\n").is_ok());
    }

    #[test]
    fn a_bad_duration_names_the_line() {
        let err = parse("[policy]\nblackout = \"ten minutes\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_bad_selector_and_a_bad_url_are_explained() {
        let err =
            parse("[[watch]]\nnamespace = \"shop\"\nselector = \"app in web\"\n").unwrap_err();
        assert!(
            err.contains("selector") && err.contains("unable to parse requirement"),
            "{err}"
        );
        let err = parse("[prometheus]\nurl = \"localhost:9090\"\n").unwrap_err();
        assert!(err.contains("must start with http://"), "{err}");
    }

    #[test]
    fn relative_ca_files_resolve_against_the_config_dir() {
        let c = Config::parse(
            Path::new("/etc/backout/backout.toml"),
            "[prometheus]\nurl = \"https://p\"\nca_file = \"ca.crt\"\n",
        )
        .unwrap();
        assert_eq!(
            c.prometheus.unwrap().ca_file.unwrap(),
            Path::new("/etc/backout/ca.crt")
        );
    }
}
