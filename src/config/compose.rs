//! `[[compose]]`: Docker Compose services backout watches and can roll back. Each is a
//! service: its triggers are asked of Prometheus with `$SERVICE` and `$NAMESPACE` as
//! for a Deployment, and its revisions are the images of its repository that the
//! Docker engine holds.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeConfig {
    /// The Compose project (its containers' `com.docker.compose.project` label).
    pub project: String,
    /// The Compose service (`com.docker.compose.service`).
    pub service: String,
    /// The namespace it is listed under, and `$NAMESPACE` in its triggers; the
    /// project's name by default.
    pub namespace: Option<String>,
    /// The service name the triggers and the console use; the Compose service's by
    /// default.
    pub name: Option<String>,
    /// The Docker engine: `unix:///var/run/docker.sock` (the default, or
    /// `$DOCKER_HOST`), `tcp://HOST:PORT`, `http://…` or `https://…`.
    pub engine: Option<String>,
    /// A CA to trust for an https engine, beside the system's. Relative to backout.toml.
    pub ca_file: Option<std::path::PathBuf>,
    /// Seconds a container is given to stop before it is killed, when its own
    /// stop timeout says nothing.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: u32,
}

fn default_stop_timeout() -> u32 {
    10
}

/// Where the engine listens, as a client reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineAddress {
    Socket(std::path::PathBuf),
    /// `http://HOST:PORT` or `https://HOST:PORT`, no trailing slash.
    Url(String),
}

impl ComposeConfig {
    pub fn service(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.service)
    }

    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(&self.project)
    }

    /// How its own tools name it: `PROJECT/SERVICE`.
    pub fn handle(&self) -> String {
        format!("{}/{}", self.project, self.service)
    }

    /// The engine this entry names, else `$DOCKER_HOST`, else Docker's own socket.
    pub fn address(&self) -> Result<EngineAddress, String> {
        let given = self
            .engine
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()));
        let text = given.unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        if let Some(path) = text.strip_prefix("unix://") {
            return Ok(EngineAddress::Socket(path.into()));
        }
        if let Some(host) = text.strip_prefix("tcp://") {
            return Ok(EngineAddress::Url(format!(
                "http://{}",
                host.trim_end_matches('/')
            )));
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(EngineAddress::Url(text.trim_end_matches('/').to_string()));
        }
        Err(format!(
            "[[compose]] {}: engine {text:?} must be unix:///PATH, tcp://HOST:PORT, http:// or https://",
            self.handle()
        ))
    }

    pub fn check(&self) -> Result<(), String> {
        // Compose's own rule for project and service names.
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c))
        };
        if !name_ok(&self.project) || !name_ok(&self.service) {
            return Err(format!(
                "[[compose]] project {:?} service {:?}: both must be Compose names (lowercase letters, digits, - and _)",
                self.project, self.service
            ));
        }
        self.address().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ComposeConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_service_is_listed_under_its_project_by_its_compose_name() {
        let c = parse("project = \"shop\"\nservice = \"web\"\nengine = \"tcp://127.0.0.1:2375/\"");
        assert_eq!((c.namespace(), c.service()), ("shop", "web"));
        assert_eq!(c.handle(), "shop/web");
        assert_eq!(
            c.address(),
            Ok(EngineAddress::Url("http://127.0.0.1:2375".into()))
        );
        assert!(c.check().is_ok());
    }

    #[test]
    fn a_socket_engine_is_a_path_and_a_bad_one_is_named() {
        let c =
            parse("project = \"shop\"\nservice = \"web\"\nengine = \"unix:///run/podman.sock\"");
        assert_eq!(
            c.address(),
            Ok(EngineAddress::Socket("/run/podman.sock".into()))
        );
        let bad = parse("project = \"shop\"\nservice = \"web\"\nengine = \"ssh://host\"");
        assert!(bad.check().unwrap_err().contains("ssh://host"));
        let upper = parse("project = \"Shop\"\nservice = \"web\"\nengine = \"tcp://h:1\"");
        assert!(upper.check().unwrap_err().contains("\"Shop\""));
    }
}
