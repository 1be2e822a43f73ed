//! Blue-green rollback: the Service's colour selector goes back to the previous value,
//! judged by the real kubectl, and the next rollback goes back again.

mod common;

use common::{have, small_scenario, start, Cluster};
use serde_json::json;

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
    c.kubectl_ok(&["apply", "--validate=false", "-f", file.to_str().unwrap()])
        .await;
    for d in ["deploy/shopfront-blue", "deploy/shopfront-green"] {
        c.kubectl_ok(&["rollout", "status", d, "--timeout=30s"])
            .await;
    }
    let config = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap()
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
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("you may not patch services in namespace \"shop\""));
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
