//! Blue-green rollback: the Service's colour selector goes back to the previous value,
//! judged by the real kubectl, and the next rollback goes back again. The CLI and the
//! console switch through the same engine and runner as a Deployment rollback.

mod common;

use std::time::Duration;

use backout::app::core::Core;
use backout::engine::journal::{Entry, Record};
use backout::engine::rollbacks::{Expected, Request};
use backout::engine::{Msg, ServiceKey};
use common::{
    confirm, console_core_with, have, previewed, rollback_ended, small_scenario, start, Cluster,
};
use serde_json::json;

fn colour_key(colour: &str) -> ServiceKey {
    ServiceKey::new("shop", &format!("shopfront-{colour}"))
}

async fn selected(c: &Cluster) -> String {
    c.kubectl_ok(&[
        "get",
        "svc/shopfront",
        "-o",
        "jsonpath={.spec.selector.color}",
    ])
    .await
}

/// What the console's dialog does on the live colour: a dry run, then `y` with what
/// it showed.
async fn confirm_in_console(core: &mut Core, key: &ServiceKey) -> Expected {
    let preview = previewed(core, key, None).await.expect("the dry run");
    let expected = Expected::of(&preview);
    let request = Request {
        to_revision: None,
        automatic: false,
        reason: "rolled back by hand".into(),
        by: core.actor.clone(),
        expected: Some(expected.clone()),
    };
    core.apply(Msg::RollbackRequested {
        service: key.clone(),
        request,
    })
    .await;
    expected
}

/// The switch's own records, without the clock: what a handoff is built from.
fn switch_records(journal: &str) -> Vec<String> {
    journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .filter_map(|r| match r.entry {
            Entry::Switch {
                label,
                from,
                to,
                reason,
                ..
            } => Some(format!("{} switch {label} {from}→{to} {reason}", r.service)),
            Entry::RollbackFailed { error, .. } => Some(format!("failed {error}")),
            Entry::Verification { outcome, checks } => {
                let names: Vec<String> = checks
                    .iter()
                    .map(|c| c.split(':').next().unwrap_or_default().to_string())
                    .collect();
                Some(format!("{} verification {outcome} {names:?}", r.service))
            }
            _ => None,
        })
        .collect()
}

fn colour(colour: &str, image: &str) -> serde_json::Value {
    let labels = json!({"app": "shopfront", "color": colour});
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("shopfront-{colour}"), "namespace": "shop"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "shopfront", "image": image}]}}}})
}

async fn setup() -> Option<Cluster> {
    if !have("kubectl") {
        return None;
    }
    let c = start(small_scenario("")).await;
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shopfront", "namespace": "shop"},
        "spec": {"selector": {"app": "shopfront", "color": "green"}, "ports": [{"port": 80, "targetPort": 8080}]}});
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [colour("blue", "shopfront:1"), colour("green", "shopfront:2"), service]});
    let file = c.dir().join("bluegreen.json");
    std::fs::write(&file, list.to_string()).unwrap();
    c.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]).await;
    for d in ["deploy/shopfront-blue", "deploy/shopfront-green"] {
        c.kubectl_ok(&["rollout", "status", d, "--timeout=30s"])
            .await;
    }
    // Both colours are watched: verification follows the one taking the traffic.
    let config = std::fs::read_to_string(c.dir().join("backout.toml"))
        .unwrap()
        .replace(
            "deployments = [\"web\"]",
            "deployments = [\"web\", \"shopfront-blue\", \"shopfront-green\"]",
        )
        + "\n[[blue_green]]\nservice = \"shopfront\"\nlabel = \"color\"\n";
    std::fs::write(c.dir().join("bg.toml"), config).unwrap();
    Some(c)
}

async fn rollback(c: &Cluster, extra: &[&str]) -> std::process::Output {
    let config = c.dir().join("bg.toml");
    let args = [
        &[
            "rollback",
            "shopfront",
            "--yes",
            "--config",
            config.to_str().unwrap(),
        ][..],
        extra,
    ]
    .concat();
    c.backout(&args, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_switches_back_and_then_back_again() {
    let Some(c) = setup().await else { return };
    let out = rollback(&c, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("switch service shop/shopfront color: green → blue")
            && stdout.trim_end().ends_with("verified"),
        "{stdout}"
    );
    let selector = c
        .kubectl_ok(&[
            "get",
            "svc/shopfront",
            "-o",
            "jsonpath={.spec.selector.color} {.metadata.annotations.backout\\.dev/previous-color}",
        ])
        .await;
    assert_eq!(selector, "blue green");
    let events = c
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=shopfront,reason=BackoutRollback",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .await;
    assert!(
        events.contains("switched service shopfront color from green back to blue"),
        "{events}"
    );
    let journal = c.journal();
    assert!(
        journal.contains("\"kind\":\"switch\"") && journal.contains("\"outcome\":\"verified\""),
        "{journal}"
    );

    let again = rollback(&c, &["--no-verify"]).await;
    assert!(again.status.success());
    assert_eq!(
        c.kubectl_ok(&[
            "get",
            "svc/shopfront",
            "-o",
            "jsonpath={.spec.selector.color}"
        ])
        .await,
        "green",
        "the recorded previous value wins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_may_not_switch_a_service() {
    let Some(c) = setup().await else { return };
    let out = rollback(&c, &["--context", "backout-sim-viewer"]).await;
    assert_eq!(out.status.code(), Some(1));
    // The refusal names the role and the verb; it comes from the same one check as
    // every other write.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("you may not patch") && stderr.contains("in namespace \"shop\""),
        "{stderr}"
    );
    assert_eq!(
        c.kubectl_ok(&[
            "get",
            "svc/shopfront",
            "-o",
            "jsonpath={.spec.selector.color}"
        ])
        .await,
        "green"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_switches_the_live_colour_and_journals_what_the_cli_does() {
    let (Some(by_cli), Some(by_console)) = (setup().await, setup().await) else {
        return;
    };
    let out = rollback(&by_cli, &[]).await;
    assert!(out.status.success(), "{out:?}");

    let mut core = console_core_with(&by_console, "bg.toml", false).await;
    let expected = confirm_in_console(&mut core, &colour_key("green")).await;
    let switch = expected
        .switch
        .expect("the live colour is switched, not undone");
    assert_eq!(
        (switch.from.as_str(), switch.to.as_str()),
        ("green", "blue")
    );
    let ended = rollback_ended(&mut core, &colour_key("green"), Duration::from_secs(60)).await;
    assert!(ended.is_ok(), "{ended:?}");
    core.shutdown(Duration::from_secs(5)).await;
    assert_eq!(selected(&by_console).await, "blue");

    let (cli, console) = (
        switch_records(&by_cli.journal()),
        switch_records(&by_console.journal()),
    );
    assert_eq!(cli.len(), 2, "a switch and its verification: {cli:?}");
    assert!(
        cli[1].contains("verification verified")
            && cli[1].contains("shopfront-blue takes the traffic"),
        "{cli:?}"
    );
    assert_eq!(cli, console);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_changed_after_the_dry_run_is_a_conflict_not_a_switch() {
    let Some(c) = setup().await else { return };
    let mut core = console_core_with(&c, "bg.toml", false).await;
    let preview = previewed(&mut core, &colour_key("green"), None)
        .await
        .expect("the dry run");
    // Someone moves the traffic by hand while the dialog is open.
    c.kubectl_ok(&[
        "patch",
        "svc/shopfront",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"note":"hand edit"}}}"#,
    ])
    .await;
    confirm(
        &mut core,
        &colour_key("green"),
        &preview,
        None,
        "rolled back by hand",
    )
    .await;
    let ended = rollback_ended(&mut core, &colour_key("green"), Duration::from_secs(30)).await;
    core.shutdown(Duration::from_secs(5)).await;
    let error = ended.expect_err("refused");
    assert!(
        error.contains("changed since the rollback was previewed"),
        "{error}"
    );
    assert_eq!(selected(&c).await, "green", "nothing was switched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_colour_is_not_rolled_back() {
    let Some(c) = setup().await else { return };
    let mut core = console_core_with(&c, "bg.toml", false).await;
    let refused = previewed(&mut core, &colour_key("blue"), None).await;
    core.shutdown(Duration::from_secs(5)).await;
    let error = refused.expect_err("blue takes no traffic");
    assert!(
        error.contains("takes no traffic") && error.contains("color=green"),
        "{error}"
    );
    assert_eq!(selected(&c).await, "green");
}
