//! The Compose kind's pure parts: the marks, references and a replacement's body.

use jiff::Timestamp;
use serde_json::json;

use super::recreate::replacement;
use super::*;

#[test]
fn a_mark_reads_back_as_the_image_and_time_it_was_written_with() {
    let id = "sha256:9c2ded043f8768945e3c7b6c80c1f5c77163dc9ee850268eec0971dfc9d5882b";
    let at: Timestamp = "2026-12-07T05:00:00Z".parse().unwrap();
    let repo = known_bad_repository("shop", "web");
    let tag = known_bad_tag(id, at);
    assert_eq!(tag, format!("9c2ded043f87.{}", at.as_second()));
    // podman spells the repository with docker.io in front; a mark of another image
    // and a tag outside the repository mark nothing.
    let images = vec![
        (
            id.to_string(),
            vec![format!("docker.io/{repo}:{tag}"), "shop/web:2".into()],
        ),
        ("sha256:aaaa".to_string(), vec![format!("{repo}:{tag}")]),
        ("sha256:bbbb".to_string(), vec!["shop/web:1".into()]),
    ];
    let marks = known_bad_of(&repo, &images);
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[id], at);
}

#[test]
fn a_repository_keeps_its_registry_port_and_loses_its_tag_and_digest() {
    assert_eq!(
        repository_of("registry:5000/shop/web:2"),
        "registry:5000/shop/web"
    );
    assert_eq!(
        repository_of("registry:5000/shop/web"),
        "registry:5000/shop/web"
    );
    assert_eq!(repository_of("shop/web@sha256:abcd"), "shop/web");
    assert_eq!(repository_of("web:1.4"), "web");
}

#[test]
fn a_replacement_keeps_what_the_container_ran_with_and_drops_what_its_image_gave() {
    let old = json!({
        "Id": "0123456789abcdef",
        "Config": {
            "Hostname": "0123456789ab",
            "Image": "shop/web:2",
            "Env": ["PATH=/usr/bin", "DATABASE_URL=postgres://db/shop"],
            "Cmd": ["serve"],
            "Entrypoint": ["/entry"],
            "WorkingDir": "/srv",
            "Labels": {"com.docker.compose.service": "web", "org.opencontainers.image.version": "2",
                "com.docker.compose.image": "sha256:2222"},
        },
        "HostConfig": {"NetworkMode": "shop_default", "Binds": ["shopdata:/data"]},
        "NetworkSettings": {"Networks": {
            "shop_default": {"Aliases": ["web", "0123456789ab"], "IPAMConfig": null},
            "shop_backend": {"Aliases": ["web"], "IPAMConfig": null},
        }},
    });
    let image = json!({"Config": {
        "Env": ["PATH=/usr/bin"],
        "Cmd": ["serve"],
        "Entrypoint": ["/entry2"],
        "WorkingDir": "/srv",
        "Labels": {"org.opencontainers.image.version": "2"},
    }});
    let (body, later) = replacement(&old, &image, "shop/web:1", "sha256:1111", "{\"record\":1}");
    assert_eq!(body["Image"], "shop/web:1");
    assert_eq!(body["Env"], json!(["DATABASE_URL=postgres://db/shop"]));
    // The command was the image's; the entrypoint was the container's own.
    assert!(body.get("Cmd").is_none());
    assert_eq!(body["Entrypoint"], json!(["/entry"]));
    assert!(body.get("WorkingDir").is_none());
    assert!(body.get("Hostname").is_none());
    assert_eq!(body["Labels"]["com.docker.compose.service"], "web");
    assert!(body["Labels"]
        .get("org.opencontainers.image.version")
        .is_none());
    assert_eq!(body["Labels"][RECORD_LABEL], "{\"record\":1}");
    assert_eq!(body["Labels"]["com.docker.compose.image"], "sha256:1111");
    assert_eq!(body["HostConfig"]["Binds"], json!(["shopdata:/data"]));
    assert_eq!(
        body["NetworkingConfig"]["EndpointsConfig"]["shop_default"]["Aliases"],
        json!(["web"])
    );
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].0, "shop_backend");
}

#[test]
fn a_container_on_the_host_network_attaches_to_none() {
    let old = json!({
        "Id": "abc",
        "Config": {"Image": "shop/web:2", "Hostname": "vm"},
        "HostConfig": {"NetworkMode": "host"},
        "NetworkSettings": {"Networks": {"host": {}}},
    });
    let (body, later) = replacement(
        &old,
        &serde_json::Value::Null,
        "shop/web:1",
        "sha256:1",
        "{}",
    );
    assert!(body.get("NetworkingConfig").is_none());
    assert!(later.is_empty());
    assert_eq!(body["Hostname"], "vm");
}
