//! Verification after a rollback, three ways it ends: verified, rollback did not
//! help, rollout stuck. Each outcome is printed and journaled.

mod common;

use std::time::Duration;

use common::{eventually, have, instant, small_scenario, start, Cluster};

/// The simulator's written config, with the verification windows this test needs.
fn config(c: &Cluster, window: &str, deadline: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap();
    let text = text.replace(
        "[policy]\n",
        &format!(
            "[policy]\nverification_window = \"{window}\"\nrollout_deadline = \"{deadline}\"\n"
        ),
    );
    let path = c.dir().join("verify.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn rollback(
    c: &Cluster,
    config: &std::path::Path,
    args: &[&str],
) -> (std::process::Output, String) {
    let args = [
        &["rollback"][..],
        args,
        &["--yes", "--config", config.to_str().unwrap()],
    ]
    .concat();
    let out = c.backout(&args, &[]).await;
    (out, c.journal())
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_a_bad_deploy_is_verified_once_errors_recover() {
    if !have("kubectl") {
        return;
    }
    let c = start(common::bad_deploy_at(3)).await;
    let ratio = r#"service:http_errors:ratio_rate1m{service="checkout"}"#;
    eventually(Duration::from_secs(40), "checkout to breach", async || {
        instant(&c.http(), &c.sim.url(), ratio, now())
            .await
            .filter(|v| *v > 0.05)
    })
    .await;
    let cfg = config(&c, "100s", "30s");
    let (out, journal) = rollback(
        &c,
        &cfg,
        &["checkout", "--reason", "error rate", "--incident", "inc-7"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("✓ rollout completes")
            && stdout.contains("✓ error-rate recovers")
            && stdout.contains("✓ every pod ready"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("verified"), "{stdout}");
    assert!(
        journal.contains("\"kind\":\"rollback\"")
            && journal.contains("\"outcome\":\"verified\"")
            && journal.contains("\"incident\":\"inc-7\""),
        "{journal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_that_leaves_the_errors_is_reported_as_not_helping() {
    if !have("kubectl") {
        return;
    }
    // The errors come from a dependency, not from any image of web.
    let c = start(small_scenario(
        "[[event]]\nat = \"0s\"\nfault = { service = \"web\", error_ratio = 0.3 }\n",
    ))
    .await;
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:2"])
        .await;
    c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=30s"])
        .await;
    let ratio = r#"service:http_errors:ratio_rate1m{service="web"}"#;
    eventually(Duration::from_secs(30), "web to breach", async || {
        instant(&c.http(), &c.sim.url(), ratio, now())
            .await
            .filter(|v| *v > 0.05)
    })
    .await;
    let cfg = config(&c, "8s", "30s");
    let (out, journal) = rollback(&c, &cfg, &["web"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("✗ error-rate recovers")
            && stdout.trim_end().ends_with("rollback did not help"),
        "{stdout}"
    );
    assert!(
        journal.contains("\"outcome\":\"rollback did not help\""),
        "{journal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_to_a_crashing_revision_is_reported_as_stuck() {
    if !have("kubectl") {
        return;
    }
    let c = start(small_scenario("")).await;
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:crash"])
        .await;
    // The controller may fold two quick template changes into one revision, as the
    // real one may: revision 2 must be the crashing template before 3 ships.
    common::wait_for("revision 2", Duration::from_secs(20), async || {
        c.revision("web").await == "2"
    })
    .await;
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:3"])
        .await;
    c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=30s"])
        .await;
    let cfg = config(&c, "5s", "20s");
    let (out, journal) = rollback(&c, &cfg, &["web", "--to-revision", "2"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("✗ rollout completes") && stdout.contains("exceeded its progress deadline"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("rollout stuck"), "{stdout}");
    assert!(
        journal.contains("\"outcome\":\"rollout stuck\""),
        "{journal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_url_that_does_not_answer_fails_the_check_and_says_why_without_its_token() {
    if !have("kubectl") {
        return;
    }
    let c = start(small_scenario("")).await;
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:2"])
        .await;
    c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=30s"])
        .await;
    let cfg = config(&c, "8s", "30s");
    // Port 9 (discard) on loopback: nothing listens, so the connection is refused.
    let text = std::fs::read_to_string(&cfg).unwrap()
        + "\n[[health_check]]\ndeployment = \"web\"\nurl = \"http://127.0.0.1:9/healthz?token=s3cret\"\n";
    std::fs::write(&cfg, text).unwrap();
    let (out, journal) = rollback(&c, &cfg, &["web"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a failed health check is not verified: {stdout}"
    );
    assert!(
        stdout.contains("✗ health URL")
            && stdout.contains("answered nothing (")
            && stdout.contains("token=***"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("s3cret") && !journal.contains("s3cret"),
        "{stdout}{journal}"
    );
}
