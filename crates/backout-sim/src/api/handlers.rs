//! The REST verbs over every stored resource: get, list, create, update, patch and
//! delete, plus the `status`, `scale` and `log` subresources and `dryRun=All`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::admission::admit;
use super::auth::{authorize, Attributes};
use super::patch::{self, PatchType};
use super::status::ApiError;
use super::{list, reviews, watch};
use crate::resources::{self, ResourceDef, Subresource};
use crate::store::{meta_str, Store};
use crate::SimState;
use backout_k8s::selectors::{FieldSelector, LabelSelector};

/// A request path resolved against the resource table.
#[derive(Debug)]
pub struct Target {
    pub res: &'static ResourceDef,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<Subresource>,
}

pub fn resolve(path: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => {
            return Err(ApiError::not_found(format!(
                "the server could not find the requested resource ({path})"
            )))
        }
    };
    let unknown = |plural: &str| {
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        ApiError::not_found(format!(
            "the server could not find the requested resource: no resource \"{plural}\" in {gv}; `kubectl api-resources` lists what this cluster serves"
        ))
    };
    let find =
        |plural: &str| resources::find(group, version, plural).ok_or_else(|| unknown(plural));
    let sub_of = |res: &ResourceDef, s: &str| {
        res.subresources
            .iter()
            .copied()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                ApiError::not_found(format!("{} has no subresource \"{s}\"", res.qualified()))
            })
    };
    let owned = |s: &str| Some(s.to_string());
    let target = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if resources::find(group, version, plural).is_some() =>
        {
            let res = find(plural)?;
            match tail {
                [] => Target {
                    res,
                    namespace: owned(ns),
                    name: None,
                    sub: None,
                },
                [name] => Target {
                    res,
                    namespace: owned(ns),
                    name: owned(name),
                    sub: None,
                },
                [name, sub] => Target {
                    res,
                    namespace: owned(ns),
                    name: owned(name),
                    sub: Some(sub_of(res, sub)?),
                },
                _ => return Err(unknown(plural)),
            }
        }
        ["namespaces", _, plural, ..] => return Err(unknown(plural)),
        [plural] => Target {
            res: find(plural)?,
            namespace: None,
            name: None,
            sub: None,
        },
        [plural, name] => Target {
            res: find(plural)?,
            namespace: None,
            name: owned(name),
            sub: None,
        },
        [plural, name, sub] => {
            let res = find(plural)?;
            Target {
                res,
                namespace: None,
                name: owned(name),
                sub: Some(sub_of(res, sub)?),
            }
        }
        _ => return Err(unknown(rest.first().copied().unwrap_or(""))),
    };
    if target.res.namespaced && target.namespace.is_none() && target.name.is_some() {
        return Err(ApiError::not_found(format!(
            "{} is namespaced; give a namespace",
            target.res.qualified()
        )));
    }
    Ok(target)
}

fn verb(method: &Method, target: &Target, params: &HashMap<String, String>) -> &'static str {
    match *method {
        Method::GET if target.name.is_some() => "get",
        Method::GET if is_true(params.get("watch")) => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

pub fn is_true(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1"))
}

/// `fieldValidation=Strict`, which kubectl sends once `/openapi/v3` says it may.
fn strict(params: &HashMap<String, String>) -> bool {
    params.get("fieldValidation").is_some_and(|v| v == "Strict")
}

fn dry_run(params: &HashMap<String, String>) -> bool {
    params.get("dryRun").is_some_and(|v| v == "All")
}

pub async fn serve(
    sim: Arc<SimState>,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    params: HashMap<String, String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = sim.users.authenticate(headers)?.clone();
    let target = resolve(path)?;
    let verb = verb(&method, &target, &params);
    sim.audit.lock().expect("audit lock").insert(crate::Access {
        user: user.name.clone(),
        verb: verb.to_string(),
        group: target.res.group.to_string(),
        resource: match target.sub {
            Some(sub) => format!("{}/{}", target.res.plural, sub.name()),
            None => target.res.plural.to_string(),
        },
    });
    authorize(
        &user,
        &Attributes {
            verb,
            resource: target.res,
            subresource: target.sub.map(Subresource::name),
            namespace: target.namespace.as_deref(),
            name: target.name.as_deref(),
        },
    )?;
    // Who-am-I needs nothing from its body, so kubectl's protobuf body is fine there.
    if matches!(verb, "create" | "update" | "patch") && target.res.kind != "SelfSubjectReview" {
        reject_protobuf(headers)?;
    }
    if target.res.review {
        return match verb {
            "create" => reviews::answer(&sim, &user, target.res, &body),
            _ => Err(ApiError::method_not_allowed(format!(
                "{} only supports create",
                target.res.qualified()
            ))),
        };
    }
    match verb {
        "get" if target.sub == Some(Subresource::Log) => super::logs::serve(sim, &target, &params),
        _ if target.sub == Some(Subresource::Log) => Err(ApiError::method_not_allowed(format!(
            "{path} is read only: GET it"
        ))),
        "get" if target.sub.is_none() && super::table::wanted(headers) => {
            let obj = get(&sim, &target)?;
            let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
            let table = super::table::of(target.res, &[obj], meta, crate::controller::unix_ms());
            Ok(ok_json(table))
        }
        // A list's resourceVersion and continue token page the table as they page the list.
        "list" if target.sub.is_none() && super::table::wanted(headers) => {
            let page = list::list(&sim, &target, &params)?;
            let table = super::table::of(
                target.res,
                &page.items,
                page.metadata(),
                crate::controller::unix_ms(),
            );
            Ok(ok_json(table))
        }
        "get" => get(&sim, &target).map(ok_json),
        "list" => list::list(&sim, &target, &params)?.into_response(),
        "watch" => watch::start(sim, &target, &params),
        "create" => create(&sim, &target, &params, &body)
            .map(|v| (StatusCode::CREATED, Json(v)).into_response()),
        "update" => write(&sim, &target, &params, |_| decode(&body)).map(ok_json),
        "patch" => {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchType::from_content_type(ct).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format ({ct}); accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"),
                )
            })?;
            write(&sim, &target, &params, |current| {
                patch::apply(kind, current, &body)
            })
            .map(ok_json)
        }
        "delete" => delete(&sim, &target, &params).map(ok_json),
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {path}"
        ))),
    }
}

fn ok_json(v: Value) -> Response {
    Json(v).into_response()
}

fn reject_protobuf(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.contains("protobuf") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the simulator accepts JSON request bodies only; write the object as YAML and use `kubectl apply -f` (or `kubectl create -f`) instead of a typed generator",
        ));
    }
    Ok(())
}

fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

fn ns_of(target: &Target) -> &str {
    target.namespace.as_deref().unwrap_or("")
}

fn fetch(store: &Store, target: &Target) -> Result<Arc<Value>, ApiError> {
    let name = target.name.as_deref().unwrap_or("");
    store.get(target.res, ns_of(target), name).ok_or_else(|| {
        ApiError::not_found(format!("{} \"{name}\" not found", target.res.qualified()))
    })
}

fn get(sim: &SimState, target: &Target) -> Result<Value, ApiError> {
    let store = sim.store.lock().expect("store lock");
    let obj = fetch(&store, target)?;
    Ok(match target.sub {
        Some(Subresource::Scale) => scale_of(&obj),
        _ => (*obj).clone(),
    })
}

/// The `autoscaling/v1 Scale` view of a workload.
fn scale_of(obj: &Value) -> Value {
    let selector = backout_k8s::selectors::from_labels(&obj["spec"]["selector"]["matchLabels"]);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"]},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

pub struct Filters {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filters {
    pub fn parse(params: &HashMap<String, String>) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(params.get("fieldSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?;
        Ok(Filters { labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

fn create(
    sim: &SimState,
    target: &Target,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<Value, ApiError> {
    if target.name.is_some() {
        return Err(ApiError::method_not_allowed(
            "POST creates in a collection; drop the name from the path",
        ));
    }
    let mut obj = decode(body)?;
    if strict(params) {
        super::openapi::strict(target.res, &obj)?;
    }
    if let Some(ns) = &target.namespace {
        let given = meta_str(&obj, "namespace");
        if !given.is_empty() && given != ns {
            return Err(ApiError::bad_request(format!(
                "the namespace of the provided object ({given}) does not match the namespace sent on the request ({ns})"
            )));
        }
        obj["metadata"]["namespace"] = json!(ns);
    }
    admit(target.res, &mut obj, None)?;
    let mut store = sim.store.lock().expect("store lock");
    if dry_run(params) {
        store.prepare_create(target.res, &mut obj)?;
        return Ok(obj);
    }
    Ok((*store.create(target.res, obj)?).clone())
}

/// PUT and PATCH: compute the next object from the current one, keep what the
/// subresource may not change, admit it, and store it (unless dry-run).
fn write(
    sim: &SimState,
    target: &Target,
    params: &HashMap<String, String>,
    next_from: impl FnOnce(&Value) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let mut store = sim.store.lock().expect("store lock");
    let current = fetch(&store, target)?;
    let mut next = match target.sub {
        Some(Subresource::Scale) => {
            let scale = next_from(&scale_of(&current))?;
            let replicas = scale["spec"]["replicas"].as_i64().ok_or_else(|| {
                ApiError::invalid("Scale.autoscaling is invalid: spec.replicas: Required value")
            })?;
            let mut next = (*current).clone();
            next["spec"]["replicas"] = json!(replicas);
            if let Some(rv) = scale["metadata"]["resourceVersion"].as_str() {
                next["metadata"]["resourceVersion"] = json!(rv);
            }
            next
        }
        Some(Subresource::Status) => {
            let asked = next_from(&current)?;
            let mut next = (*current).clone();
            next["status"] = asked["status"].clone();
            next["metadata"]["resourceVersion"] = asked["metadata"]["resourceVersion"].clone();
            next
        }
        Some(Subresource::Log) => {
            return Err(ApiError::method_not_allowed("pods/log is read only"))
        }
        None => {
            let mut next = next_from(&current)?;
            if target.res.has_subresource(Subresource::Status) {
                next["status"] = current["status"].clone();
            }
            next
        }
    };
    if meta_str(&next, "name") != target.name.as_deref().unwrap_or("") {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    if target.res.namespaced {
        next["metadata"]["namespace"] = json!(ns_of(target));
    }
    if strict(params) && target.sub.is_none() {
        super::openapi::strict(target.res, &next)?;
    }
    admit(target.res, &mut next, Some(&current))?;
    let stored = if dry_run(params) {
        store
            .prepare_update(target.res, next)?
            .unwrap_or_else(|| (*current).clone())
    } else {
        (*store.update(target.res, next)?).clone()
    };
    Ok(match target.sub {
        Some(Subresource::Scale) => scale_of(&stored),
        _ => stored,
    })
}

fn delete(
    sim: &SimState,
    target: &Target,
    params: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let Some(name) = target.name.as_deref() else {
        return Err(ApiError::method_not_allowed(
            "deleting a whole collection is not supported; delete objects by name",
        ));
    };
    let mut store = sim.store.lock().expect("store lock");
    if dry_run(params) {
        return fetch(&store, target).map(|o| (*o).clone());
    }
    Ok((*store.delete(target.res, ns_of(target), name)?).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_resources_names_and_subresources() {
        let t = resolve("/apis/apps/v1/namespaces/shop/deployments/web/scale").unwrap();
        assert_eq!(
            (t.res.kind, t.namespace.as_deref(), t.name.as_deref()),
            ("Deployment", Some("shop"), Some("web"))
        );
        assert_eq!(t.sub, Some(Subresource::Scale));
        let t = resolve("/api/v1/namespaces/shop").unwrap();
        assert_eq!((t.res.kind, t.name.as_deref()), ("Namespace", Some("shop")));
        let t = resolve("/api/v1/pods").unwrap();
        assert_eq!((t.res.kind, t.namespace, t.name), ("Pod", None, None));
        let err = resolve("/apis/apps/v1/namespaces/shop/widgets").unwrap_err();
        assert_eq!(err.code, StatusCode::NOT_FOUND);
        assert!(
            err.message.contains("no resource \"widgets\""),
            "{}",
            err.message
        );
    }
}
