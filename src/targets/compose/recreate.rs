//! One container's swap onto another image, as `docker compose up` recreates it: the
//! old one renamed aside and stopped, its replacement created under its name and
//! started, then the old one removed (never its volumes). A replacement that does
//! not start is removed and the old container is put back and started.
//!
//! The compose file is not at hand, so the replacement is built from the running
//! container's own inspection: everything it ran with, less what it only had from
//! its old image (the image's environment, command, entrypoint, working directory,
//! user and labels), which the new image supplies for itself.

use serde_json::{json, Map, Value};

use super::engine::{Container, Engine};
use super::{ASIDE_SUFFIX, RECORD_LABEL};

/// The label Compose records a container's image id in.
const COMPOSE_IMAGE_LABEL: &str = "com.docker.compose.image";
use crate::targets::TargetError;

/// Network modes that are not a network to attach to.
fn is_network(mode: &str) -> bool {
    !(matches!(mode, "" | "host" | "none" | "default" | "bridge") || mode.contains(':'))
}

/// `old`'s value for `key`, unless it equals what the image set.
fn own(old: &Value, image: &Value, key: &str) -> Option<Value> {
    let mine = old.get(key).filter(|v| !v.is_null())?;
    (image.get(key) != Some(mine)).then(|| mine.clone())
}

/// The create body of `old`'s replacement on `image_ref` (the image `image_id`), and
/// the networks to connect after the create (API 1.41 attaches one at create).
pub fn replacement(
    old: &Value,
    old_image: &Value,
    image_ref: &str,
    image_id: &str,
    record: &str,
) -> (Value, Vec<(String, Value)>) {
    let config = &old["Config"];
    let image_config = &old_image["Config"];
    let mut body = match config {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    body.insert("Image".into(), image_ref.into());
    for key in ["Cmd", "Entrypoint", "WorkingDir", "User"] {
        match own(config, image_config, key) {
            Some(v) => body.insert(key.into(), v),
            None => body.remove(key),
        };
    }
    let inherited: Vec<&Value> = image_config["Env"]
        .as_array()
        .map(|e| e.iter().collect())
        .unwrap_or_default();
    let env: Vec<Value> = config["Env"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|v| !inherited.contains(v))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    body.insert("Env".into(), Value::Array(env));
    let mut labels = config["Labels"].as_object().cloned().unwrap_or_default();
    if let Some(theirs) = image_config["Labels"].as_object() {
        labels.retain(|k, v| theirs.get(k) != Some(v));
    }
    labels.insert(RECORD_LABEL.into(), record.into());
    // Compose keeps the image a container runs on it: it must name the new one.
    if let Some(image) = labels.get_mut(COMPOSE_IMAGE_LABEL) {
        *image = image_id.into();
    }
    body.insert("Labels".into(), Value::Object(labels));
    // Docker names a container's host after its id unless told otherwise.
    let id = old["Id"].as_str().unwrap_or_default();
    if config["Hostname"]
        .as_str()
        .is_some_and(|h| id.starts_with(h) && !h.is_empty())
    {
        body.remove("Hostname");
    }
    body.insert("HostConfig".into(), old["HostConfig"].clone());
    let mode = old["HostConfig"]["NetworkMode"]
        .as_str()
        .unwrap_or_default();
    let short = id.get(..12).unwrap_or(id);
    let endpoint = |net: &Value| {
        let aliases: Vec<Value> = net["Aliases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x.as_str() != Some(short))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        json!({"Aliases": aliases, "IPAMConfig": net["IPAMConfig"].clone()})
    };
    let mut later = Vec::new();
    if let Some(networks) = old["NetworkSettings"]["Networks"].as_object() {
        for (name, net) in networks {
            if name == mode && is_network(mode) {
                body.insert(
                    "NetworkingConfig".into(),
                    json!({"EndpointsConfig": {name.clone(): endpoint(net)}}),
                );
            } else if is_network(name) && is_network(mode) {
                later.push((name.clone(), endpoint(net)));
            }
        }
    }
    (Value::Object(body), later)
}

/// Swaps `c` onto `image_ref`, which must be the image `image_id`.
pub async fn swap(
    engine: &Engine,
    c: &Container,
    image_ref: &str,
    image_id: &str,
    record: &str,
    stop_timeout: u32,
) -> Result<(), TargetError> {
    let old = engine
        .inspect(&format!("/containers/{}/json", c.id))
        .await?;
    // An old image removed since leaves nothing to subtract: keep all it ran with.
    let old_image = engine
        .inspect(&format!("/images/{}/json", c.image_id))
        .await
        .unwrap_or(Value::Null);
    let (body, later) = replacement(&old, &old_image, image_ref, image_id, record);
    let name = c
        .name
        .strip_suffix(ASIDE_SUFFIX)
        .unwrap_or(&c.name)
        .to_string();
    let aside = format!("{name}{ASIDE_SUFFIX}");
    if c.name != aside {
        engine
            .post(
                &format!("/containers/{}/rename", c.id),
                &[("name", aside)],
                None,
            )
            .await?;
    }
    let t = old["Config"]["StopTimeout"]
        .as_u64()
        .filter(|t| *t > 0)
        .unwrap_or(u64::from(stop_timeout));
    let stopped = engine
        .post(
            &format!("/containers/{}/stop", c.id),
            &[("t", t.to_string())],
            None,
        )
        .await;
    if let Err(e) = stopped {
        put_back(engine, &c.id, &name).await;
        return Err(e.and(&format!("{name} was put back under its name")));
    }
    match replace(engine, &name, &body, &later, image_id).await {
        Ok(()) => {
            let gone = [("force", "true".into()), ("v", "false".into())];
            engine.delete(&format!("/containers/{}", c.id), &gone).await
        }
        Err(e) => {
            put_back(engine, &c.id, &name).await;
            Err(e.and(&format!(
                "the replacement was removed and {name} put back on its image"
            )))
        }
    }
}

/// Creates, checks, connects and starts the replacement; removes it if any step fails.
async fn replace(
    engine: &Engine,
    name: &str,
    body: &Value,
    later: &[(String, Value)],
    image_id: &str,
) -> Result<(), TargetError> {
    let created = engine
        .post(
            "/containers/create",
            &[("name", name.to_string())],
            Some(body),
        )
        .await?;
    let id = created["Id"].as_str().unwrap_or(name).to_string();
    let result = async {
        let made = engine.inspect(&format!("/containers/{id}/json")).await?;
        if made["Image"].as_str() != Some(image_id) {
            return Err(TargetError::Conflict(format!(
                "{} now names image {}, not the {} the plan read; nothing was changed",
                body["Image"].as_str().unwrap_or_default(),
                made["Image"].as_str().unwrap_or("?"),
                super::short_id(image_id)
            )));
        }
        for (network, endpoint) in later {
            let connect = json!({"Container": id, "EndpointConfig": endpoint});
            engine
                .post(&format!("/networks/{network}/connect"), &[], Some(&connect))
                .await?;
        }
        engine
            .post(&format!("/containers/{id}/start"), &[], None)
            .await
            .map(|_| ())
    }
    .await;
    if result.is_err() {
        let gone = [("force", "true".into()), ("v", "false".into())];
        let _ = engine.delete(&format!("/containers/{id}"), &gone).await;
    }
    result
}

/// The old container back under its name and started: best effort, after a failure
/// that is already being reported.
async fn put_back(engine: &Engine, id: &str, name: &str) {
    let _ = engine
        .post(
            &format!("/containers/{id}/rename"),
            &[("name", name.to_string())],
            None,
        )
        .await;
    let _ = engine
        .post(&format!("/containers/{id}/start"), &[], None)
        .await;
}
