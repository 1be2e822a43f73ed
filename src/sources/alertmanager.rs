//! Alertmanager's firing alerts (API v2), asked every poll interval: Alertmanager has
//! no watch. Each answer is the whole set, sent as `Msg::Alerts`; a failure is the
//! source's health, so the engine treats the alerts as unknown, never as none.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::config::alertmanager::AlertmanagerConfig;
use crate::engine::model::alerts::FiringAlert;
use crate::engine::{Msg, SourceHealth, SourceId};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiAlert {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: Option<String>,
}

pub fn spawn(config: AlertmanagerConfig, tx: mpsc::Sender<Msg>) {
    tokio::spawn(async move {
        let http = match reqwest::Client::builder().timeout(config.timeout).build() {
            Ok(http) => http,
            Err(e) => {
                let health = SourceHealth::Unavailable(format!("[alertmanager]: {e}"));
                let _ = tx
                    .send(Msg::Source {
                        source: SourceId::Alertmanager,
                        health,
                    })
                    .await;
                return;
            }
        };
        let url = format!(
            "{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
            config.url.trim_end_matches('/')
        );
        let mut every = tokio::time::interval(config.poll_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = 0u32;
        loop {
            every.tick().await;
            let msgs = match ask(&http, &url).await {
                Ok(alerts) => {
                    failures = 0;
                    let alerts = alerts
                        .into_iter()
                        .filter_map(|a| firing(a, &config))
                        .collect();
                    vec![
                        Msg::Source {
                            source: SourceId::Alertmanager,
                            health: SourceHealth::Connected,
                        },
                        Msg::Alerts {
                            at: Timestamp::now(),
                            alerts,
                        },
                    ]
                }
                Err(error) => {
                    failures += 1;
                    let health = SourceHealth::Retrying {
                        attempt: failures,
                        retry_in_secs: config.poll_interval.as_secs(),
                        error: format!("{}: {error}", crate::redact::url(&config.url)),
                    };
                    vec![Msg::Source {
                        source: SourceId::Alertmanager,
                        health,
                    }]
                }
            };
            for msg in msgs {
                if tx.send(msg).await.is_err() {
                    return; // the core has stopped
                }
            }
        }
    });
}

async fn ask(http: &reqwest::Client, url: &str) -> Result<Vec<ApiAlert>, String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(format!("HTTP {status}: {}", text.trim()));
    }
    serde_json::from_slice(&body).map_err(|e| format!("not an Alertmanager v2 answer: {e}"))
}

/// The alert, if its labels name a service.
fn firing(alert: ApiAlert, config: &AlertmanagerConfig) -> Option<FiringAlert> {
    let service = alert.labels.get(&config.service_label)?.clone();
    Some(FiringAlert {
        namespace: alert.labels.get(&config.namespace_label).cloned(),
        service,
        name: alert.labels.get("alertname").cloned().unwrap_or_default(),
        severity: alert.labels.get("severity").cloned(),
        summary: alert
            .annotations
            .get("summary")
            .or(alert.annotations.get("description"))
            .cloned(),
        since: alert.starts_at.and_then(|t| t.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_names_its_service_by_the_configured_labels() {
        let config: AlertmanagerConfig =
            toml::from_str("url = \"http://am\"\nservice_label = \"app\"").unwrap();
        let answer = r#"[{"labels": {"alertname": "HighErrors", "app": "checkout", "namespace": "shop", "severity": "critical"},
            "annotations": {"summary": "5xx above 5%"}, "startsAt": "2026-12-05T10:00:00Z"},
            {"labels": {"alertname": "Watchdog"}, "annotations": {}}]"#;
        let alerts: Vec<ApiAlert> = serde_json::from_str(answer).unwrap();
        let seen: Vec<FiringAlert> = alerts
            .into_iter()
            .filter_map(|a| firing(a, &config))
            .collect();
        assert_eq!(seen.len(), 1, "an alert naming no service is left out");
        assert_eq!(seen[0].service, "checkout");
        assert_eq!(seen[0].summary.as_deref(), Some("5xx above 5%"));
        assert!(seen[0].names("shop", "checkout") && !seen[0].names("other", "checkout"));
    }
}
