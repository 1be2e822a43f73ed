//! What `backout rollback` prints: the plan before it is confirmed, then the
//! rollback's life (checks, phase, notifications) as the engine records it.

use crate::engine::journal::Entry;
use crate::engine::rollbacks::{Phase, Preview, Progress};
use crate::engine::{verification, ServiceKey, State};
use crate::targets::words::Words;

/// What the rollback will do, before it is confirmed.
pub(super) fn print_plan(state: &State, key: &ServiceKey, plan: &Preview) {
    match &plan.switch {
        Some(s) => {
            println!(
                "switch service {}/{} {}: {} → {}",
                key.namespace, s.service, s.label, s.from, s.to
            );
            println!("  from {} ({})", key.name, plan.from_images.join(", "));
            let to = s.to_deployment.as_deref().unwrap_or("no Deployment");
            println!("  to   {to} ({})", plan.to_images.join(", "));
        }
        None if plan.flag.is_some() => {
            let f = plan.flag.as_ref().expect("checked");
            println!("turn off flag {} for {key} (the kill switch)", f.name);
            println!(
                "  in {} of project {} at {}; the template stays at revision {}",
                f.environment, f.project, f.url, plan.from_revision
            );
        }
        None => {
            println!("roll back {key}");
            println!(
                "  from revision {} ({})",
                plan.from_revision,
                plan.from_images.join(", ")
            );
            println!(
                "  to   revision {} ({})",
                plan.to_revision,
                plan.to_images.join(", ")
            );
            if let Some(bad) = known_bad_note(state, key, plan.to_revision) {
                println!("  warning: {bad}");
            }
        }
    }
}

/// Why a revision is known bad, in words, for the plan.
fn known_bad_note(state: &State, key: &ServiceKey, revision: u64) -> Option<String> {
    let svc = state.services.get(key)?;
    let why = svc.why_revision_bad(revision, state.now)?;
    Some(format!(
        "revision {revision} was {why}; you are re-deploying it"
    ))
}

/// What of the rollback's life has been printed: checks, the phase, notifications.
#[derive(Default)]
pub(super) struct Printed {
    checks: usize,
    phase: Option<Phase>,
    committed: bool,
    /// Notifications printed so far: `follow` waits for the team to be told.
    pub(super) notified: usize,
}

impl Printed {
    /// Prints what the engine recorded since the last call.
    pub(super) fn catch_up(&mut self, state: &State, key: &ServiceKey, p: &Progress) {
        if p.committed && !self.committed {
            self.committed = true;
            let to = p.plan.as_ref().map_or(0, |pl| pl.to_revision);
            if let Some(s) = p.plan.as_ref().and_then(|pl| pl.switch.as_ref()) {
                println!(
                    "service/{} switched {} back to {} by {}",
                    s.service, s.label, s.to, p.by
                );
            } else if let Some(r) = p.plan.as_ref().and_then(|pl| pl.revert.as_ref()) {
                println!(
                    "reverted commit {:.12} in {} ({}) by {}: {}",
                    r.commit,
                    r.repo,
                    r.branch,
                    p.by,
                    match r.auto_sync {
                        true => "the controller's next sync rolls it back",
                        false => "sync the application for it to reach the cluster",
                    }
                );
            } else if let Some(f) = p.plan.as_ref().and_then(|pl| pl.flag.as_ref()) {
                println!(
                    "flag {} turned off by {} in {}; deployment {} stays at revision {to}",
                    f.name, p.by, f.environment, key.name
                );
            } else if let Some((d, words)) = (state.services.get(key))
                .and_then(|s| s.deployment.as_ref())
                .and_then(|d| Some((d, d.kind.words()?)))
            {
                let resource = format!(
                    "{} {}",
                    d.kind.qualified(),
                    d.handle.as_deref().unwrap_or(&key.name)
                );
                let images = p.plan.as_ref().map(|pl| pl.to_images.join(", "));
                println!(
                    "{}",
                    Words::fill(
                        words.done,
                        &[
                            ("resource", &resource),
                            ("by", &p.by),
                            ("to", &to.to_string()),
                            ("images", &images.unwrap_or_default()),
                        ]
                    )
                );
            } else if p.plan.as_ref().is_some_and(|pl| pl.abort) {
                println!(
                    "rollout.argoproj.io/{} aborted by {}: stable revision {to} takes every replica back",
                    key.name, p.by
                );
            } else if p.ours {
                let kind = state.services.get(key).and_then(|s| s.deployment.as_ref());
                let resource = kind.map(|d| d.kind).unwrap_or_default().qualified();
                println!(
                    "{resource}/{} rolled back to revision {to} by {}",
                    key.name, p.by
                );
            } else {
                println!(
                    "{} rolled {key} back first (to revision {to}); following that rollback",
                    p.by
                );
            }
        }
        if self.phase != Some(p.phase) {
            self.phase = Some(p.phase);
            let lines = (state.services.get(key))
                .map(|svc| verification::pending(state, svc, p))
                .unwrap_or_default();
            for line in lines {
                println!("  {line}");
            }
        }
        for c in &p.checks[self.checks..] {
            println!("  {c}");
        }
        self.checks = p.checks.len();
        let service = key.to_string();
        let notices: Vec<&Entry> = state
            .journaled
            .iter()
            .filter(|r| r.service == service && r.at >= p.started)
            .map(|r| &r.entry)
            .filter(|e| matches!(e, Entry::Notification { .. }))
            .collect();
        for n in notices.iter().skip(self.notified) {
            if let Entry::Notification {
                channel,
                delivered,
                detail,
            } = n
            {
                match delivered {
                    true => println!("  notified {channel} ({detail})"),
                    false => eprintln!(
                        "warning: notification not delivered: {detail}; the rollback stands"
                    ),
                }
            }
        }
        self.notified = self.notified.max(notices.len());
    }
}
