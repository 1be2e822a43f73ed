//! `/version` and plain-JSON discovery. kubectl offers aggregated discovery first
//! and falls back to these documents when the reply is plain `application/json`.

use serde_json::{json, Value};

use crate::resources::{self, ResourceDef, Subresource};

/// kubectl's dispatcher picks the bundled kubectl whose minor matches this one.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "backout-sim",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
}

fn group_doc(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .map(|(g, v)| group_doc(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(name: &str) -> Option<Value> {
    resources::groups()
        .into_iter()
        .find(|(g, _)| *g == name)
        .map(|(g, v)| {
            let mut doc = group_doc(g, v);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            doc
        })
}

fn resource_entry(r: &ResourceDef) -> Value {
    json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
        "shortNames": r.short_names,
    })
}

fn subresource_entry(r: &ResourceDef, sub: Subresource) -> Value {
    let mut entry = json!({
        "name": format!("{}/{}", r.plural, sub.name()),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": ["get", "patch", "update"],
    });
    if sub == Subresource::Log {
        entry["verbs"] = json!(["get"]);
    }
    if sub == Subresource::Scale {
        entry["group"] = json!("autoscaling");
        entry["version"] = json!("v1");
        entry["kind"] = json!("Scale");
    }
    entry
}

pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut entries = Vec::new();
    for r in resources::ALL
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        entries.push(resource_entry(r));
        entries.extend(r.subresources.iter().map(|s| subresource_entry(r, *s)));
    }
    if entries.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}),
    )
}
