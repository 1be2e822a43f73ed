//! The decision for one service: roll back automatically, suggest it, or only log.
//! `auto_rollback` needs every one of seven gates; each gate carries its evidence,
//! and each failed gate becomes a reason it is not automatic.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::blast::{self, Note};
use super::rollout::{self, Revision, Rollout};
use super::state::{Service, ServiceKey, State};
use crate::config::{Severity, Signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    None,
    Log,
    Suggest,
    AutoRollback,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Log => "log",
            Action::Suggest => "suggest",
            Action::AutoRollback => "auto_rollback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    pub number: u8,
    pub name: &'static str,
    pub passed: bool,
    pub evidence: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    pub name: &'static str,
    pub value: f64,
    pub weight: f64,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confidence {
    pub score: f64,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub trigger: String,
    pub value: Option<f64>,
    pub threshold: f64,
    pub severity: Severity,
    pub signal: Signal,
    pub onset: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRevision {
    pub revision: u64,
    pub replicaset: String,
    pub images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Decision {
    pub action: Action,
    pub firing: Vec<Firing>,
    pub gates: Vec<Gate>,
    pub why_not_automatic: Vec<String>,
    pub confidence: Option<Confidence>,
    pub current_revision: Option<u64>,
    pub target: Option<TargetRevision>,
    pub deployed_at: Option<Timestamp>,
    pub rollout: Option<Rollout>,
    pub blast_radius: Vec<Note>,
}

fn secs(d: Duration) -> i64 {
    d.as_secs() as i64
}

pub fn ago(now: Timestamp, then: Timestamp) -> String {
    let s = now.duration_since(then).as_secs();
    match s {
        s if s < 0 => format!("in {}s", -s),
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// When the current revision began rolling out. A new ReplicaSet is created by its
/// deploy; a template that returned (a rollback, or a known-bad build re-deployed)
/// is dated by the lineage or its pods, since its ReplicaSet's creation is when the
/// template first shipped. Seen changing this session is the last resort.
pub fn deployed_at(svc: &Service, history: &[Revision]) -> Option<Timestamp> {
    let current = history.last()?;
    let seen_live = || {
        svc.revision_seen
            .get(&current.number)
            .copied()
            .filter(|_| svc.revision_seen.len() > 1)
    };
    if !current.returned {
        return current.created.or_else(seen_live);
    }
    svc.lineage
        .rollbacks
        .iter()
        .find(|r| r.revision == current.number)
        .and_then(|r| r.at)
        .or_else(seen_live)
        .or_else(|| {
            svc.pods
                .values()
                .filter(|p| p.replicaset == current.replicaset)
                .filter_map(|p| p.created)
                .min()
        })
}

/// The revision a rollback goes to: the newest before the current one, as `kubectl
/// rollout undo` picks, except a template anyone rolled back from. Right after a
/// rollback the signal is still draining, and "back" would be the bad build.
pub fn target<'a>(svc: &Service, history: &'a [Revision]) -> Option<&'a Revision> {
    history
        .iter()
        .rev()
        .skip(1)
        .find(|r| !svc.lineage.is_known_bad(&r.replicaset))
}

pub fn decide(state: &State, key: &ServiceKey) -> Decision {
    let Some(svc) = state.services.get(key) else {
        return Decision::default();
    };
    let now = state.now;
    let policy = &state.config.policy;
    let history = rollout::history(svc.replicasets.values());
    let deployed = deployed_at(svc, &history);
    let rollout_state = svc.deployment.as_ref().map(rollout::status);
    let paused = svc
        .deployment
        .as_ref()
        .and_then(|d| d.spec.as_ref()?.paused)
        == Some(true);
    let target = target(svc, &history);

    let mut firing: Vec<Firing> = state
        .config
        .triggers
        .iter()
        .filter_map(|t| {
            let ts = svc.triggers.get(&t.name)?;
            ts.alert.is_firing().then(|| Firing {
                trigger: t.name.clone(),
                value: ts.value,
                threshold: t.threshold,
                severity: t.severity,
                signal: t.signal,
                onset: ts.onset,
            })
        })
        .collect();
    // A rollout past its deadline is a failure signal of its own (seed 000's matrix).
    if let Some(Rollout::Failed(_)) = &rollout_state {
        firing.push(Firing {
            trigger: "rollout-deadline".into(),
            value: None,
            threshold: 0.0,
            severity: Severity::AutoRollback,
            signal: Signal::CrashLoop,
            onset: deployed.map(|d| d.min(now)),
        });
    }
    let mut decision = Decision {
        current_revision: history.last().map(|r| r.number),
        target: target.map(|r| TargetRevision {
            revision: r.number,
            replicaset: r.replicaset.clone(),
            images: r.images.clone(),
        }),
        deployed_at: deployed,
        rollout: rollout_state.clone(),
        blast_radius: blast::notes(state, key, svc, &history, deployed),
        ..Decision::default()
    };
    if firing.is_empty() {
        return decision;
    }
    let onset = firing.iter().filter_map(|f| f.onset).min();
    let slack = state
        .config
        .prometheus
        .as_ref()
        .map_or(Duration::from_secs(30), |p| p.poll_interval * 2);

    let mut gates = Vec::with_capacity(7);
    let current_rollback = svc.lineage.latest().filter(|r| {
        svc.lineage.current_is_rollback && Some(r.revision) == decision.current_revision
    });
    gates.push(match (onset, deployed) {
        // What is running now is a rollback: the signal is what it left behind, or a
        // fault no deploy caused. Rolling back a rollback is never automatic.
        _ if current_rollback.is_some() => Gate {
            number: 1,
            name: "onset after deploy",
            passed: false,
            evidence: format!(
                "revision {} is a rollback by {}, not a deploy",
                decision.current_revision.unwrap_or(0),
                current_rollback.map_or("", |r| r.by.as_str())
            ),
        },
        (Some(o), Some(d)) => {
            let after = o.duration_since(d).as_secs();
            let passed = after >= -secs(slack) && after <= secs(policy.onset_window);
            let evidence = if after < -secs(slack) {
                format!(
                    "the regression began {} before revision {} rolled out",
                    ago(d, o),
                    decision.current_revision.unwrap_or(0)
                )
            } else {
                format!(
                    "the regression began {}s after revision {} rolled out (window {})",
                    after.max(0),
                    decision.current_revision.unwrap_or(0),
                    humantime::format_duration(policy.onset_window)
                )
            };
            Gate {
                number: 1,
                name: "onset after deploy",
                passed,
                evidence,
            }
        }
        _ => Gate {
            number: 1,
            name: "onset after deploy",
            passed: false,
            evidence: "the onset or the deploy time is unknown".into(),
        },
    });
    gates.push(locality_gate(state, key, deployed, onset));
    gates.push(config_gate(state, key, svc, deployed));
    let failure = firing
        .iter()
        .filter(|f| f.severity == Severity::AutoRollback && f.signal.is_failure())
        .map(|f| f.trigger.as_str())
        .collect::<Vec<_>>();
    gates.push(Gate {
        number: 4,
        name: "failure signal",
        passed: !failure.is_empty(),
        evidence: if failure.is_empty() {
            let names: Vec<_> = firing
                .iter()
                .map(|f| format!("{} ({})", f.trigger, f.signal.label()))
                .collect();
            format!(
                "only {} firing; latency or saturation alone is never automatic",
                names.join(", ")
            )
        } else {
            format!("{} firing", failure.join(", "))
        },
    });
    gates.push(migration_gate(state, key, deployed));
    gates.push(quiet_gate(state, svc));
    gates.push(Gate {
        number: 7,
        name: "target exists",
        passed: target.is_some() && !paused,
        evidence: match (target, paused) {
            (_, true) => "the Deployment is paused; resume it before any rollback".into(),
            (Some(r), _) => format!(
                "revision {} ({}) is in history",
                r.number,
                r.images.join(", ")
            ),
            (None, _) if history.len() < 2 => "no earlier revision is left in history".into(),
            (None, _) => format!(
                "every earlier revision was rolled back from ({}); choose one in the history",
                history
                    .iter()
                    .filter(|r| svc.lineage.is_known_bad(&r.replicaset))
                    .map(|r| format!("r{}", r.number))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    });

    let top = firing
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::LogOnly);
    let mut why: Vec<String> = gates
        .iter()
        .filter(|g| !g.passed)
        .map(|g| format!("gate {} ({}): {}", g.number, g.name, g.evidence))
        .collect();
    if top != Severity::AutoRollback {
        let names: Vec<_> = firing
            .iter()
            .map(|f| format!("{} is {}", f.trigger, f.severity.label()))
            .collect();
        why.insert(
            0,
            format!("no auto_rollback trigger is firing: {}", names.join(", ")),
        );
    }
    if let Some(reason) = &svc.no_auto {
        why.push(format!("no further automatic rollback: {reason}"));
    }
    if policy.require_two_anomalies && firing.len() < 2 {
        why.push(format!(
            "the policy requires two anomalies; only {} is firing",
            firing[0].trigger
        ));
    }
    decision.action = match top {
        Severity::AutoRollback if why.is_empty() => Action::AutoRollback,
        Severity::AutoRollback | Severity::PageAndSuggest => Action::Suggest,
        Severity::LogOnly => Action::Log,
    };
    decision.confidence = Some(confidence(
        state,
        key,
        svc,
        &firing,
        onset,
        deployed,
        &decision.blast_radius,
    ));
    decision.firing = firing;
    decision.gates = gates;
    decision.why_not_automatic = why;
    decision
}

/// Gate 2: the regression is in the service that was deployed, not one near it.
fn locality_gate(
    state: &State,
    key: &ServiceKey,
    deployed: Option<Timestamp>,
    onset: Option<Timestamp>,
) -> Gate {
    let gate = |passed, evidence| Gate {
        number: 2,
        name: "in the deployed service",
        passed,
        evidence,
    };
    let (Some(deployed), Some(onset)) = (deployed, onset) else {
        return gate(false, "the deploy time or the onset is unknown".into());
    };
    let related: Vec<&str> = state
        .config
        .depends_on(&key.name)
        .iter()
        .map(String::as_str)
        .chain(state.config.dependents(&key.name))
        .collect();
    let newer = related.iter().find_map(|name| {
        let other = state.services.get(&ServiceKey::new(&key.namespace, name))?;
        let at = deployed_at(other, &rollout::history(other.replicasets.values()))?;
        (at > deployed && at <= onset).then(|| {
            format!(
                "{name} deployed {} before the regression, after {} did",
                ago(onset, at),
                key.name
            )
        })
    });
    match newer {
        Some(evidence) => gate(false, evidence),
        None if related.is_empty() => gate(
            true,
            format!(
                "{} deployed {} before the regression",
                key.name,
                ago(onset, deployed)
            ),
        ),
        None => gate(
            true,
            format!(
                "{} deployed {} before the regression; no related service ({}) deployed since",
                key.name,
                ago(onset, deployed),
                related.join(", ")
            ),
        ),
    }
}

/// Gate 3: only the pod spec changed; no referenced ConfigMap or Secret moved in the window.
fn config_gate(
    state: &State,
    key: &ServiceKey,
    svc: &Service,
    deployed: Option<Timestamp>,
) -> Gate {
    let changed = blast::changed_config(state, key, svc, deployed);
    Gate {
        number: 3,
        name: "pod spec only",
        passed: changed.is_empty(),
        evidence: if changed.is_empty() {
            "no ConfigMap or Secret the pod template references changed in the window".into()
        } else {
            format!(
                "{} changed in the window; a rollback does not revert it",
                changed.join(", ")
            )
        },
    }
}

/// Gate 5: no schema migration within ± the migration window of the deploy.
fn migration_gate(state: &State, key: &ServiceKey, deployed: Option<Timestamp>) -> Gate {
    let found = blast::migrations(state, &key.namespace, deployed);
    Gate {
        number: 5,
        name: "no migration",
        passed: found.is_empty(),
        evidence: if found.is_empty() {
            format!(
                "no migration Job within ±{} of the deploy",
                humantime::format_duration(state.config.policy.migration_window)
            )
        } else {
            format!(
                "migration {} ran near the deploy; the old image may not read the new schema",
                found.join(", ")
            )
        },
    }
}

/// When this service was last rolled back, by anyone: this process's memory, or the
/// cluster's. A rollback whose time nothing tells is taken as now: unknown is never
/// "long ago".
pub fn last_rollback(state: &State, svc: &Service) -> Option<(Timestamp, String)> {
    let from_cluster = svc.lineage.latest().map(|r| {
        let at = r.at.unwrap_or(state.now);
        let dated = if r.at.is_some() {
            String::new()
        } else {
            ", at a time the cluster does not tell".into()
        };
        (at, format!("{}{dated}", r.by))
    });
    // This process's own rollback counts from its patch, before the cluster shows it.
    let patched = svc
        .rollback
        .as_ref()
        .filter(|p| p.committed)
        .map(|p| (p.started, p.by.clone()));
    let own = svc
        .last_rollback
        .map(|t| (t, "backout".to_string()))
        .into_iter()
        .chain(patched)
        .max_by_key(|(t, _)| *t);
    match (from_cluster, own) {
        (Some(c), Some(o)) => Some(if c.0 >= o.0 { c } else { o }),
        (c, o) => c.or(o),
    }
}

/// Gate 6: outside the cooldown after any automatic rollback, and this service's
/// blackout after a rollback by anyone.
fn quiet_gate(state: &State, svc: &Service) -> Gate {
    let policy = &state.config.policy;
    let within = |t: Timestamp, d: Duration| state.now.duration_since(t).as_secs() < secs(d);
    let evidence = if let Some((t, by)) =
        last_rollback(state, svc).filter(|(t, _)| within(*t, policy.blackout))
    {
        Some(format!(
            "rolled back {} ago by {by}; the blackout lasts {}",
            ago(state.now, t),
            humantime::format_duration(policy.blackout)
        ))
    } else {
        state
            .last_auto_rollback
            .filter(|t| within(*t, policy.cooldown))
            .map(|t| {
                format!(
                    "an automatic rollback ran {} ago; the cooldown lasts {}",
                    ago(state.now, t),
                    humantime::format_duration(policy.cooldown)
                )
            })
    };
    Gate {
        number: 6,
        name: "cooldown and blackout",
        passed: evidence.is_none(),
        evidence: evidence.unwrap_or_else(|| "no rollback in the cooldown or blackout".into()),
    }
}

fn confidence(
    state: &State,
    key: &ServiceKey,
    svc: &Service,
    firing: &[Firing],
    onset: Option<Timestamp>,
    deployed: Option<Timestamp>,
    blast: &[Note],
) -> Confidence {
    let strength = firing
        .iter()
        .filter_map(|f| {
            Some(
                ((f.value? / f.threshold.abs().max(1e-9)) - 1.0)
                    .abs()
                    .min(1.0),
            )
        })
        .fold(
            if firing.iter().any(|f| f.value.is_none()) {
                1.0
            } else {
                0.0
            },
            f64::max,
        );
    let quality = {
        let q: Vec<f64> = svc
            .triggers
            .values()
            .filter(|t| !t.recent.is_empty())
            .map(|t| t.quality())
            .collect();
        if q.is_empty() {
            0.0
        } else {
            q.iter().sum::<f64>() / q.len() as f64
        }
    };
    let window = state.config.policy.onset_window.as_secs_f64();
    let proximity = match (onset, deployed) {
        (Some(o), Some(d)) => {
            let after = o.duration_since(d).as_secs_f64();
            if after < -60.0 {
                0.0
            } else {
                (1.0 - after.max(0.0) / window).clamp(0.0, 1.0)
            }
        }
        _ => 0.0,
    };
    let neighbours_firing = state
        .services
        .iter()
        .filter(|(k, s)| *k != key && s.decision.action != Action::None)
        .count();
    let isolation = if neighbours_firing == 0 { 1.0 } else { 0.5 };
    let risks = blast.iter().filter(|n| n.risk).count();
    let safety = (1.0 - 0.25 * risks as f64).max(0.0);
    let parts = vec![
        Part {
            name: "signal strength",
            value: strength,
            weight: 0.3,
            note: "how far past the threshold".into(),
        },
        Part {
            name: "data quality",
            value: quality,
            weight: 0.2,
            note: "share of recent answers that were clean".into(),
        },
        Part {
            name: "onset proximity",
            value: proximity,
            weight: 0.2,
            note: "how soon after the deploy it began".into(),
        },
        Part {
            name: "isolation",
            value: isolation,
            weight: 0.15,
            note: format!("{neighbours_firing} other services need attention"),
        },
        Part {
            name: "blast radius",
            value: safety,
            weight: 0.15,
            note: format!("{risks} things a rollback would not revert"),
        },
    ];
    let score = parts.iter().map(|p| p.value * p.weight).sum::<f64>();
    Confidence {
        score: (score * 100.0).round() / 100.0,
        parts,
    }
}
