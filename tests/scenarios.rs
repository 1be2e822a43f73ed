//! Every shipped scenario does in the simulator what its description says, seen
//! through the Kubernetes API and the recorded series. All run at once, since they
//! mostly wait on the wall clock; each timeline is moved 12 s sooner to keep it short.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backout_sim::api::auth::EDITOR_TOKEN;
use backout_sim::scenario::Scenario;
use common::{instant, start, Cluster};
use serde_json::Value;

const SOONER: Duration = Duration::from_secs(12);
/// How long after its (moved) start each scenario is inspected.
const INSPECT_AFTER: Duration = Duration::from_secs(22);

async fn series(c: &Cluster, name: &str, service: &str) -> Option<f64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    instant(
        &c.http(),
        &c.sim.url(),
        &format!("{name}{{service=\"{service}\"}}"),
        now,
    )
    .await
}

async fn get(c: &Cluster, path: &str) -> Value {
    let resp = c
        .http()
        .get(format!("{}{path}", c.sim.url()))
        .bearer_auth(EDITOR_TOKEN)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

const RATIO: &str = "service:http_errors:ratio_rate1m";
const P99: &str = "service:http_request_duration_seconds:p99_1m";
const RESTARTS: &str = "service:kube_pod_container_restarts:increase5m";

/// Checks one scenario; returns what is wrong with it, if anything.
async fn check(name: &'static str) -> Vec<String> {
    let mut scenario = Scenario::load(name).unwrap();
    for e in &mut scenario.timeline {
        let at = &mut e.get_mut().at;
        *at = at.saturating_sub(SOONER);
    }
    let c = start(scenario).await;
    tokio::time::sleep(INSPECT_AFTER).await;
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("{name}: {what}"));
        }
    };
    let ratio = |svc: &'static str| series(&c, RATIO, svc);
    match name {
        "bad-deploy" => {
            let (checkout, payments) = (ratio("checkout").await, ratio("payments").await);
            expect(
                checkout > Some(0.05),
                format!("checkout error ratio {checkout:?} should breach 5%"),
            );
            expect(
                payments < Some(0.01),
                format!("payments error ratio {payments:?} should stay low"),
            );
        }
        "crashloop" => {
            let restarts = series(&c, RESTARTS, "checkout").await;
            expect(
                restarts > Some(3.0),
                format!("checkout restarts in 5m {restarts:?} should exceed 3"),
            );
            let d = get(&c, "/apis/apps/v1/namespaces/shop/deployments/checkout").await;
            expect(
                d["status"]["availableReplicas"] == 3,
                "the old pods keep serving".into(),
            );
        }
        "latency-only" => {
            let (p99, errors) = (series(&c, P99, "search").await, ratio("search").await);
            expect(
                p99 > Some(5.0),
                format!("search p99 {p99:?} should pass 5 s"),
            );
            expect(
                errors < Some(0.01),
                format!("search error ratio {errors:?} should stay low"),
            );
        }
        "deploy-with-migration" => {
            let job = get(
                &c,
                "/apis/batch/v1/namespaces/shop/jobs/orders-migrate-0042",
            )
            .await;
            expect(
                job["metadata"]["annotations"]["backout.dev/migration"] == "true",
                "the migration Job exists".into(),
            );
            let errors = ratio("orders").await;
            expect(
                errors > Some(0.05),
                format!("orders error ratio {errors:?} should breach 5%"),
            );
        }
        "deploy-with-configmap" => {
            let cm = get(&c, "/api/v1/namespaces/shop/configmaps/cart-config").await;
            expect(
                cm["data"]["PRICE_CACHE"] == "redis",
                "the ConfigMap changed".into(),
            );
            let d = get(&c, "/apis/apps/v1/namespaces/shop/deployments/cart").await;
            let env_from = &d["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]
                ["configMapRef"]["name"];
            expect(
                env_from == "cart-config",
                "the pod template references it".into(),
            );
            let errors = ratio("cart").await;
            expect(
                errors > Some(0.05),
                format!("cart error ratio {errors:?} should breach 5%"),
            );
        }
        "cross-service" => {
            let (frontend, inventory) = (ratio("frontend").await, ratio("inventory").await);
            expect(
                inventory > Some(0.05),
                format!("inventory error ratio {inventory:?} should breach 5%"),
            );
            expect(
                frontend < Some(0.01),
                format!("frontend error ratio {frontend:?} should stay low"),
            );
            let d = get(&c, "/apis/apps/v1/namespaces/shop/deployments/frontend").await;
            expect(
                d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2",
                "frontend deployed".into(),
            );
        }
        "healthy-deploy" => {
            let d = get(&c, "/apis/apps/v1/namespaces/shop/deployments/checkout").await;
            expect(
                d["status"]["updatedReplicas"] == 3 && d["status"]["availableReplicas"] == 3,
                "rolled out".into(),
            );
            let errors = ratio("checkout").await;
            expect(
                errors < Some(0.01),
                format!("checkout error ratio {errors:?} should stay low"),
            );
        }
        "noisy-baseline" => {
            let errors = ratio("reviews").await;
            expect(
                errors > Some(0.01) && errors < Some(0.05),
                format!("reviews error ratio {errors:?} should be noisy but under 5%"),
            );
        }
        "canary-abort" => {
            let ro = get(
                &c,
                "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout",
            )
            .await;
            let status = &ro["status"];
            expect(
                status["phase"] == "Paused" && status["currentStepIndex"] == 1,
                format!("the canary pauses at its first step: {status}"),
            );
            expect(
                status["stableRS"] != status["currentPodHash"],
                "stable and canary are different ReplicaSets".into(),
            );
            let canary = get(
                &c,
                &format!(
                    "/apis/apps/v1/namespaces/shop/replicasets/checkout-{}",
                    status["currentPodHash"].as_str().unwrap_or_default()
                ),
            )
            .await;
            expect(
                canary["spec"]["replicas"] == 1,
                format!("20% of 5 replicas is 1 canary pod: {}", canary["spec"]),
            );
            let errors = ratio("checkout").await;
            expect(
                errors > Some(0.05) && errors < Some(0.3),
                format!("checkout error ratio {errors:?} should breach 5%, diluted by stable"),
            );
        }
        "gitops-revert" => {
            let d = get(&c, "/apis/apps/v1/namespaces/shop/deployments/checkout").await;
            let annotations = &d["metadata"]["annotations"];
            expect(
                annotations["kubernetes.io/change-cause"] == "checkout 1.4.1: new coupon engine"
                    && annotations["backout.dev/deployed-by"] == "dana@ci",
                format!(
                    "the sync applied the commit, named by its subject and author: {annotations}"
                ),
            );
            let errors = ratio("checkout").await;
            expect(
                errors > Some(0.05),
                format!("checkout error ratio {errors:?} should breach 5%"),
            );
        }
        "lambda-alias" => {
            let alias = {
                let functions = c.sim.state.lambda.lock().unwrap();
                let f = &functions.by_name["payments-api"];
                (f.versions.len(), f.aliases["live"].clone())
            };
            expect(
                alias.0 == 2 && alias.1.version == "1" && alias.1.weights.get("2") == Some(&0.2),
                format!("the deploy published version 2 with 20% of the alias: {alias:?}"),
            );
            let errors = ratio("payments-api").await;
            expect(
                errors > Some(0.05) && errors < Some(0.3),
                format!(
                    "payments-api error ratio {errors:?} should breach 5%, diluted by version 1"
                ),
            );
        }
        "model-alias" => {
            let champion = {
                let functions = c.sim.state.lambda.lock().unwrap();
                functions.by_name["fraud-model"].aliases["champion"]
                    .version
                    .clone()
            };
            expect(
                champion == "2",
                format!("champion moved to version 2: {champion}"),
            );
            let errors = ratio("fraud-model").await;
            expect(
                errors > Some(0.05),
                format!("fraud-model error ratio {errors:?} should breach 5%"),
            );
        }
        "flag-kill" => {
            let on = c.sim.state.flags.lock().unwrap().by_name["new-coupon-engine"].on;
            expect(on, "the flag was turned on".into());
            let d = get(&c, "/apis/apps/v1/namespaces/shop/deployments/checkout").await;
            expect(
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    == "registry.local/shop/checkout:1.5.0",
                "1.5.0 shipped before the flag".into(),
            );
            let errors = ratio("checkout").await;
            expect(
                errors > Some(0.05),
                format!("checkout error ratio {errors:?} should breach 5% with the flag on"),
            );
        }
        "compose-rollback" => {
            let images: Vec<String> = {
                let engine = c.sim.state.compose.lock().unwrap();
                engine.containers.iter().map(|c| c.image.clone()).collect()
            };
            expect(
                images == ["registry.local/legacy/billing:7.3"; 2],
                format!("both containers were recreated on 7.3: {images:?}"),
            );
            let errors = ratio("billing").await;
            expect(
                errors > Some(0.05),
                format!("billing error ratio {errors:?} should breach 5%"),
            );
        }
        other => expect(false, format!("no check written for scenario {other}")),
    }
    c.sim.stop().await;
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_scenario_does_what_it_describes() {
    let names: Vec<&'static str> = backout_sim::scenario::SHIPPED
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(names.len(), 14);
    let results = futures::future::join_all(names.into_iter().map(check)).await;
    let problems: Vec<String> = results.into_iter().flatten().collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
