//! `update()` at scale: 2,000 Deployments × 4 triggers. Reports message throughput,
//! the state's heap size, and how long the one call that turns a breach sample into a
//! changed decision takes. Run with `cargo bench --bench update`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backout::config::Config;
use backout::engine::{update, Action, Msg, ServiceKey, State};

mod support;

/// Counts live heap bytes, to report what the state costs.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

use support::{answer, name, populate, t, SERVICES};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `per_service` ready pods of each service's current ReplicaSet, as one relist.
fn pods_relisted(per_service: usize) -> Msg {
    use backout::engine::{KubeChange, KubeKind, KubeObject};
    let objects = (0..SERVICES)
        .flat_map(|i| {
            (0..per_service).map(move |p| {
                let rs = format!("{}-2", name(i));
                let pod = serde_json::json!({"metadata": {"name": format!("{rs}-{p}"), "namespace": "scale",
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": "u", "controller": true}]},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}],
                        "containerStatuses": [{"name": "app", "image": "app:2", "imageID": "", "ready": true, "restartCount": 0}]}});
                KubeObject::pod(&serde_json::from_value(pod).unwrap())
            })
        })
        .collect();
    Msg::Kube(KubeChange::Relisted {
        kind: KubeKind::Pod,
        namespace: "scale".into(),
        objects,
    })
}

/// Every service's healthy series for `trigger`, as one grouped answer.
fn grouped_answer(trigger: &str, now: i64) -> Msg {
    grouped_since(trigger, now, 20, None)
}

/// What a steady poll asks for `trigger`: only what is new since the last answer, a
/// step of overlap included (`poller::window`), for every service.
fn grouped_partial(trigger: &str, now: i64) -> Msg {
    grouped_since(trigger, now, 3, Some(t(now - 30).as_millisecond()))
}

/// `points` healthy points a step (15 s) apart for every service, ending at `now`.
fn grouped_since(trigger: &str, now: i64, points: i64, partial_from: Option<i64>) -> Msg {
    use backout::engine::{GroupedAnswer, GroupedOutcome};
    let services: Vec<ServiceKey> = (0..SERVICES)
        .map(|i| ServiceKey::new("scale", &name(i)))
        .collect();
    let series = services
        .iter()
        .map(|k| {
            let points = (0..points)
                .map(|p| (t(now - 15 * (points - 1 - p)).as_millisecond(), 0.001))
                .collect();
            (k.clone(), points)
        })
        .collect();
    let requests_per_second = services.iter().map(|k| (k.clone(), 100.0)).collect();
    Msg::Queries(GroupedAnswer {
        trigger: trigger.into(),
        services,
        answered_at: t(now),
        partial_from,
        outcome: GroupedOutcome::Series {
            series,
            requests_per_second,
        },
    })
}

fn main() {
    let config = Config::parse(
        std::path::Path::new("bench.toml"),
        "[prometheus]\nurl = \"http://p\"\n",
    )
    .unwrap();
    let triggers: Vec<String> = config.triggers.iter().map(|t| t.name.clone()).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut state = State::new(config, t(0));
    let setup = Instant::now();
    populate(&mut state);
    let objects = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "setup: {SERVICES} Deployments with 2 revisions each applied in {:.0} ms; they hold {:.1} MiB ({:.1} KiB per service)",
        setup.elapsed().as_secs_f64() * 1000.0,
        objects as f64 / 1048576.0,
        objects as f64 / 1024.0 / SERVICES as f64
    );

    // The pods' first list: 10 per service, in one message, as the watcher sends it.
    let pods_before = LIVE.load(Ordering::Relaxed);
    let relist = pods_relisted(10);
    let started = Instant::now();
    update(&mut state, relist);
    println!(
        "pods: a relist of {} pods applied in {:.0} ms; they hold {:.1} MiB ({:.0} bytes per pod)",
        SERVICES * 10,
        started.elapsed().as_secs_f64() * 1000.0,
        (LIVE.load(Ordering::Relaxed) - pods_before) as f64 / 1048576.0,
        (LIVE.load(Ordering::Relaxed) - pods_before) as f64 / (SERVICES * 10) as f64
    );

    // One poll round of healthy answers, several times over.
    let rounds = 5;
    let start = Instant::now();
    let mut messages = 0;
    for round in 0..rounds {
        update(&mut state, Msg::Tick(t(60 + round * 15)));
        for i in 0..SERVICES {
            for trigger in &triggers {
                update(&mut state, answer(i, trigger, 0.001, 60 + round * 15));
                messages += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    println!(
        "throughput: {messages} healthy query answers in {:.0} ms = {:.0} messages/s ({:.2} µs each)",
        elapsed.as_secs_f64() * 1000.0,
        messages as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / messages as f64
    );
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "memory: state holds {:.1} MiB ({:.1} KiB per service)",
        bytes as f64 / 1048576.0,
        bytes as f64 / 1024.0 / SERVICES as f64
    );

    // One grouped answer (a trigger for every service at once) as the poller sends
    // it: the longest the core's loop is busy with one message, so what a key press
    // can wait behind while a poll's answers are applied.
    let mut grouped = Vec::new();
    for round in 0..5 {
        let now = 140 + round * 15;
        let msg = grouped_answer(&triggers[round as usize % 4], now);
        let start = Instant::now();
        update(&mut state, msg);
        grouped.push(start.elapsed());
    }
    let grouped = median(grouped);
    println!(
        "grouped answer: one trigger for all {SERVICES} services applied in {:.2} ms (median of 5; {:.2} µs per service)",
        grouped.as_secs_f64() * 1000.0,
        grouped.as_secs_f64() * 1e6 / SERVICES as f64
    );

    let tick = Instant::now();
    update(&mut state, Msg::Tick(t(200)));
    println!(
        "tick: a tick over {SERVICES} quiet services (cluster signals sampled, staleness checked) took {:.2} ms",
        tick.elapsed().as_secs_f64() * 1000.0
    );

    // A breach whose run began long enough ago fires at once: one call changes the decision.
    let mut latencies = Vec::new();
    for i in 0..1_000 {
        let msg = answer(i, "error-rate", 0.3, 200);
        let start = Instant::now();
        update(&mut state, msg);
        latencies.push(start.elapsed());
        assert_ne!(
            state.services[&ServiceKey::new("scale", &name(i))]
                .decision
                .action,
            Action::None,
            "the decision changed"
        );
    }
    let p99 = {
        let mut l = latencies.clone();
        l.sort();
        l[l.len() * 99 / 100]
    };
    let healthy = median(
        (0..1_000)
            .map(|i| {
                let msg = answer(1_000 + i, "error-rate", 0.001, 200);
                let start = Instant::now();
                update(&mut state, msg);
                start.elapsed()
            })
            .collect(),
    );
    let breach = median(latencies);
    println!("breach → decision: median {:.1} µs, p99 {:.1} µs (a healthy answer: {:.1} µs; ratio {:.1}x)", breach.as_secs_f64() * 1e6, p99.as_secs_f64() * 1e6, healthy.as_secs_f64() * 1e6, breach.as_secs_f64() / healthy.as_secs_f64());

    // A steady poll: the tick that samples the cluster signals, then each queried
    // trigger's partial answer for every service. At a 2 s poll this is what the
    // console does every two seconds while nothing happens (its idle CPU).
    let queried: Vec<String> = state.config.queried().map(|t| t.name.clone()).collect();
    let polls: Vec<Duration> = (1..=10)
        .map(|poll| {
            let now = 300 + poll * 15;
            let answers: Vec<Msg> = queried.iter().map(|t| grouped_partial(t, now)).collect();
            let start = Instant::now();
            update(&mut state, Msg::Tick(t(now)));
            for msg in answers {
                update(&mut state, msg);
            }
            start.elapsed()
        })
        .collect();
    println!(
        "steady poll: a tick and {} partial grouped answers (3 points per series) for all {SERVICES} services applied in {:.2} ms (median of 10)",
        queried.len(),
        median(polls).as_secs_f64() * 1000.0
    );

    // The ticks between polls, one a second: nothing is due, but every trigger state
    // is read (staleness, the blind banner, the progress line).
    let last_poll = 300 + 10 * 15;
    let quiet: Vec<Duration> = (1..=10)
        .map(|second| {
            let start = Instant::now();
            update(&mut state, Msg::Tick(t(last_poll + second)));
            start.elapsed()
        })
        .collect();
    assert_eq!(
        state.answered_at_tick,
        (queried.len() * SERVICES, queried.len() * SERVICES),
        "every queried trigger answered for every service"
    );
    println!(
        "quiet tick: a tick between polls over {SERVICES} services (nothing sampled) took {:.3} ms (median of 10)",
        median(quiet).as_secs_f64() * 1000.0
    );
}
