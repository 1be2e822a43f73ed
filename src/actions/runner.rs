//! The effect runner: the one place side effects happen. It performs what `update`
//! asks for and reports back as messages: failures, so they show instead of
//! vanishing, and every rollback's end. In read-only mode it refuses every write and
//! says why.

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::journal::Journal;
use super::notify::{Notice, Notifiers};
use super::{rollback, verify};
use crate::config::Config;
use crate::engine::msg::{RollbackOrder, RollbackReport};
use crate::engine::rollbacks::{Preview, Step};
use crate::engine::ServiceKey;
use crate::engine::{Effect, Msg};
use crate::sources::prometheus::Prometheus;

/// What the runner needs to act on a cluster.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    /// `user@host`, for the Lease, the change-cause and the Events.
    pub actor: String,
    /// Why writes are refused, if they are.
    pub read_only: Option<String>,
    pub notifiers: Notifiers,
}

pub fn spawn(
    journal: Option<Journal>,
    ctx: Context,
    mut effects: mpsc::Receiver<Effect>,
    tx: mpsc::Sender<Msg>,
) -> JoinHandle<()> {
    let journal = journal.map(|j| Arc::new(Mutex::new(j)));
    tokio::spawn(async move {
        while let Some(effect) = effects.recv().await {
            match effect {
                Effect::Journal(record) => {
                    // Every record is also a structured log line: `backout watch` logs are these.
                    tracing::info!(
                        service = %record.service,
                        incident = record.incident.as_deref().unwrap_or(""),
                        "{}",
                        crate::engine::handoff::line(&record.entry)
                    );
                    let Some(j) = &journal else { continue };
                    let j = j.clone();
                    // fsync blocks: keep it off the async workers.
                    let written = tokio::task::spawn_blocking(move || {
                        j.lock().expect("journal lock").append(&record)
                    })
                    .await;
                    let error = match written {
                        Ok(Ok(())) => continue,
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    };
                    if tx
                        .send(Msg::EffectFailed {
                            what: "journal write".into(),
                            error,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Effect::Page { service, summary } => {
                    tracing::warn!(%service, "page: {summary}");
                    let notice = Notice::Page {
                        service: service.to_string(),
                        summary,
                        incident: None,
                    };
                    // Each on its own task: a slow notifier never holds up the next effect.
                    tokio::spawn(send(ctx.notifiers.clone(), notice, tx.clone()));
                }
                Effect::Rollback(order) => {
                    tokio::spawn(execute(ctx.clone(), order, tx.clone()));
                }
                Effect::Preview {
                    service,
                    to_revision,
                } => {
                    tokio::spawn(preview(ctx.clone(), service, to_revision, tx.clone()));
                }
            }
        }
    })
}

async fn send(notifiers: Notifiers, notice: Notice, tx: mpsc::Sender<Msg>) {
    for d in notifiers.send(&notice).await {
        if let Some(error) = d.error {
            let _ = tx
                .send(Msg::EffectFailed {
                    what: format!("notification via {}", d.channel),
                    error,
                })
                .await;
        }
    }
}

fn request(
    ctx: &Context,
    key: &ServiceKey,
    to_revision: Option<u64>,
    reason: &str,
) -> rollback::Request {
    rollback::Request {
        namespace: key.namespace.clone(),
        deployment: key.name.clone(),
        to_revision,
        reason: reason.into(),
        actor: ctx.actor.clone(),
        incident: None,
    }
}

fn preview_of(plan: &rollback::Plan) -> Preview {
    Preview {
        from_revision: plan.from_revision,
        from_images: plan.from_images.clone(),
        to_revision: plan.to_revision,
        to_images: plan.to_images.clone(),
        already_there: plan.already_there,
        kubectl: plan.kubectl.clone(),
    }
}

/// The dialog's dry run: the same plan and server-side dry run a rollback makes first.
async fn preview(
    ctx: Context,
    service: ServiceKey,
    to_revision: Option<u64>,
    tx: mpsc::Sender<Msg>,
) {
    let result = match &ctx.read_only {
        Some(why) => Err(format!("this console cannot roll back: {why}")),
        None => rollback::prepare(
            &ctx.client,
            &request(&ctx, &service, to_revision, "preview"),
        )
        .await
        .map(|plan| preview_of(&plan))
        .map_err(|e| e.to_string()),
    };
    let _ = tx
        .send(Msg::Previewed {
            service,
            to_revision,
            result,
        })
        .await;
}

/// Prepares, commits, announces and verifies one rollback, reporting each step, then
/// how it ended.
async fn execute(ctx: Context, order: RollbackOrder, tx: mpsc::Sender<Msg>) {
    let (result, checks) = match &ctx.read_only {
        Some(why) => (Err(format!("refused: {why}")), Vec::new()),
        None => match run(&ctx, &order, &tx).await {
            Ok(v) => (Ok(v.outcome), v.checks),
            Err(e) => (Err(e), Vec::new()),
        },
    };
    let report = RollbackReport {
        service: order.service.clone(),
        automatic: order.automatic,
        at: Timestamp::now(),
        by: ctx.actor.clone(),
        result,
        checks,
    };
    let _ = tx.send(Msg::RollbackFinished(report)).await;
}

async fn run(
    ctx: &Context,
    order: &RollbackOrder,
    tx: &mpsc::Sender<Msg>,
) -> Result<verify::Verification, String> {
    let key = &order.service;
    let step = |step: Step| {
        // A full channel only delays the live view; the final report carries everything.
        let _ = tx.try_send(Msg::RollbackStep {
            service: key.clone(),
            step,
        });
    };
    let mut req = request(ctx, key, order.to_revision, &order.reason);
    req.incident = order.incident.clone();
    let plan = rollback::prepare(&ctx.client, &req)
        .await
        .map_err(|e| e.to_string())?;
    step(Step::Prepared(preview_of(&plan)));
    rollback::commit(&ctx.client, &plan, &ctx.actor)
        .await
        .map_err(|e| e.to_string())?;
    step(Step::Committed {
        by: ctx.actor.clone(),
    });
    let notice = Notice::RolledBack {
        service: key.to_string(),
        from_revision: plan.from_revision,
        from_images: plan.from_images.clone(),
        to_revision: plan.to_revision,
        to_images: plan.to_images.clone(),
        trigger: Some(order.reason.clone()),
        by: ctx.actor.clone(),
        reason: order.reason.clone(),
        incident: order.incident.clone(),
    };
    let _ = ctx.notifiers.send(&notice).await;
    let prom = ctx
        .config
        .prometheus
        .as_ref()
        .and_then(|p| Prometheus::new(p).ok());
    let breaching = order
        .fired
        .iter()
        .filter_map(|(name, query)| {
            ctx.config
                .triggers
                .iter()
                .find(|t| &t.name == name)
                .map(|t| (t.clone(), query.clone()))
        })
        .collect();
    let checks =
        verify::Plan::from_config(&ctx.config, &key.namespace, &key.name, &key.name, breaching);
    Ok(verify::verify(&ctx.client, prom.as_ref(), &checks, &|c| {
        step(Step::Checked(c.clone()))
    })
    .await)
}
