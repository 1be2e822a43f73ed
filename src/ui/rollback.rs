//! The rollback on screen: the confirmation dialog with the API server's dry run, and
//! the live view of a rollback under way (steps, rollout, verification checks).

use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::Palette;
use crate::engine::decision::ago;
use crate::engine::msg::Outcome;
use crate::engine::rollbacks::{Phase, Preview};
use crate::engine::state::Service;
use crate::engine::verification;
use crate::engine::{Action, State};
use crate::targets::words::Words;
use crate::targets::TargetKind;
use crate::ui::state::Dialog;

fn images_of(svc: Option<&Service>, revision: Option<u64>) -> String {
    svc.and_then(|s| {
        s.replicasets
            .values()
            .find(|rs| Some(rs.number) == revision)
    })
    .map(|rs| rs.images.join(", "))
    .unwrap_or_default()
}

/// What the dialog rolls back: revisions, or for a live blue-green colour the switch,
/// and the equivalent kubectl command.
fn heading(
    svc: Option<&Service>,
    dialog: &Dialog,
    planned: Option<&Preview>,
    p: Palette,
) -> Vec<Line<'static>> {
    let current = svc.and_then(|s| s.decision.current_revision);
    let from = current.map_or("?".into(), |r| r.to_string());
    let to = dialog
        .to_revision
        .map_or("previous".into(), |r| r.to_string());
    let switch = planned.and_then(|pl| pl.switch.as_ref().map(|s| (pl, s)));
    let workload = svc.and_then(|s| s.deployment.as_ref());
    let kind = workload.map(|w| w.kind).unwrap_or_default();
    let canary = workload.and_then(|w| w.canary.as_ref());
    if let Some((pl, f)) = planned.and_then(|pl| pl.flag.as_deref().map(|f| (pl, f))) {
        let when = match (&f.turned_on_at, &f.turned_on_by) {
            (Some(at), by) => format!(
                "turned on {} ago{}",
                ago(jiff::Timestamp::now(), *at),
                by.as_ref().map_or(String::new(), |b| format!(" by {b}"))
            ),
            (None, _) => "on".into(),
        };
        return vec![
            Line::styled(
                format!("Turn off flag {} for {}?", f.name, dialog.service),
                p.bold(),
            ),
            Line::raw(format!(
                "{when}; the kill switch leaves the template at revision {}",
                pl.from_revision
            )),
            Line::raw(format!(
                "environment {} of project {} at {}",
                f.environment, f.project, f.url
            )),
            Line::styled(pl.kubectl.clone(), p.fg(Color::DarkGray)),
        ];
    }
    let revert = planned.and_then(|pl| pl.revert.as_deref().map(|r| (pl, r)));
    if let Some((pl, r)) = revert {
        let sync = match r.auto_sync {
            true => "auto-sync applies the revert; backout never patches the Deployment, which a sync would put back",
            false => "auto-sync is off: the revert reaches the cluster when someone syncs; verification waits for it",
        };
        return vec![
            Line::styled(
                format!(
                    "Revert commit {:.12} in {} ({})?",
                    r.commit, r.repo, r.branch
                ),
                p.bold(),
            ),
            Line::raw(format!("\"{}\" by {}", r.subject, r.author)),
            Line::raw(format!(
                "from revision {}  {}",
                pl.from_revision,
                pl.from_images.join(", ")
            )),
            Line::raw(format!(
                "to   revision {}  {}",
                pl.to_revision,
                pl.to_images.join(", ")
            )),
            Line::styled(pl.kubectl.clone(), p.fg(Color::DarkGray)),
            Line::styled(sync, p.fg(Color::Yellow)),
        ];
    }
    let mut lines = match switch {
        // The live colour of a blue-green Service: traffic goes back, no template.
        Some((pl, s)) => vec![
            Line::styled(
                format!(
                    "Switch service {}/{} back?",
                    dialog.service.namespace, s.service
                ),
                p.bold(),
            ),
            Line::raw(format!(
                "from {}={}  {}  {}",
                s.label,
                s.from,
                dialog.service.name,
                pl.from_images.join(", ")
            )),
            Line::raw(format!(
                "to   {}={}  {}  {}",
                s.label,
                s.to,
                s.to_deployment.as_deref().unwrap_or("no Deployment"),
                pl.to_images.join(", ")
            )),
        ],
        None if kind.words().is_some() => {
            let words = kind.words().expect("checked above");
            let share = canary
                .filter(|c| c.in_progress())
                .map_or(String::new(), |c| {
                    format!(" ({}% of the requests)", c.weight)
                });
            let (service, unit) = (dialog.service.to_string(), words.unit);
            vec![
                Line::styled(
                    Words::fill(words.ask, &[("service", &service), ("to", &to.to_string())]),
                    p.bold(),
                ),
                Line::raw(format!(
                    "from {unit} {from}{share}  {}",
                    images_of(svc, current)
                )),
                Line::raw(format!(
                    "to   {unit} {to} {}  {}",
                    words.to_note,
                    images_of(svc, dialog.to_revision)
                )),
            ]
        }
        None => match canary.filter(|c| c.in_progress()) {
            // Argo's own revert during a canary: traffic back to stable, no new revision.
            Some(c) => vec![
                Line::styled(format!("Abort the canary of {}?", dialog.service), p.bold()),
                Line::raw(format!(
                    "canary revision {from} ({}% of the replicas)  {}",
                    c.weight,
                    images_of(svc, current)
                )),
                Line::raw(format!(
                    "back to stable revision {to}  {}",
                    images_of(svc, dialog.to_revision)
                )),
            ],
            None => vec![
                Line::styled(format!("Roll back {}?", dialog.service), p.bold()),
                Line::raw(format!("from revision {from}  {}", images_of(svc, current))),
                Line::raw(format!(
                    "to   revision {to}  {}",
                    images_of(svc, dialog.to_revision)
                )),
            ],
        },
    };
    let key = &dialog.service;
    let handle = svc
        .and_then(|s| s.deployment.as_ref())
        .and_then(|d| d.handle.clone())
        .unwrap_or_else(|| key.name.clone());
    let in_canary = canary.is_some_and(|c| c.in_progress());
    // A Compose service's tools name an image by its reference.
    let named = match kind.words().is_some_and(|w| w.names_by_image) {
        true => images_of(svc, dialog.to_revision),
        false => to.to_string(),
    };
    let before_the_dry_run = kind.command(&handle, &key.namespace, &named, in_canary);
    lines.push(Line::styled(
        planned.map_or(before_the_dry_run, |pl| pl.kubectl.clone()),
        p.fg(Color::DarkGray),
    ));
    lines
}

/// The API server's answer to the dry run, and whether it refused.
fn dry_run_line(
    answer: Option<&Result<Preview, String>>,
    kind: TargetKind,
    p: Palette,
) -> (Line<'static>, bool) {
    // An alias has no dry run: the fresh read of the alias is the check.
    let lambda = kind.kube_kind().is_none();
    match answer {
        None if lambda => (
            Line::styled("check: reading the alias afresh…", p.fg(Color::Yellow)),
            false,
        ),
        None => (
            Line::styled("dry run: asking the API server…", p.fg(Color::Yellow)),
            false,
        ),
        Some(Ok(pl)) if pl.flag.is_some() && !pl.already_there => (
            Line::styled(
                "check: the flag read afresh is on; turning it off is one call",
                p.fg(Color::Green),
            ),
            false,
        ),
        Some(Ok(pl)) if lambda && !pl.already_there => {
            let words = kind
                .words()
                .expect("a kind outside the cluster has its words");
            let (read, step, refused_if) = (words.read, words.step, words.refused_if);
            let to = step.chars().last().unwrap_or('v');
            (
                Line::styled(
                    format!(
                        "check: {read} read afresh, {step}{} → {to}{} ({}), {refused_if}",
                        pl.from_revision,
                        pl.to_revision,
                        pl.to_images.join(", ")
                    ),
                    p.fg(Color::Green),
                ),
                false,
            )
        }
        Some(Ok(pl)) if pl.already_there => (
            Line::styled(
                format!(
                    "dry run: revision {} is already running; confirming changes nothing",
                    pl.to_revision
                ),
                p.fg(Color::Yellow),
            ),
            false,
        ),
        Some(Ok(pl)) => {
            let change = match &pl.switch {
                Some(s) => format!("{} {} → {}", s.label, s.from, s.to),
                None if pl.abort => {
                    format!("abort r{} → stable r{}", pl.from_revision, pl.to_revision)
                }
                None => format!("r{} → r{}", pl.from_revision, pl.to_revision),
            };
            (
                Line::styled(
                    format!("dry run: accepted, {change} ({})", pl.to_images.join(", ")),
                    p.fg(Color::Green),
                ),
                false,
            )
        }
        Some(Err(e)) => (
            Line::styled(format!("dry run refused: {e}"), p.fg(Color::Red)),
            true,
        ),
    }
}

pub fn dialog(state: &State, dialog: &Dialog, p: Palette, frame: &mut Frame, area: Rect) {
    let svc = state.services.get(&dialog.service).map(|s| &**s);
    let d = svc.map(|s| &s.decision);
    let preview = svc
        .and_then(|s| s.preview.as_ref())
        .filter(|pv| pv.to_revision == dialog.to_revision);
    let answer = preview.and_then(|pv| pv.result.as_ref());
    let mut lines = heading(svc, dialog, answer.and_then(|r| r.as_ref().ok()), p);
    let kind = svc
        .and_then(|s| s.deployment.as_ref())
        .map(|d| d.kind)
        .unwrap_or_default();
    let (dry_run, refused) = dry_run_line(answer, kind, p);
    lines.push(dry_run);
    for note in d
        .into_iter()
        .flat_map(|d| &d.blast_radius)
        .filter(|n| n.risk)
    {
        lines.push(Line::styled(
            format!("! {}", note.text),
            p.fg(Color::Yellow),
        ));
    }
    if let Some(why) = &dialog.known_bad {
        lines.push(Line::styled(
            format!("! this revision was {why}"),
            p.fg(Color::Red)
                .add_modifier(ratatui::style::Modifier::BOLD),
        ));
        if dialog.acknowledged {
            lines.push(Line::styled(
                "confirm once more to re-deploy it anyway",
                p.fg(Color::Red),
            ));
        }
    }
    lines.push(Line::raw(""));
    if refused {
        lines.push(Line::styled("Esc closes: nothing was changed", p.bold()));
    } else if dialog.needs_name {
        lines.push(Line::raw(format!(
            "production: type {} and Enter to confirm, Esc cancels",
            dialog.service.name
        )));
        lines.push(Line::styled(
            format!("> {}", dialog.typed.value()),
            p.bold(),
        ));
    } else {
        lines.push(Line::styled(
            "y to confirm · any other key cancels (default No)",
            p.bold(),
        ));
    }
    let action_style = p.action(d.map_or(Action::None, |d| d.action));
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" rollback ")
        .border_style(action_style);
    frame.render_widget(
        Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
        area,
    );
}

/// The rollback under way or just ended, anyone's, for the top of the decision pane:
/// who, to what, each check done and each one pending with its time left.
pub fn progress(state: &State, svc: &Service, p: Palette) -> Vec<Line<'static>> {
    let Some(rb) = &svc.rollback else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let how = if rb.automatic { "automatic" } else { "manual" };
    let who = if rb.ours {
        format!("{how}, by {}", rb.by)
    } else {
        format!("{how}, by {} (followed here)", rb.by)
    };
    let target = rb
        .plan
        .as_ref()
        .map_or(String::new(), |pl| match &pl.switch {
            Some(s) => format!(" → {}={} ({})", s.label, s.to, pl.to_images.join(", ")),
            None => format!(" → r{} ({})", pl.to_revision, pl.to_images.join(", ")),
        });
    let (head, style) = match &rb.ended {
        None => (
            format!(
                "ROLLING BACK{target}  {who}, {}: {}",
                ago(state.now, rb.started),
                rb.phase.label()
            ),
            p.fg(Color::Magenta),
        ),
        Some((at, Ok(Outcome::Verified))) => (
            format!(
                "ROLLED BACK{target}, verified {} ago ({who})",
                ago(state.now, *at)
            ),
            p.fg(Color::Green),
        ),
        Some((_, Ok(outcome))) => (
            format!("ROLLED BACK{target}: {} ({who})", outcome.label()),
            p.fg(Color::Red),
        ),
        Some((_, Err(e))) if rb.committed => {
            (format!("ROLLED BACK{target}: {e}"), p.fg(Color::Yellow))
        }
        Some((_, Err(e))) => (format!("ROLLBACK NOT DONE: {e}"), p.fg(Color::Red)),
    };
    lines.push(Line::styled(
        head,
        style.add_modifier(ratatui::style::Modifier::BOLD),
    ));
    let mark = |done: bool| if done { "✓" } else { "…" };
    if rb.ours && (rb.ended.is_none() || rb.committed) {
        // A Lambda alias takes no Lease and has no dry run: its fresh read is the plan.
        let words = svc.deployment.as_ref().and_then(|d| d.kind.words());
        let (prepared, sent) = match words {
            None => ("lease, plan and dry run", "patched"),
            Some(w) => ("plan from a fresh read", w.sent),
        };
        lines.push(Line::raw(format!(
            "{} {prepared}  {} {sent}",
            mark(rb.plan.is_some()),
            mark(rb.committed)
        )));
    }
    for c in &rb.checks {
        let style = if c.passed {
            p.fg(Color::Green)
        } else {
            p.fg(Color::Red)
        };
        lines.push(Line::from(vec![Span::styled(c.to_string(), style)]));
    }
    if rb.ended.is_none() {
        if let Some(r) = svc
            .decision
            .rollout
            .as_ref()
            .filter(|_| rb.phase == Phase::RollingOut)
        {
            lines.push(Line::raw(format!("  {}", r.message())));
        }
        for pending in verification::pending(state, svc, rb) {
            lines.push(Line::styled(pending, p.fg(Color::Yellow)));
        }
    }
    lines
}
