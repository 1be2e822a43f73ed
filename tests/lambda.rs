//! A Lambda weighted alias as a rollback target, against the simulator's Lambda API
//! (the same SDK calls as against AWS): the failing canary version is decided on,
//! shifted back by the watcher on clean signals and verified; the version rolled back
//! from stays known bad after the next deploy rewrites the alias; and a shift pinned
//! to an alias that moved is refused by its RevisionId.

mod common;

use std::time::Duration;

use backout_sim::scenario::Scenario;
use common::{eventually, start, Cluster};
use serde_json::Value;

/// The shipped lambda-alias scenario, its bad version shipped 2 s in.
fn lambda_alias() -> Scenario {
    common::shipped_at("lambda-alias", Duration::from_secs(2))
}

fn config(c: &Cluster) -> String {
    common::config_of(c)
}

async fn payments(c: &Cluster) -> Value {
    common::status_of(c, "payments-api", &["-A"]).await
}

/// (version, weights, description) of the alias, and the function's tags.
fn alias(c: &Cluster) -> (String, usize, String, String) {
    let functions = c.sim.state.lambda.lock().unwrap();
    let f = &functions.by_name["payments-api"];
    let a = &f.aliases["live"];
    let bad = f
        .tags
        .get("backout:rolled-back-from")
        .cloned()
        .unwrap_or_default();
    (
        a.version.clone(),
        a.weights.len(),
        a.description.clone(),
        bad,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_alias_canary_is_shifted_back_on_clean_signals_and_stays_known_bad() {
    let c = start(lambda_alias()).await;
    let decided = eventually(
        Duration::from_secs(60),
        "the alias's decision",
        async || {
            let s = payments(&c).await;
            (s["decision"]["action"] == "auto_rollback").then_some(s)
        },
    )
    .await;
    let d = &decided["decision"];
    assert_eq!(decided["kind"], "lambda_alias");
    assert_eq!(decided["service"]["namespace"], "lambda");
    assert_eq!(d["current_revision"], 2, "{d}");
    assert_eq!(d["target"]["revision"], 1, "stable is the target: {d}");
    let gates = d["gates"].to_string();
    assert!(gates.contains("revision 2's canary began"), "{gates}");
    assert!(gates.contains("the deploy is a new version"), "{gates}");
    let blast = d["blast_radius"].to_string();
    assert!(
        blast.contains("(the canary's 20% and the rest) to version 1"),
        "{blast}"
    );
    assert!(blast.contains("event source mappings"), "{blast}");

    // The watcher rolls back on clean signals, through the same engine.
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_backout"))
        .args(["watch", "--auto-rollback", "--config", &config(&c)])
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .env("BACKOUT_JOURNAL", c.journal_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("backout watch starts");
    eventually(Duration::from_secs(60), "the shift back", async || {
        let (version, weights, _, _) = alias(&c);
        (version == "1" && weights == 0).then_some(())
    })
    .await;
    let (_, _, description, bad) = alias(&c);
    let record: Value = serde_json::from_str(&description).expect("backout's record");
    assert_eq!(record["from_replicaset"], "2");
    assert_eq!(record["automatic"], true, "{record}");
    assert!(bad.starts_with("2@"), "version 2 is marked bad: {bad:?}");
    let verified = eventually(Duration::from_secs(60), "verification", async || {
        let journal = c.journal();
        journal.contains("\"verified\"").then_some(journal)
    })
    .await;
    assert!(
        verified.contains("lambda/payments-api"),
        "the journal names the alias: {verified}"
    );
    let _ = watch.kill().await;

    // The next deploy promotes a new build to every request and rewrites the alias's
    // description: version 2 stays known bad, so the target skips it.
    {
        let mut functions = c.sim.state.lambda.lock().unwrap();
        let f = functions.by_name.get_mut("payments-api").unwrap();
        f.canary_weight = None;
        f.deploy("registry.local/lambda/payments-api:43", "payments-api 43");
    }
    let after = eventually(Duration::from_secs(30), "version 3 read", async || {
        let s = payments(&c).await;
        (s["decision"]["current_revision"] == 3).then_some(s)
    })
    .await;
    assert_eq!(
        after["decision"]["target"]["revision"], 1,
        "never version 2: {after}"
    );
    let out = c
        .backout(
            &[
                "rollback",
                "payments-api",
                "-n",
                "lambda",
                "--to-revision",
                "2",
                "--dry-run",
                "--config",
                &config(&c),
            ],
            &[],
        )
        .await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("rolled back from"),
        "named as known bad: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_pinned_to_a_moved_alias_is_refused_and_changes_nothing() {
    use backout::targets::lambda::aws;
    use backout::targets::TargetError;
    let c = start(lambda_alias()).await;
    eventually(Duration::from_secs(20), "the canary", async || {
        (alias(&c).1 == 1).then_some(())
    })
    .await;
    let config = backout::config::Config::load(Some(&c.dir().join("backout.toml"))).unwrap();
    let cfg = &config.lambda[0];
    let client = aws::client(cfg).await.unwrap();
    let read = aws::read(&client, cfg).await.unwrap();
    assert_eq!(read.canary(), Some(("2", 20)));
    // Someone shifts the alias between backout's read and its write.
    {
        let mut functions = c.sim.state.lambda.lock().unwrap();
        let f = functions.by_name.get_mut("payments-api").unwrap();
        f.deploy("registry.local/lambda/payments-api:43", "payments-api 43");
    }
    let refused = aws::shift(&client, cfg, "1", "{}", &read.revision_id).await;
    assert!(
        matches!(&refused, Err(TargetError::Conflict(m)) if m.contains("payments-api:live")),
        "{refused:?}"
    );
    let (version, weights, description, _) = alias(&c);
    assert_eq!((version.as_str(), weights), ("1", 1), "nothing changed");
    assert_eq!(description, "payments-api 43");
    let missing = aws::shift(&client, cfg, "9", "{}", &read.revision_id).await;
    assert!(
        matches!(&missing, Err(TargetError::NotFound(m)) if m.contains("not found")),
        "{missing:?}"
    );
}
