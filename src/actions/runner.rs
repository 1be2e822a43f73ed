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
use super::{execute, lease, rollback};
use crate::config::Config;
use crate::engine::journal::Record;
use crate::engine::rollbacks::{Check, Step};
use crate::engine::ServiceKey;
use crate::engine::{Effect, Msg};

/// The Leases this process holds for rollbacks being verified.
pub(super) type Leases = Arc<Mutex<HashMap<ServiceKey, lease::Held>>>;

/// The journal, shared by the runner's loop and the rollbacks it runs.
pub(super) type SharedJournal = Option<Arc<Mutex<Journal>>>;

/// Appends one record (also a structured log line: `backout watch` logs are these).
/// A failed write is reported as a message; false when the core is gone.
pub(super) async fn append(
    journal: &SharedJournal,
    record: Record,
    tx: &mpsc::Sender<Msg>,
) -> bool {
    tracing::info!(
        service = %record.service,
        incident = record.incident.as_deref().unwrap_or(""),
        "{}",
        crate::engine::handoff::line(&record.entry)
    );
    let Some(j) = journal.clone() else {
        return true;
    };
    // fsync blocks: keep it off the async workers.
    let written =
        tokio::task::spawn_blocking(move || j.lock().expect("journal lock").append(&record)).await;
    let error = match written {
        Ok(Ok(())) => return true,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tx.send(Msg::JournalFailed { error }).await.is_ok()
}

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
                    if !append(&journal, record, &tx).await {
                        return;
                    }
                }
                Effect::CheckImages { images } => {
                    let (registries, tx) = (ctx.config.registry.clone(), tx.clone());
                    tokio::spawn(async move {
                        let answers = super::registry::check(&registries, images).await;
                        let _ = tx.send(Msg::ImagesChecked(answers)).await;
                    });
                }
                Effect::Resolve {
                    service,
                    summary,
                    incident,
                } => {
                    let notice = Notice::Resolved {
                        service: service.to_string(),
                        summary,
                        incident,
                    };
                    tokio::spawn(send_notice(
                        ctx.notifiers.clone(),
                        Some(service),
                        notice,
                        tx.clone(),
                    ));
                }
                Effect::Page { service, summary } => {
                    tracing::warn!(%service, "page: {summary}");
                    let notice = Notice::Page {
                        service: service.to_string(),
                        summary,
                        incident: None,
                    };
                    // Each on its own task: a slow notifier never holds up the next effect.
                    tokio::spawn(send_notice(
                        ctx.notifiers.clone(),
                        Some(service),
                        notice,
                        tx.clone(),
                    ));
                }
                Effect::Rollback(order) => {
                    let (ctx, tx, leases) = (ctx.clone(), tx.clone(), leases.clone());
                    let journal = journal.clone();
                    tokio::spawn(execute::execute(ctx, order, tx, leases, journal));
                }
                Effect::Probe { service, names } => {
                    tokio::spawn(probe(ctx.clone(), service, names, tx.clone()));
                }
                Effect::ReleaseLease { service } => {
                    let held = leases.lock().expect("lease map").remove(&service);
                    if let Some(held) = held {
                        held.give_back().await;
                    }
                }
                Effect::Preview {
                    service,
                    kind,
                    to_revision,
                    to_replicaset,
                    switch_to,
                } => {
                    let req = rollback::Request {
                        to_replicaset,
                        ..execute::request(&ctx, &service, to_revision, "preview")
                    };
                    let (ctx, tx) = (ctx.clone(), tx.clone());
                    tokio::spawn(execute::preview(ctx, (service, kind), req, switch_to, tx));
                }
            }
        }
    })
}

/// Sends a notice on every channel and reports each delivery, so the journal keeps
/// every one, whichever path (console, CLI, watcher) asked for it.
pub(super) async fn send_notice(
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

/// The health URLs configured under `names` (the Deployment, or the blue-green
/// Service it switched): the last checks of a verification.
async fn probe(ctx: Context, service: ServiceKey, names: Vec<String>, tx: mpsc::Sender<Msg>) {
    let timeout = ctx
        .config
        .prometheus
        .as_ref()
        .map_or(Duration::from_secs(5), |p| p.poll_interval)
        .max(Duration::from_secs(2));
    let http = reqwest::Client::builder().timeout(timeout).build();
    let mut checks = Vec::new();
    for h in ctx
        .config
        .health_checks
        .iter()
        .filter(|h| names.contains(&h.deployment))
    {
        let url = crate::redact::url(&h.url);
        // Why a check got no status is part of the evidence: refused, timed out, TLS.
        let got = match &http {
            Ok(c) => c
                .get(&h.url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                // The URL is shown redacted above; the error must not repeat it whole.
                .map_err(|e| format!("{:#}", anyhow::Error::from(e.without_url()))),
            Err(e) => Err(format!("no HTTP client: {e}")),
        };
        let detail = match &got {
            Ok(status) => format!("{url} answered {status}; expected {}", h.status),
            Err(why) => format!("{url} answered nothing ({why}); expected {}", h.status),
        };
        checks.push(Check {
            name: "health URL".into(),
            passed: got.as_ref().ok() == Some(&h.status),
            detail,
        });
    }
    let _ = tx
        .send(Msg::RollbackStep {
            service,
            step: Step::Probed(checks),
        })
        .await;
}
