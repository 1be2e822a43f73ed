//! The simulated cluster: a Kubernetes API server with Deployment, ReplicaSet and
//! kubelet controllers, simulated traffic, and a Prometheus-compatible metrics API,
//! all on one loopback port. It backs `backout sim`, `backout demo` and the tests.

pub mod api;
pub mod controller;
pub mod faults;
pub mod resources;
pub mod scenario;
pub mod store;
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
        }
    }
}

/// What the HTTP handlers and the control loop share. Locks are held only for
/// short synchronous sections, never across an await; store before telemetry.
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
        if let Some(s) = &opts.scenario {
            world::seed(&mut store, &mut telemetry, s)
                .map_err(|e| anyhow::anyhow!("scenario {}: {e}", s.name))?;
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
        let server = axum_server::tls_rustls::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(pki.server_config.clone()),
        )?
        .handle(handle.clone());
        let app = api::router(state.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                tracing::error!("simulator server stopped: {e}");
            }
        });
        let control = tokio::spawn(run(state.clone(), opts.clone()));
        Ok(Sim {
            addr,
            state,
            scenario: opts.scenario,
            ca_pem: pki.ca_pem.clone(),
            server: handle,
            tasks: vec![server, control],
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

/// The control loop: timeline actions when due, the controllers every tick, and a
/// traffic sample every sample interval.
async fn run(state: Arc<SimState>, opts: SimOptions) {
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
        let mut store = state.store.lock().expect("store lock");
        while let Some((_, action)) = pending.next_if(|(at, _)| *at <= started.elapsed()) {
            if let scenario::Action::Faults(board) = action {
                tracing::info!("scenario faults: {board:?}");
                *state.faults.lock().expect("faults lock") = board;
                continue;
            }
            let mut telemetry = state.telemetry.lock().expect("telemetry lock");
            if let Err(e) = world::apply(&mut store, &mut telemetry, &ns, &action) {
                tracing::warn!("scenario action {action:?} failed: {e}");
            }
        }
        control.tick(&mut store, now, &state.behaviours);
        drop(store);
        streams.tick(&state);
        let store = state.store.lock().expect("store lock");
        if now >= last_sample + sample_ms {
            state.telemetry.lock().expect("telemetry lock").sample(
                &store,
                &state.behaviours,
                now,
                now - last_sample,
            );
            last_sample = now;
        }
    }
}
