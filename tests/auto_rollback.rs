//! The automatic path through the core: a clean auto_rollback decision becomes one
//! rollback, executed by the effect runner, verified and not repeated; as a viewer the
//! runner refuses it and says why.

mod common;

use std::time::Duration;

use backout::app::core::{Core, Options};
use backout::config::Config;
use backout::engine::ServiceKey;
use common::faults::until;
use common::{have, start, Cluster};

async fn bad_deploy() -> Cluster {
    start(common::bad_deploy_at(3)).await
}

fn auto_config(c: &Cluster) -> Config {
    let text = std::fs::read_to_string(c.dir().join("backout.toml"))
        .unwrap()
        .replace(
            "[policy]\n",
            "[policy]\nauto_rollback = true\nverification_window = \"100s\"\n",
        );
    Config::parse(&c.dir().join("auto.toml"), &text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_signal_rolls_back_once_and_verifies() {
    if !have("kubectl") {
        return;
    }
    let c = bad_deploy().await;
    let journal = c.dir().join("journal.jsonl");
    let opts = Options {
        kubeconfig: Some(c.kubeconfig()),
        journal: Some(journal.clone()),
        ..Options::default()
    };
    let mut core = Core::start(auto_config(&c), opts).await.unwrap();
    let key = ServiceKey::new("shop", "checkout");
    let rolled = until(&mut core, Duration::from_secs(120), |core| {
        core.state
            .services
            .get(&key)
            .is_some_and(|s| s.last_rollback.is_some())
    })
    .await;
    assert!(
        rolled,
        "no automatic rollback; decision: {:?}",
        core.state
            .services
            .get(&key)
            .map(|s| &s.decision.why_not_automatic)
    );
    assert!(
        core.state.services[&key].no_auto.is_none(),
        "verified: {:?}",
        core.state.services[&key].no_auto
    );
    // The blackout holds: no second rollback while the signal settles.
    until(&mut core, Duration::from_secs(6), |_| false).await;
    let revision = c.kubectl_ok(&["get", "deploy/checkout", "-o", r#"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision} {.metadata.annotations.kubernetes\.io/change-cause}"#]).await;
    assert!(
        revision.starts_with("3 backout: rolled back to revision 1 by oncall-editor@"),
        "{revision}"
    );
    assert!(revision.contains("automatic: error-rate"), "{revision}");
    let journaled = std::fs::read_to_string(&journal).unwrap();
    assert!(
        journaled.contains("\"outcome\":\"verified\""),
        "{journaled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_console_refuses_the_rollback_and_says_why() {
    if !have("kubectl") {
        return;
    }
    let c = bad_deploy().await;
    let opts = Options {
        kubeconfig: Some(c.kubeconfig()),
        context: Some("backout-sim-viewer".into()),
        ..Options::default()
    };
    let mut core = Core::start(auto_config(&c), opts).await.unwrap();
    assert!(
        core.state
            .read_only
            .as_deref()
            .is_some_and(|r| r.contains("may not patch deployments.apps")),
        "{:?}",
        core.state.read_only
    );
    let key = ServiceKey::new("shop", "checkout");
    let refused = until(&mut core, Duration::from_secs(60), |core| {
        core.state
            .services
            .get(&key)
            .and_then(|s| s.no_auto.as_deref())
            .is_some_and(|r| r.contains("refused: read-only"))
    })
    .await;
    assert!(
        refused,
        "{:?}",
        core.state
            .services
            .get(&key)
            .map(|s| (&s.no_auto, &s.decision.action))
    );
    let revision = c
        .kubectl_ok(&[
            "get",
            "deploy/checkout",
            "-o",
            r#"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}"#,
        ])
        .await;
    assert_eq!(revision, "2", "nothing was written");
}
