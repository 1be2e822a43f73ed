//! A Docker Compose service as a rollback target, against the simulator's Docker
//! Engine API (the same paths Docker and podman serve): the bad image is decided on
//! (suggested, never automatic: the engine cannot show what else the compose file
//! changed), rolled back by the CLI, verified on the new containers, and the image
//! rolled back from stays known bad after the next deploy; a plan whose containers
//! moved, or whose target tag now names another image, is refused.

mod common;

use std::time::Duration;

use backout::config::compose::ComposeConfig;
use backout::targets::compose::{engine, revert};
use backout_sim::scenario::Scenario;
use common::{eventually, start, Cluster};
use serde_json::Value;

/// The shipped compose-rollback scenario, its bad image deployed 2 s in.
fn compose_rollback() -> Scenario {
    common::shipped_at("compose-rollback", Duration::from_secs(2))
}

async fn billing(c: &Cluster) -> Value {
    common::status_of(c, "billing", &["-A"]).await
}

/// The images billing's containers run, by tag, and the record on the first.
fn containers(c: &Cluster) -> (Vec<String>, String) {
    let engine = c.sim.state.compose.lock().unwrap();
    let images = engine.containers.iter().map(|c| c.image.clone()).collect();
    let record = (engine.containers.first())
        .and_then(|c| c.labels.get("dev.backout.rollback").cloned())
        .unwrap_or_default();
    (images, record)
}

/// `backout rollback billing --yes` with `extra`, which must succeed and go to 7.2;
/// what it said.
async fn rolled_back_to_7_2(c: &Cluster, extra: &[&str]) -> String {
    let config = common::config_of(c);
    let mut args = vec![
        "rollback", "billing", "-n", "legacy", "--yes", "--config", &config,
    ];
    args.extend(extra);
    let (ok, said) = c.backout_said(&args, &[]).await;
    assert!(ok, "{said}");
    assert!(
        said.contains("to   revision 1 (registry.local/legacy/billing:7.2)"),
        "{said}"
    );
    said
}

fn tags_of(c: &Cluster, reference: &str) -> Vec<String> {
    let engine = c.sim.state.compose.lock().unwrap();
    engine
        .image(reference)
        .map(|i| i.tags.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_image_is_suggested_rolled_back_verified_and_never_a_target_again() {
    let c = start(compose_rollback()).await;
    let decided = eventually(Duration::from_secs(60), "billing's decision", async || {
        let s = billing(&c).await;
        (s["decision"]["action"] == "suggest").then_some(s)
    })
    .await;
    let d = &decided["decision"];
    assert_eq!(decided["kind"], "compose_service");
    assert_eq!(decided["service"]["namespace"], "legacy");
    assert_eq!(d["current_revision"], 2, "{d}");
    assert_eq!(d["target"]["revision"], 1, "{d}");
    let gates = d["gates"].to_string();
    assert!(gates.contains("revision 2's image was deployed"), "{gates}");
    assert!(
        d["why_not_automatic"].to_string().contains("compose file"),
        "{d}"
    );
    let blast = d["blast_radius"].to_string();
    assert!(
        blast.contains("recreates the service's containers"),
        "{blast}"
    );
    assert!(blast.contains("named volumes and their data"), "{blast}");

    let said = rolled_back_to_7_2(&c, &["--reason", "drill"]).await;
    assert!(
        said.contains(
            "compose service legacy/billing recreated on registry.local/legacy/billing:7.2"
        ),
        "{said}"
    );
    assert!(said.contains("verified"), "{said}");
    let (images, record) = containers(&c);
    assert_eq!(images, ["registry.local/legacy/billing:7.2"; 2]);
    let record: Value = serde_json::from_str(&record).expect("backout's record");
    assert_eq!(record["reason"], "drill");
    let marks = tags_of(&c, "registry.local/legacy/billing:7.3");
    assert!(
        marks
            .iter()
            .any(|t| t.starts_with("backout-rolled-back/legacy.billing:")),
        "7.3 is marked bad: {marks:?}"
    );
    // Verification waited for a read of the new containers, not the stale one.
    let v1 = engine_id(&c, "registry.local/legacy/billing:7.2");
    assert!(
        said.contains(&format!("runs 2 of 2 containers on image {}", &v1[7..19])),
        "{said}"
    );

    // A person deploys 7.4 by hand: the target skips 7.3, which was rolled back from.
    c.sim
        .state
        .compose
        .lock()
        .unwrap()
        .deploy("billing", "registry.local/legacy/billing:7.4");
    let after = eventually(Duration::from_secs(30), "revision 3 read", async || {
        let s = billing(&c).await;
        (s["decision"]["current_revision"] == 3).then_some(s)
    })
    .await;
    assert_eq!(
        after["decision"]["target"]["revision"], 1,
        "never revision 2: {after}"
    );
}

fn engine_id(c: &Cluster, reference: &str) -> String {
    let engine = c.sim.state.compose.lock().unwrap();
    engine
        .image(reference)
        .map(|i| i.id.clone())
        .unwrap_or_default()
}

/// A rollback of billing planned from a fresh read once the bad image runs, with the
/// record its write would carry; the caller changes the engine before `revert::apply`.
struct Planned {
    cfg: ComposeConfig,
    client: engine::Engine,
    plan: revert::Plan,
    record: backout::engine::lineage::RollbackRecord,
}

async fn planned(c: &Cluster) -> Planned {
    let config = backout::config::Config::load(Some(std::path::Path::new(&common::config_of(c))))
        .expect("the written config loads");
    let cfg: ComposeConfig = config.compose[0].clone();
    let client = engine::client(&cfg).expect("a client");
    let read = eventually(Duration::from_secs(30), "the bad image", async || {
        let r = engine::read(&client, &cfg).await.ok()?;
        (r.alias.versions.len() == 2).then_some(r)
    })
    .await;
    let req = backout::actions::rollback::Request {
        namespace: "legacy".into(),
        deployment: "billing".into(),
        to_revision: None,
        to_replicaset: None,
        reason: "drill".into(),
        actor: "test".into(),
        incident: None,
        automatic: false,
        expected: None,
    };
    let plan = revert::plan(&client, &cfg, &req).await.expect("a plan");
    assert_eq!(plan.from, read.alias.version);
    let record = backout::engine::lineage::RollbackRecord {
        revision: 1,
        from_replicaset: plan.from.clone(),
        to_replicaset: plan.to.clone(),
        at: jiff::Timestamp::now(),
        by: "test".into(),
        reason: "conflict".into(),
        automatic: false,
        incident: None,
    };
    Planned {
        cfg,
        client,
        plan,
        record,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_planned_before_the_containers_moved_is_a_conflict_and_changes_nothing() {
    let c = start(compose_rollback()).await;
    let p = planned(&c).await;
    // Someone scales or recreates the service between the plan and the write.
    c.sim
        .state
        .compose
        .lock()
        .unwrap()
        .deploy("billing", "registry.local/legacy/billing:7.3");
    let refused = revert::apply(&p.client, &p.cfg, &p.plan, &p.record).await;
    assert!(
        matches!(refused, Err(backout::engine::rollbacks::RollbackError::Conflict(ref m)) if m == "compose service legacy/billing"),
        "{refused:?}"
    );
    let (images, record) = containers(&c);
    assert_eq!(images, ["registry.local/legacy/billing:7.3"; 2]);
    assert!(record.is_empty(), "nothing was written: {record}");
    assert_eq!(tags_of(&c, "registry.local/legacy/billing:7.3").len(), 1);
}

/// The containers are made from the target's reference, so a tag moved to another
/// image since the plan (a re-push of 7.2) would deploy an image nobody previewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_tag_moved_to_another_image_since_the_plan_is_a_conflict_and_changes_nothing() {
    let c = start(compose_rollback()).await;
    let p = planned(&c).await;
    let planned_id = engine_id(&c, "registry.local/legacy/billing:7.2");
    {
        let mut engine = c.sim.state.compose.lock().unwrap();
        for image in engine.images.iter_mut() {
            image
                .tags
                .retain(|t| t != "registry.local/legacy/billing:7.2");
        }
        engine.pull("registry.local/legacy/billing:7.2");
    }
    assert_ne!(
        engine_id(&c, "registry.local/legacy/billing:7.2"),
        planned_id
    );
    let refused = revert::apply(&p.client, &p.cfg, &p.plan, &p.record).await;
    assert!(
        matches!(refused, Err(backout::engine::rollbacks::RollbackError::Conflict(ref m))
            if m == "compose service legacy/billing (image registry.local/legacy/billing:7.2 now names another image)"),
        "{refused:?}"
    );
    let (images, record) = containers(&c);
    assert_eq!(images, ["registry.local/legacy/billing:7.3"; 2]);
    assert!(record.is_empty(), "nothing was written: {record}");
    assert_eq!(
        tags_of(&c, "registry.local/legacy/billing:7.3").len(),
        1,
        "the image rolled back from is not marked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_cut_short_by_a_crash_is_finished_by_the_next_rollback() {
    let c = start(compose_rollback()).await;
    eventually(Duration::from_secs(30), "the bad deploy", async || {
        let (images, _) = containers(&c);
        (images == ["registry.local/legacy/billing:7.3"; 2]).then_some(())
    })
    .await;
    // What a rollback killed mid-way leaves: 7.3 marked, the first container set aside
    // and stopped, its replacement on 7.2 made but never started, the second untouched.
    {
        let mut engine = c.sim.state.compose.lock().unwrap();
        let bad = engine
            .image("registry.local/legacy/billing:7.3")
            .unwrap()
            .id
            .clone();
        let mark = format!(
            "backout-rolled-back/legacy.billing:{}.{}",
            &bad[7..19],
            jiff::Timestamp::now().as_second()
        );
        let i = engine.images.iter().position(|i| i.id == bad).unwrap();
        engine.images[i].tags.push(mark);
        let first = engine.container("legacy-billing-1").unwrap();
        first.name = "legacy-billing-1-backout-old".into();
        first.running = false;
        let labels = first.labels.clone();
        let host = serde_json::json!({"NetworkMode": "host"});
        engine
            .create(
                "legacy-billing-1",
                "registry.local/legacy/billing:7.2",
                labels,
                Vec::new(),
                host,
            )
            .expect("the replacement is made");
    }
    rolled_back_to_7_2(&c, &["--no-verify"]).await;
    let engine = c.sim.state.compose.lock().unwrap();
    let names: Vec<(&str, &str, bool)> = engine
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.image.as_str(), c.running))
        .collect();
    assert_eq!(names.len(), 2, "the container set aside is gone: {names:?}");
    assert!(
        names
            .iter()
            .all(|(_, image, running)| *image == "registry.local/legacy/billing:7.2" && *running),
        "{names:?}"
    );
    let target_tags = engine
        .image("registry.local/legacy/billing:7.2")
        .unwrap()
        .tags
        .clone();
    assert_eq!(
        target_tags.len(),
        1,
        "the target is never marked: {target_tags:?}"
    );
}
