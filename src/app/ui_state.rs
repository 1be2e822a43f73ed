//! What the console shows beyond the engine's state: the selection, the open dialog,
//! the help overlay. Keys change it here, purely; the console performs the commands.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

use crate::engine::{ServiceKey, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Demo,
}

/// The rollback confirmation, filled in from the decision when it opens.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub service: ServiceKey,
    pub to_revision: Option<u64>,
    /// Production namespaces ask for the Deployment's name; elsewhere `y` confirms.
    pub typed: Input,
    pub needs_name: bool,
}

#[derive(Debug, Clone)]
pub struct UiState {
    pub mode: Mode,
    pub context: String,
    pub cluster: String,
    pub selected: usize,
    pub dialog: Option<Dialog>,
    pub help: bool,
    /// NO_COLOR: semantic colours off, everything still readable.
    pub color: bool,
    /// Braille chart markers, or dots for terminals and fonts without them.
    pub braille: bool,
}

/// What a key asks the console to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Quit,
    RollBack {
        service: ServiceKey,
        to_revision: Option<u64>,
    },
}

impl UiState {
    pub fn new(mode: Mode, context: String, cluster: String) -> Self {
        UiState {
            mode,
            context,
            cluster,
            selected: 0,
            dialog: None,
            help: false,
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            braille: std::env::var_os("BACKOUT_ASCII").is_none(),
        }
    }

    /// Services worst first: the order the list shows and the selection indexes.
    pub fn ordered<'a>(&self, state: &'a State) -> Vec<&'a ServiceKey> {
        let mut keys: Vec<&ServiceKey> = state.services.keys().collect();
        keys.sort_by_key(|k| {
            (
                std::cmp::Reverse(state.services[*k].decision.action),
                (*k).clone(),
            )
        });
        keys
    }

    pub fn selected_service<'a>(&self, state: &'a State) -> Option<&'a ServiceKey> {
        let keys = self.ordered(state);
        keys.get(self.selected.min(keys.len().saturating_sub(1)))
            .copied()
    }

    pub fn on_key(&mut self, state: &State, key: KeyEvent) -> Vec<Command> {
        if let Some(dialog) = &mut self.dialog {
            return match key.code {
                KeyCode::Esc => {
                    self.dialog = None;
                    vec![]
                }
                KeyCode::Enter
                    if dialog.needs_name && dialog.typed.value() == dialog.service.name =>
                {
                    let cmd = Command::RollBack {
                        service: dialog.service.clone(),
                        to_revision: dialog.to_revision,
                    };
                    self.dialog = None;
                    vec![cmd]
                }
                KeyCode::Char('y') if !dialog.needs_name => {
                    let cmd = Command::RollBack {
                        service: dialog.service.clone(),
                        to_revision: dialog.to_revision,
                    };
                    self.dialog = None;
                    vec![cmd]
                }
                // The default is No: any other key in a y/N dialog cancels.
                _ if !dialog.needs_name => {
                    self.dialog = None;
                    vec![]
                }
                _ => {
                    dialog
                        .typed
                        .handle_event(&ratatui::crossterm::event::Event::Key(key));
                    vec![]
                }
            };
        }
        if self.help {
            self.help = false;
            return vec![];
        }
        let count = state.services.len();
        match key.code {
            KeyCode::Char('q') => vec![Command::Quit],
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                vec![Command::Quit]
            }
            KeyCode::Char('?') => {
                self.help = true;
                vec![]
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(count.saturating_sub(1));
                vec![]
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                vec![]
            }
            KeyCode::Char('r') => {
                if let Some(key) = self.selected_service(state).cloned() {
                    let svc = &state.services[&key];
                    if !svc.rollback_in_flight {
                        let needs_name =
                            state.config.production_namespaces.contains(&key.namespace);
                        let to_revision = svc.decision.target.as_ref().map(|t| t.revision);
                        self.dialog = Some(Dialog {
                            service: key,
                            to_revision,
                            typed: Input::default(),
                            needs_name,
                        });
                    }
                }
                vec![]
            }
            _ => vec![],
        }
    }

    /// The header's word for the mode.
    pub fn mode_label(&self, state: &State) -> &'static str {
        match (self.mode, &state.read_only) {
            (_, Some(_)) => "read-only",
            (Mode::Demo, None) => "demo",
            (Mode::Live, None) => "live",
        }
    }
}
