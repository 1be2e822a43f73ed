//! Notifications reach local HTTP receivers with the bodies the services expect; a
//! receiver that fails three times gets the fourth attempt; one that never answers
//! does not stop the rollback, and no URL or key is printed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use common::Cluster;
use serde_json::Value;

#[derive(Default)]
struct Received {
    bodies: Vec<(String, Value)>,
    flaky_failures: u32,
}

type Shared = Arc<Mutex<Received>>;

async fn receive(
    State(r): State<Shared>,
    Path(channel): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    if channel == "hang" {
        std::future::pending::<()>().await;
    }
    let mut r = r.lock().unwrap();
    // Flaky for the rollback's notice; the resolution that follows is let through.
    let rolled_back = body["event"] == "rolled_back";
    r.bodies.push((channel.clone(), body));
    if channel == "flaky" && rolled_back && r.flaky_failures < 3 {
        r.flaky_failures += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

async fn receivers() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/{channel}", axum::routing::post(receive))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, shared)
}

async fn cluster() -> Option<Cluster> {
    common::web_with_history(&["web:2"]).await
}

async fn rollback_with(
    c: &Cluster,
    notifications: &str,
    env: Vec<(&'static str, String)>,
) -> std::process::Output {
    let config = c.dir().join("notify.toml");
    std::fs::write(&config, format!("[notifications]\n{notifications}")).unwrap();
    let args = [
        "rollback",
        "web",
        "--yes",
        "--reason",
        "error rate 25%",
        "--incident",
        "inc-42",
        "--config",
        config.to_str().unwrap(),
    ];
    c.backout(&args, &env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_pagerduty_and_a_flaky_webhook_all_receive_the_rollback() {
    let Some(c) = cluster().await else { return };
    let (base, received) = receivers().await;
    let config = format!(
        "attempts = 4\ntimeout = \"2s\"\n[notifications.slack]\nurl_env = \"TEST_SLACK\"\n[notifications.pagerduty]\nrouting_key_env = \"TEST_PD_KEY\"\nurl = \"{base}/pagerduty\"\n[notifications.webhook]\nurl_file = \"{}\"\n",
        c.dir().join("webhook-url").display()
    );
    std::fs::write(c.dir().join("webhook-url"), format!("{base}/flaky\n")).unwrap();
    let out = rollback_with(
        &c,
        &config,
        vec![
            ("TEST_SLACK", format!("{base}/slack")),
            ("TEST_PD_KEY", "routing-key-123".into()),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("notified webhook (4 attempts)"), "{stdout}");
    let r = received.lock().unwrap();
    // The first body each channel got is the rollback's; the resolution follows.
    let body = |channel: &str| {
        r.bodies
            .iter()
            .find(|(c, _)| c == channel)
            .map(|(_, b)| b.clone())
            .unwrap()
    };
    let slack = body("slack").to_string();
    for want in [
        "Rolled back shop/web: web:2 → web:1",
        "revision 2 `web:2`",
        "revision 1 `web:1`",
        "oncall-editor@",
        "error rate 25%",
        "inc-42",
    ] {
        assert!(slack.contains(want), "{want} in {slack}");
    }
    let pd = body("pagerduty");
    assert_eq!(
        (
            pd["routing_key"].as_str(),
            pd["event_action"].as_str(),
            pd["dedup_key"].as_str()
        ),
        (Some("routing-key-123"), Some("trigger"), Some("inc-42"))
    );
    let resolved = r
        .bodies
        .iter()
        .rev()
        .find(|(c, _)| c == "pagerduty")
        .unwrap();
    assert_eq!(
        (
            resolved.1["event_action"].as_str(),
            resolved.1["dedup_key"].as_str()
        ),
        (Some("resolve"), Some("inc-42")),
        "PagerDuty's incident is resolved once verified"
    );
    let flaky: Vec<&Value> = r
        .bodies
        .iter()
        .filter(|(c, _)| c == "flaky")
        .map(|(_, b)| b)
        .collect();
    let rolled_back = flaky.iter().filter(|b| b["event"] == "rolled_back").count();
    assert_eq!(rolled_back, 4, "three failures, then success");
    assert!(
        flaky.iter().any(|b| b["event"] == "resolved"),
        "verified, the webhook hears it is resolved: {flaky:?}"
    );
    assert!(
        !stdout.contains(&base) && !stdout.contains("routing-key-123"),
        "no URL or key is printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_stop_the_rollback() {
    let Some(c) = cluster().await else { return };
    let (base, _) = receivers().await;
    let config =
        "attempts = 2\ntimeout = \"1s\"\n[notifications.webhook]\nurl_env = \"TEST_HOOK\"\n";
    let out = rollback_with(&c, config, vec![("TEST_HOOK", format!("{base}/hang"))]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("webhook did not answer in time after 2 attempts")
            && stderr.contains("the rollback stands"),
        "{stderr}"
    );
    assert!(!stderr.contains(&base), "the URL is not printed: {stderr}");
    let image = c
        .kubectl_ok(&[
            "get",
            "deploy/web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(image, "web:1");
}

/// `backout status` with `extra` added to the simulator's config.
async fn status_with(
    c: &Cluster,
    extra: &str,
    env: Vec<(&'static str, String)>,
) -> std::process::Output {
    let written = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap();
    let config = c.dir().join("status.toml");
    std::fs::write(&config, format!("{written}\n{extra}")).unwrap();
    c.backout(&["status", "--config", config.to_str().unwrap()], &env)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_a_query_and_pages_nobody_even_when_a_trigger_fires() {
    let Some(c) = cluster().await else { return };
    let (base, received) = receivers().await;
    // Every answer breaches: the decision suggests, which a console or watcher pages.
    let extra = "[[trigger]]\nname = \"error-rate\"\nthreshold = 0.0\ncomparison = \">=\"\nfor = \"0s\"\nseverity = \"page_and_suggest\"\n\n[notifications.webhook]\nurl_env = \"TEST_HOOK\"\n";
    // A young simulator has too few requests for a ratio at first: status says "no
    // data" until it has them, so it is asked again until the trigger fires. No run
    // may page.
    common::eventually(
        Duration::from_secs(30),
        "error-rate firing in status",
        async || {
            let out = status_with(&c, extra, vec![("TEST_HOOK", format!("{base}/hook"))]).await;
            String::from_utf8_lossy(&out.stdout)
                .contains("error-rate firing")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let bodies = received.lock().unwrap().bodies.len();
    assert_eq!(bodies, 0, "status sent {bodies} notifications");
    assert!(
        c.journal().is_empty(),
        "and journaled nothing: {}",
        c.journal()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_2_with_a_dead_prometheus_names_what_is_blind_and_hides_its_password() {
    let Some(c) = cluster().await else { return };
    let written = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap();
    let url = written
        .lines()
        .find_map(|l| l.strip_prefix("url = "))
        .unwrap()
        .to_string();
    std::fs::write(
        c.dir().join("backout.toml"),
        written.replace(&url, "\"https://alice:hunter2@127.0.0.1:9/?token=s3cret\""),
    )
    .unwrap();
    let out = status_with(&c, "", vec![]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BLIND") && stderr.contains("error-rate on shop/web (error"),
        "{stderr}"
    );
    // The credentials in the URL are never shown.
    let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(!all.contains("hunter2") && !all.contains("s3cret"), "{all}");
}

/// What an Atlassian-shaped receiver was sent: the path, the Authorization header
/// and the body of each POST.
type Posts = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn atlassian_receiver() -> (String, Posts) {
    let posts: Posts = Arc::default();
    let record = |State(posts): State<Posts>,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  Json(body): Json<Value>| async move {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        posts
            .lock()
            .unwrap()
            .push((uri.path().to_string(), auth, body));
        // Statuspage answers a new incident with its id.
        (
            StatusCode::CREATED,
            Json(serde_json::json!({"id": "sp-inc-1"})),
        )
    };
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(record).patch(record))
        .with_state(posts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, posts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_opens_a_statuspage_incident_and_files_one_jira_ticket() {
    let Some(c) = cluster().await else { return };
    let (base, posts) = atlassian_receiver().await;
    let config = format!(
        "attempts = 2\ntimeout = \"2s\"\n[notifications.statuspage]\nurl = \"{base}/v1/pages/pg1/incidents\"\napi_key_env = \"TEST_SP_KEY\"\ncomponent_id = \"cmp-web\"\n[notifications.jira]\nurl = \"{base}/jira/\"\nproject = \"OPS\"\ntoken_env = \"TEST_JIRA_TOKEN\"\n"
    );
    let out = rollback_with(
        &c,
        &config,
        vec![
            ("TEST_SP_KEY", "sp-key-123".into()),
            ("TEST_JIRA_TOKEN", "jira-token-456".into()),
        ],
    )
    .await;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    let posts = posts.lock().unwrap();
    let to = |path: &str| -> Vec<&(String, String, Value)> {
        posts.iter().filter(|(p, _, _)| p == path).collect()
    };
    let incidents = to("/v1/pages/pg1/incidents");
    let opened = incidents.first().expect("a Statuspage incident");
    assert_eq!(opened.1, "OAuth sp-key-123");
    let incident = &opened.2["incident"];
    assert_eq!(incident["status"], "monitoring", "{incident}");
    assert_eq!(incident["components"]["cmp-web"], "degraded_performance");
    assert!(incident["body"]
        .as_str()
        .unwrap()
        .contains("Incident: inc-42"));
    assert_eq!(incidents.len(), 1, "one incident opened: {incidents:?}");
    let updates = to("/v1/pages/pg1/incidents/sp-inc-1");
    let resolved = updates
        .last()
        .expect("the incident the rollback opened is updated");
    assert_eq!(
        (
            &resolved.2["incident"]["status"],
            &resolved.2["incident"]["components"]["cmp-web"]
        ),
        (
            &serde_json::json!("resolved"),
            &serde_json::json!("operational")
        ),
        "verified, the incident is resolved: {incidents:?}"
    );
    let tickets = to("/jira/rest/api/2/issue");
    assert_eq!(tickets.len(), 1, "one ticket per rollback: {tickets:?}");
    assert_eq!(tickets[0].1, "Bearer jira-token-456");
    let fields = &tickets[0].2["fields"];
    assert_eq!(fields["project"]["key"], "OPS");
    assert_eq!(fields["labels"], serde_json::json!(["backout", "inc-42"]));
    assert!(
        fields["summary"]
            .as_str()
            .unwrap()
            .contains("Rolled back shop/web"),
        "{fields}"
    );
    assert!(
        !printed.contains("sp-key-123") && !printed.contains("jira-token-456"),
        "no key is printed"
    );
}
