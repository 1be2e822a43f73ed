//! Telling the team: a Slack incoming webhook (Block Kit), PagerDuty Events API v2
//! (trigger and resolve, deduplicated by incident id), a generic JSON webhook, and a
//! status-page incident and a ticket shaped as Atlassian's APIs (`atlassian.rs`).
//! Each retries with backoff; channels are sent to at once, so a hanging one delays
//! no other; and a failure is reported, never allowed to block or undo a rollback.
//! URLs and keys come from env vars or files and are never printed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::atlassian;
pub use crate::config::notifications::{NotificationsConfig, PagerDutyConfig, SecretRef};

fn read_secret(env: &Option<String>, file: &Option<PathBuf>, what: &str) -> Result<String, String> {
    if let Some(var) = env {
        return std::env::var(var)
            .map_err(|_| format!("[notifications] {what}: environment variable {var} is not set"));
    }
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| {
                format!(
                    "[notifications] {what}: cannot read {}: {e}",
                    path.display()
                )
            });
    }
    Err(format!("[notifications] {what}: give url_env or url_file (routing_key_env or routing_key_file for PagerDuty, api_key_env or api_key_file for Statuspage, token_env or token_file for Jira)"))
}

/// What the team is told.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Notice {
    RolledBack {
        service: String,
        from_revision: u64,
        from_images: Vec<String>,
        to_revision: u64,
        to_images: Vec<String>,
        /// The trigger that fired, with its value and threshold, when one did.
        trigger: Option<String>,
        by: String,
        reason: String,
        incident: Option<String>,
    },
    Page {
        service: String,
        summary: String,
        incident: Option<String>,
    },
    Resolved {
        service: String,
        summary: String,
        incident: Option<String>,
    },
}

impl Notice {
    pub(super) fn headline(&self) -> String {
        match self {
            Notice::RolledBack {
                service,
                from_images,
                to_images,
                ..
            } => format!(
                "Rolled back {service}: {} → {}",
                from_images.join(", "),
                to_images.join(", ")
            ),
            Notice::Page {
                service, summary, ..
            } => format!("{service}: {summary}"),
            Notice::Resolved {
                service, summary, ..
            } => format!("Resolved {service}: {summary}"),
        }
    }

    pub(super) fn incident(&self) -> Option<&str> {
        match self {
            Notice::RolledBack { incident, .. }
            | Notice::Page { incident, .. }
            | Notice::Resolved { incident, .. } => incident.as_deref(),
        }
    }
}

pub fn slack_body(n: &Notice) -> Value {
    let mut blocks =
        vec![json!({"type": "header", "text": {"type": "plain_text", "text": n.headline()}})];
    if let Notice::RolledBack {
        from_revision,
        from_images,
        to_revision,
        to_images,
        trigger,
        by,
        reason,
        ..
    } = n
    {
        let field = |title: &str, text: String| json!({"type": "mrkdwn", "text": format!("*{title}*\n{text}")});
        blocks.push(json!({"type": "section", "fields": [
            field("From", format!("revision {from_revision} `{}`", from_images.join(", "))),
            field("To", format!("revision {to_revision} `{}`", to_images.join(", "))),
            field("Trigger", trigger.clone().unwrap_or_else(|| "none (by hand)".into())),
            field("By", by.clone()),
        ]}));
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Why*: {reason}")}}));
    }
    if let Some(id) = n.incident() {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("incident `{id}`")}]}));
    }
    json!({"text": n.headline(), "blocks": blocks})
}

pub fn pagerduty_body(n: &Notice, routing_key: &str) -> Value {
    let action = if matches!(n, Notice::Resolved { .. }) {
        "resolve"
    } else {
        "trigger"
    };
    let severity = if matches!(n, Notice::Page { .. }) {
        "critical"
    } else {
        "error"
    };
    let mut body = json!({"routing_key": routing_key, "event_action": action, "payload": {
        "summary": n.headline(), "source": "backout", "severity": severity, "custom_details": n}});
    if let Some(id) = n.incident() {
        body["dedup_key"] = json!(id);
    }
    body
}

#[derive(Clone)]
enum Channel {
    Slack(String),
    PagerDuty {
        url: String,
        key: String,
    },
    Webhook(String),
    Statuspage {
        url: String,
        key: String,
        component: Option<String>,
    },
    Jira {
        url: String,
        token: String,
        project: String,
        issue_type: String,
    },
}

/// One request: where, what, and the Authorization header if the channel takes one.
struct Request<'a> {
    url: String,
    body: Value,
    auth: Option<&'a str>,
    /// PATCH updates what an earlier POST opened (a Statuspage incident).
    update: bool,
    /// Keep the answer's `id` under this key, for the updates that follow.
    remember: Option<String>,
}

/// Which incident on a status page a notice belongs to: its incident id, else its
/// service.
fn thread(n: &Notice) -> String {
    match n {
        Notice::RolledBack {
            service, incident, ..
        }
        | Notice::Page {
            service, incident, ..
        }
        | Notice::Resolved {
            service, incident, ..
        } => incident.clone().unwrap_or_else(|| service.clone()),
    }
}

impl Channel {
    fn name(&self) -> &'static str {
        match self {
            Channel::Slack(_) => "slack",
            Channel::PagerDuty { .. } => "pagerduty",
            Channel::Webhook(_) => "webhook",
            Channel::Statuspage { .. } => "statuspage",
            Channel::Jira { .. } => "jira",
        }
    }

    /// The request for `n`, or `None` when this channel has nothing to say about it.
    /// `opened` holds the status-page incidents this process opened, by thread.
    fn request(&self, n: &Notice, opened: &HashMap<String, String>) -> Option<Request<'_>> {
        let plain = |url: &str, body| Request {
            url: url.to_string(),
            body,
            auth: None,
            update: false,
            remember: None,
        };
        Some(match self {
            Channel::Slack(url) => plain(url, slack_body(n)),
            Channel::PagerDuty { url, key } => plain(url, pagerduty_body(n, key)),
            Channel::Webhook(url) => plain(url, serde_json::to_value(n).unwrap_or_default()),
            Channel::Statuspage {
                url,
                key,
                component,
            } => {
                // The first notice opens the incident; the later ones update it.
                let open = opened.get(&thread(n));
                Request {
                    url: open.map_or_else(|| url.clone(), |id| format!("{url}/{id}")),
                    body: atlassian::statuspage_body(n, component.as_deref()),
                    auth: Some(key),
                    update: open.is_some(),
                    remember: open.is_none().then(|| thread(n)),
                }
            }
            Channel::Jira {
                url,
                token,
                project,
                issue_type,
            } => Request {
                url: format!("{}/rest/api/2/issue", url.trim_end_matches('/')),
                body: atlassian::jira_body(n, project, issue_type)?,
                auth: Some(token),
                update: false,
                remember: None,
            },
        })
    }

    /// The Authorization header's value: Statuspage's `OAuth KEY`, Jira's bearer.
    fn authorization(&self, secret: &str) -> String {
        match self {
            Channel::Statuspage { .. } => format!("OAuth {secret}"),
            _ => format!("Bearer {secret}"),
        }
    }
}

#[derive(Clone)]
pub struct Notifiers {
    channels: Vec<Channel>,
    http: reqwest::Client,
    attempts: u32,
    /// Status-page incidents opened by this process, by thread: a resolution updates
    /// the incident the rollback opened instead of opening a second.
    opened: Arc<Mutex<HashMap<String, String>>>,
}

/// How one channel fared with one notice.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub channel: &'static str,
    pub attempts: u32,
    pub error: Option<String>,
}

impl Notifiers {
    /// How many channels each notice goes to.
    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    pub fn from_config(cfg: &NotificationsConfig) -> Result<Notifiers, String> {
        let mut channels = Vec::new();
        if let Some(s) = &cfg.slack {
            channels.push(Channel::Slack(read_secret(
                &s.url_env,
                &s.url_file,
                "slack",
            )?));
        }
        if let Some(p) = &cfg.pagerduty {
            channels.push(Channel::PagerDuty {
                url: p.url.clone(),
                key: read_secret(&p.routing_key_env, &p.routing_key_file, "pagerduty")?,
            });
        }
        if let Some(w) = &cfg.webhook {
            channels.push(Channel::Webhook(read_secret(
                &w.url_env,
                &w.url_file,
                "webhook",
            )?));
        }
        if let Some(sp) = &cfg.statuspage {
            channels.push(Channel::Statuspage {
                url: sp.url.clone(),
                key: read_secret(&sp.api_key_env, &sp.api_key_file, "statuspage")?,
                component: sp.component_id.clone(),
            });
        }
        if let Some(j) = &cfg.jira {
            channels.push(Channel::Jira {
                url: j.url.clone(),
                token: read_secret(&j.token_env, &j.token_file, "jira")?,
                project: j.project.clone(),
                issue_type: j.issue_type.clone(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("[notifications]: {e}"))?;
        Ok(Notifiers {
            channels,
            http,
            attempts: cfg.attempts.max(1),
            opened: Arc::default(),
        })
    }

    /// How many channels announce a resolution (a ticket tracker files none).
    pub fn resolving_channels(&self) -> usize {
        self.channels
            .iter()
            .filter(|c| !matches!(c, Channel::Jira { .. }))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Sends to every channel at once, each with retries and backoff.
    pub async fn send(&self, notice: &Notice) -> Vec<Delivery> {
        let opened = self.opened.lock().expect("opened incidents").clone();
        let sends = self
            .channels
            .iter()
            .filter_map(|c| Some((c, c.request(notice, &opened)?)))
            .map(|(c, request)| self.deliver(c, request));
        futures::future::join_all(sends).await
    }

    async fn deliver(&self, channel: &Channel, request: Request<'_>) -> Delivery {
        let mut backoff = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let mut post = match request.update {
                true => self.http.patch(&request.url),
                false => self.http.post(&request.url),
            }
            .json(&request.body);
            if let Some(secret) = request.auth {
                post = post.header(
                    reqwest::header::AUTHORIZATION,
                    channel.authorization(secret),
                );
            }
            match post.send().await {
                Ok(r) if r.status().is_success() => {
                    if let Some(thread) = &request.remember {
                        let answer: Value = r.json().await.unwrap_or_default();
                        if let Some(id) = answer["id"].as_str() {
                            let mut opened = self.opened.lock().expect("opened incidents");
                            opened.insert(thread.clone(), id.to_string());
                        }
                    }
                    return Delivery {
                        channel: channel.name(),
                        attempts: attempt,
                        error: None,
                    };
                }
                // The error names the channel and status, never the URL or key.
                Ok(r) => last = format!("{} answered {}", channel.name(), r.status()),
                Err(e) if e.is_timeout() => {
                    last = format!("{} did not answer in time", channel.name())
                }
                Err(_) => last = format!("{} could not be reached", channel.name()),
            }
            if attempt < self.attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        Delivery {
            channel: channel.name(),
            attempts: self.attempts,
            error: Some(format!("{last} after {} attempts", self.attempts)),
        }
    }
}

/// A rollback notice as the tests of every notifier's body use it.
#[cfg(test)]
pub(super) fn sample() -> Notice {
    tests::rolled_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn rolled_back() -> Notice {
        Notice::RolledBack {
            service: "shop/checkout".into(),
            from_revision: 2,
            from_images: vec!["checkout:1.4.1".into()],
            to_revision: 1,
            to_images: vec!["checkout:1.4.0".into()],
            trigger: Some("error-rate 0.25 > 0.05".into()),
            by: "oncall@bastion".into(),
            reason: "error rate".into(),
            incident: Some("inc-1".into()),
        }
    }

    #[test]
    fn slack_says_what_from_which_image_to_which_why_and_who() {
        let body = slack_body(&rolled_back()).to_string();
        for want in [
            "Rolled back shop/checkout: checkout:1.4.1 → checkout:1.4.0",
            "revision 2",
            "error-rate 0.25 > 0.05",
            "oncall@bastion",
            "inc-1",
        ] {
            assert!(body.contains(want), "{want} in {body}");
        }
    }

    #[test]
    fn pagerduty_dedups_by_incident_and_resolves() {
        let b = pagerduty_body(&rolled_back(), "key");
        assert_eq!(
            (b["dedup_key"].as_str(), b["event_action"].as_str()),
            (Some("inc-1"), Some("trigger"))
        );
        let r = pagerduty_body(
            &Notice::Resolved {
                service: "s".into(),
                summary: "ok".into(),
                incident: Some("inc-1".into()),
            },
            "key",
        );
        assert_eq!(r["event_action"], "resolve");
    }

    #[test]
    fn a_status_page_incident_is_opened_once_and_then_updated() {
        let page = Channel::Statuspage {
            url: "https://sp/v1/pages/p/incidents".into(),
            key: "k".into(),
            component: None,
        };
        let mut opened = HashMap::new();
        let first = page.request(&rolled_back(), &opened).unwrap();
        assert!(!first.update && first.url.ends_with("/incidents"));
        assert_eq!(first.remember.as_deref(), Some("inc-1"), "kept by incident");
        opened.insert("inc-1".to_string(), "abc".to_string());
        let resolved = Notice::Resolved {
            service: "shop/checkout".into(),
            summary: "verified".into(),
            incident: Some("inc-1".into()),
        };
        let next = page.request(&resolved, &opened).unwrap();
        assert!(next.update && next.url.ends_with("/incidents/abc"));
        assert_eq!(next.body["incident"]["status"], "resolved");
    }

    #[test]
    fn a_missing_secret_names_the_variable_not_a_value() {
        let cfg = NotificationsConfig {
            slack: Some(SecretRef {
                url_env: Some("BACKOUT_TEST_UNSET_VAR".into()),
                url_file: None,
            }),
            ..Default::default()
        };
        let err = Notifiers::from_config(&cfg).err().unwrap();
        assert!(err.contains("BACKOUT_TEST_UNSET_VAR is not set"), "{err}");
    }
}
