//! `backout rollback DEPLOYMENT`: prepared, dry-run by the server, confirmed, then
//! executed under the Deployment's Lease as one guarded patch.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

mod printed;

use super::ClusterArgs;
use crate::actions::bluegreen;
use crate::actions::journal;
use crate::actions::notify::Notifiers;
use crate::app::core::Core;
use crate::engine::rollbacks::{self, Expected, Outcome, Preview, Request};
use crate::engine::{Msg, ServiceKey, SourceHealth, SourceId, State};
use crate::sources;
use printed::{print_plan, Printed};

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

pub async fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let c = &args.cluster;
    let config = c.config()?;
    // Connecting and the first lists share one limit: a hung API server ends the
    // command, worded, instead of holding the engineer's terminal.
    let limit = settle(&config);
    let started = tokio::time::Instant::now();
    let mut opts = c.core_options(Some(journal::default_path()));
    // A blue-green Service's name resolves to a colour once the cluster is read, and
    // its switch reads both colours: it keeps the whole namespace in view.
    if !config
        .blue_green
        .iter()
        .any(|b| b.service == args.deployment)
    {
        opts.only = Some(args.deployment.clone());
    }
    let mut core = Core::start_within(config, opts, limit, "then retry").await?;
    let code = roll_back(&mut core, &args, limit.saturating_sub(started.elapsed())).await;
    core.shutdown(std::time::Duration::from_secs(10)).await;
    code
}

/// The Deployment `name` means: itself, or for a configured blue-green Service the
/// colour it sends traffic to now, read from the cluster.
async fn deployment_for(core: &Core, name: &str) -> anyhow::Result<String> {
    let namespace = &core.target.namespace;
    let Some(bg) = core
        .state
        .config
        .blue_green
        .iter()
        .find(|b| b.service == name && b.namespace.as_deref().is_none_or(|n| n == namespace))
    else {
        return Ok(name.to_string());
    };
    let live = bluegreen::live_deployment(&core.target.client, namespace, bg).await?;
    Ok(live)
}

/// The Deployment path, through the same engine and runner as the console and the
/// watcher: the cluster listed (so every rollback anyone made is known), a dry run,
/// confirmation, then the order, followed step by step to its verified end.
async fn roll_back(
    core: &mut Core,
    args: &RollbackArgs,
    settle: Duration,
) -> anyhow::Result<ExitCode> {
    // Refused before any wait: a user RBAC will not let patch (the built-in `view`
    // role cannot even list Secrets, so the listing might never finish for them).
    if let Some(why) = core.state.read_only.as_ref().filter(|_| !args.dry_run) {
        eprintln!("error: cannot roll back: {why}");
        return Ok(ExitCode::FAILURE);
    }
    if !core.run_until(settle, Core::listed).await {
        eprintln!(
            "error: the cluster did not list its Deployments within {}; check the context and retry",
            humantime::format_duration(settle)
        );
        return Ok(ExitCode::from(2));
    }
    let name = match deployment_for(core, &args.deployment).await {
        Ok(name) => name,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let key = ServiceKey::new(&core.target.namespace, &name);
    if !core.state.services.contains_key(&key) {
        // A configured alias or Compose service whose reader fails is not "not found".
        let alias_failing = match core.state.sources.get(&SourceId::Aliases) {
            Some(SourceHealth::Retrying { error, .. }) => Some(error.clone()),
            Some(SourceHealth::Unavailable(error)) => Some(error.clone()),
            _ => None,
        }
        .filter(|_| sources::aliases::keys(&core.state.config).contains(&key));
        if let Some(error) = alias_failing {
            eprintln!("error: {key} cannot be read: {error}");
            return Ok(ExitCode::FAILURE);
        }
        let why =
            super::not_found::deployment(&core.target.client, &key.namespace, &key.name).await;
        eprintln!("error: {why}");
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
    let to_revision = args
        .to_revision
        .or(svc.decision.target.as_ref().map(|t| t.revision));
    if to_revision.is_none() && !rollbacks::may_switch(&core.state, &key) {
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
    }
    let plan = match dry_run(core, &key, to_revision, args.to.clone()).await {
        Ok(plan) => plan,
        // The dry run lost a race to someone else's rollback (it already runs the
        // target): once the engine sees that rollback, follow it like the console.
        Err((_, why))
            if args.to_revision.is_none() && someone_else_rolled_back(core, &key).await =>
        {
            println!("someone else rolled {key} back meanwhile ({why}); following that rollback");
            return follow(core, &key, args.no_verify).await;
        }
        Err((code, why)) => {
            eprintln!("error: {why}");
            return Ok(code);
        }
    };
    let kind = core.state.services[&key]
        .deployment
        .as_ref()
        .map(|d| d.kind)
        .unwrap_or_default();
    if let Some(f) = plan.flag.as_ref().filter(|_| plan.already_there) {
        println!("flag {} is already off; nothing changed", f.name);
        return Ok(ExitCode::SUCCESS);
    }
    if plan.already_there {
        println!("{}/{} skipped rollback (current template already matches revision {}); nothing changed", kind.qualified(), key.name, plan.to_revision);
        return Ok(ExitCode::SUCCESS);
    }
    print_plan(&core.state, &key, &plan);
    println!("  as   {}", plan.kubectl);
    match &plan.revert {
        // Git, not the API server, takes this one: the revert applied in a fresh clone.
        Some(r) => println!(
            "  dry run: commit {:.12} (\"{}\" by {}) reverts cleanly on {}{}",
            r.commit,
            r.subject,
            r.author,
            r.branch,
            if r.auto_sync {
                ""
            } else {
                "; auto-sync is off: someone must sync it"
            }
        ),
        // Lambda has no dry run: the alias read afresh is the check, and the shift is
        // pinned to the RevisionId it read.
        None if plan.flag.is_some() => println!(
            "  check: the flag read afresh is on; the kill switch leaves the template as it is"
        ),
        None if kind.words().is_some() => println!(
            "  check: {} read afresh{}; {}",
            kind.words().map_or("", |w| w.read),
            match plan.resource_version.as_str() {
                "" => " (and again just before the move)".to_string(),
                ids if kind.words().is_some_and(|w| w.names_by_image) => {
                    let short: Vec<&str> =
                        ids.split(',').map(|i| i.get(..12).unwrap_or(i)).collect();
                    format!(" (containers {})", short.join(", "))
                }
                id => format!(" (RevisionId {id})"),
            },
            kind.words().map_or("", |w| w.refused_if)
        ),
        None => println!("  server dry run: accepted"),
    }
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let (what, name) = match &plan.switch {
        Some(s) => ("service", s.service.as_str()),
        None if plan.flag.is_some() => ("flag", plan.flag.as_ref().map_or("", |f| f.name.as_str())),
        None if kind.kube_kind().is_none() => (kind.qualified(), key.name.as_str()),
        None => ("deployment", key.name.as_str()),
    };
    if !args.yes && !confirmed(what, name)? {
        return Ok(ExitCode::FAILURE);
    }
    let request = Request {
        to_revision: plan.switch.is_none().then_some(plan.to_revision),
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
        request: request.clone(),
    })
    .await;
    let mut code = follow(core, &key, args.no_verify).await?;
    // A holder that died holding the Lease did nothing; the engineer's confirmed
    // rollback still stands, so it is ordered again once the Lease has lapsed.
    for _ in 0..TAKEOVERS {
        let Some(gone) = holder_gone(&core.state, &key) else {
            break;
        };
        println!("{gone}'s lease lapsed with no rollback in the cluster: taking it over");
        core.apply(Msg::RollbackRequested {
            service: key.clone(),
            request: request.clone(),
        })
        .await;
        code = follow(core, &key, args.no_verify).await?;
    }
    if holder_gone(&core.state, &key).is_some() {
        if let Some((_, Err(e))) = core.state.services[&key]
            .rollback
            .as_ref()
            .and_then(|p| p.ended.as_ref())
        {
            eprintln!("error: {e}");
        }
    }
    Ok(code)
}

/// How many dead holders in a row one command takes a Lease over from.
const TAKEOVERS: usize = 2;

/// Who held the Lease of the rollback that just ended without a patch, because its
/// lease lapsed with nothing in the cluster.
fn holder_gone(state: &State, key: &ServiceKey) -> Option<String> {
    let p = state.services.get(key)?.rollback.as_ref()?;
    let followed_a_lease = p.lease_expires.is_some() && !p.committed;
    let ended = matches!(&p.ended, Some((_, Err(_))));
    (followed_a_lease && ended).then(|| p.by.clone())
}

/// Whether a rollback of `key` by someone else shows in the cluster within a few
/// seconds: what a dry run that lost a race saw.
async fn someone_else_rolled_back(core: &mut Core, key: &ServiceKey) -> bool {
    let theirs = |s: &State| {
        s.services
            .get(key)
            .and_then(|s| s.rollback.as_ref())
            .is_some_and(|p| !p.ours && p.committed)
    };
    core.run_until(Duration::from_secs(5), theirs).await
}

/// How long the CLI waits for the cluster's list and the dry run.
fn settle(config: &crate::config::Config) -> Duration {
    config.policy.rollout_deadline.min(Duration::from_secs(30))
}

/// The API server's dry run of the rollback, as the console's dialog asks for it; on
/// failure, the exit code and why.
async fn dry_run(
    core: &mut Core,
    key: &ServiceKey,
    to_revision: Option<u64>,
    switch_to: Option<String>,
) -> Result<Preview, (ExitCode, String)> {
    let settle = settle(&core.state.config);
    core.apply(Msg::PreviewRequested {
        service: key.clone(),
        to_revision,
        switch_to,
    })
    .await;
    let answered = |s: &State| {
        s.services
            .get(key)
            .and_then(|s| s.preview.as_ref())
            .is_some_and(|p| p.result.is_some())
    };
    core.run_until(settle, answered).await;
    match core.state.services[key]
        .preview
        .as_ref()
        .and_then(|p| p.result.clone())
    {
        Some(Ok(plan)) => Ok(plan),
        Some(Err(e)) => Err((ExitCode::FAILURE, e)),
        None => Err((
            ExitCode::from(2),
            format!(
                "the API server did not answer the dry run within {}s",
                settle.as_secs()
            ),
        )),
    }
}

/// Prints the rollback's life as the engine records it, until it ends (or, with
/// `--no-verify`, until the patch lands), and the team has been told. Exit 0 only
/// when verified.
async fn follow(core: &mut Core, key: &ServiceKey, no_verify: bool) -> anyhow::Result<ExitCode> {
    let notifiers = Notifiers::from_config(&core.state.config.notifications).ok();
    let channels = notifiers.as_ref().map_or(0, |n| n.channels());
    // A verified rollback is announced twice: rolled back, then resolved.
    let resolving = notifiers.as_ref().map_or(0, |n| n.resolving_channels());
    let mut printed = Printed::default();
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
            // `p` is from before the abandon, which ended it: read it again rather
            // than wait for an unrelated message (a watch event, the next second's tick).
            continue;
        }
        let told = |verified: bool| channels + if verified { resolving } else { 0 };
        if let Some((_, result)) = p.ended.clone().filter(|(_, r)| {
            !p.committed || printed.notified >= told(matches!(r, Ok(Outcome::Verified)))
        }) {
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
        // The caller takes the Lease over, or says why it gave up.
        Err(_) if holder_gone(&core.state, key).is_some() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    })
}
