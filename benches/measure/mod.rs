//! Measuring a whole process from outside, for the benches that race backout against
//! kubectl (wall time and peak memory from `wait4`) and those that drive a console in
//! tmux.

// Each bench uses its own part of this.
#![allow(dead_code)]

pub mod scale_sim;

use std::process::Command;
use std::time::{Duration, Instant};

/// The backout binary to measure: `BACKOUT_BIN` (say `target/dist/backout`, the
/// binary as it ships), or the one cargo built for this bench.
pub fn backout_bin() -> String {
    std::env::var("BACKOUT_BIN").unwrap_or(env!("CARGO_BIN_EXE_backout").into())
}

/// Runs `cmd` to its end: (wall time, peak RSS in KiB), from `wait4`'s rusage.
/// Panics with what the command said if it fails.
pub fn measure(cmd: &mut Command) -> (Duration, u64) {
    let said = tempfile::NamedTempFile::new().unwrap();
    let start = Instant::now();
    // Reaped below by wait4, which also gives the peak memory `wait` cannot.
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .stdout(said.reopen().unwrap())
        .stderr(said.reopen().unwrap())
        .spawn()
        .expect("the command starts");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 reaps only this child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(reaped, pid, "wait4 reaped the command");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed: {}",
        std::fs::read_to_string(said.path()).unwrap_or_default()
    );
    (wall, usage.ru_maxrss as u64)
}

pub fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

/// Runs `command` in a new detached 160x48 tmux session named `session`.
pub fn start_in_tmux(session: &str, command: &str) -> bool {
    Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "160",
            "-y",
            "48",
            command,
        ])
        .status()
        .is_ok_and(|s| s.success())
}

/// (RSS KiB, peak RSS KiB, user + system CPU ticks) of a live process.
pub fn sample(pid: u32) -> (u64, u64, u64) {
    let kib = status_kib(pid);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let cpu = stat.rfind(')').map_or(0, |at| {
        let fields: Vec<&str> = stat[at + 2..].split_whitespace().collect();
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
    });
    (kib("VmRSS:"), kib("VmHWM:"), cpu)
}

/// (anonymous, file-backed) resident KiB of a live process: its heap and stacks, and
/// the pages of its binary and libraries, which the kernel maps a window at a time
/// and shares with every process running the same file.
pub fn rss_parts(pid: u32) -> (u64, u64) {
    let kib = status_kib(pid);
    (kib("RssAnon:"), kib("RssFile:"))
}

/// A reader of `/proc/PID/status`'s KiB fields by their key (`"VmRSS:"`); 0 for a
/// field missing, or a process gone.
fn status_kib(pid: u32) -> impl Fn(&str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    move |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// A bench's setting from the environment, or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
