//! Scenarios: the services a simulated cluster starts with, how each image behaves,
//! and a timeline of what happens to them. Shipped ones live in assets/scenarios/.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// How long a new pod takes to become Ready.
    #[serde(default = "default_start_delay", with = "humantime_serde")]
    pub pod_start_delay: Duration,
    #[serde(rename = "service")]
    pub services: Vec<ServiceSpec>,
    /// AWS Lambda functions behind an alias, served on the Lambda API's paths.
    #[serde(default, rename = "function")]
    pub functions: Vec<FunctionSpec>,
    /// MLflow registered models behind an alias (`champion`), served on MLflow's REST
    /// paths; a deploy registers a version and moves the alias to it.
    #[serde(default, rename = "model")]
    pub models: Vec<FunctionSpec>,
    /// Docker Compose services, served on the Docker Engine API's paths.
    #[serde(default, rename = "compose")]
    pub compose: Vec<ComposeSpec>,
    /// Feature flags, served on Unleash's admin API paths; each starts off.
    #[serde(default, rename = "flag")]
    pub flags: Vec<FlagSpec>,
    #[serde(default)]
    pub images: BTreeMap<String, ImageBehaviour>,
    #[serde(default, rename = "event")]
    pub timeline: Vec<toml::Spanned<Event>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    #[serde(default = "default_replicas")]
    pub replicas: i64,
    /// Requests per second the Service receives, spread over ready pods.
    #[serde(default = "default_rps")]
    pub rps: f64,
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// A ConfigMap the pod template loads with envFrom.
    pub configmap: Option<String>,
    /// A Secret the pod template loads with envFrom.
    pub secret: Option<String>,
    #[serde(default = "default_deadline", with = "humantime_serde")]
    pub progress_deadline: Duration,
    /// `argocd` or `flux`: which GitOps controller owns the Deployment.
    pub gitops: Option<GitOps>,
    #[serde(default)]
    pub hpa: bool,
    #[serde(default)]
    pub change_cause: Option<String>,
    /// Argo Rollouts canary steps, as the Rollout spells them (`setWeight`, `pause`):
    /// with them the service runs as an Argo Rollout instead of a Deployment.
    #[serde(default)]
    pub canary_steps: Option<Vec<serde_json::Value>>,
}

/// A Lambda function: version 1 runs `image` behind `alias`; a deploy publishes a
/// version and shifts the alias to it, by `canary_weight` first when one is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub name: String,
    pub image: String,
    #[serde(default = "default_alias")]
    pub alias: String,
    /// The namespace its recorded series carry (and backout lists it under).
    #[serde(default = "default_function_namespace")]
    pub namespace: String,
    #[serde(default = "default_rps")]
    pub rps: f64,
    pub change_cause: Option<String>,
    pub canary_weight: Option<f64>,
}

/// A Docker Compose service: `replicas` containers on `image`, labelled with the
/// project and service; listed by backout under the project as its namespace. A
/// deploy recreates them on the new image, as `docker compose up -d` does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeSpec {
    pub project: String,
    pub service: String,
    pub image: String,
    #[serde(default = "default_compose_replicas")]
    pub replicas: u32,
    #[serde(default = "default_rps")]
    pub rps: f64,
}

fn default_compose_replicas() -> u32 {
    1
}

/// A feature flag `service` reads: on, the service fails `error_ratio` of requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagSpec {
    pub name: String,
    pub service: String,
    pub error_ratio: f64,
}

/// A flag turned on or off by someone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagChange {
    pub name: String,
    pub on: bool,
    #[serde(default = "default_deployer")]
    pub by: String,
}

fn default_alias() -> String {
    "live".into()
}

fn default_function_namespace() -> String {
    "lambda".into()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GitOps {
    Argocd,
    Flux,
}

/// How an image behaves once running. Unlisted images are healthy.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImageBehaviour {
    pub error_ratio: f64,
    /// Random spread around `error_ratio`, as a fraction (0.5 is ±50%).
    pub error_noise: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub crash: bool,
    pub cpu_millicores: f64,
    pub memory_mb: f64,
    pub memory_growth_mb_per_min: f64,
}

impl Default for ImageBehaviour {
    fn default() -> Self {
        ImageBehaviour {
            error_ratio: 0.002,
            error_noise: 0.0,
            latency_p50_ms: 25.0,
            latency_p99_ms: 120.0,
            crash: false,
            cpu_millicores: 120.0,
            memory_mb: 160.0,
            memory_growth_mb_per_min: 0.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    pub deploy: Option<Deploy>,
    pub configmap: Option<ConfigMapChange>,
    pub migration: Option<Migration>,
    pub traffic: Option<TrafficChange>,
    pub fault: Option<Fault>,
    /// Replaces the simulator's fault switchboard (see `crate::faults`).
    pub faults: Option<crate::faults::Faults>,
    pub flag: Option<FlagChange>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    pub service: String,
    pub image: String,
    pub change_cause: Option<String>,
    #[serde(default = "default_deployer")]
    pub by: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigMapChange {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    pub service: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficChange {
    pub service: String,
    pub rps: f64,
}

/// A failure outside the service's own image, such as a dependency going bad.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub service: String,
    pub error_ratio: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

/// What happens at one moment of the timeline, once validated.
#[derive(Debug, Clone)]
pub enum Action {
    Deploy(Deploy),
    ConfigMap(ConfigMapChange),
    Migration(Migration),
    Traffic(TrafficChange),
    Fault(Fault),
    Faults(crate::faults::Faults),
    Flag(FlagChange),
}

fn default_namespace() -> String {
    "shop".into()
}
fn default_start_delay() -> Duration {
    Duration::from_millis(800)
}
fn default_replicas() -> i64 {
    3
}
fn default_rps() -> f64 {
    40.0
}
fn default_deadline() -> Duration {
    Duration::from_secs(600)
}
fn default_deployer() -> String {
    "ci-pipeline".into()
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario {file}: {message}")]
    Parse { file: String, message: String },
    #[error("scenario {file} line {line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    #[error("unknown scenario {0:?}; shipped scenarios are: {list}. A path to a .toml file also works", list = SHIPPED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    #[error("scenario {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
}

/// The shipped scenarios, compiled in so the binary works on its own on a bastion.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "bad-deploy",
        include_str!("../../../assets/scenarios/bad-deploy.toml"),
    ),
    (
        "crashloop",
        include_str!("../../../assets/scenarios/crashloop.toml"),
    ),
    (
        "latency-only",
        include_str!("../../../assets/scenarios/latency-only.toml"),
    ),
    (
        "deploy-with-migration",
        include_str!("../../../assets/scenarios/deploy-with-migration.toml"),
    ),
    (
        "deploy-with-configmap",
        include_str!("../../../assets/scenarios/deploy-with-configmap.toml"),
    ),
    (
        "cross-service",
        include_str!("../../../assets/scenarios/cross-service.toml"),
    ),
    (
        "healthy-deploy",
        include_str!("../../../assets/scenarios/healthy-deploy.toml"),
    ),
    (
        "noisy-baseline",
        include_str!("../../../assets/scenarios/noisy-baseline.toml"),
    ),
    (
        "canary-abort",
        include_str!("../../../assets/scenarios/canary-abort.toml"),
    ),
    (
        "gitops-revert",
        include_str!("../../../assets/scenarios/gitops-revert.toml"),
    ),
    (
        "lambda-alias",
        include_str!("../../../assets/scenarios/lambda-alias.toml"),
    ),
    (
        "flag-kill",
        include_str!("../../../assets/scenarios/flag-kill.toml"),
    ),
    (
        "model-alias",
        include_str!("../../../assets/scenarios/model-alias.toml"),
    ),
    (
        "compose-rollback",
        include_str!("../../../assets/scenarios/compose-rollback.toml"),
    ),
];

impl Scenario {
    /// A shipped scenario by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some((name, text)) = SHIPPED.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(&format!("assets/scenarios/{name}.toml"), text);
        }
        let path = Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "toml") || path.exists() {
            let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
                file: name_or_path.into(),
                source,
            })?;
            return Scenario::parse(name_or_path, &text);
        }
        Err(ScenarioError::Unknown(name_or_path.into()))
    }

    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let message = match e.span() {
                Some(span) => format!("line {}: {}", line_of(text, span.start), e.message()),
                None => e.message().to_string(),
            };
            ScenarioError::Parse {
                file: file.into(),
                message,
            }
        })?;
        scenario.validate(file, text)?;
        Ok(scenario)
    }

    fn validate(&self, file: &str, text: &str) -> Result<(), ScenarioError> {
        let invalid = |span: std::ops::Range<usize>, message: String| ScenarioError::Invalid {
            file: file.into(),
            line: line_of(text, span.start),
            message,
        };
        let known = |svc: &str| self.services.iter().any(|s| s.name == svc);
        let function = |svc: &str| {
            self.functions
                .iter()
                .chain(&self.models)
                .any(|f| f.name == svc)
                || self.compose.iter().any(|c| c.service == svc)
        };
        let names = self
            .services
            .iter()
            .map(|s| s.name.as_str())
            .chain(self.functions.iter().map(|f| f.name.as_str()))
            .chain(self.models.iter().map(|f| f.name.as_str()))
            .chain(self.compose.iter().map(|c| c.service.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(f) = self.flags.iter().find(|f| !known(&f.service)) {
            return Err(ScenarioError::Parse {
                file: file.into(),
                message: format!(
                    "flag {:?} is read by unknown service {:?}; services are: {names}",
                    f.name, f.service
                ),
            });
        }
        for f in self.functions.iter().chain(&self.models) {
            if known(&f.name) || f.canary_weight.is_some_and(|w| !(w > 0.0 && w < 1.0)) {
                return Err(ScenarioError::Parse {
                    file: file.into(),
                    message: format!("function {:?}: its name must differ from every service's, and canary_weight must lie between 0 and 1", f.name),
                });
            }
        }
        for c in &self.compose {
            if known(&c.service) {
                return Err(ScenarioError::Parse {
                    file: file.into(),
                    message: format!(
                        "compose service {:?}: its name must differ from every service's",
                        c.service
                    ),
                });
            }
        }
        if self.services.is_empty() {
            return Err(ScenarioError::Parse {
                file: file.into(),
                message: "a scenario needs at least one [[service]]".into(),
            });
        }
        for s in &self.services {
            for dep in &s.depends_on {
                if !known(dep) {
                    return Err(ScenarioError::Parse {
                        file: file.into(),
                        message: format!("service {:?} depends on unknown service {dep:?}; services are: {names}", s.name),
                    });
                }
            }
        }
        for event in &self.timeline {
            let action = event
                .get_ref()
                .action()
                .map_err(|m| invalid(event.span(), m))?;
            let service = match &action {
                Action::Deploy(d) => Some(&d.service),
                Action::Migration(m) => Some(&m.service),
                Action::Traffic(t) => Some(&t.service),
                Action::Fault(f) => Some(&f.service),
                Action::ConfigMap(_) | Action::Faults(_) => None,
                Action::Flag(f) if !self.flags.iter().any(|x| x.name == f.name) => {
                    return Err(invalid(event.span(), format!("unknown flag {:?}", f.name)));
                }
                Action::Flag(_) => None,
            };
            // A function is deployed, never given faults or traffic changes.
            let deploy = matches!(action, Action::Deploy(_));
            if let Some(svc) = service.filter(|s| !(known(s) || deploy && function(s))) {
                return Err(invalid(
                    event.span(),
                    format!("unknown service {svc:?}; services are: {names}"),
                ));
            }
        }
        Ok(())
    }

    pub fn behaviour(&self, image: &str) -> ImageBehaviour {
        self.images.get(image).cloned().unwrap_or_default()
    }

    /// The timeline in time order.
    pub fn actions(&self) -> Vec<(Duration, Action)> {
        let mut out: Vec<_> = self
            .timeline
            .iter()
            .filter_map(|e| e.get_ref().action().ok().map(|a| (e.get_ref().at, a)))
            .collect();
        out.sort_by_key(|(at, _)| *at);
        out
    }
}

impl Event {
    /// The one action this event names; zero or several is a mistake in the file.
    pub fn action(&self) -> Result<Action, String> {
        let mut found = Vec::new();
        if let Some(d) = &self.deploy {
            found.push(Action::Deploy(d.clone()));
        }
        if let Some(c) = &self.configmap {
            found.push(Action::ConfigMap(c.clone()));
        }
        if let Some(m) = &self.migration {
            found.push(Action::Migration(m.clone()));
        }
        if let Some(t) = &self.traffic {
            found.push(Action::Traffic(t.clone()));
        }
        if let Some(f) = &self.fault {
            found.push(Action::Fault(f.clone()));
        }
        if let Some(f) = &self.flag {
            found.push(Action::Flag(f.clone()));
        }
        if let Some(board) = &self.faults {
            board.validate()?;
            found.push(Action::Faults(board.clone()));
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err("an [[event]] needs one of deploy, configmap, migration, traffic, fault or faults".into()),
            _ => Err("an [[event]] takes exactly one of deploy, configmap, migration, traffic, fault or faults; split it into two events".into()),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_parses() {
        for (name, _) in SHIPPED {
            let s = Scenario::load(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&s.name, name);
            assert!(!s.actions().is_empty(), "{name} has a timeline");
        }
    }

    #[test]
    fn an_unknown_key_names_the_file_and_line() {
        let text = "name = \"x\"\ndescription = \"d\"\n[[service]]\nname = \"a\"\nimage = \"a:1\"\nreplicaz = 3\n";
        let err = Scenario::parse("x.toml", text).unwrap_err().to_string();
        assert!(err.starts_with("scenario x.toml: line 6:"), "{err}");
        assert!(err.contains("replicaz"), "{err}");
    }

    #[test]
    fn an_event_for_an_unknown_service_names_its_line() {
        let text = "name = \"x\"\ndescription = \"d\"\n[[service]]\nname = \"a\"\nimage = \"a:1\"\n\n[[event]]\nat = \"5s\"\ndeploy = { service = \"b\", image = \"b:2\" }\n";
        let err = Scenario::parse("x.toml", text).unwrap_err().to_string();
        assert!(err.contains("line 8") || err.contains("line 7"), "{err}");
        assert!(err.contains("unknown service \"b\""), "{err}");
    }

    #[test]
    fn an_event_with_two_actions_is_refused() {
        let text = "name = \"x\"\ndescription = \"d\"\n[[service]]\nname = \"a\"\nimage = \"a:1\"\n[[event]]\nat = \"5s\"\ntraffic = { service = \"a\", rps = 1.0 }\nfault = { service = \"a\", error_ratio = 0.5 }\n";
        let err = Scenario::parse("x.toml", text).unwrap_err().to_string();
        assert!(err.contains("exactly one"), "{err}");
    }

    #[test]
    fn an_unknown_name_lists_the_shipped_ones() {
        let err = Scenario::load("nope").unwrap_err().to_string();
        assert!(
            err.contains("bad-deploy") && err.contains("crashloop"),
            "{err}"
        );
    }
}
