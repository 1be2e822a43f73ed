//! Every parser of outside input, fuzzed on the stable toolchain with proptest:
//! backout.toml, scenario files, the journal (and the handoff built from it),
//! Prometheus answers, and Kubernetes objects as the watches deliver them. The seeds
//! are files the product ships or writes itself, mutated byte by byte or node by node.
//! The promise: no panic on any input, and nothing unreadable is ever evidence.

use std::path::Path;

use backout::config::Config;
use backout::engine::fixtures::{key, t, template, world};
use backout::engine::signals::QueryOutcome;
use backout::engine::{update, Action, KubeChange, KubeKind, KubeObject, Msg, QueryAnswer};
use backout_sim::scenario::Scenario;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Pieces that mean something to TOML or JSON, or to backout's own checks.
const PIECES: &[&str] = &[
    "\"",
    "'",
    "=",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    ",",
    ":",
    "\n",
    "#",
    "nan",
    "inf",
    "-inf",
    "-1",
    "1e999",
    "0",
    "null",
    "true",
    "\"999999999999s\"",
    "\"0s\"",
    "\"\"",
    "\"NaN\"",
    "\"+Inf\"",
    "[[trigger]]\nname = \"x\"\n",
    "[policy]\n",
    "[prometheus]\n",
    "[[event]]\n",
    "at = \"1s\"\n",
    "\u{0}",
    "é",
    "→",
    "🦀",
    "\"status\":\"success\"",
    "\"values\"",
    "\"result\"",
    "threshold = ",
    "severity = \"auto_rollback\"",
    "query = 'up'",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, piece: usize },
    Duplicate { at: usize, len: usize },
    Byte { at: usize, byte: u8 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 0..PIECES.len()).prop_map(|(at, piece)| Mutation::Insert { at, piece }),
        (any::<usize>(), 1usize..80).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Byte { at, byte }),
    ]
}

/// `seed` with the mutations applied, in order, at positions taken modulo its length.
fn mutate(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for m in mutations {
        let n = bytes.len().max(1);
        match *m {
            Mutation::Delete { at, len } => {
                let at = at % n;
                let end = (at + len).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            Mutation::Insert { at, piece } => {
                let at = (at % n).min(bytes.len());
                bytes.splice(at..at, PIECES[piece].bytes());
            }
            Mutation::Duplicate { at, len } => {
                let at = at % n;
                let end = (at + len).min(bytes.len());
                let copy: Vec<u8> = bytes.get(at..end).unwrap_or_default().to_vec();
                bytes.splice(end..end, copy);
            }
            Mutation::Byte { at, byte } => {
                if let Some(b) = bytes.get_mut(at % n) {
                    *b = byte;
                }
            }
        }
    }
    bytes
}

/// A few mutations: enough to break a file in interesting ways, few enough that
/// some of them still parse and reach the code behind the parser.
fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..4)
}

/// The config `backout sim` writes for each shipped scenario: the seeds for backout.toml.
fn config_seeds() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    backout_sim::scenario::SHIPPED
        .iter()
        .map(|(name, _)| {
            let scenario = Scenario::load(name).unwrap();
            backout::cli::sim::write_config(dir.path(), "https://127.0.0.1:1", "", &scenario)
                .unwrap();
            std::fs::read_to_string(dir.path().join("backout.toml")).unwrap()
        })
        .collect()
}

fn scenario_seeds() -> Vec<(String, String)> {
    let seeds: Vec<(String, String)> = backout_sim::scenario::SHIPPED
        .iter()
        .map(|(name, text)| (format!("{name}.toml"), text.to_string()))
        .collect();
    assert!(seeds.len() >= 5, "the shipped scenarios are the seeds");
    seeds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn backout_toml_never_panics_and_what_it_accepts_is_in_range(
        seed in any::<prop::sample::Index>(),
        ms in mutations(),
    ) {
        let seeds = config_seeds();
        let text = mutate(seeds[seed.index(seeds.len())].as_bytes(), &ms);
        let text = String::from_utf8_lossy(&text);
        if let Ok(config) = Config::parse(Path::new("fuzzed.toml"), &text) {
            let p = &config.policy;
            prop_assert!(p.min_requests.is_finite() && p.min_requests >= 0.0);
            prop_assert!(p.verification_window <= backout::config::LONGEST);
            prop_assert!(p.lease_duration >= backout::config::SHORTEST_LEASE);
            for t in &config.triggers {
                prop_assert!(t.threshold.is_finite(), "{}", t.name);
            }
        }
    }

    #[test]
    fn scenario_files_never_panic(seed in any::<prop::sample::Index>(), ms in mutations()) {
        let seeds = scenario_seeds();
        let (file, text) = &seeds[seed.index(seeds.len())];
        let text = mutate(text.as_bytes(), &ms);
        let _ = Scenario::parse(file, &String::from_utf8_lossy(&text));
    }
}

/// A journal the product writes: the bad-deploy incident, from the engine's own records.
fn journal_seed() -> Vec<u8> {
    use backout::engine::journal::{Entry, Record};
    let at = |s: i64| t(s);
    let records = [
        Record {
            at: at(10),
            incident: Some("inc-1".into()),
            service: "shop/checkout".into(),
            entry: Entry::IncidentOpened {
                summary: "error-rate firing 0.25 > 0.05 → roll back".into(),
            },
        },
        Record {
            at: at(20),
            incident: Some("inc-1".into()),
            service: "shop/checkout".into(),
            entry: Entry::Rollback {
                from_revision: 2,
                from_images: vec!["checkout:2".into()],
                to_revision: 3,
                to_images: vec!["checkout:1".into()],
                by: "alice@bastion".into(),
                reason: "error rate".into(),
                automatic: false,
            },
        },
        Record {
            at: at(90),
            incident: Some("inc-1".into()),
            service: "shop/checkout".into(),
            entry: Entry::Verification {
                outcome: "verified".into(),
                checks: vec!["✓ rollout completes".into()],
            },
        },
    ];
    let mut bytes = Vec::new();
    for r in &records {
        bytes.extend(serde_json::to_vec(r).unwrap());
        bytes.push(b'\n');
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_damaged_journal_costs_only_its_damaged_lines_and_the_handoff_never_panics(ms in mutations()) {
        use backout::engine::handoff::{incidents, Handoff};
        let seed = journal_seed();
        let bytes = mutate(&seed, &ms);
        let (records, bad) = backout::actions::journal::parse(&bytes);
        let lines = bytes.split(|b| *b == b'\n').filter(|l| !String::from_utf8_lossy(l).trim().is_empty()).count();
        prop_assert_eq!(records.len() + bad.len(), lines);
        for id in incidents(&records) {
            if let Some(h) = Handoff::build(&records, &id) {
                let _ = h.to_markdown();
                let _ = serde_json::to_string(&h).unwrap();
            }
        }
    }
}

/// A query_range answer as Prometheus gives it for one series.
fn prometheus_seed() -> String {
    json!({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"service": "checkout", "namespace": "shop"},
         "values": [[1800000000.0, "0.001"], [1800000015.5, "0.25"], [1800000030, "NaN"], [1800000045, "+Inf"]]}
    ]}})
    .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_prometheus_answer_is_read_without_panic_and_garbage_is_never_evidence(
        status in prop_oneof![4 => Just(200u16), 1 => Just(400), 1 => Just(422), 1 => Just(500), 1 => Just(503), 1 => 100u16..600],
        edits in node_edits(),
        ms in proptest::collection::vec(mutation(), 0..3),
    ) {
        let mut seed: Value = serde_json::from_str(&prometheus_seed()).unwrap();
        for (at, pick) in edits {
            replace_node(&mut seed, at, pick);
        }
        let body = mutate(seed.to_string().as_bytes(), &ms);
        let outcome = backout::sources::prometheus::read_range_answer(status, &String::from_utf8_lossy(&body));
        let series = matches!(outcome, QueryOutcome::Series { .. });
        let mut state = world("[policy]\nauto_rollback = true\n");
        update(&mut state, Msg::Tick(t(1800000050)));
        update(&mut state, Msg::Query(QueryAnswer {
            trigger: "error-rate".into(),
            service: key("checkout"),
            answered_at: t(1800000050),
            outcome,
        }));
        update(&mut state, Msg::Tick(t(1800000060)));
        if !series {
            let decision = &state.services[&key("checkout")].decision;
            prop_assert_ne!(decision.action, Action::AutoRollback);
        }
    }
}

/// Objects as the watches deliver them, built the way the fixtures build them.
fn kube_seeds() -> Vec<(KubeKind, Value)> {
    let meta = |name: &str| {
        json!({"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
        "creationTimestamp": "2027-01-15T08:00:00Z", "generation": 2,
        "annotations": {"deployment.kubernetes.io/revision": "2", "kubernetes.io/change-cause": "ship 2"},
        "labels": {"app": "checkout", "pod-template-hash": "abc"}})
    };
    let owner = |kind: &str, name: &str| json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": true}]);
    let mut rs_meta = meta("checkout-2");
    rs_meta["ownerReferences"] = owner("Deployment", "checkout");
    let mut pod_meta = meta("checkout-2-x1");
    pod_meta["ownerReferences"] = owner("ReplicaSet", "checkout-2");
    vec![
        (
            KubeKind::Deployment,
            json!({"metadata": meta("checkout"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "checkout"}}, "template": template("checkout", "checkout:2")},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "readyReplicas": 3,
                "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}}),
        ),
        (
            KubeKind::ReplicaSet,
            json!({"metadata": rs_meta,
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "checkout"}}, "template": template("checkout", "checkout:2")},
            "status": {"replicas": 3, "readyReplicas": 3}}),
        ),
        (
            KubeKind::Pod,
            json!({"metadata": pod_meta,
            "spec": {"containers": [{"name": "checkout", "image": "checkout:2"}]},
            "status": {"phase": "Running", "startTime": "2027-01-15T08:00:01Z",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "checkout", "image": "checkout:2", "imageID": "", "ready": false, "restartCount": 7,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "finishedAt": "2027-01-15T08:00:09Z"}}}]}}),
        ),
    ]
}

/// A value of the same JSON type as `v` that has broken parsers before (huge,
/// negative, empty, not a date, not ASCII), picked by `pick`; one pick in eight
/// changes the type instead.
fn odd_like(v: &Value, pick: usize) -> Value {
    let strings = [
        "",
        "-1",
        "99999999999999999999",
        "2027-13-45T99:99:99Z",
        "→🦀",
        "NaN",
        "0",
        "a/b",
    ];
    let numbers = [
        json!(-1),
        json!(0),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1e308),
        json!(-9e18),
        json!(2147483648u64),
    ];
    if pick % 8 == 7 {
        return [Value::Null, json!([]), json!({}), json!("x"), json!(1)][pick / 8 % 5].clone();
    }
    match v {
        Value::String(_) => json!(strings[pick % strings.len()]),
        Value::Number(_) => numbers[pick % numbers.len()].clone(),
        Value::Bool(b) => json!(!b),
        Value::Array(_) if pick.is_multiple_of(2) => json!([]),
        Value::Array(a) => Value::Array(a.iter().chain(a.first()).cloned().collect()),
        Value::Object(_) => json!({}),
        Value::Null => json!("x"),
    }
}

/// Replaces the `index`-th node (depth first, modulo their number) with an odd value
/// of its own type.
fn replace_node(v: &mut Value, index: usize, pick: usize) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, target: &mut usize, pick: usize) -> bool {
        if *target == 0 {
            *v = odd_like(v, pick);
            return true;
        }
        *target -= 1;
        let children: Vec<&mut Value> = match v {
            Value::Array(a) => a.iter_mut().collect(),
            Value::Object(o) => o.values_mut().collect(),
            _ => Vec::new(),
        };
        children.into_iter().any(|c| walk(c, target, pick))
    }
    let mut target = index % count(v);
    walk(v, &mut target, pick);
}

fn node_edits() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((any::<usize>(), any::<usize>()), 1..4)
}

fn typed(kind: KubeKind, v: Value) -> Option<KubeObject> {
    Some(match kind {
        KubeKind::Deployment => KubeObject::Deployment(Box::new(serde_json::from_value(v).ok()?)),
        KubeKind::ReplicaSet => KubeObject::ReplicaSet(Box::new(serde_json::from_value(v).ok()?)),
        KubeKind::Pod => KubeObject::pod(&serde_json::from_value(v).ok()?),
        _ => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_kubernetes_object_the_watches_decode_is_applied_without_panic(
        seed in any::<prop::sample::Index>(),
        edits in node_edits(),
        relist in any::<bool>(),
    ) {
        let seeds = kube_seeds();
        let (kind, mut v) = seeds[seed.index(seeds.len())].clone();
        for (at, pick) in edits {
            replace_node(&mut v, at, pick);
        }
        // What kube-rs would refuse to decode never reaches the engine.
        let Some(object) = typed(kind, v) else { return Ok(()) };
        let mut state = world("[policy]\nauto_rollback = true\n");
        let change = if relist {
            KubeChange::Relisted { kind, namespace: "shop".into(), objects: vec![object.clone()] }
        } else {
            KubeChange::Applied(object.clone())
        };
        for msg in [Msg::Kube(change), Msg::Tick(t(30)), Msg::Kube(KubeChange::Deleted(object)), Msg::Tick(t(60))] {
            update(&mut state, msg);
        }
        // Objects alone, with no trigger answered, are never a reason to act.
        prop_assert!(state.services.values().all(|s| s.decision.action != Action::AutoRollback));
    }
}
