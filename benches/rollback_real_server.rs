//! `backout rollback --yes` against `kubectl rollout undo` on a real kube-apiserver
//! (the control plane tests/controlplane.rs uses), alternating in one run: wall time
//! and peak memory of each process, read from the kernel when it exits.
//!
//! No kubelet runs there, so each side returns once its patch has landed: kubectl
//! after its PATCH, backout with `--no-verify` after its access check, listing, server
//! dry run, Lease, guarded PATCH and Event. Run with
//! `cargo bench --bench rollback_real_server` (builds the control plane if needed).

#[path = "../tests/controlplane/harness.rs"]
#[allow(dead_code)]
mod harness;
mod measure;

use std::process::Command;
use std::time::{Duration, Instant};

use measure::{measure, median};

const ROUNDS: usize = 8;

/// Waits until `revision()` is past `past`; returns it.
async fn wait_past<F, Fut>(revision: &F, past: u64, round: usize) -> u64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let started = Instant::now();
    loop {
        let now = revision().await;
        if now > past {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "round {round}: the revision stayed at {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(cp) = harness::ControlPlane::start().await else {
        eprintln!("no control plane could be built here");
        return;
    };
    cp.kubectl_ok(&["create", "deployment", "web", "--image=web:0", "-n", "shop"])
        .await;
    let kubeconfig = cp.kubeconfig();
    let cache = cp.dir.path().join("kubectl-cache");
    let journal = cp.journal_path();
    let revision = || async {
        cp.jsonpath(
            "deploy/web",
            r"{.metadata.annotations.deployment\.kubernetes\.io/revision}",
        )
        .await
        .parse::<u64>()
        .unwrap_or(0)
    };
    wait_past(&revision, 0, 0).await;
    let (mut kubectl, mut backout) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS * 2 {
        let shipped_over = revision().await;
        cp.kubectl_ok(&["set", "image", "deploy/web", &format!("web=web:{round}")])
            .await;
        // The controller records the new revision first, as an engineer would see it.
        let before = wait_past(&revision, shipped_over, round).await;
        let measured = if round % 2 == 0 {
            let mut c = Command::new("kubectl");
            c.env("KUBECONFIG", &kubeconfig)
                .arg("--cache-dir")
                .arg(&cache)
                .args(["rollout", "undo", "deploy/web", "-n", "shop"]);
            measure(&mut c)
        } else {
            let mut c = Command::new(measure::backout_bin());
            c.env("BACKOUT_JOURNAL", &journal)
                .args(["rollback", "web", "-n", "shop", "--yes", "--no-verify"])
                .arg("--kubeconfig")
                .arg(&kubeconfig);
            measure(&mut c)
        };
        // Both sides must have rolled back: the revision moves on once.
        wait_past(&revision, before, round).await;
        match round % 2 {
            0 => kubectl.push(measured),
            _ => backout.push(measured),
        }
    }
    let wall = |v: &[(Duration, u64)]| median(v.iter().map(|m| m.0).collect());
    let peak = |v: &[(Duration, u64)]| median(v.iter().map(|m| m.1).collect());
    let (kw, bw) = (wall(&kubectl), wall(&backout));
    let (kp, bp) = (peak(&kubectl), peak(&backout));
    println!("on a real kube-apiserver v1.37.2, {ROUNDS} rounds each, alternating:");
    println!(
        "kubectl rollout undo:              median {:>6.1} ms, peak {:>6.1} MiB",
        kw.as_secs_f64() * 1000.0,
        kp as f64 / 1024.0
    );
    println!(
        "backout rollback --yes --no-verify: median {:>6.1} ms, peak {:>6.1} MiB",
        bw.as_secs_f64() * 1000.0,
        bp as f64 / 1024.0
    );
    println!(
        "ratio backout / kubectl: wall {:.2}x, peak memory {:.2}x",
        bw.as_secs_f64() / kw.as_secs_f64(),
        bp as f64 / kp as f64
    );
}
