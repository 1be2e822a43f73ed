//! `[[gitops]]`: a Deployment that a GitOps controller (Argo CD, Flux) syncs from a
//! Git repository. Its rollback is a `git revert` of the commit that shipped the
//! image, pushed to the branch the controller syncs; a patch to the Deployment would
//! be put back at the next sync.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitOpsConfig {
    pub deployment: String,
    /// The Deployment's namespace; any watched one when left out.
    pub namespace: Option<String>,
    /// Anything `git clone` takes: a URL, or a path. Credentials come from git's own
    /// configuration (a credential helper, an SSH agent), never from backout.toml.
    pub repo: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// The file in the repository whose image line a deploy changes.
    pub path: String,
    /// The controller applies the branch by itself (Argo CD auto-sync, Flux's
    /// interval). Without it a revert waits for someone to sync, and backout says so.
    #[serde(default = "default_auto_sync")]
    pub auto_sync: bool,
}

fn default_branch() -> String {
    "main".into()
}

fn default_auto_sync() -> bool {
    true
}

impl GitOpsConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.repo.trim().is_empty() || self.path.trim().is_empty() {
            return Err(format!(
                "[[gitops]] deployment {:?}: repo and path are both needed, for example repo = \"git@github.com:acme/deploy.git\" and path = \"apps/{}.yaml\"",
                self.deployment, self.deployment
            ));
        }
        Ok(())
    }

    /// Whether this entry is the one for `namespace/deployment`.
    pub fn covers(&self, namespace: &str, deployment: &str) -> bool {
        self.deployment == deployment && self.namespace.as_deref().is_none_or(|n| n == namespace)
    }
}
