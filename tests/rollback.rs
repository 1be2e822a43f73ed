//! Rollbacks against the simulator, judged by the real kubectl: the same result as
//! `kubectl rollout undo`, clean failure on a concurrent change, one winner when two
//! consoles race, and refusals as kubectl words them.

mod common;

use std::time::Duration;

use backout::actions::lease;
use backout::engine::ServiceKey;
use common::{confirm, console_core, previewed, rollback_ended, web_with_history, Cluster};
use tokio::io::AsyncBufReadExt;

async fn with_history() -> Option<Cluster> {
    web_with_history(&["web:2", "web:3"]).await
}

async fn backout(c: &Cluster, args: &[&str]) -> std::process::Output {
    c.backout(args, &[]).await
}

async fn client(c: &Cluster, context: Option<&str>) -> kube::Client {
    let opts = kube::config::KubeConfigOptions {
        context: context.map(String::from),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap(),
        &opts,
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn web() -> ServiceKey {
    ServiceKey::new("shop", "web")
}

/// Five `backout rollback` processes at once, as five engineers on one incident.
async fn racing(c: &Cluster, n: usize) -> Vec<std::process::Output> {
    let runs = (0..n).map(|_| backout(c, &["rollback", "web", "--yes"]));
    futures::future::join_all(runs).await
}

async fn revisions(c: &Cluster) -> String {
    c.jsonpath("rs", r#"{range .items[*]}{.metadata.annotations.deployment\.kubernetes\.io/revision}:{.spec.template.spec.containers[0].image}:{.metadata.annotations.deployment\.kubernetes\.io/revision-history}{" "}{end}"#).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backout_rollback_matches_kubectl_rollout_undo() {
    let (Some(by_kubectl), Some(by_backout)) = (with_history().await, with_history().await) else {
        return;
    };
    by_kubectl
        .kubectl_ok(&["rollout", "undo", "deploy/web", "--to-revision=1"])
        .await;
    let out = backout(
        &by_backout,
        &["rollback", "web", "--to-revision", "1", "--yes"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for c in [&by_kubectl, &by_backout] {
        c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=30s"])
            .await;
    }
    // Compared as the controller compares templates: kubectl sends the Go zero value
    // `"creationTimestamp": null`, which means the same as leaving it out.
    let template = async |c: &Cluster| -> serde_json::Value {
        serde_json::from_str(&c.jsonpath("deploy/web", "{.spec.template}").await).unwrap()
    };
    let (a, b) = (template(&by_kubectl).await, template(&by_backout).await);
    assert!(
        backout::k8s::template::equal(&a, &b),
        "kubectl: {a}\nbackout: {b}"
    );
    assert_eq!(b["spec"]["containers"][0]["image"], "web:1");
    let (a, b) = (revisions(&by_kubectl).await, revisions(&by_backout).await);
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.split_whitespace().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&a), sorted(&b));
    assert!(
        sorted(&b).contains(&"4:web:1:1".to_string()),
        "revision 4 is the old revision 1: {b}"
    );
    let cause = by_backout
        .jsonpath(
            "deploy/web",
            r#"{.metadata.annotations.kubernetes\.io/change-cause}"#,
        )
        .await;
    assert!(
        cause.starts_with("backout: rolled back to revision 1 by oncall-editor@"),
        "{cause}"
    );
    let events = by_backout
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=BackoutRollback",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .await;
    assert!(
        events.contains("rolled back deployment web from revision 3 (web:3) to revision 1 (web:1)"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_between_preview_and_confirm_is_a_conflict_not_a_rollback_of_the_new_image() {
    let Some(c) = with_history().await else {
        return;
    };
    let mut core = console_core(&c, false).await;
    let preview = previewed(&mut core, &web(), 1).await.unwrap();
    // Someone ships web:9 while the engineer reads the dialog.
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:9"])
        .await;
    confirm(
        &mut core,
        &web(),
        &preview,
        Some(1),
        "confirmed in the dialog",
    )
    .await;
    let result = rollback_ended(&mut core, &web(), Duration::from_secs(20)).await;
    let error = result.unwrap_err();
    assert!(
        error.contains("changed since the rollback was previewed"),
        "{error}"
    );
    core.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        c.image("web").await,
        "web:9",
        "kubectl's change stands whole"
    );
    let cause = c
        .jsonpath(
            "deploy/web",
            r#"{.metadata.annotations.kubernetes\.io/change-cause}"#,
        )
        .await;
    assert!(
        !cause.contains("backout"),
        "nothing of the rollback landed: {cause}"
    );
    let holder = c
        .jsonpath(
            &format!("lease/{}", lease::lease_name("web")),
            "{.spec.holderIdentity}",
        )
        .await;
    assert_eq!(holder, "", "the lease was released: nobody holds it");
    assert!(c.journal().contains("rollback_failed"), "{}", c.journal());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_engineers_racing_make_exactly_one_rollback() {
    let Some(c) = with_history().await else {
        return;
    };
    let outs = racing(&c, 5).await;
    for out in &outs {
        assert!(
            out.status.success(),
            "each one ends verified or already there: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let history = revisions(&c).await;
    let newest: Vec<&str> = history
        .split_whitespace()
        .filter(|r| r.starts_with("4:"))
        .collect();
    assert_eq!(newest, ["4:web:2:2"], "one rollback, to web:2: {history}");
    assert!(
        !history.split_whitespace().any(|r| r.starts_with("5:")),
        "no second rollback: {history}"
    );
    let followed = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .filter(|o| o.contains("following that rollback") || o.contains("skipped rollback"))
        .count();
    assert_eq!(
        followed, 4,
        "the others follow the winner, or find its template running: {outs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_waiting_on_a_held_lease_names_its_holder() {
    let Some(c) = with_history().await else {
        return;
    };
    let client = client(&c, None).await;
    assert_eq!(
        lease::claim(
            &client,
            "shop",
            "web",
            "alice@a#1-x",
            Duration::from_secs(60)
        )
        .await
        .unwrap(),
        lease::Claim::Acquired
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_backout"))
        .args([
            "rollback",
            "web",
            "--to-revision",
            "1",
            "--yes",
            "--kubeconfig",
        ])
        .arg(c.kubeconfig())
        .env("BACKOUT_JOURNAL", c.journal_path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let said = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("alice@a") {
                return line;
            }
        }
        String::new()
    })
    .await
    .expect("the holder is named within 30 s");
    assert!(
        said.contains("waiting for alice@a#1-x's rollback"),
        "{said}"
    );
    child.kill().await.unwrap();
    assert_eq!(c.image("web").await, "web:3", "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_is_taken_over_once_it_lapses_and_the_wait_is_said() {
    let Some(c) = with_history().await else {
        return;
    };
    // A holder killed right after taking the Lease: it never patches, never renews.
    let client = client(&c, None).await;
    let ghost = "ghost@bastion#4242-dead";
    let taken = lease::claim(&client, "shop", "web", ghost, Duration::from_secs(4))
        .await
        .unwrap();
    assert_eq!(taken, lease::Claim::Acquired);
    let out = backout(&c, &["rollback", "web", "--to-revision", "1", "--yes"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("waiting for {ghost}'s rollback"))
            && stdout.contains("its lease lapses at"),
        "the wait is said, with when it ends: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{ghost}'s lease lapsed with no rollback in the cluster: taking it over"
        )),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("error:"),
        "taken over, not failed: {stderr}"
    );
    assert_eq!(c.image("web").await, "web:1", "rolled back once taken over");
    let history = revisions(&c).await;
    assert!(
        !history.split_whitespace().any(|r| r.starts_with("5:")),
        "exactly one rollback: {history}"
    );
}

#[test]
fn a_lease_is_re_entrant_only_for_the_same_process() {
    let me = lease::holder("alice@bastion");
    assert!(me.starts_with("alice@bastion#"), "{me}");
    assert_eq!(
        me,
        lease::holder("alice@bastion"),
        "one identity per process"
    );
    assert!(me.contains(&std::process::id().to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_who_may_not_list_secrets_or_leases_still_gets_the_whole_picture() {
    let Some(c) = with_history().await else {
        return;
    };
    let config = c.dir().join("backout.toml");
    let out = backout(
        &c,
        &[
            "status",
            "--context",
            "backout-sim-viewer",
            "--config",
            config.to_str().unwrap(),
            "--wait",
            "30s",
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // As Kubernetes' own `view` role: no Secrets, no Leases; backout lists the rest.
    assert!(
        stdout.contains("kubernetes connected") && !stdout.contains("incomplete"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("shop/web"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_is_refused_up_front_with_the_missing_permission() {
    let Some(c) = with_history().await else {
        return;
    };
    let before = c
        .jsonpath("deploy/web", "{.metadata.resourceVersion}")
        .await;
    let out = backout(
        &c,
        &[
            "rollback",
            "web",
            "--yes",
            "--context",
            "backout-sim-viewer",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("may not patch deployments.apps in namespace \"shop\"")
            && err.contains("`patch` verb"),
        "{err}"
    );
    assert_eq!(
        c.jsonpath("deploy/web", "{.metadata.resourceVersion}")
            .await,
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_repeats_are_worded_as_kubectl_words_them() {
    let Some(c) = with_history().await else {
        return;
    };
    let out = backout(&c, &["rollback", "web", "--to-revision", "9", "--yes"]).await;
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("unable to find specified revision 9 in history"));
    let out = backout(&c, &["rollback", "web", "--to-revision", "3", "--yes"]).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(
        "skipped rollback (current template already matches revision 3); nothing changed"
    ));
    c.kubectl_ok(&["rollout", "pause", "deploy/web"]).await;
    let out = backout(&c, &["rollback", "web", "--yes"]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("you cannot rollback a paused deployment")
    );
    assert_eq!(c.image("web").await, "web:3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_in_the_middle_of_a_rollout_works() {
    let Some(c) = with_history().await else {
        return;
    };
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:crash"])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = c
        .jsonpath("deploy/web", "{.status.updatedReplicas}/{.spec.replicas}")
        .await;
    assert_ne!(status, "3/3", "the rollout is under way");
    let out = backout(&c, &["rollback", "web", "--yes", "--reason", "crash loop"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=30s"])
        .await;
    assert_eq!(c.image("web").await, "web:3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_revisions_and_a_revisions_diff() {
    let Some(c) = with_history().await else {
        return;
    };
    let out = backout(&c, &["history", "web"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[2].starts_with("3*") && rows[2].contains("web:3"),
        "{table}"
    );
    let out = backout(&c, &["history", "web", "--revision", "1"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("web image: web:3 → web:1"));
}
