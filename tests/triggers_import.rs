//! `backout triggers import`: three alerting rules become three triggers that
//! backout's config accepts, and whose queries promtool accepts once a service is
//! named in them.

mod common;

use std::process::Command;

use common::have;

const RULES: &str = r#"groups:
  - name: shop
    rules:
      - alert: HighErrorRate
        expr: sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05
        for: 5m
        labels: {severity: critical}
      - alert: SlowRequests
        expr: histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 2
        for: 10m
      - alert: Restarting
        expr: increase(kube_pod_container_status_restarts_total[15m]) >= 3
        labels: {severity: page}
"#;

#[test]
fn three_alerts_make_three_triggers_that_backout_and_promtool_accept() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_backout"))
        .args(["triggers", "import"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = String::from_utf8(out.stdout).unwrap();
    assert_eq!(entries.matches("[[trigger]]").count(), 3, "{entries}");

    // backout's own loader takes them as written.
    let config = dir.path().join("backout.toml");
    std::fs::write(
        &config,
        format!("[prometheus]\nurl = \"http://127.0.0.1:9\"\n\n{entries}"),
    )
    .unwrap();
    let loaded =
        backout::config::Config::load(Some(&config)).unwrap_or_else(|e| panic!("{e}\n{entries}"));
    let imported: Vec<_> = loaded
        .triggers
        .iter()
        .filter(|t| ["HighErrorRate", "SlowRequests", "Restarting"].contains(&t.name.as_str()))
        .collect();
    assert_eq!(imported.len(), 3);
    assert!(
        imported
            .iter()
            .all(|t| t.severity != backout::config::Severity::AutoRollback),
        "an import never rolls back by itself"
    );

    if !have("promtool") {
        return;
    }
    // Each trigger's query, for one service, as an alert promtool checks.
    let mut file = String::from("groups:\n  - name: imported\n    rules:\n");
    for t in &imported {
        let expr = format!(
            "{} {} {}",
            t.query_for("shop", "checkout", "checkout"),
            t.comparison.symbol(),
            t.threshold
        );
        file.push_str(&format!(
            "      - alert: {}\n        expr: {}\n",
            t.name,
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let checked = dir.path().join("imported.yml");
    std::fs::write(&checked, &file).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&checked)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}\n{file}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 rules found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_the_prometheus_operator_is_told_so_and_pointed_to_a_file() {
    let c = common::start(common::small_scenario("")).await;
    let out = c.backout(&["triggers", "import"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "error: the cluster serves no PrometheusRule (monitoring.coreos.com/v1): install the Prometheus Operator's CRDs, or pass a rule file"
    );
}
