//! Rolling a Compose service back: planned from a fresh read (the engine has no dry
//! run: this read is the check), then the image rolled back from is marked, then each
//! container is swapped onto the target image. A crash between the mark and the swaps
//! leaves an image marked bad that still runs: the retry finds it so and swaps; one
//! within a swap leaves a container set aside, which the retry finishes. The
//! plan is pinned by the containers it read: any container made or removed since is
//! a conflict, never a blind write.

pub use crate::targets::alias::Plan;

use super::engine::{self, Engine};
use super::{known_bad_repository, known_bad_tag, recreate};
use crate::actions::rollback::Request;
use crate::config::compose::ComposeConfig;
use crate::engine::lineage::RollbackRecord;
use crate::engine::rollbacks::RollbackError;
use crate::targets::alias::plan_from;

/// Reads the service afresh and plans the rollback. A swap cut short (a container
/// set aside, or one on the target that does not run) is not "already there": the
/// plan finishes it.
pub async fn plan(
    engine: &Engine,
    cfg: &ComposeConfig,
    req: &Request,
) -> Result<Plan, RollbackError> {
    let read = engine::read(engine, cfg)
        .await
        .map_err(RollbackError::from)?;
    let unfinished = !read.leftovers.is_empty() || read.containers.iter().any(|c| !c.running);
    let mut plan = plan_from(read.alias, req)?;
    if plan.preview.already_there && unfinished {
        plan.preview.already_there = false;
    }
    Ok(plan)
}

/// Marks the image rolled back from, then swaps every container onto the target,
/// after checking that no container moved since the plan's read.
pub async fn apply(
    engine: &Engine,
    cfg: &ComposeConfig,
    plan: &Plan,
    record: &RollbackRecord,
) -> Result<(), RollbackError> {
    let now = engine::read(engine, cfg)
        .await
        .map_err(RollbackError::from)?;
    if now.alias.revision_id != plan.alias.revision_id {
        // Worded as the rollback's own conflict: "… changed since it was previewed".
        return Err(RollbackError::Conflict(format!(
            "compose service {}",
            cfg.handle()
        )));
    }
    let target = plan.alias.find(&plan.to).ok_or_else(|| {
        RollbackError::NotFound(format!(
            "image {} of compose service {}",
            plan.to,
            cfg.handle()
        ))
    })?;
    // The containers are made from the reference: it must still name the image
    // planned, checked before anything stops (and again on each container made).
    let named = engine
        .inspect(&format!("/images/{}/json", target.identity))
        .await
        .map_err(RollbackError::from)?;
    if named["Id"].as_str() != Some(target.id.as_str()) {
        return Err(RollbackError::Conflict(format!(
            "compose service {} (image {} now names another image)",
            cfg.handle(),
            target.identity
        )));
    }
    // Finishing a swap cut short marks nothing: the image it runs is the target.
    if plan.from != plan.to {
        let repository = known_bad_repository(&cfg.project, &cfg.service);
        let tag = [
            ("repo", repository),
            ("tag", known_bad_tag(&plan.from, record.at)),
        ];
        engine
            .post(&format!("/images/{}/tag", plan.from), &tag, None)
            .await
            .map_err(RollbackError::from)?;
    }
    let record_json = serde_json::to_string(record).unwrap_or_default();
    let gone = [("force", "true".into()), ("v", "false".into())];
    for c in now.leftovers.iter() {
        engine
            .delete(&format!("/containers/{}", c.id), &gone)
            .await
            .map_err(RollbackError::from)?;
    }
    for c in now.containers.iter() {
        let result = match (c.image_id == plan.to, c.running) {
            (true, true) => Ok(()),
            // Made on the target by a swap cut short before its start.
            (true, false) => engine
                .post(&format!("/containers/{}/start", c.id), &[], None)
                .await
                .map(|_| ()),
            (false, _) => {
                recreate::swap(
                    engine,
                    c,
                    &target.identity,
                    &target.id,
                    &record_json,
                    cfg.stop_timeout,
                )
                .await
            }
        };
        result.map_err(RollbackError::from)?;
    }
    Ok(())
}
