//! Watch streams: one JSON event per line over chunked HTTP, with resourceVersion
//! semantics, initial events, bookmarks, timeouts and 410 Expired.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::handlers::{is_true, Filters, Target};
use super::status::ApiError;
use crate::resources::ResourceDef;
use crate::store::{meta_str, EventKind, StoreError, WatchEvent};
use crate::SimState;

fn line(kind: &str, object: &Value) -> Bytes {
    let mut out = serde_json::to_vec(&json!({"type": kind, "object": object}))
        .expect("JSON values serialize");
    out.push(b'\n');
    Bytes::from(out)
}

fn bookmark(res: &ResourceDef, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta}),
    )
}

fn expired(requested: u64, oldest: u64) -> Bytes {
    let err = ApiError::new(
        axum::http::StatusCode::GONE,
        "Expired",
        format!("too old resource version: {requested} ({oldest})"),
    );
    line("ERROR", &err.body())
}

struct Scope {
    namespace: Option<String>,
    filters: Filters,
}

impl Scope {
    fn admits(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta_str(obj, "namespace") == ns)
            && self.filters.matches(obj)
    }

    /// The event this watcher should see, turning moves across its selector
    /// into DELETED or ADDED as the API server does.
    fn translate(&self, ev: &WatchEvent) -> Option<(EventKind, Arc<Value>)> {
        let now = self.admits(&ev.object);
        let before = ev.prev.as_ref().is_some_and(|p| self.admits(p));
        match ev.kind {
            EventKind::Modified if now && !before => Some((EventKind::Added, ev.object.clone())),
            EventKind::Modified if !now && before => Some((EventKind::Deleted, ev.object.clone())),
            EventKind::Deleted if before => Some((EventKind::Deleted, ev.object.clone())),
            EventKind::Deleted => None,
            kind if now => Some((kind, ev.object.clone())),
            _ => None,
        }
    }
}

pub fn start(
    sim: Arc<SimState>,
    target: &Target,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let scope = Scope {
        namespace: target.namespace.clone(),
        filters: Filters::parse(params)?,
    };
    let res = target.res;
    let requested = params
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let send_initial = is_true(params.get("sendInitialEvents"));
    let bookmarks = is_true(params.get("allowWatchBookmarks"));
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);

    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut first: Vec<Bytes> = Vec::new();
    let mut live = None;
    {
        let store = sim.store.lock().expect("store lock");
        let now = store.resource_version();
        let since = if requested.is_empty() || requested == "0" || send_initial {
            for obj in store
                .list(res, scope.namespace.as_deref())
                .filter(|o| scope.admits(o))
            {
                first.push(line("ADDED", obj));
            }
            if send_initial {
                first.push(bookmark(res, now, true));
            }
            Some(now)
        } else {
            match requested.parse::<u64>() {
                Ok(rv) => Some(rv),
                Err(_) => {
                    return Err(ApiError::bad_request(format!(
                        "resourceVersion must be a number, got {requested:?}"
                    )))
                }
            }
        };
        match store.watch_from(res, since.unwrap_or(now)) {
            Ok((backlog, receiver)) => {
                for ev in backlog {
                    if let Some((kind, obj)) = scope.translate(&ev) {
                        first.push(line(kind.wire_name(), &obj));
                    }
                }
                live = Some(receiver);
            }
            Err(StoreError::Expired { requested, oldest }) => {
                first.push(expired(requested, oldest))
            }
            Err(other) => return Err(other.into()),
        }
    }
    let resets = sim.watch_resets.subscribe();
    tokio::spawn(pump(
        sim, res, scope, first, live, tx, resets, bookmarks, timeout,
    ));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>)),
    )
        .into_response())
}

#[allow(clippy::too_many_arguments)]
async fn pump(
    sim: Arc<SimState>,
    res: &'static ResourceDef,
    scope: Scope,
    first: Vec<Bytes>,
    live: Option<broadcast::Receiver<Arc<WatchEvent>>>,
    tx: mpsc::Sender<Bytes>,
    mut resets: broadcast::Receiver<()>,
    bookmarks: bool,
    timeout: Option<Duration>,
) {
    for chunk in first {
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
    let Some(mut live) = live else { return };
    let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(365 * 24 * 3600)));
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(sim.bookmark_interval);
    ticker.tick().await;
    loop {
        let chunk = tokio::select! {
            _ = &mut deadline => return,
            _ = resets.recv() => return,
            _ = ticker.tick(), if bookmarks => {
                let rv = sim.store.lock().expect("store lock").resource_version();
                bookmark(res, rv, false)
            }
            ev = live.recv() => match ev {
                Ok(ev) => match scope.translate(&ev) {
                    Some((kind, obj)) => line(kind.wire_name(), &obj),
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // The watcher fell too far behind to be caught up: tell it to relist.
                    let rv = sim.store.lock().expect("store lock").resource_version();
                    let _ = tx.send(expired(0, rv)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
}
