//! `/openapi/v3`, as much of it as kubectl reads before a write: for each resource,
//! a PATCH operation tagged with its group-version-kind that takes `fieldValidation`.
//! kubectl then leaves validation to the server (`?fieldValidation=Strict`), which
//! `strict` does here as the real API server does: an unknown field is refused, with
//! its path, instead of being dropped in silence.

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::status::ApiError;
use crate::resources::{self, ResourceDef};

/// kubectl validates a `kind: List` itself, against OpenAPI v2 (which it reads as
/// protobuf only): an empty document, in which no kind has a schema, so kubectl
/// skips that check; each item is still checked by the server as it is written.
pub async fn v2() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )],
        Vec::<u8>::new(),
    )
}

/// The GV's path in the index: `api/v1`, `apis/apps/v1`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Every group-version this simulator serves, with the resources it writes.
fn served() -> Vec<(&'static str, &'static str)> {
    let mut gvs: Vec<(&str, &str)> = resources::ALL
        .iter()
        .filter(|r| !r.review)
        .map(|r| (r.group, r.version))
        .collect();
    gvs.sort_unstable();
    gvs.dedup();
    gvs
}

pub fn index() -> Value {
    let paths: serde_json::Map<String, Value> = served()
        .into_iter()
        .map(|(g, v)| {
            let path = gv_path(g, v);
            let url = json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=backout-sim")});
            (path, url)
        })
        .collect();
    json!({ "paths": paths })
}

/// The document for one group-version (`apis/apps/v1`), or `None` if not served.
pub fn group_version(path: &str) -> Option<Value> {
    let (group, version) = served()
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == path.trim_matches('/'))?;
    let mut paths = serde_json::Map::new();
    for r in resources::ALL
        .iter()
        .filter(|r| r.group == group && r.version == version && !r.review)
    {
        let item = if r.namespaced {
            format!("/{path}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("/{path}/{}/{{name}}", r.plural)
        };
        paths.insert(item, json!({"patch": operation(r)}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (backout-sim)", "version": super::discovery::version()["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn operation(r: &ResourceDef) -> Value {
    json!({
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"},
            "description": "Ignore, Warn or Strict: what to do with unknown or duplicate fields"}],
        "responses": {"200": {"description": "OK"}},
    })
}

/// `fieldValidation=Strict`: the object as its typed form reads it, or the real
/// server's error naming every field that form does not have.
pub fn strict(res: &ResourceDef, body: &Value) -> Result<(), ApiError> {
    use k8s_openapi::api::{apps, autoscaling, batch, coordination, core};
    let unknown = match res.kind {
        "Deployment" => unknown_fields::<apps::v1::Deployment>(body),
        "ReplicaSet" => unknown_fields::<apps::v1::ReplicaSet>(body),
        "Pod" => unknown_fields::<core::v1::Pod>(body),
        "Service" => unknown_fields::<core::v1::Service>(body),
        "ConfigMap" => unknown_fields::<core::v1::ConfigMap>(body),
        "Secret" => unknown_fields::<core::v1::Secret>(body),
        "Namespace" => unknown_fields::<core::v1::Namespace>(body),
        "Event" => unknown_fields::<core::v1::Event>(body),
        "Job" => unknown_fields::<batch::v1::Job>(body),
        "Lease" => unknown_fields::<coordination::v1::Lease>(body),
        "HorizontalPodAutoscaler" => {
            unknown_fields::<autoscaling::v2::HorizontalPodAutoscaler>(body)
        }
        _ => Ok(Vec::new()),
    };
    let unknown = unknown.map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {e}",
            kind = res.kind,
            v = res.version
        ))
    })?;
    if unknown.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    Err(ApiError::bad_request(format!(
        "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", "),
        kind = res.kind,
        v = res.version
    )))
}

/// The paths of the fields `T` does not have, as the API server writes them
/// (`spec.replicass`, `spec.template.spec.containers[0].imag`).
fn unknown_fields<T: DeserializeOwned>(body: &Value) -> Result<Vec<String>, serde_json::Error> {
    let mut unknown = Vec::new();
    let _: T = serde_ignored::deserialize(body, |path| unknown.push(api_path(&path)))?;
    Ok(unknown)
}

fn api_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", api_path(parent)),
        Path::Map { parent, key } => {
            let head = api_path(parent);
            if head.is_empty() {
                key.clone()
            } else {
                format!("{head}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => api_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_names_each_unknown_field_by_its_path() {
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "typo"},
            "spec": {"replicass": 1, "selector": {"matchLabels": {"app": "t"}},
                "template": {"metadata": {"labels": {"app": "t"}},
                    "spec": {"containers": [{"name": "t", "imag": "t:1"}]}}}});
        let err = strict(&resources::DEPLOYMENTS, &body).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicass\", unknown field \"spec.template.spec.containers[0].imag\""
        );
        let mut fine = body.clone();
        fine["spec"].as_object_mut().unwrap().remove("replicass");
        fine["spec"]["template"]["spec"]["containers"][0] = json!({"name": "t", "image": "t:1"});
        assert!(strict(&resources::DEPLOYMENTS, &fine).is_ok());
    }

    #[test]
    fn every_written_resource_has_a_patch_operation_that_takes_field_validation() {
        let index = index();
        for r in resources::ALL.iter().filter(|r| !r.review) {
            let path = gv_path(r.group, r.version);
            assert!(
                index["paths"][&path]["serverRelativeURL"].is_string(),
                "{path}"
            );
            let doc = group_version(&path).unwrap();
            let found = doc["paths"].as_object().unwrap().values().any(|p| {
                p["patch"]["x-kubernetes-group-version-kind"]["kind"] == r.kind
                    && p["patch"]["parameters"][0]["name"] == "fieldValidation"
            });
            assert!(found, "{}", r.kind);
        }
        assert!(group_version("apis/nope/v1").is_none());
    }
}
