//! The kill switch as a rollback: which `[[flag]]` of a Deployment is in play, read
//! afresh before every dry run and rollback, and turning it off (the template stays).

use tokio::sync::mpsc;

use super::execute::{announce, journal_intent, prepared, rolled_back, Landed};
use super::runner::{Context, SharedJournal};
use crate::config::flags::FlagConfig;
use crate::engine::model::flags::FlagState;
use crate::engine::msg::RollbackOrder;
use crate::engine::rollbacks::{Expected, RollbackError};
use crate::engine::{Msg, ServiceKey};
use crate::targets::flag;

/// The `[[flag]]` whose kill switch this rollback is, read afresh: the one the
/// engineer confirmed, or with nothing confirmed, one of the Deployment's flags turned
/// on within the onset window. `None`: the rollback is the template's.
pub(super) async fn find<'a>(
    ctx: &'a Context,
    key: &ServiceKey,
    expected: Option<&Expected>,
) -> Option<(&'a FlagConfig, FlagState)> {
    let pinned = match expected {
        Some(e) => Some(e.from_replicaset.strip_prefix("flag:")?),
        None => None,
    };
    let (now, window) = (jiff::Timestamp::now(), ctx.config.policy.onset_window);
    let mut found = None;
    for cfg in ctx
        .config
        .flags
        .iter()
        .filter(|f| f.covers(&key.namespace, &key.name))
    {
        if pinned.is_some_and(|name| name != cfg.name) {
            continue;
        }
        let read = flag::read_afresh(cfg, key.clone()).await;
        let on_at = read.turned_on_within(now, window);
        let newer = |f: &Option<(_, _, jiff::Timestamp)>| {
            f.as_ref().is_none_or(|(_, _, t)| on_at > Some(*t))
        };
        match (pinned, on_at) {
            (Some(_), _) => return Some((cfg, read)),
            (None, Some(at)) if newer(&found) => found = Some((cfg, read, at)),
            _ => {}
        }
    }
    found.map(|(cfg, read, _)| (cfg, read))
}

/// The revision the Deployment is at, as its annotation says (0 when unread).
pub(super) async fn current_revision(ctx: &Context, key: &ServiceKey) -> u64 {
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(ctx.client.clone(), &key.namespace);
    api.get(&key.name)
        .await
        .map(|d| crate::engine::kept::revision(&d.metadata))
        .unwrap_or(0)
}

/// A kill switch: the flag read afresh must still be on; the intent journaled, then
/// the one call that turns it off. The template stays.
pub(super) async fn land(
    ctx: &Context,
    order: &RollbackOrder,
    (cfg, read): (&FlagConfig, &FlagState),
    tx: &mpsc::Sender<Msg>,
    journal: &SharedJournal,
) -> Result<Landed, RollbackError> {
    let key = &order.service;
    let preview = flag::preview(cfg, read, current_revision(ctx, key).await)?;
    if preview.already_there {
        return Ok(Landed::AlreadyThere);
    }
    prepared(tx, key, &preview).await;
    journal_intent(ctx, order, &preview, tx, journal).await;
    let http = flag::http(cfg).map_err(RollbackError::Api)?;
    flag::kill(&http, cfg).await?;
    let message = format!(
        "{} turned off flag {} ({}, {}) for deployment {}: {}",
        ctx.actor, cfg.name, cfg.project, cfg.environment, key.name, order.reason
    );
    announce(ctx, key, ("Deployment", "apps/v1"), message).await;
    Ok(Landed::Done(rolled_back(ctx, order, preview)))
}
