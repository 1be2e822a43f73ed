//! Blue-green rollback: switch a Service's colour (or version) selector back to the
//! previous value. Like a Deployment rollback it is one guarded JSON patch, dry-run
//! first, under a Lease, announced with an Event. The previous value is the one backout
//! recorded on the Service at the last switch, or else the only other value that the
//! Deployments behind the Service carry.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::rollback::RollbackError;

pub fn previous_annotation(label: &str) -> String {
    format!("backout.dev/previous-{}", label.replace('/', "_"))
}

#[derive(Debug, Clone)]
pub struct SwitchPlan {
    pub namespace: String,
    pub service: String,
    pub label: String,
    pub from: String,
    pub to: String,
    /// The Deployment whose pods carry `to`: what verification watches.
    pub to_deployment: Option<String>,
    pub kubectl: String,
    pub patch: Value,
}

/// JSON Pointer escaping for a label key inside a path.
fn pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn api_error(e: kube::Error, service: &str) -> RollbackError {
    match e {
        kube::Error::Api(s) if s.code == 404 => {
            RollbackError::NotFound(format!("service {service}"))
        }
        kube::Error::Api(s) if s.code == 403 => RollbackError::Forbidden(s.message.clone()),
        kube::Error::Api(s) if s.code == 409 || (s.code == 422 && s.message.contains("test")) => {
            RollbackError::Conflict(format!("service {service}"))
        }
        other => RollbackError::Api(other.to_string()),
    }
}

pub async fn plan(
    client: &Client,
    namespace: &str,
    service: &str,
    label: &str,
    to: Option<&str>,
) -> Result<SwitchPlan, RollbackError> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let svc = services
        .get(service)
        .await
        .map_err(|e| api_error(e, service))?;
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let from = selector.get(label).cloned().ok_or_else(|| RollbackError::Api(format!("service {service:?} does not select on label {label:?}; check [[blue_green]] in backout.toml")))?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let others: Vec<(String, String)> = deployments
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(e, service))?
        .items
        .into_iter()
        .filter_map(|d| {
            let labels = d
                .spec
                .as_ref()?
                .template
                .metadata
                .as_ref()?
                .labels
                .clone()?;
            let rest_matches = selector
                .iter()
                .filter(|(k, _)| *k != label)
                .all(|(k, v)| labels.get(k) == Some(v));
            Some((labels.get(label)?.clone(), d.metadata.name?)).filter(|_| rest_matches)
        })
        .collect();
    let recorded = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&previous_annotation(label)))
        .cloned();
    let candidates: BTreeSet<&String> = others
        .iter()
        .map(|(v, _)| v)
        .filter(|v| **v != from)
        .collect();
    let to = match (to, recorded) {
        (Some(t), _) => t.to_string(),
        (None, Some(r)) if r != from => r,
        _ => match candidates.len() {
            1 => candidates.into_iter().next().expect("one").clone(),
            0 => return Err(RollbackError::NoHistory(format!("service {service} (no Deployment carries another {label} value)"))),
            _ => return Err(RollbackError::Api(format!("service {service:?} could go back to any of {candidates:?}; name one with --to VALUE"))),
        },
    };
    let to_deployment = others
        .iter()
        .find(|(v, _)| *v == to)
        .map(|(_, d)| d.clone());
    let rv = svc.metadata.resource_version.clone().unwrap_or_default();
    let annotation = pointer(&previous_annotation(label));
    let annotations_exist = svc.metadata.annotations.is_some();
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}),
        json!({"op": "replace", "path": format!("/spec/selector/{}", pointer(label)), "value": to}),
    ];
    if !annotations_exist {
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    ops.push(
        json!({"op": "add", "path": format!("/metadata/annotations/{annotation}"), "value": from}),
    );
    let kubectl = format!("kubectl patch service/{service} -n {namespace} --type=merge -p '{{\"spec\":{{\"selector\":{{\"{label}\":\"{to}\"}}}}}}'");
    Ok(SwitchPlan {
        namespace: namespace.into(),
        service: service.into(),
        label: label.into(),
        from,
        to,
        to_deployment,
        kubectl,
        patch: Value::Array(ops),
    })
}

pub async fn apply(client: &Client, plan: &SwitchPlan, dry_run: bool) -> Result<(), RollbackError> {
    let services: Api<Service> = Api::namespaced(client.clone(), &plan.namespace);
    let ops: json_patch::Patch = serde_json::from_value(plan.patch.clone())
        .map_err(|e| RollbackError::Api(e.to_string()))?;
    let params = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    services
        .patch(&plan.service, &params, &Patch::Json::<()>(ops))
        .await
        .map(|_| ())
        .map_err(|e| api_error(e, &plan.service))
}

/// Checks permission to patch Services, plans and has the server dry-run it.
pub async fn prepare(
    client: &Client,
    namespace: &str,
    service: &str,
    label: &str,
    to: Option<&str>,
) -> Result<SwitchPlan, RollbackError> {
    super::access::may_patch(client, namespace, "", "services")
        .await
        .map_err(RollbackError::ReadOnly)?;
    let plan = plan(client, namespace, service, label, to).await?;
    apply(client, &plan, true).await?;
    Ok(plan)
}

/// Switches under the Service's Lease and posts the Event.
pub async fn commit(client: &Client, plan: &SwitchPlan, actor: &str) -> Result<(), RollbackError> {
    let lease_key = format!("svc-{}", plan.service);
    match super::lease::claim(
        client,
        &plan.namespace,
        &lease_key,
        actor,
        super::rollback::LEASE_HOLD,
    )
    .await
    {
        Ok(super::lease::Claim::Acquired) => {}
        Ok(super::lease::Claim::HeldBy { holder, since }) => {
            return Err(RollbackError::Held {
                deployment: plan.service.clone(),
                holder,
                since,
            })
        }
        Err(e) => return Err(api_error(e, &plan.service)),
    }
    let result = apply(client, plan, false).await;
    if result.is_ok() {
        let message = format!(
            "{actor} switched service {} {} from {} back to {}",
            plan.service, plan.label, plan.from, plan.to
        );
        if let Err(e) = super::rollback::post_event(
            client,
            &plan.namespace,
            "Service",
            "v1",
            &plan.service,
            None,
            message,
            actor,
        )
        .await
        {
            tracing::warn!("switched, but the BackoutRollback Event was not posted: {e}");
        }
    }
    super::lease::release(client, &plan.namespace, &lease_key, actor).await;
    result
}
