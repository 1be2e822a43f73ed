//! Reads the pod the console opened, once: the pod itself (for a describe-like
//! summary), the previous container's log when a container has restarted (what a
//! crash loop died of), then the current log, followed until the console closes the
//! pod. Everything goes to the core as `Msg::Pod`; the console aborts the task.

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod};
use kube::api::{Api, LogParams};
use kube::Client;
use tokio::sync::mpsc;

use crate::engine::model::pod_view::{PodFeed, PodLog};
use crate::engine::Msg;
use crate::sources::kube::one_line;

/// Lines asked of the previous run, and of the current log before following it.
const PREVIOUS_LINES: i64 = 200;
const TAIL_LINES: i64 = 500;

pub fn spawn(
    client: Client,
    namespace: &str,
    pod: &str,
    opened: u64,
    tx: mpsc::Sender<Msg>,
) -> tokio::task::JoinHandle<()> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let pod = pod.to_string();
    tokio::spawn(async move {
        let send = |feed: PodFeed| tx.send(Msg::Pod { opened, feed });
        let why = read(&api, &pod, &send).await;
        let _ = send(PodFeed::Ended(why)).await;
    })
}

/// Reads until the log ends; returns why it ended, in words.
async fn read<F, Fut>(api: &Api<Pod>, name: &str, send: &F) -> String
where
    F: Fn(PodFeed) -> Fut,
    Fut: std::future::Future<Output = Result<(), mpsc::error::SendError<Msg>>>,
{
    let pod = match api.get(name).await {
        Ok(pod) => pod,
        Err(e) => return format!("cannot read pod {name}: {}", one_line(&e)),
    };
    if send(PodFeed::Summary(summary(&pod))).await.is_err() {
        return String::new();
    }
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let container = worst(&pod, &statuses);
    let restarted = statuses
        .iter()
        .any(|s| Some(&s.name) == container.as_ref() && s.restart_count > 0);
    if restarted {
        let lines = match api
            .logs(
                name,
                &LogParams {
                    container: container.clone(),
                    previous: true,
                    tail_lines: Some(PREVIOUS_LINES),
                    ..LogParams::default()
                },
            )
            .await
        {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(e) => vec![format!(
                "(the previous run's log cannot be read: {})",
                one_line(&e)
            )],
        };
        let log = PodLog {
            container: container.clone().unwrap_or_default(),
            lines,
        };
        if send(PodFeed::Previous(log)).await.is_err() {
            return String::new();
        }
    }
    let params = LogParams {
        container,
        follow: true,
        tail_lines: Some(TAIL_LINES),
        ..LogParams::default()
    };
    let stream = match api.log_stream(name, &params).await {
        Ok(stream) => stream,
        Err(e) => return format!("cannot read the log: {}", one_line(&e)),
    };
    // Lines come in bursts (the tail, then a line at a time): one message per burst.
    let mut lines = std::pin::pin!(stream.lines().ready_chunks(256));
    while let Some(chunk) = lines.next().await {
        let (ok, failed): (Vec<_>, Vec<_>) = chunk.into_iter().partition(Result::is_ok);
        let ok: Vec<String> = ok.into_iter().filter_map(Result::ok).collect();
        if !ok.is_empty() && send(PodFeed::Lines(ok)).await.is_err() {
            return String::new();
        }
        if let Some(Err(e)) = failed.into_iter().next() {
            return format!("the log stream broke: {e}");
        }
    }
    "the log ended: the container stopped or the server closed the stream".into()
}

/// The container to read: the first one waiting or restarted, else the first.
fn worst(pod: &Pod, statuses: &[ContainerStatus]) -> Option<String> {
    statuses
        .iter()
        .find(|s| s.restart_count > 0 || !s.ready)
        .map(|s| s.name.clone())
        .or_else(|| {
            let spec = pod.spec.as_ref()?;
            spec.containers.first().map(|c| c.name.clone())
        })
}

/// What `kubectl describe pod` leads with, in a few lines.
pub fn summary(pod: &Pod) -> Vec<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let mut lines = vec![format!(
        "node {}  ip {}  started {}  phase {}",
        spec.and_then(|s| s.node_name.as_deref()).unwrap_or("-"),
        status.and_then(|s| s.pod_ip.as_deref()).unwrap_or("-"),
        status
            .and_then(|s| s.start_time.as_ref())
            .map_or("-".into(), |t| t.0.to_string()),
        status.and_then(|s| s.phase.as_deref()).unwrap_or("-"),
    )];
    if let Some(owner) = crate::engine::kept::controller(meta, "ReplicaSet") {
        lines.push(format!("controlled by ReplicaSet/{owner}"));
    }
    for c in status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
    {
        lines.push(format!(
            "container {}  {}  ready {}  restarts {}  now {}{}",
            c.name,
            c.image,
            c.ready,
            c.restart_count,
            state_words(c.state.as_ref()),
            c.last_state
                .as_ref()
                .filter(|s| s.terminated.is_some())
                .map_or(String::new(), |s| format!(
                    "  last {}",
                    state_words(Some(s))
                )),
        ));
    }
    let failing: Vec<String> = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.status != "True")
        .map(|c| {
            let why = c.reason.as_deref().unwrap_or("");
            format!("{} {why}", c.type_).trim_end().to_string()
        })
        .collect();
    if !failing.is_empty() {
        lines.push(format!("not true: {}", failing.join(", ")));
    }
    lines
}

fn state_words(state: Option<&ContainerState>) -> String {
    let Some(state) = state else {
        return "unknown".into();
    };
    if let Some(w) = &state.waiting {
        return format!("waiting ({})", w.reason.as_deref().unwrap_or("?"));
    }
    if let Some(t) = &state.terminated {
        return format!(
            "terminated ({}, exit {})",
            t.reason.as_deref().unwrap_or("?"),
            t.exit_code
        );
    }
    "running".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_each_containers_state_and_how_its_last_run_ended() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "ReplicaSet", "name": "web-abc", "uid": "u", "controller": true}]},
            "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "web:2"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": [{"name": "web", "image": "web:2", "imageID": "", "ready": false,
                    "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "Error", "exitCode": 101}}}]}
        }))
        .unwrap();
        let lines = summary(&pod);
        assert!(lines[0].contains("node node-a") && lines[0].contains("ip 10.0.0.5"));
        assert_eq!(lines[1], "controlled by ReplicaSet/web-abc");
        assert_eq!(
            lines[2],
            "container web  web:2  ready false  restarts 3  now waiting (CrashLoopBackOff)  last terminated (Error, exit 101)"
        );
        assert_eq!(lines[3], "not true: Ready ContainersNotReady");
        let statuses = pod
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .clone()
            .unwrap();
        assert_eq!(worst(&pod, &statuses).as_deref(), Some("web"));
    }
}
