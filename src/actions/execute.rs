//! A rollback order carried out, and the dialog's dry run: the Lease first, then a
//! plan from a fresh read, the server's dry run, the one guarded patch and the Event.
//! A Deployment that is the live colour of a configured blue-green Service is rolled
//! back by switching the Service; any other by undoing its template. Which one is
//! read from the cluster each time, never remembered. Other kinds revert their own
//! way (`crate::targets`): an Argo Rollout aborts its canary, or undoes; a Lambda or
//! MLflow alias shifts back (`alias_shift`), without a Lease (the alias lives in no
//! namespace of the cluster); a flag turned on lately is turned off.

use tokio::sync::mpsc;

use super::notify::Notice;
use super::runner::{append, send_notice, Context, Leases, SharedJournal};
use super::{access, alias_shift, bluegreen, kill_switch, lease, rollback};
use crate::config::gitops::GitOpsConfig;
use crate::engine::journal::{Entry, Record};
use crate::engine::msg::RollbackOrder;
use crate::engine::rollbacks::{Expected, Preview, RollbackError, Step};
use crate::engine::{Msg, ServiceKey};
use crate::targets::{argo_rollout, flag, gitops, TargetKind};

pub(super) fn request(
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
        switch: None,
        abort: false,
        revert: None,
        flag: None,
    }
}

/// The blue-green switch for `key`, if a configured Service has it as its live colour,
/// with the patch permission checked.
async fn switch_plan(
    ctx: &Context,
    key: &ServiceKey,
    to: Option<&str>,
) -> Result<Option<bluegreen::SwitchPlan>, RollbackError> {
    let blue_green = &ctx.config.blue_green;
    let Some(plan) =
        bluegreen::plan(&ctx.client, blue_green, &key.namespace, &key.name, to).await?
    else {
        return Ok(None);
    };
    access::may_patch(&ctx.client, &key.namespace, "", "services")
        .await
        .map_err(RollbackError::ReadOnly)?;
    Ok(Some(plan))
}

/// The dialog's dry run: the same plan and server-side dry run a rollback makes first.
pub(super) async fn preview(
    ctx: Context,
    (service, kind): (ServiceKey, TargetKind),
    req: rollback::Request,
    switch_to: Option<String>,
    tx: mpsc::Sender<Msg>,
) {
    let to_revision = req.to_revision;
    let result = match (&ctx.read_only, kind) {
        (Some(why), _) => Err(format!("this console cannot roll back: {why}")),
        (None, TargetKind::ArgoRollout) => {
            rollout_dry_run(&ctx, &req).await.map_err(|e| e.to_string())
        }
        (None, k) if k.kube_kind().is_none() => alias_shift::plan(&ctx, kind, &service, &req)
            .await
            .map(|(_, plan)| plan.preview)
            .map_err(|e| e.to_string()),
        (None, _) => dry_run(&ctx, &service, &req, switch_to.as_deref())
            .await
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

/// The `[[gitops]]` entry of a Deployment a GitOps controller syncs from Git.
fn gitops_for<'a>(ctx: &'a Context, key: &ServiceKey) -> Option<&'a GitOpsConfig> {
    ctx.config
        .gitops
        .iter()
        .find(|g| g.covers(&key.namespace, &key.name))
}

async fn dry_run(
    ctx: &Context,
    key: &ServiceKey,
    req: &rollback::Request,
    switch_to: Option<&str>,
) -> Result<Preview, RollbackError> {
    if let Some((cfg, read)) = kill_switch::find(ctx, key, None).await {
        return flag::preview(cfg, &read, kill_switch::current_revision(ctx, key).await);
    }
    if let Some(cfg) = gitops_for(ctx, key) {
        return Ok(gitops::plan(&ctx.client, cfg, req).await?.preview);
    }
    if let Some(plan) = switch_plan(ctx, key, switch_to).await? {
        bluegreen::apply(&ctx.client, &plan, true).await?;
        return Ok(plan.preview());
    }
    rollback::prepare(&ctx.client, req)
        .await
        .map(|plan| preview_of(&plan))
}

async fn rollout_dry_run(ctx: &Context, req: &rollback::Request) -> Result<Preview, RollbackError> {
    let plan = argo_rollout::revert::plan(&ctx.client, req).await?;
    if !plan.preview.already_there {
        argo_rollout::revert::apply(&ctx.client, &plan, true).await?;
    }
    Ok(plan.preview)
}

/// Takes the Lease, then plans from a fresh read, dry-runs and patches, reporting each
/// step. The Lease stays held (renewed) until the engine's verification ends and asks
/// for it back; on any failure it is given back at once.
pub(super) async fn execute(
    ctx: Context,
    order: RollbackOrder,
    tx: mpsc::Sender<Msg>,
    leases: Leases,
    journal: SharedJournal,
) {
    let key = order.service.clone();
    let outcome = match &ctx.read_only {
        Some(why) => Err(RollbackError::ReadOnly(format!("refused: {why}"))),
        None => run(&ctx, &order, &tx, &leases, &journal).await,
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

/// How the patch ended, once it was sent.
pub(super) enum Landed {
    AlreadyThere,
    /// It landed; the team is told this.
    Done(Notice),
}

async fn run(
    ctx: &Context,
    order: &RollbackOrder,
    tx: &mpsc::Sender<Msg>,
    leases: &Leases,
    journal: &SharedJournal,
) -> Result<Step, RollbackError> {
    let key = &order.service;
    if order.kind.kube_kind().is_none() {
        return match alias_shift::land(ctx, order, tx, journal).await? {
            Landed::AlreadyThere => Ok(Step::AlreadyThere),
            Landed::Done(notice) => Ok(committed(ctx, key, notice, tx)),
        };
    }
    let release = || lease::release(&ctx.client, &key.namespace, &key.name, &ctx.holder);
    let claim = lease::claim(
        &ctx.client,
        &key.namespace,
        &key.name,
        &ctx.holder,
        ctx.config.policy.lease_duration,
    )
    .await
    .map_err(|e| RollbackError::Api(e.to_string()))?;
    if let lease::Claim::HeldBy {
        holder,
        since,
        expires,
    } = claim
    {
        return Err(RollbackError::Held {
            deployment: key.name.clone(),
            holder,
            since,
            expires,
        });
    }
    let notice = match land(ctx, order, tx, journal).await {
        Ok(Landed::Done(notice)) => notice,
        Ok(Landed::AlreadyThere) => {
            release().await;
            return Ok(Step::AlreadyThere);
        }
        Err(e) => {
            release().await;
            return Err(e);
        }
    };
    let held = lease::hold(
        ctx.client.clone(),
        key.namespace.clone(),
        key.name.clone(),
        ctx.holder.clone(),
        ctx.config.policy.lease_duration,
    );
    leases.lock().expect("lease map").insert(key.clone(), held);
    Ok(committed(ctx, key, notice, tx))
}

/// The revert landed: the team is told (off this task), and the engine hears so.
fn committed(ctx: &Context, key: &ServiceKey, notice: Notice, tx: &mpsc::Sender<Msg>) -> Step {
    tokio::spawn(send_notice(
        ctx.notifiers.clone(),
        Some(key.clone()),
        notice,
        tx.clone(),
    ));
    Step::Committed {
        by: ctx.actor.clone(),
        at: jiff::Timestamp::now(),
    }
}

/// The request an order makes, pinned to what was previewed.
pub(super) fn ordered(
    ctx: &Context,
    order: &RollbackOrder,
    to_revision: Option<u64>,
) -> rollback::Request {
    let mut req = request(ctx, &order.service, to_revision, &order.reason);
    req.incident = order.incident.clone();
    req.automatic = order.automatic;
    req.to_replicaset = order.expected.as_ref().map(|e| e.to_replicaset.clone());
    req.expected = order.expected.clone();
    req
}

/// A GitOps Deployment's revert: the same steps as an undo (plan from a fresh read
/// and a fresh clone, the revert tried, the intent journaled), then the push.
async fn land_gitops(
    ctx: &Context,
    cfg: &GitOpsConfig,
    order: &RollbackOrder,
    tx: &mpsc::Sender<Msg>,
    journal: &SharedJournal,
) -> Result<Landed, RollbackError> {
    let key = &order.service;
    let req = ordered(ctx, order, order.to_revision);
    let plan = gitops::plan(&ctx.client, cfg, &req).await?;
    let preview = plan.preview.clone();
    prepared(tx, key, &preview).await;
    journal_intent(ctx, order, &preview, tx, journal).await;
    gitops::apply(cfg, &plan, &req).await?;
    let revert = preview.revert.as_deref().expect("a GitOps plan");
    let message = format!(
        "{} reverted commit {:.12} (\"{}\") in {} ({}) to roll deployment {} back to {}: {}",
        ctx.actor,
        revert.commit,
        revert.subject,
        revert.repo,
        revert.branch,
        key.name,
        preview.to_images.join(", "),
        order.reason
    );
    announce(ctx, key, ("Deployment", "apps/v1"), message).await;
    Ok(Landed::Done(rolled_back(ctx, order, preview)))
}

/// An Argo Rollout's revert: the same steps as a Deployment's undo (plan from a
/// fresh read, dry run, journal the intent, one guarded patch), by its own plan.
async fn land_rollout(
    ctx: &Context,
    order: &RollbackOrder,
    tx: &mpsc::Sender<Msg>,
    journal: &SharedJournal,
) -> Result<Landed, RollbackError> {
    let key = &order.service;
    let req = ordered(ctx, order, order.to_revision);
    let plan = argo_rollout::revert::plan(&ctx.client, &req).await?;
    let preview = plan.preview.clone();
    if preview.already_there {
        return Ok(Landed::AlreadyThere);
    }
    argo_rollout::revert::apply(&ctx.client, &plan, true).await?;
    prepared(tx, key, &preview).await;
    journal_intent(ctx, order, &preview, tx, journal).await;
    argo_rollout::revert::apply(&ctx.client, &plan, false).await?;
    let verb = if plan.abort {
        "aborted the canary of"
    } else {
        "rolled back"
    };
    let message = format!(
        "{} {verb} rollout {} from revision {} ({}) to revision {} ({}): {}",
        ctx.actor,
        key.name,
        preview.from_revision,
        preview.from_images.join(", "),
        preview.to_revision,
        preview.to_images.join(", "),
        order.reason
    );
    announce(ctx, key, ("Rollout", "argoproj.io/v1alpha1"), message).await;
    Ok(Landed::Done(rolled_back(ctx, order, preview)))
}

/// Plans, reports the plan, and sends the patch: a switch for a live blue-green
/// colour, otherwise the Deployment's own rollback.
async fn land(
    ctx: &Context,
    order: &RollbackOrder,
    tx: &mpsc::Sender<Msg>,
    journal: &SharedJournal,
) -> Result<Landed, RollbackError> {
    let key = &order.service;
    if let Some((cfg, read)) = kill_switch::find(ctx, key, order.expected.as_ref()).await {
        return kill_switch::land(ctx, order, (cfg, &read), tx, journal).await;
    }
    if order.kind == TargetKind::ArgoRollout {
        return land_rollout(ctx, order, tx, journal).await;
    }
    if let Some(cfg) = gitops_for(ctx, key) {
        return land_gitops(ctx, cfg, order, tx, journal).await;
    }
    let previewed = order.expected.as_ref().and_then(|e| e.switch.as_ref());
    let prepared = |preview| Msg::RollbackStep {
        service: key.clone(),
        step: Step::Prepared(preview),
    };
    if let Some(plan) = switch_plan(ctx, key, previewed.map(|s| s.to.as_str())).await? {
        let plan = bluegreen::pin(plan, previewed)?;
        bluegreen::apply(&ctx.client, &plan, true).await?;
        let _ = tx.send(prepared(plan.preview())).await;
        bluegreen::apply(&ctx.client, &plan, false).await?;
        bluegreen::announce(&ctx.client, &plan, &ctx.actor).await;
        let s = &plan.switch;
        return Ok(Landed::Done(Notice::Page {
            service: key.to_string(),
            summary: format!(
                "{} switched service {} {} from {} back to {}: {}",
                ctx.actor, s.service, s.label, s.from, s.to, order.reason
            ),
            incident: order.incident.clone(),
        }));
    }
    if let Some(s) = previewed {
        return Err(RollbackError::Conflict(format!(
            "{} (service {} no longer sends it traffic)",
            key.name, s.service
        )));
    }
    // Without a revision the engine meant a switch: "previous" may be known bad.
    let Some(to_revision) = order.to_revision else {
        return Err(RollbackError::NoHistory(key.name.clone()));
    };
    let mut req = ordered(ctx, order, Some(to_revision));
    // The dry run pins what the rollback replaces and where it goes, so the patch
    // guards the same templates.
    let plan = rollback::prepare(&ctx.client, &req).await?;
    if req.expected.is_none() {
        req.expected = Some(Expected::of(&preview_of(&plan)));
        req.to_replicaset = Some(plan.to_replicaset.clone());
    }
    let _ = tx.send(prepared(preview_of(&plan))).await;
    if !plan.already_there {
        journal_intent(ctx, order, &preview_of(&plan), tx, journal).await;
    }
    let (plan, done) = rollback::commit(&ctx.client, &req, plan, &ctx.actor).await?;
    if done == rollback::Done::AlreadyThere {
        return Ok(Landed::AlreadyThere);
    }
    Ok(Landed::Done(rolled_back(ctx, order, preview_of(&plan))))
}

/// The plan, dry-run, reported to the engine (and the dialog).
pub(super) async fn prepared(tx: &mpsc::Sender<Msg>, key: &ServiceKey, preview: &Preview) {
    let step = Step::Prepared(preview.clone());
    let _ = tx
        .send(Msg::RollbackStep {
            service: key.clone(),
            step,
        })
        .await;
}

/// The `BackoutRollback` Event every console's timeline shows, on the object of
/// `kind` (kind, apiVersion). A lost Event is reported, never undoes the rollback.
pub(super) async fn announce(ctx: &Context, key: &ServiceKey, kind: (&str, &str), message: String) {
    let (kind, api_version) = kind;
    let posted = rollback::post_event(
        &ctx.client,
        &key.namespace,
        kind,
        api_version,
        &key.name,
        None,
        message,
        &ctx.actor,
    )
    .await;
    if let Err(e) = posted {
        tracing::warn!("reverted, but the BackoutRollback Event was not posted: {e}");
    }
}

/// The intent, journaled before the patch: a process that dies after sending it
/// leaves a record of what it was doing.
pub(super) async fn journal_intent(
    ctx: &Context,
    order: &RollbackOrder,
    preview: &Preview,
    tx: &mpsc::Sender<Msg>,
    journal: &SharedJournal,
) {
    let intent = Record {
        at: jiff::Timestamp::now(),
        incident: order.incident.clone(),
        service: order.service.to_string(),
        entry: Entry::RollbackIntent {
            from_revision: preview.from_revision,
            to_revision: preview.to_revision,
            by: ctx.actor.clone(),
            reason: order.reason.clone(),
            automatic: order.automatic,
        },
    };
    append(journal, intent, tx).await;
}

/// What the team is told once the patch landed.
pub(super) fn rolled_back(ctx: &Context, order: &RollbackOrder, preview: Preview) -> Notice {
    Notice::RolledBack {
        service: order.service.to_string(),
        from_revision: preview.from_revision,
        from_images: preview.from_images,
        to_revision: preview.to_revision,
        to_images: preview.to_images,
        trigger: Some(order.reason.clone()),
        by: ctx.actor.clone(),
        reason: order.reason.clone(),
        incident: order.incident.clone(),
    }
}
