//! A Terraform state file changed near a deploy is named in the blast radius (advice
//! only: backout never runs Terraform), read from a real file the test writes.

mod common;

use std::time::Duration;

use common::{bad_deploy_at, eventually, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_written_near_the_deploy_is_named_as_an_infrastructure_change() {
    let c = start(bad_deploy_at(2)).await;
    let state = c.dir().join("network.tfstate");
    std::fs::write(
        &state,
        r#"{"version": 4, "terraform_version": "1.9.0", "serial": 7, "lineage": "x", "resources": []}"#,
    )
    .unwrap();
    let written = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap();
    let config = c.dir().join("terraform.toml");
    // Relative to backout.toml, as any path in it.
    std::fs::write(
        &config,
        format!("{written}\n[[terraform]]\nname = \"network\"\nstate = \"network.tfstate\"\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let text = eventually(Duration::from_secs(60), "checkout deployed", async || {
        let out = c.backout(&["status", "--config", &config], &[]).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("shop/checkout  deploy  revision 2")
            .then_some(text)
    })
    .await;
    assert!(
        text.contains(
            "! infrastructure changed near the deploy: Terraform state network (serial 7) changed"
        ),
        "{text}"
    );
    assert!(text.contains("backout never runs Terraform"), "{text}");
    c.sim.stop().await;
}
