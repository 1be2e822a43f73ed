//! Lists: one page of a collection, filtered by label and field selectors, paged by
//! `limit` and continue tokens, written out from the objects the store shares.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};

use super::handlers::{Filters, Target};
use super::status::ApiError;
use crate::resources::ResourceDef;
use crate::store::meta_str;
use crate::SimState;

/// A continue token: the list's resourceVersion and the last key it returned.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rv, "ns": ns, "name": name}).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "continue key is not valid: {token:?}; start the list again without `continue`"
        ))
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        v["ns"].as_str().unwrap_or("").to_string(),
        v["name"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

/// One page of a list: the matching objects shared with the store, not copied, so
/// that the store's lock is held only while they are picked and 20,000 pods are
/// written out after it is released.
pub(super) struct ListPage {
    res: &'static ResourceDef,
    resource_version: u64,
    next: Option<String>,
    pub(super) items: Vec<Arc<Value>>,
}

impl ListPage {
    pub(super) fn metadata(&self) -> Value {
        let mut meta = json!({"resourceVersion": self.resource_version.to_string()});
        if let Some(token) = &self.next {
            meta["continue"] = json!(token);
        }
        meta
    }

    pub(super) fn into_response(self) -> Result<Response, ApiError> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            kind: String,
            api_version: String,
            metadata: Value,
            #[serde(serialize_with = "shared_values")]
            items: &'a [Arc<Value>],
        }
        let body = serde_json::to_vec(&Wire {
            kind: format!("{}List", self.res.kind),
            api_version: self.res.api_version(),
            metadata: self.metadata(),
            items: &self.items,
        })
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("the list could not be written: {e}"),
            )
        })?;
        Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
    }
}

fn shared_values<S: serde::Serializer>(items: &&[Arc<Value>], out: S) -> Result<S::Ok, S::Error> {
    out.collect_seq(items.iter().map(|item| &**item))
}

pub(super) fn list(
    sim: &SimState,
    target: &Target,
    params: &HashMap<String, String>,
) -> Result<ListPage, ApiError> {
    let filters = Filters::parse(params)?;
    let limit: usize = match params.get("limit") {
        Some(l) => l.parse().map_err(|_| {
            ApiError::bad_request(format!("limit must be a positive integer, got {l:?}"))
        })?,
        None => 0,
    };
    let after = params
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(|c| decode_continue(c))
        .transpose()?;
    let store = sim.store.lock().expect("store lock");
    let resource_version = after
        .as_ref()
        .map_or(store.resource_version(), |(rv, _, _)| *rv);
    let after_key = after.map(|(_, ns, name)| (ns, name));
    let mut items: Vec<Arc<Value>> = Vec::new();
    let mut next = None;
    let ns = target.namespace.as_deref();
    let candidates: Box<dyn Iterator<Item = &Arc<Value>>> = match filters.labels.required_pair() {
        Some(pair) => Box::new(store.list_labelled(target.res, ns, after_key.as_ref(), pair)),
        None => Box::new(store.list_after(target.res, ns, after_key.as_ref())),
    };
    let candidates = candidates.filter(|o| filters.matches(o));
    for obj in candidates {
        if limit > 0 && items.len() == limit {
            let last = items.last().expect("limit > 0");
            next = Some(encode_continue(
                resource_version,
                meta_str(last, "namespace"),
                meta_str(last, "name"),
            ));
            break;
        }
        items.push(obj.clone());
    }
    Ok(ListPage {
        res: target.res,
        resource_version,
        next,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_garbage_is_a_bad_request() {
        let token = encode_continue(42, "shop", "web");
        assert_eq!(
            decode_continue(&token).unwrap(),
            (42, "shop".into(), "web".into())
        );
        assert_eq!(
            decode_continue("%%%").unwrap_err().code,
            StatusCode::BAD_REQUEST
        );
    }
}
