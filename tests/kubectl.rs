//! The real kubectl is the judge of the simulator's fidelity: every test here runs
//! it against a simulator of its own and checks what it prints and what it changes.

mod common;

use std::time::Duration;

use common::{eventually, have, small_scenario, start, Cluster};

async fn web() -> Option<Cluster> {
    if !have("kubectl") {
        return None;
    }
    let c = start(small_scenario("")).await;
    c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=30s"])
        .await;
    Some(c)
}

async fn rolled_out(c: &Cluster) {
    let out = c
        .kubectl(&["rollout", "status", "deploy/web", "--timeout=30s"])
        .await;
    assert!(
        out.status.success(),
        "rollout status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("successfully rolled out"));
}

/// The REVISION column of `kubectl rollout history`.
async fn revisions(c: &Cluster) -> Vec<u64> {
    let out = c.kubectl_ok(&["rollout", "history", "deploy/web"]).await;
    out.lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_set_image_and_rollout_status() {
    let Some(c) = web().await else { return };
    let list = c.kubectl_ok(&["get", "deploy"]).await;
    assert!(list.lines().any(|l| l.starts_with("web ")), "{list}");
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:2"])
        .await;
    rolled_out(&c).await;
    let images = c
        .jsonpath("pods", "{.items[*].spec.containers[0].image}")
        .await;
    assert_eq!(images.split_whitespace().collect::<Vec<_>>(), ["web:2"; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_fails_when_a_crashing_image_passes_the_progress_deadline() {
    let Some(c) = web().await else { return };
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:crash"])
        .await;
    let out = c
        .kubectl(&["rollout", "status", "deploy/web", "--timeout=30s"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    let ready = c
        .jsonpath("deploy/web", "{.status.availableReplicas}")
        .await;
    assert_eq!(
        ready, "3",
        "the old pods keep serving while the new ones crash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_undo_renumber_revisions_as_the_real_controller_does() {
    let Some(c) = web().await else { return };
    for image in ["web=web:2", "web=web:3"] {
        c.kubectl_ok(&["set", "image", "deploy/web", image]).await;
        rolled_out(&c).await;
    }
    assert_eq!(revisions(&c).await, [1, 2, 3]);

    let out = c
        .kubectl_ok(&["rollout", "undo", "deploy/web", "--to-revision=2"])
        .await;
    assert!(out.contains("rolled back"), "{out}");
    rolled_out(&c).await;
    assert_eq!(revisions(&c).await, [1, 3, 4]);
    assert_eq!(c.image("web").await, "web:2");
    let history = c.jsonpath("rs", r#"{range .items[*]}{.metadata.annotations.deployment\.kubernetes\.io/revision}={.metadata.annotations.deployment\.kubernetes\.io/revision-history}{" "}{end}"#).await;
    assert!(
        history.split_whitespace().any(|x| x == "4=2"),
        "revision 4 remembers it was 2: {history}"
    );

    c.kubectl_ok(&["rollout", "undo", "deploy/web"]).await;
    rolled_out(&c).await;
    assert_eq!(revisions(&c).await, [1, 4, 5]);
    assert_eq!(c.image("web").await, "web:3");

    let err = c
        .kubectl(&["rollout", "undo", "deploy/web", "--to-revision=9"])
        .await;
    assert!(String::from_utf8_lossy(&err.stderr)
        .contains("unable to find specified revision 9 in history"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_dry_run_undo_persists_nothing() {
    let Some(c) = web().await else { return };
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:2"])
        .await;
    rolled_out(&c).await;
    let before = c
        .jsonpath(
            "deploy/web",
            "{.metadata.resourceVersion} {.spec.template.spec.containers[0].image}",
        )
        .await;
    let out = c
        .kubectl_ok(&["rollout", "undo", "deploy/web", "--dry-run=server"])
        .await;
    assert!(out.contains("(server dry run)"), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = c
        .jsonpath(
            "deploy/web",
            "{.metadata.resourceVersion} {.spec.template.spec.containers[0].image}",
        )
        .await;
    assert_eq!(before, after);
    assert_eq!(revisions(&c).await, [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_is_refused_on_a_paused_deployment() {
    let Some(c) = web().await else { return };
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:2"])
        .await;
    rolled_out(&c).await;
    c.kubectl_ok(&["rollout", "pause", "deploy/web"]).await;
    let out = c.kubectl(&["rollout", "undo", "deploy/web"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("you cannot rollback a paused deployment")
    );
    assert_eq!(c.image("web").await, "web:2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_goes_through_the_scale_subresource() {
    let Some(c) = web().await else { return };
    let out = c.kubectl_ok(&["scale", "deploy/web", "--replicas=5"]).await;
    assert!(out.contains("scaled"), "{out}");
    eventually(
        Duration::from_secs(20),
        "5 available replicas",
        async || {
            (c.jsonpath("deploy/web", "{.status.availableReplicas}")
                .await
                == "5")
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        c.jsonpath("pods", "{.items[*].metadata.name}")
            .await
            .split_whitespace()
            .count(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_token_may_look_but_not_change() {
    let Some(c) = web().await else { return };
    let viewer = ["--context", "backout-sim-viewer"];
    let list = c.kubectl(&[&viewer[..], &["get", "deploy"]].concat()).await;
    assert!(list.status.success());
    let out = c
        .kubectl(&[&viewer[..], &["scale", "deploy/web", "--replicas=1"]].concat())
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Forbidden") && err.contains("cannot patch resource \"deployments/scale\""),
        "{err}"
    );
    assert_eq!(
        c.kubectl_ok(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}"
        ])
        .await,
        "oncall-editor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_kubectl_prints_sensibly() {
    let Some(c) = web().await else { return };
    let cases: [(&[&str], &str); 4] = [
        (
            &["get", "widgets"],
            "the server doesn't have a resource type \"widgets\"",
        ),
        (
            &["get", "deploy", "-l", "app in web"],
            "unable to parse requirement",
        ),
        (
            &[
                "patch",
                "deploy/web",
                "--type=json",
                "-p",
                r#"[{"op":"frobnicate","path":"/spec"}]"#,
            ],
            "Error from server (BadRequest)",
        ),
        (
            &[
                "patch",
                "deploy/web",
                "--type=merge",
                "-p",
                r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":2}}"#,
            ],
            "Error from server (Conflict)",
        ),
    ];
    for (args, want) in cases {
        let out = c.kubectl(args).await;
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
    }
    assert_eq!(
        c.jsonpath("deploy/web", "{.spec.replicas}").await,
        "3",
        "nothing was changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_patches_with_the_same_resource_version_one_wins_one_conflicts() {
    let c = start(small_scenario("")).await;
    let http = c.http();
    let url = format!(
        "{}/apis/apps/v1/namespaces/shop/deployments/web",
        c.sim.url()
    );
    let auth = format!("Bearer {}", backout_sim::api::auth::EDITOR_TOKEN);
    let current: serde_json::Value = http
        .get(&url)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rv = current["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = |replicas: i64| {
        http.patch(&url)
            .header("authorization", &auth)
            .header("content-type", "application/merge-patch+json")
            .body(serde_json::json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": replicas}}).to_string())
            .send()
    };
    let (a, b) = tokio::join!(patch(4), patch(5));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut codes = [a.status().as_u16(), b.status().as_u16()];
    codes.sort();
    assert_eq!(codes, [200, 409]);
    let loser = if a.status().as_u16() == 409 { a } else { b };
    let status: serde_json::Value = loser.json().await.unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Conflict"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_reads_what_the_images_print_and_a_crashed_run_with_previous() {
    let Some(c) = web().await else { return };
    let pod = c.jsonpath("pods", "{.items[0].metadata.name}").await;
    // A line a second since the pod started: two, once it has run two seconds.
    let tail = eventually(Duration::from_secs(10), "two lines", async || {
        let tail = c.kubectl_ok(&["logs", &pod, "--tail=2"]).await;
        (tail.lines().count() == 2).then_some(tail)
    })
    .await;
    assert!(tail.lines().all(|l| l.contains("path=/")), "{tail}");
    let never_restarted = c.kubectl(&["logs", &pod, "--previous"]).await;
    assert!(!never_restarted.status.success());
    let err = String::from_utf8_lossy(&never_restarted.stderr);
    assert!(err.contains("previous terminated container"), "{err}");
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:crash"])
        .await;
    let crashed = eventually(Duration::from_secs(30), "a pod restarts", async || {
        let lines = c
            .jsonpath(
                "pods",
                "{range .items[*]}{.metadata.name} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}",
            )
            .await;
        lines
            .lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(_, n)| n.parse::<u32>().is_ok_and(|n| n >= 1))
            .map(|(name, _)| name.to_string())
    })
    .await;
    let previous = c.kubectl_ok(&["logs", &crashed, "--previous"]).await;
    assert!(previous.contains("panicked at"), "{previous}");
    assert!(previous.contains("version=web:crash"), "{previous}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_prints_the_usual_columns_from_the_servers_table() {
    let Some(c) = web().await else { return };
    let pods = c.kubectl_ok(&["get", "pods"]).await;
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{pods}"
    );
    let rows: Vec<Vec<&str>> = pods
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{pods}");
    assert!(
        rows.iter().all(|r| r[1] == "1/1" && r[2] == "Running"),
        "{pods}"
    );
    let deploy = c.kubectl_ok(&["get", "deploy", "web", "-o", "wide"]).await;
    let header: Vec<&str> = deploy.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{deploy}"
    );
    let row: Vec<&str> = deploy.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[6]),
        ("web", "3/3", "web:1"),
        "{deploy}"
    );
    // A page of a table carries the list's continue token: kubectl reads on.
    let paged = c
        .kubectl_ok(&["get", "pods", "--chunk-size=1", "--no-headers"])
        .await;
    assert_eq!(paged.lines().count(), 3, "{paged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_validates_against_the_simulator_and_an_unknown_field_is_refused() {
    let Some(c) = web().await else { return };
    let manifest = |replicas_key: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: typo, namespace: shop}}\nspec:\n  {replicas_key}: 1\n  selector: {{matchLabels: {{app: typo}}}}\n  template:\n    metadata: {{labels: {{app: typo}}}}\n    spec: {{containers: [{{name: t, image: \"t:1\"}}]}}\n"
        )
    };
    let file = c.dir().join("typo.yaml");
    std::fs::write(&file, manifest("replicass")).unwrap();
    let refused = c.kubectl(&["create", "-f", file.to_str().unwrap()]).await;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("strict decoding error: unknown field \"spec.replicass\""),
        "{err}"
    );
    std::fs::write(&file, manifest("replicas")).unwrap();
    let created = c
        .kubectl_ok(&["create", "-f", file.to_str().unwrap()])
        .await;
    assert!(
        created.contains("deployment.apps/typo created"),
        "{created}"
    );
}

/// The Kubernetes API keeps answering while the metrics store is held (as a sample
/// holds it, about 200 ms a second at 20,000 pods) and queries wait on it: a handler
/// waiting on that lock on an async worker, or the control loop holding the store's
/// lock while it waited, stalled every list behind it (700 ms in a cold start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_while_the_metrics_store_is_held() {
    let Some(c) = web().await else { return };
    let state = c.sim.state.clone();
    let (held_tx, held) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _metrics = state.telemetry.lock().expect("telemetry lock");
        held_tx.send(()).expect("the test waits");
        // Given back when the test has its answer, or a minute on if it never comes.
        let _ = released.recv_timeout(Duration::from_secs(60));
    });
    held.recv().expect("the lock is taken");
    // More requests waiting on the metrics lock than the server has workers, one of each kind.
    let http = c.http();
    let base = c.sim.url();
    let waiting: Vec<_> = [
        "/api/v1/query_range",
        "/api/v1/query_range",
        "/api/v1/query",
        "/metrics",
    ]
    .into_iter()
    .map(|path| {
        let request = http.post(format!("{base}{path}")).form(&[
            ("query", "service:http_errors:ratio_rate1m"),
            ("start", "1"),
            ("end", "2"),
            ("step", "1s"),
        ]);
        let request = if path == "/metrics" {
            http.get(format!("{base}{path}"))
        } else {
            request
        };
        tokio::spawn(request.send())
    })
    .collect();
    // Long enough for the control loop to reach its next sample, too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listed = c
        .kubectl(&["get", "pods", "-o", "name", "--request-timeout=20s"])
        .await;
    // The holder has let go by itself if the API hung past its minute.
    let _ = release.send(());
    holder.join().expect("the holder ends");
    assert!(
        listed.status.success(),
        "kubectl get pods while the metrics were held: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let pods = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(
        pods.lines().filter(|l| l.starts_with("pod/web-")).count(),
        3,
        "{pods}"
    );
    for answer in waiting {
        let answer = answer
            .await
            .expect("the request task ends")
            .expect("an answer");
        assert!(answer.status().is_success(), "{}", answer.status());
    }
}
