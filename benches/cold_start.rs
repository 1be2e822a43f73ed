//! A cold start at scale (issue 14): `backout sim` plays a generated scenario of
//! 2,000 Deployments × 10 pods in one namespace, out of process, and the console
//! starts against it in a 160x48 tmux session. Measured: first rows on screen, the
//! first full frame (every trigger answered: the progress line gone), RSS and CPU
//! while idle, and `backout status --wait` (the headless path) wall time and peak RSS.
//!
//! Run with `cargo bench --bench cold_start` (needs tmux). `SCALE=200` runs smaller;
//! `POLL=15s` polls Prometheus at production's default instead of the simulator's 2 s.
//! The console starts once the simulator's metrics cover the whole lookback, as a
//! production Prometheus's do: against a simulator seconds old every series is a few
//! points, and the memory measured is the state's without its series. `YOUNG=1`
//! starts it at once, as this bench did before 2026-12-06.
//!
//! `BACKOUT_BIN=target/dist/backout` measures the binary as it ships, built by
//! `cargo build --profile dist`. The binary `cargo bench` builds has its dependencies
//! compiled with the dev-dependencies' features, which renames many functions, so
//! much of `assets/link-order.txt` (see build.rs) misses in it and its code pages are
//! not the shipped binary's. The bench says how much of the list each binary holds.

mod measure;

use std::process::Command;
use std::time::{Duration, Instant};

use measure::scale_sim::{ScaleSim, REPLICAS};
use measure::{env_or, rss_parts, sample, start_in_tmux};

const IDLE: Duration = Duration::from_secs(30);

fn screen(session: &str) -> String {
    let out = Command::new("tmux")
        .args(["capture-pane", "-p", "-t", session])
        .output()
        .expect("tmux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_screen(session: &str, limit: Duration, done: impl Fn(&str) -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done(&screen(session)) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn pid_in(session: &str) -> u32 {
    let out = Command::new("tmux")
        .args(["list-panes", "-t", session, "-F", "#{pane_pid}"])
        .output()
        .expect("tmux runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a pane pid")
}

/// Presses `down` (then `up`) `presses` times, each time timing until the screen
/// differs.
fn key_latencies(session: &str, presses: usize, (down, up): (&str, &str)) -> Vec<Duration> {
    let mut times = Vec::new();
    for i in 0..presses {
        let key = if i < presses / 2 { down } else { up };
        let before = screen(session);
        let start = Instant::now();
        let _ = Command::new("tmux")
            .args(["send-keys", "-t", session, key])
            .status();
        while start.elapsed() < Duration::from_secs(2) {
            if screen(session) != before {
                times.push(start.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    times.sort();
    times
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("never (limit)".into(), |d| {
        format!("{:.2} s", d.as_secs_f64())
    })
}

/// What the peer console measured: first rows, RSS after IDLE, idle CPU, keys.
struct Peer {
    first_rows: Option<Duration>,
    rss_idle: u64,
    rss_later: u64,
    idle_cpu: f64,
    keys: Vec<Duration>,
}

/// kdash started cold against the same simulator in its own tmux session.
fn peer(kdash: &str, kubeconfig: &std::path::Path, port: u16) -> Option<Peer> {
    if Command::new(kdash).arg("--version").output().is_err() {
        println!("kdash: not found (set KDASH to its binary); its column is skipped");
        return None;
    }
    let session = format!("cold-start-kdash-{port}");
    let args = format!("env KUBECONFIG={} {kdash}", kubeconfig.display());
    let started = Instant::now();
    if !start_in_tmux(&session, &args) {
        return None;
    }
    let pid = pid_in(&session);
    let first_rows = wait_screen(&session, Duration::from_secs(120), |s| s.contains("svc-"))
        .map(|_| started.elapsed());
    let (_, _, cpu_before) = sample(pid);
    std::thread::sleep(IDLE);
    let (rss_idle, _, cpu_after) = sample(pid);
    let keys = key_latencies(&session, 40, ("Down", "Up"));
    std::thread::sleep(IDLE);
    let (rss_later, _, _) = sample(pid);
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    Some(Peer {
        first_rows,
        rss_idle,
        rss_later,
        idle_cpu: (cpu_after - cpu_before) as f64 / 100.0 / IDLE.as_secs_f64() * 100.0,
        keys,
    })
}

fn percentiles(keys: &[Duration]) -> String {
    if keys.is_empty() {
        return "no screen change seen".into();
    }
    let at = |p: usize| keys[(keys.len() - 1) * p / 100].as_secs_f64() * 1000.0;
    format!(
        "median {:.1} ms, p90 {:.1} ms, max {:.1} ms over {} presses",
        at(50),
        at(90),
        at(100),
        keys.len()
    )
}

/// How many of the functions `assets/link-order.txt` names the binary has (binutils'
/// `nm` reads its symbols): the ones it lacks are not placed together.
fn link_order_held(bin: &str) -> String {
    let list = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/link-order.txt");
    let wanted: Vec<String> = std::fs::read_to_string(list)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let Ok(out) = Command::new("nm").arg(bin).output() else {
        return "nm not found: the link order's coverage is not known".into();
    };
    let symbols: std::collections::HashSet<&str> = std::str::from_utf8(&out.stdout)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    let held = wanted
        .iter()
        .filter(|w| symbols.contains(w.as_str()))
        .count();
    format!(
        "it has {held} of the {} functions of the link order",
        wanted.len()
    )
}

fn main() {
    let services: usize = env_or("SCALE", 2_000);
    let bin = measure::backout_bin();
    let bin = bin.as_str();
    println!("binary: {bin}; {}", link_order_held(bin));
    let sim = ScaleSim::start(bin, services);
    let (kubeconfig, backout_toml, port) = (&sim.kubeconfig, &sim.backout_toml, sim.port);
    if let Ok(poll) = std::env::var("POLL") {
        let text = std::fs::read_to_string(backout_toml).unwrap();
        let text = text.replace(
            "poll_interval = \"2s\"",
            &format!("poll_interval = {poll:?}"),
        );
        std::fs::write(backout_toml, text).unwrap();
    }
    let sim_pid = sim.pid();
    println!(
        "simulator: {services} Deployments × {REPLICAS} pods seeded in {:.1} s ({}); its RSS {:.1} MiB",
        sim.seeded.as_secs_f64(),
        if sim.ready { "all Available" } else { "not all Available in 900 s" },
        sample(sim_pid).0 as f64 / 1024.0
    );
    if std::env::var("YOUNG").is_err() {
        let text = std::fs::read_to_string(backout_toml).unwrap();
        let lookback = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("lookback = "))
            .and_then(|v| humantime::parse_duration(v.trim_matches('"')).ok())
            .unwrap_or(Duration::from_secs(300));
        let history = lookback + Duration::from_secs(10);
        println!(
            "waiting {}s for the simulator's metrics to cover the lookback ({})",
            history.saturating_sub(sim.age()).as_secs(),
            humantime::format_duration(lookback)
        );
        std::thread::sleep(history.saturating_sub(sim.age()));
    }
    let args = format!(
        "{bin} --kubeconfig {} --config {}",
        kubeconfig.display(),
        backout_toml.display()
    );
    let session = format!("cold-start-{port}");
    let started = Instant::now();
    assert!(start_in_tmux(&session, &args), "tmux starts the console");
    let pid = pid_in(&session);
    let first_rows = wait_screen(&session, Duration::from_secs(120), |s| {
        s.contains("svc-0000")
    });
    let full_frame = wait_screen(&session, Duration::from_secs(300), |s| {
        s.contains("svc-0000") && !s.contains("triggers answered") && !s.contains("connecting")
    })
    .map(|_| started.elapsed());
    let (rss_full, _, cpu_before) = sample(pid);
    std::thread::sleep(IDLE);
    let (rss_idle, peak, cpu_after) = sample(pid);
    let (rss_anon, rss_file) = rss_parts(pid);
    let keys = key_latencies(&session, 40, ("j", "k"));
    let idle_cpu = (cpu_after - cpu_before) as f64 / 100.0 / IDLE.as_secs_f64() * 100.0;
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();

    let status_started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(bin)
        .args(["status", "--json", "--wait", "300s", "--kubeconfig"])
        .arg(kubeconfig)
        .arg("--config")
        .arg(backout_toml)
        .output()
        .expect("/usr/bin/time runs");
    let status_wall = status_started.elapsed();
    let status_peak: u64 = String::from_utf8_lossy(&status.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    // The peer, on the same simulator: kdash (`cargo install kdash`), if KDASH names
    // its binary or it is on PATH.
    let kdash = std::env::var("KDASH").unwrap_or_else(|_| "kdash".into());
    let kdash_figures = peer(&kdash, kubeconfig, port);
    println!(
        "simulator RSS at the end: {:.1} MiB",
        sample(sim_pid).0 as f64 / 1024.0
    );
    drop(sim);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("console, {services} Deployments × {REPLICAS} pods, 160x48 tmux:");
    println!("  first rows on screen:   {}", secs(first_rows));
    println!(
        "  first full frame:       {} (every trigger answered)",
        secs(full_frame)
    );
    println!("  RSS at the full frame:  {:.1} MiB", mib(rss_full));
    println!(
        "  RSS after {}s idle:     {:.1} MiB (peak {:.1} MiB)",
        IDLE.as_secs(),
        mib(rss_idle),
        mib(peak)
    );
    println!(
        "    of which anonymous {:.1} MiB, the binary's and libraries' pages {:.1} MiB",
        mib(rss_anon),
        mib(rss_file)
    );
    println!("  idle CPU:               {idle_cpu:.2}% of one core");
    println!(
        "  key (j/k) → screen changed, through tmux: {} (includes tmux's own capture, about 2-5 ms)",
        percentiles(&keys)
    );
    println!(
        "backout status --json --wait: {:.2} s wall, peak RSS {:.1} MiB, exit {}",
        status_wall.as_secs_f64(),
        mib(status_peak),
        status.status.code().unwrap_or(-1)
    );
    if let Some(k) = kdash_figures {
        println!(
            "kdash, same simulator, 160x48 tmux (no triggers: its first rows are its full frame):"
        );
        println!("  first rows on screen:   {}", secs(k.first_rows));
        println!(
            "  RSS after {}s idle:     {:.1} MiB; after the keys and {}s more: {:.1} MiB",
            IDLE.as_secs(),
            mib(k.rss_idle),
            IDLE.as_secs(),
            mib(k.rss_later)
        );
        println!("  idle CPU:               {:.2}% of one core", k.idle_cpu);
        println!(
            "  key (Down/Up) → screen changed, through tmux: {}",
            percentiles(&k.keys)
        );
    }
}
