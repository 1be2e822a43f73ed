//! `backout triggers import [FILE]`: the alerting rules a team already has, as
//! `[[trigger]]` entries to paste into backout.toml (`config::import` converts).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

use super::ClusterArgs;
use crate::config::import::{self, Labels, Outcome};

#[derive(Debug, Args)]
pub struct TriggersArgs {
    #[command(subcommand)]
    pub command: TriggersCommand,
}

#[derive(Debug, Subcommand)]
pub enum TriggersCommand {
    /// Print [[trigger]] entries made from Prometheus alerting rules.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A Prometheus rule file or PrometheusRule YAML (`-` reads stdin); without it,
    /// the PrometheusRule objects in the namespace (-n, else the context's).
    pub file: Option<PathBuf>,
    /// The label that names a service in the rules' series.
    #[arg(long, default_value = "service")]
    pub service_label: String,
    /// The label that names its namespace.
    #[arg(long, default_value = "namespace")]
    pub namespace_label: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub async fn run(args: TriggersArgs) -> anyhow::Result<ExitCode> {
    let TriggersCommand::Import(args) = args.command;
    let labels = Labels {
        service: args.service_label.clone(),
        namespace: args.namespace_label.clone(),
    };
    let texts = match &args.file {
        Some(path) if path.as_os_str() == "-" => vec![(
            "stdin".to_string(),
            std::io::read_to_string(std::io::stdin())?,
        )],
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => vec![(path.display().to_string(), text)],
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return Ok(ExitCode::from(2));
            }
        },
        None => match from_cluster(&args.cluster).await {
            Ok(texts) => texts,
            Err(why) => {
                eprintln!("error: {why}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let mut outcomes = Vec::new();
    for (source, text) in texts {
        match import::import(&text, &labels) {
            Ok(found) => outcomes.extend(found),
            Err(why) => {
                eprintln!("error: {source}: {why}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let made = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Trigger(_)))
        .count();
    print!(
        "{}",
        import::to_toml(&outcomes).map_err(anyhow::Error::msg)?
    );
    eprintln!(
        "{made} trigger{} from {} alert{}",
        if made == 1 { "" } else { "s" },
        outcomes.len(),
        if outcomes.len() == 1 { "" } else { "s" }
    );
    Ok(if made > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The PrometheusRule objects of the namespace, as JSON texts (YAML reads JSON).
async fn from_cluster(cluster: &ClusterArgs) -> Result<Vec<(String, String)>, String> {
    let target = crate::sources::kube::connect(
        cluster.kubeconfig.as_deref(),
        cluster.context.as_deref(),
        cluster.namespace.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let kind = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PrometheusRule");
    let resource = ApiResource::from_gvk_with_plural(&kind, "prometheusrules");
    let api: Api<DynamicObject> =
        Api::namespaced_with(target.client.clone(), &target.namespace, &resource);
    let list = api.list(&ListParams::default()).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 404 => "the cluster serves no PrometheusRule (monitoring.coreos.com/v1): install the Prometheus Operator's CRDs, or pass a rule file".to_string(),
        other => format!("cannot list PrometheusRules in {}: {}", target.namespace, crate::sources::kube::one_line(&other)),
    })?;
    if list.items.is_empty() {
        return Err(format!(
            "no PrometheusRule in namespace {}; -n names another, or pass a rule file",
            target.namespace
        ));
    }
    list.items
        .iter()
        .map(|o| {
            let name = format!(
                "PrometheusRule {}",
                o.metadata.name.clone().unwrap_or_default()
            );
            serde_json::to_string(o)
                .map(|json| (name, json))
                .map_err(|e| e.to_string())
        })
        .collect()
}
