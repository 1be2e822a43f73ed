//! What the console shows beyond the engine's state: the selection, the open dialog,
//! the filter, the command line, the help overlay. Keys change it here, purely; the
//! console performs the commands they return.

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

use crate::engine::rollout::{history, Revision};
use crate::engine::{ServiceKey, State};

/// The header's namespace under `-A`.
pub const ALL_NAMESPACES: &str = "all namespaces";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Demo,
}

/// What the pane under the graphs shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Decision,
    /// The deploy history; the arrows move through revisions instead of services.
    History,
    /// The selected service's pods; the arrows move through pods, Enter opens one.
    Pods,
    /// The whole timeline, scrolled by the arrows as well as PgUp/PgDn.
    Timeline,
}

/// The rollback confirmation, filled in from the decision (or the revision chosen in
/// the history) when it opens.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub service: ServiceKey,
    pub to_revision: Option<u64>,
    /// Production namespaces ask for the Deployment's name; elsewhere `y` confirms.
    pub typed: Input,
    pub needs_name: bool,
    /// The target was rolled back from (why, in words): a first confirmation only
    /// acknowledges that, a second one rolls back.
    pub known_bad: Option<String>,
    pub acknowledged: bool,
}

/// A line being typed: the `/` filter or the `:` command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typing {
    Filter,
    Command,
}

#[derive(Debug, Clone)]
pub struct UiState {
    pub mode: Mode,
    pub context: String,
    pub cluster: String,
    pub namespace: String,
    /// Who this console acts as, from SelfSubjectReview.
    pub user: String,
    pub selected: usize,
    pub pane: Pane,
    /// Index into the selected service's history, newest first.
    pub revision: usize,
    /// Index into the selected service's pods, as the pods pane orders them.
    pub pod: usize,
    /// Lines the pane under the graphs is scrolled down by.
    pub scroll: u16,
    /// The open pod's log: lines from its top, or `None` to follow its end.
    pub log_scroll: Option<usize>,
    /// The terminal's height, for paging; the console sets it before each frame.
    pub height: u16,
    pub dialog: Option<Dialog>,
    pub filter: Input,
    pub command: Input,
    pub typing: Option<Typing>,
    /// A one-line answer to the last command, shown in the footer.
    pub notice: Option<String>,
    pub help: bool,
    /// `q` was pressed while a rollback was being verified: the next `q` quits.
    pub quit_armed: bool,
    /// NO_COLOR: semantic colours off, everything still readable.
    pub color: bool,
    /// BACKOUT_ASCII: ASCII only, for terminals and fonts without box drawing or
    /// braille.
    pub ascii: bool,
}

/// What a key asks the console to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Quit,
    /// The dialog opened: dry-run its target.
    Preview {
        service: ServiceKey,
        to_revision: Option<u64>,
    },
    RollBack {
        service: ServiceKey,
        to_revision: Option<u64>,
    },
    /// Enter on a pod: read its summary and logs.
    OpenPod {
        service: ServiceKey,
        pod: String,
    },
    ClosePod,
    /// Watch another namespace or kubeconfig context.
    Switch {
        namespace: Option<String>,
        context: Option<String>,
    },
}

/// A service whose rollback is past its patch and still being verified.
fn verifying(state: &State) -> Option<&ServiceKey> {
    state
        .services
        .iter()
        .find(|(_, s)| {
            s.rollback
                .as_ref()
                .is_some_and(|p| p.running() && p.committed)
        })
        .map(|(k, _)| k)
}

impl UiState {
    pub fn new(mode: Mode, context: String, cluster: String) -> Self {
        UiState {
            mode,
            context,
            cluster,
            namespace: String::new(),
            user: String::new(),
            selected: 0,
            pane: Pane::Decision,
            revision: 0,
            pod: 0,
            scroll: 0,
            log_scroll: None,
            height: 24,
            dialog: None,
            filter: Input::default(),
            command: Input::default(),
            typing: None,
            notice: None,
            help: false,
            quit_armed: false,
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            ascii: std::env::var_os("BACKOUT_ASCII").is_some_and(|v| !v.is_empty() && v != "0"),
        }
    }

    /// Services worst first, narrowed by the filter: the order the list shows and the
    /// selection indexes.
    pub fn ordered<'a>(&self, state: &'a State) -> Vec<&'a ServiceKey> {
        let needle = self.filter.value().to_lowercase();
        let mut ranked: Vec<(std::cmp::Reverse<crate::engine::Action>, &ServiceKey)> = state
            .services
            .iter()
            .filter(|(k, _)| needle.is_empty() || k.to_string().to_lowercase().contains(&needle))
            .map(|(k, s)| (std::cmp::Reverse(s.decision.action), k))
            .collect();
        // Keys are unique, so an unstable sort gives the same order every frame.
        ranked.sort_unstable();
        ranked.into_iter().map(|(_, k)| k).collect()
    }

    pub fn selected_service<'a>(&self, state: &'a State) -> Option<&'a ServiceKey> {
        let keys = self.ordered(state);
        keys.get(self.selected.min(keys.len().saturating_sub(1)))
            .copied()
    }

    /// The selected service's revisions, newest first, as the history pane lists them.
    pub fn revisions(&self, state: &State) -> Vec<Revision> {
        let mut revs = self
            .selected_service(state)
            .map(|k| history(state.services[k].replicasets.values()))
            .unwrap_or_default();
        revs.reverse();
        revs
    }

    pub fn on_key(&mut self, state: &State, key: KeyEvent) -> Vec<Command> {
        self.notice = None;
        if self.dialog.is_some() {
            return self.dialog_key(state, key);
        }
        if let Some(typing) = self.typing {
            return self.typing_key(typing, key);
        }
        if self.help {
            self.help = false;
            return vec![];
        }
        if state.pod_view.is_some() {
            return self.pod_key(state, key);
        }
        let armed = std::mem::take(&mut self.quit_armed);
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('q') if !armed => match verifying(state) {
                // Quitting stops the verification: say so first, as a second `q` does it.
                Some(key) => {
                    self.quit_armed = true;
                    self.notice = Some(format!(
                        "{key} is being verified: q again quits and journals the verification as abandoned"
                    ));
                    vec![]
                }
                None => vec![Command::Quit],
            },
            KeyCode::Char('q') => vec![Command::Quit],
            KeyCode::Char('c') if ctrl => vec![Command::Quit],
            KeyCode::Char('d') if ctrl => self.scroll_by(i32::from(self.page())),
            KeyCode::Char('u') if ctrl => self.scroll_by(-i32::from(self.page())),
            KeyCode::PageDown | KeyCode::Char(' ') => self.scroll_by(i32::from(self.page())),
            KeyCode::PageUp => self.scroll_by(-i32::from(self.page())),
            KeyCode::Char('?') => {
                self.help = true;
                vec![]
            }
            KeyCode::Char('/') => {
                self.typing = Some(Typing::Filter);
                vec![]
            }
            KeyCode::Char(':') => {
                self.command = Input::default();
                self.typing = Some(Typing::Command);
                vec![]
            }
            KeyCode::Tab => self.show(match self.pane {
                Pane::Decision => Pane::History,
                Pane::History => Pane::Pods,
                Pane::Pods => Pane::Timeline,
                Pane::Timeline => Pane::Decision,
            }),
            KeyCode::Char('t') => self.show(match self.pane {
                Pane::Timeline => Pane::Decision,
                _ => Pane::Timeline,
            }),
            // In the timeline the arrows scroll; there is nothing in it to select.
            KeyCode::Down | KeyCode::Char('j') if self.pane == Pane::Timeline => self.scroll_by(1),
            KeyCode::Up | KeyCode::Char('k') if self.pane == Pane::Timeline => self.scroll_by(-1),
            KeyCode::Home | KeyCode::Char('g') if self.pane == Pane::Timeline => {
                self.scroll = 0;
                vec![]
            }
            KeyCode::Char('h') => self.show(match self.pane {
                Pane::History => Pane::Decision,
                _ => Pane::History,
            }),
            KeyCode::Char('p') => self.show(match self.pane {
                Pane::Pods => Pane::Decision,
                _ => Pane::Pods,
            }),
            KeyCode::Esc if self.pane != Pane::Decision => self.show(Pane::Decision),
            KeyCode::Esc if !self.filter.value().is_empty() => {
                self.filter = Input::default();
                vec![]
            }
            KeyCode::Down | KeyCode::Char('j') => self.move_to(state, |at, _| at + 1),
            KeyCode::Up | KeyCode::Char('k') => self.move_to(state, |at, _| at.saturating_sub(1)),
            KeyCode::Home | KeyCode::Char('g') => self.move_to(state, |_, _| 0),
            KeyCode::End | KeyCode::Char('G') => self.move_to(state, |_, last| last),
            KeyCode::Enter if self.pane == Pane::Pods => {
                let Some(service) = self.selected_service(state).cloned() else {
                    return vec![];
                };
                let Some(pod) = self
                    .pods(state)
                    .get(self.pod)
                    .map(|(name, _)| name.to_string())
                else {
                    return vec![];
                };
                self.log_scroll = None;
                vec![Command::OpenPod { service, pod }]
            }
            KeyCode::Char('r') => self.open_dialog(state),
            _ => vec![],
        }
    }

    fn show(&mut self, pane: Pane) -> Vec<Command> {
        self.pane = pane;
        self.revision = 0;
        self.pod = 0;
        self.scroll = 0;
        vec![]
    }

    /// Half of the pane under the graphs, which is about a quarter of the screen.
    fn page(&self) -> u16 {
        (self.height / 4).max(2)
    }

    fn scroll_by(&mut self, lines: i32) -> Vec<Command> {
        let to = i32::from(self.scroll) + lines;
        self.scroll = u16::try_from(to.max(0)).unwrap_or(u16::MAX);
        vec![]
    }

    /// Moves the selection of the list the arrows drive (services, revisions or pods)
    /// to `to(current, last)`.
    fn move_to(&mut self, state: &State, to: impl Fn(usize, usize) -> usize) -> Vec<Command> {
        let len = match self.pane {
            Pane::Decision | Pane::Timeline => self.ordered(state).len(),
            Pane::History => self.revisions(state).len(),
            Pane::Pods => self.pods(state).len(),
        };
        let last = len.saturating_sub(1);
        let at = match self.pane {
            Pane::Decision | Pane::Timeline => &mut self.selected,
            Pane::History => &mut self.revision,
            Pane::Pods => &mut self.pod,
        };
        let before = *at;
        *at = to(before, last).min(last);
        if self.pane == Pane::Decision && self.selected != before {
            self.scroll = 0;
        }
        vec![]
    }

    /// Keys while a pod is open: they scroll its log; Esc goes back.
    fn pod_key(&mut self, state: &State, key: KeyEvent) -> Vec<Command> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let total = state.pod_view.as_ref().map_or(0, |v| {
            super::pods::log_lines(v, super::Palette { color: false }).len()
        });
        // The log pane is the screen less the header, the summary and the footer.
        let page = usize::from(self.height.saturating_sub(14)).max(3);
        let bottom = total.saturating_sub(page);
        let at = self.log_scroll.unwrap_or(bottom) as i64;
        let (page, half) = (page as i64, (page as i64 / 2).max(1));
        let to = match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Backspace => {
                self.log_scroll = None;
                return vec![Command::ClosePod];
            }
            KeyCode::Char('c') if ctrl => return vec![Command::Quit],
            KeyCode::Char('d') if ctrl => at + half,
            KeyCode::Char('u') if ctrl => at - half,
            KeyCode::Down | KeyCode::Char('j') => at + 1,
            KeyCode::Up | KeyCode::Char('k') => at - 1,
            KeyCode::PageDown | KeyCode::Char(' ') => at + page,
            KeyCode::PageUp => at - page,
            KeyCode::Home | KeyCode::Char('g') => 0,
            KeyCode::End | KeyCode::Char('G') => bottom as i64,
            _ => return vec![],
        };
        let to = (to.max(0) as usize).min(bottom);
        // At the end, the log follows new lines again.
        self.log_scroll = (to < bottom).then_some(to);
        vec![]
    }

    /// The selected service's pods: not ready first, then the newest revision's,
    /// then by name.
    pub fn pods<'a>(&self, state: &'a State) -> Vec<(&'a str, &'a crate::engine::kept::PodInfo)> {
        let Some(svc) = self.selected_service(state).map(|k| &state.services[k]) else {
            return Vec::new();
        };
        let revision = |p: &crate::engine::kept::PodInfo| {
            svc.replicasets.get(&p.replicaset).map_or(0, |r| r.number)
        };
        let mut pods: Vec<_> = svc.pods.iter().map(|(n, p)| (n.as_str(), p)).collect();
        pods.sort_by_key(|(name, p)| (p.ready, std::cmp::Reverse(revision(p)), *name));
        pods
    }

    /// `r`: the decision's target, or the revision chosen in the history.
    fn open_dialog(&mut self, state: &State) -> Vec<Command> {
        let Some(key) = self.selected_service(state).cloned() else {
            return vec![];
        };
        let svc = &state.services[&key];
        // A rollback under way, anyone's, is followed: r again does nothing but say so.
        if let Some(p) = svc.rollback.as_ref().filter(|p| p.running()) {
            self.notice = Some(format!(
                "{} is rolling {key} back ({}): backout follows it",
                p.by,
                p.phase.label()
            ));
            return vec![];
        }
        let to_revision = match self.pane {
            Pane::History => {
                let revs = self.revisions(state);
                let Some(chosen) = revs.get(self.revision) else {
                    return vec![];
                };
                if Some(chosen.number) == svc.decision.current_revision {
                    self.notice = Some(format!(
                        "revision {} is the current one: choose an earlier one",
                        chosen.number
                    ));
                    return vec![];
                }
                Some(chosen.number)
            }
            Pane::Decision | Pane::Pods | Pane::Timeline => match &svc.decision.target {
                Some(t) => Some(t.revision),
                None => {
                    self.notice = Some(
                        "no revision to roll back to from the decision: choose one in the history (Tab)"
                            .into(),
                    );
                    return vec![];
                }
            },
        };
        let known_bad = to_revision.and_then(|n| svc.why_revision_bad(n, state.now));
        self.dialog = Some(Dialog {
            service: key.clone(),
            to_revision,
            typed: Input::default(),
            needs_name: state.config.production_namespaces.contains(&key.namespace),
            known_bad,
            acknowledged: false,
        });
        vec![Command::Preview {
            service: key,
            to_revision,
        }]
    }

    fn dialog_key(&mut self, state: &State, key: KeyEvent) -> Vec<Command> {
        let Some(dialog) = &mut self.dialog else {
            return vec![];
        };
        // A dry run the API server refused would fail for real too: only Esc is offered.
        let refused = state
            .services
            .get(&dialog.service)
            .and_then(|s| s.preview.as_ref())
            .is_some_and(|p| matches!(p.result, Some(Err(_))));
        let confirmed = match key.code {
            KeyCode::Esc => false,
            KeyCode::Enter if dialog.needs_name => {
                if dialog.typed.value() != dialog.service.name {
                    return vec![];
                }
                true
            }
            KeyCode::Char('y') if !dialog.needs_name => true,
            // The default is No: any other key in a y/N dialog cancels.
            _ if !dialog.needs_name => false,
            _ => {
                dialog.typed.handle_event(&Event::Key(key));
                return vec![];
            }
        };
        if confirmed && !refused && dialog.known_bad.is_some() && !dialog.acknowledged {
            dialog.acknowledged = true;
            dialog.typed = Input::default();
            return vec![];
        }
        let dialog = self.dialog.take().expect("checked above");
        if !confirmed || refused {
            self.notice = Some(format!(
                "cancelled: nothing was changed on {}",
                dialog.service
            ));
            return vec![];
        }
        self.pane = Pane::Decision;
        vec![Command::RollBack {
            service: dialog.service,
            to_revision: dialog.to_revision,
        }]
    }

    fn typing_key(&mut self, typing: Typing, key: KeyEvent) -> Vec<Command> {
        let input = match typing {
            Typing::Filter => &mut self.filter,
            Typing::Command => &mut self.command,
        };
        match key.code {
            KeyCode::Esc => {
                *input = Input::default();
                self.typing = None;
                vec![]
            }
            KeyCode::Enter => {
                self.typing = None;
                if typing == Typing::Filter {
                    self.selected = 0;
                    return vec![];
                }
                let line = std::mem::take(input).value().trim().to_string();
                match parse_command(&line) {
                    Ok(cmd) => vec![cmd],
                    Err(why) => {
                        self.notice = Some(why);
                        vec![]
                    }
                }
            }
            _ => {
                input.handle_event(&Event::Key(key));
                if typing == Typing::Filter {
                    self.selected = 0;
                }
                vec![]
            }
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

/// `:ns NAME`, `:ctx NAME`, as k9s takes them.
fn parse_command(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let (verb, arg) = (words.next().unwrap_or(""), words.next());
    let usage = "commands: :ns NAMESPACE, :ctx CONTEXT";
    let Some(arg) = arg.map(str::to_string) else {
        return Err(format!("{verb:?} needs a name; {usage}"));
    };
    match verb {
        "ns" | "namespace" => Ok(Command::Switch {
            namespace: Some(arg),
            context: None,
        }),
        "ctx" | "context" => Ok(Command::Switch {
            namespace: None,
            context: Some(arg),
        }),
        other => Err(format!("unknown command {other:?}; {usage}")),
    }
}
