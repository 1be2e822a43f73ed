//! Simulated versioned aliases: AWS Lambda functions (published versions, each running
//! one image, weighted aliases and tags) served through the Lambda API's own paths
//! (`api`) so that backout's SDK client talks to the simulator as to AWS, and MLflow
//! registered models, the same records served through MLflow's REST paths
//! (`registry`). A deploy is
//! a new version and an alias shifted to it, all at once or as a weighted canary.
//!
//! Traffic: each alias runs ten execution environments, shared out between its
//! versions by weight; they join the cluster's pods in the traffic model, so the
//! recorded series carry the alias as a service (`namespace`, `service`) as they do a
//! Deployment, and the error rate follows the weights.

pub mod api;
pub mod registry;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::scenario::FunctionSpec;
use crate::store::Store;
use crate::telemetry::traffic::Endpoints;

/// The account and region every simulated ARN names.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// Execution environments per alias: a 20% weight is two of them.
const ENVIRONMENTS: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub number: u64,
    pub image: String,
    pub description: String,
    pub last_modified: String,
    pub created: jiff::Timestamp,
    /// Its tags (MLflow keeps tags per model version).
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub version: String,
    pub weights: BTreeMap<String, f64>,
    pub description: String,
    pub revision_id: String,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    /// The namespace its recorded series carry.
    pub namespace: String,
    pub versions: Vec<Version>,
    pub aliases: BTreeMap<String, Alias>,
    pub tags: BTreeMap<String, String>,
    /// The share a deploy sends to the new version first; `None` shifts it all.
    pub canary_weight: Option<f64>,
    pub alias: String,
}

impl Function {
    pub fn arn(&self) -> String {
        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}", self.name)
    }

    /// A new version running `image`; its number.
    pub fn publish(&mut self, image: &str, description: &str) -> u64 {
        let number = self.versions.last().map_or(1, |v| v.number + 1);
        let now = jiff::Timestamp::now();
        self.versions.push(Version {
            number,
            image: image.into(),
            description: description.into(),
            last_modified: now.strftime("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
            created: now,
            tags: BTreeMap::new(),
        });
        number
    }

    /// A deploy as CodeDeploy makes one: publish, then shift the alias to the new
    /// version, by the canary weight when there is one.
    pub fn deploy(&mut self, image: &str, description: &str) {
        let number = self.publish(image, description).to_string();
        let canary = self.canary_weight;
        if let Some(alias) = self.aliases.get_mut(&self.alias) {
            match canary {
                Some(w) => alias.weights = [(number, w)].into(),
                None => {
                    alias.version = number;
                    alias.weights.clear();
                }
            }
            alias.description = description.into();
            alias.revision_id = uuid::Uuid::new_v4().to_string();
        }
    }

    /// The version of each execution environment of `alias`, by weight.
    fn environments(&self, alias: &Alias) -> Vec<&Version> {
        let version = |v: &str| self.versions.iter().find(|x| x.number.to_string() == v);
        let mut out = Vec::new();
        for (v, w) in &alias.weights {
            let n = (w * ENVIRONMENTS as f64).round() as usize;
            out.extend(std::iter::repeat_n(version(v), n).flatten());
        }
        let rest = ENVIRONMENTS.saturating_sub(out.len());
        out.extend(std::iter::repeat_n(version(&alias.version), rest).flatten());
        out
    }
}

/// Every simulated function, by name.
#[derive(Debug, Clone, Default)]
pub struct Functions {
    pub by_name: BTreeMap<String, Function>,
}

impl Functions {
    /// The scenario's functions and models, each with version 1 and its alias on it.
    pub fn seed(specs: &[FunctionSpec]) -> Functions {
        let mut by_name = BTreeMap::new();
        for s in specs {
            let mut f = Function {
                name: s.name.clone(),
                namespace: s.namespace.clone(),
                versions: Vec::new(),
                aliases: BTreeMap::new(),
                tags: BTreeMap::new(),
                canary_weight: s.canary_weight,
                alias: s.alias.clone(),
            };
            let cause = s
                .change_cause
                .clone()
                .unwrap_or_else(|| format!("deploy {}", s.image));
            f.publish(&s.image, &cause);
            f.aliases.insert(
                s.alias.clone(),
                Alias {
                    version: "1".into(),
                    weights: BTreeMap::new(),
                    description: cause,
                    revision_id: uuid::Uuid::new_v4().to_string(),
                },
            );
            by_name.insert(s.name.clone(), f);
        }
        Functions { by_name }
    }

    /// The execution environments of the function listed as `namespace/service`,
    /// as pods: what the traffic model spreads requests over.
    fn environments_of(&self, namespace: &str, service: &str) -> Option<Vec<Arc<Value>>> {
        let f = self
            .by_name
            .get(service)
            .filter(|f| f.namespace == namespace)?;
        let alias = f.aliases.get(&f.alias)?;
        Some(
            f.environments(alias)
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    Arc::new(json!({
                        "metadata": {"name": format!("{}-v{}-env{i}", f.name, v.number), "namespace": namespace},
                        "spec": {"containers": [{"name": f.name, "image": v.image}]},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                    }))
                })
                .collect(),
        )
    }
}

/// The cluster's pods, the functions' environments and the Compose services'
/// containers together.
pub struct WithFunctions<'a> {
    pub store: &'a Store,
    pub functions: &'a Functions,
    pub compose: &'a crate::compose::Engine,
}

impl Endpoints for WithFunctions<'_> {
    fn pods_of(&self, namespace: &str, service: &str) -> Option<Vec<Arc<Value>>> {
        self.functions
            .environments_of(namespace, service)
            .or_else(|| self.compose.pods_of(namespace, service))
            .or_else(|| self.store.pods_of(namespace, service))
    }

    fn pods_of_all(&self, services: &[(String, String)]) -> Vec<Option<Vec<Arc<Value>>>> {
        let mut out = self.store.pods_of_all(services);
        for (slot, (ns, name)) in out.iter_mut().zip(services) {
            if let Some(envs) = self.functions.environments_of(ns, name) {
                *slot = Some(envs);
            } else if let Some(containers) = self.compose.pods_of(ns, name) {
                *slot = Some(containers);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payments(canary_weight: Option<f64>) -> Functions {
        let spec: FunctionSpec =
            toml::from_str("name = \"payments\"\nimage = \"payments:1\"\n").unwrap();
        let mut functions = Functions::seed(&[FunctionSpec {
            canary_weight,
            ..spec
        }]);
        functions
            .by_name
            .get_mut("payments")
            .unwrap()
            .deploy("payments:2", "payments 2");
        functions
    }

    fn images(functions: &Functions) -> Vec<String> {
        functions
            .environments_of("lambda", "payments")
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
    fn a_canary_deploy_gives_the_new_version_its_weight_of_the_environments() {
        let functions = payments(Some(0.2));
        let f = &functions.by_name["payments"];
        let alias = &f.aliases["live"];
        assert_eq!(alias.version, "1");
        assert_eq!(alias.weights, [("2".to_string(), 0.2)].into());
        let images = images(&functions);
        assert_eq!(images.len(), 10);
        assert_eq!(images.iter().filter(|i| *i == "payments:2").count(), 2);
    }

    #[test]
    fn a_plain_deploy_shifts_everything_and_other_namespaces_see_no_function() {
        let functions = payments(None);
        assert_eq!(functions.by_name["payments"].aliases["live"].version, "2");
        assert!(images(&functions).iter().all(|i| i == "payments:2"));
        assert!(functions.environments_of("shop", "payments").is_none());
    }
}
