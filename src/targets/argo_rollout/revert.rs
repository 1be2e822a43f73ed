//! Reverting an Argo Rollout as Argo's own CLI does: during a canary, abort (the
//! stable ReplicaSet takes every replica back, the template stays); after promotion,
//! undo to an earlier revision's template. Planned from a fresh read each time,
//! dry-run by the API server, then sent as one guarded JSON patch: the abort tests
//! that the canary and the stable ReplicaSet are still the ones previewed, the undo
//! tests the resourceVersion.
//!
//! An abort leaves `spec.template` on the bad build, and the Rollout keeps it away
//! only while `status.abort` holds; backout's record (who, why, when) goes on the
//! Rollout first, so every process reads the abort as a rollback from the cluster.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::Rollout;
use crate::actions::rollback::{images, owned_replicasets, Request};
use crate::engine::lineage::RollbackRecord;
use crate::engine::rollbacks::{Expected, Preview, RollbackError};
use crate::k8s::template::{self, ROLLBACK_RECORD, ROLLOUT_HASH_LABEL};

/// A planned revert and the one patch that makes it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub namespace: String,
    pub name: String,
    pub preview: Preview,
    /// Abort goes to the status subresource; undo to the Rollout itself.
    pub abort: bool,
    pub patch: Value,
    /// backout's record of the rollback, annotated on the Rollout before the patch.
    pub record: String,
}

fn api_error(e: kube::Error, name: &str) -> RollbackError {
    match e {
        kube::Error::Api(s) if s.code == 404 => {
            RollbackError::NotFound(format!("rollout {name} (is Argo Rollouts installed?)"))
        }
        kube::Error::Api(s) if s.code == 403 => RollbackError::Forbidden(s.message.clone()),
        // A failed `test`: the canary moved on, or someone else acted.
        kube::Error::Api(s) if s.code == 409 || s.code == 422 => {
            RollbackError::Conflict(name.into())
        }
        other => RollbackError::Api(other.to_string()),
    }
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"].as_str().unwrap_or_default().into()
}

/// Plans the revert: abort while a canary is under way, else undo to the revision
/// asked for (or the one before the current, as `kubectl argo rollouts undo` picks).
pub async fn plan(client: &Client, req: &Request) -> Result<Plan, RollbackError> {
    let (namespace, name) = (req.namespace.as_str(), req.deployment.as_str());
    let (to_revision, expected) = (req.to_revision, req.expected.as_ref());
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace);
    let ro = rollouts.get(name).await.map_err(|e| api_error(e, name))?;
    let ro = serde_json::to_value(&ro).map_err(|e| RollbackError::Api(e.to_string()))?;
    // By the Rollout's selector, as for a Deployment: never the namespace's every set.
    let owned = owned_replicasets(client, namespace, &ro)
        .await
        .map_err(|e| api_error(e, name))?;
    let by_hash = |hash: &Value| {
        owned
            .iter()
            .find(|rs| hash.is_string() && rs["metadata"]["labels"][ROLLOUT_HASH_LABEL] == *hash)
    };
    let status = &ro["status"];
    let current = by_hash(&status["currentPodHash"])
        .ok_or_else(|| RollbackError::NoHistory(format!("rollout {name}")))?;
    let stable = by_hash(&status["stableRS"]);
    let aborted = status["abort"] == true;
    let in_canary = stable.is_some_and(|s| name_of(s) != name_of(current));
    let kubectl_ns = format!("-n {namespace}");
    // Aborted already, the next step is the undo that puts the template back (Argo
    // then leaves the abort, straight onto stable).
    let (target, abort) = match (in_canary && !aborted, stable) {
        (true, Some(stable)) => (stable, true),
        _ => {
            let mut history: Vec<&Value> = owned.iter().collect();
            history.sort_by_key(|rs| template::revision(rs));
            let target = match to_revision {
                Some(n) => history
                    .iter()
                    .find(|rs| template::revision(rs) == n)
                    .copied()
                    .ok_or(RollbackError::MissingRevision(n))?,
                None => history
                    .iter()
                    .rev()
                    .nth(1)
                    .copied()
                    .ok_or_else(|| RollbackError::NoHistory(format!("rollout {name}")))?,
            };
            (target, false)
        }
    };
    let from_replicaset = name_of(current);
    if expected.is_some_and(|e: &Expected| e.from_replicaset != from_replicaset) {
        return Err(RollbackError::Conflict(name.into()));
    }
    let from_revision = template::revision(&ro);
    let to_revision = template::revision(target);
    let record = RollbackRecord {
        revision: if abort {
            from_revision
        } else {
            from_revision + 1
        },
        from_replicaset: from_replicaset.clone(),
        to_replicaset: name_of(target),
        at: jiff::Timestamp::now(),
        by: req.actor.clone(),
        reason: req.reason.clone(),
        automatic: req.automatic,
        incident: req.incident.clone(),
    };
    let record = serde_json::to_string(&record).map_err(|e| RollbackError::Api(e.to_string()))?;
    let (patch, already_there, kubectl) = if abort {
        let patch = json!([
            {"op": "test", "path": "/status/currentPodHash", "value": status["currentPodHash"]},
            {"op": "test", "path": "/status/stableRS", "value": status["stableRS"]},
            {"op": "add", "path": "/status/abort", "value": true},
        ]);
        let kubectl = format!("kubectl argo rollouts abort {name} {kubectl_ns}");
        (patch, false, kubectl)
    } else {
        let mut to_template = target["spec"]["template"].clone();
        if let Some(labels) = to_template["metadata"]["labels"].as_object_mut() {
            labels.remove(ROLLOUT_HASH_LABEL);
        }
        // The record rides in the same patch: Argo copies it onto the ReplicaSet the
        // undo makes current, where lineage believes it.
        let mut annotations = ro["metadata"]["annotations"].clone();
        annotations[ROLLBACK_RECORD] = json!(record);
        let patch = json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": ro["metadata"]["resourceVersion"]},
            {"op": "replace", "path": "/spec/template", "value": to_template},
            {"op": "add", "path": "/metadata/annotations", "value": annotations},
        ]);
        let kubectl =
            format!("kubectl argo rollouts undo {name} --to-revision={to_revision} {kubectl_ns}");
        let there = template::equal(&ro["spec"]["template"], &target["spec"]["template"]);
        (patch, there, kubectl)
    };
    let preview = Preview {
        from_revision,
        from_images: images(&current["spec"]["template"]),
        to_revision,
        to_images: images(&target["spec"]["template"]),
        already_there,
        kubectl,
        resource_version: ro["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .into(),
        to_replicaset: name_of(target),
        from_replicaset,
        switch: None,
        abort,
        revert: None,
        flag: None,
    };
    Ok(Plan {
        namespace: namespace.into(),
        name: name.into(),
        preview,
        abort,
        patch,
        record,
    })
}

/// Sends the plan. An abort first annotates the Rollout with the record (a status
/// patch cannot), then patches the status; as a dry run, only the guarded patch.
pub async fn apply(client: &Client, plan: &Plan, dry_run: bool) -> Result<(), RollbackError> {
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &plan.namespace);
    let params = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    if !dry_run && plan.abort {
        let annotate = json!({"metadata": {"annotations": {ROLLBACK_RECORD: plan.record}}});
        rollouts
            .patch(&plan.name, &params, &Patch::Merge(&annotate))
            .await
            .map_err(|e| api_error(e, &plan.name))?;
    }
    let ops: json_patch::Patch = serde_json::from_value(plan.patch.clone())
        .map_err(|e| RollbackError::Api(e.to_string()))?;
    let patch = Patch::Json::<()>(ops);
    let sent = match plan.abort {
        true => rollouts.patch_status(&plan.name, &params, &patch).await,
        false => rollouts.patch(&plan.name, &params, &patch).await,
    };
    sent.map(|_| ()).map_err(|e| api_error(e, &plan.name))
}
