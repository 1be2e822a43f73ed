//! The MLflow model alias against its real part: an MLflow tracking server (from
//! PyPI, installed by .ci/run) on a SQLite store, started here on loopback. The test
//! registers three versions with `champion` on the third; `backout rollback` moves it
//! back to the second, and MLflow's own API then shows the alias, the record on the
//! model and the mark on the version rolled back from.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, free_port, have, small_scenario, start};
use serde_json::{json, Value};

struct Mlflow {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn mlflow() -> Option<Mlflow> {
    if !have("mlflow") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = format!("sqlite:///{}", dir.path().join("mlflow.db").display());
    let child = Command::new("mlflow")
        .args([
            "server",
            "--backend-store-uri",
            &store,
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &port.to_string(), "--workers", "1"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mlflow server starts");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(120), "MLflow to answer", async || {
        let r = http.get(format!("{url}/health")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    Some(Mlflow {
        url,
        child,
        _dir: dir,
    })
}

async fn post(http: &reqwest::Client, url: &str, path: &str, body: Value) -> Value {
    let r = http
        .post(format!("{url}/api/2.0/mlflow/{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {:?}", r.text().await);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backout_moves_champion_back_in_mlflow_and_leaves_its_record_there() {
    let Some(m) = mlflow().await else {
        return;
    };
    let http = reqwest::Client::new();
    post(
        &http,
        &m.url,
        "registered-models/create",
        json!({"name": "fraud-model"}),
    )
    .await;
    for n in 1..=3 {
        post(
            &http,
            &m.url,
            "model-versions/create",
            json!({"name": "fraud-model", "source": format!("s3://models/fraud/{n}"),
                "description": format!("trained {n}")}),
        )
        .await;
    }
    post(
        &http,
        &m.url,
        "registered-models/alias",
        json!({"name": "fraud-model", "alias": "champion", "version": "3"}),
    )
    .await;

    let c = start(small_scenario("")).await;
    let config = c.dir().join("backout.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "\n[[model]]\nname = \"fraud-model\"\nurl = {:?}\n",
        m.url
    ));
    std::fs::write(&config, toml).unwrap();
    let config = config.to_str().unwrap();
    let out = c
        .backout(
            &[
                "rollback",
                "fraud-model",
                "-n",
                "models",
                "--yes",
                "--no-verify",
                "--reason",
                "drill",
                "--config",
                config,
            ],
            &[],
        )
        .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("to   revision 2 (s3://models/fraud/2)"),
        "{said}"
    );

    let model: Value = http
        .get(format!(
            "{}/api/2.0/mlflow/registered-models/get?name=fraud-model",
            m.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let model = &model["registered_model"];
    let champion = model["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alias"] == "champion")
        .cloned()
        .unwrap_or_default();
    assert_eq!(champion["version"], "2", "{model}");
    let record = model["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "backout.rollback")
        .and_then(|t| t["value"].as_str())
        .unwrap_or_default();
    let record: Value = serde_json::from_str(record).expect("backout's record on the model");
    assert_eq!(record["from_replicaset"], "3");
    assert_eq!(record["reason"], "drill");
    let v3: Value = http
        .get(format!(
            "{}/api/2.0/mlflow/model-versions/get?name=fraud-model&version=3",
            m.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let marked = v3["model_version"]["tags"].to_string();
    assert!(marked.contains("backout.rolled_back_from"), "{v3}");

    // A missing model is named, and nothing is written.
    let bad = c.dir().join("bad.toml");
    let toml = std::fs::read_to_string(config)
        .unwrap()
        .replace("name = \"fraud-model\"", "name = \"no-such-model\"");
    std::fs::write(&bad, toml).unwrap();
    let out = c
        .backout(&["status", "--config", bad.to_str().unwrap(), "-A"], &[])
        .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("no-such-model") && said.contains("not found"),
        "{said}"
    );
}
