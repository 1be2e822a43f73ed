//! The deploy history pane: revisions newest first with image, change-cause, who and
//! when; the chosen one's diff against the current revision underneath.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use super::Palette;
use crate::engine::decision::ago;
use crate::engine::rollout::diff;
use crate::engine::State;
use crate::ui::state::UiState;

pub fn pane(state: &State, ui: &UiState, p: Palette, frame: &mut Frame, area: Rect) {
    let Some(key) = ui.selected_service(state) else {
        return;
    };
    let svc = &state.services[key];
    let current = svc.decision.current_revision;
    let revisions = ui.revisions(state);
    let chosen = ui.revision.min(revisions.len().saturating_sub(1));
    let mut lines = Vec::new();
    for (i, r) in revisions.iter().enumerate() {
        let age = r.created.map_or("?".into(), |t| ago(state.now, t));
        let mut spans = vec![
            Span::raw(if i == chosen { "› " } else { "  " }),
            Span::styled(format!("r{:<3}", r.number), p.bold()),
            Span::raw(format!(" {:<22} {:>4} ", r.images.join(","), age)),
        ];
        if Some(r.number) == current {
            spans.push(Span::styled("current ", p.fg(Color::Green)));
        }
        if let Some(by) = &r.deployed_by {
            spans.push(Span::styled(format!("{by} "), p.fg(Color::Cyan)));
        }
        spans.push(Span::styled(
            r.change_cause.clone().unwrap_or_default(),
            p.fg(Color::DarkGray),
        ));
        if let Some(why) = svc.lineage.why_bad(&r.replicaset, state.now) {
            spans.push(Span::styled(format!("  ✗ {why}"), p.fg(Color::Red)));
        }
        let mut line = Line::from(spans);
        if i == chosen {
            line = line.style(ratatui::style::Style::default().add_modifier(Modifier::REVERSED));
        }
        lines.push(line);
    }
    if revisions.is_empty() {
        lines.push(Line::raw("no revisions seen for this service yet"));
    }
    let now = revisions.iter().find(|r| Some(r.number) == current);
    if let (Some(picked), Some(now)) = (revisions.get(chosen), now) {
        lines.push(Line::raw(""));
        if picked.number == now.number {
            lines.push(Line::raw(
                "the current revision: choose an earlier one to compare",
            ));
        } else if let (Some(from), Some(to)) = (
            now.template.as_ref().and_then(|t| t.spec()),
            picked.template.as_ref().and_then(|t| t.spec()),
        ) {
            let changes = diff(&from, &to);
            let what = if changes.is_empty() {
                "nothing in the pod template"
            } else {
                "these fields:"
            };
            lines.push(Line::styled(
                format!(
                    "rolling back r{} → r{} changes {what}",
                    now.number, picked.number
                ),
                p.bold(),
            ));
            for c in changes {
                lines.push(Line::from(vec![
                    Span::raw(format!("  {} {}: ", c.container, c.field)),
                    Span::styled(c.from, p.fg(Color::Red)),
                    Span::raw(" → "),
                    Span::styled(c.to, p.fg(Color::Green)),
                ]));
            }
        } else if now.template.is_none() && picked.template.is_none() {
            // An alias's versions have no pod template: each is whole and immutable.
            lines.push(Line::styled(
                format!(
                    "rolling back r{} → r{} moves the alias to a whole version:",
                    now.number, picked.number
                ),
                p.bold(),
            ));
            lines.push(Line::from(vec![
                Span::styled(format!("  {}", now.images.join(", ")), p.fg(Color::Red)),
                Span::raw(" → "),
                Span::styled(picked.images.join(", "), p.fg(Color::Green)),
            ]));
        }
    }
    // PgDn scrolls to the diff; the chosen revision stays in view as j/k move it.
    let rows = usize::from(area.height.saturating_sub(2));
    let follow = u16::try_from(chosen.saturating_sub(rows.saturating_sub(1))).unwrap_or(u16::MAX);
    let (offset, below) = super::panes::scrolled(
        &lines,
        area,
        ui.scroll.max(follow),
        Some(Wrap { trim: false }),
    );
    let more = if below { "· PgDn more " } else { "" };
    let title = format!(" {key} — history {more}");
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title(title))
            .wrap(Wrap { trim: false })
            .scroll((offset, 0)),
        area,
    );
}
