//! Rolling a Deployment back: `kubectl rollout undo`'s algorithm, plus what kubectl
//! lacks. One JSON patch carries the whole change and starts with a `test` on the
//! resourceVersion, so a concurrent change fails it cleanly instead of racing; a
//! server-side dry run goes first; the change-cause says who, to what, and why; and an
//! Event with reason `BackoutRollback` tells every other console.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::{json, Value};

use crate::engine::lineage::RollbackRecord;
use crate::engine::rollbacks::Expected;
pub use crate::engine::rollbacks::RollbackError;
use crate::k8s::template::{self, CHANGE_CAUSE, HASH_LABEL, ROLLBACK_RECORD};

/// Annotations a rollback keeps from the Deployment itself, as kubectl does.
const KEPT_FROM_DEPLOYMENT: [&str; 6] = [
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "kubectl.kubernetes.io/last-applied-configuration",
    "deprecated.deployment.rollback.to",
];
pub use crate::k8s::template::EVENT_REASON;

#[derive(Debug, Clone)]
pub struct Request {
    pub namespace: String,
    pub deployment: String,
    pub to_revision: Option<u64>,
    /// The target by template identity (its ReplicaSet), which outlives renumbering:
    /// once previewed, a rollback means that template whatever number it has now.
    pub to_replicaset: Option<String>,
    pub reason: String,
    /// Who asks: the user from a SelfSubjectReview, and the host.
    pub actor: String,
    pub incident: Option<String>,
    pub automatic: bool,
    /// What the engineer confirmed in the dry run: a Deployment changed since is a
    /// conflict, never a rollback of what someone else just shipped.
    pub expected: Option<Expected>,
}

/// A prepared rollback: what it changes, and the one patch that changes it.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub namespace: String,
    pub deployment: String,
    pub from_revision: u64,
    pub from_images: Vec<String>,
    pub to_revision: u64,
    pub to_images: Vec<String>,
    pub to_replicaset: String,
    /// The ReplicaSet whose template runs now.
    pub from_replicaset: String,
    pub resource_version: String,
    /// The template already matches the target: nothing to do (kubectl's "skipped rollback").
    pub already_there: bool,
    pub change_cause: String,
    pub kubectl: String,
    #[serde(skip)]
    pub patch: Value,
}

fn api_error(e: kube::Error, deployment: &str) -> RollbackError {
    match e {
        kube::Error::Api(s) if s.code == 404 => RollbackError::NotFound(deployment.into()),
        kube::Error::Api(s) if s.code == 403 => RollbackError::Forbidden(s.message.clone()),
        // A failed `test` on the resourceVersion, or a 409 from the server. A real
        // kube-apiserver answers a failed JSON-patch `test` with a bare 422 Invalid
        // ("the server rejected our request due to an error in our request"), naming
        // no test; our patch is well-formed (the dry run took the same body), so a
        // 422 is the test, and the conflict path reads the Deployment again.
        kube::Error::Api(s) if s.code == 409 || s.code == 422 => {
            RollbackError::Conflict(deployment.into())
        }
        other => RollbackError::Api(other.to_string()),
    }
}

/// The images of a pod template's containers, in order (as JSON).
pub(crate) fn images(template: &Value) -> Vec<String> {
    template["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str().map(String::from))
        .collect()
}

/// The ReplicaSets a workload (a Deployment, or a Rollout: as JSON) controls, listed
/// by its selector and kept by their controller reference to its uid.
pub(crate) async fn owned_replicasets(
    client: &Client,
    namespace: &str,
    workload: &Value,
) -> Result<Vec<Value>, kube::Error> {
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let selector = crate::k8s::selectors::from_labels(&workload["spec"]["selector"]["matchLabels"]);
    let uid = &workload["metadata"]["uid"];
    let listed = replicasets
        .list(&ListParams::default().labels(&selector))
        .await?;
    Ok(listed
        .items
        .into_iter()
        .filter_map(|rs| serde_json::to_value(rs).ok())
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["uid"] == *uid && o["controller"] == true)
        })
        .collect())
}

/// Looks at the Deployment and its history and prepares the rollback, refusing as
/// kubectl refuses.
pub async fn plan(client: &Client, req: &Request) -> Result<Plan, RollbackError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &req.namespace);
    let d = deployments
        .get(&req.deployment)
        .await
        .map_err(|e| api_error(e, &req.deployment))?;
    let d = serde_json::to_value(&d).map_err(|e| RollbackError::Api(e.to_string()))?;
    let owned = owned_replicasets(client, &req.namespace, &d)
        .await
        .map_err(|e| api_error(e, &req.deployment))?;
    let mut by_revision: BTreeMap<u64, &Value> = owned
        .iter()
        .map(|rs| (template::revision(rs), rs))
        .collect();
    by_revision.remove(&0);
    let by_name = req.to_replicaset.as_deref().and_then(|name| {
        by_revision
            .values()
            .find(|rs| rs["metadata"]["name"].as_str() == Some(name))
            .copied()
    });
    let target = match req.to_revision {
        _ if by_name.is_some() => by_name.expect("checked"),
        Some(n) => *by_revision
            .get(&n)
            .ok_or(RollbackError::MissingRevision(n))?,
        None => *by_revision
            .values()
            .rev()
            .nth(1)
            .ok_or_else(|| RollbackError::NoHistory(req.deployment.clone()))?,
    };
    if d["spec"]["paused"] == true {
        return Err(RollbackError::Paused);
    }
    let resource_version = d["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let from_revision = template::revision(&d);
    let from_replicaset = owned
        .iter()
        .find(|rs| template::equal(&rs["spec"]["template"], &d["spec"]["template"]))
        .and_then(|rs| rs["metadata"]["name"].as_str())
        .unwrap_or_default()
        .to_string();
    // What the engineer confirmed is the template running then, not the
    // resourceVersion, which every status write of the controller moves.
    if req
        .expected
        .as_ref()
        .is_some_and(|e| e.from_replicaset != from_replicaset || from_replicaset.is_empty())
    {
        return Err(RollbackError::Conflict(req.deployment.clone()));
    }
    let to_revision = template::revision(target);
    let mut to_template = target["spec"]["template"].clone();
    if let Some(labels) = to_template["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
    }
    let already_there = template::equal(&d["spec"]["template"], &to_template);
    let mut annotations: serde_json::Map<String, Value> = target["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for key in KEPT_FROM_DEPLOYMENT {
        annotations.remove(key);
        if let Some(v) = d["metadata"]["annotations"].get(key) {
            annotations.insert(key.into(), v.clone());
        }
    }
    let incident = req
        .incident
        .as_deref()
        .map_or(String::new(), |i| format!(" for incident {i}"));
    let change_cause = format!(
        "backout: rolled back to revision {to_revision} by {}{incident}: {}",
        req.actor, req.reason
    );
    annotations.insert(CHANGE_CAUSE.into(), json!(change_cause));
    // Who, why and when, for every other process: the controller copies it onto the
    // ReplicaSet this rollback makes current, which is where it is believed.
    let record_from = from_replicaset.clone();
    let record = RollbackRecord {
        revision: from_revision + 1,
        from_replicaset,
        to_replicaset: target["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .into(),
        at: jiff::Timestamp::now(),
        by: req.actor.clone(),
        reason: req.reason.clone(),
        automatic: req.automatic,
        incident: req.incident.clone(),
    };
    let record = serde_json::to_string(&record).map_err(|e| RollbackError::Api(e.to_string()))?;
    annotations.insert(ROLLBACK_RECORD.into(), json!(record));
    let patch = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
        {"op": "replace", "path": "/spec/template", "value": to_template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]);
    Ok(Plan {
        namespace: req.namespace.clone(),
        deployment: req.deployment.clone(),
        from_revision,
        from_images: images(&d["spec"]["template"]),
        to_revision,
        to_images: images(&target["spec"]["template"]),
        to_replicaset: target["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .into(),
        from_replicaset: record_from,
        resource_version,
        already_there,
        change_cause,
        kubectl: format!(
            "kubectl rollout undo deployment/{} --to-revision={to_revision} -n {}",
            req.deployment, req.namespace
        ),
        patch,
    })
}

/// Sends the plan's one patch, as a server-side dry run or for real.
pub async fn apply(
    client: &Client,
    plan: &Plan,
    dry_run: bool,
) -> Result<Deployment, RollbackError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &plan.namespace);
    let ops: json_patch::Patch = serde_json::from_value(plan.patch.clone())
        .map_err(|e| RollbackError::Api(e.to_string()))?;
    let params = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    deployments
        .patch(&plan.deployment, &params, &Patch::Json::<()>(ops))
        .await
        .map_err(|e| api_error(e, &plan.deployment))
}

/// Posts the Event every console's timeline shows.
pub async fn announce(
    client: &Client,
    plan: &Plan,
    actor: &str,
    uid: Option<String>,
) -> Result<(), RollbackError> {
    let message = format!(
        "{actor} rolled back deployment {} from revision {} ({}) to revision {} ({})",
        plan.deployment,
        plan.from_revision,
        plan.from_images.join(", "),
        plan.to_revision,
        plan.to_images.join(", ")
    );
    post_event(
        client,
        &plan.namespace,
        "Deployment",
        "apps/v1",
        &plan.deployment,
        uid,
        message,
        actor,
    )
    .await
}

/// A `BackoutRollback` Event on any object.
#[allow(clippy::too_many_arguments)]
pub async fn post_event(
    client: &Client,
    namespace: &str,
    kind: &str,
    api_version: &str,
    name: &str,
    uid: Option<String>,
    message: String,
    actor: &str,
) -> Result<(), RollbackError> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let now = jiff::Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.backout-")),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid,
            ..Default::default()
        },
        reason: Some(EVENT_REASON.into()),
        message: Some(message),
        type_: Some("Normal".into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        action: Some("Rollback".into()),
        reporting_component: Some("backout".into()),
        reporting_instance: Some(actor.into()),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("backout".into()),
            host: None,
        }),
        ..Default::default()
    };
    events
        .create(&PostParams::default(), &event)
        .await
        .map(|_| ())
        .map_err(|e| api_error(e, name))
}

/// Checks permission, prepares the plan and has the API server dry-run it. Nothing is
/// written; the plan is what a confirmation dialog shows.
pub async fn prepare(client: &Client, req: &Request) -> Result<Plan, RollbackError> {
    // Side by side: a dry run writes nothing, and a refusal is worded from the review.
    let (access, sent) = tokio::join!(
        super::access::may_roll_back(client, &req.namespace),
        send(client, req, true, None)
    );
    access.map_err(RollbackError::ReadOnly)?;
    sent.map(|(plan, _)| plan)
}

/// Plans from a fresh read and sends the one patch (or its dry run). A conflict only
/// says someone wrote the Deployment, so it is read again: if the template planned
/// against still runs, the write was the controller's status and the patch goes again;
/// if the target already runs, someone else rolled back first (`Preempted`);
/// otherwise it is a change for a person to look at (`Conflict`). The first plan pins
/// both templates, so a retry never rolls back anything else. A `prepared` plan, just
/// dry-run, is sent as it is first: its patch's `test` guards it like a fresh one.
async fn send(
    client: &Client,
    req: &Request,
    dry_run: bool,
    mut prepared: Option<Plan>,
) -> Result<(Plan, Option<Deployment>), RollbackError> {
    let mut pinned = req.clone();
    for _ in 0..3 {
        let planned = match prepared.take() {
            Some(plan) => Ok(plan),
            None => plan(client, &pinned).await,
        };
        let plan = match planned {
            Err(RollbackError::Conflict(_)) => return Err(after_conflict(client, &pinned).await),
            other => other?,
        };
        if plan.already_there {
            return Ok((plan, None));
        }
        if pinned.expected.is_none() {
            pinned.to_replicaset = Some(plan.to_replicaset.clone());
            pinned.expected = Some(Expected {
                from_revision: plan.from_revision,
                from_replicaset: plan.from_replicaset.clone(),
                to_replicaset: plan.to_replicaset.clone(),
                switch: None,
                revert_commit: None,
            });
        }
        match apply(client, &plan, dry_run).await {
            Ok(d) => return Ok((plan, Some(d))),
            // kube's retry layer re-sends a PATCH whose answer was a 504; the second
            // `test` then fails against our own change. Only a re-read tells.
            Err(RollbackError::Conflict(_)) if !dry_run => {
                if let Some(d) = carries_ours(client, &plan).await {
                    return Ok((plan, Some(d)));
                }
            }
            Err(RollbackError::Conflict(_)) => {}
            Err(RollbackError::Api(e)) if !dry_run => {
                return lost_answer(client, &plan, e).await.map(|d| (plan, Some(d)))
            }
            Err(e) => return Err(e),
        }
    }
    Err(after_conflict(client, &pinned).await)
}

/// The Deployment as it is now, if it carries this plan's own rollback record.
async fn carries_ours(client: &Client, plan: &Plan) -> Option<Deployment> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &plan.namespace);
    let d = deployments.get(&plan.deployment).await.ok()?;
    has_record(&d, plan).then_some(d)
}

fn has_record(d: &Deployment, plan: &Plan) -> bool {
    let ours = &plan.patch[2]["value"][ROLLBACK_RECORD];
    let record = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROLLBACK_RECORD));
    record.is_some_and(|r| ours.as_str() == Some(r.as_str()))
}

/// A patch that failed without a verdict (a 504, a timeout, a cut connection) may
/// have been applied. The Deployment is read again: the plan's own rollback record on
/// it says the patch landed; anything else says what is known.
async fn lost_answer(
    client: &Client,
    plan: &Plan,
    error: String,
) -> Result<Deployment, RollbackError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &plan.namespace);
    let mut last = String::new();
    for pause in [0, 1, 2] {
        tokio::time::sleep(std::time::Duration::from_secs(pause)).await;
        match deployments.get(&plan.deployment).await {
            Ok(d) => {
                if has_record(&d, plan) {
                    tracing::warn!("the answer to the rollback patch was lost ({error}); read again, it was applied");
                    return Ok(d);
                }
                return Err(RollbackError::Api(format!(
                    "{error}; read again, deployment {:?} does not carry this rollback: nothing was changed",
                    plan.deployment
                )));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(RollbackError::Api(format!(
        "{error}; reading deployment {:?} again failed too ({last}): whether the rollback landed is unknown, look with `kubectl rollout history deployment/{} -n {}`",
        plan.deployment, plan.deployment, plan.namespace
    )))
}

/// What a conflict meant: the target already running is someone else's rollback.
async fn after_conflict(client: &Client, req: &Request) -> RollbackError {
    let fresh = Request {
        expected: None,
        ..req.clone()
    };
    match plan(client, &fresh).await {
        Ok(plan) if plan.already_there => RollbackError::Preempted {
            deployment: req.deployment.clone(),
            to_revision: plan.to_revision,
        },
        _ => RollbackError::Conflict(req.deployment.clone()),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// The template already matched the target: nothing was sent.
    AlreadyThere,
    /// The patch landed; the Deployment's generation after it.
    RolledBack { generation: Option<i64> },
}

/// Rolls back as confirmed: the plan `prepare` made under the Lease (read afresh if its
/// guard fails), the one guarded patch, then the Event. Returns the plan that was sent.
pub async fn commit(
    client: &Client,
    req: &Request,
    prepared: Plan,
    actor: &str,
) -> Result<(Plan, Done), RollbackError> {
    let (plan, sent) = send(client, req, false, Some(prepared)).await?;
    let Some(d) = sent else {
        return Ok((plan, Done::AlreadyThere));
    };
    // The rollback has happened; a lost Event is reported, not undone.
    if let Err(e) = announce(client, &plan, actor, d.metadata.uid.clone()).await {
        tracing::warn!("rolled back, but the BackoutRollback Event was not posted: {e}");
    }
    let done = Done::RolledBack {
        generation: d.metadata.generation,
    };
    Ok((plan, done))
}
