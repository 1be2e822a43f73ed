//! Verifying a rollback, whoever made it, from what the engine already watches: the
//! Deployment's rollout (from the watch), then the triggers that fired going back past
//! their recovery line and staying there (from the poller), then the health URLs (the
//! one probe left to the effect runner), then every pod ready. Pure, like `update`:
//! each message that touches the service moves it on, and a tick moves the clocks.

use super::model::journal::Entry;
use super::model::msg::{Effect, Outcome};
use super::model::rollback::{Check, Phase, Progress, Wait};
use super::rollout::{self, Rollout};
use super::signals::DataState;
use super::state::{Service, ServiceKey, State};
use crate::config::Comparison;

pub(super) use super::verification_words::elapsed;
pub use super::verification_words::pending;
use super::verification_words::{recovered, still};

/// The line a value has to pass to count as recovered: the threshold moved by the
/// margin, so a value just under the threshold is not a recovery.
pub fn recover_at(comparison: Comparison, threshold: f64, margin: f64) -> f64 {
    match comparison {
        Comparison::Above | Comparison::AtLeast => threshold * (1.0 - margin),
        Comparison::Below | Comparison::AtMost => threshold * (1.0 + margin),
    }
}

fn past_line(w: &Wait, value: f64) -> bool {
    match w.comparison {
        Comparison::Above | Comparison::AtLeast => value <= w.recover_at,
        Comparison::Below | Comparison::AtMost => value >= w.recover_at,
    }
}

/// The Deployment whose rollout, triggers and pods tell whether the rollback of `key`
/// worked: `key` itself, or for a blue-green switch the colour that took the traffic
/// back (when backout watches it).
fn watched(state: &State, key: &ServiceKey) -> ServiceKey {
    let to = state
        .services
        .get(key)
        .and_then(|s| s.rollback.as_ref())
        .and_then(|p| p.plan.as_ref())
        .and_then(|plan| plan.switch.as_ref())
        .and_then(|s| s.to_deployment.as_ref())
        .map(|d| ServiceKey::new(&key.namespace, d));
    to.filter(|k| state.services.contains_key(k))
        .unwrap_or_else(|| key.clone())
}

/// The triggers to wait on, not already waited on: those firing or breaching now on
/// `fired`, judged on `measured`'s series (for a switch, the colour now taking the
/// traffic). Called when the patch lands and again when the rollout completes, so a
/// CLI that started just before confirming still waits on what its poller found
/// breaching.
fn waits(state: &State, fired: &Service, measured: &Service, already: &[Wait]) -> Vec<Wait> {
    let margin = state.config.policy.recovery_margin;
    let svc = measured;
    let deployed = svc.decision.deployed_at.map(|t| t.as_millisecond());
    state
        .config
        .triggers
        .iter()
        .filter(|t| !already.iter().any(|w| w.trigger == t.name))
        .filter(|t| {
            [fired, measured].iter().any(|s| {
                s.triggers
                    .get(&t.name)
                    .is_some_and(|ts| ts.alert.is_firing() || ts.data == DataState::Breach)
            })
        })
        .map(|t| {
            let ts = svc.triggers.get(&t.name);
            let before: Vec<f64> = ts
                .into_iter()
                .flat_map(|ts| ts.points.iter())
                .filter(|(at, _)| deployed.is_some_and(|d| *at < d))
                .map(|(_, v)| v)
                .filter(|v| v.is_finite())
                .collect();
            Wait {
                trigger: t.name.clone(),
                comparison: t.comparison,
                threshold: t.threshold,
                recover_at: recover_at(t.comparison, t.threshold, margin),
                baseline: (!before.is_empty())
                    .then(|| before.iter().sum::<f64>() / before.len() as f64),
                value: ts.and_then(|ts| ts.value),
                data: ts.map_or("not queried yet".into(), |ts| ts.data.label().to_string()),
                recovered_since: None,
            }
        })
        .collect()
}

/// The rollback's patch landed: watch it roll out, then recover.
pub fn begin(state: &mut State, key: &ServiceKey) {
    let now = state.now;
    let watched = watched(state, key);
    let (Some(fired), Some(measured)) = (state.services.get(key), state.services.get(&watched))
    else {
        return;
    };
    let waiting = waits(state, fired, measured, &[]);
    let svc = state.services.get_mut(key).expect("checked above");
    if let Some(p) = svc.rollback.as_mut().filter(|p| p.running()) {
        p.waits = waiting;
        p.phase = Phase::RollingOut;
        p.phase_since = now;
    }
}

/// How far past a followed Lease's lapse backout waits before calling its holder gone.
const LEASE_CLOCK_MARGIN: std::time::Duration = std::time::Duration::from_secs(3);

/// What a phase's step concluded.
enum Next {
    Stay,
    /// On to the next phase: step again at once.
    Again,
    /// Every wait held: the last checks, then the outcome.
    Finish,
    End(Result<Outcome, String>),
}

/// Moves a rollback under way on, by what the state now shows.
pub fn advance(state: &mut State, key: &ServiceKey, effects: &mut Vec<Effect>) {
    let Some(phase) = running(state, key).map(|p| p.phase) else {
        return;
    };
    // Someone shipped a new build on top of the rollback: that is a new story, with a
    // decision of its own, not this rollback's verification.
    if let Some(revision) = superseded(state, key) {
        let why = format!("superseded by a new deploy, revision {revision}");
        return end(state, key, Err(why), effects);
    }
    let next = match phase {
        Phase::Following => following(state, key),
        Phase::RollingOut => rolling_out(state, key),
        Phase::Recovering => recovering(state, key, effects),
        Phase::Preparing | Phase::Probing | Phase::Ended => Next::Stay,
    };
    match next {
        Next::Stay => {}
        Next::Again => advance(state, key, effects),
        Next::Finish => finish(state, key, effects),
        Next::End(result) => end(state, key, result, effects),
    }
}

/// The revision of a fresh deploy (a new ReplicaSet, not a template coming back)
/// made after the rollback under way, if there is one.
fn superseded(state: &State, key: &ServiceKey) -> Option<u64> {
    let svc = state.services.get(key)?;
    let rollback = svc.rollback.as_ref()?.revision?;
    let current = rollout::history(svc.replicasets.values()).pop()?;
    (current.number > rollback && !current.returned).then_some(current.number)
}

fn running<'a>(state: &'a State, key: &ServiceKey) -> Option<&'a Progress> {
    state
        .services
        .get(key)?
        .rollback
        .as_deref()
        .filter(|p| p.running())
}

fn running_mut<'a>(state: &'a mut State, key: &ServiceKey) -> Option<&'a mut Progress> {
    state
        .services
        .get_mut(key)?
        .rollback
        .as_deref_mut()
        .filter(|p| p.running())
}

/// Someone else holds the Lease: their rollback should show soon (`adopt` takes it
/// over when it does). A holder that never rolls back ends the wait.
fn following(state: &mut State, key: &ServiceKey) -> Next {
    let (now, deadline) = (state.now, state.config.policy.rollout_deadline);
    let Some(p) = running(state, key) else {
        return Next::Stay;
    };
    // A live holder patches within seconds and renews its Lease meanwhile; one whose
    // Lease lapsed with nothing in the cluster was killed or cut off. The margin
    // allows for the API server's clock.
    if let Some(lapsed) = p
        .lease_expires
        .filter(|at| elapsed(now, *at) > LEASE_CLOCK_MARGIN)
    {
        return Next::End(Err(format!(
            "{} held the rollback's lease, and no rollback appeared in the cluster before \
             it lapsed at {lapsed}: that holder is gone. Roll back again to take the lease over",
            p.by
        )));
    }
    if elapsed(now, p.phase_since) <= deadline {
        return Next::Stay;
    }
    Next::End(Err(format!(
        "{} held the rollback, and no rollback appeared in the cluster",
        p.by
    )))
}

/// The rollback's revision rolls out, as the Deployment's watch shows it; a status
/// from before the controller saw the rollback does not count.
fn rolling_out(state: &mut State, key: &ServiceKey) -> Next {
    let (now, deadline) = (state.now, state.config.policy.rollout_deadline);
    let Some(p) = running(state, key) else {
        return Next::Stay;
    };
    let (phase_since, already, revision) = (p.phase_since, p.waits.clone(), p.revision);
    let target = p.plan.as_ref().map(|plan| plan.to_replicaset.clone());
    let watched = watched(state, key);
    let Some(svc) = state.services.get(&watched) else {
        return Next::Stay;
    };
    // A kind outside the cluster is read by polling, and a shift makes no revision: a
    // read from before the revert still shows the version rolled back from, so only
    // one that shows the target settled counts.
    let reached = |d: &&super::kept::WorkloadSummary| {
        d.kind.kube_kind().is_some()
            || target.as_ref().is_none_or(|t| {
                d.canary
                    .as_ref()
                    .is_some_and(|c| c.stable_replicaset == *t && !c.in_progress())
            })
    };
    // A switch makes no revision: the colour taking the traffic must simply be ready.
    let status = svc
        .deployment
        .as_ref()
        .filter(|d| d.revision >= revision.unwrap_or(0))
        .filter(reached)
        .map(rollout::status);
    let name = match watched == *key {
        true => "rollout completes".to_string(),
        false => format!("{} takes the traffic", watched.name),
    };
    let (passed, detail, next) = match status {
        Some(Rollout::Complete(m)) => (true, m, Next::Again),
        Some(Rollout::Failed(m)) => (false, m, Next::End(Ok(Outcome::RolloutStuck))),
        _ if elapsed(now, phase_since) > deadline => (
            false,
            format!(
                "not complete after {}",
                humantime::format_duration(deadline)
            ),
            Next::End(Ok(Outcome::RolloutStuck)),
        ),
        _ => return Next::Stay,
    };
    let more = if passed {
        waits(state, &state.services[key], svc, &already)
    } else {
        Vec::new()
    };
    let p = running_mut(state, key).expect("checked above");
    p.checks.push(check(&name, passed, detail));
    if passed {
        p.phase = Phase::Recovering;
        p.phase_since = now;
        p.waits.extend(more);
    }
    next
}

/// Each trigger that fired goes back past its recovery line on fresh, clean data and
/// stays there for the hold; the verification window bounds the wait.
fn recovering(state: &mut State, key: &ServiceKey, effects: &mut Vec<Effect>) -> Next {
    let now = state.now;
    let policy = state.config.policy.clone();
    let names = health_names(state, key);
    let probes = state
        .config
        .health_checks
        .iter()
        .any(|h| names.contains(&h.deployment));
    let Some((started, already)) = running(state, key).map(|p| (p.started, p.waits.clone())) else {
        return Next::Stay;
    };
    let watched = watched(state, key);
    let Some(svc) = state.services.get(&watched) else {
        return Next::Stay;
    };
    // A trigger never answered says nothing, least of all "recovered": wait for every
    // first answer, and wait on any trigger found breaching, before concluding.
    let unanswered: Vec<String> = match state.config.prometheus {
        None => Vec::new(),
        Some(_) => state
            .config
            .triggers
            .iter()
            .filter(|t| svc.asks(t))
            .filter(|t| {
                svc.triggers
                    .get(&t.name)
                    .is_none_or(|ts| ts.last_answer.is_none_or(|a| a < started))
            })
            .map(|t| t.name.clone())
            .collect(),
    };
    let more = waits(state, &state.services[key], svc, &already);
    let triggers = svc.triggers.clone();
    let Some(p) = running_mut(state, key) else {
        return Next::Stay;
    };
    p.waits.extend(more);
    p.unanswered = unanswered;
    for w in &mut p.waits {
        let Some(t) = triggers.get(&w.trigger) else {
            continue;
        };
        w.value = t.value;
        w.data = t.data.label().into();
        let fresh = t.data.is_clean() && t.last_answer.is_some_and(|a| a >= p.phase_since);
        if fresh && t.value.is_some_and(|v| past_line(w, v)) {
            w.recovered_since.get_or_insert(now);
        } else {
            w.recovered_since = None;
        }
    }
    let held = |w: &Wait| {
        w.recovered_since
            .is_some_and(|s| elapsed(now, s) >= policy.recovery_hold)
    };
    let all_held = p.waits.iter().all(held) && p.unanswered.is_empty();
    if !all_held && elapsed(now, p.phase_since) <= policy.verification_window {
        return Next::Stay;
    }
    let checks: Vec<Check> = p
        .waits
        .iter()
        .map(|w| {
            let ok = held(w);
            let detail = if ok {
                recovered(w, policy.recovery_hold)
            } else {
                still(w)
            };
            check(&format!("{} recovers", w.trigger), ok, detail)
        })
        .collect();
    p.checks.extend(checks);
    if !p.unanswered.is_empty() {
        let detail =
            "no answer from Prometheus since the rollback began: recovery was not seen".to_string();
        p.checks.push(check(
            &format!("{} recovers", p.unanswered.join(", ")),
            false,
            detail,
        ));
    }
    if !all_held {
        return Next::End(Ok(Outcome::DidNotHelp));
    }
    if !probes {
        return Next::Finish;
    }
    p.phase = Phase::Probing;
    p.phase_since = now;
    effects.push(Effect::Probe {
        service: key.clone(),
        names,
    });
    Next::Stay
}

/// The names whose health URLs verify the rollback of `key`: the Deployment, and the
/// blue-green Service it switched.
fn health_names(state: &State, key: &ServiceKey) -> Vec<String> {
    let switched = running(state, key)
        .and_then(|p| p.plan.as_ref())
        .and_then(|plan| plan.switch.as_ref())
        .map(|s| s.service.clone());
    std::iter::once(key.name.clone()).chain(switched).collect()
}

fn check(name: &str, passed: bool, detail: String) -> Check {
    Check {
        name: name.into(),
        passed,
        detail,
    }
}

/// The last check, every pod ready, then the outcome.
pub fn finish(state: &mut State, key: &ServiceKey, effects: &mut Vec<Effect>) {
    let watched = watched(state, key);
    let Some(deployment) = state.services.get(&watched).map(|s| &s.deployment) else {
        return;
    };
    let (want, ready) = deployment
        .as_ref()
        .map_or((1, 0), |d| (d.replicas, d.ready_replicas));
    // A kind without pods (a Lambda alias) has its traffic checked by the rollout
    // step: there is no pod to count. A Compose service counts its containers.
    let counted = state.services.get(&watched).map(|s| match s.has_pods() {
        true => "every pod ready",
        false if s.has_instances() => "every container ready",
        false => "",
    });
    let Some(p) = running_mut(state, key) else {
        return;
    };
    if let Some(name) = counted.filter(|n| !n.is_empty()) {
        p.checks.push(check(
            name,
            ready >= want,
            format!("{ready} of {want} ready"),
        ));
    }
    let outcome = if p.checks.iter().all(|c| c.passed) {
        Outcome::Verified
    } else {
        Outcome::DidNotHelp
    };
    end(state, key, Ok(outcome), effects);
}

/// The rollback's life ended: journal it, start the blackout, page unless verified,
/// and give the Lease back if it is this process's.
pub fn end(
    state: &mut State,
    key: &ServiceKey,
    result: Result<Outcome, String>,
    effects: &mut Vec<Effect>,
) {
    conclude(state, key, result, true, effects);
}

fn conclude(
    state: &mut State,
    key: &ServiceKey,
    result: Result<Outcome, String>,
    page_unverified: bool,
    effects: &mut Vec<Effect>,
) {
    let now = state.now;
    let Some(svc) = state.services.get_mut(key) else {
        return;
    };
    let incident = svc.incident.clone();
    let Some(p) = svc.rollback.as_mut().filter(|p| p.running()) else {
        return;
    };
    p.phase = Phase::Ended;
    p.ended = Some((now, result.clone()));
    let (ours, automatic, committed, checks) = (
        p.ours,
        p.automatic,
        p.committed,
        p.checks.iter().map(Check::to_string).collect::<Vec<_>>(),
    );
    let page = match &result {
        Ok(Outcome::Verified) => None,
        Ok(outcome) => {
            svc.no_auto = Some(format!("the rollback ended at {now}: {}", outcome.label()));
            Some(format!(
                "{}: escalating; backout will not roll {key} back automatically again",
                outcome.label()
            ))
        }
        Err(e) => page_unverified.then(|| format!("rollback not verified: {e}")),
    };
    if committed {
        state.note_rollback(key, now, automatic);
    } else if automatic && result.is_err() {
        // Nothing was written (a holder that died, say): the decision still stands,
        // so the retry schedule orders it again.
        if let Some(p) = state
            .services
            .get_mut(key)
            .and_then(|s| s.rollback.as_mut())
        {
            p.retry_at = Some(now + super::model::rollback::FIRST_RETRY_PAUSE);
        }
    }
    let entry = Entry::Verification {
        outcome: match &result {
            Ok(o) => o.label().to_string(),
            Err(e) => format!("not verified: {e}"),
        },
        checks,
    };
    effects.push(state.journal(incident.clone(), &key.to_string(), entry));
    // The process that rolled back told the team; it tells them it is over too.
    if ours && committed && matches!(result, Ok(Outcome::Verified)) {
        effects.push(Effect::Resolve {
            service: key.clone(),
            summary: format!("the rollback of {key} is verified"),
            incident,
        });
    }
    if let Some(summary) = page {
        effects.push(Effect::Page {
            service: key.clone(),
            summary,
        });
    }
    if ours {
        effects.push(Effect::ReleaseLease {
            service: key.clone(),
        });
    }
}

/// Verification stopped before its end (the terminal went, or the process is
/// stopping): journaled, so the report says so and by whom.
pub fn abandon(state: &mut State, key: &ServiceKey, why: &str, effects: &mut Vec<Effect>) {
    if state
        .services
        .get(key)
        .and_then(|s| s.rollback.as_ref())
        .is_some_and(|p| p.running() && p.committed)
    {
        let result = Err(format!("verification abandoned: {why}"));
        conclude(state, key, result, false, effects);
    }
}
