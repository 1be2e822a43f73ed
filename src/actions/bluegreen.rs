//! Blue-green rollback: a Deployment that is the live colour of a configured Service
//! is rolled back by switching the Service's colour (or version) selector back, not by
//! undoing its template. Like a Deployment rollback it is one guarded JSON patch,
//! dry-run first, under the Deployment's Lease, announced with an Event. The previous
//! value is the one backout recorded on the Service at the last switch, or else the
//! only other value that the Deployments behind the Service carry.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use crate::config::BlueGreen;
use crate::engine::rollbacks::{Preview, RollbackError, Switch};
use crate::engine::rollout;

pub fn previous_annotation(label: &str) -> String {
    format!("backout.dev/previous-{}", label.replace('/', "_"))
}

/// A switch, planned from a fresh read: the preview's facts and what the patch needs.
#[derive(Debug, Clone)]
pub struct SwitchPlan {
    pub namespace: String,
    pub switch: Switch,
    pub from: Side,
    pub to: Side,
    annotations_exist: bool,
}

/// One colour's Deployment, as the preview shows it.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub revision: u64,
    pub images: Vec<String>,
}

impl Side {
    fn of(d: &Deployment) -> Side {
        Side {
            revision: rollout::revision_of_deployment(d),
            images: rollout::images(d.spec.as_ref().map(|s| &s.template)),
        }
    }
}

impl SwitchPlan {
    pub fn kubectl(&self) -> String {
        let s = &self.switch;
        format!(
            "kubectl patch service/{} -n {} --type=merge -p '{{\"spec\":{{\"selector\":{{\"{}\":\"{}\"}}}}}}'",
            s.service, self.namespace, s.label, s.to
        )
    }

    pub fn preview(&self) -> Preview {
        Preview {
            from_revision: self.from.revision,
            from_images: self.from.images.clone(),
            to_revision: self.to.revision,
            to_images: self.to.images.clone(),
            already_there: false,
            kubectl: self.kubectl(),
            resource_version: self.switch.resource_version.clone(),
            to_replicaset: String::new(),
            from_replicaset: String::new(),
            switch: Some(Box::new(self.switch.clone())),
            abort: false,
            revert: None,
            flag: None,
        }
    }

    /// The patch: a `test` on the Service as previewed, the selector, and the value
    /// switched from, recorded so that the next rollback goes back to it.
    fn patch(&self) -> Result<json_patch::Patch, RollbackError> {
        let s = &self.switch;
        let mut ops = vec![
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": s.resource_version}),
            json!({"op": "replace", "path": format!("/spec/selector/{}", pointer(&s.label)), "value": s.to}),
        ];
        if !self.annotations_exist {
            ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
        }
        let annotation = pointer(&previous_annotation(&s.label));
        ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{annotation}"), "value": s.from}));
        serde_json::from_value(Value::Array(ops)).map_err(|e| RollbackError::Api(e.to_string()))
    }
}

/// JSON Pointer escaping for a label key inside a path.
fn pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn api_error(e: kube::Error, what: &str) -> RollbackError {
    match e {
        kube::Error::Api(s) if s.code == 404 => RollbackError::NotFound(what.into()),
        kube::Error::Api(s) if s.code == 403 => RollbackError::Forbidden(s.message.clone()),
        // A real kube-apiserver answers a failed JSON-patch `test` with a bare 422
        // that names neither path nor value (tests/controlplane/divergences.rs). The
        // other operations were built from the previewed Service, which the `test`
        // pins, so a 422 here is the Service having changed since.
        kube::Error::Api(s) if s.code == 409 || s.code == 422 => {
            RollbackError::Conflict(what.into())
        }
        other => RollbackError::Api(other.to_string()),
    }
}

fn template_labels(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// Every selector pair but the colour matches: the Deployment is one of the colours.
fn behind(
    selector: &BTreeMap<String, String>,
    label: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    labels.contains_key(label)
        && selector
            .iter()
            .filter(|(k, _)| *k != label)
            .all(|(k, v)| labels.get(k) == Some(v))
}

/// The configured blue-green Service in front of `deployment`, read from the cluster:
/// `None` when there is none (a plain rollback), `NotLive` when the Deployment is an
/// idle colour, and otherwise the switch away from it. No configured Service, no read.
pub async fn plan(
    client: &Client,
    blue_green: &[BlueGreen],
    namespace: &str,
    deployment: &str,
    to: Option<&str>,
) -> Result<Option<SwitchPlan>, RollbackError> {
    let configured: Vec<&BlueGreen> = blue_green
        .iter()
        .filter(|b| b.namespace.as_deref().is_none_or(|n| n == namespace))
        .collect();
    if configured.is_empty() {
        return Ok(None);
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let live = deployments
        .get(deployment)
        .await
        .map_err(|e| api_error(e, &format!("deployment {deployment}")))?;
    let labels = template_labels(&live);
    for bg in configured {
        let Some(svc) = services
            .get_opt(&bg.service)
            .await
            .map_err(|e| api_error(e, &format!("service {}", bg.service)))?
        else {
            continue;
        };
        let selector = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let Some(selected) = selector.get(&bg.label).cloned() else {
            return Err(RollbackError::Api(format!(
                "service {:?} does not select on label {:?}; check [[blue_green]] in backout.toml",
                bg.service, bg.label
            )));
        };
        if !behind(&selector, &bg.label, &labels) {
            continue;
        }
        if labels.get(&bg.label) != Some(&selected) {
            return Err(RollbackError::NotLive {
                deployment: deployment.into(),
                service: bg.service.clone(),
                label: bg.label.clone(),
                live: selected,
            });
        }
        let others = deployments
            .list(&ListParams::default())
            .await
            .map_err(|e| api_error(e, &format!("service {}", bg.service)))?
            .items;
        return switch_away(namespace, bg, &svc, &live, &others, to).map(Some);
    }
    Ok(None)
}

/// The Deployment a configured blue-green Service sends its traffic to now: what
/// `backout rollback SERVICE` rolls back (by switching away from it).
pub async fn live_deployment(
    client: &Client,
    namespace: &str,
    bg: &BlueGreen,
) -> Result<String, RollbackError> {
    let what = format!("service {}", bg.service);
    let svc: Service = Api::namespaced(client.clone(), namespace)
        .get(&bg.service)
        .await
        .map_err(|e| api_error(e, &what))?;
    let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
    let Some(live) = selector.get(&bg.label) else {
        return Err(RollbackError::Api(format!(
            "service {:?} does not select on label {:?}; check [[blue_green]] in backout.toml",
            bg.service, bg.label
        )));
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let list = deployments
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(e, &what))?;
    list.items
        .into_iter()
        .find(|d| {
            let labels = template_labels(d);
            behind(&selector, &bg.label, &labels) && labels.get(&bg.label) == Some(live)
        })
        .and_then(|d| d.metadata.name)
        .ok_or_else(|| {
            RollbackError::NotFound(format!(
                "a Deployment behind service {} with {}={live}",
                bg.service, bg.label
            ))
        })
}

/// Where the traffic goes back to: `--to`, else the recorded previous value, else the
/// only other colour.
fn switch_away(
    namespace: &str,
    bg: &BlueGreen,
    svc: &Service,
    live: &Deployment,
    deployments: &[Deployment],
    to: Option<&str>,
) -> Result<SwitchPlan, RollbackError> {
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let from = selector[&bg.label].clone();
    let colours: Vec<(String, &Deployment)> = deployments
        .iter()
        .filter_map(|d| {
            let labels = template_labels(d);
            behind(&selector, &bg.label, &labels).then(|| (labels[&bg.label].clone(), d))
        })
        .collect();
    let recorded = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&previous_annotation(&bg.label)))
        .cloned();
    let candidates: BTreeSet<&String> = colours
        .iter()
        .map(|(v, _)| v)
        .filter(|v| **v != from)
        .collect();
    let to = match (to, recorded) {
        (Some(t), _) => t.to_string(),
        (None, Some(r)) if r != from => r,
        _ => match candidates.len() {
            1 => candidates.into_iter().next().expect("one").clone(),
            0 => {
                return Err(RollbackError::NoHistory(format!(
                    "service {} (no Deployment carries another {} value)",
                    bg.service, bg.label
                )))
            }
            _ => {
                return Err(RollbackError::Api(format!(
                    "service {:?} could go back to any of {candidates:?}; name one with --to VALUE",
                    bg.service
                )))
            }
        },
    };
    let target = colours.iter().find(|(v, _)| *v == to).map(|(_, d)| *d);
    Ok(SwitchPlan {
        namespace: namespace.into(),
        switch: Switch {
            service: bg.service.clone(),
            label: bg.label.clone(),
            from,
            to,
            to_deployment: target.and_then(|d| d.metadata.name.clone()),
            resource_version: svc.metadata.resource_version.clone().unwrap_or_default(),
        },
        from: Side::of(live),
        to: target.map(Side::of).unwrap_or_default(),
        annotations_exist: svc.metadata.annotations.is_some(),
    })
}

/// Sends the switch, dry-run or for real.
pub async fn apply(client: &Client, plan: &SwitchPlan, dry_run: bool) -> Result<(), RollbackError> {
    let services: Api<Service> = Api::namespaced(client.clone(), &plan.namespace);
    let params = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    let service = &plan.switch.service;
    services
        .patch(service, &params, &Patch::Json::<()>(plan.patch()?))
        .await
        .map(|_| ())
        .map_err(|e| api_error(e, &format!("service {service}")))
}

/// The switch the engineer previewed, checked against a fresh plan: it must still go
/// from and to the same colours, and the patch tests the Service as it was previewed.
pub fn pin(mut fresh: SwitchPlan, expected: Option<&Switch>) -> Result<SwitchPlan, RollbackError> {
    let Some(expected) = expected else {
        return Ok(fresh);
    };
    if fresh.switch.from != expected.from || fresh.switch.to != expected.to {
        return Err(RollbackError::Conflict(format!(
            "service {} (it now switches {} → {}, not {} → {})",
            expected.service, fresh.switch.from, fresh.switch.to, expected.from, expected.to
        )));
    }
    fresh
        .switch
        .resource_version
        .clone_from(&expected.resource_version);
    Ok(fresh)
}

/// Posts the Event every other console reads, on the Service.
pub async fn announce(client: &Client, plan: &SwitchPlan, actor: &str) {
    let s = &plan.switch;
    let message = format!(
        "{actor} switched service {} {} from {} back to {}",
        s.service, s.label, s.from, s.to
    );
    let posted = super::rollback::post_event(
        client,
        &plan.namespace,
        "Service",
        "v1",
        &s.service,
        None,
        message,
        actor,
    )
    .await;
    if let Err(e) = posted {
        tracing::warn!("switched, but the BackoutRollback Event was not posted: {e}");
    }
}
