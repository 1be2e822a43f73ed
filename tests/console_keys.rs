//! The console driven by keys against the simulator, with no terminal in between: the
//! keys an engineer presses, and what then happened in the cluster.

mod common;

use std::time::{Duration, Instant};

use backout::app::core::{Core, Options};
use backout::app::session::Session;
use backout::config::Config;
use backout::engine::rollbacks::Preview;
use backout::engine::ServiceKey;
use backout::ui::state::{Mode, UiState};
use common::{have, start, Cluster};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

async fn bad_deploy() -> Cluster {
    start(common::bad_deploy_at(1)).await
}

async fn session(c: &Cluster, context: Option<&str>) -> Session {
    let path = c.dir().join("backout.toml");
    let config = Config::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    let opts = Options {
        kubeconfig: Some(c.kubeconfig()),
        context: context.map(String::from),
        journal: Some(c.journal_path()),
        ..Options::default()
    };
    let core = Core::start(config, opts).await.unwrap();
    Session::new(core, UiState::new(Mode::Live, String::new(), String::new()))
}

/// Steps the core until `done` holds, or fails the test naming what it waited for.
async fn until(s: &mut Session, what: &str, done: impl Fn(&Session) -> bool) {
    let started = Instant::now();
    while !done(s) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waited a minute for {what}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), s.core.step()).await;
    }
}

async fn key(s: &mut Session, code: KeyCode) {
    s.key(KeyEvent::new(code, KeyModifiers::NONE))
        .await
        .unwrap();
}

/// Waits for the dialog's dry run and returns its answer.
async fn dry_run(s: &mut Session) -> Result<Preview, String> {
    until(s, "the dry run", |s| {
        s.core.state.services[&checkout()]
            .preview
            .as_ref()
            .is_some_and(|p| p.result.is_some())
    })
    .await;
    let preview = s.core.state.services[&checkout()].preview.clone();
    preview.and_then(|p| p.result).expect("answered")
}

fn checkout() -> ServiceKey {
    ServiceKey::new("shop", "checkout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_roll_back_to_the_revision_chosen_in_the_history() {
    if !have("kubectl") {
        return;
    }
    let c = bad_deploy().await;
    let mut s = session(&c, None).await;
    until(&mut s, "the bad deploy at revision 2", |s| {
        s.core.state.services.get(&checkout()).is_some_and(|svc| {
            svc.decision.current_revision == Some(2) && svc.replicasets.len() == 2
        })
    })
    .await;
    // A third revision on top, so the history offers a choice the decision would not make.
    c.kubectl_ok(&[
        "set",
        "image",
        "deploy/checkout",
        "checkout=registry.local/shop/checkout:1.4.2",
    ])
    .await;
    until(&mut s, "revision 3", |s| {
        s.core.state.services[&checkout()].decision.current_revision == Some(3)
    })
    .await;

    // Select checkout, open the history, choose the oldest revision, roll back to it.
    s.press('/').await.unwrap();
    for ch in "checkout".chars() {
        s.press(ch).await.unwrap();
    }
    key(&mut s, KeyCode::Enter).await;
    assert_eq!(s.ui.selected_service(&s.core.state), Some(&checkout()));
    key(&mut s, KeyCode::Tab).await;
    key(&mut s, KeyCode::Down).await;
    key(&mut s, KeyCode::Down).await;
    s.press('r').await.unwrap();
    assert_eq!(s.ui.dialog.as_ref().and_then(|d| d.to_revision), Some(1));
    let planned = dry_run(&mut s).await.expect("the dry run is accepted");
    assert_eq!((planned.from_revision, planned.to_revision), (3, 1));
    assert_eq!(
        c.revision("checkout").await,
        "3",
        "a dry run changes nothing"
    );

    s.press('y').await.unwrap();
    until(&mut s, "the patch", |s| {
        s.core.state.services[&checkout()]
            .rollback
            .as_ref()
            .is_some_and(|r| r.committed)
    })
    .await;
    // Pressing r during the rollback does nothing harmful: no dialog, no second order.
    s.press('r').await.unwrap();
    assert!(s.ui.dialog.is_none());
    // The Deployment controller numbers the revision after the patch lands.
    until(&mut s, "revision 4", |s| {
        s.core.state.services[&checkout()].decision.current_revision == Some(4)
    })
    .await;
    assert_eq!(
        c.revision("checkout").await,
        "4",
        "revision 1 came back as revision 4"
    );
    assert_eq!(
        c.image("checkout").await,
        "registry.local/shop/checkout:1.4.0"
    );
    let journal = c.journal();
    assert!(
        journal.contains(r#""kind":"rollback""#) && journal.contains(r#""to_revision":1"#),
        "the rollback is journaled with its target: {journal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_the_dry_run_refused_and_confirming_changes_nothing() {
    if !have("kubectl") {
        return;
    }
    let c = bad_deploy().await;
    let mut s = session(&c, Some("backout-sim-viewer")).await;
    until(&mut s, "the bad deploy at revision 2", |s| {
        s.core
            .state
            .services
            .get(&checkout())
            .is_some_and(|svc| svc.decision.current_revision == Some(2))
    })
    .await;
    s.press('/').await.unwrap();
    s.press('c').await.unwrap();
    key(&mut s, KeyCode::Enter).await;
    s.press('r').await.unwrap();
    let refused = dry_run(&mut s)
        .await
        .expect_err("a viewer's dry run is refused");
    assert!(refused.contains("may not patch"), "{refused}");
    s.press('y').await.unwrap();
    assert!(s.ui.dialog.is_none());
    assert!(!s.core.state.services[&checkout()].rollback_in_flight());
    assert_eq!(c.revision("checkout").await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_namespace_starts_over_there_and_a_bad_command_is_explained() {
    if !have("kubectl") {
        return;
    }
    let c = bad_deploy().await;
    let manifest = c.dir().join("staging.json");
    let search = serde_json::json!({
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "staging"}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "search", "namespace": "staging"},
             "spec": {"selector": {"matchLabels": {"app": "search"}},
                      "template": {"metadata": {"labels": {"app": "search"}},
                                   "spec": {"containers": [{"name": "search", "image": "registry.local/staging/search:1"}]}}}}
        ]
    });
    std::fs::write(&manifest, search.to_string()).unwrap();
    c.kubectl_ok(&["create", "-f", manifest.to_str().unwrap()])
        .await;
    let mut s = session(&c, None).await;
    until(&mut s, "shop's services", |s| {
        s.core.state.services.contains_key(&checkout())
    })
    .await;

    s.press(':').await.unwrap();
    for ch in "frobnicate x".chars() {
        s.press(ch).await.unwrap();
    }
    key(&mut s, KeyCode::Enter).await;
    let notice = s.ui.notice.clone().unwrap_or_default();
    assert!(
        notice.contains("unknown command") && notice.contains(":ns"),
        "{notice}"
    );

    s.press(':').await.unwrap();
    for ch in "ns staging".chars() {
        s.press(ch).await.unwrap();
    }
    key(&mut s, KeyCode::Enter).await;
    // The key handler returns at once; the old namespace stays on screen meanwhile.
    assert_eq!(s.ui.namespace, "shop");
    let notice = s.ui.notice.clone().unwrap_or_default();
    assert!(
        notice.contains("switching to namespace staging"),
        "{notice}"
    );
    s.finish_switch().await;
    assert_eq!(s.ui.namespace, "staging");
    until(&mut s, "staging's services", |s| {
        s.core
            .state
            .services
            .contains_key(&ServiceKey::new("staging", "search"))
    })
    .await;
    assert!(
        s.core
            .state
            .services
            .keys()
            .all(|k| k.namespace == "staging"),
        "only the new namespace: {:?}",
        s.core.state.services.keys().collect::<Vec<_>>()
    );

    // A context that does not exist leaves the current core in place, and says why.
    s.press(':').await.unwrap();
    for ch in "ctx nowhere".chars() {
        s.press(ch).await.unwrap();
    }
    key(&mut s, KeyCode::Enter).await;
    s.finish_switch().await;
    let notice = s.ui.notice.clone().unwrap_or_default();
    assert!(
        notice.contains("cannot switch") && notice.contains("nowhere"),
        "{notice}"
    );
    assert_eq!(s.ui.namespace, "staging");
}
