//! `backout rollback --yes` against `kubectl rollout undo`, side by side on one
//! simulator: each round deploys a new image, then one of the two rolls it back.
//! Run with `cargo bench --bench rollback_vs_kubectl`; the target is "no slower".

use std::process::Command;
use std::time::{Duration, Instant};

use backout_sim::scenario::Scenario;
use backout_sim::{Sim, SimOptions};

const ROUNDS: usize = 10;

fn run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let text = "name = \"bench\"\ndescription = \"one service\"\nnamespace = \"shop\"\npod_start_delay = \"50ms\"\n[[service]]\nname = \"web\"\nimage = \"web:0\"\nreplicas = 3\n[[event]]\nat = \"1h\"\ntraffic = { service = \"web\", rps = 1.0 }\n";
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
    let cache = dir.path().join("kubectl-cache");
    let kubectl = |args: &[&str]| {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", &kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args);
        c
    };
    let backout = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_backout"));
        c.args(args).arg("--kubeconfig").arg(&kubeconfig);
        c
    };
    let (mut by_kubectl, mut by_backout) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS * 2 {
        run(&mut kubectl(&[
            "set",
            "image",
            "deploy/web",
            &format!("web=web:{round}"),
        ]));
        run(&mut kubectl(&[
            "rollout",
            "status",
            "deploy/web",
            "--timeout=30s",
        ]));
        if round % 2 == 0 {
            by_kubectl.push(run(&mut kubectl(&["rollout", "undo", "deploy/web"])));
        } else {
            by_backout.push(run(&mut backout(&[
                "rollback", "web", "--yes", "--reason", "bench",
            ])));
        }
        run(&mut kubectl(&[
            "rollout",
            "status",
            "deploy/web",
            "--timeout=30s",
        ]));
    }
    let (k, b) = (median(by_kubectl), median(by_backout));
    println!(
        "kubectl rollout undo:     median {:>7.1} ms over {ROUNDS} rounds",
        k.as_secs_f64() * 1000.0
    );
    println!("backout rollback --yes:   median {:>7.1} ms over {ROUNDS} rounds (permission check, server dry run, lease, guarded patch, Event)", b.as_secs_f64() * 1000.0);
    println!(
        "ratio backout / kubectl: {:.2}x",
        b.as_secs_f64() / k.as_secs_f64()
    );
    sim.stop().await;
}
