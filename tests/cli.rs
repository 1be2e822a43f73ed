//! The conventions an engineer's fingers already have: `-o json|yaml`, shell
//! completions, a man page, and `kubectl backout` as a kubectl plugin.

mod common;

use std::process::Command;

use common::{have, small_scenario, start};

fn backout(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_backout"))
        .args(args)
        .output()
        .expect("backout runs")
}

#[test]
fn bash_completions_parse_and_name_the_subcommands() {
    let out = backout(&["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("rollback") && script.contains("--kubeconfig"));
    if !have("bash") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backout.bash");
    std::fs::write(&file, &script).unwrap();
    let parsed = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = backout(&["completions", shell]);
        assert!(out.status.success() && out.stdout.len() > 500, "{shell}");
    }
    assert!(!backout(&["completions", "tcsh"]).status.success());
}

#[test]
fn the_man_page_is_roff_and_lists_the_commands() {
    let out = backout(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{page}");
    assert!(page.contains(".TH backout 1"), "{page}");
    for command in ["rollback", "gate", "watch", "report"] {
        assert!(page.contains(command), "{command}");
    }
}

#[test]
fn kubectl_runs_it_as_a_plugin_named_the_way_it_was_typed() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-backout");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_backout"), &plugin).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("kubectl")
        .args(["backout", "rollback", "--help"])
        .env("PATH", path)
        .env("KUBECONFIG", dir.path().join("none"))
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{help}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(help.contains("Usage: kubectl backout rollback"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_yaml_with_dash_o_as_kubectl_does() {
    let c = start(small_scenario("")).await;
    let config = c.dir().join("backout.toml");
    let args = ["status", "-o", "yaml", "--config", config.to_str().unwrap()];
    let out = c.backout(&args, &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    let names: Vec<&str> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["service"]["name"].as_str())
        .collect();
    assert_eq!(names, ["web"], "{text}");
    let both = c.backout(&["status", "-o", "yaml", "--json"], &[]).await;
    assert_eq!(both.status.code(), Some(2), "-o and --json conflict");
}

#[test]
fn a_missing_kubeconfig_is_one_line_naming_the_file_once() {
    let out = Command::new(env!("CARGO_BIN_EXE_backout"))
        .args(["status"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("/nonexistent/kubeconfig").count(), 1, "{err}");
    assert!(
        err.contains("does not exist") && err.contains("backout demo"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_deployment_gets_the_name_it_was_probably_meant_to_be() {
    let c = start(small_scenario("")).await;
    let config = c.dir().join("backout.toml");
    let config = config.to_str().unwrap();
    for args in [
        &["history", "webb", "--config", config][..],
        &["rollback", "webb", "--yes", "--config", config][..],
    ] {
        let out = c.backout(args, &[]).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim(),
            "error: deployment \"webb\" not found in namespace shop (did you mean web?)",
            "{args:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_without_rights_is_summarised_once_not_a_stream_of_warnings() {
    let c = start(small_scenario("")).await;
    let config = c.dir().join("backout.toml");
    let args = [
        "status",
        "--context",
        "backout-sim-outsider",
        "--wait",
        "3s",
        "--config",
        config.to_str().unwrap(),
    ];
    let out = c.backout(&args, &[]).await;
    assert_eq!(out.status.code(), Some(2), "incomplete");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("WARN") && !err.contains("kube_runtime"),
        "{err}"
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said.matches("is forbidden").count(), 1, "{said}");
    assert!(said.contains("ask for get, list and watch"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_capital_a_watches_every_namespace_as_kubectl_does() {
    if !have("kubectl") {
        return;
    }
    let c = start(small_scenario("")).await;
    let manifest = c.dir().join("api.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: other}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: api}}\n  template:\n    metadata: {labels: {app: api}}\n    spec: {containers: [{name: api, image: \"api:1\"}]}\n",
    )
    .unwrap();
    c.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()])
        .await;
    let config = c.dir().join("backout.toml");
    let services = async |extra: &[&str]| -> Vec<String> {
        let args = [
            &["status", "-o", "json", "--config", config.to_str().unwrap()][..],
            extra,
        ]
        .concat();
        let out = c.backout(&args, &[]).await;
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        doc["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}/{}",
                    s["service"]["namespace"].as_str().unwrap(),
                    s["service"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(services(&[]).await, ["shop/web"]);
    assert_eq!(services(&["-A"]).await, ["other/api", "shop/web"]);
}
