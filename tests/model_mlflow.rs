//! The MLflow model alias against its real part: an MLflow tracking server (from
//! PyPI, installed by .ci/run) on a SQLite store, started here on loopback. The test
//! registers three versions with `champion` on the third; `backout rollback` moves it
//! back to the second, and MLflow's own API then shows the alias, the record on the
//! model and the mark on the version rolled back from.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port, get_json, have, serve, small_scenario, start, Served};
use serde_json::{json, Value};

/// MLflow's tracking server on a SQLite store in its own directory.
struct Mlflow {
    served: Served,
    _dir: tempfile::TempDir,
}

async fn mlflow() -> Option<Mlflow> {
    if !have("mlflow") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = format!("sqlite:///{}", dir.path().join("mlflow.db").display());
    let mut cmd = Command::new("mlflow");
    cmd.args([
        "server",
        "--backend-store-uri",
        &store,
        "--host",
        "127.0.0.1",
    ])
    .args(["--port", &port.to_string(), "--workers", "1"])
    .current_dir(dir.path());
    let url = format!("http://127.0.0.1:{port}");
    let served = serve(cmd, url, "/health", Duration::from_secs(120)).await;
    Some(Mlflow { served, _dir: dir })
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
        &m.served.url,
        "registered-models/create",
        json!({"name": "fraud-model"}),
    )
    .await;
    for n in 1..=3 {
        post(
            &http,
            &m.served.url,
            "model-versions/create",
            json!({"name": "fraud-model", "source": format!("s3://models/fraud/{n}"),
                "description": format!("trained {n}")}),
        )
        .await;
    }
    post(
        &http,
        &m.served.url,
        "registered-models/alias",
        json!({"name": "fraud-model", "alias": "champion", "version": "3"}),
    )
    .await;

    let c = start(small_scenario("")).await;
    let config = c.add_config(&format!(
        "\n[[model]]\nname = \"fraud-model\"\nurl = {:?}\n",
        m.served.url
    ));
    let config = config.as_str();
    let (ok, said) = c
        .backout_said(
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
    assert!(ok, "{said}");
    assert!(
        said.contains("to   revision 2 (s3://models/fraud/2)"),
        "{said}"
    );

    let base = format!("{}/api/2.0/mlflow", m.served.url);
    let model = get_json(
        &http,
        &format!("{base}/registered-models/get?name=fraud-model"),
    )
    .await
    .expect("the registered model");
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
    let v3 = get_json(
        &http,
        &format!("{base}/model-versions/get?name=fraud-model&version=3"),
    )
    .await
    .expect("version 3");
    let marked = v3["model_version"]["tags"].to_string();
    assert!(marked.contains("backout.rolled_back_from"), "{v3}");

    // A missing model is named, and nothing is written.
    let bad = c.dir().join("bad.toml");
    let toml = std::fs::read_to_string(config)
        .unwrap()
        .replace("name = \"fraud-model\"", "name = \"no-such-model\"");
    std::fs::write(&bad, toml).unwrap();
    let (_, said) = c
        .backout_said(&["status", "--config", bad.to_str().unwrap(), "-A"], &[])
        .await;
    assert!(
        said.contains("no-such-model") && said.contains("not found"),
        "{said}"
    );
}
