//! `backout gate DEPLOYMENT`: the last step of a deploy pipeline. It waits for the
//! rollout, watches the triggers for `--observe`, and rolls back when the decision is
//! auto_rollback (with `--strict`, when any trigger fires). Exit codes: 0 the deploy is
//! accepted, 1 it was rolled back, 2 backout cannot decide.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::ClusterArgs;
use crate::app::core::Core;
use crate::engine::decision::{Decision, Gate};
use crate::engine::rollbacks::Check;
use crate::engine::rollout::Rollout;
use crate::engine::{Action, Msg, ServiceKey, SourceHealth, SourceId};

#[derive(Debug, Args)]
pub struct GateArgs {
    /// The Deployment just deployed.
    pub deployment: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// How long to watch the triggers once the rollout is complete.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub observe: Duration,
    /// Roll back when any trigger fires, not only on an auto_rollback decision.
    #[arg(long)]
    pub strict: bool,
    /// Print one JSON report at the end instead of progress lines.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the rollout; else the policy's rollout_deadline.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub rollout_deadline: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accepted,
    RolledBack,
    Undecided,
}

impl Verdict {
    pub fn code(self) -> u8 {
        match self {
            Verdict::Accepted => 0,
            Verdict::RolledBack => 1,
            Verdict::Undecided => 2,
        }
    }
}

/// The `--json` report; its fields are documented in README.md ("backout gate").
#[derive(Debug, Serialize)]
pub struct GateReport {
    pub deployment: ServiceKey,
    pub verdict: Verdict,
    pub exit_code: u8,
    pub reason: String,
    pub rollout: String,
    pub observed_seconds: u64,
    pub decision: Option<Decision>,
    pub failed_gates: Vec<Gate>,
    pub rollback: Option<GateRollback>,
    pub incident: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct GateRollback {
    pub to_revision: Option<u64>,
    /// verified, rollback did not help, rollout stuck; or why it did not happen.
    pub outcome: String,
    pub checks: Vec<Check>,
}

struct Run {
    core: Core,
    key: ServiceKey,
    json: bool,
}

impl Run {
    fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("{}", line.as_ref());
        }
    }

    /// Steps the core for up to `limit`, until `done` says stop.
    async fn run_for(&mut self, limit: Duration, mut done: impl FnMut(&Core) -> bool) -> bool {
        let until = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < until {
            if done(&self.core) {
                return true;
            }
            let _ = tokio::time::timeout_at(until, self.core.step()).await;
        }
        done(&self.core)
    }

    /// Why the triggers cannot be trusted right now, if they cannot.
    fn blind(&self) -> Option<String> {
        let state = &self.core.state;
        if let Some(SourceHealth::Forbidden(why)) = state.sources.get(&SourceId::Kubernetes) {
            return Some(format!("forbidden: {why}"));
        }
        // The engine's own verdict: blind for longer than policy.blind_after.
        let svc = state.services.get(&self.key)?;
        svc.triggers.iter().find_map(|(name, ts)| {
            let since = ts.blind_since.filter(|_| ts.paged_blind)?;
            Some(format!(
                "metrics blind: {name} has had {} since {since}",
                ts.data.label()
            ))
        })
    }
}

pub async fn run(args: GateArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.cluster.config()?;
    // The gate rolls back only the Deployment it gates, so it orders that rollback itself.
    config.policy.auto_rollback = false;
    let rollout_deadline = args
        .rollout_deadline
        .unwrap_or(config.policy.rollout_deadline);
    let journal = crate::actions::journal::default_path();
    let opts = args.cluster.core_options(Some(journal));
    let core = match Core::start(config, opts).await {
        Ok(core) => core,
        Err(e) => {
            return finish(
                undecided(&args, format!("cannot reach the cluster: {e:#}")),
                args.json,
            )
        }
    };
    let key = ServiceKey::new(&core.target.namespace, &args.deployment);
    let mut run = Run {
        core,
        key: key.clone(),
        json: args.json,
    };
    // Settling may time out on a slow Prometheus; the Deployment must be there either way.
    run.core.settle(Duration::from_secs(30)).await;
    if !run.core.state.services.contains_key(&key) {
        let why = match run.core.state.sources.get(&SourceId::Kubernetes) {
            Some(SourceHealth::Forbidden(w)) => format!("forbidden: {w}"),
            _ => format!("deployment {key} was not found, or the cluster did not answer in 30s"),
        };
        return finish(undecided(&args, why), args.json);
    }
    if let Some(why) = &run.core.state.read_only {
        return finish(
            undecided(&args, format!("cannot roll back: {why}")),
            args.json,
        );
    }

    run.say(format!(
        "waiting up to {} for the rollout of {key}",
        humantime::format_duration(rollout_deadline)
    ));
    let complete = |core: &Core| {
        core.state.services.get(&key).is_some_and(|s| {
            matches!(
                s.decision.rollout,
                Some(Rollout::Complete(_)) | Some(Rollout::Failed(_))
            )
        })
    };
    run.run_for(rollout_deadline, complete).await;
    let rollout = run.core.state.services[&key]
        .decision
        .rollout
        .as_ref()
        .map_or("unknown".to_string(), |r| r.message().to_string());
    run.say(format!("rollout: {rollout}"));

    run.say(format!(
        "observing the triggers for {}",
        humantime::format_duration(args.observe)
    ));
    let started = tokio::time::Instant::now();
    let strict = args.strict;
    let mut ordered = false;
    let mut blind_reason = None;
    let mut last_action = Action::None;
    let mut incident = None;
    // The decision the gate rolled back on; the report shows it rather than the calm after.
    let mut acted_on: Option<Decision> = None;
    let deadline = started + args.observe;
    while tokio::time::Instant::now() < deadline {
        let _ = tokio::time::timeout_at(deadline, run.core.step()).await;
        let svc = &run.core.state.services[&key];
        // The incident closes once the signal recovers; the report still needs its id.
        if svc.incident.is_some() {
            incident.clone_from(&svc.incident);
        }
        if svc.decision.action != last_action {
            last_action = svc.decision.action;
            run.say(format!(
                "decision: {} ({})",
                last_action.label(),
                firing(&svc.decision)
            ));
        }
        if ordered {
            if svc.rollback.as_ref().is_some_and(|r| r.ended.is_some()) {
                break;
            }
            continue;
        }
        if let Some(why) = run.blind() {
            blind_reason = Some(why);
            break;
        }
        // Never "back" to an unknown place: without a target there is nothing to order.
        let fire = svc.decision.target.is_some()
            && match svc.decision.action {
                Action::AutoRollback => true,
                Action::Suggest | Action::Log => strict && !svc.decision.firing.is_empty(),
                Action::None => false,
            };
        if fire {
            let reason = format!(
                "backout gate: {} {}",
                svc.decision.action.label(),
                firing(&svc.decision)
            );
            let to_revision = svc.decision.target.as_ref().map(|t| t.revision);
            run.say(format!(
                "rolling back {key} to revision {}: {reason}",
                to_revision.map_or("previous".into(), |r| r.to_string())
            ));
            run.core
                .tx
                .send(Msg::RollbackRequested {
                    service: key.clone(),
                    request: crate::engine::rollbacks::Request {
                        to_revision,
                        automatic: true,
                        reason,
                        by: run.core.actor.clone(),
                        expected: None,
                    },
                })
                .await?;
            ordered = true;
            acted_on = Some(run.core.state.services[&key].decision.clone());
        }
    }
    // A rollback ordered near the end of the window still runs to its end.
    if ordered {
        let ended = |core: &Core| {
            core.state.services[&key]
                .rollback
                .as_ref()
                .is_some_and(|r| r.ended.is_some())
        };
        let window = run.core.state.config.policy.verification_window + rollout_deadline;
        run.run_for(window + Duration::from_secs(30), ended).await;
    }
    // Let the journal writes of the last steps land before exiting.
    run.run_for(Duration::from_millis(300), |_| false).await;

    let svc = &run.core.state.services[&key];
    let (verdict, reason) = if let Some(rb) = svc.rollback.as_ref().filter(|_| ordered) {
        match &rb.ended {
            Some((_, Ok(outcome))) => (
                Verdict::RolledBack,
                format!("rolled back: {}", outcome.label()),
            ),
            Some((_, Err(e))) => (
                Verdict::Undecided,
                format!("the rollback did not happen: {e}"),
            ),
            None => (
                Verdict::Undecided,
                "the rollback did not finish in time".to_string(),
            ),
        }
    } else if let Some(why) = blind_reason {
        (Verdict::Undecided, why)
    } else if !matches!(svc.decision.rollout, Some(Rollout::Complete(_))) {
        (
            Verdict::Undecided,
            format!("the rollout did not complete: {rollout}"),
        )
    } else if svc.decision.action != Action::None {
        (
            Verdict::Accepted,
            format!(
                "accepted with {} firing, below the gate's bar ({})",
                svc.decision.action.label(),
                svc.decision.why_not_automatic.join("; ")
            ),
        )
    } else {
        (
            Verdict::Accepted,
            "no trigger fired during the observation".to_string(),
        )
    };
    let decision = acted_on.as_ref().unwrap_or(&svc.decision);
    let report = GateReport {
        deployment: key.clone(),
        verdict,
        exit_code: verdict.code(),
        reason,
        rollout,
        observed_seconds: started.elapsed().as_secs(),
        failed_gates: decision
            .gates
            .iter()
            .filter(|g| !g.passed)
            .cloned()
            .collect(),
        decision: Some(decision.clone()),
        rollback: svc
            .rollback
            .as_ref()
            .filter(|_| ordered)
            .map(|rb| GateRollback {
                to_revision: rb.plan.as_ref().map(|p| p.to_revision),
                outcome: match &rb.ended {
                    Some((_, Ok(o))) => o.label().to_string(),
                    Some((_, Err(e))) => format!("not done: {e}"),
                    None => "unfinished".into(),
                },
                checks: rb.checks.clone(),
            }),
        incident: svc.incident.clone().or(incident),
    };
    finish(report, args.json)
}

/// The firing triggers' names, for progress lines and the rollback's reason.
fn firing(d: &Decision) -> String {
    d.firing
        .iter()
        .map(|f| f.trigger.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn undecided(args: &GateArgs, reason: String) -> GateReport {
    GateReport {
        deployment: ServiceKey::new(
            args.cluster.namespace.as_deref().unwrap_or(""),
            &args.deployment,
        ),
        verdict: Verdict::Undecided,
        exit_code: Verdict::Undecided.code(),
        reason,
        rollout: "unknown".into(),
        observed_seconds: 0,
        decision: None,
        failed_gates: Vec::new(),
        rollback: None,
        incident: None,
    }
}

fn finish(report: GateReport, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let word = match report.verdict {
            Verdict::Accepted => "ACCEPTED",
            Verdict::RolledBack => "ROLLED BACK",
            Verdict::Undecided => "CANNOT DECIDE",
        };
        println!("{word}: {} ({})", report.deployment, report.reason);
        if let Some(rb) = &report.rollback {
            for c in &rb.checks {
                println!("  {c}");
            }
        }
        if report.verdict == Verdict::RolledBack {
            if let Some(id) = &report.incident {
                println!("handoff: backout report {id}");
            }
        }
    }
    Ok(ExitCode::from(report.exit_code))
}
