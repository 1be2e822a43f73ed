//! The versioned aliases' revert (a Lambda alias, an MLflow model alias, the image a
//! Compose service runs): the entry
//! of the service, a client for it, the shift planned from a fresh read (neither API
//! has a dry run: this read is the check), and the writes that make it.

use crate::actions::rollback::Request;
use crate::config::compose::ComposeConfig;
use crate::config::lambda::LambdaConfig;
use crate::config::model::ModelConfig;
use crate::engine::lineage::RollbackRecord;
use crate::engine::rollbacks::RollbackError;
use crate::engine::ServiceKey;
use crate::targets::alias::Plan;
use crate::targets::{compose, lambda, model, TargetKind};

use tokio::sync::mpsc;

use super::execute::{journal_intent, ordered, prepared, rolled_back, Landed};
use super::runner::{Context, SharedJournal};
use crate::engine::msg::RollbackOrder;
use crate::engine::Msg;

/// The alias of a service, with the client that writes it.
pub(super) enum Target<'a> {
    Lambda(&'a LambdaConfig, aws_sdk_lambda::Client),
    Model(&'a ModelConfig, reqwest::Client),
    Compose(&'a ComposeConfig, compose::engine::Engine),
}

/// The service's configured alias, read afresh and planned.
pub(super) async fn plan<'a>(
    ctx: &'a Context,
    kind: TargetKind,
    key: &ServiceKey,
    req: &Request,
) -> Result<(Target<'a>, Plan), RollbackError> {
    let missing = |section: &str| RollbackError::NotFound(format!("[[{section}]] entry for {key}"));
    match kind {
        TargetKind::LambdaAlias => {
            let cfg = (ctx.config.lambda.iter())
                .find(|l| l.namespace == key.namespace && l.service() == key.name)
                .ok_or_else(|| missing("lambda"))?;
            let client = lambda::aws::client(cfg).await.map_err(RollbackError::Api)?;
            let plan = lambda::revert::plan(&client, cfg, req).await?;
            Ok((Target::Lambda(cfg, client), plan))
        }
        TargetKind::ComposeService => {
            let cfg = (ctx.config.compose.iter())
                .find(|c| c.namespace() == key.namespace && c.service() == key.name)
                .ok_or_else(|| missing("compose"))?;
            let engine = compose::engine::client(cfg).map_err(RollbackError::Api)?;
            let plan = compose::revert::plan(&engine, cfg, req).await?;
            Ok((Target::Compose(cfg, engine), plan))
        }
        _ => {
            let cfg = (ctx.config.models.iter())
                .find(|m| m.namespace == key.namespace && m.service() == key.name)
                .ok_or_else(|| missing("model"))?;
            let http = model::http(cfg).map_err(RollbackError::Api)?;
            let plan = model::plan(&http, cfg, req).await?;
            Ok((Target::Model(cfg, http), plan))
        }
    }
}

/// Makes the planned shift, leaving `record` where every process reads it.
pub(super) async fn apply(
    target: &Target<'_>,
    plan: &Plan,
    record: &RollbackRecord,
) -> Result<(), RollbackError> {
    match target {
        Target::Lambda(cfg, client) => lambda::revert::apply(client, cfg, plan, record).await,
        Target::Model(cfg, http) => model::apply(http, cfg, plan, record).await,
        Target::Compose(cfg, engine) => compose::revert::apply(engine, cfg, plan, record).await,
    }
}

/// An alias's shift: planned from a fresh read, the intent journaled, then the
/// known-bad mark and the guarded move.
pub(super) async fn land(
    ctx: &Context,
    order: &RollbackOrder,
    tx: &mpsc::Sender<Msg>,
    journal: &SharedJournal,
) -> Result<Landed, RollbackError> {
    let key = &order.service;
    let req = ordered(ctx, order, order.to_revision);
    let (target, plan) = plan(ctx, order.kind, key, &req).await?;
    let preview = plan.preview.clone();
    if preview.already_there {
        return Ok(Landed::AlreadyThere);
    }
    prepared(tx, key, &preview).await;
    journal_intent(ctx, order, &preview, tx, journal).await;
    let record = RollbackRecord {
        revision: preview.to_revision,
        from_replicaset: plan.from.clone(),
        to_replicaset: plan.to.clone(),
        at: jiff::Timestamp::now(),
        by: ctx.actor.clone(),
        reason: order.reason.clone(),
        automatic: order.automatic,
        incident: order.incident.clone(),
    };
    apply(&target, &plan, &record).await?;
    Ok(Landed::Done(rolled_back(ctx, order, preview)))
}
