//! The store's own rules: resourceVersions, conflicts, compaction, paging and
//! cascading deletes.

use crate::resources::{CONFIGMAPS, DEPLOYMENTS, REPLICASETS};
use crate::store::*;
use serde_json::{json, Value};

fn cm(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"}, "data": {"k": "v"}})
}

#[test]
fn every_write_bumps_the_resource_version_and_a_noop_does_not() {
    let mut store = Store::new(100);
    let a = store.create(&CONFIGMAPS, cm("a")).unwrap();
    let rv_a: u64 = meta_str(&a, "resourceVersion").parse().unwrap();
    let mut changed = (*a).clone();
    changed["data"]["k"] = json!("w");
    let b = store.update(&CONFIGMAPS, changed).unwrap();
    let rv_b: u64 = meta_str(&b, "resourceVersion").parse().unwrap();
    assert!(rv_b > rv_a);
    let c = store.update(&CONFIGMAPS, (*b).clone()).unwrap();
    assert_eq!(meta_str(&c, "resourceVersion"), rv_b.to_string());
}

#[test]
fn a_stale_resource_version_is_a_conflict() {
    let mut store = Store::new(100);
    let a = store.create(&CONFIGMAPS, cm("a")).unwrap();
    let mut first = (*a).clone();
    first["data"]["k"] = json!("1");
    store.update(&CONFIGMAPS, first).unwrap();
    let mut second = (*a).clone();
    second["data"]["k"] = json!("2");
    assert!(matches!(
        store.update(&CONFIGMAPS, second),
        Err(StoreError::Conflict { .. })
    ));
}

#[test]
fn a_compacted_version_is_expired_and_a_recent_one_replays() {
    let mut store = Store::new(2);
    for name in ["a", "b", "c", "d"] {
        store.create(&CONFIGMAPS, cm(name)).unwrap();
    }
    let now = store.resource_version();
    assert!(matches!(
        store.watch_from(&CONFIGMAPS, 1),
        Err(StoreError::Expired { .. })
    ));
    let (backlog, _) = store.watch_from(&CONFIGMAPS, now - 1).unwrap();
    assert_eq!(backlog.len(), 1);
    assert_eq!(meta_str(&backlog[0].object, "name"), "d");
}

#[test]
fn a_list_resumes_after_its_key_within_a_namespace_and_across_them() {
    let mut store = Store::new(100);
    store.ensure_namespace("shop");
    for (ns, name) in [
        ("default", "a"),
        ("default", "b"),
        ("shop", "a"),
        ("shop", "c"),
    ] {
        let obj = json!({"metadata": {"name": name, "namespace": ns}});
        store.create(&CONFIGMAPS, obj).unwrap();
    }
    let keys = |ns: Option<&str>, after: Option<(&str, &str)>| -> Vec<ObjKey> {
        let after = after.map(|(n, m)| (n.to_string(), m.to_string()));
        store
            .list_after(&CONFIGMAPS, ns, after.as_ref())
            .map(|o| key_of(o))
            .collect()
    };
    let key = |ns: &str, name: &str| (ns.to_string(), name.to_string());
    assert_eq!(
        keys(Some("shop"), None),
        [key("shop", "a"), key("shop", "c")]
    );
    assert_eq!(keys(Some("shop"), Some(("shop", "a"))), [key("shop", "c")]);
    assert_eq!(
        keys(None, Some(("default", "b"))),
        [key("shop", "a"), key("shop", "c")]
    );
    assert!(keys(Some("default"), Some(("default", "b"))).is_empty());
}

#[test]
fn a_labelled_list_follows_relabels_and_deletes_and_agrees_with_a_scan() {
    let mut store = Store::new(100);
    store.ensure_namespace("shop");
    for (ns, name, app) in [
        ("default", "a", "web"),
        ("shop", "b", "web"),
        ("shop", "c", "api"),
        ("shop", "d", "web"),
    ] {
        let obj = json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": app}}});
        store.create(&CONFIGMAPS, obj).unwrap();
    }
    let mut relabelled = (*store.get(&CONFIGMAPS, "shop", "b").unwrap()).clone();
    relabelled["metadata"]["labels"]["app"] = json!("api");
    store.update(&CONFIGMAPS, relabelled).unwrap();
    store.delete(&CONFIGMAPS, "shop", "d").unwrap();
    let by_index = |ns: Option<&str>, after: Option<ObjKey>, app: &str| -> Vec<ObjKey> {
        store
            .list_labelled(&CONFIGMAPS, ns, after.as_ref(), ("app", app))
            .map(|o| key_of(o))
            .collect()
    };
    let by_scan = |ns: Option<&str>, after: Option<ObjKey>, app: &str| -> Vec<ObjKey> {
        store
            .list_after(&CONFIGMAPS, ns, after.as_ref())
            .filter(|o| o["metadata"]["labels"]["app"] == app)
            .map(|o| key_of(o))
            .collect()
    };
    let key = |ns: &str, name: &str| (ns.to_string(), name.to_string());
    assert_eq!(by_index(None, None, "web"), [key("default", "a")]);
    assert_eq!(
        by_index(Some("shop"), None, "api"),
        [key("shop", "b"), key("shop", "c")]
    );
    assert_eq!(
        by_index(Some("shop"), Some(key("shop", "b")), "api"),
        [key("shop", "c")]
    );
    assert!(by_index(None, None, "gone").is_empty());
    for ns in [None, Some("shop"), Some("default")] {
        for after in [None, Some(key("default", "a")), Some(key("shop", "b"))] {
            for app in ["web", "api"] {
                assert_eq!(
                    by_index(ns, after.clone(), app),
                    by_scan(ns, after.clone(), app),
                    "{ns:?} after {after:?} app={app}"
                );
            }
        }
    }
}

#[test]
fn deleting_an_owner_deletes_what_it_owns() {
    let mut store = Store::new(100);
    let d = store
        .create(
            &DEPLOYMENTS,
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {}}),
        )
        .unwrap();
    let uid = meta_str(&d, "uid").to_string();
    store
        .create(
            &REPLICASETS,
            json!({"metadata": {"name": "web-1", "namespace": "default",
                "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": uid, "controller": true}]}, "spec": {}}),
        )
        .unwrap();
    assert_eq!(store.owned_by(&REPLICASETS, &uid).len(), 1);
    store.delete(&DEPLOYMENTS, "default", "web").unwrap();
    assert!(store.get(&REPLICASETS, "default", "web-1").is_none());
}

#[test]
fn spec_changes_bump_generation_and_status_changes_do_not() {
    let mut store = Store::new(100);
    let d = store
        .create(
            &DEPLOYMENTS,
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 1}}),
        )
        .unwrap();
    let mut status = (*d).clone();
    status["status"] = json!({"replicas": 1});
    let d = store.update(&DEPLOYMENTS, status).unwrap();
    assert_eq!(d["metadata"]["generation"], 1);
    let mut spec = (*d).clone();
    spec["spec"]["replicas"] = json!(2);
    let d = store.update(&DEPLOYMENTS, spec).unwrap();
    assert_eq!(d["metadata"]["generation"], 2);
}
