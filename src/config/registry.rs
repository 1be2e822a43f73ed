//! `[[registry]]`: registries backout may ask whether a rollback target's image still
//! exists (a HEAD on its manifest). Only the hosts listed are asked: a bastion may
//! not reach the others, and an unanswered check is never "missing".

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The host as images name it: `registry.example.com`, `127.0.0.1:5000`.
    pub host: String,
    /// Where its API answers (`https://registry.example.com`); `https://HOST` if left out.
    pub url: Option<String>,
    /// A bearer token, named by the environment variable that holds it.
    pub token_env: Option<String>,
}

impl RegistryConfig {
    pub fn base_url(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| format!("https://{}", self.host))
            .trim_end_matches('/')
            .to_string()
    }

    pub fn check(&self) -> Result<(), String> {
        match &self.url {
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => Err(format!(
                "[[registry]] host {:?}: url {u:?} must start with http:// or https://",
                self.host
            )),
            _ => Ok(()),
        }
    }
}
