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
    /// An incident on a status page, shaped as Atlassian Statuspage's API takes it.
    pub statuspage: Option<StatuspageConfig>,
    /// A ticket per rollback or page, shaped as Jira's create-issue API takes it.
    pub jira: Option<JiraConfig>,
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

/// Statuspage: `POST {url}` (`https://api.statuspage.io/v1/pages/PAGE_ID/incidents`)
/// with `Authorization: OAuth KEY`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatuspageConfig {
    pub url: String,
    pub api_key_env: Option<String>,
    pub api_key_file: Option<PathBuf>,
    /// The component the incident marks degraded while it lasts.
    pub component_id: Option<String>,
}

/// Jira: `POST {url}/rest/api/2/issue` with a bearer token (a personal access token,
/// or Jira Cloud's API token through a proxy that takes one).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    pub url: String,
    pub project: String,
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

fn default_issue_type() -> String {
    "Incident".into()
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
