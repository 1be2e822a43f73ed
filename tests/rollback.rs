//! Rollbacks against the simulator, judged by the real kubectl: the same result as
//! `kubectl rollout undo`, clean failure on a concurrent change, one winner when two
//! consoles race, and refusals as kubectl words them.

mod common;

use std::time::Duration;

use backout::actions::{lease, rollback};
use common::{have, small_scenario, start, Cluster};

async fn with_history() -> Option<Cluster> {
    if !have("kubectl") {
        return None;
    }
    let c = start(small_scenario("")).await;
    for image in ["web=web:2", "web=web:3"] {
        c.kubectl_ok(&["set", "image", "deploy/web", image]).await;
        c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=30s"])
            .await;
    }
    Some(c)
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

fn request(deployment: &str, to: Option<u64>, actor: &str) -> rollback::Request {
    rollback::Request {
        namespace: "shop".into(),
        deployment: deployment.into(),
        to_revision: to,
        reason: "test".into(),
        actor: actor.into(),
        incident: None,
    }
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
async fn a_change_between_dry_run_and_apply_fails_cleanly() {
    let Some(c) = with_history().await else {
        return;
    };
    let client = client(&c, None).await;
    let plan = rollback::prepare(&client, &request("web", Some(1), "alice@a"))
        .await
        .unwrap();
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:9"])
        .await;
    let err = rollback::commit(&client, &plan, "alice@a")
        .await
        .unwrap_err();
    assert_eq!(err, rollback::RollbackError::Conflict("web".into()));
    assert!(err
        .to_string()
        .contains("changed since the rollback was prepared"));
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consoles_racing_make_exactly_one_rollback() {
    let Some(c) = with_history().await else {
        return;
    };
    let (alice, bob) = (client(&c, None).await, client(&c, None).await);
    let plan_a = rollback::prepare(&alice, &request("web", Some(1), "alice@a"))
        .await
        .unwrap();
    let plan_b = rollback::prepare(&bob, &request("web", Some(1), "bob@b"))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        rollback::commit(&alice, &plan_a, "alice@a"),
        rollback::commit(&bob, &plan_b, "bob@b")
    );
    let done = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Ok(rollback::Done::RolledBack { .. })))
        .count();
    assert_eq!(done, 1, "alice: {a:?}, bob: {b:?}");
    let loser = if a.is_ok() { b } else { a };
    assert!(
        matches!(
            loser,
            Err(rollback::RollbackError::Held { .. } | rollback::RollbackError::Conflict(_))
        ),
        "{loser:?}"
    );
    let history = revisions(&c).await;
    assert_eq!(
        history
            .split_whitespace()
            .filter(|r| r.starts_with("4:"))
            .count(),
        1,
        "one new revision: {history}"
    );
    assert!(
        !history.split_whitespace().any(|r| r.starts_with("5:")),
        "no second rollback: {history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_names_its_holder() {
    let Some(c) = with_history().await else {
        return;
    };
    let client = client(&c, None).await;
    assert_eq!(
        lease::claim(&client, "shop", "web", "alice@a", Duration::from_secs(60))
            .await
            .unwrap(),
        lease::Claim::Acquired
    );
    let plan = rollback::prepare(&client, &request("web", Some(1), "bob@b"))
        .await
        .unwrap();
    let err = rollback::commit(&client, &plan, "bob@b").await.unwrap_err();
    assert!(
        matches!(&err, rollback::RollbackError::Held { holder, since: Some(_), .. } if holder == "alice@a"),
        "{err:?}"
    );
    assert!(err.to_string().contains("held by alice@a since"), "{err}");
    assert_eq!(c.image("web").await, "web:3");
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
