//! Watch semantics, seen by kube-rs' watcher and on the wire: every change in order,
//! resumption from a resourceVersion after a closed stream, relist after 410.

mod common;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Config};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use common::{eventually, small_scenario, start, Cluster};

async fn client(c: &Cluster) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(c.kubeconfig()).expect("kubeconfig reads");
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kubeconfig is usable");
    Client::try_from(config).expect("a client")
}

#[derive(Debug, PartialEq)]
enum Seen {
    Value(u64),
    Relist,
}

async fn set(api: &Api<ConfigMap>, n: u64) {
    let patch = json!({"data": {"n": n.to_string()}});
    api.patch("counter", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
}

/// Values seen since the last call, waiting until `last` arrives.
async fn drain_until(rx: &mut mpsc::UnboundedReceiver<Seen>, last: u64) -> Vec<Seen> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(seen) = rx.recv().await {
            let done = seen == Seen::Value(last);
            out.push(seen);
            if done {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("value {last} never arrived; saw {out:?}"));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_watcher_sees_every_change_in_order_and_survives_close_and_410() {
    let c = start(small_scenario("")).await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "shop");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "counter"}, "data": {"n": "0"}}))
            .unwrap();
    api.create(&PostParams::default(), &cm)
        .await
        .expect("create");

    let (tx, mut rx) = mpsc::unbounded_channel();
    // With backoff, as the product's watchers have: without it a watcher whose server
    // is gone retries in a loop that never yields, and the runtime cannot shut down.
    let stream = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=counter"),
    )
    .default_backoff();
    let watching = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let seen = match ev {
                Ok(watcher::Event::Init) => Some(Seen::Relist),
                Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => cm
                    .data
                    .and_then(|d| d.get("n").and_then(|n| n.parse().ok()))
                    .map(Seen::Value),
                _ => None,
            };
            if let Some(s) = seen {
                let _ = tx.send(s);
            }
        }
    });

    let first = drain_until(&mut rx, 0).await;
    assert_eq!(first, [Seen::Relist, Seen::Value(0)]);
    for n in 1..=20 {
        set(&api, n).await;
    }
    let live = drain_until(&mut rx, 20).await;
    assert_eq!(
        live,
        (1..=20).map(Seen::Value).collect::<Vec<_>>(),
        "every change, in order"
    );

    // A closed stream resumes from the last resourceVersion: nothing missed, no relist.
    c.sim.close_watches();
    for n in 21..=30 {
        set(&api, n).await;
    }
    let resumed = drain_until(&mut rx, 30).await;
    assert_eq!(resumed, (21..=30).map(Seen::Value).collect::<Vec<_>>());

    // After compaction the old version is gone: 410, then a relist with the latest state.
    // An unrelated write first, so the watcher's version is older than the compaction
    // point (compacting at exactly its version would leave nothing missing).
    let other: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "unrelated"}})).unwrap();
    api.create(&PostParams::default(), &other)
        .await
        .expect("create");
    c.sim.compact();
    c.sim.close_watches();
    for n in 31..=35 {
        set(&api, n).await;
    }
    let relisted = drain_until(&mut rx, 35).await;
    assert!(
        relisted.contains(&Seen::Relist),
        "a 410 makes the watcher relist: {relisted:?}"
    );
    let values: Vec<u64> = relisted
        .iter()
        .filter_map(|s| {
            if let Seen::Value(v) = s {
                Some(*v)
            } else {
                None
            }
        })
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "still in order: {values:?}"
    );
    watching.abort();
}

async fn watch_lines(c: &Cluster, query: &str) -> Vec<Value> {
    let url = format!(
        "{}/api/v1/namespaces/shop/configmaps?watch=true&{query}",
        c.sim.url()
    );
    let body = c
        .http()
        .get(url)
        .bearer_auth(backout_sim::api::auth::EDITOR_TOKEN)
        .send()
        .await
        .expect("watch request")
        .text()
        .await
        .expect("the stream ends");
    body.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_protocol_on_the_wire() {
    let c = start(small_scenario("")).await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "shop");
    for name in ["a", "b"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }

    let initial = watch_lines(&c, "sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1").await;
    let kinds: Vec<&str> = initial
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ADDED", "ADDED", "BOOKMARK"]);
    assert_eq!(
        initial[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(initial
        .iter()
        .all(|e| e["object"]["metadata"]["resourceVersion"].is_string()));

    let rv: u64 = initial[2]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    set_label(&api, "a").await;
    let after = watch_lines(&c, &format!("resourceVersion={rv}&timeoutSeconds=1")).await;
    assert_eq!(after.len(), 1);
    assert_eq!(
        (
            after[0]["type"].as_str(),
            after[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("MODIFIED"), Some("a"))
    );

    // A label selector turns a change out of the selection into DELETED.
    let selected = watch_lines(
        &c,
        &format!("resourceVersion={rv}&labelSelector=tier%3Dfront&timeoutSeconds=1"),
    )
    .await;
    assert_eq!(selected.len(), 1);
    assert_eq!(
        selected[0]["type"], "ADDED",
        "a change into the selection is ADDED"
    );

    c.sim.compact();
    let expired = watch_lines(&c, &format!("resourceVersion={rv}")).await;
    assert_eq!(expired.len(), 1, "410 ends the stream");
    assert_eq!(expired[0]["type"], "ERROR");
    assert_eq!(
        (
            expired[0]["object"]["code"].as_u64(),
            expired[0]["object"]["reason"].as_str()
        ),
        (Some(410), Some("Expired"))
    );
}

async fn set_label(api: &Api<ConfigMap>, name: &str) {
    let patch = json!({"metadata": {"labels": {"tier": "front"}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_follow_continue_tokens() {
    let c = start(small_scenario("")).await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "shop");
    for i in 0..7 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut names = Vec::new();
    let mut params = kube::api::ListParams::default().limit(3);
    let pages = eventually(Duration::from_secs(5), "all pages", async || {
        let mut pages = 0;
        loop {
            let page = api.list(&params).await.ok()?;
            pages += 1;
            names.extend(page.items.into_iter().filter_map(|cm| cm.metadata.name));
            match page.metadata.continue_.filter(|t| !t.is_empty()) {
                Some(token) => params = params.clone().continue_token(&token),
                None => return Some(pages),
            }
        }
    })
    .await;
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
}
