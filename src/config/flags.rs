//! `[[flag]]`: feature flags a Deployment's code reads, held in Unleash. A flag
//! turned on near a regression is its kill switch: the rollback turns the flag off
//! (instant, and the template stays) instead of undoing the deploy. backout never
//! turns a flag on.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagConfig {
    /// The flag's name (its key in Unleash).
    pub name: String,
    /// The Deployment whose code reads it.
    pub deployment: String,
    pub namespace: String,
    /// Unleash's base URL, e.g. `https://unleash.example.com`.
    pub url: String,
    #[serde(default = "default_project")]
    pub project: String,
    #[serde(default = "default_environment")]
    pub environment: String,
    /// An admin API token, named by the environment variable that holds it.
    pub token_env: Option<String>,
    /// A CA to trust for `url`, beside the system's. Relative to backout.toml.
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_project() -> String {
    "default".into()
}

fn default_environment() -> String {
    "production".into()
}

impl FlagConfig {
    pub fn base_url(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    pub fn covers(&self, namespace: &str, deployment: &str) -> bool {
        self.namespace == namespace && self.deployment == deployment
    }

    /// The admin API's path that turns the flag on or off in its environment.
    pub fn toggle_url(&self, on: bool) -> String {
        format!(
            "{}/api/admin/projects/{}/features/{}/environments/{}/{}",
            self.base_url(),
            self.project,
            self.name,
            self.environment,
            if on { "on" } else { "off" }
        )
    }

    /// The token, from its environment variable; `None` when none is configured.
    pub fn token(&self) -> Result<Option<String>, String> {
        let Some(var) = &self.token_env else {
            return Ok(None);
        };
        std::env::var(var).map(Some).map_err(|_| {
            format!(
                "[[flag]] {:?}: token_env {var} is not set in the environment",
                self.name
            )
        })
    }

    pub fn check(&self) -> Result<(), String> {
        let named = |what: String| format!("[[flag]] {:?}: {what}", self.name);
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(named(format!(
                "url {:?} must start with http:// or https://",
                self.url
            )));
        }
        let path_safe = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.~:".contains(c))
        };
        for (what, value) in [
            ("name", &self.name),
            ("project", &self.project),
            ("environment", &self.environment),
        ] {
            if !path_safe(value) {
                return Err(named(format!(
                    "{what} {value:?} must be a plain name (letters, digits, - _ . ~ :)"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> FlagConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_flag_is_toggled_in_its_project_and_environment() {
        let f = parse(
            "name = \"new-coupons\"\ndeployment = \"checkout\"\nnamespace = \"shop\"\nurl = \"http://unleash:4242/\"\n",
        );
        assert!(f.check().is_ok());
        assert_eq!(
            f.toggle_url(false),
            "http://unleash:4242/api/admin/projects/default/features/new-coupons/environments/production/off"
        );
        assert!(f.covers("shop", "checkout") && !f.covers("shop", "cart"));
    }

    #[test]
    fn a_bad_url_or_a_name_that_would_change_the_path_is_named() {
        let bad =
            parse("name = \"x\"\ndeployment = \"d\"\nnamespace = \"n\"\nurl = \"unleash:4242\"\n");
        assert!(bad.check().unwrap_err().contains("http://"));
        let bad =
            parse("name = \"a/../b\"\ndeployment = \"d\"\nnamespace = \"n\"\nurl = \"http://u\"\n");
        let err = bad.check().unwrap_err();
        assert!(
            err.contains("\"a/../b\"") && err.contains("plain name"),
            "{err}"
        );
    }
}
