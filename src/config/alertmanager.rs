//! `[alertmanager]`: the alerts a team's Alertmanager holds, read as one more signal.
//! A firing alert whose labels name a watched service appears in its timeline and
//! counts towards the built-in `alerts` trigger (page and suggest, never automatic:
//! what an alert means is the team's rule, not a regression backout has judged).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Its base URL, e.g. `http://alertmanager.monitoring:9093`.
    pub url: String,
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The alert label that names the service, and the one that names its namespace.
    #[serde(default = "service_label")]
    pub service_label: String,
    #[serde(default = "namespace_label")]
    pub namespace_label: String,
}

fn default_poll() -> Duration {
    Duration::from_secs(15)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn service_label() -> String {
    "service".into()
}
fn namespace_label() -> String {
    "namespace".into()
}

impl AlertmanagerConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "[alertmanager] url {:?} must start with http:// or https://",
                crate::redact::url(&self.url)
            ));
        }
        if self.poll_interval.is_zero() || self.timeout.is_zero() {
            return Err(
                "[alertmanager] poll_interval and timeout must be more than 0s, for example \"15s\""
                    .into(),
            );
        }
        Ok(())
    }

    /// An answer older than this is stale: its alerts are not evidence any more.
    pub fn stale_after(&self) -> Duration {
        self.poll_interval * 3 + self.timeout
    }
}
