//! `backout history DEPLOYMENT [--revision N]`: the revision table, or one revision's
//! pod template against the current one. For a `[[lambda]]` or `[[model]]` alias, its
//! versions; for a `[[compose]]` service, its repository's images.

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

/// An alias's versions (a Lambda's, an MLflow model's), the one it routes to
/// starred, and what was rolled back from, as the alias and its marks say.
fn alias_history(read: Result<crate::targets::alias::Alias, String>) -> ExitCode {
    let alias = match read {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = jiff::Timestamp::now();
    let current = alias.number_of(&alias.version);
    // A Compose service's versions are image ids: its tools name them by reference.
    let named = |id: &str| match alias.kind {
        crate::targets::TargetKind::ComposeService => alias
            .find(id)
            .map_or(id.to_string(), |v| v.identity.clone()),
        _ => id.to_string(),
    };
    print!(
        "{}",
        table(&crate::targets::alias::revisions(&alias), current, now)
    );
    if let Some((v, w)) = alias.canary() {
        println!(
            "alias {} sends {w}% of its requests to version {v}",
            alias.handle
        );
    }
    if let Some(r) = alias.record() {
        println!(
            "version {} rolled back to {} {} ago by {}: {}",
            named(&r.from_replicaset),
            named(&r.to_replicaset),
            ago(now, r.at),
            r.by,
            r.reason
        );
    }
    for (v, at) in &alias.known_bad {
        println!(
            "version {} was rolled back from {} ago (marked on {}): never a target",
            named(v),
            ago(now, *at),
            alias.resource
        );
    }
    ExitCode::SUCCESS
}

/// The alias configured as `name` in `namespace` (or any namespace), read once.
async fn read_alias(
    config: &crate::config::Config,
    name: &str,
    namespace: Option<&str>,
) -> Option<Result<crate::targets::alias::Alias, String>> {
    use crate::targets::{compose, lambda, model};
    let here = |ns: &str| namespace.is_none_or(|n| n == ns);
    if let Some(cfg) = (config.lambda.iter()).find(|l| l.service() == name && here(&l.namespace)) {
        return Some(match lambda::aws::client(cfg).await {
            Ok(client) => lambda::aws::read(&client, cfg)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        });
    }
    if let Some(cfg) = (config.compose.iter()).find(|c| c.service() == name && here(c.namespace()))
    {
        return Some(match compose::engine::client(cfg) {
            Ok(engine) => compose::engine::read(&engine, cfg)
                .await
                .map(|r| r.alias)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        });
    }
    let cfg = (config.models.iter()).find(|m| m.service() == name && here(&m.namespace))?;
    Some(match model::http(cfg) {
        Ok(http) => model::read(&http, cfg).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    })
}

pub async fn run(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let c = &args.cluster;
    let config = c.config()?;
    if let Some(read) = read_alias(&config, &args.deployment, c.namespace.as_deref()).await {
        return Ok(alias_history(read));
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
