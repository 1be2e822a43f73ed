//! `backout rollback DEPLOYMENT`: prepared, dry-run by the server, confirmed, then
//! executed under the Deployment's Lease as one guarded patch.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Args;

use super::ClusterArgs;
use crate::actions::journal::{self, Journal};
use crate::actions::notify::{Notice, Notifiers};
use crate::actions::verify::{self, Outcome};
use crate::actions::{access, rollback};
use crate::config::{Config, Trigger};
use crate::engine::journal::{Entry, Record};
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
    let notifiers = Notifiers::from_config(&config.notifications).map_err(anyhow::Error::msg)?;
    let target = sources::kube::connect(
        c.kubeconfig.as_deref(),
        c.context.as_deref(),
        c.namespace.as_deref(),
    )
    .await?;
    let actor = access::actor(&target.client).await;
    let blue_green = config.blue_green.iter().find(|b| {
        b.service == args.deployment && b.namespace.as_deref().is_none_or(|n| n == target.namespace)
    });
    if let Some(bg) = blue_green {
        return switch(
            &target.client,
            &target.namespace,
            bg,
            &config,
            &notifiers,
            &actor,
            &args,
        )
        .await;
    }
    let req = rollback::Request {
        namespace: target.namespace.clone(),
        deployment: args.deployment.clone(),
        to_revision: args.to_revision,
        reason: args.reason.clone(),
        actor: actor.clone(),
        incident: args.incident.clone(),
    };
    let plan = match rollback::prepare(&target.client, &req).await {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if plan.already_there {
        println!("deployment.apps/{} skipped rollback (current template already matches revision {}); nothing changed", plan.deployment, plan.to_revision);
        return Ok(ExitCode::SUCCESS);
    }
    println!("roll back {}/{}", plan.namespace, plan.deployment);
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
    println!("  as   {}", plan.kubectl);
    println!("  change-cause: {}", plan.change_cause);
    println!("  server dry run: accepted");
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && !confirmed("deployment", &plan.deployment)? {
        return Ok(ExitCode::FAILURE);
    }
    let (prom, breaching) = probe(&config, &plan.namespace, &plan.deployment).await?;
    let mut journal = Journal::open(&journal::default_path()).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the journal {}: {e}; set BACKOUT_JOURNAL to a writable file",
            journal::default_path().display()
        )
    })?;
    let mut record = |entry: Entry| {
        let r = Record {
            at: jiff::Timestamp::now(),
            incident: args.incident.clone(),
            service: format!("{}/{}", plan.namespace, plan.deployment),
            entry,
        };
        if let Err(e) = journal.append(&r) {
            eprintln!("warning: the journal could not be written: {e}");
        }
    };
    match rollback::commit(&target.client, &plan, &actor).await {
        Ok(rollback::Done::RolledBack { .. }) => {}
        Ok(rollback::Done::AlreadyThere) => {
            println!(
                "deployment.apps/{} already at revision {}'s template; nothing changed",
                plan.deployment, plan.to_revision
            );
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            record(Entry::RollbackFailed {
                to_revision: plan.to_revision,
                by: actor.clone(),
                error: e.to_string(),
            });
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    }
    println!(
        "deployment.apps/{} rolled back to revision {} by {actor}",
        plan.deployment, plan.to_revision
    );
    record(Entry::Rollback {
        from_revision: plan.from_revision,
        from_images: plan.from_images.clone(),
        to_revision: plan.to_revision,
        to_images: plan.to_images.clone(),
        by: actor.clone(),
        reason: args.reason.clone(),
        automatic: false,
    });
    let fired = breaching
        .iter()
        .map(|(t, _, v)| {
            format!(
                "{} {v:.4} {} {}",
                t.name,
                t.comparison.symbol(),
                t.threshold
            )
        })
        .collect::<Vec<_>>();
    notify(
        &notifiers,
        rolled_back(&plan, &actor, &args, &fired),
        &mut record,
    )
    .await;
    if args.no_verify {
        return Ok(ExitCode::SUCCESS);
    }
    let checks = verify::Plan::from_config(
        &config,
        &plan.namespace,
        &plan.deployment,
        &plan.deployment,
        breaching.into_iter().map(|(t, q, _)| (t, q)).collect(),
    );
    let outcome = verify_and_record(&target.client, prom.as_ref(), &checks, &mut record).await;
    if outcome != Outcome::Verified {
        let summary = format!(
            "{} after rolling back to revision {}; no further automatic rollback",
            outcome.label(),
            plan.to_revision
        );
        let page = Notice::Page {
            service: format!("{}/{}", plan.namespace, plan.deployment),
            summary,
            incident: args.incident.clone(),
        };
        notify(&notifiers, page, &mut record).await;
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
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

fn rolled_back(
    plan: &rollback::Plan,
    actor: &str,
    args: &RollbackArgs,
    fired: &[String],
) -> Notice {
    Notice::RolledBack {
        service: format!("{}/{}", plan.namespace, plan.deployment),
        from_revision: plan.from_revision,
        from_images: plan.from_images.clone(),
        to_revision: plan.to_revision,
        to_images: plan.to_images.clone(),
        trigger: (!fired.is_empty()).then(|| fired.join("; ")),
        by: actor.to_string(),
        reason: args.reason.clone(),
        incident: args.incident.clone(),
    }
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
