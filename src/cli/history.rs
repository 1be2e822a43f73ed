//! `backout history DEPLOYMENT [--revision N]`: the revision table, or one revision's
//! pod template against the current one. For a `[[lambda]]` alias, its versions.

use std::process::ExitCode;

use clap::Args;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::ListParams;
use kube::Api;

use super::ClusterArgs;
use crate::engine::decision::ago;
use crate::engine::rollout::{self, Revision};
use crate::sources;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The Deployment whose revisions to list (in -n's namespace, else the context's).
    pub deployment: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Show what differs between this revision's pod template and the current one.
    #[arg(long)]
    pub revision: Option<u64>,
}

pub fn table(history: &[Revision], current: u64, now: jiff::Timestamp) -> String {
    let mut out = format!(
        "{:<9} {:<44} {:<7} {:<16} CHANGE-CAUSE\n",
        "REVISION", "IMAGE", "AGE", "DEPLOYED-BY"
    );
    for r in history {
        let mark = if r.number == current { "*" } else { " " };
        let age = r.created.map_or("?".into(), |t| ago(now, t));
        out.push_str(&format!(
            "{:<9} {:<44} {:<7} {:<16} {}\n",
            format!("{}{mark}", r.number),
            r.images.join(","),
            age,
            r.deployed_by.as_deref().unwrap_or("-"),
            r.change_cause.as_deref().unwrap_or("<none>")
        ));
    }
    out
}

/// A Lambda alias's versions, the one it routes to starred, and what was rolled
/// back from, as the alias and the function's tag say.
async fn lambda_history(cfg: &crate::config::lambda::LambdaConfig) -> anyhow::Result<ExitCode> {
    use crate::targets::lambda;
    let client = lambda::aws::client(cfg)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let alias = match lambda::aws::read(&client, cfg).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let now = jiff::Timestamp::now();
    let current = alias.version.parse().unwrap_or(0);
    print!(
        "{}",
        table(&crate::targets::alias::revisions(&alias), current, now)
    );
    if let Some((v, w)) = alias.canary() {
        println!(
            "alias {}:{} sends {w}% of its requests to version {v}",
            cfg.function, cfg.alias
        );
    }
    if let Some(r) = alias.record() {
        println!(
            "version {} rolled back to {} {} ago by {}: {}",
            r.from_replicaset,
            r.to_replicaset,
            ago(now, r.at),
            r.by,
            r.reason
        );
    }
    for (v, at) in &alias.known_bad {
        println!(
            "version {v} was rolled back from {} ago (the function's {} tag): never a target",
            ago(now, *at),
            lambda::KNOWN_BAD_TAG
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let c = &args.cluster;
    let config = c.config()?;
    let lambda = config.lambda.iter().find(|l| {
        l.service() == args.deployment && c.namespace.as_deref().is_none_or(|n| n == l.namespace)
    });
    if let Some(cfg) = lambda {
        return lambda_history(cfg).await;
    }
    let target = sources::kube::connect(
        c.kubeconfig.as_deref(),
        c.context.as_deref(),
        c.namespace.as_deref(),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(target.client.clone(), &target.namespace);
    let d = match deployments.get(&args.deployment).await {
        Ok(d) => d,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let why =
                super::not_found::deployment(&target.client, &target.namespace, &args.deployment)
                    .await;
            eprintln!("error: {why}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => {
            eprintln!(
                "error: cannot read deployment {:?} in namespace {}: {}",
                args.deployment,
                target.namespace,
                crate::sources::kube::one_line(&e)
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let uid = d.metadata.uid.clone();
    let rs_api: Api<ReplicaSet> = Api::namespaced(target.client.clone(), &target.namespace);
    let selector = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let owned: Vec<ReplicaSet> = rs_api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| Some(&o.uid) == uid.as_ref() && o.controller == Some(true))
        })
        .collect();
    let revisions: Vec<rollout::Revision> = owned.iter().map(rollout::Revision::of).collect();
    let history = rollout::history(&revisions);
    let current = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(rollout::REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    match args.revision {
        None => print!("{}", table(&history, current, jiff::Timestamp::now())),
        Some(n) => {
            let Some(rev) = history.iter().find(|r| r.number == n) else {
                eprintln!("error: unable to find specified revision {n} in history");
                return Ok(ExitCode::FAILURE);
            };
            let (Some(theirs), Some(ours)) = (
                rev.template.as_ref().and_then(rollout::Template::spec),
                d.spec.as_ref().map(|s| &s.template),
            ) else {
                eprintln!("error: revision {n} has no pod template");
                return Ok(ExitCode::FAILURE);
            };
            println!("revision {n} against the current revision {current}:");
            let changes = rollout::diff(ours, &theirs);
            if changes.is_empty() {
                println!("  the same pod template");
            }
            for ch in changes {
                println!("  {} {}: {} → {}", ch.container, ch.field, ch.from, ch.to);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
