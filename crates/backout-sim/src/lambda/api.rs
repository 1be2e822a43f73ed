//! The Lambda API's paths that backout uses, as AWS serves them (REST-JSON, errors
//! named in `x-amzn-errortype`): GetAlias, UpdateAlias (with the `RevisionId`
//! precondition AWS enforces), ListVersionsByFunction, ListTags and TagResource.
//! Requests are not signature-checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Alias, Function, Version, ACCOUNT, REGION};
use crate::SimState;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route(
            "/2015-03-31/functions/{function}/aliases/{alias}",
            get(get_alias).put(update_alias),
        )
        .route(
            "/2015-03-31/functions/{function}/versions",
            get(list_versions),
        )
        .route("/2017-03-31/tags/{arn}", get(list_tags).post(tag_resource))
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        [("x-amzn-errortype", kind)],
        Json(json!({"__type": kind, "Type": "User", "message": message})),
    )
        .into_response()
}

fn not_found(what: String) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("Function not found: {what}"),
    )
}

fn alias_json(f: &Function, name: &str, a: &Alias) -> Value {
    json!({
        "AliasArn": format!("{}:{name}", f.arn()),
        "Name": name,
        "FunctionVersion": a.version,
        "Description": a.description,
        "RoutingConfig": {"AdditionalVersionWeights": a.weights},
        "RevisionId": a.revision_id,
    })
}

fn version_json(f: &Function, v: &Version) -> Value {
    let digest = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        v.image.hash(&mut h);
        format!("{:016x}{:016x}", h.finish(), h.finish().rotate_left(17))
    };
    json!({
        "FunctionName": f.name,
        "FunctionArn": format!("{}:{}", f.arn(), v.number),
        "Version": v.number.to_string(),
        "Description": v.description,
        "CodeSha256": digest,
        "LastModified": v.last_modified,
        "Runtime": "provided.al2023",
        "PackageType": "Zip",
    })
}

async fn get_alias(
    State(state): State<Arc<SimState>>,
    Path((function, alias)): Path<(String, String)>,
) -> Response {
    let functions = state.lambda.lock().expect("lambda lock");
    let Some(f) = functions.by_name.get(&function) else {
        return not_found(format!(
            "arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"
        ));
    };
    match f.aliases.get(&alias) {
        Some(a) => Json(alias_json(f, &alias, a)).into_response(),
        None => not_found(format!("{}:{alias}", f.arn())),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateAlias {
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
    revision_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoutingConfig {
    #[serde(default)]
    additional_version_weights: BTreeMap<String, f64>,
}

async fn update_alias(
    State(state): State<Arc<SimState>>,
    Path((function, alias)): Path<(String, String)>,
    Json(body): Json<UpdateAlias>,
) -> Response {
    let mut functions = state.lambda.lock().expect("lambda lock");
    let Some(f) = functions.by_name.get_mut(&function) else {
        return not_found(format!(
            "arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"
        ));
    };
    let arn = f.arn();
    let exists = |v: &str| f.versions.iter().any(|x| x.number.to_string() == v);
    if let Some(v) = body.function_version.as_deref().filter(|v| !exists(v)) {
        return not_found(format!("{arn}:{v}"));
    }
    let Some(a) = f.aliases.get(&alias).cloned() else {
        return not_found(format!("{arn}:{alias}"));
    };
    if body
        .revision_id
        .as_ref()
        .is_some_and(|r| *r != a.revision_id)
    {
        return error(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetAlias API to retrieve the latest Revision Id".into(),
        );
    }
    let next = Alias {
        version: body.function_version.unwrap_or(a.version),
        weights: body
            .routing_config
            .map_or(a.weights, |r| r.additional_version_weights),
        description: body.description.unwrap_or(a.description),
        revision_id: uuid::Uuid::new_v4().to_string(),
    };
    let answer = alias_json(f, &alias, &next);
    f.aliases.insert(alias, next);
    Json(answer).into_response()
}

async fn list_versions(
    State(state): State<Arc<SimState>>,
    Path(function): Path<String>,
) -> Response {
    let functions = state.lambda.lock().expect("lambda lock");
    let Some(f) = functions.by_name.get(&function) else {
        return not_found(format!(
            "arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"
        ));
    };
    let mut versions = Vec::new();
    if let Some(latest) = f.versions.last() {
        let mut l = version_json(f, latest);
        l["Version"] = json!("$LATEST");
        l["FunctionArn"] = json!(format!("{}:$LATEST", f.arn()));
        versions.push(l);
    }
    versions.extend(f.versions.iter().map(|v| version_json(f, v)));
    Json(json!({"Versions": versions})).into_response()
}

fn function_of<'a>(functions: &'a mut super::Functions, arn: &str) -> Option<&'a mut Function> {
    let name = arn.rsplit(':').next()?;
    functions.by_name.get_mut(name).filter(|f| f.arn() == arn)
}

async fn list_tags(State(state): State<Arc<SimState>>, Path(arn): Path<String>) -> Response {
    let mut functions = state.lambda.lock().expect("lambda lock");
    match function_of(&mut functions, &arn) {
        Some(f) => Json(json!({"Tags": f.tags})).into_response(),
        None => not_found(arn),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tags {
    tags: BTreeMap<String, String>,
}

async fn tag_resource(
    State(state): State<Arc<SimState>>,
    Path(arn): Path<String>,
    Json(body): Json<Tags>,
) -> Response {
    let mut functions = state.lambda.lock().expect("lambda lock");
    match function_of(&mut functions, &arn) {
        Some(f) => {
            f.tags.extend(body.tags);
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(arn),
    }
}
