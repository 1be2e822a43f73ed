//! Alertmanager as a source, end to end with the real parts: Prometheus (Debian's)
//! evaluates a rule and sends the alert to Alertmanager (Debian's
//! prometheus-alertmanager); backout reads Alertmanager's API and the alert fires
//! the service's `alerts` trigger, never a rollback by itself.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, free_port, get_json, have, small_scenario, start};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alertmanager(dir: &Path) -> (Killed, String) {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // One instance, no gossip port to collide with another test's.
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("alertmanager.log")).unwrap())
        .spawn()
        .expect("prometheus-alertmanager starts");
    (Killed(child), format!("127.0.0.1:{port}"))
}

/// Prometheus evaluating one always-firing alert that names `web` in `shop`, sending
/// it to Alertmanager at `am`.
fn prometheus(dir: &Path, am: &str) -> Killed {
    let rules = dir.join("alerts.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: shop\n    rules:\n      - alert: WebErrors\n        expr: vector(1)\n        labels: {service: web, namespace: shop, severity: critical}\n        annotations: {summary: \"5xx above 5%\"}\n",
    )
    .unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n  - {:?}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{am}\"]\n",
            rules.display().to_string()
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        // The first send races Alertmanager's discovery and is dropped; the default
        // resend waits a minute.
        .arg("--rules.alert.resend-delay=1s")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus starts");
    Killed(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_from_prometheus_through_alertmanager_fires_the_services_alerts_trigger() {
    if !have("prometheus-alertmanager") || !have("prometheus") {
        return;
    }
    let c = start(small_scenario("")).await;
    let (_am, am) = alertmanager(c.dir());
    let _prom = prometheus(c.dir(), &am);
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(60),
        "Alertmanager to hold the alert",
        async || {
            let alerts = get_json(&http, &format!("http://{am}/api/v2/alerts")).await?;
            alerts
                .as_array()?
                .iter()
                .any(|a| a["labels"]["alertname"] == "WebErrors")
                .then_some(())
        },
    )
    .await;
    let written = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap();
    let config = c.dir().join("with-alertmanager.toml");
    std::fs::write(
        &config,
        format!("{written}\n[alertmanager]\nurl = \"http://{am}\"\npoll_interval = \"1s\"\n"),
    )
    .unwrap();
    let args = ["status", "-o", "json", "--config", config.to_str().unwrap()];
    let out = c.backout(&args, &[]).await;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let web = &status["services"][0];
    assert_eq!(web["service"]["name"], "web");
    let alerts = web["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "alerts")
        .unwrap_or_else(|| panic!("{web}"));
    assert_eq!(alerts["value"], 1.0, "{alerts}");
    assert_eq!(alerts["alert"], "firing", "{alerts}");
    assert_eq!(web["decision"]["action"], "suggest", "{web}");
    assert!(
        status["sources"].to_string().contains("alertmanager"),
        "{status}"
    );
}
