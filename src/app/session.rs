//! One console session: the core and what the engineer sees, driven by keys. The
//! terminal loop feeds it real key presses; tests feed it keys directly and look at
//! the cluster, with no terminal in between.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::core::Core;
use crate::engine::rollbacks::{Expected, Request};
use crate::engine::Msg;
use crate::ui::state::{Command, UiState};

pub struct Session {
    pub core: Core,
    pub ui: UiState,
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
        ui.namespace.clone_from(&core.target.namespace);
        Session { core, ui }
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
                        .tx
                        .send(Msg::PreviewRequested {
                            service,
                            to_revision,
                            switch_to: None,
                        })
                        .await?;
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
                        .tx
                        .send(Msg::RollbackRequested { service, request })
                        .await?;
                }
                Command::Switch { namespace, context } => self.switch(namespace, context).await,
            }
        }
        Ok(Flow::Continue)
    }

    /// A plain character, as typed.
    pub async fn press(&mut self, c: char) -> anyhow::Result<Flow> {
        self.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
            .await
    }

    /// Starts a core on the new namespace or context and swaps it in; on failure the
    /// current one stays and the footer says why.
    async fn switch(&mut self, namespace: Option<String>, context: Option<String>) {
        if let Some(busy) = self
            .core
            .state
            .services
            .iter()
            .find(|(_, s)| s.rollback_in_flight())
        {
            // Its report would go to the core being replaced, and never reach the journal.
            self.ui.notice = Some(format!(
                "a rollback of {} is under way: switch after it ends",
                busy.0
            ));
            return;
        }
        let mut options = self.core.options.clone();
        let mut config = self.core.state.config.clone();
        if let Some(ns) = &namespace {
            options.namespace = Some(ns.clone());
            // Watch what the config lists there, or every Deployment if it lists nothing.
            config.watch.retain(|w| &w.namespace == ns);
        }
        if let Some(ctx) = &context {
            options.context = Some(ctx.clone());
            options.namespace = None;
        }
        match Core::start(config, options).await {
            Ok(core) => {
                self.ui.context.clone_from(&core.target.context);
                self.ui.cluster.clone_from(&core.target.cluster_url);
                self.ui.namespace.clone_from(&core.target.namespace);
                self.ui.user.clone_from(&core.actor);
                self.ui.selected = 0;
                self.ui.notice = Some(format!(
                    "now watching {} in {}",
                    core.target.namespace, core.target.context
                ));
                self.core = core;
            }
            Err(e) => {
                self.ui.notice = Some(format!("cannot switch: {e:#}"));
            }
        }
    }
}
