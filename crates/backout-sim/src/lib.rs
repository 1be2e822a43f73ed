//! The simulated cluster: a Kubernetes API server with Deployment, ReplicaSet and
//! kubelet controllers, simulated traffic, and a Prometheus-compatible metrics API,
//! all on one loopback port. It backs `backout sim`, `backout demo` and the tests.

pub mod api;
pub mod compose;
pub mod controller;
pub mod faults;
pub mod flags;
pub mod gitops;
mod label_index;
pub mod lambda;
pub mod resources;
pub mod scenario;
pub mod store;
#[cfg(test)]
mod store_tests;
pub mod telemetry;
pub mod tls;
pub mod workload;
pub mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use api::auth::Users;
use controller::{unix_ms, Behaviours, ControlPlane};
use scenario::Scenario;
use store::Store;
use telemetry::Telemetry;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub listen: SocketAddr,
    pub scenario: Option<Scenario>,
    /// Seeds the traffic noise, so a drill can be replayed.
    pub seed: u64,
    /// How often the controllers run.
    pub tick: Duration,
    /// How often traffic advances and the recorded series are evaluated.
    pub sample_interval: Duration,
    pub bookmark_interval: Duration,
    /// Events kept per resource before older resourceVersions answer 410.
    pub watch_log: usize,
    /// Serve with this CA and certificate instead of fresh ones, so that a client
    /// can be configured to trust the simulator before it starts.
    pub pki: Option<Arc<tls::Pki>>,
    /// Users beyond the three that ship, such as a service account with RBAC rules.
    pub users: Vec<api::auth::User>,
    /// Where the GitOps repository of the scenario's `gitops` services is created (a
    /// bare git repository); without it their deploys patch the Deployment directly.
    pub gitops_repo: Option<std::path::PathBuf>,
    /// How often the GitOps controller syncs from the repository.
    pub gitops_sync: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            scenario: None,
            seed: 1,
            tick: Duration::from_millis(100),
            sample_interval: Duration::from_secs(1),
            bookmark_interval: Duration::from_secs(10),
            watch_log: 10_000,
            pki: None,
            users: Vec::new(),
            gitops_repo: None,
            gitops_sync: Duration::from_secs(1),
        }
    }
}

/// What the HTTP handlers and the control loop share. Locks are held only for
/// short synchronous sections, never across an await; store before telemetry before
/// lambda before compose; flags before telemetry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub user: String,
    pub verb: String,
    pub group: String,
    /// Plural; a subresource is `deployments/scale`.
    pub resource: String,
}

pub struct SimState {
    pub store: Mutex<Store>,
    pub telemetry: Mutex<Telemetry>,
    pub users: Users,
    /// Every (user, verb, API group, resource) asked for, allowed or not: what a client
    /// really needs from RBAC.
    pub audit: Mutex<std::collections::BTreeSet<Access>>,
    pub behaviours: Behaviours,
    pub watch_resets: broadcast::Sender<()>,
    pub bookmark_interval: Duration,
    /// The fault switchboard, set by scenario events and `PUT /sim/faults`.
    pub faults: Mutex<faults::Faults>,
    /// The scenario's Lambda functions, served on the Lambda API's paths.
    pub lambda: Mutex<lambda::Functions>,
    /// The scenario's feature flags, served on Unleash's admin API paths.
    pub flags: Mutex<flags::Flags>,
    /// The scenario's Compose services, served on the Docker Engine API's paths.
    pub compose: Mutex<compose::Engine>,
}

pub struct Sim {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    pub scenario: Option<Scenario>,
    /// The CA that signed the serving certificate, for kubeconfigs and Prometheus.
    pub ca_pem: String,
    server: axum_server::Handle<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sim {
    pub async fn start(opts: SimOptions) -> anyhow::Result<Sim> {
        let behaviours = opts
            .scenario
            .as_ref()
            .map(Behaviours::from_scenario)
            .unwrap_or_default();
        let mut store = Store::new(opts.watch_log);
        let mut telemetry = Telemetry::new(opts.seed);
        let mut functions = lambda::Functions::default();
        let mut flag_set = flags::Flags::default();
        let mut engine = compose::Engine::default();
        if let Some(s) = &opts.scenario {
            world::seed(&mut store, &mut telemetry, s)
                .map_err(|e| anyhow::anyhow!("scenario {}: {e}", s.name))?;
            let aliased: Vec<_> = s.functions.iter().chain(&s.models).cloned().collect();
            functions = lambda::Functions::seed(&aliased);
            flag_set = flags::Flags::seed(&s.flags, &s.namespace);
            for f in s.functions.iter().chain(&s.models) {
                telemetry.traffic.set_rps(&f.namespace, &f.name, f.rps);
            }
            engine = compose::Engine::seed(&s.compose);
            for c in &s.compose {
                telemetry.traffic.set_rps(&c.project, &c.service, c.rps);
            }
        }
        let state = Arc::new(SimState {
            store: Mutex::new(store),
            telemetry: Mutex::new(telemetry),
            users: Users::default().with(opts.users.clone()),
            audit: Mutex::new(Default::default()),
            behaviours,
            watch_resets: broadcast::channel(4).0,
            bookmark_interval: opts.bookmark_interval,
            faults: Mutex::new(faults::Faults::default()),
            lambda: Mutex::new(functions),
            flags: Mutex::new(flag_set),
            compose: Mutex::new(engine),
        });
        let listener = std::net::TcpListener::bind(opts.listen).with_context(|| {
            format!(
                "cannot listen on {}; pick another address with --listen 127.0.0.1:PORT",
                opts.listen
            )
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let pki = match &opts.pki {
            Some(pki) => pki.clone(),
            None => Arc::new(tls::Pki::generate(addr.ip())?),
        };
        let handle = axum_server::Handle::new();
        // TCP_NODELAY: an answer written in pieces (a page of a list, a chunked
        // body) otherwise waits ~40 ms for the client's delayed ACK before its tail.
        let server = axum_server::from_tcp(listener)?
            .acceptor(
                axum_server::tls_rustls::RustlsAcceptor::new(
                    axum_server::tls_rustls::RustlsConfig::from_config(pki.server_config.clone()),
                )
                .acceptor(axum_server::accept::NoDelayAcceptor),
            )
            .handle(handle.clone());
        let app = api::router(state.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                tracing::error!("simulator server stopped: {e}");
            }
        });
        let repo = match (&opts.gitops_repo, &opts.scenario) {
            (Some(path), Some(scenario)) => gitops_repo(path, scenario)?,
            _ => None,
        };
        let control = tokio::spawn(run(state.clone(), opts.clone(), repo.clone()));
        let mut tasks = vec![server, control];
        if let (Some(repo), Some(scenario)) = (repo, &opts.scenario) {
            tasks.push(tokio::spawn(sync_from_git(
                state.clone(),
                repo,
                scenario.clone(),
                opts.gitops_sync,
            )));
        }
        Ok(Sim {
            addr,
            state,
            scenario: opts.scenario,
            ca_pem: pki.ca_pem.clone(),
            server: handle,
            tasks,
        })
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn namespace(&self) -> &str {
        self.scenario
            .as_ref()
            .map_or("default", |s| s.namespace.as_str())
    }

    /// Drops the watch history, so that watches from older versions get 410 Expired.
    pub fn compact(&self) {
        self.state.store.lock().expect("store lock").compact();
    }

    /// The (verb, API group, resource) triples `user` has asked for so far.
    pub fn accesses(&self, user: &str) -> Vec<(String, String, String)> {
        self.state
            .audit
            .lock()
            .expect("audit lock")
            .iter()
            .filter(|a| a.user == user)
            .map(|a| (a.verb.clone(), a.group.clone(), a.resource.clone()))
            .collect()
    }

    /// Ends every open watch stream, as an API server restart or a load balancer would.
    pub fn close_watches(&self) {
        let _ = self.state.watch_resets.send(());
    }

    pub async fn stop(mut self) {
        self.close_watches();
        self.server.graceful_shutdown(Some(Duration::from_secs(1)));
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.server.shutdown();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The scenario's GitOps services' images, committed to a new repository at `path`;
/// `None` when no service is GitOps-managed.
fn gitops_repo(
    path: &std::path::Path,
    scenario: &Scenario,
) -> anyhow::Result<Option<gitops::Repo>> {
    let images: Vec<(String, String)> = scenario
        .services
        .iter()
        .filter(|s| s.gitops.is_some())
        .map(|s| (s.name.clone(), s.image.clone()))
        .collect();
    if images.is_empty() {
        return Ok(None);
    }
    let repo = gitops::Repo::create(path, &images)
        .with_context(|| format!("creating the GitOps repository {}", path.display()))?;
    Ok(Some(repo))
}

/// The GitOps controller, as Argo CD's auto-sync: each interval, what the branch says
/// of each GitOps service is applied to its Deployment if it differs.
async fn sync_from_git(
    state: Arc<SimState>,
    repo: gitops::Repo,
    scenario: Scenario,
    every: Duration,
) {
    let services: Vec<String> = scenario
        .services
        .iter()
        .filter(|s| s.gitops.is_some())
        .map(|s| s.name.clone())
        .collect();
    let ns = scenario.namespace.clone();
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let (repo, names) = (repo.clone(), services.clone());
        let read = tokio::task::spawn_blocking(move || {
            names
                .iter()
                .filter_map(|n| Some((n.clone(), repo.synced(n).ok()??)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut store = state.store.lock().expect("store lock");
        for (service, synced) in read {
            let running = store
                .get(&resources::DEPLOYMENTS, &ns, &service)
                .and_then(|d| {
                    d["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .map(String::from)
                });
            if running.as_deref() == Some(synced.image.as_str()) {
                continue;
            }
            let deploy = scenario::Action::Deploy(scenario::Deploy {
                service,
                image: synced.image,
                change_cause: Some(synced.subject),
                by: synced.author,
            });
            let mut telemetry = state.telemetry.lock().expect("telemetry lock");
            if let Err(e) = world::apply(&mut store, &mut telemetry, &ns, &deploy) {
                tracing::warn!("GitOps sync failed: {e}");
            }
        }
    }
}

/// The control loop: timeline actions when due, the controllers every tick, and a
/// traffic sample every sample interval. A deploy of a GitOps service is a commit to
/// `repo`, which the sync then applies.
async fn run(state: Arc<SimState>, opts: SimOptions, repo: Option<gitops::Repo>) {
    let started = Instant::now();
    let ns = opts
        .scenario
        .as_ref()
        .map(|s| s.namespace.clone())
        .unwrap_or_default();
    let mut pending = opts
        .scenario
        .as_ref()
        .map(|s| s.actions())
        .unwrap_or_default()
        .into_iter()
        .peekable();
    let mut control = ControlPlane::default();
    let mut streams = faults::Streams::default();
    let mut ticker = tokio::time::interval(opts.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sample_ms = opts.sample_interval.as_millis() as u64;
    let mut last_sample = unix_ms();
    loop {
        ticker.tick().await;
        let now = unix_ms();
        // In its own scope: the store's guard must be gone before the sample's await.
        {
            let mut store = state.store.lock().expect("store lock");
            while let Some((_, action)) = pending.next_if(|(at, _)| *at <= started.elapsed()) {
                if let scenario::Action::Faults(board) = action {
                    tracing::info!("scenario faults: {board:?}");
                    *state.faults.lock().expect("faults lock") = board;
                    continue;
                }
                if let (Some(repo), scenario::Action::Deploy(d)) = (&repo, &action) {
                    if opts.scenario.as_ref().is_some_and(|s| {
                        s.services
                            .iter()
                            .any(|x| x.name == d.service && x.gitops.is_some())
                    }) {
                        let (repo, d) = (repo.clone(), d.clone());
                        // git runs off the loop: the sync applies the commit when it lands.
                        tokio::task::spawn_blocking(move || {
                            let subject = d
                                .change_cause
                                .clone()
                                .unwrap_or_else(|| format!("deploy {}", d.image));
                            if let Err(e) = repo.commit(
                                &[(d.service.clone(), d.image.clone())],
                                &subject,
                                &d.by,
                            ) {
                                tracing::warn!(
                                    "committing the deploy of {} failed: {e}",
                                    d.service
                                );
                            }
                        });
                        continue;
                    }
                }
                if let scenario::Action::Flag(f) = &action {
                    drop(store);
                    flags::toggle(&state, &f.name, f.on, &f.by);
                    store = state.store.lock().expect("store lock");
                    continue;
                }
                if let scenario::Action::Deploy(d) = &action {
                    let mut engine = state.compose.lock().expect("compose lock");
                    if engine.services.iter().any(|c| c.service == d.service) {
                        engine.deploy(&d.service, &d.image);
                        continue;
                    }
                    drop(engine);
                    let mut functions = state.lambda.lock().expect("lambda lock");
                    if let Some(f) = functions.by_name.get_mut(&d.service) {
                        let cause = d
                            .change_cause
                            .clone()
                            .unwrap_or_else(|| format!("deploy {}", d.image));
                        f.deploy(&d.image, &cause);
                        continue;
                    }
                }
                let mut telemetry = state.telemetry.lock().expect("telemetry lock");
                if let Err(e) = world::apply(&mut store, &mut telemetry, &ns, &action) {
                    tracing::warn!("scenario action {action:?} failed: {e}");
                }
            }
            control.tick(&mut store, now, &state.behaviours);
        }
        streams.tick(&state);
        if now >= last_sample + sample_ms {
            let (sampled, dt) = (state.clone(), now - last_sample);
            // Off the async workers, which serve the API meanwhile.
            let _ = tokio::task::spawn_blocking(move || sample(&sampled, now, dt)).await;
            last_sample = now;
        }
    }
}

/// One traffic sample and rule evaluation. The pods are read under the store's lock
/// and sampled after it is given back: a sample takes about 200 ms at 20,000 pods, and
/// every list and watch waited that long while the lock was held through it.
fn sample(state: &SimState, now: u64, dt: u64) {
    let services = state
        .telemetry
        .lock()
        .expect("telemetry lock")
        .traffic
        .service_keys();
    let endpoints = {
        let store = state.store.lock().expect("store lock");
        let functions = state.lambda.lock().expect("lambda lock");
        let engine = state.compose.lock().expect("compose lock");
        let cluster = lambda::WithFunctions {
            store: &store,
            functions: &functions,
            compose: &engine,
        };
        telemetry::traffic::EndpointsSnapshot::of(&cluster, services)
    };
    let mut telemetry = state.telemetry.lock().expect("telemetry lock");
    telemetry.sample(&endpoints, &state.behaviours, now, dt);
}
