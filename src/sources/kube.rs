//! Kubernetes through kube-rs watchers (never a polling loop): Deployments,
//! ReplicaSets, Pods, Jobs, Events, Leases and HPAs, plus ConfigMaps and Secrets as
//! metadata only. Each watcher restarts with backoff; its health becomes a message.

use std::collections::BTreeMap;
use std::fmt::Debug;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::lean::{lean, LeanPod};
use crate::engine::{KubeChange, KubeKind, KubeObject, Msg, SourceHealth, SourceId};
use crate::targets::argo_rollout::{self, Rollout};

/// Where backout is pointed, as the header shows it.
#[derive(Clone)]
pub struct Target {
    pub client: Client,
    pub context: String,
    pub cluster_url: String,
    pub namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no Kubernetes cluster is configured: {0}. Point KUBECONFIG at a kubeconfig, or try `backout demo` for a simulated cluster")]
    NoKubeconfig(String),
    #[error(
        "kubeconfig context {context:?}: {error}. `kubectl config get-contexts` lists the contexts"
    )]
    Context { context: String, error: String },
}

/// Connects as kubectl would: `--kubeconfig`, else `$KUBECONFIG` or ~/.kube/config,
/// then `--context` and `--namespace`.
pub async fn connect(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<Target, ConnectError> {
    let kubeconfig = match kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .map_err(|e| ConnectError::NoKubeconfig(unreadable(&[path.to_path_buf()], &e)))?,
        // In a pod with no kubeconfig: the service account, as client-go does.
        None if context.is_none()
            && std::env::var_os("KUBECONFIG").is_none()
            && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() =>
        {
            return in_cluster(namespace);
        }
        None => Kubeconfig::read()
            .map_err(|e| ConnectError::NoKubeconfig(unreadable(&default_kubeconfigs(), &e)))?,
    };
    let name = context
        .map(str::to_string)
        .or(kubeconfig.current_context.clone())
        .unwrap_or_default();
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| ConnectError::Context {
            context: name.clone(),
            error: e.to_string(),
        })?;
    target(config, name, namespace)
}

/// Where kubectl looks: each path in $KUBECONFIG, else ~/.kube/config.
fn default_kubeconfigs() -> Vec<std::path::PathBuf> {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => std::env::split_paths(&list).collect(),
        None => std::env::var_os("HOME")
            .map(|h| std::path::Path::new(&h).join(".kube").join("config"))
            .into_iter()
            .collect(),
    }
}

/// Why no kubeconfig could be read, naming the file once: "… does not exist", or
/// the reader's own words.
fn unreadable(paths: &[std::path::PathBuf], e: &kube::config::KubeconfigError) -> String {
    match paths.iter().find(|p| !p.exists()) {
        Some(missing) => format!("{} does not exist", missing.display()),
        None => e.to_string(),
    }
}

/// A client for `config`, in `namespace` if one is given, named as `context`.
fn target(
    mut config: kube::Config,
    context: String,
    namespace: Option<&str>,
) -> Result<Target, ConnectError> {
    if let Some(ns) = namespace {
        config.default_namespace = ns.to_string();
    }
    let cluster_url = config.cluster_url.to_string();
    let namespace = config.default_namespace.clone();
    let client = super::kube_client::build(config).map_err(|e| ConnectError::Context {
        context: context.clone(),
        error: e.to_string(),
    })?;
    Ok(Target {
        client,
        context,
        cluster_url,
        namespace,
    })
}

fn in_cluster(namespace: Option<&str>) -> Result<Target, ConnectError> {
    let context = "in-cluster".to_string();
    let config = kube::Config::incluster().map_err(|e| ConnectError::Context {
        context: context.clone(),
        error: e.to_string(),
    })?;
    target(config, context, namespace)
}

/// Kinds backout reads for its notes, not for its decisions' footing: a user RBAC
/// hides them from still gets a picture, with what is unknown said.
const OPTIONAL: [KubeKind; 5] = [
    KubeKind::ConfigMap,
    KubeKind::Secret,
    KubeKind::Lease,
    KubeKind::Event,
    KubeKind::Hpa,
];

/// Reports per-watcher health to one aggregated Kubernetes health.
#[derive(Clone)]
struct Health(mpsc::UnboundedSender<(String, SourceHealth)>);

/// A client error in one line: the API server's own message and code, never the
/// Debug dump of its Status.
pub fn one_line(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

fn describe(e: &watcher::Error) -> SourceHealth {
    let status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.as_ref().clone()),
        watcher::Error::WatchError(s) => Some(s.as_ref().clone()),
        _ => None,
    };
    match status {
        Some(s) if s.code == 403 => SourceHealth::Forbidden(format!(
            "{}; ask for get, list and watch on it (assets/deploy/ lists what backout needs)",
            s.message
        )),
        _ => SourceHealth::Retrying {
            attempt: 0,
            retry_in_secs: 1,
            error: e.to_string(),
        },
    }
}

/// Longer than the watcher's longest pause between retries (kube-runtime's default
/// backoff caps at 30 s).
const RECONNECTED_AFTER: std::time::Duration = std::time::Duration::from_secs(35);

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: KubeKind,
    namespace: String,
    wrap: fn(K) -> KubeObject,
    tx: mpsc::Sender<Msg>,
    health: Health,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let label = format!("{namespace}/{kind:?}");
    let stream = watcher(api, config).default_backoff();
    let mut buffer = Vec::new();
    let mut stream = std::pin::pin!(stream);
    // Since when this watcher has been failing. A watch that resumes from its
    // resourceVersion yields no event of its own, so it is known to be back either by
    // its next event or by a retry period passing without a new error: the backoff
    // retries at least every RECONNECTED_AFTER, and each failed try is an error.
    let mut failing: Option<tokio::time::Instant> = None;
    let mut unseen_sent = false;
    loop {
        let quiet_until = failing.map(|since| since + RECONNECTED_AFTER);
        let event = tokio::select! {
            event = stream.next() => event,
            _ = sleep_until_some(quiet_until) => {
                failing = None;
                let _ = health.0.send((label.clone(), SourceHealth::Connected));
                continue;
            }
        };
        let Some(event) = event else { return };
        if event.is_ok() && failing.take().is_some() {
            let _ = health.0.send((label.clone(), SourceHealth::Connected));
        }
        let msg = match event {
            Ok(watcher::Event::Init) => {
                buffer.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(o)) => {
                buffer.push(wrap(o));
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                let _ = health.0.send((label.clone(), SourceHealth::Connected));
                KubeChange::Relisted {
                    kind,
                    namespace: namespace.clone(),
                    objects: std::mem::take(&mut buffer),
                }
            }
            Ok(watcher::Event::Apply(o)) => KubeChange::Applied(wrap(o)),
            Ok(watcher::Event::Delete(o)) => KubeChange::Deleted(wrap(o)),
            Err(e) => {
                let described = describe(&e);
                // A kind backout can do without, hidden by RBAC: said once, as what
                // it is (unknown), not as a cluster that cannot be read.
                if let (SourceHealth::Forbidden(why), true) = (&described, OPTIONAL.contains(&kind))
                {
                    if !unseen_sent {
                        unseen_sent = true;
                        // Settled: this watcher knows all it will be let know.
                        let _ = health.0.send((label.clone(), SourceHealth::Connected));
                        let why = why.clone();
                        let unseen = KubeChange::Unseen {
                            kind,
                            namespace: namespace.clone(),
                            why,
                        };
                        if tx.send(Msg::Kube(unseen)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                failing = Some(tokio::time::Instant::now());
                let _ = health.0.send((label.clone(), described));
                continue;
            }
        };
        if matches!(msg, KubeChange::Relisted { .. }) {
            unseen_sent = false;
        }
        if tx.send(Msg::Kube(msg)).await.is_err() {
            return; // the core has stopped
        }
    }
}

/// Starts every watcher for each of `namespaces`; they run until the receiver is
/// dropped. One health covers them all: the worst of any watcher in any namespace, so
/// a Forbidden in one namespace is never masked by another's success.
pub fn spawn(client: &Client, namespaces: &[String], scope: &Scope, tx: mpsc::Sender<Msg>) {
    let (health_tx, mut health_rx) = mpsc::unbounded_channel::<(String, SourceHealth)>();
    // Whether Rollouts are served is the cluster's answer, asked once for every namespace.
    let rollouts = RolloutsServed::default();
    for ns in namespaces {
        let health = Health(health_tx.clone());
        watch_namespace(client, ns, scope, &tx, &health, &rollouts);
    }
    drop(health_tx);
    // One health for the whole source: the worst of its watchers.
    tokio::spawn(async move {
        let mut each: BTreeMap<String, SourceHealth> = BTreeMap::new();
        let mut last = None;
        while let Some((watcher, h)) = health_rx.recv().await {
            each.insert(watcher, h);
            let worst = each
                .iter()
                .find(|(_, h)| matches!(h, SourceHealth::Forbidden(_)))
                .or_else(|| {
                    each.iter()
                        .find(|(_, h)| !matches!(h, SourceHealth::Connected))
                })
                .map(|(w, h)| match h {
                    SourceHealth::Forbidden(m) => SourceHealth::Forbidden(format!("{w}: {m}")),
                    SourceHealth::Retrying {
                        attempt,
                        retry_in_secs,
                        error,
                    } => SourceHealth::Retrying {
                        attempt: *attempt,
                        retry_in_secs: *retry_in_secs,
                        error: format!("{w}: {error}"),
                    },
                    other => other.clone(),
                })
                .unwrap_or(SourceHealth::Connected);
            if last.as_ref() != Some(&worst) {
                last = Some(worst.clone());
                if tx
                    .send(Msg::Source {
                        source: SourceId::Kubernetes,
                        health: worst,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
}

/// What to watch in each namespace: all of it, or one Deployment's own objects.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// A command that acts on one Deployment (`rollback`) watches only its
    /// Deployment, ReplicaSets and pods, and no Events: at 20,000 pods, listing them
    /// all would be most of a rollback's time. Jobs, Leases, HPAs, ConfigMaps and
    /// Secrets stay namespace-wide, as the gates read them.
    pub deployment: Option<String>,
}

/// The list/watch options per kind for one namespace.
struct Selectors {
    deployment: watcher::Config,
    owned: watcher::Config,
    events: bool,
}

impl Selectors {
    fn everything() -> Selectors {
        Selectors {
            deployment: watcher::Config::default(),
            owned: watcher::Config::default(),
            events: true,
        }
    }

    /// Deployment (or Rollout) `name`'s own objects, found through its selector. A
    /// workload that is not there gets selectors that match nothing, so the command
    /// says "not found" without listing the namespace; one that cannot be read gets
    /// everything.
    async fn of(client: &Client, namespace: &str, name: &str) -> Selectors {
        let by_name = format!("metadata.name={name}");
        let selector = match Api::<Deployment>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
        {
            Ok(Some(d)) => d.spec.map(|s| s.selector),
            Ok(None) => match Api::<Rollout>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await
            {
                Ok(Some(r)) => r.spec.and_then(|s| s.selector),
                // Not there, or no Rollouts served: nothing to watch.
                Ok(None) | Err(_) => {
                    return Selectors {
                        deployment: watcher::Config::default().fields(&by_name),
                        owned: watcher::Config::default().fields(&by_name),
                        events: false,
                    }
                }
            },
            Err(_) => return Selectors::everything(),
        };
        let labels = selector.and_then(|selector| {
            if selector.match_expressions.is_some_and(|e| !e.is_empty()) {
                return None;
            }
            let pairs: Vec<String> = selector
                .match_labels?
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            (!pairs.is_empty()).then(|| pairs.join(","))
        });
        Selectors {
            deployment: watcher::Config::default().fields(&by_name),
            owned: labels.map_or_else(watcher::Config::default, |l| {
                watcher::Config::default().labels(&l)
            }),
            events: false,
        }
    }
}

/// The watchers of one namespace, each reporting its health as `namespace/Kind`.
/// The discovery answer for Argo Rollouts' CRD, shared by the namespaces' watchers.
type RolloutsServed = std::sync::Arc<tokio::sync::OnceCell<bool>>;

fn watch_namespace(
    client: &Client,
    namespace: &str,
    scope: &Scope,
    tx: &mpsc::Sender<Msg>,
    health: &Health,
    rollouts_served: &RolloutsServed,
) {
    let ns = namespace.to_string();
    let mut kinds = vec![
        KubeKind::Deployment,
        KubeKind::ReplicaSet,
        KubeKind::Pod,
        KubeKind::Job,
        KubeKind::Lease,
        KubeKind::Hpa,
        KubeKind::ConfigMap,
        KubeKind::Secret,
    ];
    if scope.deployment.is_none() {
        kinds.push(KubeKind::Event);
    }
    // Sent before any watcher runs: the source is Connected only once every watcher
    // in every namespace has listed.
    for kind in &kinds {
        let _ = health
            .0
            .send((format!("{ns}/{kind:?}"), SourceHealth::Connecting));
    }
    let (client, tx, health, scope) = (client.clone(), tx.clone(), health.clone(), scope.clone());
    let rollouts_served = rollouts_served.clone();
    tokio::spawn(async move {
        let selectors = async {
            match &scope.deployment {
                Some(name) => Selectors::of(&client, &ns, name).await,
                None => Selectors::everything(),
            }
        };
        // Argo Rollouts' CRD, where installed: announced before any watcher here runs,
        // so the source is not Connected until the Rollouts have listed too. Asked
        // beside the selector: two round trips before the lists, not one after another.
        let rollouts = rollouts_served.get_or_init(|| argo_rollout::served(&client));
        let (selectors, &rollouts) = tokio::join!(selectors, rollouts);
        if rollouts {
            let label = format!("{ns}/{:?}", KubeKind::Rollout);
            let _ = health.0.send((label, SourceHealth::Connecting));
        } else {
            // None served is a complete list of none, so nobody waits for one.
            let none = KubeChange::Relisted {
                kind: KubeKind::Rollout,
                namespace: ns.clone(),
                objects: Vec::new(),
            };
            let _ = tx.send(Msg::Kube(none)).await;
        }
        macro_rules! watch {
            ($ty:ty, $config:expr, $kind:expr, $wrap:expr) => {
                tokio::spawn(run(
                    // `""` is every namespace (`-A`): one cluster-wide watch per kind.
                    if ns.is_empty() {
                        Api::<$ty>::all(client.clone())
                    } else {
                        Api::<$ty>::namespaced(client.clone(), &ns)
                    },
                    $config,
                    $kind,
                    ns.clone(),
                    $wrap,
                    tx.clone(),
                    health.clone(),
                ));
            };
        }
        let all = watcher::Config::default;
        watch!(
            Deployment,
            selectors.deployment.clone(),
            KubeKind::Deployment,
            |o| { KubeObject::Deployment(Box::new(lean(o))) }
        );
        if rollouts {
            watch!(
                Rollout,
                selectors.deployment.clone(),
                KubeKind::Rollout,
                |o| { KubeObject::Rollout(Box::new(lean(o))) }
            );
        }
        watch!(
            ReplicaSet,
            selectors.owned.clone(),
            KubeKind::ReplicaSet,
            |o| { KubeObject::ReplicaSet(Box::new(lean(o))) }
        );
        watch!(
            LeanPod,
            selectors.owned,
            KubeKind::Pod,
            |o| KubeObject::pod(&o.into_pod())
        );
        watch!(Job, all(), KubeKind::Job, |o| KubeObject::Job(Box::new(
            lean(o)
        )));
        if selectors.events {
            watch!(Event, all(), KubeKind::Event, |o| KubeObject::Event(
                Box::new(lean(o))
            ));
        }
        watch!(Lease, all(), KubeKind::Lease, |o| KubeObject::Lease(
            Box::new(lean(o))
        ));
        watch!(HorizontalPodAutoscaler, all(), KubeKind::Hpa, |o| {
            KubeObject::Hpa(Box::new(lean(o)))
        });
        // Metadata only: backout never reads what a ConfigMap or Secret holds.
        watch!(
            PartialObjectMeta<ConfigMap>,
            all(),
            KubeKind::ConfigMap,
            |m| { KubeObject::ConfigMap(Box::new(m.metadata)) }
        );
        watch!(PartialObjectMeta<Secret>, all(), KubeKind::Secret, |m| {
            KubeObject::Secret(Box::new(m.metadata))
        });
    });
}
