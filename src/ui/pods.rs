//! The pods pane (the selected service's pods, as `kubectl get pods` lists them, plus
//! each one's revision and how its last run ended) and the open pod: its summary, its
//! Events, and its log with the previous run's last lines above the live ones.

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

use super::Palette;
use crate::engine::decision::ago;
use crate::engine::model::pod_view::PodView;
use crate::engine::State;
use crate::ui::state::UiState;

pub fn pane(state: &State, ui: &UiState, p: Palette, frame: &mut Frame, area: Rect) {
    let Some(key) = ui.selected_service(state) else {
        return;
    };
    let svc = &state.services[key];
    let pods = ui.pods(state);
    let rows = usize::from(area.height.saturating_sub(3)).max(1);
    let selected = ui.pod.min(pods.len().saturating_sub(1));
    let first = selected.saturating_sub(rows.saturating_sub(1));
    let cells: Vec<[String; 7]> = pods
        .iter()
        .skip(first)
        .take(rows)
        .map(|(name, pod)| {
            let revision = svc.replicasets.get(&pod.replicaset).map_or(0, |r| r.number);
            [
                name.to_string(),
                pod.status_word().to_string(),
                if pod.ready { "yes" } else { "no" }.to_string(),
                pod.restarts.to_string(),
                format!("r{revision}"),
                pod.last_exit
                    .as_ref()
                    .map_or("-".into(), |(why, code)| format!("{why} {code}")),
                pod.created.map_or("?".into(), |t| ago(state.now, t)),
            ]
        })
        .collect();
    // Columns in the order they matter; those that do not fit are left out whole.
    let headers = [
        "NAME",
        "STATUS",
        "READY",
        "RESTARTS",
        "REV",
        "LAST EXIT",
        "AGE",
    ];
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let room = usize::from(area.width.saturating_sub(4));
    let mut shown = 0;
    let mut used = 0;
    for w in &widths {
        if shown > 0 && used + 1 + w > room {
            break;
        }
        used += w + usize::from(shown > 0);
        shown += 1;
    }
    let row = |values: &[String]| {
        let parts: Vec<String> = (0..shown)
            .map(|i| format!("{:<w$}", values[i], w = widths[i]))
            .collect();
        parts.join(" ")
    };
    let header = format!("  {}", row(&headers.map(String::from)));
    let items: Vec<ListItem> = cells
        .iter()
        .zip(pods.iter().skip(first))
        .map(|(values, (_, pod))| {
            let style = if pod.ready {
                Style::default()
            } else {
                p.fg(Color::Red)
            };
            ListItem::new(Line::styled(row(values), style))
        })
        .collect();
    let title = format!(" {key} — pods ({}) · Enter opens one ", pods.len());
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [head, body] = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(1), Constraint::Min(1)])
        .areas(inner);
    frame.render_widget(Paragraph::new(Line::styled(header, p.bold())), head);
    if pods.is_empty() {
        frame.render_widget(Paragraph::new("no pods"), body);
        return;
    }
    let mut list_state = ListState::default().with_selected(Some(selected - first));
    let list = List::new(items)
        .highlight_symbol("› ")
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    frame.render_stateful_widget(list, body, &mut list_state);
}

/// The open pod, over the whole body of the screen.
pub fn view(
    state: &State,
    view: &PodView,
    ui: &UiState,
    p: Palette,
    frame: &mut Frame,
    area: Rect,
) {
    let mut top: Vec<Line> = view.summary.iter().map(|l| Line::raw(l.clone())).collect();
    if top.is_empty() {
        top.push(Line::styled("reading the pod…", p.fg(Color::DarkGray)));
    }
    let object = format!("Pod/{}", view.pod);
    let events: Vec<Line> = state
        .events
        .iter()
        .rev()
        .filter(|e| e.namespace == view.service.namespace && e.object == object)
        .take(5)
        .map(|e| {
            let when = e.at.map_or("?".into(), |t| ago(state.now, t));
            Line::raw(format!("{when:>6} {}: {}", e.reason, e.message))
        })
        .collect();
    top.push(Line::styled(
        if events.is_empty() {
            "events: none seen for this pod".to_string()
        } else {
            "events, newest first:".to_string()
        },
        p.bold(),
    ));
    top.extend(events);
    let top = Paragraph::new(top).wrap(Wrap { trim: false });
    let top_height = u16::try_from(top.line_count(area.width.saturating_sub(2)) + 2)
        .unwrap_or(u16::MAX)
        .min(area.height / 2);
    let [summary_area, log_area] = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(top_height), Constraint::Min(3)])
        .areas(area);
    frame.render_widget(
        top.block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {} — pod {} · Esc back ", view.service, view.pod)),
        )
        .wrap(Wrap { trim: false }),
        summary_area,
    );
    let lines = log_lines(view, p);
    let height = usize::from(log_area.height.saturating_sub(2));
    let bottom = lines.len().saturating_sub(height);
    let offset = ui.log_scroll.unwrap_or(bottom).min(bottom);
    let where_ = if offset >= bottom {
        "following".to_string()
    } else {
        format!("line {} of {} · G follows", offset + 1, lines.len())
    };
    let title = format!(" log · {where_} · j/k PgUp/PgDn g/G ");
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((u16::try_from(offset).unwrap_or(u16::MAX), 0))
            .block(Block::default().borders(Borders::ALL).title(title)),
        log_area,
    );
}

/// The log pane's lines: the previous run's (what a crash loop died of), then the live
/// log, then why it ended. The key handler counts them to scroll.
pub fn log_lines(view: &PodView, p: Palette) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if let Some(prev) = &view.previous {
        lines.push(Line::styled(
            format!(
                "── previous run of {}: its last {} lines ──",
                prev.container,
                prev.lines.len()
            ),
            p.fg(Color::Yellow),
        ));
        lines.extend(prev.lines.iter().map(|l| styled(l, p)));
        lines.push(Line::styled("── now ──", p.fg(Color::Yellow)));
    }
    if view.dropped > 0 {
        lines.push(Line::styled(
            format!("({} earlier lines dropped)", view.dropped),
            p.fg(Color::DarkGray),
        ));
    }
    lines.extend(view.log.iter().map(|l| styled(l, p)));
    if let Some(why) = &view.ended {
        lines.push(Line::styled(format!("── {why} ──"), p.fg(Color::DarkGray)));
    }
    lines
}

/// Errors and panics in red, so the line that matters stands out.
fn styled(line: &str, p: Palette) -> Line<'static> {
    let lower = line.to_ascii_lowercase();
    if lower.contains("panic") || lower.contains("level=error") || lower.contains("error:") {
        Line::styled(line.to_string(), p.fg(Color::Red))
    } else {
        Line::raw(line.to_string())
    }
}
