//! The fault matrix's harness: checkout's bad deploy with automatic rollback on, a
//! core stepped in-process, and the simulator's fault switchboard.

use std::time::{Duration, Instant};

use backout::app::core::{Core, Options};
use backout::config::Config;
use backout::engine::ServiceKey;

use super::{start, Cluster};

pub fn key() -> ServiceKey {
    ServiceKey::new("shop", "checkout")
}

/// bad-deploy with checkout 1.4.1 (25% errors) shipped 3 s in.
pub async fn bad_deploy() -> Cluster {
    start(super::bad_deploy_at(3)).await
}

/// The simulator's backout.toml with automatic rollback on and a 6 s blind page.
pub fn auto_config(c: &Cluster) -> Config {
    let text = std::fs::read_to_string(c.dir().join("backout.toml"))
        .expect("the simulator wrote backout.toml")
        .replace(
            "[policy]\n",
            "[policy]\nauto_rollback = true\nverification_window = \"100s\"\n",
        )
        .replace("blind_after = \"30s\"", "blind_after = \"6s\"");
    Config::parse(&c.dir().join("auto.toml"), &text).expect("the config parses")
}

/// A core as `backout watch --auto-rollback` runs it, journaling into the cluster's dir.
pub async fn core_for(c: &Cluster) -> Core {
    let opts = Options {
        kubeconfig: Some(c.kubeconfig()),
        journal: Some(c.journal_path()),
        ..Options::default()
    };
    Core::start(auto_config(c), opts)
        .await
        .expect("the core starts")
}

/// Replaces the switchboard over its HTTP control endpoint.
pub async fn put_faults(c: &Cluster, board: serde_json::Value) {
    let url = format!("{}/sim/faults", c.sim.url());
    let r = c
        .http()
        .put(url)
        .body(board.to_string())
        .send()
        .await
        .expect("the simulator answers");
    assert!(r.status().is_success(), "{board}: {}", r.status());
}

/// Steps the core until `done`, for up to `limit`; whether it got there.
pub async fn until(core: &mut Core, limit: Duration, done: impl Fn(&Core) -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        let _ = tokio::time::timeout(Duration::from_millis(500), core.step()).await;
        if done(core) {
            return true;
        }
    }
    false
}

pub async fn run_for(core: &mut Core, limit: Duration) {
    until(core, limit, |_| false).await;
}

/// How many rollbacks the journal records as landed.
pub fn rollbacks(c: &Cluster) -> usize {
    c.journal().matches("\"kind\":\"rollback\"").count()
}
