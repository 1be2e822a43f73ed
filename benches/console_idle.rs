//! `backout demo` left alone for 30 s in tmux: its CPU and memory, against `backout
//! sim` playing the same scenario, so the console's own share shows as a difference
//! within one run. Run with `cargo bench --bench console_idle` (needs tmux).

mod measure;

use std::process::Command;
use std::time::{Duration, Instant};

use measure::{sample, start_in_tmux};

const WINDOW: Duration = Duration::from_secs(30);
const WARM_UP: Duration = Duration::from_secs(10);

fn ticks_per_second() -> f64 {
    // Linux's USER_HZ, which /proc/PID/stat counts in.
    100.0
}

fn pid_of(pattern: &str) -> u32 {
    for _ in 0..100 {
        let out = Command::new("pgrep")
            .args(["-f", pattern])
            .output()
            .unwrap();
        if let Some(pid) = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no process matches {pattern:?}");
}

/// After the terminal went: how long the process took to leave, and the CPU it used
/// meanwhile (ms); `None` if it was still there after 10 s.
fn hangup_to_exit(pid: u32, cpu_before: u64, killed: Instant) -> Option<(f64, f64)> {
    let mut last = cpu_before;
    while killed.elapsed() < Duration::from_secs(10) {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) if !stat.contains(") Z ") => last = sample(pid).2,
            _ => {
                let ms = killed.elapsed().as_secs_f64() * 1000.0;
                let cpu = (last - cpu_before) as f64 / ticks_per_second() * 1000.0;
                return Some((ms, cpu));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Runs `args` in a detached 160x48 tmux session, measures it after the warm-up, then
/// kills the session as an SSH drop would and measures the way out.
fn measure(session: &str, args: &str) -> (f64, u64, u64, Option<(f64, f64)>) {
    let bin = env!("CARGO_BIN_EXE_backout");
    let cmd = format!("{bin} {args}");
    assert!(start_in_tmux(session, &cmd), "tmux could not start {cmd}");
    let pid = pid_of(&format!("^{cmd}$"));
    std::thread::sleep(WARM_UP);
    let (_, _, before) = sample(pid);
    std::thread::sleep(WINDOW);
    let (rss, peak, after) = sample(pid);
    let killed = Instant::now();
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", session])
        .status();
    let exit = hangup_to_exit(pid, after, killed);
    let cpu = (after - before) as f64 / ticks_per_second() / WINDOW.as_secs_f64() * 100.0;
    (cpu, rss, peak, exit)
}

fn main() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("console_idle needs tmux");
        std::process::exit(1);
    }
    let (demo_cpu, demo_rss, demo_peak, exit) = measure("bench-demo", "demo");
    let (sim_cpu, sim_rss, _, _) = measure("bench-sim", "sim --scenario bad-deploy");
    println!(
        "backout demo, idle {}s: {demo_cpu:.2}% of one core, RSS {:.1} MiB (peak {:.1} MiB)",
        WINDOW.as_secs(),
        demo_rss as f64 / 1024.0,
        demo_peak as f64 / 1024.0
    );
    println!(
        "backout sim alone, same scenario: {sim_cpu:.2}% of one core, RSS {:.1} MiB",
        sim_rss as f64 / 1024.0
    );
    println!(
        "the console's share: {:.2}% of one core, {:.1} MiB",
        demo_cpu - sim_cpu,
        demo_rss.saturating_sub(sim_rss) as f64 / 1024.0
    );
    match exit {
        Some((ms, cpu)) => println!(
            "terminal killed (tmux kill-session) → process gone: {ms:.0} ms, {cpu:.0} ms of CPU"
        ),
        None => println!("terminal killed → the process was still running after 10 s"),
    }
}
