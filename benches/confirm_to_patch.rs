//! From the confirmation to the PATCH, with a healthy Prometheus and with one that
//! accepts connections and never answers: a rollback must never wait on metrics, so
//! the two medians should match. Run with `cargo bench --bench confirm_to_patch`.

use std::time::{Duration, Instant};

use backout::app::core::{Core, Options};
use backout::config::Config;
use backout::engine::rollbacks::{Expected, Request};
use backout::engine::{Msg, ServiceKey, State};
use backout_sim::scenario::Scenario;
use backout_sim::{Sim, SimOptions};

const ROUNDS: usize = 5;

/// A Prometheus that takes the connection and never says a word.
async fn silent_prometheus() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("\"http://{addr}\"")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One round: deploy a new image, open the dialog's dry run, confirm, and time
/// the confirmation to the patch landing.
async fn round(core: &mut Core, kubectl: &dyn Fn(&[&str]), n: usize) -> Duration {
    let web = ServiceKey::new("shop", "web");
    kubectl(&["set", "image", "deploy/web", &format!("web=web:{n}")]);
    kubectl(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    let settled = |s: &State| {
        s.services[&web]
            .decision
            .current_revision
            .is_some_and(|r| r >= 2)
            && s.services[&web]
                .rollback
                .as_ref()
                .is_none_or(|p| !p.running())
    };
    assert!(core.run_until(Duration::from_secs(60), settled).await);
    let to_revision = core.state.services[&web].decision.current_revision.unwrap() - 1;
    core.apply(Msg::PreviewRequested {
        service: web.clone(),
        to_revision: Some(to_revision),
        switch_to: None,
    })
    .await;
    let answered = |s: &State| {
        s.services[&web]
            .preview
            .as_ref()
            .is_some_and(|p| p.result.is_some())
    };
    assert!(core.run_until(Duration::from_secs(30), answered).await);
    let preview = core.state.services[&web]
        .preview
        .clone()
        .unwrap()
        .result
        .unwrap()
        .unwrap();
    let request = Request {
        to_revision: Some(to_revision),
        automatic: false,
        reason: "bench".into(),
        by: core.actor.clone(),
        expected: Some(Expected::of(&preview)),
    };
    let confirmed = Instant::now();
    core.apply(Msg::RollbackRequested {
        service: web.clone(),
        request,
    })
    .await;
    let committed = |s: &State| {
        s.services[&web]
            .rollback
            .as_ref()
            .is_some_and(|p| p.committed)
    };
    assert!(core.run_until(Duration::from_secs(60), committed).await);
    let took = confirmed.elapsed();
    core.apply(Msg::Abandon {
        service: web,
        why: "bench".into(),
    })
    .await;
    took
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let text = "name = \"bench\"\ndescription = \"one service\"\nnamespace = \"shop\"\npod_start_delay = \"50ms\"\n[[service]]\nname = \"web\"\nimage = \"web:0\"\nreplicas = 2\n";
    let scenario = Scenario::parse("bench.toml", text).unwrap();
    let sim = Sim::start(SimOptions {
        scenario: Some(scenario.clone()),
        tick: Duration::from_millis(20),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    backout::cli::sim::write_config(dir.path(), &sim.url(), &sim.ca_pem, &scenario).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let written = std::fs::read_to_string(dir.path().join("backout.toml")).unwrap();
    let url = written
        .lines()
        .find_map(|l| l.strip_prefix("url = "))
        .unwrap()
        .to_string();
    let silent = written.replace(&url, &silent_prometheus().await);
    let mut results = Vec::new();
    let mut n = 0;
    for (label, text) in [
        ("healthy Prometheus", written.clone()),
        ("silent Prometheus", silent),
    ] {
        let path = dir.path().join("bench.toml");
        std::fs::write(&path, text).unwrap();
        let opts = Options {
            kubeconfig: Some(kubeconfig.clone()),
            namespace: Some("shop".into()),
            ..Options::default()
        };
        let mut core = Core::start(Config::load(Some(&path)).unwrap(), opts)
            .await
            .unwrap();
        assert!(core.run_until(Duration::from_secs(30), Core::listed).await);
        let mut times = Vec::new();
        for _ in 0..ROUNDS {
            n += 1;
            times.push(round(&mut core, &kubectl, n).await);
        }
        core.shutdown(Duration::from_secs(5)).await;
        let m = median(times);
        println!(
            "confirm → PATCH, {label:<19} median {:>7.1} ms over {ROUNDS} rounds",
            m.as_secs_f64() * 1000.0
        );
        results.push(m);
    }
    println!(
        "ratio silent / healthy: {:.2}x",
        results[1].as_secs_f64() / results[0].as_secs_f64()
    );
    sim.stop().await;
}
