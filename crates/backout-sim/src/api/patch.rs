//! The three patch types kubectl sends. JSON patch and merge patch come from the
//! json-patch crate; strategic merge patch has no maintained Rust implementation,
//! so the subset Kubernetes clients use is here: lists of named things merge by key.

use serde_json::{Map, Value};

use super::status::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    /// Server-side apply: kubectl only sends it with `--server-side`.
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let media = ct.split(';').next().unwrap_or("").trim();
        match media {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

pub fn apply(kind: PatchType, target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    match kind {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
            let mut doc = target.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                // A failed `test` is how callers guard a write. The real API server
                // answers it with a bare 422 that names neither path nor value
                // (tests/controlplane/divergences.rs holds the two side by side).
                if matches!(e.kind, json_patch::PatchErrorKind::TestFailed) {
                    ApiError::invalid("the server rejected our request due to an error in our request")
                } else {
                    ApiError::invalid(format!("the server rejected our request due to an error in our request: {e}"))
                }
            })?;
            Ok(doc)
        }
        PatchType::Merge | PatchType::StrategicMerge => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error decoding patch: {e}; the patch must be a JSON object"))
            })?;
            if !patch.is_object() {
                return Err(ApiError::bad_request("the patch must be a JSON object"));
            }
            let mut doc = target.clone();
            if kind == PatchType::Merge {
                json_patch::merge(&mut doc, &patch);
            } else {
                strategic_merge(&mut doc, &patch);
            }
            Ok(doc)
        }
        PatchType::Apply => Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the simulator does not implement server-side apply; use kubectl apply without --server-side",
        )),
    }
}

/// The field that identifies an element of a list, as the Kubernetes API's
/// `patchMergeKey` tags say. `None` means the list is replaced whole.
fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "ports" => match sample {
            Some(v) if v.get("containerPort").is_some() => Some("containerPort"),
            _ => Some("port"),
        },
        _ => None,
    }
}

fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        replaced.as_object_mut().map(|m| m.remove("$patch"));
        *target = replaced;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_map = target.as_object_mut().expect("made an object above");
    for (key, value) in patch_map {
        if key.starts_with('$') {
            continue; // $setElementOrder, $retainKeys and friends only order or prune
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        let slot = target_map.entry(key.clone()).or_insert(Value::Null);
        match (
            value,
            merge_key(key, value.as_array().and_then(|a| a.first())),
        ) {
            (Value::Array(items), Some(mk)) if slot.is_array() => merge_list(slot, items, mk),
            (Value::Array(items), Some(_)) => {
                *slot = Value::Array(
                    items
                        .iter()
                        .filter(|i| i.get("$patch").is_none())
                        .cloned()
                        .collect(),
                );
            }
            (Value::Object(_), _) => strategic_merge(slot, value),
            _ => *slot = value.clone(),
        }
    }
}

fn merge_list(slot: &mut Value, items: &[Value], mk: &str) {
    let list = slot.as_array_mut().expect("checked by caller");
    for item in items {
        let id = &item[mk];
        let pos = list.iter().position(|existing| &existing[mk] == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (Some(i), false) => strategic_merge(&mut list[i], item),
            (None, false) => list.push(item.clone()),
            (None, true) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "proxy:1"}
        ]}}}})
    }

    #[test]
    fn strategic_merge_updates_one_container_by_name() {
        let patch = br#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"},{"name":"sidecar"}],"containers":[{"name":"app","image":"app:2"}]}}}}"#;
        let out = apply(PatchType::StrategicMerge, &deploy(), patch).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "app:2");
        assert_eq!(containers[0]["env"][0]["value"], "1");
        assert_eq!(containers[1]["image"], "proxy:1");
    }

    #[test]
    fn strategic_merge_null_deletes_and_patch_delete_removes_an_element() {
        let patch = br#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"},{"name":"app","env":[{"name":"A","value":null}]}]}}}}"#;
        let out = apply(PatchType::StrategicMerge, &deploy(), patch).unwrap();
        let containers = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1);
        assert!(containers[0]["env"][0].get("value").is_none());
    }

    #[test]
    fn merge_patch_replaces_lists_whole() {
        let patch =
            br#"{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"x"}]}}}}"#;
        let out = apply(PatchType::Merge, &deploy(), patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn json_patch_test_failure_is_rejected_and_changes_nothing() {
        let target = json!({"metadata": {"resourceVersion": "5"}, "spec": {"replicas": 1}});
        let patch = br#"[{"op":"test","path":"/metadata/resourceVersion","value":"4"},{"op":"replace","path":"/spec/replicas","value":3}]"#;
        let err = apply(PatchType::Json, &target, patch).unwrap_err();
        assert_eq!(err.code.as_u16(), 422);
        assert_eq!(target["spec"]["replicas"], 1);
    }

    #[test]
    fn malformed_patches_are_bad_requests() {
        assert_eq!(
            apply(PatchType::Json, &deploy(), b"{nope")
                .unwrap_err()
                .code
                .as_u16(),
            400
        );
        assert_eq!(
            apply(PatchType::Merge, &deploy(), b"[1]")
                .unwrap_err()
                .code
                .as_u16(),
            400
        );
    }
}
