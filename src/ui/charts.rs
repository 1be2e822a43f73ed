//! Trigger graphs for the selected service: each trigger's series against its
//! threshold line, the deploy (D) and the rollback (R) marked, the firing span shaded,
//! the state and value in the title. Marks and shading are glyphs, not only colours,
//! so they read under NO_COLOR and over any terminal.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use super::Palette;
use crate::engine::signals::{firing_spans, time_left, AlertState, DataState};
use crate::engine::{ServiceKey, State};

pub fn triggers(
    state: &State,
    selected: Option<&ServiceKey>,
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
    // Most urgent first; a short terminal shows as many as stay readable (three plot
    // rows each) and names the rest on one line.
    let mut triggers: Vec<&crate::config::Trigger> = state
        .config
        .triggers
        .iter()
        .filter(|t| svc.asks(t))
        .collect();
    triggers.sort_by_key(|t| {
        let ts = svc.triggers.get(&t.name);
        (
            !ts.is_some_and(|s| s.alert.is_firing()),
            ts.is_none_or(|s| s.data.is_clean()),
        )
    });
    let cols = if area.width >= 100 { 2 } else { 1 };
    let fit_rows = usize::from(area.height / 5).max(1);
    let mut area = area;
    if triggers.len().div_ceil(cols) > fit_rows {
        let shown = fit_rows * cols;
        let rest: Vec<String> = triggers[shown..]
            .iter()
            .map(|t| {
                let label = match svc.triggers.get(&t.name) {
                    None => "not queried",
                    Some(s) if !s.data.is_clean() => s.data.label(),
                    Some(s) if s.alert == AlertState::Inactive => "ok",
                    Some(s) => s.alert.label(),
                };
                format!("{} {label}", t.name)
            })
            .collect();
        triggers.truncate(shown);
        let last = Rect {
            y: area.bottom() - 1,
            height: 1,
            ..area
        };
        frame.render_widget(
            Paragraph::new(format!(" also: {}", rest.join(" · "))).style(p.fg(Color::DarkGray)),
            last,
        );
        area.height -= 1;
    }
    let rows_n = triggers.len().div_ceil(cols).max(1);
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints(vec![Constraint::Ratio(1, rows_n as u32); rows_n])
        .split(area);
    let marks = marks(svc);
    for (i, t) in triggers.iter().enumerate() {
        let cells = Layout::default()
            .direction(Direction::Horizontal)
            .constraints(vec![Constraint::Ratio(1, cols as u32); cols])
            .split(rows[i / cols]);
        chart(state, svc, t, p, &marks, frame, cells[i % cols]);
    }
}

/// Where the deploy (D) and the rollback (R) go on every chart, in seconds.
struct Marks {
    deployed: Option<f64>,
    rolled_back: Option<f64>,
}

/// D marks the deploy the incident is about, R the rollback, by anyone: when what
/// runs now is a rollback, its start is an R, never a D.
fn marks(svc: &crate::engine::state::Service) -> Marks {
    let secs = |t: jiff::Timestamp| t.as_millisecond() as f64 / 1000.0;
    let deployed = svc
        .rollback
        .as_ref()
        .and_then(|r| r.decision.as_ref()?.deployed_at)
        .or(svc
            .decision
            .deployed_at
            .filter(|_| !svc.lineage.current_is_rollback))
        .map(secs);
    let rolled_back = svc
        .lineage
        .latest()
        .and_then(|r| r.at)
        .or(svc
            .rollback
            .as_ref()
            .filter(|r| r.committed)
            .map(|r| r.started))
        .or(svc.last_rollback)
        .map(secs);
    Marks {
        deployed,
        rolled_back,
    }
}

/// A trigger's state in the chart's title: its alert state and time left, or why its
/// data is not clean, and the latest value.
fn status(
    state: &State,
    ts: Option<&crate::engine::state::TriggerState>,
    t: &crate::config::Trigger,
) -> String {
    let Some(ts) = ts else {
        return "not queried".to_string();
    };
    let left = time_left(ts.alert, state.now, t)
        .map_or(String::new(), |d| format!(", {}s left", d.as_secs()));
    let value = ts.value.map_or("–".into(), |v| t.unit.format(v));
    let threshold = format!(
        "(threshold {} {})",
        t.comparison.symbol(),
        t.unit.format(t.threshold)
    );
    match (&ts.data, ts.alert) {
        (DataState::NoData(_) | DataState::Error(_) | DataState::Stale(_), a) => {
            format!("{} ({}) {value} {threshold}", ts.data.label(), a.label())
        }
        (_, AlertState::Inactive) => format!("{value} {threshold}"),
        (_, a) => format!("{}{left} {value} {threshold}", a.label()),
    }
}

/// One trigger's chart: the series against its threshold, the firing span shaded, the
/// deploy and the rollback marked.
fn chart(
    state: &State,
    svc: &crate::engine::state::Service,
    t: &crate::config::Trigger,
    p: Palette,
    marks: &Marks,
    frame: &mut Frame,
    cell: Rect,
) {
    let now = state.now.as_millisecond() as f64 / 1000.0;
    let (deployed, rolled_back) = (marks.deployed, marks.rolled_back);
    let ts = svc.triggers.get(&t.name).map(|ts| &**ts);
    let status = status(state, ts, t);
    let title = format!(" {} {status} ", t.name);
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
                .map(|(t, v)| (t as f64 / 1000.0, v))
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
        return;
    }
    let x0 = points[0].0.min(deployed.unwrap_or(f64::MAX));
    let x1 = now.max(points[points.len() - 1].0);
    let y1 = points
        .iter()
        .map(|(_, v)| *v)
        .fold(t.threshold * 1.5, f64::max);
    let threshold = [(x0, t.threshold), (x1, t.threshold)];
    // In ASCII mode the braille becomes `*` (ui::ascii), distinct from the threshold.
    let marker = Marker::Braille;
    let datasets = vec![
        Dataset::default()
            .name("threshold")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(p.fg(Color::Yellow))
            .data(&threshold),
        Dataset::default()
            .name(t.name.as_str())
            .marker(marker)
            .graph_type(GraphType::Line)
            .style(p.fg(color))
            .data(&points),
    ];
    let y_labels = [Line::raw("0"), Line::raw(t.unit.format(y1))];
    let label_width = y_labels.iter().map(Line::width).max().unwrap_or(0) as u16;
    let chart = Chart::new(datasets)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(title)
                // The time axis, in the border so it costs no plot row.
                .title_bottom(Line::raw(format!("-{}", span_words(x1 - x0))).left_aligned())
                .title_bottom(Line::raw("now").right_aligned())
                .border_style(p.fg(color)),
        )
        .x_axis(Axis::default().bounds([x0, x1]))
        .y_axis(Axis::default().bounds([0.0, y1]).labels(y_labels))
        .hidden_legend_constraints((Constraint::Ratio(0, 1), Constraint::Ratio(0, 1)));
    frame.render_widget(chart, cell);
    let plot = Plot {
        area: plot_area(cell, label_width),
        x0,
        x1,
    };
    let buf = frame.buffer_mut();
    if let Some(ts) = ts {
        for (from, to) in firing_spans(ts.points.iter(), t) {
            plot.shade(
                buf,
                from as f64 / 1000.0,
                to as f64 / 1000.0,
                p.fg(Color::Red),
            );
        }
    }
    if let Some(d) = deployed {
        plot.mark(buf, d, 'D', p.fg(Color::Cyan));
    }
    if let Some(r) = rolled_back {
        plot.mark(buf, r, 'R', p.fg(Color::Magenta));
    }
}

/// A span of seconds as the time axis labels it: 90s, 15m, 2h.
fn span_words(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// Where a chart drew its series: inside the border, right of the y labels and the
/// axis line that follows them (the x axis has no labels, so no line of its own).
fn plot_area(cell: Rect, label_width: u16) -> Rect {
    let inner = cell.inner(ratatui::layout::Margin::new(1, 1));
    let skip = (label_width + 1).min(inner.width);
    Rect {
        x: inner.x + skip,
        width: inner.width - skip,
        ..inner
    }
}

struct Plot {
    area: Rect,
    x0: f64,
    x1: f64,
}

impl Plot {
    fn column(&self, x: f64) -> Option<u16> {
        if self.area.width == 0 || !(self.x0..=self.x1).contains(&x) || self.x1 <= self.x0 {
            return None;
        }
        let frac = (x - self.x0) / (self.x1 - self.x0);
        Some(self.area.x + (frac * f64::from(self.area.width - 1)).round() as u16)
    }

    /// Fills the blank cells between two times; the series drawn there stays on top.
    fn shade(&self, buf: &mut Buffer, from: f64, to: f64, style: ratatui::style::Style) {
        let (Some(a), Some(b)) = (self.column(from.max(self.x0)), self.column(to.min(self.x1)))
        else {
            return;
        };
        // Under BACKOUT_ASCII, ui::ascii rewrites ░ as `:` with the rest of the frame.
        let glyph = "░";
        for x in a..=b {
            for y in self.area.top()..self.area.bottom() {
                let cell = &mut buf[(x, y)];
                if cell.symbol() == " " {
                    cell.set_symbol(glyph).set_style(style);
                }
            }
        }
    }

    /// A vertical line at a moment, tagged with a letter at the top.
    fn mark(&self, buf: &mut Buffer, at: f64, tag: char, style: ratatui::style::Style) {
        let Some(x) = self.column(at) else { return };
        let line = "│";
        for y in self.area.top()..self.area.bottom() {
            let cell = &mut buf[(x, y)];
            if y == self.area.top() {
                cell.set_char(tag).set_style(style);
            } else if matches!(cell.symbol(), " " | "░" | "•") {
                cell.set_symbol(line).set_style(style);
            }
        }
    }
}
