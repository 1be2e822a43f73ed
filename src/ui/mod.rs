//! `render(&State, &UiState, &mut Frame)`: pure. It reads the state and draws; it
//! performs no I/O and changes nothing. Laid out to be usable at 80x24 over SSH.

mod ascii;
mod charts;
mod history;
mod panes;
mod pods;
mod rollback;
#[cfg(test)]
mod snapshots;
pub mod state;

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::engine::{Action, SourceHealth, State};
use crate::ui::state::{Pane, Typing, UiState};

/// Semantic colours from the 16-colour ANSI set, or none under NO_COLOR.
#[derive(Clone, Copy)]
pub struct Palette {
    color: bool,
}

impl Palette {
    pub fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    pub fn bold(self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }

    pub fn action(self, a: Action) -> Style {
        match a {
            Action::AutoRollback => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Action::Suggest => self.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Action::Log => self.fg(Color::Cyan),
            Action::None => self.fg(Color::Green),
        }
    }
}

/// Least size at which every pane stays readable.
pub const LEAST: (u16, u16) = (60, 16);

pub fn render(state: &State, ui: &UiState, frame: &mut Frame) {
    let area = frame.area();
    if area.width < LEAST.0 || area.height < LEAST.1 {
        too_small(frame, area);
    } else {
        draw(state, ui, frame);
    }
    if ui.ascii {
        ascii::transliterate(frame.buffer_mut());
    }
}

/// Said instead of a garbled screen; the console keeps running and redraws in full
/// as soon as the terminal is large enough.
fn too_small(frame: &mut Frame, area: Rect) {
    let text = format!(
        "terminal too small: {}x{}, backout needs {}x{}. Enlarge the window or make the font smaller; q quits.",
        area.width, area.height, LEAST.0, LEAST.1
    );
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
}

fn draw(state: &State, ui: &UiState, frame: &mut Frame) {
    let p = Palette { color: ui.color };
    let area = frame.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(10),
            Constraint::Length(if area.height >= 30 { 6 } else { 3 }),
            Constraint::Length(1),
        ])
        .split(area);
    frame.render_widget(header(state, ui, p), rows[0]);
    if let Some(view) = &state.pod_view {
        pods::view(state, view, ui, p, frame, rows[1]);
        panes::timeline(state, p, frame, rows[2]);
        frame.render_widget(footer(state, ui, p), rows[3]);
        return;
    }
    let body = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([
            Constraint::Percentage(if area.width >= 120 { 25 } else { 34 }),
            Constraint::Min(40),
        ])
        .split(rows[1]);
    panes::services(state, ui, p, frame, body[0]);
    let selected = ui.selected_service(state);
    let right = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(body[1]);
    charts::triggers(state, selected, p, frame, right[0]);
    match ui.pane {
        Pane::Decision => panes::decision(state, selected, ui.scroll, p, frame, right[1]),
        Pane::History => history::pane(state, ui, p, frame, right[1]),
        Pane::Pods => pods::pane(state, ui, p, frame, right[1]),
        Pane::Timeline => panes::timeline_pane(state, ui.scroll, p, frame, right[1]),
    }
    panes::timeline(state, p, frame, rows[2]);
    frame.render_widget(footer(state, ui, p), rows[3]);
    if let Some(dialog) = &ui.dialog {
        rollback::dialog(state, dialog, p, frame, centered(area, 76, 18));
    }
    if ui.help {
        help(p, frame, centered(area, 66, 26));
    }
}

fn health(h: Option<&SourceHealth>, p: Palette) -> Span<'static> {
    match h {
        Some(SourceHealth::Connected) => Span::styled("ok", p.fg(Color::Green)),
        Some(SourceHealth::Retrying { retry_in_secs, .. }) => {
            Span::styled(format!("retrying {retry_in_secs}s"), p.fg(Color::Yellow))
        }
        Some(SourceHealth::Forbidden(_)) => Span::styled("forbidden", p.fg(Color::Red)),
        Some(SourceHealth::Unavailable(_)) => Span::styled("off", p.fg(Color::Yellow)),
        Some(SourceHealth::Connecting) | None => Span::styled("connecting", p.fg(Color::Yellow)),
    }
}

fn header(state: &State, ui: &UiState, p: Palette) -> Paragraph<'static> {
    use crate::engine::SourceId;
    let mode = ui.mode_label(state);
    let mode_style = if mode == "read-only" {
        p.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        p.bold()
    };
    let open = state
        .services
        .values()
        .filter_map(|s| {
            s.incident
                .as_ref()
                .and(s.decision.firing.iter().filter_map(|f| f.onset).min())
        })
        .min();
    let clock = open.map_or(String::new(), |t| {
        let s = state.now.duration_since(t).as_secs().max(0);
        format!("  incident {:02}:{:02}", s / 60, s % 60)
    });
    let (answered, asked) = state.answered_at_tick;
    let filling = if state.config.prometheus.is_some() && answered < asked {
        format!(
            "  triggers answered {}/{}",
            thousands(answered),
            thousands(asked)
        )
    } else {
        String::new()
    };
    // Most urgent first, so a narrow terminal cuts the least important.
    Paragraph::new(Line::from(vec![
        Span::styled("backout ", p.bold()),
        Span::styled(mode.to_string(), mode_style),
        Span::styled(clock, p.fg(Color::Red)),
        Span::styled(filling, p.fg(Color::Yellow)),
        Span::styled(
            state
                .blind_at_tick
                .as_ref()
                .map_or(String::new(), |_| "  BLIND".into()),
            p.fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Span::raw("  k8s "),
        health(state.sources.get(&SourceId::Kubernetes), p),
        Span::raw("  prom "),
        health(state.sources.get(&SourceId::Prometheus), p),
        Span::raw(if state.config.alertmanager.is_some() {
            "  am "
        } else {
            ""
        }),
        if state.config.alertmanager.is_some() {
            health(state.sources.get(&SourceId::Alertmanager), p)
        } else {
            Span::raw("")
        },
        Span::raw(format!("  {}/{}", ui.context, ui.namespace)),
        Span::styled(format!("  {}", ui.user), p.fg(Color::Cyan)),
    ]))
}

/// 6200 as "6,200".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn footer(state: &State, ui: &UiState, p: Palette) -> Paragraph<'static> {
    let typing = |prefix: &str, input: &tui_input::Input, hint: &str| {
        Line::from(vec![
            Span::styled(format!("{prefix}{}", input.value()), p.bold()),
            Span::styled("▏", p.bold()),
            Span::styled(format!("  {hint}"), p.fg(Color::DarkGray)),
        ])
    };
    let line = match (ui.typing, &ui.notice) {
        (Some(Typing::Filter), _) => {
            typing("/", &ui.filter, "Enter keeps the filter · Esc clears it")
        }
        (Some(Typing::Command), _) => typing(
            ":",
            &ui.command,
            "ns NAME · ctx NAME · Enter runs · Esc cancels",
        ),
        (None, Some(notice)) => Line::styled(notice.clone(), p.fg(Color::Yellow)),
        (None, None) => {
            let mut keys = match (ui.pane, state.pod_view.is_some()) {
                (_, true) => vec![
                    ("j/k PgUp/PgDn", "scroll"),
                    ("g/G", "top/follow"),
                    ("Esc", "back"),
                ],
                (Pane::Decision, _) => vec![
                    ("↑↓", "select"),
                    ("r", "roll back"),
                    ("Tab", "history"),
                    ("p", "pods"),
                ],
                (Pane::History, _) => vec![
                    ("↑↓", "revision"),
                    ("r", "roll back to it"),
                    ("Tab", "pods"),
                ],
                (Pane::Pods, _) => vec![("↑↓", "pod"), ("Enter", "logs"), ("Tab", "timeline")],
                (Pane::Timeline, _) => vec![("↑↓ PgUp/PgDn", "scroll"), ("Tab", "decision")],
            };
            if state.pod_view.is_some() {
                keys.push(("Ctrl-C", "quit"));
            } else {
                keys.extend([
                    ("/", "filter"),
                    (":", "ns/ctx"),
                    ("?", "help"),
                    ("q", "quit"),
                ]);
            }
            let mut spans = Vec::new();
            if !ui.filter.value().is_empty() {
                spans.push(Span::styled(
                    format!("/{} ", ui.filter.value()),
                    p.fg(Color::Cyan),
                ));
            }
            for (key, what) in keys {
                spans.push(Span::styled(key, p.bold()));
                spans.push(Span::raw(format!(" {what}  ")));
            }
            Line::from(spans)
        }
    };
    Paragraph::new(line)
}

fn help(p: Palette, frame: &mut Frame, area: Rect) {
    let lines = vec![
        Line::styled("keys", p.bold()),
        Line::raw(""),
        Line::raw("↑ ↓ j k   select a service (worst first); g G first, last"),
        Line::raw("PgUp PgDn Ctrl-u Ctrl-d   scroll the pane under the graphs"),
        Line::raw("t         the whole timeline, scrollable (Tab cycles the panes:"),
        Line::raw("          decision, history, pods, timeline)"),
        Line::raw("r         open the rollback, filled in from the decision;"),
        Line::raw("          the API server dry-runs it before you confirm"),
        Line::raw("y         confirm (the default is No; any other key cancels)"),
        Line::raw("          in a production namespace, type the Deployment's name"),
        Line::raw("Tab h     deploy history: ↑↓ choose a revision, see its diff,"),
        Line::raw("          r rolls back to exactly that revision"),
        Line::raw("p         the service's pods; Enter opens one: summary,"),
        Line::raw("          Events, the previous run's log and the live one"),
        Line::raw("/         filter services by name; Esc clears"),
        Line::raw(":ns NAME  watch another namespace; :ctx NAME another context"),
        Line::raw("Esc       close a dialog, leave the history"),
        Line::raw("?         this help; any key closes it"),
        Line::raw("q         quit (the cluster is left as it is)"),
        Line::raw(""),
        Line::raw("graphs: D deploy, R rollback, ░ firing; the dotted line is the"),
        Line::raw("threshold; the bottom edge runs from the window's start to now"),
    ];
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title(" help "))
            .wrap(Wrap { trim: false }),
        area,
    );
}

pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
