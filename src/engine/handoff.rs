//! The handoff report for the engineer who takes over an incident, built from the
//! journal alone (so it works after the fact and offline): what was rolled back and
//! why, the signal, the state after, the decision, the timeline, what was not
//! reverted, and the next steps. Markdown for people, JSON for tools.

use jiff::Timestamp;
use serde::Serialize;

use super::evidence::Evidence;
use super::journal::{Entry, Record};

#[derive(Debug, Clone, Serialize)]
pub struct Handoff {
    pub incident: String,
    pub service: String,
    pub opened: Timestamp,
    pub summary: String,
    pub rollback: Option<RolledBack>,
    pub rollback_failed: Option<String>,
    /// A rollback whose patch was about to be sent when the journal ends: the process
    /// died between intent and outcome.
    pub unfinished: Option<String>,
    /// The last verification: its outcome and checks.
    pub after: Option<(String, Vec<String>)>,
    pub decision: Option<DecisionSeen>,
    pub resolved: Option<Timestamp>,
    pub timeline: Vec<(Timestamp, String)>,
    pub next_steps: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    pub at: Timestamp,
    pub from_revision: u64,
    pub from_images: Vec<String>,
    pub to_revision: u64,
    pub to_images: Vec<String>,
    pub by: String,
    pub reason: String,
    pub automatic: bool,
}

/// The last decision that called for action, with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionSeen {
    pub at: Timestamp,
    pub action: String,
    pub confidence: Option<f64>,
    pub why_not_automatic: Vec<String>,
    pub evidence: Option<Evidence>,
}

/// Incident ids in the journal, oldest first.
pub fn incidents(records: &[Record]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for r in records {
        if let Some(id) = &r.incident {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
    }
    ids
}

/// One journal entry as a line of prose: the report's timeline and the watcher's logs.
pub fn line(entry: &Entry) -> String {
    match entry {
        Entry::IncidentOpened { summary } => format!("incident opened: {summary}"),
        Entry::IncidentResolved { summary } => format!("resolved: {summary}"),
        Entry::AlreadyThere { to_revision, by } => format!(
            "{by} asked for a rollback to revision {to_revision}, which was already running: nothing changed"
        ),
        Entry::Decision {
            action, confidence, ..
        } => format!(
            "decision: {action}{}",
            confidence.map_or(String::new(), |c| format!(" (confidence {c:.2})"))
        ),
        Entry::Trigger {
            trigger,
            from,
            to,
            value,
            ..
        } => format!(
            "{trigger}: {from} → {to}{}",
            value.map_or(String::new(), |v| format!(" at {v:.4}"))
        ),
        Entry::MetricsBlind {
            trigger, detail, ..
        } => {
            format!("metrics blind: {trigger}: {detail}")
        }
        Entry::Source { source, health } => format!("{source}: {health}"),
        Entry::Rollback {
            from_revision,
            to_revision,
            by,
            ..
        } => format!("rolled back r{from_revision} → r{to_revision} by {by}"),
        Entry::RollbackIntent {
            from_revision,
            to_revision,
            by,
            ..
        } => format!("sending the rollback r{from_revision} → r{to_revision} by {by}"),
        Entry::Switch { from, to, by, .. } => format!("switched {from} → {to} by {by}"),
        Entry::RollbackFailed { error, .. } => format!("rollback failed: {error}"),
        Entry::Verification { outcome, .. } => format!("verification: {outcome}"),
        Entry::Notification {
            channel, delivered, ..
        } => format!(
            "notification via {channel}: {}",
            if *delivered { "delivered" } else { "failed" }
        ),
    }
}

impl Handoff {
    pub fn build(records: &[Record], incident: &str) -> Option<Handoff> {
        let tagged: Vec<&Record> = records
            .iter()
            .filter(|r| r.incident.as_deref() == Some(incident))
            .collect();
        let (first, last) = (tagged.first()?, tagged.last()?);
        // The same service's untagged records around it belong to the story too: the
        // triggers turning pending and firing come before the incident opens.
        let lead = jiff::SignedDuration::from_mins(15);
        let mine: Vec<&Record> = records
            .iter()
            .filter(|r| {
                r.incident.as_deref() == Some(incident)
                    || (r.incident.is_none()
                        && r.service == first.service
                        && r.at >= first.at - lead
                        && r.at <= last.at)
            })
            .collect();
        let mut h = Handoff {
            incident: incident.into(),
            service: first.service.clone(),
            opened: first.at,
            summary: String::new(),
            rollback: None,
            rollback_failed: None,
            unfinished: None,
            after: None,
            decision: None,
            resolved: None,
            timeline: Vec::new(),
            next_steps: Vec::new(),
        };
        for r in &mine {
            h.timeline.push((r.at, line(&r.entry)));
            match &r.entry {
                Entry::IncidentOpened { summary } => h.summary.clone_from(summary),
                Entry::IncidentResolved { .. } => h.resolved = Some(r.at),
                Entry::Decision {
                    action,
                    confidence,
                    why_not_automatic,
                    evidence,
                    ..
                // The decision that acted: the last one before the first rollback.
                // What the engine re-decided after it belongs to the timeline only.
                } if action != "none" && h.rollback.is_none() => {
                    h.decision = Some(DecisionSeen {
                        at: r.at,
                        action: action.clone(),
                        confidence: *confidence,
                        why_not_automatic: why_not_automatic.clone(),
                        evidence: evidence.as_deref().cloned(),
                    });
                }
                Entry::Rollback {
                    from_revision,
                    from_images,
                    to_revision,
                    to_images,
                    by,
                    reason,
                    automatic,
                } => {
                    h.unfinished = None;
                    h.rollback = Some(RolledBack {
                        at: r.at,
                        from_revision: *from_revision,
                        from_images: from_images.clone(),
                        to_revision: *to_revision,
                        to_images: to_images.clone(),
                        by: by.clone(),
                        reason: reason.clone(),
                        automatic: *automatic,
                    })
                }
                Entry::RollbackIntent {
                    to_revision, by, ..
                } => {
                    h.unfinished = Some(format!(
                        "{by} was sending a rollback to revision {to_revision} at {} and the journal has no outcome: read where it runs whether it landed, with `backout history {} -n {}`.",
                        r.at,
                        h.service.rsplit('/').next().unwrap_or(&h.service),
                        h.service.split('/').next().unwrap_or_default()
                    ))
                }
                Entry::RollbackFailed { error, .. } => {
                    h.unfinished = None;
                    h.rollback_failed = Some(error.clone())
                }
                Entry::AlreadyThere { .. } => h.unfinished = None,
                Entry::Verification { outcome, checks } => {
                    h.after = Some((outcome.clone(), checks.clone()))
                }
                _ => {}
            }
        }
        h.next_steps = next_steps(&h);
        Some(h)
    }

    pub fn to_markdown(&self) -> String {
        let mut md = Md::default();
        let evidence = self.decision.as_ref().and_then(|d| d.evidence.as_ref());
        self.head(&mut md);
        self.rolled_back(&mut md, evidence);
        signal(&mut md, evidence);
        self.after(&mut md);
        self.decided(&mut md);
        md.line("\n## Timeline\n");
        for (at, what) in &self.timeline {
            md.line(format!("- {} {what}", at.strftime("%H:%M:%S")));
        }
        blast_radius(&mut md, evidence);
        md.line("\n## Next steps\n");
        for s in &self.next_steps {
            md.line(format!("- {s}"));
        }
        md.0
    }

    fn head(&self, md: &mut Md) {
        let status = match (&self.rollback, &self.after, &self.rollback_failed) {
            (Some(_), Some((outcome, _)), _) => format!("rolled back, {outcome}"),
            (Some(_), None, _) => "rolled back, verification not recorded".into(),
            (None, _, Some(_)) => "rollback attempted and failed".into(),
            (None, _, None) => "not rolled back".into(),
        };
        md.line(format!(
            "# Incident {}: {} ({status})\n",
            self.incident, self.service
        ));
        md.line(format!("Opened {}. {}", self.opened, self.summary));
        if let Some(at) = self.resolved {
            md.line(format!("Resolved {at}."));
        }
    }

    fn rolled_back(&self, md: &mut Md, evidence: Option<&Evidence>) {
        md.line("\n## What was rolled back\n");
        match &self.rollback {
            Some(rb) => md.line(format!(
                "Revision {} ({}) → revision {} ({}), {} by {} at {}.\nReason: {}",
                rb.from_revision,
                rb.from_images.join(", "),
                rb.to_revision,
                rb.to_images.join(", "),
                if rb.automatic {
                    "automatically"
                } else {
                    "manually"
                },
                rb.by,
                rb.at,
                rb.reason
            )),
            None => {
                md.line("Nothing was rolled back.");
                if let Some(e) = &self.rollback_failed {
                    md.line(format!("The rollback failed: {e}"));
                }
            }
        }
        if let Some(deploy) = evidence.and_then(|e| e.deploy.as_ref()) {
            md.line(format!(
                "\nThe deploy: revision {} ({}), change-cause \"{}\", by {}{}.",
                deploy.revision,
                deploy.images.join(", "),
                deploy.change_cause.as_deref().unwrap_or("none recorded"),
                deploy.deployed_by.as_deref().unwrap_or("unknown"),
                deploy
                    .created
                    .map_or(String::new(), |t| format!(", created {t}"))
            ));
        }
        if let Some(e) = evidence.filter(|e| !e.changes.is_empty()) {
            md.line("\nThe change set the rollback reverted:\n");
            for c in &e.changes {
                md.line(format!("- {c}"));
            }
        }
    }

    fn after(&self, md: &mut Md) {
        md.line("\n## After the rollback\n");
        match &self.after {
            Some((outcome, checks)) => {
                md.line(format!("Verification: **{outcome}**.\n"));
                for c in checks {
                    md.line(format!("- {c}"));
                }
            }
            None => md.line("No verification was recorded."),
        }
    }

    fn decided(&self, md: &mut Md) {
        let Some(d) = &self.decision else {
            return;
        };
        md.line(format!(
            "\n## The decision\n\n{} at {}{}.\n",
            d.action,
            d.at,
            d.confidence
                .map_or(String::new(), |c| format!(", confidence {c:.2}"))
        ));
        if let Some(e) = &d.evidence {
            let parts: Vec<String> = e
                .confidence_parts
                .iter()
                .map(|(n, v)| format!("{n} {v:.2}"))
                .collect();
            if !parts.is_empty() {
                md.line(format!("Confidence parts: {}.\n", parts.join(", ")));
            }
            for g in &e.gates {
                let mark = if g.passed { "✓" } else { "✗" };
                md.line(format!("- {mark} {} {}: {}", g.number, g.name, g.evidence));
            }
        }
        for why in &d.why_not_automatic {
            md.line(format!("- why not automatic: {why}"));
        }
    }
}

/// Markdown being written, a line at a time.
#[derive(Default)]
struct Md(String);

impl Md {
    fn line(&mut self, text: impl AsRef<str>) {
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }
}

fn signal(md: &mut Md, evidence: Option<&Evidence>) {
    md.line("\n## The signal\n");
    let Some(e) = evidence.filter(|e| !e.firing.is_empty()) else {
        md.line("No firing trigger was recorded.");
        return;
    };
    for s in &e.firing {
        let values: Vec<f64> = s.points.iter().map(|(_, v)| *v).collect();
        md.line(format!(
            "- **{}** {} {} {}{}  `{}`",
            s.trigger,
            s.value.map_or("?".into(), |v| format!("{v:.4}")),
            s.comparison,
            s.threshold,
            s.onset
                .map_or(String::new(), |t| format!(", breaching since {t}")),
            sparkline(&values)
        ));
    }
}

fn blast_radius(md: &mut Md, evidence: Option<&Evidence>) {
    md.line("\n## Blast radius: what the rollback did and did not revert\n");
    let notes: Vec<_> = evidence.map(|e| e.blast_radius.clone()).unwrap_or_default();
    if notes.is_empty() {
        md.line("Nothing recorded.");
    }
    for n in notes {
        md.line(format!(
            "- {}{}",
            if n.risk { "**risk:** " } else { "" },
            n.text
        ));
    }
}

fn next_steps(h: &Handoff) -> Vec<String> {
    let name = h.service.rsplit('/').next().unwrap_or(&h.service);
    let outcome = h.after.as_ref().map(|(o, _)| o.as_str());
    let mut steps = Vec::new();
    steps.extend(h.unfinished.clone());
    match (&h.rollback, outcome) {
        (Some(rb), Some("verified")) => {
            steps.push(format!(
                "Stay rolled back on revision {} until the fault in {} is found and fixed.",
                rb.to_revision,
                rb.from_images.join(", ")
            ));
            steps.push(format!(
                "Roll forward with a fixed image through the normal pipeline, gated by `backout gate {name}`."
            ));
        }
        (Some(_), Some(o)) => {
            steps.push(format!(
                "The rollback ended \"{o}\": the deploy may not be the cause. Check the dependencies and anything the rollback did not revert (below)."
            ));
            steps.push("backout will not roll this service back automatically again this session; decide by hand.".into());
        }
        (Some(_), None) => steps.push(format!(
            "Verification was not recorded: check `backout status` and the trigger graphs for {name}."
        )),
        (None, _) => steps.push(format!(
            "Nothing was rolled back. If the signal still fires, `backout rollback {name}` prepares it with a dry run."
        )),
    }
    if h.decision
        .as_ref()
        .and_then(|d| d.evidence.as_ref())
        .is_some_and(|e| e.blast_radius.iter().any(|n| n.risk))
    {
        steps.push("Review each risk under \"Blast radius\": those changes are still live.".into());
    }
    steps
}

/// Values as a one-line bar chart, scaled to their own range.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    values
        .iter()
        .map(|v| {
            if !v.is_finite() {
                ' '
            } else if hi <= lo {
                BARS[0]
            } else {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::*;

    use crate::engine::rollbacks::Step;
    use crate::engine::Effect;

    /// The journal an incident writes, recorded through `update` as the runner would.
    fn recorded() -> Vec<Record> {
        let mut state = world("");
        let mut records = Vec::new();
        let mut keep = |effects: Vec<Effect>| {
            records.extend(effects.into_iter().filter_map(|e| match e {
                Effect::Journal(r) => Some(r),
                _ => None,
            }))
        };
        keep(run(
            &mut state,
            "checkout",
            "error-rate",
            0.001,
            0.25,
            30,
            200,
        ));
        keep(request(&mut state, Some(1), true));
        keep(step(&mut state, Step::Prepared(preview(2, 1))));
        let at = state.now;
        keep(step(
            &mut state,
            Step::Committed {
                by: "backout-watch@cluster".into(),
                at,
            },
        ));
        keep(reverted_in_cluster(
            &mut state,
            Some(record("backout-watch@cluster", 200, true)),
        ));
        keep(recovers(&mut state, 0.001, 215, 300));
        records
    }

    #[test]
    fn the_handoff_from_a_recorded_journal() {
        let records = recorded();
        // Through the journal's own text form, as `backout report` reads it.
        let text: String = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        let read: Vec<Record> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ids = incidents(&read);
        assert_eq!(ids.len(), 1, "{ids:?}");
        let handoff = Handoff::build(&read, &ids[0]).unwrap();
        assert!(handoff.rollback.is_some() && handoff.after.is_some());
        insta::assert_snapshot!(handoff.to_markdown());
    }

    #[test]
    fn a_rollback_sent_without_an_outcome_says_where_to_look_for_any_kind() {
        let mut records = recorded();
        // The process died after journaling its intent (the runner writes it before
        // the patch): the journal ends there.
        let cut = records
            .iter()
            .position(|r| matches!(r.entry, Entry::Rollback { .. }))
            .expect("the rollback is journaled");
        records.truncate(cut);
        let last = records.last().expect("the incident").clone();
        records.push(Record {
            entry: Entry::RollbackIntent {
                from_revision: 2,
                to_revision: 1,
                by: "backout-watch@cluster".into(),
                reason: "error-rate".into(),
                automatic: true,
            },
            ..last
        });
        let ids = incidents(&records);
        let handoff = Handoff::build(&records, &ids[0]).unwrap();
        let said = handoff.unfinished.expect("an unfinished rollback");
        assert!(
            said.contains("`backout history checkout -n shop`"),
            "one command for every kind of target: {said}"
        );
    }

    #[test]
    fn sparklines_scale_to_their_range_and_leave_gaps() {
        assert_eq!(sparkline(&[0.0, 0.5, 1.0, f64::NAN, 1.0]), "▁▅█ █");
        assert_eq!(sparkline(&[2.0, 2.0]), "▁▁");
    }
}
