//! `meta.k8s.io/v1` Tables, which kubectl asks for (`Accept: …;as=Table`) to print
//! `kubectl get`: the columns the real API server gives pods, Deployments and
//! ReplicaSets, and NAME / CREATED AT for everything else, as it does.

use std::borrow::Borrow;

use axum::http::HeaderMap;
use serde_json::{json, Value};

use crate::resources::ResourceDef;

/// The client asked for a Table (kubectl always lists plain JSON as its fallback).
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table") && a.contains("g=meta.k8s.io"))
}

/// A column: name, type, and priority (0 always shown; 1 with `-o wide`).
type Column = (&'static str, &'static str, u8);

fn columns(res: &ResourceDef) -> Vec<Column> {
    match res.kind {
        "Pod" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        "Deployment" => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "ReplicaSet" => vec![
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _ => vec![("Name", "string", 0), ("Created At", "date", 0)],
    }
}

fn cells(res: &ResourceDef, o: &Value, now_ms: u64) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let age = json!(age(o, now_ms));
    let int = |v: &Value| json!(v.as_i64().unwrap_or(0));
    let containers = |spec: &Value| {
        let list = spec["template"]["spec"]["containers"].as_array().cloned();
        let field = |f: &str| {
            let names: Vec<&str> = list
                .iter()
                .flatten()
                .filter_map(|c| c[f].as_str())
                .collect();
            json!(names.join(","))
        };
        (field("name"), field("image"))
    };
    let selector = |spec: &Value| {
        json!(backout_k8s::selectors::from_labels(
            &spec["selector"]["matchLabels"]
        ))
    };
    match res.kind {
        "Pod" => {
            let statuses = o["status"]["containerStatuses"].as_array();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses
                .into_iter()
                .flatten()
                .filter(|c| c["ready"] == true)
                .count();
            let restarts: i64 = statuses
                .into_iter()
                .flatten()
                .filter_map(|c| c["restartCount"].as_i64())
                .sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(restarts.to_string()),
                age,
                json!(o["status"]["podIP"].as_str().unwrap_or("<none>")),
                json!(o["spec"]["nodeName"].as_str().unwrap_or("<none>")),
            ]
        }
        "Deployment" => {
            let (s, spec) = (&o["status"], &o["spec"]);
            let (names, images) = containers(spec);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s["readyReplicas"].as_i64().unwrap_or(0),
                    spec["replicas"].as_i64().unwrap_or(1)
                )),
                int(&s["updatedReplicas"]),
                int(&s["availableReplicas"]),
                age,
                names,
                images,
                selector(spec),
            ]
        }
        "ReplicaSet" => {
            let (s, spec) = (&o["status"], &o["spec"]);
            let (names, images) = containers(spec);
            vec![
                name,
                int(&spec["replicas"]),
                int(&s["replicas"]),
                int(&s["readyReplicas"]),
                age,
                names,
                images,
                selector(spec),
            ]
        }
        _ => vec![name, json!(o["metadata"]["creationTimestamp"])],
    }
}

/// STATUS as kubectl prints a pod's: a container's waiting or terminated reason over
/// the phase, and Terminating while it is being deleted.
fn pod_status(o: &Value) -> String {
    if !o["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".into();
    }
    let from_container = o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|c| {
            c["state"]["waiting"]["reason"]
                .as_str()
                .or(c["state"]["terminated"]["reason"].as_str())
        });
    from_container
        .or(o["status"]["phase"].as_str())
        .unwrap_or("Unknown")
        .to_string()
}

/// AGE as kubectl's HumanDuration writes it: 45s, 3m20s, 15m, 5h, 3d.
fn age(o: &Value, now_ms: u64) -> String {
    let Some(created) = o["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    let secs = (now_ms as i64 / 1000 - created.as_second()).max(0);
    let (m, h) = (secs / 60, secs / 3600);
    match secs {
        s if s < 120 => format!("{s}s"),
        _ if m < 10 && secs % 60 != 0 => format!("{m}m{}s", secs % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ => format!("{}d", h / 24),
    }
}

pub fn of<O: Borrow<Value>>(res: &ResourceDef, items: &[O], metadata: Value, now_ms: u64) -> Value {
    let definitions: Vec<Value> = columns(res)
        .into_iter()
        .map(|(name, kind, priority)| {
            json!({"name": name, "type": kind, "format": if name == "Name" { "name" } else { "" },
                "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let o = o.borrow();
            json!({"cells": cells(res, o, now_ms), "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"]}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_looping_pod_reads_as_kubectl_prints_it() {
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": "1970-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let table = of(&crate::resources::PODS, &[pod], json!({}), 200_000);
        assert_eq!(
            table["rows"][0]["cells"],
            json!([
                "web-1",
                "0/1",
                "CrashLoopBackOff",
                "4",
                "3m20s",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(table["columnDefinitions"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn ages_read_as_human_durations() {
        let at = |secs: u64| {
            age(
                &json!({"metadata": {"creationTimestamp": "1970-01-01T00:00:00Z"}}),
                secs * 1000,
            )
        };
        assert_eq!(
            [
                at(45),
                at(600),
                at(3 * 3600 + 60),
                at(30 * 3600),
                at(72 * 3600)
            ],
            ["45s", "10m", "3h1m", "30h", "3d"]
        );
    }
}
