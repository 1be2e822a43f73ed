//! Shifting a Lambda alias back: planned from a fresh read, then two writes. First
//! the version rolled back from goes on the function's known-bad tag (so that no
//! process, now or after the next deploy, makes it a target); then one `UpdateAlias`
//! sends every request to the target, with backout's record as the description,
//! pinned by the `RevisionId` the plan read. A crash between the two leaves a version
//! marked bad that still takes traffic: the retry finds it so and shifts.
//!
//! Lambda has no server-side dry run: the plan's fresh read is the check, and the
//! `RevisionId` guard makes a moved alias a conflict, never a blind write.

pub use crate::targets::alias::{plan_from, Plan};

use super::aws;
use super::{description_of, with_known_bad};
use crate::actions::rollback::Request;
use crate::config::lambda::LambdaConfig;
use crate::engine::lineage::RollbackRecord;
use crate::engine::rollbacks::RollbackError;

/// Reads the alias afresh and plans the shift.
pub async fn plan(
    client: &aws_sdk_lambda::Client,
    cfg: &LambdaConfig,
    req: &Request,
) -> Result<Plan, RollbackError> {
    let alias = aws::read(client, cfg).await.map_err(RollbackError::from)?;
    plan_from(alias, req)
}

/// Marks the version rolled back from, then shifts the alias, guarded by the read.
pub async fn apply(
    client: &aws_sdk_lambda::Client,
    cfg: &LambdaConfig,
    plan: &Plan,
    record: &RollbackRecord,
) -> Result<(), RollbackError> {
    let tag = with_known_bad(&plan.alias.known_bad, &plan.from, record.at);
    aws::tag_known_bad(client, cfg, &plan.alias.resource, &tag)
        .await
        .map_err(RollbackError::from)?;
    aws::shift(
        client,
        cfg,
        &plan.to,
        &description_of(record),
        &plan.alias.revision_id,
    )
    .await
    .map_err(RollbackError::from)
}
