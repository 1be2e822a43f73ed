//! `backout rollback DEPLOYMENT`: prepared, dry-run by the server, confirmed, then
//! executed under the Deployment's Lease as one guarded patch.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::ClusterArgs;
use crate::actions::access;
use crate::actions::journal::{self, Journal};
use crate::actions::notify::{Notice, Notifiers};
use crate::actions::verify::{self, Outcome};
use crate::app::core::Core;
use crate::config::{Config, Trigger};
use crate::engine::journal::{Entry, Record};
use crate::engine::rollbacks::{Expected, Phase, Progress, Request};
use crate::engine::{verification, Msg, ServiceKey, State};
use crate::sources;
use crate::sources::prometheus::Prometheus;

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The Deployment to roll back.
    pub deployment: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The revision to go back to; by default the previous one.
    #[arg(long)]
    pub to_revision: Option<u64>,
    /// Prepare and have the server dry-run it, then stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Why, for the change-cause annotation and the Event.
    #[arg(long, default_value = "rolled back by hand")]
    pub reason: String,
    /// The incident this rollback belongs to.
    #[arg(long)]
    pub incident: Option<String>,
    /// Skip verifying recovery after the rollback.
    #[arg(long)]
    pub no_verify: bool,
    /// For a blue-green Service: the selector value to switch to.
    #[arg(long)]
    pub to: Option<String>,
}

/// Asks for the object's name; anything else cancels. Refuses without a terminal.
fn confirmed(kind: &str, name: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "error: refusing to roll back without confirmation; run it in a terminal or pass --yes"
        );
        return Ok(false);
    }
    print!("type the {kind} name ({name}) to roll back; anything else cancels: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != name {
        println!("cancelled; nothing changed");
        return Ok(false);
    }
    Ok(true)
}

/// Blue-green: switch the Service's selector back, then verify the Deployment it now picks.
async fn switch(
    client: &kube::Client,
    namespace: &str,
    bg: &crate::config::BlueGreen,
    config: &Config,
    notifiers: &Notifiers,
    actor: &str,
    args: &RollbackArgs,
) -> anyhow::Result<ExitCode> {
    let plan = match crate::actions::bluegreen::prepare(
        client,
        namespace,
        &bg.service,
        &bg.label,
        args.to.as_deref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "switch service {namespace}/{} {}: {} → {}",
        plan.service, plan.label, plan.from, plan.to
    );
    println!("  as   {}", plan.kubectl);
    println!("  server dry run: accepted");
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && !confirmed("service", &plan.service)? {
        return Ok(ExitCode::FAILURE);
    }
    let (prom, breaching) = probe(config, namespace, &plan.service).await?;
    if let Err(e) = crate::actions::bluegreen::commit(client, &plan, actor).await {
        eprintln!("error: {e}");
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "service/{} switched {} back to {} by {actor}",
        plan.service, plan.label, plan.to
    );
    let mut journal = Journal::open(&journal::default_path())?;
    let mut record = |entry: Entry| {
        let r = Record {
            at: jiff::Timestamp::now(),
            incident: args.incident.clone(),
            service: format!("{namespace}/{}", plan.service),
            entry,
        };
        if let Err(e) = journal.append(&r) {
            eprintln!("warning: the journal could not be written: {e}");
        }
    };
    record(Entry::Switch {
        label: plan.label.clone(),
        from: plan.from.clone(),
        to: plan.to.clone(),
        by: actor.into(),
        reason: args.reason.clone(),
    });
    let notice = Notice::Page {
        service: format!("{namespace}/{}", plan.service),
        summary: format!(
            "{actor} switched {} from {} back to {}: {}",
            plan.label, plan.from, plan.to, args.reason
        ),
        incident: args.incident.clone(),
    };
    notify(notifiers, notice, &mut record).await;
    let Some(deployment) = plan.to_deployment.clone().filter(|_| !args.no_verify) else {
        return Ok(ExitCode::SUCCESS);
    };
    let checks = verify::Plan::from_config(
        config,
        namespace,
        &deployment,
        &plan.service,
        breaching.into_iter().map(|(t, q, _)| (t, q)).collect(),
    );
    let outcome = verify_and_record(client, prom.as_ref(), &checks, &mut record).await;
    Ok(if outcome == Outcome::Verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let c = &args.cluster;
    let config = c.config()?;
    let blue_green = config
        .blue_green
        .iter()
        .find(|b| b.service == args.deployment)
        .cloned();
    if let Some(bg) = blue_green {
        let notifiers =
            Notifiers::from_config(&config.notifications).map_err(anyhow::Error::msg)?;
        let target = sources::kube::connect(
            c.kubeconfig.as_deref(),
            c.context.as_deref(),
            c.namespace.as_deref(),
        )
        .await?;
        if bg
            .namespace
            .as_deref()
            .is_none_or(|n| n == target.namespace)
        {
            let actor = access::actor(&target.client).await;
            return switch(
                &target.client,
                &target.namespace,
                &bg,
                &config,
                &notifiers,
                &actor,
                &args,
            )
            .await;
        }
    }
    let mut core = Core::start(config, c.core_options(Some(journal::default_path()))).await?;
    let code = roll_back(&mut core, &args).await;
    core.shutdown(std::time::Duration::from_secs(10)).await;
    code
}

/// The Deployment path, through the same engine and runner as the console and the
/// watcher: the cluster listed (so every rollback anyone made is known), a dry run,
/// confirmation, then the order, followed step by step to its verified end.
async fn roll_back(core: &mut Core, args: &RollbackArgs) -> anyhow::Result<ExitCode> {
    let settle = core
        .state
        .config
        .policy
        .rollout_deadline
        .min(std::time::Duration::from_secs(30));
    if !core.run_until(settle, Core::listed).await {
        eprintln!("error: the cluster did not list its Deployments within {}s; check the context and retry", settle.as_secs());
        return Ok(ExitCode::from(2));
    }
    let key = ServiceKey::new(&core.target.namespace, &args.deployment);
    if !core.state.services.contains_key(&key) {
        eprintln!(
            "error: deployment {:?} not found in namespace {} (or not watched by backout.toml)",
            key.name, key.namespace
        );
        return Ok(ExitCode::FAILURE);
    }
    // Someone rolled back already, and it is still being verified: a second
    // engineer's `backout rollback` follows it rather than going a revision further.
    let svc = &core.state.services[&key];
    if args.to_revision.is_none() && svc.rollback.as_ref().is_some_and(|p| p.running()) {
        let p = svc.rollback.as_ref().expect("checked");
        println!(
            "{} rolled {key} back {} ago; following that rollback (name --to-revision to go further back)",
            p.by,
            crate::engine::decision::ago(core.state.now, p.started)
        );
        return follow(core, &key, args.no_verify).await;
    }
    // Without --to-revision, the engine's target: kubectl's "previous", except a
    // template anyone rolled back from.
    let Some(to_revision) = args
        .to_revision
        .or(svc.decision.target.as_ref().map(|t| t.revision))
    else {
        let gate = svc
            .decision
            .gates
            .iter()
            .find(|g| g.number == 7)
            .map(|g| g.evidence.clone());
        eprintln!(
            "error: no revision to roll {key} back to: {}; name one with --to-revision after `backout history {}`",
            gate.unwrap_or_else(|| "every earlier revision was rolled back from, or there is none".into()),
            key.name
        );
        return Ok(ExitCode::FAILURE);
    };
    let to_revision = Some(to_revision);
    core.apply(Msg::PreviewRequested {
        service: key.clone(),
        to_revision,
    })
    .await;
    let answered = |s: &State| {
        s.services
            .get(&key)
            .and_then(|s| s.preview.as_ref())
            .is_some_and(|p| p.result.is_some())
    };
    core.run_until(settle, answered).await;
    let plan = match core.state.services[&key]
        .preview
        .as_ref()
        .and_then(|p| p.result.clone())
    {
        Some(Ok(plan)) => plan,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
        None => {
            eprintln!(
                "error: the API server did not answer the dry run within {}s",
                settle.as_secs()
            );
            return Ok(ExitCode::from(2));
        }
    };
    if plan.already_there {
        println!("deployment.apps/{} skipped rollback (current template already matches revision {}); nothing changed", key.name, plan.to_revision);
        return Ok(ExitCode::SUCCESS);
    }
    println!("roll back {key}");
    println!(
        "  from revision {} ({})",
        plan.from_revision,
        plan.from_images.join(", ")
    );
    println!(
        "  to   revision {} ({})",
        plan.to_revision,
        plan.to_images.join(", ")
    );
    if let Some(bad) = known_bad_note(&core.state, &key, plan.to_revision) {
        println!("  warning: {bad}");
    }
    println!("  as   {}", plan.kubectl);
    println!("  server dry run: accepted");
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && !confirmed("deployment", &key.name)? {
        return Ok(ExitCode::FAILURE);
    }
    let request = Request {
        to_revision: Some(plan.to_revision),
        automatic: false,
        reason: args.reason.clone(),
        by: core.actor.clone(),
        expected: Some(Expected::of(&plan)),
    };
    if let Some(incident) = &args.incident {
        if let Some(svc) = core.state.services.get_mut(&key) {
            svc.incident.get_or_insert_with(|| incident.clone());
        }
    }
    core.apply(Msg::RollbackRequested {
        service: key.clone(),
        request,
    })
    .await;
    follow(core, &key, args.no_verify).await
}

/// Why a revision is known bad, in words, for the plan.
fn known_bad_note(state: &State, key: &ServiceKey, revision: u64) -> Option<String> {
    let svc = state.services.get(key)?;
    let why = svc.why_revision_bad(revision, state.now)?;
    Some(format!(
        "revision {revision} was {why}; you are re-deploying it"
    ))
}

/// What of the rollback's life has been printed: checks, the phase, notifications.
struct Printed {
    checks: usize,
    phase: Option<Phase>,
    committed: bool,
    notified: usize,
}

impl Printed {
    /// Prints what the engine recorded since the last call.
    fn catch_up(&mut self, state: &State, key: &ServiceKey, p: &Progress) {
        if p.committed && !self.committed {
            self.committed = true;
            let to = p.plan.as_ref().map_or(0, |pl| pl.to_revision);
            if p.ours {
                println!(
                    "deployment.apps/{} rolled back to revision {to} by {}",
                    key.name, p.by
                );
            } else {
                println!(
                    "{} rolled {key} back first (to revision {to}); following that rollback",
                    p.by
                );
            }
        }
        if self.phase != Some(p.phase) {
            self.phase = Some(p.phase);
            for line in verification::pending(state, p) {
                println!("  {line}");
            }
        }
        for c in &p.checks[self.checks..] {
            println!("  {c}");
        }
        self.checks = p.checks.len();
        let service = key.to_string();
        let notices: Vec<&Entry> = state
            .journaled
            .iter()
            .filter(|r| r.service == service && r.at >= p.started)
            .map(|r| &r.entry)
            .filter(|e| matches!(e, Entry::Notification { .. }))
            .collect();
        for n in notices.iter().skip(self.notified) {
            if let Entry::Notification {
                channel,
                delivered,
                detail,
            } = n
            {
                match delivered {
                    true => println!("  notified {channel} ({detail})"),
                    false => eprintln!(
                        "warning: notification not delivered: {detail}; the rollback stands"
                    ),
                }
            }
        }
        self.notified = self.notified.max(notices.len());
    }
}

/// Prints the rollback's life as the engine records it, until it ends (or, with
/// `--no-verify`, until the patch lands), and the team has been told. Exit 0 only
/// when verified.
async fn follow(core: &mut Core, key: &ServiceKey, no_verify: bool) -> anyhow::Result<ExitCode> {
    let channels =
        Notifiers::from_config(&core.state.config.notifications).map_or(0, |n| n.channels());
    let mut printed = Printed {
        checks: 0,
        phase: None,
        committed: false,
        notified: 0,
    };
    let ended = loop {
        let Some(p) = core
            .state
            .services
            .get(key)
            .and_then(|s| s.rollback.clone())
        else {
            eprintln!("error: {key} is no longer watched");
            return Ok(ExitCode::from(2));
        };
        printed.catch_up(&core.state, key, &p);
        if p.committed && no_verify && p.running() {
            core.apply(Msg::Abandon {
                service: key.clone(),
                why: "--no-verify".into(),
            })
            .await;
        }
        if let Some((_, result)) = p
            .ended
            .clone()
            .filter(|_| !p.committed || printed.notified >= channels)
        {
            break result;
        }
        // The team is told in the background; that is worth half a minute at most.
        let stepped = match &p.ended {
            None => Ok(core.step().await),
            Some(_) => tokio::time::timeout(Duration::from_secs(30), core.step()).await,
        };
        match stepped {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("error: the engine stopped before the rollback ended");
                return Ok(ExitCode::from(2));
            }
            Err(_) => break p.ended.expect("waited only once ended").1,
        }
    };
    Ok(match ended {
        Ok(Outcome::Verified) => {
            println!("verified");
            ExitCode::SUCCESS
        }
        Ok(outcome) => {
            println!("{}", outcome.label());
            ExitCode::FAILURE
        }
        Err(e) if no_verify && e.contains("--no-verify") => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    })
}

/// The Prometheus client, if configured, and the triggers breaching for `name` right now:
/// what verification will wait on to recover.
async fn probe(
    config: &Config,
    namespace: &str,
    name: &str,
) -> anyhow::Result<(Option<Prometheus>, Vec<(Trigger, String, f64)>)> {
    let prom = config
        .prometheus
        .as_ref()
        .map(Prometheus::new)
        .transpose()?;
    let fired = match &prom {
        Some(p) => breaching(p, config, namespace, name).await,
        None => Vec::new(),
    };
    Ok((prom, fired))
}

/// The triggers breaching for this Deployment right now: what verification waits on.
async fn breaching(
    prom: &Prometheus,
    config: &Config,
    namespace: &str,
    deployment: &str,
) -> Vec<(Trigger, String, f64)> {
    let mut out = Vec::new();
    for t in &config.triggers {
        let query = t.query_for(namespace, deployment, deployment);
        let step = config
            .prometheus
            .as_ref()
            .map_or(std::time::Duration::from_secs(15), |p| p.poll_interval);
        let outcome = prom
            .range(&query, jiff::Timestamp::now(), step * 4, step)
            .await;
        if let crate::engine::signals::QueryOutcome::Series { points, .. } = outcome {
            if let Some(&(_, v)) = points
                .last()
                .filter(|(_, v)| v.is_finite() && t.comparison.breached(*v, t.threshold))
            {
                out.push((t.clone(), query, v));
            }
        }
    }
    out
}

/// Verifies, prints each check, journals the outcome and returns it.
async fn verify_and_record(
    client: &kube::Client,
    prom: Option<&Prometheus>,
    checks: &verify::Plan,
    record: &mut impl FnMut(Entry),
) -> Outcome {
    println!(
        "verifying (rollout within {}, recovery within {})",
        humantime::format_duration(checks.rollout_deadline),
        humantime::format_duration(checks.recovery_window)
    );
    // Each check prints as it completes: a long recovery window is not a silent wait.
    let result = verify::verify(client, prom, checks, &|c| println!("  {c}")).await;
    println!("{}", result.outcome.label());
    let lines = result.checks.iter().map(|c| c.to_string()).collect();
    record(Entry::Verification {
        outcome: result.outcome.label().into(),
        checks: lines,
    });
    result.outcome
}

/// Tells the team. The rollback has already happened: a failing notifier is reported
/// and journaled, and changes neither what happened nor the exit code.
async fn notify(notifiers: &Notifiers, notice: Notice, record: &mut impl FnMut(Entry)) {
    for d in notifiers.send(&notice).await {
        match &d.error {
            None => println!(
                "  notified {} ({} attempt{})",
                d.channel,
                d.attempts,
                if d.attempts == 1 { "" } else { "s" }
            ),
            Some(e) => eprintln!("warning: notification not delivered: {e}; the rollback stands"),
        }
        record(Entry::Notification {
            channel: d.channel.into(),
            delivered: d.error.is_none(),
            detail: d
                .error
                .unwrap_or_else(|| format!("{} attempts", d.attempts)),
        });
    }
}
