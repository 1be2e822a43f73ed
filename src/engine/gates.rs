//! The seven gates an automatic rollback needs, as a table over one context: each is
//! a small function that says whether it holds and why, in words a person can check.

use std::time::Duration;

use jiff::Timestamp;

use super::blast;
use super::lineage::{deployed_at, last_rollback};
use super::model::decision::{ago, Firing, Gate};
use super::rollout::{self, Revision};
use super::signals::DataState;
use super::state::{Service, ServiceKey, State};
use crate::config::Severity;

fn secs(d: Duration) -> i64 {
    d.as_secs() as i64
}

/// What every gate looks at, computed once per decision.
pub struct Context<'a> {
    pub state: &'a State,
    pub key: &'a ServiceKey,
    pub svc: &'a Service,
    pub history: &'a [Revision],
    pub deployed: Option<Timestamp>,
    pub onset: Option<Timestamp>,
    pub firing: &'a [Firing],
    pub target: Option<&'a Revision>,
    pub paused: bool,
}

impl Context<'_> {
    fn current_revision(&self) -> u64 {
        self.history.last().map_or(0, |r| r.number)
    }
}

/// Gates 1 to 7, in order. `auto_rollback` needs every one.
pub const GATES: [fn(&Context) -> Gate; 7] = [
    onset_after_deploy,
    in_the_deployed_service,
    pod_spec_only,
    failure_signal,
    no_migration,
    quiet,
    target_exists,
];

/// The regression began before the deploy by more than one step (the resolution of
/// its onset): it is not the deploy's, and the confidence says so.
pub fn began_before(state: &State, onset: Option<Timestamp>, deployed: Option<Timestamp>) -> bool {
    let step = state
        .config
        .prometheus
        .as_ref()
        .map_or(15, |p| p.step().as_secs().max(1)) as i64;
    match (onset, deployed) {
        (Some(o), Some(d)) => d.duration_since(o).as_secs() > step,
        _ => false,
    }
}

/// Gate 1: the regression began within the onset window after the rollout started,
/// and what runs is a deploy: rolling back a rollback is never automatic.
fn onset_after_deploy(c: &Context) -> Gate {
    let policy = &c.state.config.policy;
    let gate = |passed, evidence| Gate {
        number: 1,
        name: "onset after deploy",
        passed,
        evidence,
    };
    let revision = c.current_revision();
    let rollback = c
        .svc
        .lineage
        .latest()
        .filter(|r| c.svc.lineage.current_is_rollback && r.revision == revision);
    if let Some(r) = rollback {
        let why = format!(
            "revision {revision} is a rollback by {}, not a deploy",
            r.by
        );
        return gate(false, why);
    }
    let (Some(onset), Some(deployed)) = (c.onset, c.deployed) else {
        return gate(false, "the onset or the deploy time is unknown".into());
    };
    let after = onset.duration_since(deployed).as_secs();
    if began_before(c.state, Some(onset), Some(deployed)) {
        let why = format!(
            "the regression began {} before revision {revision} rolled out: not the deploy's",
            ago(deployed, onset)
        );
        return gate(false, why);
    }
    // A canary's revision starts when its ReplicaSet does, at the first step; a flag
    // turned on since is the latest change.
    let policy_window = policy.onset_window;
    let flags = c.state.flags.values();
    let flag = super::model::flags::in_play(flags, c.key, c.state.now, policy_window)
        .filter(|(_, on)| Some(*on) == c.deployed);
    let words = c.svc.deployment.as_ref().and_then(|d| d.kind.words());
    let began = match (
        flag,
        c.svc.deployment.as_ref().and_then(|d| d.canary.as_ref()),
    ) {
        (Some((f, _)), _) => format!("flag {} was turned on", f.name),
        (None, Some(_)) => format!(
            "revision {revision}'s {}",
            words.map_or("canary began", |w| w.began)
        ),
        (None, None) => format!("revision {revision} rolled out"),
    };
    gate(
        after <= secs(policy.onset_window),
        format!(
            "the regression began {}s after {began} (window {})",
            after.max(0),
            humantime::format_duration(policy.onset_window)
        ),
    )
}

/// Gate 4: an error rate or a crash loop is firing, not latency or saturation alone.
fn failure_signal(c: &Context) -> Gate {
    let failure: Vec<&str> = c
        .firing
        .iter()
        .filter(|f| f.severity == Severity::AutoRollback && f.signal.is_failure())
        .map(|f| f.trigger.as_str())
        .collect();
    let evidence = if failure.is_empty() {
        let names: Vec<_> = c
            .firing
            .iter()
            .map(|f| format!("{} ({})", f.trigger, f.signal.label()))
            .collect();
        format!(
            "only {} firing; latency or saturation alone is never automatic",
            names.join(", ")
        )
    } else {
        format!("{} firing", failure.join(", "))
    };
    Gate {
        number: 4,
        name: "failure signal",
        passed: !failure.is_empty(),
        evidence,
    }
}

/// Gate 7: there is a target (not one rolled back from) and the Deployment is not paused.
fn target_exists(c: &Context) -> Gate {
    let window = c.state.config.policy.onset_window;
    let flags = c.state.flags.values();
    if let Some((f, _)) = super::model::flags::in_play(flags, c.key, c.state.now, window) {
        return Gate {
            number: 7,
            name: "target exists",
            passed: true,
            evidence: format!("the kill switch: flag {} can be turned off", f.name),
        };
    }
    let missing = missing_images(c);
    let evidence = match (c.target, c.paused) {
        (_, true) => "the Deployment is paused; resume it before any rollback".into(),
        (Some(r), _) if !missing.is_empty() => format!(
            "revision {}'s image is missing from its registry: {}; a rollback would end in ImagePullBackOff",
            r.number,
            missing.join(", ")
        ),
        (Some(r), _) => format!(
            "revision {} ({}) is in history",
            r.number,
            r.images.join(", ")
        ),
        (None, _) if c.history.len() < 2 => "no earlier revision is left in history".into(),
        (None, _) => format!(
            "every earlier revision was rolled back from ({}); choose one in the history",
            c.history
                .iter()
                .filter(|r| c.svc.lineage.is_known_bad(&r.replicaset))
                .map(|r| format!("r{}", r.number))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Gate {
        number: 7,
        name: "target exists",
        passed: c.target.is_some() && !c.paused && missing.is_empty(),
        evidence,
    }
}

/// The target's images a registry said are gone, with what it said. An image not
/// checked, or not answered, is not missing.
pub(super) fn missing_images(c: &Context) -> Vec<String> {
    use super::model::images::ImagePresence;
    c.target
        .into_iter()
        .flat_map(|r| &r.images)
        .filter_map(|i| match c.state.images.get(i) {
            Some(ImagePresence::Missing(why)) => Some(format!("{i} ({why})")),
            _ => None,
        })
        .collect()
}

/// Gate 2: the regression is in the service that was deployed, not one near it.
fn in_the_deployed_service(c: &Context) -> Gate {
    let (state, key) = (c.state, c.key);
    let gate = |passed, evidence| Gate {
        number: 2,
        name: "in the deployed service",
        passed,
        evidence,
    };
    let (Some(deployed), Some(onset)) = (c.deployed, c.onset) else {
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
    // A dependency already failing when this service deployed explains its errors
    // better than the deploy does.
    let failing_first = state.config.depends_on(&key.name).iter().find_map(|name| {
        let other = state.services.get(&ServiceKey::new(&key.namespace, name))?;
        other.triggers.iter().find_map(|(trigger, ts)| {
            let since = ts.onset.filter(|at| *at <= deployed)?;
            let failing = ts.alert.is_firing() || ts.data == DataState::Breach;
            failing.then(|| {
                format!(
                    "{name}, which {} depends on, was already failing ({trigger} since {} before the deploy)",
                    key.name,
                    ago(deployed, since)
                )
            })
        })
    });
    match newer.or(failing_first) {
        Some(evidence) => gate(false, evidence),
        None if related.is_empty() => gate(true, deployed_relative(&key.name, deployed, onset)),
        None => gate(
            true,
            format!(
                "{}; no related service ({}) deployed since",
                deployed_relative(&key.name, deployed, onset),
                related.join(", ")
            ),
        ),
    }
}

/// "checkout deployed 2m before the regression", or after it began: never "in 116s".
fn deployed_relative(name: &str, deployed: Timestamp, onset: Timestamp) -> String {
    if deployed <= onset {
        format!(
            "{name} deployed {} before the regression",
            ago(onset, deployed)
        )
    } else {
        format!(
            "{name} deployed {} after the regression began",
            ago(deployed, onset)
        )
    }
}

/// Gate 3: only the pod spec changed; no referenced ConfigMap or Secret moved in the window.
fn pod_spec_only(c: &Context) -> Gate {
    // A kind that cannot show what changed beside the version: unknown is not "none".
    let words = c.svc.deployment.as_ref().and_then(|d| d.kind.words());
    if let Some(why) = words.and_then(|w| w.unchecked_beside) {
        return Gate {
            number: 3,
            name: "pod spec only",
            passed: false,
            evidence: why.into(),
        };
    }
    let changed = blast::changed_config(c.state, c.key, c.svc, c.deployed);
    // What this user cannot see may have changed: unknown is never "unchanged".
    let unseen = blast::unseen_config(c.state, c.key, c.svc);
    Gate {
        number: 3,
        name: "pod spec only",
        passed: changed.is_empty() && unseen.is_empty(),
        evidence: if !unseen.is_empty() && changed.is_empty() {
            format!(
                "{} not visible to you (RBAC), so a change to it cannot be ruled out",
                unseen.join(", ")
            )
        } else if changed.is_empty() && !c.svc.has_pods() {
            "the deploy is a new version of what the alias serves (immutable): the shift back reverts all of it".into()
        } else if changed.is_empty() {
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
fn no_migration(c: &Context) -> Gate {
    let (state, found) = (
        c.state,
        blast::migrations(c.state, &c.key.namespace, c.deployed),
    );
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

/// Gate 6: outside the cooldown after any automatic rollback, and this service's
/// blackout after a rollback by anyone.
fn quiet(c: &Context) -> Gate {
    let state = c.state;
    let policy = &state.config.policy;
    let within = |t: Timestamp, d: Duration| state.now.duration_since(t).as_secs() < secs(d);
    let evidence = if let Some((t, by)) =
        last_rollback(state, c.key).filter(|(t, _)| within(*t, policy.blackout))
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
