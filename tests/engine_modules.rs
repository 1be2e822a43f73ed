//! The engine's module graph has no cycles: data types live in `engine/model/`, and
//! each logic module uses only those below it. This reads the sources as text, so a
//! new `use super::…` that closes a cycle fails here, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The module a path names, as `update` or `model/msg`.
fn module(path: &Path, engine: &Path) -> String {
    let rel = path.strip_prefix(engine).unwrap().with_extension("");
    rel.to_string_lossy().replace('\\', "/")
}

/// The code before the file's unit tests: what the engine itself depends on.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let engine = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = Vec::new();
    for dir in [engine.clone(), engine.join("model")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let names: BTreeSet<String> = files.iter().map(|f| module(f, &engine)).collect();
    let mut edges = BTreeMap::new();
    for f in &files {
        let me = module(f, &engine);
        // Test-only modules and the module roots are not part of the graph.
        if ["mod", "model/mod", "tests", "incident_tests", "fixtures"].contains(&me.as_str()) {
            continue;
        }
        let base = me.rsplit_once('/').map_or("", |(dir, _)| dir);
        let text = code(f);
        let mut deps = BTreeSet::new();
        for (prefix, from) in [
            ("super::super::", ""),
            ("super::", base),
            ("crate::engine::", ""),
        ] {
            for hit in text.match_indices(prefix) {
                let rest = &text[hit.0 + prefix.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let joined = if from.is_empty() {
                    name.clone()
                } else {
                    format!("{from}/{name}")
                };
                // `super::model::x` names a file in model/.
                let target = if name == "model" {
                    let after = &rest[name.len()..];
                    let sub: String = after
                        .trim_start_matches("::")
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    format!("model/{sub}")
                } else {
                    joined
                };
                if names.contains(&target) && target != me {
                    deps.insert(target);
                }
            }
        }
        edges.insert(me, deps);
    }
    edges
}

fn cycle_from(
    node: &str,
    edges: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|p| p == node) {
        let mut cycle = path[at..].to_vec();
        cycle.push(node.to_string());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for next in edges.get(node).into_iter().flatten() {
        if let Some(c) = cycle_from(next, edges, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn the_engine_module_graph_has_no_cycles() {
    let edges = graph();
    assert!(
        edges.len() > 15,
        "the engine's modules were found: {edges:?}"
    );
    assert!(
        edges["update"].contains("verification") && edges["rollbacks"].contains("verification"),
        "edges are read: {:?}",
        edges["update"]
    );
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        let found = cycle_from(node, &edges, &mut Vec::new(), &mut done);
        assert!(
            found.is_none(),
            "a cycle in src/engine: {}",
            found.unwrap().join(" → ")
        );
    }
}

#[test]
fn the_model_uses_no_logic_module_but_the_leaves() {
    let edges = graph();
    let leaves = ["kept", "rollout", "series", "signals"];
    for (module, deps) in edges.iter().filter(|(m, _)| m.starts_with("model/")) {
        for dep in deps {
            assert!(
                dep.starts_with("model/") || leaves.contains(&dep.as_str()),
                "{module} uses {dep}: data types must not depend on logic"
            );
        }
    }
}
