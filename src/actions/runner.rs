//! The effect runner: the one place side effects happen. It performs what `update`
//! asks for and reports back as messages: failures, so they show instead of
//! vanishing, and every rollback's end. In read-only mode it refuses every write and
//! says why.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use std::collections::HashMap;
use std::time::Duration;

use super::journal::Journal;
use super::notify::{Notice, Notifiers};
use super::{lease, rollback};
use crate::config::Config;
use crate::engine::msg::RollbackOrder;
use crate::engine::rollbacks::{Check, Expected, Preview, RollbackError, Step};
use crate::engine::ServiceKey;
use crate::engine::{Effect, Msg};

/// The Leases this process holds for rollbacks being verified.
type Leases = Arc<Mutex<HashMap<ServiceKey, lease::Held>>>;

/// What the runner needs to act on a cluster.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    /// `user@host`, for the change-cause and the Events.
    pub actor: String,
    /// `user@host#process`: the Lease holder, never shared with another process.
    pub holder: String,
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
    let leases = Leases::default();
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
                    if tx.send(Msg::JournalFailed { error }).await.is_err() {
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
                    tokio::spawn(send(
                        ctx.notifiers.clone(),
                        Some(service),
                        notice,
                        tx.clone(),
                    ));
                }
                Effect::Rollback(order) => {
                    tokio::spawn(execute(ctx.clone(), order, tx.clone(), leases.clone()));
                }
                Effect::Probe { service } => {
                    tokio::spawn(probe(ctx.clone(), service, tx.clone()));
                }
                Effect::ReleaseLease { service } => {
                    let held = leases.lock().expect("lease map").remove(&service);
                    if let Some(held) = held {
                        held.give_back().await;
                    }
                }
                Effect::Preview {
                    service,
                    to_revision,
                    to_replicaset,
                } => {
                    let req = rollback::Request {
                        to_replicaset,
                        ..request(&ctx, &service, to_revision, "preview")
                    };
                    tokio::spawn(preview(ctx.clone(), service, req, tx.clone()));
                }
            }
        }
    })
}

/// Sends a notice on every channel and reports each delivery, so the journal keeps
/// every one, whichever path (console, CLI, watcher) asked for it.
async fn send(
    notifiers: Notifiers,
    service: Option<ServiceKey>,
    notice: Notice,
    tx: mpsc::Sender<Msg>,
) {
    for d in notifiers.send(&notice).await {
        let _ = tx
            .send(Msg::Notified {
                service: service.clone(),
                channel: d.channel.into(),
                attempts: d.attempts,
                error: d.error,
            })
            .await;
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
        to_replicaset: None,
        reason: reason.into(),
        actor: ctx.actor.clone(),
        incident: None,
        automatic: false,
        expected: None,
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
        resource_version: plan.resource_version.clone(),
        to_replicaset: plan.to_replicaset.clone(),
        from_replicaset: plan.from_replicaset.clone(),
    }
}

/// The dialog's dry run: the same plan and server-side dry run a rollback makes first.
async fn preview(ctx: Context, service: ServiceKey, req: rollback::Request, tx: mpsc::Sender<Msg>) {
    let to_revision = req.to_revision;
    let result = match &ctx.read_only {
        Some(why) => Err(format!("this console cannot roll back: {why}")),
        None => rollback::prepare(&ctx.client, &req)
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

/// Takes the Lease, then plans from a fresh read, dry-runs and patches, reporting each
/// step. The Lease stays held (renewed) until the engine's verification ends and asks
/// for it back; on any failure it is given back at once.
async fn execute(ctx: Context, order: RollbackOrder, tx: mpsc::Sender<Msg>, leases: Leases) {
    let key = order.service.clone();
    let outcome = match &ctx.read_only {
        Some(why) => Err(RollbackError::ReadOnly(format!("refused: {why}"))),
        None => run(&ctx, &order, &tx, &leases).await,
    };
    let msg = match outcome {
        Ok(step) => Msg::RollbackStep { service: key, step },
        Err(error) => Msg::RollbackFailed {
            service: key,
            error,
        },
    };
    let _ = tx.send(msg).await;
}

async fn run(
    ctx: &Context,
    order: &RollbackOrder,
    tx: &mpsc::Sender<Msg>,
    leases: &Leases,
) -> Result<Step, RollbackError> {
    let key = &order.service;
    let claim = lease::claim(
        &ctx.client,
        &key.namespace,
        &key.name,
        &ctx.holder,
        rollback::LEASE_HOLD,
    )
    .await
    .map_err(|e| RollbackError::Api(e.to_string()))?;
    if let lease::Claim::HeldBy { holder, since } = claim {
        return Err(RollbackError::Held {
            deployment: key.name.clone(),
            holder,
            since,
        });
    }
    let mut req = request(ctx, key, order.to_revision, &order.reason);
    req.incident = order.incident.clone();
    req.automatic = order.automatic;
    req.to_replicaset = order.expected.as_ref().map(|e| e.to_replicaset.clone());
    req.expected = order.expected.clone();
    let (plan, done) = match attempt(ctx, &mut req, tx, key).await {
        Ok(ok) => ok,
        Err(e) => {
            lease::release(&ctx.client, &key.namespace, &key.name, &ctx.holder).await;
            return Err(e);
        }
    };
    if done == rollback::Done::AlreadyThere {
        lease::release(&ctx.client, &key.namespace, &key.name, &ctx.holder).await;
        return Ok(Step::AlreadyThere);
    }
    let held = lease::hold(
        ctx.client.clone(),
        key.namespace.clone(),
        key.name.clone(),
        ctx.holder.clone(),
        rollback::LEASE_HOLD,
    );
    leases.lock().expect("lease map").insert(key.clone(), held);
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
    tokio::spawn(send(
        ctx.notifiers.clone(),
        Some(key.clone()),
        notice,
        tx.clone(),
    ));
    Ok(Step::Committed {
        by: ctx.actor.clone(),
    })
}

/// Dry-runs, reports the plan, then patches from a fresh read. The dry run pins what
/// the rollback replaces and where it goes, so the patch guards the same templates.
async fn attempt(
    ctx: &Context,
    req: &mut rollback::Request,
    tx: &mpsc::Sender<Msg>,
    key: &ServiceKey,
) -> Result<(rollback::Plan, rollback::Done), RollbackError> {
    let plan = rollback::prepare(&ctx.client, req).await?;
    if req.expected.is_none() {
        req.expected = Some(Expected::of(&preview_of(&plan)));
        req.to_replicaset = Some(plan.to_replicaset.clone());
    }
    let _ = tx
        .send(Msg::RollbackStep {
            service: key.clone(),
            step: Step::Prepared(preview_of(&plan)),
        })
        .await;
    rollback::commit(&ctx.client, req, &ctx.actor).await
}

/// The health URLs configured for the service: the last checks of a verification.
async fn probe(ctx: Context, service: ServiceKey, tx: mpsc::Sender<Msg>) {
    let timeout = ctx
        .config
        .prometheus
        .as_ref()
        .map_or(Duration::from_secs(5), |p| p.poll_interval)
        .max(Duration::from_secs(2));
    let http = reqwest::Client::builder().timeout(timeout).build().ok();
    let mut checks = Vec::new();
    for h in ctx
        .config
        .health_checks
        .iter()
        .filter(|h| h.deployment == service.name)
    {
        let got = match &http {
            Some(c) => c.get(&h.url).send().await.map(|r| r.status().as_u16()).ok(),
            None => None,
        };
        checks.push(Check {
            name: "health URL".into(),
            passed: got == Some(h.status),
            detail: format!(
                "{} answered {}; expected {}",
                h.url,
                got.map_or("nothing".into(), |s| s.to_string()),
                h.status
            ),
        });
    }
    let _ = tx
        .send(Msg::RollbackStep {
            service,
            step: Step::Probed(checks),
        })
        .await;
}
