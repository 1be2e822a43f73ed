//! After a rollback: did it work? In order, each against a deadline: the rollout
//! completes (watched, not polled); the triggers that were breaching recover within the
//! verification window; the configured health URLs answer as expected; every pod is
//! ready. The outcome is verified, rollback did not help, or rollout stuck.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

use crate::config::Trigger;
pub use crate::engine::msg::Outcome;
pub use crate::engine::rollbacks::Check;
use crate::engine::rollout::{self, Rollout};
use crate::engine::signals::QueryOutcome;
use crate::sources::prometheus::Prometheus;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub outcome: Outcome,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub namespace: String,
    pub deployment: String,
    pub rollout_deadline: Duration,
    pub recovery_window: Duration,
    /// (trigger, its query for this service) that were breaching before the rollback.
    pub breaching: Vec<(Trigger, String)>,
    pub health_urls: Vec<(String, u16)>,
    pub poll: Duration,
}

impl Plan {
    /// The checks backout.toml asks for after rolling back `deployment`; health URLs
    /// are those configured for `health_key` (the Deployment, or a blue-green Service).
    pub fn from_config(
        config: &crate::config::Config,
        namespace: &str,
        deployment: &str,
        health_key: &str,
        breaching: Vec<(Trigger, String)>,
    ) -> Plan {
        Plan {
            namespace: namespace.into(),
            deployment: deployment.into(),
            rollout_deadline: config.policy.rollout_deadline,
            recovery_window: config.policy.verification_window,
            breaching,
            health_urls: config
                .health_checks
                .iter()
                .filter(|h| h.deployment == health_key)
                .map(|h| (h.url.clone(), h.status))
                .collect(),
            poll: config
                .prometheus
                .as_ref()
                .map_or(Duration::from_secs(5), |p| p.poll_interval),
        }
    }
}

/// The checks so far, each also handed to `on_check` as it completes, so a console
/// shows verification live.
struct Checks<'a> {
    done: Vec<Check>,
    on_check: &'a (dyn Fn(&Check) + Sync),
}

impl Checks<'_> {
    fn push(&mut self, name: &str, passed: bool, detail: String) {
        let check = Check {
            name: name.into(),
            passed,
            detail,
        };
        (self.on_check)(&check);
        self.done.push(check);
    }
}

async fn latest(prom: &Prometheus, query: &str, poll: Duration) -> Option<f64> {
    match prom.range(query, Timestamp::now(), poll * 4, poll).await {
        QueryOutcome::Series { points, .. } => {
            points.last().map(|(_, v)| *v).filter(|v| v.is_finite())
        }
        _ => None,
    }
}

pub async fn verify(
    client: &Client,
    prom: Option<&Prometheus>,
    plan: &Plan,
    on_check: &(dyn Fn(&Check) + Sync),
) -> Verification {
    let mut checks = Checks {
        done: Vec::new(),
        on_check,
    };
    let api: Api<Deployment> = Api::namespaced(client.clone(), &plan.namespace);
    let finished = |d: Option<&Deployment>| {
        d.is_some_and(|d| !matches!(rollout::status(d), Rollout::Progressing(_)))
    };
    let waited = tokio::time::timeout(
        plan.rollout_deadline,
        await_condition(api.clone(), &plan.deployment, finished),
    )
    .await;
    let state = match waited {
        Ok(Ok(Some(d))) => rollout::status(&d),
        Ok(Ok(None)) => Rollout::Failed(format!("deployment {:?} disappeared", plan.deployment)),
        Ok(Err(e)) => Rollout::Failed(format!("cannot watch the rollout: {e}")),
        Err(_) => Rollout::Failed(format!(
            "not complete after {}",
            humantime::format_duration(plan.rollout_deadline)
        )),
    };
    let complete = matches!(state, Rollout::Complete(_));
    checks.push("rollout completes", complete, state.message().to_string());
    if !complete {
        return Verification {
            outcome: Outcome::RolloutStuck,
            checks: checks.done,
        };
    }

    let mut recovered = true;
    match prom {
        None if !plan.breaching.is_empty() => checks.push(
            "triggers recover",
            false,
            "no [prometheus] configured: recovery cannot be seen".into(),
        ),
        None => {}
        Some(prom) => {
            let until = tokio::time::Instant::now() + plan.recovery_window;
            for (trigger, query) in &plan.breaching {
                let (ok, last) = loop {
                    let last = latest(prom, query, plan.poll).await;
                    if last.is_some_and(|v| !trigger.comparison.breached(v, trigger.threshold)) {
                        break (true, last);
                    }
                    if tokio::time::Instant::now() >= until {
                        break (false, last);
                    }
                    tokio::time::sleep(plan.poll).await;
                };
                let value = last.map_or("no data".into(), |v| format!("{v:.4}"));
                let detail = format!(
                    "{} is {value} ({} {})",
                    trigger.name,
                    trigger.comparison.symbol(),
                    trigger.threshold
                );
                recovered &= ok;
                checks.push(&format!("{} recovers", trigger.name), ok, detail);
            }
        }
    }
    let http = reqwest::Client::builder()
        .timeout(plan.poll.max(Duration::from_secs(2)))
        .build()
        .ok();
    for (url, want) in &plan.health_urls {
        let got = match &http {
            Some(h) => h.get(url).send().await.map(|r| r.status().as_u16()).ok(),
            None => None,
        };
        let ok = got == Some(*want);
        recovered &= ok;
        checks.push(
            "health URL",
            ok,
            format!(
                "{url} answered {}; expected {want}",
                got.map_or("nothing".into(), |s| s.to_string())
            ),
        );
    }
    if let Ok(d) = api.get(&plan.deployment).await {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = d
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        recovered &= ready >= want;
        checks.push(
            "every pod ready",
            ready >= want,
            format!("{ready} of {want} ready"),
        );
    }
    Verification {
        outcome: if recovered {
            Outcome::Verified
        } else {
            Outcome::DidNotHelp
        },
        checks: checks.done,
    }
}
