//! Automatic rollbacks, first ordered and then retried: an automatic rollback that
//! failed for a passing reason (an API error, a conflict, a throttled server) is
//! ordered again with a growing pause, for as long as the decision holds.

use super::decision::Action;
use super::model::msg::Effect;
use super::rollbacks::{self, Request};
#[cfg(test)]
use super::rollbacks::{retry_pause as backoff, LONGEST_RETRY_PAUSE as LONGEST};
use super::state::{ServiceKey, State};

/// Whether policy lets backout roll `key` back by itself now.
pub fn allowed(state: &State, key: &ServiceKey) -> bool {
    state.config.policy.auto_rollback
        && !state.draining
        && state
            .services
            .get(key)
            .is_some_and(|s| s.no_auto.is_none() && s.decision.action == Action::AutoRollback)
}

/// Orders the automatic rollback the decision of `key` calls for, as try `attempt`.
pub fn order(state: &mut State, key: &ServiceKey, attempt: u32, effects: &mut Vec<Effect>) {
    let Some(svc) = state.services.get(key) else {
        return;
    };
    let reason = svc
        .decision
        .firing
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f.trigger,
                f.value
                    .map_or("firing".into(), |v| format!("{v:.4} > {}", f.threshold))
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let request = Request {
        to_revision: None,
        automatic: true,
        reason: format!("automatic: {reason}"),
        by: state.actor.clone(),
        expected: None,
    };
    rollbacks::order(state, key, request, effects);
    if let Some(p) = state
        .services
        .get_mut(key)
        .and_then(|s| s.rollback.as_mut())
    {
        p.attempt = attempt;
    }
}

/// Orders again every failed automatic rollback whose pause is over, while the
/// decision that called for it holds. Called on every tick.
pub fn due(state: &mut State, effects: &mut Vec<Effect>) {
    let now = state.now;
    let due: Vec<(ServiceKey, u32)> = state
        .services
        .iter()
        .filter_map(|(key, svc)| {
            let p = svc.rollback.as_ref()?;
            (p.retry_at? <= now).then(|| (key.clone(), p.attempt))
        })
        .collect();
    for (key, attempt) in due {
        if let Some(p) = state
            .services
            .get_mut(&key)
            .and_then(|s| s.rollback.as_mut())
        {
            p.retry_at = None;
        }
        if allowed(state, &key) {
            order(state, &key, attempt + 1, effects);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::*;
    use crate::engine::rollbacks::RollbackError;
    use crate::engine::{update, Msg};

    fn orders(effects: &[Effect]) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Rollback(_)))
            .count()
    }

    fn fail(state: &mut State, error: RollbackError) -> Vec<Effect> {
        let service = key("checkout");
        update(state, Msg::RollbackFailed { service, error })
    }

    #[test]
    fn a_failed_automatic_rollback_is_tried_again_with_growing_pauses_and_paged_once() {
        let mut state = world("[policy]\nauto_rollback = true\n");
        let effects = run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        assert_eq!(orders(&effects), 1);
        let pages = |e: &[Effect]| {
            e.iter()
                .filter(|e| matches!(e, Effect::Page { .. }))
                .count()
        };
        let failed_at = state.now.as_second() - T0;
        let first = fail(&mut state, RollbackError::Api("500 InternalError".into()));
        assert_eq!(pages(&first), 1, "{first:?}");
        assert!(state.services[&key("checkout")].no_auto.is_none());
        // Not before the pause is over; at its end, once.
        let early = update(&mut state, Msg::Tick(t(failed_at + 4)));
        assert_eq!(orders(&early), 0, "{early:?}");
        assert_eq!(orders(&update(&mut state, Msg::Tick(t(failed_at + 5)))), 1);
        assert_eq!(
            state.services[&key("checkout")]
                .rollback
                .as_ref()
                .unwrap()
                .attempt,
            2
        );
        let second = fail(&mut state, RollbackError::Conflict("checkout".into()));
        assert_eq!(pages(&second), 0, "retries are journaled, not paged again");
        let failed_again = failed_at + 5;
        assert_eq!(
            orders(&update(&mut state, Msg::Tick(t(failed_again + 9)))),
            0
        );
        assert_eq!(
            orders(&update(&mut state, Msg::Tick(t(failed_again + 10)))),
            1,
            "after 10 s"
        );
    }

    #[test]
    fn no_try_again_after_a_final_error_or_once_the_decision_is_gone() {
        let mut state = world("[policy]\nauto_rollback = true\n");
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        fail(&mut state, RollbackError::Forbidden("may not patch".into()));
        assert_eq!(orders(&update(&mut state, Msg::Tick(t(300)))), 0);

        let mut state = world("[policy]\nauto_rollback = true\n");
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        fail(&mut state, RollbackError::Api("500".into()));
        // The signal recovers at once, before the pause is over: nothing to roll back for.
        let effects = run(&mut state, "checkout", "error-rate", 0.25, 0.001, -300, 196);
        assert_ne!(
            state.services[&key("checkout")].decision.action,
            Action::AutoRollback
        );
        assert_eq!(orders(&effects), 0, "{effects:?}");
        let after_the_pause = update(&mut state, Msg::Tick(t(260)));
        assert_eq!(orders(&after_the_pause), 0, "{after_the_pause:?}");
        assert!(state.services[&key("checkout")]
            .rollback
            .as_ref()
            .unwrap()
            .retry_at
            .is_none());
    }

    #[test]
    fn the_pause_doubles_up_to_a_minute() {
        let secs: Vec<u64> = (1..=6).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(u32::MAX), LONGEST);
    }
}
