//! A simulated Docker engine running Compose services: images (content ids, tags,
//! creation times) and containers (labelled with their project and service, as
//! Compose labels them), served through the Docker Engine API's own paths (`api`) so
//! that backout talks to the simulator as to Docker or podman. A deploy is what
//! `docker compose up -d` does after the file's image changes: the image is pulled,
//! and each of the service's containers is recreated on it.
//!
//! Traffic: each running container joins the cluster's pods in the traffic model,
//! so the recorded series carry the service (`namespace` is the project) and the
//! error rate follows the image the containers run.

pub mod api;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::scenario::ComposeSpec;

pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";

#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    pub tags: Vec<String>,
    /// Seconds since the epoch, as the engine lists it.
    pub created: i64,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// The reference it was created from, as `docker ps` shows it.
    pub image: String,
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub env: Vec<String>,
    pub host_config: Value,
    pub running: bool,
    pub created: i64,
}

/// The engine: every image and container, and the services they belong to.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    pub images: Vec<Image>,
    pub containers: Vec<Container>,
    pub services: Vec<ComposeSpec>,
    /// The last creation time stamped: the next is at least a second later, so that
    /// two made within one second still order.
    last_stamp: i64,
}

fn new_id() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")
}

impl Engine {
    /// The scenario's services, each with `replicas` containers on its image.
    pub fn seed(specs: &[ComposeSpec]) -> Engine {
        let mut engine = Engine {
            services: specs.to_vec(),
            ..Engine::default()
        };
        for s in specs {
            engine.deploy(&s.service, &s.image);
        }
        engine
    }

    fn now(&mut self) -> i64 {
        self.last_stamp = jiff::Timestamp::now().as_second().max(self.last_stamp + 1);
        self.last_stamp
    }

    /// The image tagged `reference`, or with this id (full, or its first 12 digits).
    pub fn image(&self, reference: &str) -> Option<&Image> {
        let hex = reference.trim_start_matches("sha256:");
        self.images.iter().find(|i| {
            i.tags.iter().any(|t| t == reference)
                || (hex.len() >= 12 && i.id.trim_start_matches("sha256:").starts_with(hex))
        })
    }

    /// `docker pull`: the image tagged `reference`, made if it is not held.
    pub fn pull(&mut self, reference: &str) -> String {
        if let Some(i) = self.image(reference) {
            return i.id.clone();
        }
        let created = self.now();
        let id = format!("sha256:{}", new_id());
        self.images.push(Image {
            id: id.clone(),
            tags: vec![reference.to_string()],
            created,
            labels: BTreeMap::new(),
        });
        id
    }

    /// The container named or with this id (or its prefix, as Docker accepts).
    pub fn container(&mut self, name_or_id: &str) -> Option<&mut Container> {
        self.containers.iter_mut().find(|c| {
            c.name == name_or_id || (name_or_id.len() >= 12 && c.id.starts_with(name_or_id))
        })
    }

    /// Creates a container on an image already held; its id.
    pub fn create(
        &mut self,
        name: &str,
        reference: &str,
        labels: BTreeMap<String, String>,
        env: Vec<String>,
        host_config: Value,
    ) -> Option<String> {
        let image_id = self.image(reference)?.id.clone();
        let created = self.now();
        let id = new_id();
        self.containers.push(Container {
            id: id.clone(),
            name: name.to_string(),
            image: reference.to_string(),
            image_id,
            labels,
            env,
            host_config,
            running: false,
            created,
        });
        Some(id)
    }

    /// `docker compose up -d SERVICE` after its image became `reference`: each of its
    /// containers removed and made again on the new image, numbered as Compose does.
    pub fn deploy(&mut self, service: &str, reference: &str) {
        let Some(spec) = self.services.iter().find(|s| s.service == service).cloned() else {
            return;
        };
        self.pull(reference);
        self.containers.retain(|c| {
            !(c.labels.get(PROJECT_LABEL) == Some(&spec.project)
                && c.labels.get(SERVICE_LABEL) == Some(&spec.service))
        });
        for n in 1..=spec.replicas.max(1) {
            let labels = BTreeMap::from([
                (PROJECT_LABEL.to_string(), spec.project.clone()),
                (SERVICE_LABEL.to_string(), spec.service.clone()),
                ("com.docker.compose.container-number".into(), n.to_string()),
            ]);
            let name = format!("{}-{}-{n}", spec.project, spec.service);
            let host = json!({"NetworkMode": "host", "RestartPolicy": {"Name": "unless-stopped"}});
            if let Some(id) = self.create(&name, reference, labels, Vec::new(), host) {
                if let Some(c) = self.container(&id) {
                    c.running = true;
                }
            }
        }
    }

    /// The running containers of the service listed as `namespace/service`, as pods:
    /// what the traffic model spreads requests over.
    pub fn pods_of(&self, namespace: &str, service: &str) -> Option<Vec<Arc<Value>>> {
        let spec = self
            .services
            .iter()
            .find(|s| s.project == namespace && s.service == service)?;
        Some(
            self.containers
                .iter()
                .filter(|c| {
                    c.running
                        && c.labels.get(PROJECT_LABEL) == Some(&spec.project)
                        && c.labels.get(SERVICE_LABEL) == Some(&spec.service)
                })
                .map(|c| {
                    Arc::new(json!({
                        "metadata": {"name": c.name, "namespace": namespace},
                        "spec": {"containers": [{"name": service, "image": c.image}]},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                    }))
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn billing() -> Engine {
        let spec: ComposeSpec = toml::from_str(
            "project = \"legacy\"\nservice = \"billing\"\nimage = \"billing:7.2\"\nreplicas = 2\n",
        )
        .unwrap();
        Engine::seed(&[spec])
    }

    fn images(engine: &Engine) -> Vec<String> {
        engine
            .pods_of("legacy", "billing")
            .unwrap()
            .iter()
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_deploy_recreates_every_container_on_the_new_image_and_keeps_the_old_image() {
        let mut engine = billing();
        assert_eq!(images(&engine), ["billing:7.2", "billing:7.2"]);
        engine.deploy("billing", "billing:7.3");
        assert_eq!(images(&engine), ["billing:7.3", "billing:7.3"]);
        assert_eq!(engine.images.len(), 2);
        assert!(engine.images[0].created < engine.images[1].created);
        assert_eq!(engine.containers.len(), 2);
        assert!(engine.pods_of("shop", "billing").is_none());
    }

    #[test]
    fn an_image_is_found_by_tag_or_by_id_prefix_and_a_stopped_container_takes_no_traffic() {
        let mut engine = billing();
        let id = engine.images[0].id.clone();
        assert_eq!(
            engine.image(&id[..19]).map(|i| i.id.clone()),
            Some(id.clone())
        );
        assert_eq!(engine.image("billing:7.2").map(|i| i.id.clone()), Some(id));
        assert!(engine.image("billing:9").is_none());
        engine.container("legacy-billing-1").unwrap().running = false;
        assert_eq!(images(&engine).len(), 1);
    }
}
