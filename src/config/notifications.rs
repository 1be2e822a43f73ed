//! `[notifications]`: where to tell the team. Every URL and key is named by the env
//! var or file that holds it; backout.toml never contains one.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    pub slack: Option<SecretRef>,
    pub pagerduty: Option<PagerDutyConfig>,
    pub webhook: Option<SecretRef>,
    /// Attempts per notice and channel, the first included.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// Where a URL or key is read from: an env var or a file, never the config itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    pub routing_key_env: Option<String>,
    pub routing_key_file: Option<PathBuf>,
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
}

fn default_attempts() -> u32 {
    4
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}
