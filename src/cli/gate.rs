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
use crate::engine::state::Service;
use crate::engine::{Action, Msg, ServiceKey, SourceHealth, SourceId};

#[derive(Debug, Args)]
pub struct GateArgs {
    /// The Deployment just deployed.
    pub deployment: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// How long to watch the triggers once the rollout is complete.
    #[arg(long, default_value = "5m", value_parser = super::bounded_duration)]
    pub observe: Duration,
    /// Roll back when any trigger fires, not only on an auto_rollback decision.
    #[arg(long)]
    pub strict: bool,
    /// Print one report at the end (-o json|yaml) instead of progress lines.
    #[command(flatten)]
    pub output: super::output::OutputArgs,
    /// How long to wait for the rollout; else the policy's rollout_deadline.
    #[arg(long, value_parser = super::bounded_duration)]
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

/// From start to a listed cluster: connecting, access checks and the first lists.
const START_UP: Duration = Duration::from_secs(30);

pub async fn run(args: GateArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.cluster.config()?;
    // The gate rolls back only the Deployment it gates, so it orders that rollback itself.
    config.policy.auto_rollback = false;
    let rollout_deadline = args
        .rollout_deadline
        .unwrap_or(config.policy.rollout_deadline);
    let journal = crate::actions::journal::default_path();
    let opts = args.cluster.core_options(Some(journal));
    let started = tokio::time::Instant::now();
    let core = match Core::start_within(config, opts, START_UP, "the gate allows 30s").await {
        Ok(core) => core,
        Err(e) => {
            let why = format!("cannot reach the cluster: {e:#}");
            return finish(undecided(&args, why), &args.output);
        }
    };
    let key = ServiceKey::new(&core.target.namespace, &args.deployment);
    let mut run = Run {
        core,
        key: key.clone(),
        json: args.output.format().is_some(),
    };
    if let Some(why) = ready(&mut run, START_UP.saturating_sub(started.elapsed())).await {
        run.core.shutdown(Duration::from_secs(5)).await;
        return finish(undecided(&args, why), &args.output);
    }
    let rollout = await_rollout(&mut run, rollout_deadline).await;
    let seen = observe(&mut run, &args).await;
    // A rollback ordered near the end of the window still runs to its end.
    if seen.acted_on.is_some() {
        let ended = |core: &Core| {
            core.state
                .services
                .get(&key)
                .is_none_or(|s| s.rollback.as_ref().is_some_and(|r| r.ended.is_some()))
        };
        let window = run.core.state.config.policy.verification_window + rollout_deadline;
        run.run_for(window + Duration::from_secs(30), ended).await;
    }
    let report = match run.core.state.services.get(&key) {
        Some(svc) => report(svc, &key, rollout, seen),
        None => {
            let why =
                format!("cannot decide: deployment {key} was deleted while the gate watched it");
            undecided(&args, why)
        }
    };
    // The journal's last records land before the process goes.
    run.core.shutdown(Duration::from_secs(5)).await;
    finish(report, &args.output)
}

/// The cluster listed, the Deployment there and writes allowed; else why not.
async fn ready(run: &mut Run, left: Duration) -> Option<String> {
    // Settling may time out on a slow Prometheus; the Deployment must be there either way.
    run.core.settle(left).await;
    if !run.core.state.services.contains_key(&run.key) {
        return Some(match run.core.state.sources.get(&SourceId::Kubernetes) {
            Some(SourceHealth::Forbidden(w)) => format!("forbidden: {w}"),
            _ => format!(
                "deployment {} was not found, or the cluster did not answer in 30s",
                run.key
            ),
        });
    }
    run.core
        .state
        .read_only
        .as_ref()
        .map(|why| format!("cannot roll back: {why}"))
}

/// Waits for the rollout to complete or fail, up to the deadline; says how it stands.
async fn await_rollout(run: &mut Run, deadline: Duration) -> String {
    let key = run.key.clone();
    run.say(format!(
        "waiting up to {} for the rollout of {key}",
        humantime::format_duration(deadline)
    ));
    // A crash loop need not wait out the progress deadline: an automatic decision
    // (from the cluster's own signals) ends the wait, and the observation acts on it.
    let complete = |core: &Core| {
        core.state.services.get(&key).is_some_and(|s| {
            s.decision.action == Action::AutoRollback
                || matches!(
                    s.decision.rollout,
                    Some(Rollout::Complete(_)) | Some(Rollout::Failed(_))
                )
        })
    };
    run.run_for(deadline, complete).await;
    let rollout = run
        .core
        .state
        .services
        .get(&key)
        .and_then(|s| s.decision.rollout.as_ref())
        .map_or("unknown".to_string(), |r| r.message().to_string());
    run.say(format!("rollout: {rollout}"));
    rollout
}

/// What the observation window saw.
struct Observed {
    started: tokio::time::Instant,
    blind: Option<String>,
    incident: Option<String>,
    /// The decision the gate rolled back on; the report shows it, not the calm after.
    acted_on: Option<Decision>,
}

/// Watches the triggers for `--observe`, and orders the rollback when the decision
/// (or, with `--strict`, any firing trigger) calls for it. Blind triggers end it.
async fn observe(run: &mut Run, args: &GateArgs) -> Observed {
    let key = run.key.clone();
    run.say(format!(
        "observing the triggers for {}",
        humantime::format_duration(args.observe)
    ));
    let started = tokio::time::Instant::now();
    let mut seen = Observed {
        started,
        blind: None,
        incident: None,
        acted_on: None,
    };
    let mut last_action = Action::None;
    let deadline = started + args.observe;
    while tokio::time::Instant::now() < deadline {
        let _ = tokio::time::timeout_at(deadline, run.core.step()).await;
        // Deleted while watched: the report says so.
        let Some(svc) = run.core.state.services.get(&key) else {
            break;
        };
        // The incident closes once the signal recovers; the report still needs its id.
        if svc.incident.is_some() {
            seen.incident.clone_from(&svc.incident);
        }
        if svc.decision.action != last_action {
            last_action = svc.decision.action;
            run.say(format!(
                "decision: {} ({})",
                last_action.label(),
                firing(&svc.decision)
            ));
        }
        if seen.acted_on.is_some() {
            if svc.rollback.as_ref().is_some_and(|r| r.ended.is_some()) {
                break;
            }
            continue;
        }
        // Never "back" to an unknown place: without a target there is nothing to order.
        // An automatic decision rests on clean evidence (a blind trigger is never
        // evidence), so it is acted on even while other triggers are blind.
        let fire = svc.decision.target.is_some()
            && match svc.decision.action {
                Action::AutoRollback => true,
                Action::Suggest | Action::Log => args.strict && !svc.decision.firing.is_empty(),
                Action::None => false,
            };
        if fire {
            let decision = svc.decision.clone();
            order(run, &decision).await;
            seen.acted_on = Some(decision);
            continue;
        }
        if let Some(why) = run.blind() {
            seen.blind = Some(why);
            break;
        }
    }
    seen
}

/// Orders the rollback of the gated Deployment to the decision's target.
async fn order(run: &mut Run, decision: &Decision) {
    let reason = format!(
        "backout gate: {} {}",
        decision.action.label(),
        firing(decision)
    );
    let to_revision = decision.target.as_ref().map(|t| t.revision);
    run.say(format!(
        "rolling back {} to revision {}: {reason}",
        run.key,
        to_revision.map_or("previous".into(), |r| r.to_string())
    ));
    let request = crate::engine::rollbacks::Request {
        to_revision,
        automatic: true,
        reason,
        by: run.core.actor.clone(),
        expected: None,
    };
    let service = run.key.clone();
    run.core
        .apply(Msg::RollbackRequested { service, request })
        .await;
}

/// The verdict and its one-sentence reason.
fn verdict(svc: &Service, rollout: &str, seen: &Observed) -> (Verdict, String) {
    if let Some(rb) = svc.rollback.as_ref().filter(|_| seen.acted_on.is_some()) {
        return match &rb.ended {
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
        };
    }
    // A failing deploy that cannot be rolled back is not a pass: a pipeline must stop.
    let failing: Vec<&str> = svc
        .decision
        .firing
        .iter()
        .filter(|f| f.signal.is_failure())
        .map(|f| f.trigger.as_str())
        .collect();
    if !failing.is_empty() && svc.decision.target.is_none() {
        let why = format!(
            "cannot decide: {} firing, and nothing to roll back to ({})",
            failing.join(", "),
            svc.decision.why_not_automatic.join("; ")
        );
        return (Verdict::Undecided, why);
    }
    if let Some(why) = &seen.blind {
        return (Verdict::Undecided, why.clone());
    }
    if !matches!(svc.decision.rollout, Some(Rollout::Complete(_))) {
        let why = format!("the rollout did not complete: {rollout}");
        return (Verdict::Undecided, why);
    }
    if svc.decision.action != Action::None {
        let why = format!(
            "accepted with {} firing, below the gate's bar ({})",
            svc.decision.action.label(),
            svc.decision.why_not_automatic.join("; ")
        );
        return (Verdict::Accepted, why);
    }
    let why = "no trigger fired during the observation".to_string();
    (Verdict::Accepted, why)
}

fn report(svc: &Service, key: &ServiceKey, rollout: String, seen: Observed) -> GateReport {
    let (verdict, reason) = verdict(svc, &rollout, &seen);
    let decision = seen.acted_on.as_ref().unwrap_or(&svc.decision);
    GateReport {
        deployment: key.clone(),
        verdict,
        exit_code: verdict.code(),
        reason,
        rollout,
        observed_seconds: seen.started.elapsed().as_secs(),
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
            .filter(|_| seen.acted_on.is_some())
            .map(|rb| GateRollback {
                to_revision: rb.plan.as_ref().map(|p| p.to_revision),
                outcome: match &rb.ended {
                    Some((_, Ok(o))) => o.label().to_string(),
                    Some((_, Err(e))) => format!("not done: {e}"),
                    None => "unfinished".into(),
                },
                checks: rb.checks.clone(),
            }),
        incident: svc.incident.clone().or(seen.incident),
    }
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

fn finish(report: GateReport, output: &super::output::OutputArgs) -> anyhow::Result<ExitCode> {
    if !output.print(&report)? {
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
