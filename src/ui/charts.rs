//! Trigger graphs for the selected service: each trigger's series against its
//! threshold line, the deploy marked, the state and value in the title.

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use super::Palette;
use crate::app::ui_state::UiState;
use crate::engine::signals::{time_left, AlertState, DataState};
use crate::engine::{ServiceKey, State};

pub fn triggers(
    state: &State,
    selected: Option<&ServiceKey>,
    ui: &UiState,
    p: Palette,
    frame: &mut Frame,
    area: Rect,
) {
    let Some(svc) = selected.and_then(|k| state.services.get(k)) else {
        frame.render_widget(
            Paragraph::new("").block(Block::default().borders(Borders::ALL).title(" triggers ")),
            area,
        );
        return;
    };
    let triggers = &state.config.triggers;
    let cols = if area.width >= 100 { 2 } else { 1 };
    let rows_n = triggers.len().div_ceil(cols).max(1);
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints(vec![Constraint::Ratio(1, rows_n as u32); rows_n])
        .split(area);
    let deployed = svc
        .decision
        .deployed_at
        .map(|t| t.as_millisecond() as f64 / 1000.0);
    let now = state.now.as_millisecond() as f64 / 1000.0;
    for (i, t) in triggers.iter().enumerate() {
        let cells = Layout::default()
            .direction(Direction::Horizontal)
            .constraints(vec![Constraint::Ratio(1, cols as u32); cols])
            .split(rows[i / cols]);
        let cell = cells[i % cols];
        let ts = svc.triggers.get(&t.name);
        let status = match ts {
            None => "not queried".to_string(),
            Some(ts) => {
                let left = time_left(ts.alert, state.now, t)
                    .map_or(String::new(), |d| format!(", {}s left", d.as_secs()));
                let value = ts.value.map_or("–".into(), |v| format!("{v:.3}"));
                match (&ts.data, ts.alert) {
                    (DataState::NoData(_) | DataState::Error(_) | DataState::Stale(_), a) => {
                        format!("{} ({}), {value}", ts.data.label(), a.label())
                    }
                    (_, AlertState::Inactive) => format!("ok {value}"),
                    (_, a) => format!("{}{left} {value}", a.label()),
                }
            }
        };
        let title = format!(
            " {} {status} {} {} ",
            t.name,
            t.comparison.symbol(),
            t.threshold
        );
        let firing = ts.is_some_and(|s| s.alert.is_firing());
        let color = if firing {
            Color::Red
        } else if ts.is_some_and(|s| !s.data.is_clean()) {
            Color::Yellow
        } else {
            Color::Green
        };
        // Downsampled to about twice the plot width, oldest first.
        let raw: Vec<(f64, f64)> = ts
            .map(|s| {
                s.points
                    .iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(t, v)| (*t as f64 / 1000.0, *v))
                    .collect()
            })
            .unwrap_or_default();
        let stride = (raw.len() / (cell.width as usize * 2).max(1)).max(1);
        let points: Vec<(f64, f64)> = raw.iter().step_by(stride).copied().collect();
        if points.len() < 2 {
            frame.render_widget(
                Paragraph::new(Line::raw(status)).block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(format!(" {} ", t.name)),
                ),
                cell,
            );
            continue;
        }
        let x0 = points[0].0.min(deployed.unwrap_or(f64::MAX));
        let x1 = now.max(points[points.len() - 1].0);
        let y1 = points
            .iter()
            .map(|(_, v)| *v)
            .fold(t.threshold * 1.5, f64::max);
        let threshold = [(x0, t.threshold), (x1, t.threshold)];
        let deploy_line: Vec<(f64, f64)> = deployed
            .filter(|d| *d >= x0)
            .map(|d| vec![(d, 0.0), (d, y1)])
            .unwrap_or_default();
        let marker = if ui.braille {
            Marker::Braille
        } else {
            Marker::Dot
        };
        let datasets = vec![
            Dataset::default()
                .name("threshold")
                .marker(Marker::Dot)
                .graph_type(GraphType::Line)
                .style(p.fg(Color::Yellow))
                .data(&threshold),
            Dataset::default()
                .name("deploy")
                .marker(Marker::Dot)
                .graph_type(GraphType::Line)
                .style(p.fg(Color::Cyan))
                .data(&deploy_line),
            Dataset::default()
                .name(t.name.as_str())
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(p.fg(color))
                .data(&points),
        ];
        let chart = Chart::new(datasets)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(title)
                    .border_style(p.fg(color)),
            )
            .x_axis(Axis::default().bounds([x0, x1]))
            .y_axis(
                Axis::default()
                    .bounds([0.0, y1])
                    .labels([Line::raw("0"), Line::raw(format!("{y1:.2}"))]),
            )
            .hidden_legend_constraints((Constraint::Ratio(0, 1), Constraint::Ratio(0, 1)));
        frame.render_widget(chart, cell);
    }
}
