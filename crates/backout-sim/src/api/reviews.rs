//! SelfSubjectReview (`kubectl auth whoami`) and SelfSubjectAccessReview
//! (`kubectl auth can-i`): answered from the token, never stored.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{allowed, Attributes, User};
use super::status::ApiError;
use crate::resources::{self, ResourceDef};
use crate::SimState;

pub fn answer(
    _sim: &SimState,
    user: &User,
    res: &ResourceDef,
    body: &[u8],
) -> Result<Response, ApiError> {
    let mut review: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if res.kind == "SelfSubjectReview" => json!({"metadata": {}}),
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "the {} body is not valid JSON: {e}",
                res.kind
            )))
        }
    };
    review["apiVersion"] = json!(res.api_version());
    review["kind"] = json!(res.kind);
    review["status"] = match res.kind {
        "SelfSubjectReview" => {
            json!({"userInfo": {"username": user.name, "groups": user.groups()}})
        }
        _ => access_status(user, &review["spec"]["resourceAttributes"]),
    };
    Ok((StatusCode::CREATED, Json(review)).into_response())
}

fn access_status(user: &User, attrs: &Value) -> Value {
    let s = |k: &str| attrs[k].as_str().unwrap_or("");
    let (group, resource) = (s("group"), s("resource"));
    let Some(res) = resources::ALL
        .iter()
        .find(|r| r.group == group && r.plural == resource)
    else {
        return json!({"allowed": false, "reason": format!("no resource \"{resource}\" in API group \"{group}\"")});
    };
    let sub = Some(s("subresource")).filter(|x| !x.is_empty());
    let ns = Some(s("namespace")).filter(|x| !x.is_empty());
    let name = Some(s("name")).filter(|x| !x.is_empty());
    let ok = allowed(
        user,
        &Attributes {
            verb: s("verb"),
            resource: res,
            subresource: sub,
            namespace: ns,
            name,
        },
    );
    let reason = match (&user.role, ok) {
        (super::auth::Role::Granted(_), true) => format!("an RBAC rule grants {} this", user.name),
        (super::auth::Role::Granted(_), false) => format!("no RBAC rule grants {} this", user.name),
        (role, true) => format!(
            "user {} is allowed by the simulator's {role:?} role",
            user.name
        ),
        (role, false) => format!("user {} has the read-only {role:?} role", user.name),
    };
    json!({"allowed": ok, "reason": reason})
}
