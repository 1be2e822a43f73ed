//! `backout status [--json]`: the state and decision of every watched service, once.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::ClusterArgs;
use crate::app::core::Core;
use crate::engine::decision::{Decision, Gate};
use crate::engine::signals::time_left;
use crate::engine::{ServiceKey, SourceHealth, SourceId, State};
use crate::targets::TargetKind;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub output: super::output::OutputArgs,
    /// Every namespace (as kubectl's -A), whatever backout.toml's [[watch]] says.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// How long to wait for the cluster to be listed and every trigger answered.
    #[arg(long, default_value = "20s", value_parser = super::bounded_duration)]
    pub wait: Duration,
}

#[derive(Serialize)]
pub struct Report<'a> {
    pub context: &'a str,
    pub cluster: &'a str,
    pub complete: bool,
    pub sources: Vec<(SourceId, &'a SourceHealth)>,
    /// Triggers asked once per service instead of once for all, and why.
    pub per_service: Vec<(&'a str, &'a str)>,
    pub services: Vec<ServiceReport<'a>>,
}

#[derive(Serialize)]
pub struct ServiceReport<'a> {
    pub service: &'a ServiceKey,
    /// What it runs as (`deployment`, `argo_rollout`): how it is rolled back.
    pub kind: TargetKind,
    pub ready_pods: i32,
    /// Desired replicas: READY reads ready_pods/pods, as in `kubectl get deploy`.
    pub pods: i32,
    pub triggers: Vec<TriggerReport<'a>>,
    pub decision: &'a Decision,
}

#[derive(Serialize)]
pub struct TriggerReport<'a> {
    pub name: &'a str,
    pub data: &'a crate::engine::signals::DataState,
    pub alert: &'a str,
    pub value: Option<f64>,
    pub threshold: f64,
    pub comparison: &'static str,
    pub seconds_left: Option<u64>,
}

pub fn report<'a>(
    state: &'a State,
    context: &'a str,
    cluster: &'a str,
    complete: bool,
) -> Report<'a> {
    let services = state
        .services
        .iter()
        .map(|(key, svc)| ServiceReport {
            service: key,
            kind: svc.deployment.as_ref().map(|d| d.kind).unwrap_or_default(),
            ready_pods: svc.ready_replicas().0,
            pods: svc.ready_replicas().1,
            triggers: state
                .config
                .triggers
                .iter()
                .filter_map(|t| {
                    let ts = svc.triggers.get(&t.name)?;
                    Some(TriggerReport {
                        name: &t.name,
                        data: &ts.data,
                        alert: ts.alert.label(),
                        value: ts.value,
                        threshold: t.threshold,
                        comparison: t.comparison.symbol(),
                        seconds_left: time_left(ts.alert, state.now, t).map(|d| d.as_secs()),
                    })
                })
                .collect(),
            decision: &svc.decision,
        })
        .collect();
    Report {
        context,
        cluster,
        complete,
        sources: state.sources.iter().map(|(k, v)| (*k, v)).collect(),
        per_service: state
            .config
            .triggers
            .iter()
            .filter_map(|t| Some((t.name.as_str(), t.per_service.as_deref()?)))
            .collect(),
        services,
    }
}

fn health(h: &SourceHealth) -> String {
    match h {
        SourceHealth::Connecting => "connecting".into(),
        SourceHealth::Connected => "connected".into(),
        SourceHealth::Retrying { error, .. } => format!("retrying ({error})"),
        SourceHealth::Forbidden(m) => format!("forbidden: {m}"),
        SourceHealth::Unavailable(m) => format!("unavailable: {m}"),
    }
}

fn gate_line(g: &Gate) -> String {
    format!(
        "    {} {} {}: {}",
        if g.passed { "✓" } else { "✗" },
        g.number,
        g.name,
        g.evidence
    )
}

pub fn text(r: &Report) -> String {
    let mut out = format!("context {}  cluster {}\n", r.context, r.cluster);
    let sources: Vec<String> = r
        .sources
        .iter()
        .map(|(s, h)| format!("{} {}", s.label(), health(h)))
        .collect();
    out.push_str(&format!("sources: {}\n", sources.join(" · ")));
    for (trigger, why) in &r.per_service {
        out.push_str(&format!(
            "trigger {trigger} is asked once per service (slow at scale): {why}\n"
        ));
    }
    if !r.complete {
        out.push_str(
            "(incomplete: not every source answered in time; what follows is what arrived)\n",
        );
    }
    for s in &r.services {
        let d = s.decision;
        let rollout = d.rollout.as_ref().map_or("unknown", |r| r.message());
        // A kind without pods says where its traffic goes instead (the rollout line).
        let pods = match s.kind.kube_kind() {
            Some(_) => format!("{}/{} pods ready  ", s.ready_pods, s.pods),
            None => String::new(),
        };
        out.push_str(&format!(
            "\n{}  {}  revision {}  {pods}{rollout}\n",
            s.service,
            s.kind.short(),
            d.current_revision.map_or("?".into(), |r| r.to_string()),
        ));
        let triggers: Vec<String> = s
            .triggers
            .iter()
            .map(|t| {
                let value = t.value.map_or("–".into(), |v| format!("{v:.3}"));
                let left = t
                    .seconds_left
                    .map_or(String::new(), |l| format!(", {l}s left"));
                format!(
                    "{} {} ({}{left}) {value} {} {}",
                    t.name,
                    t.alert,
                    t.data.label(),
                    t.comparison,
                    t.threshold
                )
            })
            .collect();
        out.push_str(&format!("  triggers: {}\n", triggers.join(" · ")));
        let target = d.target.as_ref().map_or("no earlier revision".into(), |t| {
            format!("revision {} ({})", t.revision, t.images.join(", "))
        });
        let confidence = d
            .confidence
            .as_ref()
            .map_or(String::new(), |c| format!(", confidence {:.2}", c.score));
        out.push_str(&format!(
            "  decision: {} → {target}{confidence}\n",
            d.action.label()
        ));
        for g in &d.gates {
            out.push_str(&gate_line(g));
            out.push('\n');
        }
        for why in &d.why_not_automatic {
            out.push_str(&format!("  why not automatic: {why}\n"));
        }
        for advice in &d.advice {
            out.push_str(&format!("  instead: {advice}\n"));
        }
        if let Some(f) = &d.forward {
            out.push_str(&format!("  {}\n", f.summary()));
        }
        for note in &d.blast_radius {
            out.push_str(&format!(
                "  {} {}\n",
                if note.risk { "!" } else { "·" },
                note.text
            ));
        }
    }
    out
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = args.cluster.config()?;
    let opts = crate::app::core::Options {
        observe_only: true,
        all_namespaces: args.all_namespaces,
        ..args.cluster.core_options(None)
    };
    let started = tokio::time::Instant::now();
    let mut core = Core::start_within(config, opts, args.wait, "allow more with --wait").await?;
    let complete = core
        .settle(args.wait.saturating_sub(started.elapsed()))
        .await;
    let (context, cluster) = (core.target.context.clone(), core.target.cluster_url.clone());
    let r = report(&core.state, &context, &cluster, complete);
    if !args.output.print(&r)? {
        print!("{}", text(&r));
    }
    // A picture without metrics is incomplete, however healthy it looks.
    let blind = core.state.blind();
    if let Some(why) = &blind {
        eprintln!("BLIND: {why}");
    }
    Ok(if complete && blind.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
