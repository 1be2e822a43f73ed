//! The Lambda kind against its real part: moto's Lambda API server (from PyPI),
//! driven by backout through the official AWS SDK. The test publishes versions and a
//! weighted alias there; `backout status` reads it as a canary and `backout
//! rollback` shifts it back, leaving its record on the alias and the version it left
//! on the function's known-bad tag, as every later process reads them.
//!
//! moto does not enforce UpdateAlias's RevisionId (AWS does), so the conflict case
//! is covered against the simulator (tests/lambda.rs), not here.

mod common;

use std::process::Command;
use std::time::Duration;

use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, FunctionCode, Runtime};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use common::{free_port, have, serve, small_scenario, start, Served};

/// moto's server on a free loopback port.
async fn moto() -> Served {
    let port = free_port();
    let mut cmd = Command::new("moto_server");
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let url = format!("http://127.0.0.1:{port}");
    serve(cmd, url, "/moto-api/", Duration::from_secs(30)).await
}

fn lambda_client(url: &str) -> aws_sdk_lambda::Client {
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        )
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

/// payments with versions 1, 2 and 3, and alias live on 2 sending 20% to 3.
async fn publish(url: &str) {
    // moto's IAM, by its query API: Lambda only takes a role that exists.
    let role = reqwest::Client::new()
        .post(format!("{url}/"))
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20261206/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .form(&[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", "payments"),
            ("AssumeRolePolicyDocument", "{}"),
        ])
        .send()
        .await
        .unwrap();
    assert!(role.status().is_success(), "{:?}", role.text().await);
    let lambda = lambda_client(url);
    lambda
        .create_function()
        .function_name("payments")
        .runtime(Runtime::Python311)
        .role("arn:aws:iam::123456789012:role/payments")
        .handler("app.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new("build 1"))
                .build(),
        )
        .description("payments 1: first")
        .publish(true)
        .send()
        .await
        .unwrap();
    for n in 2..=3 {
        lambda
            .update_function_code()
            .function_name("payments")
            .zip_file(Blob::new(format!("build {n}")))
            .send()
            .await
            .unwrap();
        let v = lambda
            .publish_version()
            .function_name("payments")
            .description(format!("payments {n}: build {n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(v.version(), Some(n.to_string().as_str()));
    }
    lambda
        .create_alias()
        .function_name("payments")
        .name("live")
        .function_version("2")
        .routing_config(
            AliasRoutingConfiguration::builder()
                .additional_version_weights("3", 0.2)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn creds() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_alias_in_moto_is_read_as_a_canary_and_shifted_back() {
    if !have("moto_server") {
        return;
    }
    let moto = moto().await;
    publish(&moto.url).await;
    let c = start(small_scenario("")).await;
    let config = c.add_config(&format!(
        "\n[[lambda]]\nfunction = \"payments\"\nregion = \"us-east-1\"\nendpoint = {:?}\n",
        moto.url
    ));
    let config = config.as_str();

    let out = c
        .backout(
            &["status", "--config", config, "-n", "lambda", "-o", "json"],
            &creds(),
        )
        .await;
    let text = String::from_utf8_lossy(&out.stdout);
    let status: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let services = status["services"].as_array().expect("services");
    let payments = services
        .iter()
        .find(|s| s["service"]["name"] == "payments")
        .unwrap_or_else(|| panic!("payments is listed: {text}"));
    assert_eq!(payments["kind"], "lambda_alias", "{payments}");
    let decision = &payments["decision"];
    assert_eq!(
        decision["current_revision"], 3,
        "the canary's version: {payments}"
    );
    assert_eq!(
        decision["target"]["revision"], 2,
        "back to stable: {payments}"
    );
    assert_eq!(decision["rollout"]["state"], "paused", "{payments}");

    let (ok, said) = c
        .backout_said(
            &[
                "rollback",
                "payments",
                "--config",
                config,
                "-n",
                "lambda",
                "--yes",
                "--no-verify",
                "--reason",
                "drill",
            ],
            &creds(),
        )
        .await;
    assert!(ok, "{said}");
    assert!(
        said.contains(
            "aws lambda update-alias --function-name payments --name live --function-version 2"
        ),
        "{said}"
    );

    let lambda = lambda_client(&moto.url);
    let alias = lambda
        .get_alias()
        .function_name("payments")
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(alias.function_version(), Some("2"));
    let weights = alias
        .routing_config()
        .and_then(|r| r.additional_version_weights())
        .map_or(0, |w| w.len());
    assert_eq!(weights, 0, "no request goes to version 3");
    let record: serde_json::Value =
        serde_json::from_str(alias.description().unwrap_or_default()).expect("backout's record");
    assert_eq!(record["from_replicaset"], "3");
    assert_eq!(record["to_replicaset"], "2");
    assert_eq!(record["reason"], "drill");
    let tags = lambda
        .list_tags()
        .resource("arn:aws:lambda:us-east-1:123456789012:function:payments")
        .send()
        .await
        .unwrap();
    let bad = tags
        .tags()
        .and_then(|t| t.get("backout:rolled-back-from"))
        .cloned()
        .unwrap_or_default();
    assert!(bad.starts_with("3@"), "version 3 is marked bad: {bad:?}");

    // A second process reads the rollback back from AWS alone, and goes nowhere.
    let out = c
        .backout(
            &[
                "rollback",
                "payments",
                "--config",
                config,
                "-n",
                "lambda",
                "--yes",
                "--no-verify",
            ],
            &creds(),
        )
        .await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("skipped rollback"), "{said}");
    let out = c
        .backout(
            &["history", "payments", "--config", config, "-n", "lambda"],
            &creds(),
        )
        .await;
    let history = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(history.contains("rolled back"), "{history}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_that_does_not_exist_is_named_and_nothing_is_written() {
    if !have("moto_server") {
        return;
    }
    let moto = moto().await;
    let c = start(small_scenario("")).await;
    let config = c.add_config(&format!(
        "\n[[lambda]]\nfunction = \"nosuch\"\nregion = \"us-east-1\"\nendpoint = {:?}\n",
        moto.url
    ));
    let (_, said) = c
        .backout_said(&["status", "--config", &config], &creds())
        .await;
    assert!(
        said.contains("nosuch:live") && said.contains("not found"),
        "the alias is named: {said}"
    );
}
