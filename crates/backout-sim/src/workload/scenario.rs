//! A scenario played against any API server: its namespace, ConfigMaps, Secrets,
//! Deployments (or Argo Rollouts, where the CRD is installed) and Services created as
//! the simulator seeds its own store, then its
//! deploys, ConfigMap changes and migration Jobs at their times, and its traffic
//! changes and faults in the workload's own traffic. The fault switchboard belongs
//! to the simulator's own API server and is skipped, and said so.

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::metrics::SharedTraffic;
use crate::scenario::{Action, Scenario};
use backout_k8s::template::{CHANGE_CAUSE, DEPLOYED_BY};

/// Creates what already exists when `scenario` starts; what is there is left alone.
pub async fn seed(client: &Client, scenario: &Scenario) -> anyhow::Result<()> {
    let ns = scenario.namespace.as_str();
    create::<Namespace>(Api::all(client.clone()), json!({"metadata": {"name": ns}})).await?;
    for svc in &scenario.services {
        if let Some(cm) = &svc.configmap {
            let obj = json!({"metadata": {"name": cm, "namespace": ns, "labels": {"app": svc.name}}, "data": {"LOG_LEVEL": "info"}});
            create::<ConfigMap>(Api::namespaced(client.clone(), ns), obj).await?;
        }
        if let Some(secret) = &svc.secret {
            let obj = json!({"metadata": {"name": secret, "namespace": ns, "labels": {"app": svc.name}}, "type": "Opaque", "data": {"API_KEY": "c2ltdWxhdGVk"}});
            create::<Secret>(Api::namespaced(client.clone(), ns), obj).await?;
        }
        let mut deployment = crate::world::deployment(ns, svc);
        match &svc.canary_steps {
            Some(steps) => {
                deployment["apiVersion"] = json!("argoproj.io/v1alpha1");
                deployment["kind"] = json!("Rollout");
                deployment["spec"]["strategy"] = json!({"canary": {"steps": steps}});
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &rollouts());
                create(api, deployment).await?;
            }
            None => create::<Deployment>(Api::namespaced(client.clone(), ns), deployment).await?,
        }
        let service = json!({"metadata": {"name": svc.name, "namespace": ns, "labels": {"app": svc.name}},
            "spec": {"selector": {"app": svc.name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
        create::<Service>(Api::namespaced(client.clone(), ns), service).await?;
    }
    Ok(())
}

/// Argo Rollouts' Rollout, served only where its CRD is installed.
fn rollouts() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"))
}

async fn create<K>(api: Api<K>, obj: Value) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(obj).context("a scenario object")?;
    match api.create(&PostParams::default(), &typed).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).context("creating a scenario object"),
    }
}

/// A Rollout takes no strategic merge (it is a custom resource): its annotations by
/// merge, then its image by path.
async fn deploy_rollout(
    client: &Client,
    ns: &str,
    name: &str,
    metadata: &Value,
    image: &str,
) -> kube::Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &rollouts());
    let params = PatchParams::default();
    api.patch(name, &params, &Patch::Merge(&json!({"metadata": metadata})))
        .await?;
    let path = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]);
    let ops: json_patch::Patch = serde_json::from_value(path).expect("a well-formed JSON patch");
    api.patch(name, &params, &Patch::Json::<()>(ops)).await?;
    Ok(())
}

/// Plays the timeline from now, each action at its time; traffic changes and faults
/// go to `traffic`.
pub async fn play(
    client: &Client,
    scenario: &Scenario,
    traffic: &SharedTraffic,
) -> anyhow::Result<()> {
    let ns = scenario.namespace.as_str();
    let started = tokio::time::Instant::now();
    for (at, action) in scenario.actions() {
        tokio::time::sleep_until(started + at).await;
        let done = match action {
            Action::Deploy(d) => {
                let cause = d
                    .change_cause
                    .clone()
                    .unwrap_or_else(|| format!("deploy {}", d.image));
                let patch = json!({
                    "metadata": {"annotations": {CHANGE_CAUSE: cause, DEPLOYED_BY: d.by}},
                    "spec": {"template": {"spec": {"containers": [{"name": d.service, "image": d.image}]}}},
                });
                let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
                let canary = scenario
                    .services
                    .iter()
                    .any(|s| s.name == d.service && s.canary_steps.is_some());
                let sent = match canary {
                    true => {
                        deploy_rollout(client, ns, &d.service, &patch["metadata"], &d.image).await
                    }
                    false => api
                        .patch(
                            &d.service,
                            &PatchParams::default(),
                            &Patch::Strategic(&patch),
                        )
                        .await
                        .map(|_| ()),
                };
                sent.with_context(|| format!("deploying {} to {ns}/{}", d.image, d.service))?;
                format!("deployed {} to {ns}/{}", d.image, d.service)
            }
            Action::ConfigMap(c) => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
                let patch = json!({"data": c.data});
                api.patch(&c.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .with_context(|| format!("changing ConfigMap {ns}/{}", c.name))?;
                format!("changed ConfigMap {ns}/{}", c.name)
            }
            Action::Migration(m) => {
                let job = crate::world::migration_job(ns, &m);
                create::<Job>(Api::namespaced(client.clone(), ns), job).await?;
                format!("started migration Job {ns}/{}", m.name)
            }
            Action::Traffic(t) => {
                traffic
                    .lock()
                    .expect("traffic lock")
                    .set_rps(ns, &t.service, t.rps);
                format!("{ns}/{} now gets {} requests/s", t.service, t.rps)
            }
            Action::Fault(f) => {
                let said = format!("fault in {ns}/{}", f.service);
                traffic.lock().expect("traffic lock").set_fault(ns, f);
                said
            }
            Action::Faults(_) => {
                "skipped a fault switchboard change: it belongs to the simulator's own API server"
                    .to_string()
            }
            Action::Flag(f) => format!(
                "skipped turning flag {} {}: flags are served by the simulator's own API server",
                f.name,
                if f.on { "on" } else { "off" }
            ),
        };
        println!("{}: {done}", humantime::format_duration(at));
    }
    // The timeline is over; the kubelet runs on.
    std::future::pending::<()>().await;
    Ok(())
}
