//! What a decision rested on, written into the journal with it, so the handoff report
//! can be built from the journal alone: the signal with its recent points, the gates,
//! the deploy and its change set, and what a rollback would not revert.

pub use super::model::evidence::*;

use super::model::decision::Decision;
use super::rollout::{diff, history};
use super::state::{ServiceKey, State};

/// At most this many recent points per firing trigger: enough for a sparkline.
const POINTS_KEPT: usize = 40;

pub fn of(state: &State, key: &ServiceKey, d: &Decision) -> Evidence {
    let svc = state.services.get(key);
    let revisions = svc
        .map(|s| history(s.replicasets.values()))
        .unwrap_or_default();
    let record = |number: Option<u64>| {
        let r = revisions.iter().find(|r| Some(r.number) == number)?;
        Some(RevisionRecord {
            revision: r.number,
            images: r.images.clone(),
            change_cause: r.change_cause.clone(),
            deployed_by: r.deployed_by.clone(),
            created: r.created,
        })
    };
    let target_number = d.target.as_ref().map(|t| t.revision);
    let template = |n: Option<u64>| {
        revisions
            .iter()
            .find(|r| Some(r.number) == n)
            .and_then(|r| r.template.as_ref()?.spec())
    };
    let changes = match (template(d.current_revision), template(target_number)) {
        (Some(from), Some(to)) => diff(&from, &to)
            .into_iter()
            .map(|c| format!("{} {}: {} → {}", c.container, c.field, c.from, c.to))
            .collect(),
        _ => Vec::new(),
    };
    let firing = d
        .firing
        .iter()
        .map(|f| {
            let trigger = state.config.triggers.iter().find(|t| t.name == f.trigger);
            let points = svc
                .and_then(|s| s.triggers.get(&f.trigger))
                .map(|ts| ts.points.tail(POINTS_KEPT))
                .unwrap_or_default();
            SignalRecord {
                trigger: f.trigger.clone(),
                value: f.value,
                comparison: trigger.map_or("?", |t| t.comparison.symbol()).into(),
                threshold: f.threshold,
                onset: f.onset,
                points,
            }
        })
        .collect();
    Evidence {
        firing,
        gates: d
            .gates
            .iter()
            .map(|g| GateRecord {
                number: g.number,
                name: g.name.into(),
                passed: g.passed,
                evidence: g.evidence.clone(),
            })
            .collect(),
        confidence_parts: d
            .confidence
            .iter()
            .flat_map(|c| &c.parts)
            .map(|p| (p.name.to_string(), p.value))
            .collect(),
        deploy: record(d.current_revision),
        target: record(target_number),
        changes,
        blast_radius: d
            .blast_radius
            .iter()
            .map(|n| NoteRecord {
                risk: n.risk,
                text: n.text.clone(),
            })
            .collect(),
    }
}
