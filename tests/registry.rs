//! Before a target is offered, its image must still exist: Debian's docker-registry
//! (a real OCI distribution registry) holds the images, pushed by the test through
//! the registry API. A target whose manifest is gone is named in the blast radius and
//! fails gate 7, so nothing rolls back to it automatically; pushed back, it passes.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backout_sim::scenario::Scenario;
use common::{eventually, free_port, have, start, Cluster};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Debian's docker-registry on a free loopback port, storing in `dir`. Killed on drop.
struct Registry {
    base: String,
    host: String,
    child: Child,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn registry(dir: &std::path::Path) -> Registry {
    let port = free_port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("registry-data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry starts");
    let host = format!("127.0.0.1:{port}");
    let base = format!("http://{host}");
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(20),
        "the registry to answer",
        async || {
            let r = http.get(format!("{base}/v2/")).send().await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    Registry { base, host, child }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Uploads `bytes` as a blob of `repo` in one request (the monolithic upload).
async fn blob(http: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> Value {
    let started = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202, "an upload starts");
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let location = match location.starts_with("http") {
        true => location,
        false => format!("{base}{location}"),
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = http
        .put(format!("{location}{sep}digest={}", digest(bytes)))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "the blob is stored");
    json!({"digest": digest(bytes), "size": bytes.len()})
}

/// Pushes a one-layer OCI image as `repo:tag`.
async fn push(registry: &Registry, repo: &str, tag: &str) {
    let http = reqwest::Client::new();
    let base = &registry.base;
    let mut config = blob(
        &http,
        base,
        repo,
        br#"{"architecture":"amd64","os":"linux"}"#,
    )
    .await;
    config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let mut layer = blob(
        &http,
        base,
        repo,
        format!("layer of {repo}:{tag}").as_bytes(),
    )
    .await;
    layer["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+gzip");
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer]});
    let put = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "the manifest is stored");
}

fn scenario(host: &str) -> Scenario {
    let text = format!(
        r#"name = "registry"
description = "web's images live in a registry; 2 is bad"
namespace = "shop"
pod_start_delay = "150ms"

[[service]]
name = "web"
image = "{host}/shop/web:1"
replicas = 3
rps = 60

[images."{host}/shop/web:2"]
error_ratio = 0.25

[[event]]
at = "1s"
deploy = {{ service = "web", image = "{host}/shop/web:2" }}
"#
    );
    Scenario::parse("registry.toml", &text).unwrap()
}

/// web's decision, once it is firing.
async fn web(c: &Cluster, config: &str) -> Value {
    eventually(Duration::from_secs(60), "web's decision", async || {
        let out = c
            .backout(&["status", "--config", config, "-o", "json"], &[])
            .await;
        let report: Value = serde_json::from_slice(&out.stdout).ok()?;
        let d = report["services"].as_array()?.first()?["decision"].clone();
        (d["action"] != "none").then_some(d)
    })
    .await
}

fn gate_7(d: &Value) -> &Value {
    d["gates"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["number"] == 7))
        .expect("gate 7")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_image_is_gone_is_named_and_never_rolled_back_to_automatically() {
    if !have("docker-registry") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(dir.path()).await;
    push(&registry, "shop/web", "2").await;
    let c = start(scenario(&registry.host)).await;
    let written = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap();
    let config = c.dir().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            "{written}\n[[registry]]\nhost = {:?}\nurl = {:?}\n",
            registry.host, registry.base
        ),
    )
    .unwrap();
    let config = config.display().to_string();

    let d = web(&c, &config).await;
    let target = format!("{}/shop/web:1", registry.host);
    let blast = d["blast_radius"].to_string();
    assert!(
        blast.contains(&format!("target image missing: {target}")),
        "{blast}"
    );
    assert_eq!(gate_7(&d)["passed"], false, "{}", gate_7(&d));
    assert!(
        gate_7(&d)["evidence"]
            .as_str()
            .unwrap()
            .contains("ImagePullBackOff"),
        "{}",
        gate_7(&d)
    );
    assert_ne!(d["action"], "auto_rollback");

    push(&registry, "shop/web", "1").await;
    let d = web(&c, &config).await;
    assert!(
        !d["blast_radius"]
            .to_string()
            .contains("target image missing"),
        "{d}"
    );
    assert_eq!(gate_7(&d)["passed"], true, "{}", gate_7(&d));
    assert_eq!(d["action"], "auto_rollback");
    c.sim.stop().await;
}
