//! The workload half of the simulator, against any API server: one node and a
//! kubelet for it, as a client only. It registers the node and keeps its Lease
//! renewed, binds the pods no scheduler placed, runs them as the scenario's images
//! say (Ready after the start delay, or crash-looping with growing restart counts),
//! and confirms graceful deletions, as a kubelet does. `scenario.rs` creates the
//! scenario's objects there and plays its timeline; `metrics.rs` serves the traffic
//! of its pods for a real Prometheus to scrape.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::scenario::{ImageBehaviour, Scenario};

pub mod metrics;
pub mod scenario;

/// How often the kubelet looks at its pods and renews its node's Lease.
const TICK: Duration = Duration::from_secs(1);
/// How often a crash-looping container restarts.
const RESTART_EVERY: Duration = Duration::from_secs(5);
const LEASE_SECONDS: i32 = 40;

pub struct Kubelet {
    client: Client,
    node: String,
    images: BTreeMap<String, ImageBehaviour>,
    start_delay: Duration,
}

impl Kubelet {
    pub fn new(client: Client, node: &str, scenario: &Scenario) -> Kubelet {
        Kubelet {
            client,
            node: node.to_string(),
            images: scenario.images.clone(),
            start_delay: scenario.pod_start_delay,
        }
    }

    /// Registers the node, then runs its pods until the task is dropped.
    pub async fn run(self) -> anyhow::Result<()> {
        self.register().await?;
        // The watch ends with the kubelet, however the kubelet's task ends.
        let (store, _watch) = watched::<Pod>(Api::all(self.client.clone()));
        let mut every = tokio::time::interval(TICK);
        loop {
            every.tick().await;
            if let Err(e) = self.heartbeat().await {
                tracing::warn!("renewing node {}: {e:#}", self.node);
            }
            for pod in store.state() {
                if let Err(e) = self.reconcile(&pod).await {
                    tracing::debug!("pod {}: {e}", pod.name_any());
                }
            }
        }
    }

    async fn register(&self) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node, "backout.dev/simulated": "true"}},
        }))?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).context("registering the node"),
        }
        self.heartbeat().await
    }

    /// The node's Ready condition and its Lease, as the node lifecycle controller
    /// reads them: without both it would taint the node and evict the pods.
    async fn heartbeat(&self) -> anyhow::Result<()> {
        let now = Timestamp::now().to_string();
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "backout's simulated kubelet", "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "nodeInfo": {"kubeletVersion": "v1.37.2-backout-sim", "architecture": "amd64", "operatingSystem": "linux",
                "containerRuntimeVersion": "simulated://1", "kernelVersion": "", "kubeProxyVersion": "", "machineID": "",
                "osImage": "simulated", "systemUUID": "", "bootID": ""},
        }});
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .patch_status(&self.node, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .context("the node's status")?;
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.node, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.node, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()},
        });
        let apply = PatchParams::apply("backout-sim-kubelet").force();
        leases
            .patch(&self.node, &apply, &Patch::Apply(&lease))
            .await
            .context("the node's Lease")?;
        Ok(())
    }

    async fn reconcile(&self, pod: &Pod) -> Result<(), kube::Error> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let spec = pod.spec.clone().unwrap_or_default();
        let Some(node) = spec.node_name.clone() else {
            // No scheduler runs beside this kubelet: it places every pod itself.
            let binding = json!({"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node}});
            api.create_subresource::<serde_json::Value, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await?;
            return Ok(());
        };
        if node != self.node {
            return Ok(());
        }
        if pod.metadata.deletion_timestamp.is_some() {
            // The kubelet's part of a graceful deletion: the containers are gone.
            api.delete(&name, &DeleteParams::default().grace_period(0))
                .await?;
            return Ok(());
        }
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0);
        let age = Timestamp::now().duration_since(created);
        if age.as_secs_f64() < self.start_delay.as_secs_f64() {
            return Ok(());
        }
        let crash = spec.containers.iter().any(|c| {
            c.image
                .as_ref()
                .and_then(|i| self.images.get(i))
                .is_some_and(|b| b.crash)
        });
        let run = if crash {
            Run::CrashLoop((age.as_secs_f64() / RESTART_EVERY.as_secs_f64()) as i32)
        } else if spec.restart_policy.as_deref() == Some("Never") {
            // A Job's pod (a migration): it runs once and exits 0.
            Run::Completed
        } else {
            Run::Serving
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let counted = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .map(|c| c.restart_count);
        if phase == Some(run.phase()) && counted == Some(run.restarts()) {
            return Ok(());
        }
        let status = pod_status(&spec, created, run);
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }
}

/// A reflector's store of `api`'s objects, kept by a watch that ends when the
/// returned guard is dropped.
fn watched<K>(api: Api<K>) -> (reflector::Store<K>, AbortOnDrop)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = futures::StreamExt::next(&mut stream).await {
            if let Err(e) = event {
                tracing::warn!("the workload's watch of {}: {e}", K::plural(&()));
            }
        }
    });
    (store, AbortOnDrop(task))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a pod's containers do once started, as its image says.
#[derive(Debug, Clone, Copy)]
enum Run {
    Serving,
    CrashLoop(i32),
    Completed,
}

impl Run {
    fn phase(self) -> &'static str {
        match self {
            Run::Completed => "Succeeded",
            _ => "Running",
        }
    }

    fn restarts(self) -> i32 {
        match self {
            Run::CrashLoop(n) => n,
            _ => 0,
        }
    }
}

/// A started pod's status: serving and ready, crash-looping after some restarts, or
/// run to completion.
fn pod_status(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    created: Timestamp,
    run: Run,
) -> serde_json::Value {
    let now = Timestamp::now().to_string();
    let started = created.to_string();
    let ready = matches!(run, Run::Serving);
    let flag = if ready { "True" } else { "False" };
    let containers: Vec<serde_json::Value> = spec
        .containers
        .iter()
        .map(|c| {
            let mut s = json!({"name": c.name, "image": c.image, "imageID": format!("simulated://{}", c.image.clone().unwrap_or_default()),
                "ready": ready, "started": ready, "restartCount": run.restarts()});
            match run {
                Run::Serving => s["state"] = json!({"running": {"startedAt": started}}),
                Run::CrashLoop(_) => {
                    s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}});
                    s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started, "finishedAt": now}});
                }
                Run::Completed => {
                    s["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now}});
                }
            }
            s
        })
        .collect();
    let condition = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastTransitionTime": now});
    json!({"status": {
        "phase": run.phase(),
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "startTime": started,
        "conditions": [condition("PodScheduled", "True"), condition("Initialized", "True"),
            condition("ContainersReady", flag), condition("Ready", flag)],
        "containerStatuses": containers,
    }})
}
