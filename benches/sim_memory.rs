//! The simulator's memory over time at scale (issue 14): `backout sim` plays a
//! generated scenario of 2,000 Deployments × 10 pods, a console watches it from a
//! tmux session (its watches and its Prometheus queries every 2 s), and the
//! simulator's RSS is sampled every minute. Flat means the last samples are within a
//! few percent of the one taken once the first retention windows (15 min of recorded
//! series) have filled.
//!
//! Run with `cargo bench --bench sim_memory`; `MINUTES=60` (the default) and
//! `SCALE=2000` set its length and size.

mod measure;

use std::process::Command;
use std::time::{Duration, Instant};

use measure::scale_sim::{ScaleSim, REPLICAS};
use measure::{env_or, sample, start_in_tmux};

fn main() {
    let services: usize = env_or("SCALE", 2_000);
    let minutes: u64 = env_or("MINUTES", 60);
    let bin = env!("CARGO_BIN_EXE_backout");
    let sim = ScaleSim::start(bin, services);
    assert!(sim.ready, "the simulator did not bring every Deployment up");
    let session = format!("sim-memory-{}", sim.port);
    let console = format!(
        "{bin} --kubeconfig {} --config {}",
        sim.kubeconfig.display(),
        sim.backout_toml.display()
    );
    assert!(start_in_tmux(&session, &console), "tmux starts the console");
    println!(
        "simulator: {services} Deployments × {REPLICAS} pods seeded in {:.1} s; a console watches it",
        sim.seeded.as_secs_f64()
    );
    println!("minute  simulator RSS  CPU over the minute");
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut cpu_before = sample(sim.pid()).2;
    for minute in 0..=minutes {
        let due = Duration::from_secs(60 * minute);
        std::thread::sleep(due.saturating_sub(started.elapsed()));
        let (rss, _, cpu) = sample(sim.pid());
        assert!(rss > 0, "the simulator exited at minute {minute}");
        let busy = (cpu - cpu_before) as f64 / 100.0 / 60.0 * 100.0;
        cpu_before = cpu;
        println!(
            "{minute:>6}  {:>9.1} MiB  {busy:>5.1}%",
            rss as f64 / 1024.0
        );
        rows.push(rss);
    }
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    let mib = |kib: u64| kib as f64 / 1024.0;
    let settled = rows[rows.len().min(16) - 1];
    let last = *rows.last().expect("at least one sample");
    let peak = *rows.iter().max().expect("at least one sample");
    println!(
        "start {:.1} MiB; at minute {} (retention windows full) {:.1} MiB; end {:.1} MiB ({:+.1}% since); peak {:.1} MiB",
        mib(rows[0]),
        rows.len().min(16) - 1,
        mib(settled),
        mib(last),
        (last as f64 / settled as f64 - 1.0) * 100.0,
        mib(peak)
    );
}
