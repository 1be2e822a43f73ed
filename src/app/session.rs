//! One console session: the core and what the engineer sees, driven by keys. The
//! terminal loop feeds it real key presses; tests feed it keys directly and look at
//! the cluster, with no terminal in between.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::core::Core;
use crate::engine::rollbacks::{Expected, Request};
use crate::engine::{Msg, ServiceKey};
use crate::ui::state::{Command, UiState};

pub struct Session {
    pub core: Core,
    pub ui: UiState,
    /// A core starting on another namespace or context, while this one keeps drawing.
    pub switching: Pending,
    /// The reader of the open pod's summary and logs; aborted when it closes.
    pod_reader: Option<tokio::task::JoinHandle<()>>,
    pod_openings: u64,
}

/// A namespace or context switch under way: the new core connects, lists and checks
/// access in its own task, so the key handler never waits on the network.
#[derive(Default)]
pub struct Pending(Option<tokio::task::JoinHandle<anyhow::Result<Core>>>);

impl Pending {
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// The new core, once started; pending for ever when no switch is under way, so
    /// it can sit in a `select!` beside the other sources.
    pub async fn next(&mut self) -> anyhow::Result<Core> {
        let Some(task) = self.0.as_mut() else {
            return std::future::pending().await;
        };
        let started = task.await;
        self.0 = None;
        started.unwrap_or_else(|e| Err(anyhow::anyhow!("the new core's task failed: {e}")))
    }

    fn replace(&mut self, task: tokio::task::JoinHandle<anyhow::Result<Core>>) {
        if let Some(old) = self.0.replace(task) {
            old.abort();
        }
    }
}

/// The header's namespace: `-A` watches them all, and the list then names each
/// service's namespace.
fn namespace_shown(core: &Core) -> String {
    match core.options.all_namespaces {
        true => crate::ui::state::ALL_NAMESPACES.to_string(),
        false => core.target.namespace.clone(),
    }
}

/// Whether the session goes on after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

impl Session {
    pub fn new(core: Core, mut ui: UiState) -> Session {
        ui.user.clone_from(&core.actor);
        ui.namespace = namespace_shown(&core);
        Session {
            core,
            ui,
            switching: Pending::default(),
            pod_reader: None,
            pod_openings: 0,
        }
    }

    /// Ends the session: every rollback this console was verifying is journaled as
    /// abandoned, with why and by whom, and the runner finishes its writes.
    pub async fn close(mut self, why: &str) {
        let running: Vec<_> = self
            .core
            .state
            .services
            .iter()
            .filter(|(_, s)| {
                s.rollback
                    .as_ref()
                    .is_some_and(|p| p.running() && p.committed)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for service in running {
            let why = why.to_string();
            self.core.apply(Msg::Abandon { service, why }).await;
        }
        // Within the console's two seconds to leave a lost terminal.
        self.core
            .shutdown(std::time::Duration::from_millis(1500))
            .await;
    }

    pub async fn key(&mut self, key: KeyEvent) -> anyhow::Result<Flow> {
        for cmd in self.ui.on_key(&self.core.state, key) {
            match cmd {
                Command::Quit => return Ok(Flow::Quit),
                Command::Preview {
                    service,
                    to_revision,
                } => {
                    self.core
                        .apply(Msg::PreviewRequested {
                            service,
                            to_revision,
                            switch_to: None,
                        })
                        .await;
                }
                Command::RollBack {
                    service,
                    to_revision,
                } => {
                    // The patch must find the Deployment as the dry run the engineer
                    // read found it.
                    let expected = self.core.state.services.get(&service).and_then(|s| {
                        let pv = s
                            .preview
                            .as_ref()
                            .filter(|p| p.to_revision == to_revision)?;
                        let plan = pv.result.as_ref()?.as_ref().ok()?;
                        Some(Expected::of(plan))
                    });
                    let request = Request {
                        to_revision,
                        automatic: false,
                        reason: format!("confirmed in the console by {}", self.core.actor),
                        by: self.core.actor.clone(),
                        expected,
                    };
                    self.core
                        .apply(Msg::RollbackRequested { service, request })
                        .await;
                }
                Command::Switch { namespace, context } => self.switch(namespace, context),
                Command::OpenPod { service, pod } => self.open_pod(service, pod).await,
                Command::ClosePod => {
                    self.close_pod();
                    self.core.apply(Msg::PodOpened(None)).await;
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Starts reading a pod for the console: its reader sends to the core, numbered
    /// by this opening, so a late line from a pod closed since is dropped.
    async fn open_pod(&mut self, service: ServiceKey, pod: String) {
        self.close_pod();
        self.pod_openings += 1;
        let opened = self.pod_openings;
        let reader = crate::sources::pod_view::spawn(
            self.core.target.client.clone(),
            &service.namespace,
            &pod,
            opened,
            self.core.tx.clone(),
        );
        self.pod_reader = Some(reader);
        self.core
            .apply(Msg::PodOpened(Some((service, pod, opened))))
            .await;
    }

    fn close_pod(&mut self) {
        if let Some(reader) = self.pod_reader.take() {
            reader.abort();
        }
    }

    /// A plain character, as typed.
    pub async fn press(&mut self, c: char) -> anyhow::Result<Flow> {
        self.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
            .await
    }

    /// Starts a core on the new namespace or context in the background; the screen
    /// keeps drawing this one, with a notice, until `switched` swaps it in.
    fn switch(&mut self, namespace: Option<String>, context: Option<String>) {
        if let Some(busy) = self.busy() {
            // Its report would go to the core being replaced, and never reach the journal.
            self.ui.notice = Some(format!(
                "a rollback of {busy} is under way: switch after it ends"
            ));
            return;
        }
        let mut options = self.core.options.clone();
        let mut config = self.core.state.config.clone();
        if let Some(ns) = &namespace {
            options.namespace = Some(ns.clone());
            // `:ns NAME` narrows an `-A` console to that namespace.
            options.all_namespaces = false;
            // Watch what the config lists there, or every Deployment if it lists nothing.
            config.watch.retain(|w| &w.namespace == ns);
        }
        if let Some(ctx) = &context {
            options.context = Some(ctx.clone());
            options.namespace = None;
        }
        let to = match (&namespace, &context) {
            (Some(ns), _) => format!("namespace {ns}"),
            (None, Some(ctx)) => format!("context {ctx}"),
            (None, None) => "the same place".to_string(),
        };
        self.ui.notice = Some(format!(
            "switching to {to}… (the screen shows the old one until then)"
        ));
        self.switching
            .replace(tokio::spawn(Core::start(config, options)));
    }

    /// Swaps in a core that `switching` produced; on failure the current one stays
    /// and the footer says why. The old core's runner finishes its writes in the
    /// background.
    pub fn switched(&mut self, started: anyhow::Result<Core>) {
        let core = match started {
            Ok(core) => core,
            Err(e) => {
                self.ui.notice = Some(format!("cannot switch: {e:#}"));
                return;
            }
        };
        if let Some(busy) = self.busy() {
            // Confirmed while the new core was starting: this core must see it through.
            self.ui.notice = Some(format!(
                "switch cancelled: a rollback of {busy} started meanwhile"
            ));
            tokio::spawn(core.shutdown(std::time::Duration::from_secs(2)));
            return;
        }
        self.ui.context.clone_from(&core.target.context);
        self.ui.cluster.clone_from(&core.target.cluster_url);
        self.ui.namespace = namespace_shown(&core);
        self.ui.user.clone_from(&core.actor);
        self.ui.selected = 0;
        self.ui.notice = Some(format!(
            "now watching {} in {}",
            core.target.namespace, core.target.context
        ));
        self.close_pod();
        let old = std::mem::replace(&mut self.core, core);
        tokio::spawn(old.shutdown(std::time::Duration::from_secs(2)));
    }

    /// Waits for a switch under way, and swaps it in (for tests, which have no loop).
    pub async fn finish_switch(&mut self) {
        if self.switching.is_some() {
            let started = self.switching.next().await;
            self.switched(started);
        }
    }

    fn busy(&self) -> Option<String> {
        self.core
            .state
            .services
            .iter()
            .find(|(_, s)| s.rollback_in_flight())
            .map(|(key, _)| key.to_string())
    }
}
