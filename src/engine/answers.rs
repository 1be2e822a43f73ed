//! One trigger's answer for one service, applied to the state: the points kept, the
//! data judged, the alert stepped, the move journaled. `update` calls it for every
//! answer a poll brings (a grouped answer fanned out, a cluster sample, a single query).

use std::time::Duration;

use super::decision::Action;
use super::journal::Entry;
use super::msg::{Effect, PlacedAnswer, QueryAnswer};
use super::signals::{self, DataState};
use super::state::{Service, ServiceKey, State};

/// The rate window of the recorded series, over which the volume guard counts requests.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// How long an answer stands before its trigger is stale: two poll intervals.
pub(super) fn stale_after(state: &State) -> Duration {
    state
        .config
        .prometheus
        .as_ref()
        .map_or(Duration::from_secs(30), |p| p.poll_interval * 2)
}

/// Applies one trigger's answer for one service, the trigger found by name.
pub(super) fn query(
    state: &mut State,
    answer: QueryAnswer,
    partial_from: Option<i64>,
    effects: &mut Vec<Effect>,
) -> Option<ServiceKey> {
    let answer = PlacedAnswer {
        trigger_at: trigger_at(state, &answer.trigger)?,
        service: answer.service,
        answered_at: answer.answered_at,
        outcome: answer.outcome,
    };
    apply_answer(state, answer, partial_from, effects)
}

pub(super) fn trigger_at(state: &State, name: &str) -> Option<usize> {
    state.config.triggers.iter().position(|t| t.name == name)
}

/// Applies one answer. A partial answer (`partial_from`, where its points begin)
/// extends the points kept from earlier answers.
pub(super) fn apply_answer(
    state: &mut State,
    mut answer: PlacedAnswer,
    partial_from: Option<i64>,
    effects: &mut Vec<Effect>,
) -> Option<ServiceKey> {
    let trigger_at = answer.trigger_at;
    let (stale, blackout, min_requests, now) = (
        stale_after(state),
        state.config.policy.blackout,
        state.config.policy.min_requests,
        state.now.max(answer.answered_at),
    );
    // One lookup of the service for everything asked of it: at 2,000 services each
    // lookup compares a dozen keys, and a poll applies 8,000 answers.
    let svc = state.services.get_mut(&answer.service)?;
    // After a rollback nothing is evaluated for the blackout, unless a new build
    // shipped since: that is a new story, judged on its own (gate 6 still holds it
    // back from being automatic).
    let in_blackout =
        super::lineage::last_rollback_at(&state.flags, &answer.service, svc, state.now)
            .is_some_and(|r| {
                now.duration_since(r).as_secs() < blackout.as_secs() as i64
                    && (svc.lineage.current_is_rollback
                        || svc.decision.deployed_at.is_none_or(|d| d <= r))
            });
    let trigger = &state.config.triggers[trigger_at];
    if !svc.triggers.contains_key(&trigger.name) {
        svc.triggers
            .insert(trigger.name.clone(), Default::default());
    }
    let t = svc.triggers.get_mut(&trigger.name).expect("inserted above");
    if let (Some(from), signals::QueryOutcome::Series { points, .. }, Some(p)) = (
        partial_from,
        &mut answer.outcome,
        state.config.prometheus.as_ref(),
    ) {
        let oldest = now.as_millisecond() - p.lookback.as_millis() as i64;
        let spacing = p.step().as_millis() as i64;
        let fresh = std::mem::take(points);
        *points = std::mem::take(&mut t.points).extend(from, fresh, spacing, oldest);
    }
    let judged = signals::judge(
        &answer.outcome,
        trigger,
        now,
        stale,
        min_requests,
        RATE_WINDOW,
    );
    if let signals::QueryOutcome::Series { points, .. } = answer.outcome {
        t.points = points;
    }
    let clean = judged.data.is_clean();
    t.recent.push(clean);
    t.last_answer = Some(answer.answered_at);
    if clean {
        t.last_clean = Some(answer.answered_at);
        t.blind_since = None;
        t.paged_blind = false;
    } else {
        t.blind_since.get_or_insert(now);
    }
    t.value = judged.value.or(t.value);
    t.data = judged.data;
    let before = t.alert;
    if !in_blackout {
        t.onset = if t.data == DataState::Breach {
            judged.onset
        } else if t.alert.is_firing() {
            t.onset
        } else {
            None
        };
        t.alert = signals::step(t.alert, &t.data, judged.onset, now, trigger);
    }
    let moved = (before.label() != t.alert.label()).then(|| Entry::Trigger {
        trigger: trigger.name.clone(),
        from: before.label().into(),
        to: t.alert.label().into(),
        value: t.value,
        data: t.data.label().into(),
    });
    let firing_now = svc.triggers.values().any(|t| t.alert.is_firing());
    let held_open = held_open(svc);
    if let Some(entry) = moved {
        let incident = svc.incident.clone();
        effects.push(state.journal(incident, &answer.service.to_string(), entry));
    }
    match firing_now {
        true => state.firing.insert(answer.service.clone()),
        false => state.firing.remove(&answer.service),
    };
    // `in_play`, from what was read above.
    (before.is_firing() || firing_now || held_open).then_some(answer.service)
}

/// What keeps a service in play whether or not anything fires.
pub(super) fn held_open(svc: &Service) -> bool {
    svc.decision.action != Action::None
        || svc.incident.is_some()
        || svc.rollback.is_some()
        || svc.lineage.current_is_rollback
}
