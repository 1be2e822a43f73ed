//! The simulator at scale: list latency and watch throughput with 2,000 Deployments
//! and 20,000 pods. Run with `cargo bench --bench sim_scale`; it prints a report.
//! Numbers on a shared 2-core machine are noisy: read the ratios within one run.

use std::time::{Duration, Instant};

use backout_sim::api::admission::admit;
use backout_sim::api::auth::EDITOR_TOKEN;
use backout_sim::resources::{CONFIGMAPS, DEPLOYMENTS, PODS};
use backout_sim::{Sim, SimOptions};
use futures::StreamExt;
use serde_json::json;

const DEPLOYMENTS_N: usize = 2_000;
const REPLICAS: i64 = 10;
const WATCH_EVENTS: usize = 20_000;

fn deployment(i: usize) -> serde_json::Value {
    let name = format!("svc-{i:04}");
    json!({"metadata": {"name": name, "namespace": "scale"}, "spec": {"replicas": REPLICAS,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn time_get(http: &reqwest::Client, url: &str, runs: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let body = http
            .get(url)
            .bearer_auth(EDITOR_TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        times.push(start.elapsed());
        bytes = body.len();
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.9), bytes)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sim = Sim::start(SimOptions {
        watch_log: 50_000,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let ca = reqwest::Certificate::from_pem(sim.ca_pem.as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();

    let setup = Instant::now();
    {
        let mut store = sim.state.store.lock().unwrap();
        store.ensure_namespace("scale");
        for i in 0..DEPLOYMENTS_N {
            let mut d = deployment(i);
            admit(&DEPLOYMENTS, &mut d, None).unwrap();
            store.create(&DEPLOYMENTS, d).unwrap();
        }
    }
    let want_pods = DEPLOYMENTS_N * REPLICAS as usize;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let store = sim.state.store.lock().unwrap();
        let available: i64 = store
            .list(&DEPLOYMENTS, Some("scale"))
            .map(|d| d["status"]["availableReplicas"].as_i64().unwrap_or(0))
            .sum();
        if store.count(&PODS) == want_pods && available == want_pods as i64 {
            break;
        }
        assert!(
            setup.elapsed() < Duration::from_secs(300),
            "the controllers did not converge"
        );
    }
    println!("setup: {DEPLOYMENTS_N} Deployments and {want_pods} pods created by the controllers and all available in {:.1} s", setup.elapsed().as_secs_f64());

    let base = sim.url();
    let cases = [
        (
            "list deployments (2,000)",
            format!("{base}/apis/apps/v1/namespaces/scale/deployments"),
            20,
        ),
        (
            "list pods (20,000)",
            format!("{base}/api/v1/namespaces/scale/pods"),
            5,
        ),
        (
            "list pods, first page of 500",
            format!("{base}/api/v1/namespaces/scale/pods?limit=500"),
            20,
        ),
        (
            "list pods by label (10 of 20,000)",
            format!("{base}/api/v1/namespaces/scale/pods?labelSelector=app%3Dsvc-1234"),
            20,
        ),
        (
            "get one deployment",
            format!("{base}/apis/apps/v1/namespaces/scale/deployments/svc-1234"),
            50,
        ),
    ];
    let mut medians = Vec::new();
    for (what, url, runs) in cases {
        let (median, p90, bytes) = time_get(&http, &url, runs).await;
        println!(
            "{what:<36} median {:>8.2} ms  p90 {:>8.2} ms  {:>6} KiB  ({runs} runs)",
            ms(median),
            ms(p90),
            bytes / 1024
        );
        medians.push(median);
    }
    println!(
        "ratio: list 20,000 pods / list 2,000 deployments = {:.1}x",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );

    // Watch throughput: one watcher from now, then WATCH_EVENTS writes.
    {
        let mut store = sim.state.store.lock().unwrap();
        store
            .create(
                &CONFIGMAPS,
                json!({"metadata": {"name": "counter", "namespace": "scale"}, "data": {"n": "0"}}),
            )
            .unwrap();
    }
    let rv = sim.state.store.lock().unwrap().resource_version();
    let url = format!("{base}/api/v1/namespaces/scale/configmaps?watch=true&resourceVersion={rv}");
    let response = http
        .get(url)
        .bearer_auth(EDITOR_TOKEN)
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut stream = response.bytes_stream();
        let (mut lines, mut first) = (0usize, None);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            first.get_or_insert_with(Instant::now);
            lines += chunk.iter().filter(|b| **b == b'\n').count();
            if lines >= WATCH_EVENTS {
                break;
            }
        }
        (lines, first.unwrap().elapsed())
    });
    let writes = Instant::now();
    for n in 1..=WATCH_EVENTS {
        let mut store = sim.state.store.lock().unwrap();
        let mut cm = (*store.get(&CONFIGMAPS, "scale", "counter").unwrap()).clone();
        cm["data"]["n"] = json!(n.to_string());
        store.update(&CONFIGMAPS, cm).unwrap();
    }
    let write_time = writes.elapsed();
    let (received, elapsed) = reader.await.unwrap();
    println!(
        "watch: {received} events delivered in {:.2} s = {:.0} events/s (writes took {:.2} s = {:.0} writes/s)",
        elapsed.as_secs_f64(),
        received as f64 / elapsed.as_secs_f64(),
        write_time.as_secs_f64(),
        WATCH_EVENTS as f64 / write_time.as_secs_f64()
    );
    sim.stop().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
