//! Turns a scenario into cluster objects, and its timeline actions into the writes
//! a CI pipeline, an operator or a failing dependency would make.

use serde_json::{json, Value};

use super::api::admission::admit;
use super::resources::{CONFIGMAPS, DEPLOYMENTS, HPAS, JOBS, ROLLOUTS, SECRETS, SERVICES};
use super::scenario::{Action, GitOps, Scenario, ServiceSpec};
use super::store::{now_rfc3339, Store};
use super::telemetry::Telemetry;
use backout_k8s::template::{CHANGE_CAUSE, DEPLOYED_BY, MIGRATION};

pub fn seed(
    store: &mut Store,
    telemetry: &mut Telemetry,
    scenario: &Scenario,
) -> Result<(), String> {
    let ns = scenario.namespace.as_str();
    store.ensure_namespace(ns);
    for svc in &scenario.services {
        if let Some(cm) = &svc.configmap {
            create(
                store,
                &CONFIGMAPS,
                json!({"metadata": {"name": cm, "namespace": ns, "labels": {"app": svc.name}}, "data": {"LOG_LEVEL": "info"}}),
            )?;
        }
        if let Some(secret) = &svc.secret {
            create(
                store,
                &SECRETS,
                json!({"metadata": {"name": secret, "namespace": ns, "labels": {"app": svc.name}}, "type": "Opaque", "data": {"API_KEY": "c2ltdWxhdGVk"}}),
            )?;
        }
        let mut deployment = deployment(ns, svc);
        let kind = match &svc.canary_steps {
            Some(steps) => {
                deployment["spec"]["strategy"] = json!({"canary": {"steps": steps}});
                &ROLLOUTS
            }
            None => &DEPLOYMENTS,
        };
        admit(kind, &mut deployment, None).map_err(|e| e.message)?;
        create(store, kind, deployment)?;
        create(
            store,
            &SERVICES,
            json!({"metadata": {"name": svc.name, "namespace": ns, "labels": {"app": svc.name}},
            "spec": {"selector": {"app": svc.name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}], "type": "ClusterIP"}}),
        )?;
        if svc.hpa {
            create(
                store,
                &HPAS,
                json!({"metadata": {"name": svc.name, "namespace": ns},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc.name},
                    "minReplicas": svc.replicas, "maxReplicas": svc.replicas * 3,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}}),
            )?;
        }
        telemetry.traffic.set_rps(ns, &svc.name, svc.rps);
    }
    Ok(())
}

fn create(
    store: &mut Store,
    res: &'static super::resources::ResourceDef,
    obj: Value,
) -> Result<(), String> {
    store
        .create(res, obj)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub(crate) fn deployment(ns: &str, svc: &ServiceSpec) -> Value {
    let mut labels = json!({"app": svc.name, "app.kubernetes.io/name": svc.name});
    let mut annotations = json!({});
    if let Some(cause) = &svc.change_cause {
        annotations[CHANGE_CAUSE] = json!(cause);
    }
    match svc.gitops {
        Some(GitOps::Argocd) => {
            labels["app.kubernetes.io/instance"] = json!(svc.name);
            annotations["argocd.argoproj.io/tracking-id"] =
                json!(format!("{ns}:apps/Deployment:{ns}/{}", svc.name));
        }
        Some(GitOps::Flux) => {
            labels["kustomize.toolkit.fluxcd.io/name"] = json!(ns);
            labels["kustomize.toolkit.fluxcd.io/namespace"] = json!("flux-system");
        }
        None => {}
    }
    let mut env_from = Vec::new();
    if let Some(cm) = &svc.configmap {
        env_from.push(json!({"configMapRef": {"name": cm}}));
    }
    if let Some(secret) = &svc.secret {
        env_from.push(json!({"secretRef": {"name": secret}}));
    }
    let mut container = json!({
        "name": svc.name,
        "image": svc.image,
        "ports": [{"containerPort": 8080, "name": "http"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
    });
    if !env_from.is_empty() {
        container["envFrom"] = json!(env_from);
    }
    json!({
        "metadata": {"name": svc.name, "namespace": ns, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": svc.replicas,
            "progressDeadlineSeconds": svc.progress_deadline.as_secs().max(1),
            "selector": {"matchLabels": {"app": svc.name}},
            "template": {"metadata": {"labels": {"app": svc.name}}, "spec": {"containers": [container]}},
        },
    })
}

/// A scenario's schema migration as a Job, labelled and annotated as teams mark them.
pub fn migration_job(ns: &str, m: &crate::scenario::Migration) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": m.name, "namespace": ns, "labels": {"app": m.service, "app.kubernetes.io/component": "migration"},
            "annotations": {MIGRATION: "true"}},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "migrate", "image": format!("registry.local/shop/{}-migrations:latest", m.service)}]}}},
    })
}

pub fn apply(
    store: &mut Store,
    telemetry: &mut Telemetry,
    ns: &str,
    action: &Action,
) -> Result<(), String> {
    match action {
        Action::Deploy(d) => {
            let (kind, current) = [&DEPLOYMENTS, &ROLLOUTS]
                .into_iter()
                .find_map(|kind| Some((kind, store.get(kind, ns, &d.service)?)))
                .ok_or_else(|| format!("deployment {ns}/{} is gone", d.service))?;
            let mut next = (*current).clone();
            next["spec"]["template"]["spec"]["containers"][0]["image"] = json!(d.image);
            let cause = d
                .change_cause
                .clone()
                .unwrap_or_else(|| format!("deploy {}", d.image));
            next["metadata"]["annotations"][CHANGE_CAUSE] = json!(cause);
            next["metadata"]["annotations"][DEPLOYED_BY] = json!(d.by);
            store
                .update(kind, next)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Action::ConfigMap(c) => match store.get(&CONFIGMAPS, ns, &c.name) {
            Some(current) => {
                let mut next = (*current).clone();
                next["data"] = json!(c.data);
                store
                    .update(&CONFIGMAPS, next)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            None => create(
                store,
                &CONFIGMAPS,
                json!({"metadata": {"name": c.name, "namespace": ns}, "data": c.data}),
            ),
        },
        Action::Migration(m) => {
            // No Job controller runs here: the migration is born finished.
            let now = now_rfc3339();
            let mut job = migration_job(ns, m);
            job["status"] = json!({"startTime": now, "completionTime": now, "succeeded": 1,
                "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}]});
            create(store, &JOBS, job)
        }
        Action::Traffic(t) => {
            telemetry.traffic.set_rps(ns, &t.service, t.rps);
            Ok(())
        }
        Action::Fault(f) => {
            telemetry.traffic.set_fault(ns, f.clone());
            Ok(())
        }
        // The switchboard lives beside the store, and the control loop sets it; so
        // do the flags.
        Action::Faults(_) | Action::Flag(_) => Ok(()),
    }
}
