//! assets/deploy/rbac.yaml against the calls the code makes: the simulator grants a
//! service account exactly the manifest's rules, `backout watch --auto-rollback` runs
//! a whole incident under it, and every call it made must be granted and every grant
//! used.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use backout_sim::api::auth::{Role, Rule, User, EDITOR_TOKEN};
use backout_sim::SimOptions;
use common::{have, start_in};
use serde::Deserialize;

const SA: &str = "system:serviceaccount:backout:backout";
const SA_TOKEN: &str = "backout-sa-token";

/// The ClusterRole's rules and every Role's, scoped to its namespace, from the
/// shipped manifest.
fn manifest_rules() -> Vec<Rule> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/deploy/rbac.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut rules = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let doc = serde_json::Value::deserialize(doc).expect("rbac.yaml is YAML");
        let namespace = match doc["kind"].as_str() {
            Some("ClusterRole") => None,
            Some("Role") => Some(
                doc["metadata"]["namespace"]
                    .as_str()
                    .expect("a Role names its namespace")
                    .to_string(),
            ),
            _ => continue,
        };
        for r in doc["rules"].as_array().expect("a role has rules") {
            let list = |key: &str| -> Vec<String> {
                r[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            rules.push(Rule {
                api_groups: list("apiGroups"),
                resources: list("resources"),
                verbs: list("verbs"),
                namespace: namespace.clone(),
            });
        }
    }
    assert!(!rules.is_empty(), "rbac.yaml has a ClusterRole with rules");
    // Secrets hold credentials: never granted cluster-wide.
    assert!(
        rules
            .iter()
            .filter(|r| r.resources.iter().any(|x| x == "secrets"))
            .all(|r| r.namespace.is_some()),
        "Secrets are granted per namespace by a Role, not by the ClusterRole"
    );
    rules
}

/// Every (verb, group, resource) the rules grant, spelled out.
fn granted(rules: &[Rule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for r in rules {
        for verb in &r.verbs {
            for group in &r.api_groups {
                for resource in &r.resources {
                    assert!(
                        ![verb, group, resource].contains(&&"*".to_string()),
                        "least privilege: no wildcards in rbac.yaml"
                    );
                    out.insert((verb.clone(), group.clone(), resource.clone()));
                }
            }
        }
    }
    out
}

/// Both kinds backout rolls back go bad at once: checkout as a Deployment (undone)
/// and cart as an Argo Rollouts canary (aborted), so every grant has its use.
fn two_kinds_go_bad() -> backout_sim::scenario::Scenario {
    let text = r#"name = "two-kinds"
description = "a Deployment and an Argo Rollouts canary, both bad"
namespace = "shop"
pod_start_delay = "150ms"

[[service]]
name = "checkout"
image = "checkout:1"
replicas = 3
rps = 60

[[service]]
name = "cart"
image = "cart:1"
replicas = 5
rps = 100
canary_steps = [{ setWeight = 20 }, { pause = {} }]

[images."checkout:2"]
error_ratio = 0.25

[images."cart:2"]
error_ratio = 0.6

[[event]]
at = "1s"
deploy = { service = "checkout", image = "checkout:2" }

[[event]]
at = "1s"
deploy = { service = "cart", image = "cart:2" }
"#;
    backout_sim::scenario::Scenario::parse("two-kinds.toml", text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_grants_exactly_what_backout_watch_uses() {
    if !have("kubectl") {
        return;
    }
    let rules = manifest_rules();
    let scenario = two_kinds_go_bad();
    let c = start_in(
        tempfile::tempdir().unwrap(),
        scenario,
        SimOptions {
            users: vec![User {
                name: SA.into(),
                token: SA_TOKEN.into(),
                role: Role::Granted(rules.clone()),
            }],
            ..SimOptions::default()
        },
    )
    .await;
    let kubeconfig = c.dir().join("sa-kubeconfig");
    let text = std::fs::read_to_string(c.kubeconfig()).unwrap();
    std::fs::write(&kubeconfig, text.replace(EDITOR_TOKEN, SA_TOKEN)).unwrap();

    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_backout"))
        .args(["watch", "--auto-rollback", "--config"])
        .arg(c.dir().join("backout.toml"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("BACKOUT_JOURNAL", c.journal_path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if c.revision("checkout").await == "3" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no rollback under the manifest's rules in 2 minutes; the journal:\n{}",
            std::fs::read_to_string(c.journal_path()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    while c
        .jsonpath("rollouts.argoproj.io/cart", "{.status.abort}")
        .await
        != "true"
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the canary was not aborted under the manifest's rules; the journal:\n{}",
            c.journal()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Through both verifications, so their calls are counted too, then a clean stop.
    let verified = Instant::now();
    while c.journal().matches(r#""kind":"verification""#).count() < 2 {
        assert!(
            verified.elapsed() < Duration::from_secs(120),
            "no verification"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pid = watch.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(30), watch.wait()).await;

    // Reviews (who am I, may I) are granted to every authenticated user by Kubernetes.
    let used: BTreeSet<(String, String, String)> = c
        .sim
        .accesses(SA)
        .into_iter()
        .filter(|(_, group, _)| {
            !matches!(
                group.as_str(),
                "authorization.k8s.io" | "authentication.k8s.io"
            )
        })
        .collect();
    let granted = granted(&rules);
    let missing: Vec<_> = used.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        missing.is_empty(),
        "used but not granted by rbac.yaml: {missing:?}"
    );
    assert!(
        unused.is_empty(),
        "granted by rbac.yaml but never used: {unused:?}"
    );
}
