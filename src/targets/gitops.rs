//! A Deployment that a GitOps controller syncs from Git, reverted where it is
//! defined: the commit that shipped the running image is found on the branch
//! (`git log -G IMAGE -- PATH`), reverted in a fresh clone, and pushed. The
//! controller's next sync rolls the Deployment back; a patch to the Deployment
//! itself would be put back by that same sync. The git CLI does the work, with the
//! machine's own git credentials; every run is a fresh clone in a temporary
//! directory, so nothing is left half-done between processes.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};

use crate::actions::rollback::Request;
use crate::config::gitops::GitOpsConfig;
use crate::engine::rollbacks::{GitRevert, Preview, RollbackError};

/// A planned revert: what the preview shows, from a clone made for it.
pub struct Plan {
    pub preview: Preview,
    /// The running images the branch was asked about.
    images: Vec<String>,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, RollbackError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| RollbackError::Api(format!("cannot run git (is it installed?): {e}")))?;
    if !out.status.success() {
        return Err(RollbackError::Api(format!(
            "git {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `image:` values of a manifest, in order.
fn images_in(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("image:"))
        .map(|i| i.trim().trim_matches('"').to_string())
        .collect()
}

/// `text` as a literal in the POSIX basic regular expression `git log -G` takes: only
/// its special characters escaped (a Rust-style `\-` means nothing there).
fn basic_regex_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '.' | '[' | ']' | '*' | '^' | '$' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A fresh clone of the branch, in a directory removed when dropped.
fn clone(cfg: &GitOpsConfig) -> Result<tempfile::TempDir, RollbackError> {
    let work = tempfile::tempdir().map_err(|e| RollbackError::Api(e.to_string()))?;
    git(
        work.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            &cfg.branch,
            "--single-branch",
            // A repository named like an option is still a repository.
            "--",
            &cfg.repo,
            ".",
        ],
    )
    .map_err(|e| RollbackError::Api(format!("cloning {}: {e}", cfg.repo)))?;
    Ok(work)
}

/// The commit on the branch that shipped `image` to `cfg.path`, with its subject and
/// author, and the images the file named before it.
fn shipping_commit(
    dir: &Path,
    cfg: &GitOpsConfig,
    image: &str,
) -> Result<(String, String, String, Vec<String>), RollbackError> {
    let now = git(dir, &["show", &format!("HEAD:{}", cfg.path)])?;
    if !images_in(&now).iter().any(|i| i == image) {
        return Err(RollbackError::Conflict(format!(
            "{} (branch {} of {} no longer ships {image} in {}; someone changed it)",
            cfg.deployment, cfg.branch, cfg.repo, cfg.path
        )));
    }
    let pattern = format!("image:.*{}", basic_regex_literal(image));
    let log = git(
        dir,
        &[
            "log",
            "-1",
            "--format=%H%x00%s%x00%an",
            "-G",
            &pattern,
            "--",
            &cfg.path,
        ],
    )?;
    let mut fields = log.trim_end().splitn(3, '\0');
    let (Some(commit), Some(subject), Some(author)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(RollbackError::NoHistory(format!(
            "{} (no commit in {} ships {image})",
            cfg.deployment, cfg.repo
        )));
    };
    let before = git(dir, &["show", &format!("{commit}^:{}", cfg.path)])
        .map_err(|_| RollbackError::NoHistory(format!("{} (its first commit)", cfg.deployment)))?;
    Ok((
        commit.into(),
        subject.into(),
        author.into(),
        images_in(&before),
    ))
}

/// Plans the revert from a fresh read of the Deployment and a fresh clone.
pub async fn plan(
    client: &Client,
    cfg: &GitOpsConfig,
    req: &Request,
) -> Result<Plan, RollbackError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &req.namespace);
    let d = deployments
        .get(&req.deployment)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => RollbackError::NotFound(req.deployment.clone()),
            other => RollbackError::Api(other.to_string()),
        })?;
    let images = crate::engine::kept::images(d.spec.as_ref().map(|s| &s.template));
    let from_revision = crate::engine::kept::revision(&d.metadata);
    let (cfg, req) = (cfg.clone(), req.clone());
    tokio::task::spawn_blocking(move || {
        let work = clone(&cfg)?;
        let image = images.first().cloned().unwrap_or_default();
        let (commit, subject, author, before) = shipping_commit(work.path(), &cfg, &image)?;
        if req
            .expected
            .as_ref()
            .and_then(|e| e.revert_commit.as_ref())
            .is_some_and(|c| *c != commit)
        {
            return Err(RollbackError::Conflict(format!(
                "{} (the commit that shipped {image} is no longer the one previewed)",
                cfg.deployment
            )));
        }
        // The dry run: the revert applies to the branch as it is.
        git(work.path(), &["revert", "--no-commit", &commit]).map_err(|e| {
            RollbackError::Conflict(format!("{} (reverting {commit:.12}: {e})", cfg.deployment))
        })?;
        let short = &commit[..commit.len().min(12)];
        let preview = Preview {
            from_revision,
            from_images: images.clone(),
            to_revision: req.to_revision.unwrap_or(from_revision.saturating_sub(1)),
            to_images: before,
            already_there: false,
            kubectl: format!(
                "git clone --branch {} {} && git revert {short} && git push origin {}",
                cfg.branch, cfg.repo, cfg.branch
            ),
            resource_version: String::new(),
            to_replicaset: req.to_replicaset.clone().unwrap_or_default(),
            from_replicaset: req
                .expected
                .as_ref()
                .map(|e| e.from_replicaset.clone())
                .unwrap_or_default(),
            switch: None,
            abort: false,
            revert: Some(Box::new(GitRevert {
                repo: cfg.repo.clone(),
                branch: cfg.branch.clone(),
                commit,
                subject,
                author,
                auto_sync: cfg.auto_sync,
            })),
            flag: None,
        };
        Ok(Plan { preview, images })
    })
    .await
    .map_err(|e| RollbackError::Api(e.to_string()))?
}

/// Reverts the planned commit in a fresh clone and pushes it. A push the branch
/// refuses (someone pushed first) is a conflict: nothing changed.
pub async fn apply(cfg: &GitOpsConfig, plan: &Plan, req: &Request) -> Result<(), RollbackError> {
    let revert = plan.preview.revert.clone().expect("a GitOps plan");
    let (cfg, req, images) = (cfg.clone(), req.clone(), plan.images.clone());
    tokio::task::spawn_blocking(move || {
        let work = clone(&cfg)?;
        let image = images.first().cloned().unwrap_or_default();
        let (commit, ..) = shipping_commit(work.path(), &cfg, &image)?;
        if commit != revert.commit {
            return Err(RollbackError::Conflict(cfg.deployment.clone()));
        }
        git(work.path(), &["revert", "--no-commit", &commit])
            .map_err(|e| RollbackError::Conflict(format!("{} ({e})", cfg.deployment)))?;
        let incident = req
            .incident
            .as_deref()
            .map_or(String::new(), |i| format!(" for incident {i}"));
        let message = format!(
            "Revert \"{}\"\n\nThis reverts commit {commit}.\n\nbackout: rolled back {}/{} by {}{incident}: {}",
            revert.subject, req.namespace, req.deployment, req.actor, req.reason
        );
        let ident = format!("user.name=backout ({})", req.actor);
        git(
            work.path(),
            &["-c", &ident, "-c", "user.email=backout@localhost", "commit", "--quiet", "-m", &message],
        )?;
        git(work.path(), &["push", "--quiet", "origin", &format!("HEAD:{}", cfg.branch)])
            .map_err(|e| RollbackError::Conflict(format!("{} (push refused: {e})", cfg.deployment)))?;
        Ok(())
    })
    .await
    .map_err(|e| RollbackError::Api(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_a_literal_in_gits_basic_regex() {
        assert_eq!(
            basic_regex_literal("reg.io/shop/web:1.4.1-rc[2]"),
            "reg\\.io/shop/web:1\\.4\\.1-rc\\[2\\]"
        );
    }

    #[test]
    fn images_are_read_from_manifests_as_written() {
        let manifest = "spec:\n  containers:\n    - image: \"web:2\"\n      name: web\n    - name: side\n      image: side:1\n";
        assert_eq!(images_in(manifest), ["web:2", "side:1"]);
        assert_eq!(images_in("image: checkout:1.4.1\n"), ["checkout:1.4.1"]);
    }
}
