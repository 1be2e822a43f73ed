//! The engine over a target that is not a Deployment: an Argo Rollouts canary is
//! decided on like any service, goes back to its stable ReplicaSet (an abort), and an
//! abort anyone made is a rollback every process reads from the cluster.

use serde_json::json;

use super::decision::Action;
use super::fixtures::*;
use super::msg::{Effect, KubeChange, KubeObject, Msg};
use super::state::State;
use super::update::update;
use crate::targets::TargetKind;

fn canary_world(status: serde_json::Value) -> State {
    let mut state = State::new(config("[policy]\nauto_rollback = true\n"), t(0));
    canary(&mut state, status);
    state
}

#[test]
fn a_failing_canary_is_aborted_back_to_its_stable_replicaset() {
    let mut state = canary_world(json!({}));
    let effects = run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    let d = decision(&state, "checkout");
    assert_eq!(d.action, Action::AutoRollback, "{:?}", d.why_not_automatic);
    let target = d.target.as_ref().expect("a target");
    assert_eq!(
        (target.revision, target.replicaset.as_str()),
        (1, "checkout-0")
    );
    assert!(
        d.gates[0].evidence.contains("revision 2's canary began"),
        "{}",
        d.gates[0].evidence
    );
    assert!(
        d.blast_radius.iter().any(|n| n
            .text
            .contains("an abort moves the canary's 20% of the replicas back")),
        "{:?}",
        d.blast_radius
    );
    let kinds: Vec<TargetKind> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Rollback(order) => Some(order.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [TargetKind::ArgoRollout], "one order, as a Rollout");
}

#[test]
fn an_abort_anyone_made_marks_the_canary_known_bad_and_starts_the_blackout() {
    let state = canary_world(json!({"abort": true, "abortedAt": t(100).to_string(),
        "phase": "Degraded", "message": "RolloutAborted: Rollout aborted update to revision 2",
        "currentStepIndex": 0, "updatedReplicas": 0}));
    let svc = &state.services[&key("checkout")];
    assert!(svc.lineage.is_known_bad("checkout-1"));
    assert!(!svc.lineage.is_known_bad("checkout-0"));
    let abort = svc.lineage.latest().expect("the abort, read as a rollback");
    assert_eq!(abort.at, Some(t(100)));
    assert!(abort.by.contains("outside backout"), "{}", abort.by);
    let d = decision(&state, "checkout");
    assert_eq!(
        d.target.as_ref().map(|t| t.revision),
        Some(1),
        "after an abort the next step is the undo to stable, never the canary"
    );
    assert!(
        d.blast_radius
            .iter()
            .any(|n| n.risk && n.text.contains("the canary is aborted")),
        "{:?}",
        d.blast_radius
    );
}

#[test]
fn a_rollout_owns_its_name_over_the_deployment_it_references() {
    let mut state = canary_world(json!({}));
    // workloadRef: the Deployment of the same name, scaled to zero by Argo.
    deployment(&mut state, "checkout", "checkout:2", 1, true, false);
    let kind = |state: &State| {
        state.services[&key("checkout")]
            .deployment
            .as_ref()
            .map(|d| d.kind)
    };
    assert_eq!(kind(&state), Some(TargetKind::ArgoRollout));
    let gone = json!({"metadata": {"name": "checkout", "namespace": "shop"}});
    update(
        &mut state,
        Msg::Kube(KubeChange::Deleted(KubeObject::Deployment(obj(gone)))),
    );
    assert_eq!(
        kind(&state),
        Some(TargetKind::ArgoRollout),
        "the Deployment's deletion is not the Rollout's"
    );
}

#[test]
fn a_target_image_the_registry_lost_fails_gate_7_and_an_unanswered_check_does_not() {
    use super::model::images::ImagePresence;
    let mut state = world(
        "[policy]\nauto_rollback = true\n[[registry]]\nhost = \"registry.local\"\nurl = \"http://r\"\n",
    );
    // The world's images have no registry host: name them on the configured one.
    deploy(
        &mut state,
        "web",
        &["registry.local/web:1", "registry.local/web:2"],
        0,
        false,
    );
    assert_eq!(
        state.images.get("registry.local/web:1"),
        Some(&ImagePresence::Asked),
        "the target's image is asked about as soon as it is the target"
    );
    assert!(
        !state.images.contains_key("registry.local/web:2"),
        "not the running one"
    );
    let effects = run(&mut state, "web", "error-rate", 0.001, 0.25, 30, 200);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::CheckImages { .. })),
        "asked once"
    );
    let answer = |presence| Msg::ImagesChecked(vec![("registry.local/web:1".into(), presence)]);
    update(
        &mut state,
        answer(ImagePresence::Unknown(
            "registry.local could not be reached".into(),
        )),
    );
    assert!(
        failed_gates(&state, "web").is_empty(),
        "an unanswered check is never missing"
    );
    update(
        &mut state,
        answer(ImagePresence::Missing("registry.local answered 404".into())),
    );
    assert_eq!(failed_gates(&state, "web"), [7]);
    assert_ne!(decision(&state, "web").action, Action::AutoRollback);
    assert!(decision(&state, "web").blast_radius.iter().any(|n| n.risk
        && n.text
            .contains("target image missing: registry.local/web:1")));
}

#[test]
fn a_terraform_change_near_the_deploy_is_named_and_an_unreadable_state_is_unknown() {
    use super::model::infra::InfraState;
    let mut state = world("");
    let infra = |changed: Option<i64>, error: Option<&str>| {
        Msg::Infra(InfraState {
            name: "network".into(),
            changed_at: changed.map(t),
            serial: Some(42),
            error: error.map(String::from),
        })
    };
    let notes = |state: &State| decision(state, "checkout").blast_radius.clone();
    update(&mut state, infra(Some(-86_400), None));
    assert!(
        !notes(&state).iter().any(|n| n.text.contains("Terraform")),
        "a day before is not near"
    );
    update(&mut state, infra(Some(-120), None));
    assert!(
        notes(&state).iter().any(|n| n.risk
            && n.text
                .contains("Terraform state network (serial 42) changed 2m before")),
        "{:?}",
        notes(&state)
    );
    update(
        &mut state,
        infra(None, Some("state.tfstate: permission denied")),
    );
    assert!(notes(&state).iter().any(|n| !n.risk
        && n.text
            .contains("is unknown: state.tfstate: permission denied")));
}

mod flags {
    use crate::engine::decision::Action;
    use crate::engine::fixtures::*;
    use crate::engine::model::flags::FlagState;
    use crate::engine::msg::Msg;
    use crate::engine::update::update;

    fn flag(on: bool, at: i64) -> Msg {
        Msg::Flag(FlagState {
            name: "new-coupons".into(),
            service: key("checkout"),
            on: Some(on),
            changed_at: Some(t(at)),
            changed_by: Some("dana@unleash".into()),
            error: None,
        })
    }

    #[test]
    fn a_flag_turned_on_after_the_deploy_is_the_change_and_its_kill_a_rollback_for_all() {
        let mut state = world("[policy]\nauto_rollback = true\n");
        update(&mut state, flag(true, 20));
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        let d = &state.services[&key("checkout")].decision;
        assert_eq!(d.action, Action::AutoRollback, "{d:?}");
        assert!(
            d.gates[0]
                .evidence
                .contains("after flag new-coupons was turned on"),
            "gate 1 times from the flag: {}",
            d.gates[0].evidence
        );
        assert!(
            d.gates[6].evidence.contains("the kill switch"),
            "{:?}",
            d.gates[6]
        );
        assert!(d
            .blast_radius
            .iter()
            .any(|n| n.text.contains("flag new-coupons was turned on") && !n.risk));
        // Turned off by anyone: every process reads it as a rollback, and the
        // blackout holds the next decision back.
        update(&mut state, flag(false, 210));
        let (at, by) = crate::engine::lineage::last_rollback(&state, &key("checkout")).unwrap();
        assert_eq!(at, t(210));
        assert!(by.contains("flag new-coupons turned off"), "{by}");
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 215, 300);
        let d = &state.services[&key("checkout")].decision;
        assert_ne!(d.action, Action::AutoRollback, "inside the blackout: {d:?}");
    }

    #[test]
    fn the_page_for_a_flag_in_play_names_the_kill_switch_not_an_undo() {
        let mut state = world("");
        update(&mut state, flag(true, 20));
        let effects = run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        let page = effects
            .iter()
            .find_map(|e| match e {
                crate::engine::msg::Effect::Page { summary, .. } => Some(summary.clone()),
                _ => None,
            })
            .expect("automatic rollback is off here: a page");
        assert!(
            page.contains("turn off flag new-coupons (the kill switch")
                && !page.contains("kubectl rollout undo"),
            "{page}"
        );
    }

    #[test]
    fn an_unread_flag_is_unknown_never_the_change() {
        let mut state = world("");
        update(
            &mut state,
            Msg::Flag(FlagState {
                name: "new-coupons".into(),
                service: key("checkout"),
                on: None,
                changed_at: None,
                changed_by: None,
                error: Some("Unleash refused (401)".into()),
            }),
        );
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        let d = &state.services[&key("checkout")].decision;
        assert!(d
            .blast_radius
            .iter()
            .any(|n| n.risk && n.text.contains("could not be read (Unleash refused (401))")));
        assert!(!d.gates[6].evidence.contains("kill switch"));
    }

    #[test]
    fn the_page_for_a_lambda_alias_names_its_update_alias() {
        use crate::engine::msg::TargetRead;
        use crate::targets::alias;
        let mut state = world("");
        let a = crate::targets::lambda::tests::alias("2", &[("3", 0.2)], 3);
        let read = (alias::summary(&a, "payments"), alias::revisions(&a));
        update(
            &mut state,
            Msg::Target(TargetRead {
                service: key("payments"),
                read: Ok(read),
            }),
        );
        let effects = run(&mut state, "payments", "error-rate", 0.001, 0.25, 30, 200);
        let page = effects
            .iter()
            .find_map(|e| match e {
                crate::engine::msg::Effect::Page { summary, .. } => Some(summary.clone()),
                _ => None,
            })
            .expect("a page");
        assert!(
            page.contains(
                "aws lambda update-alias --function-name payments --name live --function-version 2"
            ) && !page.contains("kubectl rollout undo"),
            "{page}"
        );
    }
}
