//! Services that depend on one another: gate 2 (in the deployed service, not a
//! dependency), isolation in the confidence, and the cascade note in the blast radius.

use super::decision::Action;
use super::fixtures::*;
use super::state::State;

#[test]
fn a_dependency_failing_before_the_deploy_blocks_its_caller_from_automatic_rollback() {
    // frontend depends on checkout; checkout has failed since before frontend deployed.
    let mut state = world("");
    deploy(
        &mut state,
        "frontend",
        &["frontend:1", "frontend:2"],
        100,
        false,
    );
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 400);
    run(&mut state, "frontend", "error-rate", 0.001, 0.25, 130, 400);
    let d = decision(&state, "frontend");
    assert_ne!(d.action, Action::AutoRollback);
    assert!(failed_gates(&state, "frontend").contains(&2));
    assert!(
        d.gates[1]
            .evidence
            .contains("checkout, which frontend depends on, was already failing"),
        "{}",
        d.gates[1].evidence
    );
}

#[test]
fn isolation_counts_the_services_firing_now() {
    let mut state = world("");
    deploy(
        &mut state,
        "payments",
        &["payments:1", "payments:2"],
        0,
        false,
    );
    run(&mut state, "payments", "p99-latency", 0.1, 9.0, 30, 400);
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 400);
    let isolation = |state: &State| {
        let c = decision(state, "checkout").confidence.clone().unwrap();
        let part = c.parts.into_iter().find(|p| p.name == "isolation").unwrap();
        (part.value, part.note)
    };
    let (value, note) = isolation(&state);
    assert_eq!(value, 0.5, "{note}");
    assert!(note.starts_with("1 other"), "{note}");
}

#[test]
fn a_cascade_order_is_advised_only_to_a_service_that_is_itself_firing() {
    let mut state = world("");
    deploy(
        &mut state,
        "frontend",
        &["frontend:1", "frontend:2"],
        0,
        false,
    );
    run(&mut state, "frontend", "error-rate", 0.001, 0.25, 30, 200);
    let notes = |state: &State| -> Vec<String> {
        decision(state, "checkout")
            .blast_radius
            .iter()
            .filter(|n| n.text.starts_with("depended on by"))
            .map(|n| n.text.clone())
            .collect()
    };
    assert_eq!(
        notes(&state),
        ["depended on by frontend"],
        "checkout is healthy"
    );
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 215, 400);
    let firing = notes(&state);
    assert!(
        firing[0].contains("in a cascade roll back in reverse dependency order, checkout first"),
        "{firing:?}"
    );
}

#[test]
fn a_deploy_after_the_onset_reads_as_after_never_as_in_so_many_seconds() {
    let mut state = world("");
    // The regression began at 0 s; checkout deployed at 0 s in the world, so
    // redeploy it at 100 s, after the onset.
    deploy(
        &mut state,
        "checkout",
        &["checkout:1", "checkout:2", "checkout:3"],
        100,
        false,
    );
    run(&mut state, "checkout", "error-rate", 0.25, 0.25, 0, 200);
    let gate_2 = &decision(&state, "checkout").gates[1];
    assert!(
        gate_2.evidence.contains("after the regression began"),
        "{}",
        gate_2.evidence
    );
    assert!(!gate_2.evidence.contains(" in "), "{}", gate_2.evidence);
}
