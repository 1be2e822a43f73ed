//! The core loop: it owns the `State`, takes messages from the one channel, applies
//! them with `update`, and hands the effects to the runner. Headless commands and the
//! console both drive it; nothing else mutates the state.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use tokio::sync::{mpsc, watch};

use crate::actions::{journal::Journal, runner};
use crate::config::Config;
use crate::engine::{update, Effect, KubeKind, Msg, ServiceKey, SourceHealth, SourceId, State};
use crate::sources::{self, kube::Target};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// Where the journal goes; `None` keeps no journal (for one-shot reads).
    pub journal: Option<PathBuf>,
    /// Refuse every write, whatever RBAC allows.
    pub read_only: bool,
    /// A query (`status`): no effect runs at all, so nothing pages, journals or
    /// writes, and nothing races the process's exit.
    pub observe_only: bool,
    /// The one Deployment a command acts on (`rollback`): only its own objects are
    /// watched (`sources::kube::Scope`).
    pub only: Option<String>,
    /// `-A`: every namespace, one cluster-wide watch per kind, whatever [[watch]] says.
    pub all_namespaces: bool,
}

pub struct Core {
    pub state: State,
    pub target: Target,
    /// How this core was started, so the console can start another on a new namespace.
    pub options: Options,
    /// Who this core acts as: `user@host`.
    pub actor: String,
    /// For messages from the console itself (a confirmed rollback).
    pub tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    effects: mpsc::Sender<Effect>,
    services: watch::Sender<Vec<ServiceKey>>,
    runner: tokio::task::JoinHandle<()>,
}

/// How long one step may go on applying queued messages: half a 60 Hz frame.
const STEP_BUDGET: Duration = Duration::from_millis(8);

/// Kinds whose first list must arrive before decisions mean anything.
const NEEDED: [KubeKind; 7] = [
    KubeKind::Deployment,
    KubeKind::Rollout,
    KubeKind::ReplicaSet,
    KubeKind::Pod,
    KubeKind::Job,
    KubeKind::ConfigMap,
    KubeKind::Secret,
];

impl Core {
    pub async fn start(config: Config, opts: Options) -> anyhow::Result<Core> {
        let options = opts.clone();
        let target = sources::kube::connect(
            opts.kubeconfig.as_deref(),
            opts.context.as_deref(),
            opts.namespace.as_deref(),
        )
        .await?;
        let (tx, rx) = mpsc::channel::<Msg>(4096);
        // An explicit namespace (-n, or `:ns` in the console) narrows the config's list.
        let mut namespaces: Vec<String> = config
            .watch
            .iter()
            .map(|w| w.namespace.clone())
            .filter(|ns| opts.namespace.as_ref().is_none_or(|want| want == ns))
            .collect();
        namespaces.sort();
        namespaces.dedup();
        if namespaces.is_empty() {
            namespaces.push(target.namespace.clone());
        }
        let mut config = config;
        if opts.all_namespaces {
            namespaces = vec![String::new()];
            config.watch.clear();
        }
        let scope = sources::kube::Scope {
            deployment: opts.only.clone(),
        };
        sources::kube::spawn(&target.client, &namespaces, &scope, tx.clone());
        let (services, services_rx) = watch::channel(Vec::new());
        match &config.prometheus {
            Some(p) => {
                let prom = sources::prometheus::Prometheus::new(p).context("backout.toml")?;
                sources::poller::spawn(prom, &config, services_rx, tx.clone());
            }
            None => {
                let health = SourceHealth::Unavailable(
                    "no [prometheus] section in backout.toml: triggers are not evaluated".into(),
                );
                tx.send(Msg::Source {
                    source: SourceId::Prometheus,
                    health,
                })
                .await
                .ok();
            }
        }
        if let Some(am) = &config.alertmanager {
            sources::alertmanager::spawn(am.clone(), tx.clone());
        }
        sources::terraform::spawn(config.terraform.clone(), tx.clone());
        sources::aliases::spawn(&config, tx.clone());
        sources::flags::spawn(config.flags.clone(), tx.clone());
        let ticks = tx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                if ticks.send(Msg::Tick(Timestamp::now())).await.is_err() {
                    return;
                }
            }
        });
        let journal = match &opts.journal {
            Some(path) => Some(Journal::open(path).with_context(|| {
                format!(
                    "cannot open the journal {}; set BACKOUT_JOURNAL to a writable path",
                    path.display()
                )
            })?),
            None => None,
        };
        let notifiers = crate::actions::notify::Notifiers::from_config(&config.notifications)
            .map_err(anyhow::Error::msg)?;
        // Read-only when asked, or when RBAC says this user may not patch Deployments.
        // The reviews and who-am-I go out together, beside the first lists.
        let reviews = async {
            if opts.read_only {
                return Some("--read-only was given".to_string());
            }
            let checks = namespaces
                .iter()
                .map(|ns| crate::actions::access::may_roll_back(&target.client, ns));
            futures::future::join_all(checks)
                .await
                .into_iter()
                .find_map(Result::err)
        };
        let (read_only, actor) =
            tokio::join!(reviews, crate::actions::access::actor(&target.client));
        let (effects, effects_rx) = mpsc::channel(4096);
        let ctx = runner::Context {
            client: target.client.clone(),
            config: config.clone(),
            holder: crate::actions::lease::holder(&actor),
            actor: actor.clone(),
            read_only: read_only.clone(),
            notifiers,
        };
        let runner = if opts.observe_only {
            let (mut effects_rx, registries, tx) =
                (effects_rx, config.registry.clone(), tx.clone());
            // Observing writes nothing; asking a registry about an image is a read,
            // as a watch is, so it is the one effect carried out.
            tokio::spawn(async move {
                while let Some(effect) = effects_rx.recv().await {
                    if let Effect::CheckImages { images } = effect {
                        let (registries, tx) = (registries.clone(), tx.clone());
                        tokio::spawn(async move {
                            let answers =
                                crate::actions::registry::check(&registries, images).await;
                            let _ = tx.send(Msg::ImagesChecked(answers)).await;
                        });
                    }
                }
            })
        } else {
            runner::spawn(journal, ctx, effects_rx, tx.clone())
        };
        let mut state = State::new(config, Timestamp::now());
        state.read_only = read_only;
        state.actor.clone_from(&actor);
        Ok(Core {
            state,
            target,
            options,
            actor,
            tx,
            rx,
            effects,
            services,
            runner,
        })
    }

    /// `start`, bounded: connecting, checking access and asking who we are count
    /// against the caller's deadline (`--wait`, settle); `more` says how to allow
    /// more time.
    pub async fn start_within(
        config: Config,
        opts: Options,
        deadline: Duration,
        more: &str,
    ) -> anyhow::Result<Core> {
        match tokio::time::timeout(deadline, Core::start(config, opts)).await {
            Ok(started) => started,
            Err(_) => anyhow::bail!(
                "the cluster did not answer within {} while connecting, checking access \
                 and asking who you are; check that the API server is reachable ({more})",
                humantime::format_duration(deadline)
            ),
        }
    }

    /// Applies a message of this process's own (a key, a flag) at once, with no
    /// round trip through the channel the same task drains.
    pub async fn apply(&mut self, msg: Msg) -> bool {
        let effects = update(&mut self.state, msg);
        self.dispatch(effects).await
    }

    async fn dispatch(&mut self, effects: Vec<Effect>) -> bool {
        for effect in effects {
            if self.effects.send(effect).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Steps until `done` holds, or `deadline` passes; says which.
    pub async fn run_until(&mut self, deadline: Duration, done: impl Fn(&State) -> bool) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        while !done(&self.state) {
            match tokio::time::timeout_at(until, self.step()).await {
                Ok(true) => {}
                _ => return false,
            }
        }
        true
    }

    /// Every kind this core watches has been listed once.
    /// A kind RBAC hides counts as listed: it is known to be unknown, and waiting
    /// would never end (the built-in `view` role lists no Secrets).
    pub fn listed(state: &State) -> bool {
        NEEDED
            .iter()
            .all(|k| state.synced.contains(k) || state.unseen.keys().any(|(kind, _)| kind == k))
            && Core::aliases_read(state)
    }

    /// Every `[[lambda]]` and `[[model]]` alias read once, or their reader failing
    /// (and saying why).
    pub fn aliases_read(state: &State) -> bool {
        let failing = matches!(
            state.sources.get(&SourceId::Aliases),
            Some(SourceHealth::Retrying { .. } | SourceHealth::Unavailable(_))
        );
        failing
            || sources::aliases::keys(&state.config)
                .iter()
                .all(|k| state.services.contains_key(k))
    }

    /// Lets the runner finish what it was handed (journal lines, a Lease to give back)
    /// and waits for it, bounded: nothing is left to a sleep.
    pub async fn shutdown(self, grace: Duration) {
        let Core {
            effects, runner, ..
        } = self;
        drop(effects);
        let _ = tokio::time::timeout(grace, runner).await;
    }

    /// Waits for the next message, applies it and everything queued behind it, and
    /// dispatches the effects. Returns false when every source has stopped.
    pub async fn step(&mut self) -> bool {
        let Some(first) = self.rx.recv().await else {
            return false;
        };
        let started = std::time::Instant::now();
        let mut effects = update(&mut self.state, first);
        // What is queued behind it, within a budget: a cold start queues thousands of
        // objects, and the console handles a key or draws a frame only between steps.
        while started.elapsed() < STEP_BUDGET {
            let Ok(msg) = self.rx.try_recv() else { break };
            effects.extend(update(&mut self.state, msg));
        }
        if !self.dispatch(effects).await {
            return false;
        }
        // Compared in place: cloning 2,000 keys every step just to compare them was a
        // fifth of the console's allocation calls at 2k services (heaptrack).
        let keys = &self.state.services;
        self.services.send_if_modified(|current| {
            let changed = !current.iter().eq(keys.keys());
            if changed {
                *current = keys.keys().cloned().collect();
            }
            changed
        });
        true
    }

    /// The cluster is listed and every trigger of every service has been answered.
    pub fn ready(&self) -> bool {
        // Listed, and every watcher past its first answer: a hidden kind's watcher
        // reports through the health aggregator, which may lag its own message.
        let listed = Core::listed(&self.state)
            && self.state.sources.get(&SourceId::Kubernetes) == Some(&SourceHealth::Connected);
        let answered = self.state.config.prometheus.is_none()
            || self.state.services.values().all(|s| {
                let mut asked = self.state.config.triggers.iter().filter(|t| s.asks(t));
                asked.all(|t| {
                    s.triggers
                        .get(&t.name)
                        .is_some_and(|ts| ts.last_answer.is_some())
                })
            });
        // A registry asked about a target image answers within its timeout.
        let images = !self
            .state
            .images
            .values()
            .any(|p| *p == crate::engine::model::images::ImagePresence::Asked);
        // Every watched Terraform state read once (a local file: at once).
        let infra = self
            .state
            .config
            .terraform
            .iter()
            .all(|t| self.state.infra.contains_key(&t.name));
        // Every flag read once (answered or failed).
        let flags =
            (self.state.config.flags.iter()).all(|f| self.state.flags.contains_key(&f.name));
        listed && answered && images && infra && flags && !self.state.services.is_empty()
    }

    /// Runs until `ready`, or until `deadline` passes.
    pub async fn settle(&mut self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        while !self.ready() {
            match tokio::time::timeout_at(until, self.step()).await {
                Ok(true) => {}
                _ => return false,
            }
        }
        true
    }
}
