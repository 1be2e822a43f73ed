//! Shifting a Lambda alias back: planned from a fresh read, then two writes. First
//! the version rolled back from goes on the function's known-bad tag (so that no
//! process, now or after the next deploy, makes it a target); then one `UpdateAlias`
//! sends every request to the target, with backout's record as the description,
//! pinned by the `RevisionId` the plan read. A crash between the two leaves a version
//! marked bad that still takes traffic: the retry finds it so and shifts.
//!
//! Lambda has no server-side dry run: the plan's fresh read is the check, and the
//! `RevisionId` guard makes a moved alias a conflict, never a blind write.

use super::aws::{self, LambdaError};
use super::{code_of, description_of, with_known_bad, Alias};
use crate::actions::rollback::Request;
use crate::config::lambda::LambdaConfig;
use crate::engine::lineage::RollbackRecord;
use crate::engine::rollbacks::{Preview, RollbackError};

/// A planned shift, with the read it was planned from.
#[derive(Debug, Clone)]
pub struct Plan {
    pub preview: Preview,
    pub alias: Alias,
    /// The version that takes traffic now and is rolled back from.
    pub from: String,
    /// The version every request goes to.
    pub to: String,
}

fn rollback_error(e: LambdaError) -> RollbackError {
    match e {
        LambdaError::NotFound(m) => RollbackError::NotFound(m),
        LambdaError::Forbidden(m) => RollbackError::Forbidden(m),
        LambdaError::Conflict(m) => RollbackError::Conflict(m),
        LambdaError::Other(m) => RollbackError::Api(m),
    }
}

/// Reads the alias afresh and plans the shift.
pub async fn plan(
    client: &aws_sdk_lambda::Client,
    cfg: &LambdaConfig,
    req: &Request,
) -> Result<Plan, RollbackError> {
    let alias = aws::read(client, cfg).await.map_err(rollback_error)?;
    plan_from(alias, req)
}

/// The plan a read makes: the version previewed, or asked for; else during a canary
/// the stable version, and after a full shift the newest earlier version not rolled
/// back from.
pub fn plan_from(alias: Alias, req: &Request) -> Result<Plan, RollbackError> {
    let name = format!("{}:{}", alias.function, alias.alias);
    let from = alias
        .canary()
        .map_or_else(|| alias.version.clone(), |(v, _)| v.to_string());
    let from_number: u64 = from.parse().unwrap_or(0);
    let bad = |v: &str| alias.known_bad.contains_key(v);
    let exists = |v: &str| alias.versions.iter().any(|x| x.number.to_string() == v);
    // Once previewed, the shift means that version, whatever happened since.
    let pinned = req
        .to_replicaset
        .clone()
        .or_else(|| req.expected.as_ref().map(|e| e.to_replicaset.clone()));
    let to = match (pinned, req.to_revision) {
        (Some(v), _) if exists(&v) => v,
        (Some(v), _) => return Err(RollbackError::MissingRevision(v.parse().unwrap_or(0))),
        (None, Some(n)) => alias
            .versions
            .iter()
            .find(|v| v.number == n)
            .ok_or(RollbackError::MissingRevision(n))?
            .number
            .to_string(),
        (None, None) if alias.canary().is_some() => alias.version.clone(),
        (None, None) => alias
            .versions
            .iter()
            .rev()
            .find(|v| v.number < from_number && !bad(&v.number.to_string()))
            .map(|v| v.number.to_string())
            .ok_or_else(|| RollbackError::NoHistory(format!("lambda alias {name}")))?,
    };
    if to == from && alias.canary().is_some() {
        return Err(RollbackError::Api(format!(
            "version {to} is the canary of {name}; a rollback goes to the stable version {}",
            alias.version
        )));
    }
    let already_there = alias.canary().is_none() && alias.version == to;
    if let Some(expected) = req.expected.as_ref().filter(|_| !already_there) {
        if expected.from_replicaset != from || expected.to_replicaset != to {
            return Err(RollbackError::Conflict(format!(
                "lambda alias {name} (it now routes to version {from})"
            )));
        }
    }
    let images = |v: &str| {
        alias
            .versions
            .iter()
            .find(|x| x.number.to_string() == v)
            .map(|x| vec![code_of(x)])
            .unwrap_or_default()
    };
    let preview = Preview {
        from_revision: from_number,
        from_images: images(&from),
        to_revision: to.parse().unwrap_or(0),
        to_images: images(&to),
        already_there,
        kubectl: alias.command(&to),
        resource_version: alias.revision_id.clone(),
        to_replicaset: to.clone(),
        from_replicaset: from.clone(),
        switch: None,
        // A shift makes no version: the one rolled back from stays the newest.
        abort: true,
        revert: None,
        flag: None,
    };
    Ok(Plan {
        preview,
        alias,
        from,
        to,
    })
}

/// Marks the version rolled back from, then shifts the alias, guarded by the read.
pub async fn apply(
    client: &aws_sdk_lambda::Client,
    cfg: &LambdaConfig,
    plan: &Plan,
    record: &RollbackRecord,
) -> Result<(), RollbackError> {
    let tag = with_known_bad(&plan.alias.known_bad, &plan.from, record.at);
    aws::tag_known_bad(client, cfg, &plan.alias.function_arn, &tag)
        .await
        .map_err(rollback_error)?;
    aws::shift(
        client,
        cfg,
        &plan.to,
        &description_of(record),
        &plan.alias.revision_id,
    )
    .await
    .map_err(rollback_error)
}
