//! `[[model]]`: MLflow registered-model aliases backout watches and can move back
//! (`champion` → the previous version). Each alias is a service: its triggers are
//! asked of Prometheus with `$SERVICE` (the model's name unless `service` says) and
//! `$NAMESPACE`, and its revisions are the model's versions.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The registered model's name.
    pub name: String,
    #[serde(default = "default_alias")]
    pub alias: String,
    /// The MLflow tracking server, e.g. `https://mlflow.example.com`.
    pub url: String,
    /// The service name its triggers and the console use; the model's by default.
    pub service: Option<String>,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// A bearer token, named by the environment variable that holds it.
    pub token_env: Option<String>,
    /// A CA to trust for `url`, beside the system's. Relative to backout.toml.
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_alias() -> String {
    "champion".into()
}

fn default_namespace() -> String {
    "models".into()
}

impl ModelConfig {
    pub fn service(&self) -> &str {
        self.service.as_deref().unwrap_or(&self.name)
    }

    pub fn base_url(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    pub fn check(&self) -> Result<(), String> {
        let named = |what: String| format!("[[model]] {:?}: {what}", self.name);
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(named(format!(
                "url {:?} must start with http:// or https://",
                self.url
            )));
        }
        if self.name.is_empty() || self.alias.is_empty() {
            return Err(named("name and alias must not be empty".into()));
        }
        if self.alias.chars().all(|c| c.is_ascii_digit()) {
            return Err(named(format!(
                "alias {:?} must be an alias name such as \"champion\", not a version",
                self.alias
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_defaults_to_champion_and_a_bad_entry_is_named() {
        let m: ModelConfig =
            toml::from_str("name = \"fraud-model\"\nurl = \"http://mlflow:5000/\"\n").unwrap();
        assert_eq!(
            (m.alias.as_str(), m.namespace.as_str()),
            ("champion", "models")
        );
        assert_eq!(
            (m.service(), m.base_url()),
            ("fraud-model", "http://mlflow:5000")
        );
        assert!(m.check().is_ok());
        let bad: ModelConfig =
            toml::from_str("name = \"m\"\nalias = \"3\"\nurl = \"mlflow:5000\"\n").unwrap();
        let err = bad.check().unwrap_err();
        assert!(err.contains("\"m\"") && err.contains("http://"), "{err}");
    }
}
