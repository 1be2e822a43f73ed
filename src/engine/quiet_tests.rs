//! `update` re-decides only the services a message can move (a quiet service is left
//! alone on ticks and healthy answers). These tests hold that economy to its promise:
//! after every message, each stored decision is what deciding afresh gives.

use serde_json::json;

use super::decision::decide;
use super::fixtures::*;
use super::msg::{Effect, KubeChange, KubeObject, Msg};
use super::{update, State};

/// Applies `msg`, then checks every service's decision against a fresh one.
fn apply(state: &mut State, msg: Msg, what: &str) -> Vec<Effect> {
    let effects = update(state, msg);
    for (key, svc) in &state.services {
        assert_eq!(
            svc.decision,
            decide(state, key),
            "{key}'s stored decision is stale after {what}"
        );
    }
    effects
}

/// Every 15 s from `from` to `until`: a tick, then `service`'s error rate (`value`
/// from `onset`) and calm answers for everything else.
fn poll(state: &mut State, service: &str, value: f64, onset: i64, from: i64, until: i64) {
    for now in (from..=until).step_by(15) {
        apply(state, Msg::Tick(t(now)), &format!("the tick at {now}"));
        let answer = answer(service, "error-rate", 0.001, value, onset, now);
        apply(state, answer, &format!("{service}'s answer at {now}"));
        for calm in calm_answers(state, (service, "error-rate"), now) {
            apply(state, calm, &format!("a calm answer at {now}"));
        }
    }
}

#[test]
fn every_stored_decision_is_a_fresh_one_through_an_incident_and_its_rollback() {
    let mut state = world("");
    for name in ["payments", "frontend"] {
        deploy(
            &mut state,
            name,
            &[&format!("{name}:1"), &format!("{name}:2")],
            -900,
            false,
        );
    }
    poll(&mut state, "checkout", 0.001, 0, 0, 60);

    // Namespace-wide objects move quiet services' blast radius.
    let cm = json!({"name": "checkout-config", "namespace": "shop", "resourceVersion": "2"});
    let cm = KubeObject::ConfigMap(serde_json::from_value(cm).unwrap());
    apply(
        &mut state,
        Msg::Kube(KubeChange::Applied(cm)),
        "a ConfigMap change",
    );
    let job = json!({"metadata": {"name": "shop-migrate-1", "namespace": "shop",
        "annotations": {"backout.dev/migration": "true"}},
        "status": {"startTime": t(70).to_string()}});
    let job = KubeObject::Job(obj(job));
    apply(
        &mut state,
        Msg::Kube(KubeChange::Applied(job)),
        "a migration Job",
    );

    // checkout breaches, fires, and is suggested (the migration holds it back).
    poll(&mut state, "checkout", 0.25, 90, 90, 300);
    assert_ne!(
        state.services[&key("checkout")].decision.action,
        super::Action::None
    );

    // Someone rolls it back with kubectl; it recovers; time passes well beyond the
    // windows that read the clock (blackout, cooldown, onset, migration).
    for effect in reverted_in_cluster(&mut state, None) {
        drop(effect);
    }
    let rolled = state.services[&key("checkout")].decision.clone();
    assert_eq!(rolled, decide(&state, &key("checkout")));
    poll(&mut state, "checkout", 0.001, 300, 315, 600);
    poll(&mut state, "checkout", 0.001, 300, 3_600, 3_660);
    assert_eq!(
        state.services[&key("checkout")].decision.action,
        super::Action::None
    );
}
