//! An MLflow model alias (`champion`) as a rollback target, against the simulator's
//! MLflow REST paths: the retrained version is decided on, moved back with the
//! record on the registered model and the version marked bad, verified; and after
//! the next version ships, the version rolled back from is never a target.

mod common;

use std::time::Duration;

use common::{config_of, eventually, shipped_at, start, status_of, Cluster};

/// (champion's version, the model's record tag, version 2's known-bad tag).
fn registry(c: &Cluster) -> (String, String, String) {
    let functions = c.sim.state.lambda.lock().unwrap();
    let m = &functions.by_name["fraud-model"];
    let tag = |t: &std::collections::BTreeMap<String, String>, k: &str| {
        t.get(k).cloned().unwrap_or_default()
    };
    let v2 = m.versions.iter().find(|v| v.number == 2);
    (
        m.aliases["champion"].version.clone(),
        tag(&m.tags, "backout.rollback"),
        v2.map(|v| tag(&v.tags, "backout.rolled_back_from"))
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrained_model_that_fails_is_moved_back_and_never_offered_again() {
    let c = start(shipped_at("model-alias", Duration::from_secs(2))).await;
    let decided = eventually(
        Duration::from_secs(60),
        "the model's decision",
        async || {
            let s = status_of(&c, "fraud-model", &["-A"]).await;
            (s["decision"]["action"] == "auto_rollback").then_some(s)
        },
    )
    .await;
    let d = &decided["decision"];
    assert_eq!(decided["kind"], "model_alias");
    assert_eq!(d["target"]["revision"], 1, "{d}");
    let blast = d["blast_radius"].to_string();
    assert!(
        blast.contains("a version holds the model") && blast.contains("feature pipeline"),
        "{blast}"
    );

    let config = config_of(&c);
    let (ok, said) = c
        .backout_said(
            &[
                "rollback",
                "fraud-model",
                "-n",
                "models",
                "--yes",
                "--config",
                &config,
            ],
            &[],
        )
        .await;
    assert!(ok, "{said}");
    assert!(
        said.contains("set_registered_model_alias(\"fraud-model\", \"champion\", \"1\")"),
        "{said}"
    );
    assert!(said.contains("verified"), "{said}");
    let (champion, record, bad) = registry(&c);
    assert_eq!(champion, "1");
    let record: serde_json::Value = serde_json::from_str(&record).expect("the record tag");
    assert_eq!(
        (
            record["from_replicaset"].as_str(),
            record["to_replicaset"].as_str()
        ),
        (Some("2"), Some("1"))
    );
    assert!(!bad.is_empty(), "version 2 is marked bad");

    // The pipeline ships version 3 (healthy): 2 stays known bad, so the target is 1.
    {
        let mut functions = c.sim.state.lambda.lock().unwrap();
        let m = functions.by_name.get_mut("fraud-model").unwrap();
        m.deploy(
            "s3://models/fraud-model/2026-12-06",
            "fraud-model retrained 2026-12-06",
        );
    }
    let after = eventually(Duration::from_secs(30), "version 3 read", async || {
        let s = status_of(&c, "fraud-model", &["-A"]).await;
        (s["decision"]["current_revision"] == 3).then_some(s)
    })
    .await;
    assert_eq!(
        after["decision"]["target"]["revision"], 1,
        "never 2: {after}"
    );
}
