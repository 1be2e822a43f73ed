//! The versioned aliases' revert (a Lambda alias, an MLflow model alias): the entry
//! of the service, a client for it, the shift planned from a fresh read (neither API
//! has a dry run: this read is the check), and the writes that make it.

use crate::actions::rollback::Request;
use crate::config::lambda::LambdaConfig;
use crate::config::model::ModelConfig;
use crate::engine::lineage::RollbackRecord;
use crate::engine::rollbacks::RollbackError;
use crate::engine::ServiceKey;
use crate::targets::alias::Plan;
use crate::targets::{lambda, model, TargetKind};

use super::runner::Context;

/// The alias of a service, with the client that writes it.
pub(super) enum Target<'a> {
    Lambda(&'a LambdaConfig, aws_sdk_lambda::Client),
    Model(&'a ModelConfig, reqwest::Client),
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
    }
}
