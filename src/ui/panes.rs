//! The text panes: services (worst first), the decision with its gates and blast
//! radius, and the timeline.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

use super::Palette;
use crate::engine::decision::ago;
use crate::engine::rollout::Rollout;
use crate::engine::{Action, ServiceKey, State};
use crate::ui::state::UiState;

/// The list's word for an action: short enough for 80 columns.
fn short(a: Action) -> &'static str {
    match a {
        Action::AutoRollback => "AUTO",
        Action::Suggest => "suggest",
        Action::Log => "log",
        Action::None => "ok",
    }
}

pub fn services(state: &State, ui: &UiState, p: Palette, frame: &mut Frame, area: Rect) {
    let keys = ui.ordered(state);
    let selected = ui.selected.min(keys.len().saturating_sub(1));
    // Only the rows that fit are built: with thousands of services the list would
    // otherwise cost most of the frame. The window keeps the selection in view.
    let rows = usize::from(area.height.saturating_sub(2)).max(1);
    let first = selected
        .saturating_sub(rows / 2)
        .min(keys.len().saturating_sub(rows));
    let items: Vec<ListItem> = keys
        .iter()
        .skip(first)
        .take(rows)
        .map(|key| {
            let svc = &state.services[*key];
            let d = &svc.decision;
            // READY as `kubectl get deploy` counts it.
            let (ready, want) = svc.ready_replicas();
            let since = d.deployed_at.map_or("?".into(), |t| ago(state.now, t));
            let canary = svc.deployment.as_ref().and_then(|w| w.canary.as_ref());
            let rollout = match (&d.rollout, canary) {
                (_, Some(c)) if c.aborted => " aborted".to_string(),
                (_, Some(c)) if c.in_progress() => format!(" canary {}%", c.weight),
                (Some(Rollout::Complete(_)), _) => String::new(),
                (Some(Rollout::Failed(_)), _) => " stalled".into(),
                (Some(Rollout::Paused(_)), _) => " paused".into(),
                _ => " rolling".into(),
            };
            // A Deployment is the default; any other kind says what it is.
            let kind = svc
                .deployment
                .as_ref()
                .map(|w| w.kind)
                .filter(|k| *k != crate::targets::TargetKind::Deployment)
                .map_or(String::new(), |k| format!(" [{}]", k.short()));
            let spans = vec![
                match svc.rollback.as_ref().filter(|r| r.running()) {
                    // One story: a service being rolled back is not "suggest" too.
                    Some(_) => Span::styled(format!("{:<8}", "rollbk"), p.fg(Color::Magenta)),
                    None => Span::styled(format!("{:<8}", short(d.action)), p.action(d.action)),
                },
                Span::styled(
                    if ui.namespace == crate::ui::state::ALL_NAMESPACES {
                        key.to_string()
                    } else {
                        key.name.clone()
                    },
                    p.bold(),
                ),
                Span::styled(kind, p.fg(Color::Cyan)),
                Span::raw(format!(
                    " r{}{} {since}{rollout}",
                    d.current_revision.unwrap_or(0),
                    // A kind without pods or instances of its own has no READY to count.
                    match svc.has_instances() {
                        true => format!(" {ready}/{want}"),
                        false => String::new(),
                    },
                )),
            ];
            let firing: Vec<&str> = d.firing.iter().map(|f| f.trigger.as_str()).collect();
            let mut lines = vec![Line::from(spans)];
            if !firing.is_empty() {
                lines.push(Line::styled(
                    format!("        {}", firing.join(", ")),
                    p.fg(Color::Red),
                ));
            }
            ListItem::new(lines)
        })
        .collect();
    let mut list_state =
        ListState::default().with_selected((!keys.is_empty()).then_some(selected - first));
    let list = List::new(items)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" services ({}) ", keys.len())),
        )
        .highlight_symbol("› ")
        .highlight_style(ratatui::style::Style::default().add_modifier(Modifier::REVERSED));
    frame.render_stateful_widget(list, area, &mut list_state);
}

pub fn decision(
    state: &State,
    selected: Option<&ServiceKey>,
    scroll: u16,
    p: Palette,
    frame: &mut Frame,
    area: Rect,
) {
    let Some(key) = selected else {
        frame.render_widget(
            Paragraph::new("no service yet: waiting for the cluster")
                .block(Block::default().borders(Borders::ALL).title(" decision ")),
            area,
        );
        return;
    };
    let svc = &state.services[key];
    let d = &svc.decision;
    let mut lines = super::rollback::progress(state, svc, p);
    if svc.rollback.as_ref().is_some_and(|r| r.running()) {
        // One story while a rollback runs: its steps, not a re-decision over the
        // draining signal.
        frame.render_widget(
            Paragraph::new(lines)
                .block(Block::default().borders(Borders::ALL).title(" rollback "))
                .wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    if let Some(reason) = &state.read_only {
        lines.push(Line::styled(reason.clone(), p.fg(Color::Yellow)));
    }
    let target = d.target.as_ref().map_or("no earlier revision".into(), |t| {
        format!("revision {} ({})", t.revision, t.images.join(", "))
    });
    let mut head = vec![
        Span::styled(d.action.label().to_uppercase(), p.action(d.action)),
        Span::raw(format!("  → {target}")),
    ];
    if let Some(c) = &d.confidence {
        head.push(Span::raw(format!("  confidence {:.2}", c.score)));
    }
    lines.push(Line::from(head));
    if d.action == Action::AutoRollback && !state.config.policy.auto_rollback {
        lines.push(Line::styled(
            "automatic rollback is off here: press r to roll back",
            p.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(c) = &d.confidence {
        let parts: Vec<String> = c
            .parts
            .iter()
            .map(|p| format!("{} {:.2}", p.name, p.value))
            .collect();
        lines.push(Line::styled(
            format!("  {}", parts.join(" · ")),
            p.fg(Color::DarkGray),
        ));
    }
    if let Some(r) = &d.rollout {
        lines.push(Line::raw(r.message().to_string()));
    }
    for g in &d.gates {
        let (mark, style) = if g.passed {
            ("✓", p.fg(Color::Green))
        } else {
            ("✗", p.fg(Color::Red))
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark} {} {}: ", g.number, g.name), style),
            Span::raw(g.evidence.clone()),
        ]));
    }
    for why in &d.why_not_automatic {
        lines.push(Line::styled(
            format!("why not automatic: {why}"),
            p.fg(Color::Yellow),
        ));
    }
    for advice in &d.advice {
        lines.push(Line::styled(
            format!("instead: {advice}"),
            p.fg(Color::Cyan),
        ));
    }
    for note in &d.blast_radius {
        let style = if note.risk {
            p.fg(Color::Yellow)
        } else {
            p.fg(Color::Reset)
        };
        lines.push(Line::styled(
            format!("{} {}", if note.risk { "!" } else { "·" }, note.text),
            style,
        ));
    }
    // Last: whether to roll back at all weighs what the lines above say.
    if let Some(f) = &d.forward {
        lines.push(Line::raw(f.summary()));
        for factor in &f.factors {
            lines.push(Line::styled(format!("  · {factor}"), p.fg(Color::DarkGray)));
        }
    }
    let (offset, below) = scrolled(&lines, area, scroll, Some(Wrap { trim: true }));
    let more = match (offset > 0, below) {
        (false, false) => String::new(),
        (false, true) => "· PgDn more ".into(),
        (true, true) => format!("· {offset} lines up, PgUp/PgDn "),
        (true, false) => format!("· {offset} lines up, PgUp "),
    };
    let title = format!(" {key} — decision {more}");
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title(title))
            .wrap(Wrap { trim: true })
            .scroll((offset, 0)),
        area,
    );
}

/// How far a bordered paragraph in `area` (wrapped, or not) can scroll toward
/// `asked`, and whether lines remain below the view.
pub fn scrolled(lines: &[Line], area: Rect, asked: u16, wrap: Option<Wrap>) -> (u16, bool) {
    let height = usize::from(area.height.saturating_sub(2));
    let mut text = Paragraph::new(lines.to_vec());
    if let Some(wrap) = wrap {
        text = text.wrap(wrap);
    }
    let wrapped = text.line_count(area.width.saturating_sub(2));
    let most = wrapped.saturating_sub(height);
    let offset = usize::from(asked).min(most);
    (u16::try_from(offset).unwrap_or(u16::MAX), offset < most)
}

/// The incident journal as it is written and the cluster's Events (other consoles'
/// rollbacks among them), merged newest first: the strip under the panes.
pub fn timeline(state: &State, p: Palette, frame: &mut Frame, area: Rect) {
    let rows = area.height.saturating_sub(2) as usize;
    frame.render_widget(
        Paragraph::new(timeline_lines(state, p, Some(rows)))
            .block(Block::default().borders(Borders::ALL).title(" timeline "))
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// The whole timeline in the pane under the graphs (Tab), scrolled by PgUp/PgDn, j/k.
pub fn timeline_pane(state: &State, scroll: u16, p: Palette, frame: &mut Frame, area: Rect) {
    let lines = timeline_lines(state, p, None);
    let wrap = Wrap { trim: false };
    let (offset, below) = scrolled(&lines, area, scroll, Some(wrap));
    let more = if below { "· PgDn/j older " } else { "" };
    frame.render_widget(
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" timeline, newest first {more}")),
            )
            .wrap(wrap)
            .scroll((offset, 0)),
        area,
    );
}

/// Leases held and the last runner failure first, then the dated lines newest first;
/// at most `rows` of each source when the caller shows only that many.
fn timeline_lines(state: &State, p: Palette, rows: Option<usize>) -> Vec<Line<'static>> {
    use crate::engine::journal::Entry;
    let rows = rows.unwrap_or(usize::MAX);
    let when = |at: Option<jiff::Timestamp>| {
        at.map_or("      ".into(), |t| format!("{:>6}", ago(state.now, t)))
    };
    let mut dated: Vec<(Option<jiff::Timestamp>, Line)> = state
        .events
        .iter()
        .rev()
        .take(rows)
        .map(|e| {
            let style = if e.reason == crate::k8s::template::EVENT_REASON {
                p.fg(Color::Magenta)
            } else {
                p.fg(Color::Reset)
            };
            let text = format!("{} {} {}: {}", when(e.at), e.object, e.reason, e.message);
            (e.at, Line::styled(text, style))
        })
        .collect();
    dated.extend(state.journaled.iter().rev().take(rows).map(|r| {
        let style = match &r.entry {
            Entry::Rollback { .. } | Entry::Switch { .. } => p.fg(Color::Magenta),
            Entry::RollbackFailed { .. } | Entry::MetricsBlind { .. } => p.fg(Color::Red),
            Entry::IncidentOpened { .. } => p.fg(Color::Yellow),
            _ => p.fg(Color::Cyan),
        };
        let text = format!(
            "{} {} {}",
            when(Some(r.at)),
            r.service,
            crate::engine::handoff::line(&r.entry)
        );
        (Some(r.at), Line::styled(text, style))
    }));
    // Alertmanager's alerts on the services they name, as they fire now.
    for (key, svc) in &state.services {
        for a in &svc.alerts {
            let text = format!(
                "{} {key} alert {} firing{}",
                when(a.since),
                a.name,
                a.summary
                    .as_ref()
                    .map_or(String::new(), |s| format!(": {s}"))
            );
            dated.push((a.since, Line::styled(text, p.fg(Color::Red))));
        }
    }
    dated.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let mut lines: Vec<Line> = dated.into_iter().take(rows).map(|(_, l)| l).collect();
    for ((ns, name), (holder, since)) in &state.leases {
        let since = since.map_or(String::new(), |t| format!(" for {}", ago(state.now, t)));
        lines.insert(
            0,
            Line::styled(
                format!("lease {ns}/{name} held by {holder}{since}"),
                p.fg(Color::Magenta),
            ),
        );
    }
    for e in state.effect_errors.iter().rev().take(1) {
        lines.insert(0, Line::styled(e.clone(), p.fg(Color::Red)));
    }
    lines
}
