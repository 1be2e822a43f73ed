//! The recording rules in a real Prometheus agree with the simulator's own query API.

mod common;

use std::process::Command;
use std::time::Duration;

use backout_sim::scenario::Scenario;
use backout_sim::telemetry::recorded;
use std::net::SocketAddr;
use std::sync::Arc;

use backout_sim::tls::Pki;
use backout_sim::SimOptions;
use common::{free_port, have, instant, start, start_in, RealPrometheus};

#[test]
fn promtool_accepts_the_rules_and_they_record_what_the_simulator_serves() {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/prometheus/backout-rules.yml"
    );
    let text = std::fs::read_to_string(rules).unwrap();
    let recorded_names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .collect();
    assert_eq!(recorded_names, recorded::ALL);
    if !have("promtool") {
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "rules", rules])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 7 rules found"));
}

/// Absolute tolerance on the error ratio. Prometheus sees the simulator through a
/// scrape and a rule evaluation, each on its own 1 s phase, so its value can lag by up
/// to 2 s. After the rollout the ratio climbs as the 1m window slides, by about
/// 0.25 / 60 a second, so 2 s of lag is under 0.01; twice that allows for jitter.
/// (During the rollout itself it moves several points a second, too fast to compare.)
const RATIO_TOLERANCE: f64 = 0.02;
// Rates are not compared: Prometheus starts a few seconds after the simulator, so for
// the first minute its 1m windows hold less history and `rate()` differs by design.
// Ratios and quantiles do not depend on how much history the window holds.

fn unix_now() -> f64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.expect("the clock is after 1970").as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deploy_error_ratio_agrees_between_real_prometheus_and_the_simulator() {
    if !have("prometheus") {
        return;
    }
    let mut scenario = Scenario::load("bad-deploy").unwrap();
    // The shipped scenario deploys at 15 s; the same incident 8 s sooner keeps the test
    // short and still leaves Prometheus a baseline before the deploy.
    for event in &mut scenario.timeline {
        event.get_mut().at -= Duration::from_secs(8);
    }
    // Prometheus starts first, already trusting the simulator's CA and pointed at its
    // port, so that both keep the same history from the simulator's first second.
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::generate([127, 0, 0, 1].into()).unwrap());
    std::fs::write(dir.path().join("ca.crt"), &pki.ca_pem).unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let prom = RealPrometheus::start(dir.path(), listen).await;
    let deployed_at = unix_now() + 7.0;
    let c = start_in(
        dir,
        scenario,
        SimOptions {
            listen,
            pki: Some(pki),
            ..SimOptions::default()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs_f64(deployed_at + 26.0 - unix_now())).await;

    let http = c.http();
    let ratio = r#"service:http_errors:ratio_rate1m{namespace="shop",service="checkout"}"#;
    // After the rollout, while the window slides from the old image to the new one.
    for offset in [8.0, 12.0, 16.0, 20.0, 24.0] {
        let at = deployed_at + offset;
        let real = instant(&http, &prom.url, ratio, at).await;
        let simulated = instant(&http, &c.sim.url(), ratio, at).await;
        let (Some(real), Some(simulated)) = (real, simulated) else {
            panic!("at deploy{offset:+}s: Prometheus {real:?}, simulator {simulated:?}");
        };
        eprintln!("deploy{offset:+}s error ratio: Prometheus {real:.4}, simulator {simulated:.4}");
        assert!(
            (real - simulated).abs() <= RATIO_TOLERANCE,
            "at deploy{offset:+}s: Prometheus {real}, simulator {simulated}"
        );
    }
    let end = deployed_at + 24.0;
    let checkout = instant(&http, &prom.url, ratio, end).await.unwrap();
    assert!(
        checkout > 0.05,
        "the breach is visible in real Prometheus: {checkout}"
    );
    let payments = r#"service:http_errors:ratio_rate1m{service="payments"}"#;
    let payments = instant(&http, &prom.url, payments, end).await.unwrap();
    assert!(payments < 0.01, "payments stays healthy: {payments}");
    let p99 = r#"service:http_request_duration_seconds:p99_1m{service="checkout"}"#;
    let (real, simulated) = (
        instant(&http, &prom.url, p99, end).await.unwrap(),
        instant(&http, &c.sim.url(), p99, end).await.unwrap(),
    );
    assert!(
        (real - simulated).abs() / simulated < 0.1,
        "p99: Prometheus {real}, simulator {simulated}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_refuses_full_promql_with_a_prometheus_style_bad_data() {
    let c = start(common::small_scenario("")).await;
    let resp = c
        .http()
        .get(format!("{}/api/v1/query", c.sim.url()))
        .query(&[("query", "sum(rate(http_requests_total[1m]))")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["errorType"].as_str()),
        (Some("error"), Some("bad_data"))
    );
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("recorded series only"));
}

/// Raw PromQL (aggregations, a join, a quantile) asked once for all services, as the
/// poller asks it, gives each service the very series its own query gives, on a real
/// Prometheus scraping the simulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_query_gives_each_service_what_its_own_query_gives_on_real_prometheus() {
    use backout::config::grouping::Grouped;
    use backout::config::triggers::expand;
    use backout::config::Config;
    use backout::engine::signals::QueryOutcome;
    use backout::sources::prometheus::Prometheus;
    if !have("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::generate([127, 0, 0, 1].into()).unwrap());
    std::fs::write(dir.path().join("ca.crt"), &pki.ca_pem).unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let prom = RealPrometheus::start(dir.path(), listen).await;
    let _c = start_in(
        dir,
        Scenario::load("bad-deploy").unwrap(),
        SimOptions {
            listen,
            pki: Some(pki),
            ..SimOptions::default()
        },
    )
    .await;
    // Enough scrapes for 1m rates over several points.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let config = format!("[prometheus]\nurl = {:?}\n", prom.url);
    let config = Config::parse(std::path::Path::new("t.toml"), &config).unwrap();
    let client = Prometheus::new(config.prometheus.as_ref().unwrap()).unwrap();
    let services = ["checkout", "payments"];
    let end = jiff::Timestamp::now();
    let (lookback, step) = (Duration::from_secs(20), Duration::from_secs(2));
    for query in [
        r#"sum(rate(http_requests_total{namespace="$NAMESPACE",service="$SERVICE",code=~"5.."}[10s])) / sum(rate(http_requests_total{namespace="$NAMESPACE",service="$SERVICE"}[10s]))"#,
        r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="$SERVICE"}[10s])))"#,
        r#"sum without (pod, code) (rate(http_requests_total{service="$SERVICE"}[10s])) / on () group_left sum(rate(http_requests_total{service="$SERVICE"}[10s]))"#,
    ] {
        let grouped = Grouped::analyse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let all = client
            .range_all(
                &grouped.query(&["shop"], &services),
                end,
                lookback,
                step,
                |labels| {
                    let (_, service) = grouped.service_of(|l| labels.get(l))?;
                    Some(service.to_string())
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        for service in services {
            let own = client
                .range(
                    &expand(query, "shop", service, service),
                    end,
                    lookback,
                    step,
                )
                .await;
            let QueryOutcome::Series { points: own, .. } = own else {
                panic!("{query} for {service}: {own:?}");
            };
            let mine: Vec<_> = all
                .iter()
                .filter(|(named, _)| named == service)
                .map(|(_, points)| points)
                .collect();
            assert_eq!(mine.len(), 1, "{query}: one series for {service}: {all:?}");
            assert_eq!(mine[0].len(), own.len(), "{query} for {service}");
            for ((t1, v1), (t2, v2)) in mine[0].iter().zip(own.iter()) {
                assert_eq!(t1, t2);
                assert!(
                    (v1 - v2).abs() <= 1e-9 * v2.abs().max(1.0) || (v1.is_nan() && v2.is_nan()),
                    "{query} for {service} at {t1}: grouped {v1}, alone {v2}"
                );
            }
        }
    }
}

/// A new list of services is asked for at once, not at the poller's next tick: at a
/// cold start the first answers follow the first list of Deployments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_asks_for_a_new_list_of_services_at_once_not_at_its_next_tick() {
    use backout::config::Config;
    use backout::engine::{GroupedOutcome, Msg, ServiceKey};
    use backout::sources::{poller, prometheus::Prometheus};
    let cluster = start(common::small_scenario("")).await;
    let path = cluster.dir().join("backout.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("poll_interval = \"2s\""), "{text}");
    // A poll far longer than the test waits: only a change can start a round in time.
    let text = text.replace("poll_interval = \"2s\"", "poll_interval = \"10m\"");
    let config = Config::parse(&path, &text).unwrap();
    let prom = Prometheus::new(config.prometheus.as_ref().unwrap()).unwrap();
    let (services, watched) = tokio::sync::watch::channel(Vec::new());
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let _poller = poller::spawn(prom, &config, watched, tx);
    // The first tick finds nothing to ask.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let web = ServiceKey::new("shop", "web");
    services.send(vec![web.clone()]).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match rx.recv().await.expect("the poller runs") {
                Msg::Queries(answer) => return answer,
                _ => continue,
            }
        }
    })
    .await
    .expect("asked within 30 s of the change, not at the 10-minute tick");
    assert_eq!(answer.services, [web]);
    assert_eq!(
        answer.partial_from, None,
        "a new list is asked the whole lookback"
    );
    assert!(
        matches!(answer.outcome, GroupedOutcome::Series { .. }),
        "the simulator answers: {:?}",
        answer.outcome
    );
}
