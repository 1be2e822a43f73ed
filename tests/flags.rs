//! A feature flag as the rollback, against the simulator's Unleash paths: the flag a
//! deploy's release turned on is the change behind the regression, so the rollback
//! turns it off (the kill switch) and the template stays; the kill is verified, and
//! every process reads it as a rollback (the blackout) from Unleash's events.

mod common;

use std::time::Duration;

use backout_sim::scenario::Scenario;
use common::{eventually, start, Cluster};
use serde_json::Value;

/// The shipped flag-kill scenario, sooner: the deploy at 1 s, the flag on at 4 s.
fn flag_kill() -> Scenario {
    let mut scenario = Scenario::load("flag-kill").expect("a shipped scenario");
    for (i, e) in scenario.timeline.iter_mut().enumerate() {
        e.get_mut().at = Duration::from_secs(if i == 0 { 1 } else { 4 });
    }
    scenario
}

fn config(c: &Cluster) -> String {
    common::config_of(c)
}

async fn checkout(c: &Cluster) -> Value {
    common::status_of(c, "checkout", &[]).await
}

fn flag_on(c: &Cluster) -> bool {
    c.sim.state.flags.lock().unwrap().by_name["new-coupon-engine"].on
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flag_a_release_turned_on_is_turned_off_and_the_template_stays() {
    if !common::have("kubectl") {
        return;
    }
    let c = start(flag_kill()).await;
    let decided = eventually(Duration::from_secs(60), "checkout's decision", async || {
        let s = checkout(&c).await;
        (s["decision"]["action"] == "auto_rollback").then_some(s)
    })
    .await;
    let d = &decided["decision"];
    let gates = d["gates"].to_string();
    assert!(
        gates.contains("after flag new-coupon-engine was turned on"),
        "gate 1 times from the flag: {gates}"
    );
    assert!(
        gates.contains("the kill switch: flag new-coupon-engine"),
        "{gates}"
    );
    let blast = d["blast_radius"].to_string();
    assert!(
        blast.contains("the rollback turns it off (the kill switch")
            && blast.contains("by dana@unleash"),
        "{blast}"
    );

    let (ok, said) = c
        .backout_said(
            &["rollback", "checkout", "--yes", "--config", &config(&c)],
            &[],
        )
        .await;
    assert!(ok, "{said}");
    for want in [
        "turn off flag new-coupon-engine for shop/checkout (the kill switch)",
        "curl -X POST",
        "/api/admin/projects/default/features/new-coupon-engine/environments/production/off",
        "verified",
    ] {
        assert!(said.contains(want), "{want:?} in:\n{said}");
    }
    assert!(!flag_on(&c), "the flag is off");
    assert_eq!(c.revision("checkout").await, "2", "the template stays");
    assert_eq!(
        c.image("checkout").await,
        "registry.local/shop/checkout:1.5.0"
    );
    let journal = c.journal();
    assert!(
        journal.contains("\"kind\":\"rollback\"") && journal.contains("flag new-coupon-engine off"),
        "{journal}"
    );

    // Off, the flag is no longer the change: the next rollback offered is the
    // template's (the blackout that the kill started is an engine test).
    let after = eventually(
        Duration::from_secs(20),
        "the flag read as off",
        async || {
            let s = checkout(&c).await;
            let blast = s["decision"]["blast_radius"].to_string();
            (!blast.contains("kill switch")).then_some(blast)
        },
    )
    .await;
    assert!(
        after.contains("a rollback reverts the pod template"),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_that_cannot_be_read_is_unknown_and_never_turned_off() {
    let c = start(flag_kill()).await;
    let path = c.dir().join("backout.toml");
    let toml = std::fs::read_to_string(&path)
        .unwrap()
        .replace("name = \"new-coupon-engine\"", "name = \"no-such-flag\"");
    std::fs::write(&path, toml).unwrap();
    let s = eventually(Duration::from_secs(60), "checkout firing", async || {
        let s = checkout(&c).await;
        let action = &s["decision"]["action"];
        (!action.is_null() && *action != "none").then_some(s)
    })
    .await;
    let blast = s["decision"]["blast_radius"].to_string();
    assert!(
        blast.contains("flag no-such-flag could not be read")
            && blast.contains("no flag \\\"no-such-flag\\\""),
        "{blast}"
    );
    let gates = s["decision"]["gates"].to_string();
    assert!(!gates.contains("the kill switch"), "{gates}");
    assert!(flag_on(&c), "nothing turned the real flag off");
}
