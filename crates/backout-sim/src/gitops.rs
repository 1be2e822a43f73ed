//! A GitOps repository and the controller that syncs from it, as Argo CD's
//! auto-sync does: a real bare git repository (driven with the git CLI) holds one
//! small manifest per GitOps-managed service, `apps/NAME.yaml`, naming its image; a
//! deploy in the scenario is a commit there, and the sync applies what the branch
//! says to the Deployment, with the commit's subject as change-cause and its author
//! as who deployed. A revert pushed to the branch is synced the same way.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

pub const BRANCH: &str = "main";

/// The path of a service's manifest in the repository.
pub fn manifest_path(service: &str) -> String {
    format!("apps/{service}.yaml")
}

fn manifest(service: &str, image: &str) -> String {
    format!(
        "# Synced to Deployment {service} by the simulator's GitOps controller.\nimage: {image}\n"
    )
}

/// The image a manifest names.
pub fn image_of(manifest: &str) -> Option<&str> {
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("image:"))
        .map(str::trim)
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("running git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the branch says of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    pub image: String,
    pub subject: String,
    pub author: String,
}

#[derive(Debug, Clone)]
pub struct Repo {
    pub path: PathBuf,
}

impl Repo {
    /// A bare repository at `path` whose first commit holds each (service, image).
    pub fn create(path: &Path, services: &[(String, String)]) -> anyhow::Result<Repo> {
        if path.exists() {
            std::fs::remove_dir_all(path)
                .with_context(|| format!("cannot replace {}", path.display()))?;
        }
        std::fs::create_dir_all(path)?;
        git(
            path,
            &["init", "--quiet", "--bare", "--initial-branch", BRANCH],
        )?;
        let repo = Repo {
            path: path.to_path_buf(),
        };
        repo.commit(services, "platform: initial manifests", "platform@ci")?;
        Ok(repo)
    }

    /// Commits `images` (service, image) to the branch as `author`, and pushes.
    pub fn commit(
        &self,
        images: &[(String, String)],
        subject: &str,
        author: &str,
    ) -> anyhow::Result<()> {
        let work = tempfile::tempdir()?;
        let dir = work.path();
        let url = self.path.display().to_string();
        git(dir, &["clone", "--quiet", &url, "."])?;
        git(dir, &["checkout", "--quiet", "-B", BRANCH])?;
        for (service, image) in images {
            let file = dir.join(manifest_path(service));
            std::fs::create_dir_all(file.parent().expect("apps/"))?;
            std::fs::write(&file, manifest(service, image))?;
        }
        git(dir, &["add", "--all"])?;
        let email = format!("--author={author} <{author}>");
        let ident = ["-c", "user.name=ci", "-c", "user.email=ci@sim"];
        let mut args: Vec<&str> = ident.to_vec();
        args.extend(["commit", "--quiet", &email, "-m", subject]);
        git(dir, &args)?;
        git(
            dir,
            &["push", "--quiet", "origin", &format!("HEAD:{BRANCH}")],
        )?;
        Ok(())
    }

    /// The branch's manifest for `service`, and the last commit that touched it.
    pub fn synced(&self, service: &str) -> anyhow::Result<Option<Synced>> {
        let path = manifest_path(service);
        let Ok(text) = git(&self.path, &["show", &format!("{BRANCH}:{path}")]) else {
            return Ok(None);
        };
        let Some(image) = image_of(&text) else {
            return Ok(None);
        };
        let log = git(
            &self.path,
            &["log", "-1", "--format=%s%x00%an", BRANCH, "--", &path],
        )?;
        let (subject, author) = log.trim_end().split_once('\0').unwrap_or((&log, ""));
        Ok(Some(Synced {
            image: image.to_string(),
            subject: subject.to_string(),
            author: author.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_what_the_branch_then_says() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::create(
            &dir.path().join("gitops.git"),
            &[("checkout".into(), "checkout:1".into())],
        )
        .unwrap();
        let first = repo.synced("checkout").unwrap().unwrap();
        assert_eq!(first.image, "checkout:1");
        repo.commit(
            &[("checkout".into(), "checkout:2".into())],
            "checkout 2: new coupon engine",
            "dana@ci",
        )
        .unwrap();
        let next = repo.synced("checkout").unwrap().unwrap();
        assert_eq!(
            (
                next.image.as_str(),
                next.subject.as_str(),
                next.author.as_str()
            ),
            ("checkout:2", "checkout 2: new coupon engine", "dana@ci")
        );
        assert_eq!(repo.synced("payments").unwrap(), None);
    }
}
