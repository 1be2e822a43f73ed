//! The fault matrix as figures: every fault of the simulator's switchboard, turned on
//! while checkout's bad deploy (25% errors) is under way with automatic rollback on,
//! then turned off. Tables what BENCHMARKS.md shows: faults tried, survived, false
//! automatic rollbacks, double rollbacks, records lost, and the time from the fault's
//! end until the faulted source is whole again (every trigger answered cleanly, or
//! the watches Connected) and until the rollback (0 when it landed during a
//! Kubernetes fault; after a metrics fault it waits out the trigger's for-duration
//! on clean data, as it must). `tests/faults.rs` asserts the same
//! promises case by case; this runs them all and counts.
//!
//! Run with `cargo bench --bench fault_matrix` (about 4 minutes on 2 cores).

// The tests' harness, so the bench runs the faults exactly as tests/faults.rs does.
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use backout::engine::{SourceHealth, SourceId};
use common::faults::{bad_deploy, core_for, key, put_faults, rollbacks, run_for};
use serde_json::{json, Value};

/// How many cases run at once: each is a simulator and a core.
const AT_ONCE: usize = 4;

#[derive(Clone)]
struct Case {
    name: &'static str,
    board: Value,
    /// Metrics faults make the data missing or bad: any rollback while one lasts
    /// is a false automatic rollback. Kubernetes faults only delay the right one.
    metrics: bool,
    lasting: Duration,
}

fn cases() -> Vec<Case> {
    let m = |name, board| Case {
        name,
        board,
        metrics: true,
        lasting: Duration::from_secs(25),
    };
    let k = |name, board| Case {
        name,
        board,
        metrics: false,
        lasting: Duration::from_secs(15),
    };
    vec![
        m("metrics down (503)", json!({"metrics": {"down": true}})),
        m(
            "metrics 10 s latency",
            json!({"metrics": {"latency": "10s"}}),
        ),
        m("metrics HTTP 400", json!({"metrics": {"status": 400}})),
        m("metrics HTTP 500", json!({"metrics": {"status": 500}})),
        m(
            "metrics garbage JSON",
            json!({"metrics": {"garbage": true}}),
        ),
        m("metrics NaN values", json!({"metrics": {"value": "NaN"}})),
        m("metrics +Inf values", json!({"metrics": {"value": "+Inf"}})),
        m(
            "metrics two series",
            json!({"metrics": {"duplicate_series": true}}),
        ),
        k("API 500s", json!({"kube": {"error_500": true}})),
        k(
            "API 429 + Retry-After 2",
            json!({"kube": {"throttle_retry_after": 2}}),
        ),
        k(
            "API 2 s latency, watches cut every 3 s",
            json!({"kube": {"latency": "2s", "cut_watches_every": "3s"}}),
        ),
        k("API 410 storm", json!({"kube": {"gone_storm": true}})),
        k(
            "409 on the rollback PATCH",
            json!({"kube": {"conflict_next_patch": true}}),
        ),
        k(
            "500 on the rollback PATCH",
            json!({"kube": {"fail_next_patch": 500}}),
        ),
        k(
            "rollback PATCH answer lost (504)",
            json!({"kube": {"lose_next_patch_answer": true}}),
        ),
    ]
}

#[derive(Debug, Default)]
struct Figures {
    survived: bool,
    false_auto: usize,
    double: bool,
    records_lost: usize,
    /// Zero when the rollback landed while the fault lasted (a Kubernetes fault).
    to_rollback: Option<Duration>,
    /// Until the faulted source is whole: clean fresh answers, or Connected watches.
    to_recovered: Option<Duration>,
}

/// Journal lines that are not records, and rollbacks whose intent has no outcome.
fn lost(journal: &str) -> usize {
    let unreadable = journal
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_err())
        .count();
    let intents = journal.matches("\"kind\":\"rollback_intent\"").count();
    let outcomes = journal.matches("\"kind\":\"rollback\"").count()
        + journal.matches("\"kind\":\"rollback_failed\"").count();
    unreadable + intents.saturating_sub(outcomes)
}

/// Whether the source the fault hit is whole again: every trigger of checkout
/// answered cleanly since `since` (metrics), or the watches Connected (Kubernetes).
fn recovered(core: &backout::app::core::Core, metrics: bool, since: jiff::Timestamp) -> bool {
    if !metrics {
        return core.state.sources.get(&SourceId::Kubernetes) == Some(&SourceHealth::Connected);
    }
    let checkout = &core.state.services[&key()];
    core.state.config.queried().all(|t| {
        checkout
            .triggers
            .get(&t.name)
            .is_some_and(|ts| ts.data.is_clean() && ts.last_answer.is_some_and(|at| at >= since))
    })
}

async fn run(case: &Case) -> Figures {
    let c = bad_deploy().await;
    let mut core = core_for(&c).await;
    put_faults(&c, case.board.clone()).await;
    run_for(&mut core, case.lasting).await;
    let during = rollbacks(&c);
    put_faults(&c, json!({})).await;
    let (ended, ended_at) = (Instant::now(), jiff::Timestamp::now());
    let checkout = key();
    let (mut to_rollback, mut to_recovered) = (None, None);
    let limit = Duration::from_secs(150);
    while ended.elapsed() < limit && (to_rollback.is_none() || to_recovered.is_none()) {
        // Stepped in short slices, so each time is read to a tenth of a second.
        let _ = tokio::time::timeout(Duration::from_millis(100), core.step()).await;
        // The patch landing, not its verification, which holds recovery a minute.
        let landed = core.state.services[&checkout]
            .rollback
            .as_ref()
            .is_some_and(|p| p.committed);
        if to_rollback.is_none() && landed {
            to_rollback = Some(ended.elapsed());
        }
        if to_recovered.is_none() && recovered(&core, case.metrics, ended_at) {
            to_recovered = Some(ended.elapsed());
        }
    }
    run_for(&mut core, Duration::from_secs(3)).await;
    let total = rollbacks(&c);
    let false_auto = if case.metrics { during } else { 0 };
    Figures {
        survived: to_rollback.is_some() && to_recovered.is_some() && total == 1 && false_auto == 0,
        false_auto,
        double: total > 1,
        records_lost: lost(&c.journal()),
        to_rollback: to_rollback.map(|d| if during > 0 { Duration::ZERO } else { d }),
        to_recovered,
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("—".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = cases();
    let started = Instant::now();
    let results: Vec<Option<Figures>> = rt.block_on(async {
        let mut results = Vec::new();
        for chunk in cases.chunks(AT_ONCE) {
            // Each case in its own task, so a panic is counted, not fatal.
            let tasks: Vec<_> = chunk
                .iter()
                .map(|case| {
                    let case = case.clone();
                    tokio::spawn(async move { run(&case).await })
                })
                .collect();
            for t in tasks {
                results.push(t.await.ok());
            }
        }
        results
    });
    println!("| fault | survived | false automatic rollbacks | double rollbacks | records lost | fault end → source whole again | fault end → rollback lands |");
    println!("|---|---|---|---|---|---|---|");
    let mut totals = (0, 0, 0, 0, 0);
    for (case, figures) in cases.iter().zip(&results) {
        totals.0 += 1;
        match figures {
            Some(f) => {
                totals.1 += usize::from(f.survived);
                totals.2 += f.false_auto;
                totals.3 += usize::from(f.double);
                totals.4 += f.records_lost;
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    case.name,
                    if f.survived { "yes" } else { "**no**" },
                    f.false_auto,
                    usize::from(f.double),
                    f.records_lost,
                    secs(f.to_recovered),
                    secs(f.to_rollback)
                );
            }
            None => println!("| {} | **panicked** | | | | | |", case.name),
        }
    }
    println!(
        "| **{} faults** | **{} survived** | **{}** | **{}** | **{}** | | |",
        totals.0, totals.1, totals.2, totals.3, totals.4
    );
    println!(
        "\n{} cases, {AT_ONCE} at a time, in {:.0} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
}
