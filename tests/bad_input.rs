//! Bad input never crashes the core and never rolls back: each fault shows as a clear
//! state on the source or the trigger it affects. The faults come from real parts
//! (the simulator, closed ports, RBAC); only a malformed Prometheus answer, which no
//! real server gives on demand, comes from a small stand-in server.

mod common;

use std::time::{Duration, Instant};

use backout::app::core::{Core, Options};
use backout::config::Config;
use backout::engine::{Action, ServiceKey, SourceHealth, SourceId};
use common::{free_port, small_scenario, start, Cluster};

fn config(c: &Cluster) -> Config {
    let path = c.dir().join("backout.toml");
    Config::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap()
}

async fn core(c: &Cluster, config: Config, context: Option<&str>) -> Core {
    let opts = Options {
        kubeconfig: Some(c.kubeconfig()),
        context: context.map(str::to_string),
        ..Options::default()
    };
    Core::start(config, opts).await.expect("the core starts")
}

/// Steps the core until `done` holds, failing after 20 s. Auto-rollback must never appear.
async fn until(core: &mut Core, what: &str, done: impl Fn(&Core) -> bool) {
    let started = Instant::now();
    while !done(core) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(500), core.step()).await;
        assert!(
            core.state
                .services
                .values()
                .all(|s| s.decision.action != Action::AutoRollback),
            "no rollback on bad input"
        );
    }
}

fn trigger_state(core: &Core, trigger: &str) -> Option<(String, String)> {
    let t = core
        .state
        .services
        .get(&ServiceKey::new("shop", "web"))?
        .triggers
        .get(trigger)?;
    let detail = match &t.data {
        backout::engine::signals::DataState::NoData(d)
        | backout::engine::signals::DataState::Error(d)
        | backout::engine::signals::DataState::Stale(d) => d.clone(),
        other => other.label().to_string(),
    };
    Some((t.data.label().to_string(), detail))
}

/// Waits until the error-rate trigger is in `state` with a detail containing `detail`.
async fn expect_trigger(core: &mut Core, state: &str, detail: &str) {
    let what = format!("error-rate to be {state} with {detail:?}");
    until(core, &what, |core| {
        trigger_state(core, "error-rate").is_some_and(|(s, d)| s == state && d.contains(detail))
    })
    .await;
}

fn one_trigger(mut config: Config, query: &str) -> Config {
    let mut t = config
        .triggers
        .iter()
        .find(|t| t.name == "error-rate")
        .unwrap()
        .clone();
    t.query = query.into();
    t.volume_query = None;
    config.triggers = vec![t];
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_shows_as_retrying() {
    let c = start(small_scenario("")).await;
    let kubeconfig = std::fs::read_to_string(c.kubeconfig()).unwrap().replace(
        &c.sim.addr.to_string(),
        &format!("127.0.0.1:{}", free_port()),
    );
    std::fs::write(c.kubeconfig(), kubeconfig).unwrap();
    let mut core = core(&c, config(&c), None).await;
    until(&mut core, "kubernetes to be retrying", |core| {
        matches!(core.state.sources.get(&SourceId::Kubernetes), Some(SourceHealth::Retrying { error, .. }) if error.contains("failed to perform initial object list"))
    })
    .await;
    assert!(core.state.services.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_forbidden_names_the_resource() {
    let c = start(small_scenario("")).await;
    let mut core = core(&c, config(&c), Some("backout-sim-outsider")).await;
    until(&mut core, "kubernetes to be forbidden", |core| {
        matches!(
            core.state.sources.get(&SourceId::Kubernetes),
            Some(SourceHealth::Forbidden(_))
        )
    })
    .await;
    let Some(SourceHealth::Forbidden(message)) = core.state.sources.get(&SourceId::Kubernetes)
    else {
        unreachable!()
    };
    assert!(
        message.contains("is forbidden: User \"outsider\" cannot list resource"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_prometheus_is_an_error_on_each_trigger() {
    let c = start(small_scenario("")).await;
    let mut config = config(&c);
    let p = config.prometheus.as_mut().unwrap();
    p.url = format!("http://127.0.0.1:{}", free_port());
    p.ca_file = None;
    let mut core = core(&c, config, None).await;
    expect_trigger(
        &mut core,
        "error",
        "cannot reach Prometheus at http://127.0.0.1:",
    )
    .await;
    until(&mut core, "prometheus to be retrying", |core| {
        matches!(
            core.state.sources.get(&SourceId::Prometheus),
            Some(SourceHealth::Retrying { .. })
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_prometheus_rejects_is_an_error_naming_the_reason() {
    let c = start(small_scenario("")).await;
    let config = one_trigger(
        config(&c),
        r#"sum(rate(http_requests_total{service="$SERVICE"}[1m]))"#,
    );
    let mut core = core(&c, config, None).await;
    expect_trigger(
        &mut core,
        "error",
        "Prometheus rejected the query (400 Bad Request, bad_data)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_series_are_a_config_error_not_a_choice() {
    let c = start(small_scenario(
        "\n[[service]]\nname = \"api\"\nimage = \"api:1\"\n",
    ))
    .await;
    let config = one_trigger(
        config(&c),
        r#"service:http_errors:ratio_rate1m{namespace="$NAMESPACE"}"#,
    );
    let mut core = core(&c, config, None).await;
    expect_trigger(&mut core, "error", "returned 2 series").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_from_a_service_without_traffic_is_no_data() {
    let scenario = small_scenario("").services[0].clone();
    let mut s = small_scenario("");
    s.services[0] = backout_sim::scenario::ServiceSpec {
        rps: 0.0,
        ..scenario
    };
    let c = start(s).await;
    let config = one_trigger(
        config(&c),
        r#"service:http_errors:ratio_rate1m{namespace="$NAMESPACE",service="$SERVICE"}"#,
    );
    let mut core = core(&c, config, None).await;
    expect_trigger(&mut core, "no data", "NaN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_prometheus_answer_is_an_error() {
    // No real Prometheus answers HTML with 200 on demand; a stand-in does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async { "<html>proxy error</html>" });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = start(small_scenario("")).await;
    let mut config = config(&c);
    let p = config.prometheus.as_mut().unwrap();
    p.url = url;
    p.ca_file = None;
    let mut core = core(&c, config, None).await;
    expect_trigger(&mut core, "error", "malformed answer from Prometheus").await;
}

#[test]
fn a_huge_duration_flag_is_refused_with_the_limit_not_a_panic() {
    for args in [
        ["gate", "web", "--observe", "999999999999s"],
        ["status", "--wait", "999999999999s", "--json"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_backout"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("longer than the longest backout accepts"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
