//! `backout rollback DEPLOYMENT`: prepared, dry-run by the server, confirmed, then
//! executed under the Deployment's Lease as one guarded patch.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Args;

use super::ClusterArgs;
use crate::actions::notify::{Notice, Notifiers};
use crate::actions::{access, rollback};
use crate::sources;

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
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("error: refusing to roll back without confirmation; run it in a terminal or pass --yes");
            return Ok(ExitCode::FAILURE);
        }
        print!(
            "type the deployment name ({}) to roll back; anything else cancels: ",
            plan.deployment
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != plan.deployment {
            println!("cancelled; nothing changed");
            return Ok(ExitCode::FAILURE);
        }
    }
    match rollback::commit(&target.client, &plan, &actor).await {
        Ok(rollback::Done::RolledBack { .. }) => {
            println!(
                "deployment.apps/{} rolled back to revision {} by {actor}",
                plan.deployment, plan.to_revision
            );
            notify(&notifiers, &plan, &actor, &args).await;
            Ok(ExitCode::SUCCESS)
        }
        Ok(rollback::Done::AlreadyThere) => {
            println!(
                "deployment.apps/{} already at revision {}'s template; nothing changed",
                plan.deployment, plan.to_revision
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Tells the team. The rollback has already happened: a failing notifier is reported
/// and changes neither what happened nor the exit code.
async fn notify(notifiers: &Notifiers, plan: &rollback::Plan, actor: &str, args: &RollbackArgs) {
    if notifiers.is_empty() {
        return;
    }
    let notice = Notice::RolledBack {
        service: format!("{}/{}", plan.namespace, plan.deployment),
        from_revision: plan.from_revision,
        from_images: plan.from_images.clone(),
        to_revision: plan.to_revision,
        to_images: plan.to_images.clone(),
        trigger: None,
        by: actor.to_string(),
        reason: args.reason.clone(),
        incident: args.incident.clone(),
    };
    for d in notifiers.send(&notice).await {
        match d.error {
            None => println!(
                "  notified {} ({} attempt{})",
                d.channel,
                d.attempts,
                if d.attempts == 1 { "" } else { "s" }
            ),
            Some(e) => eprintln!("warning: notification not delivered: {e}; the rollback stands"),
        }
    }
}
