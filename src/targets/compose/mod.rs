//! Docker Compose services as a rollback target, through the Docker Engine API (the
//! same paths Docker and podman serve). A service is its containers (the ones
//! labelled with its project and service); its revisions are the images of the
//! repository it runs that the engine holds, oldest first; its revert recreates each
//! container on the previous image, as `docker compose up -d --no-deps SERVICE` does
//! after the compose file's image is set back (seed 000's script).
//!
//! What every process must be able to read back, and where it lives:
//! - the rollback itself: backout's record, as the label [`RECORD_LABEL`] on the
//!   containers it creates;
//! - the images known bad: a tag in the repository `backout-rolled-back/PROJECT.SERVICE`
//!   on the image rolled back from ([`known_bad_tag`]), written before any container
//!   moves. A tag outlives the containers, so a later `docker compose up` of another
//!   image does not make a rolled-back image a target again, and `docker images`
//!   shows it to a person.
//!
//! `engine` reads and writes; `health` reads the containers for the triggers;
//! `recreate` builds a container's replacement; `revert` plans and applies.

pub mod engine;
pub mod health;
pub mod recreate;
pub mod revert;

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::engine::kept::{Canary, WorkloadSummary};
use crate::engine::rollout::Rollout;
use crate::targets::words::Words;

/// How a Compose service's rollback is told.
pub const WORDS: Words = Words {
    moves: "recreates the service's containers (alone, as `up --no-deps` does)",
    holds: "an image holds the code and its own defaults (environment, command), so those go back; the containers keep the environment, ports and mounts they ran with",
    beside: "named volumes and their data (kept: the old containers are removed without their volumes), the project's other services, the compose file, and the next `docker compose up`, which deploys the file's image again",
    began: "image was deployed",
    // The engine keeps nothing of the containers a deploy replaced.
    unchecked_beside: Some("the engine keeps no record of the containers the deploy replaced, so a change to the compose file beside the image (environment, ports, volumes) cannot be ruled out; a rollback reverts the image only"),
    revert_time: (10, "the containers recreated on an image the engine already holds"),
    read: "containers",
    step: "image r",
    refused_if: "refused if one is made or removed",
    ask: "Recreate {service}'s containers on revision {to}?",
    unit: "revision",
    to_note: "(volumes kept)",
    sent: "containers recreated",
    done: "{resource} recreated on {images} by {by}",
    names_by_image: true,
    status: Some(status),
};

/// How a rollback of the service stands: its containers on the image, ready or not.
fn status(d: &WorkloadSummary, c: &Canary) -> Rollout {
    let service = d.handle.as_deref().unwrap_or(&d.name);
    let image = short_id(&c.stable_replicaset);
    let (ready, all) = (d.ready_replicas, d.replicas);
    match ready < all {
        true => Rollout::Progressing(format!(
            "Waiting for compose service {service}: {ready} of {all} containers ready on image {image}..."
        )),
        false => Rollout::Complete(format!(
            "compose service {service} runs {all} of {all} containers on image {image}"
        )),
    }
}

/// The label on a container backout created: its rollback record, as JSON.
pub const RECORD_LABEL: &str = "dev.backout.rollback";

/// The labels Compose puts on a service's containers.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";

/// A container renamed aside while its replacement starts ends with this; one left
/// by a swap cut short is found and finished by the next rollback.
pub const ASIDE_SUFFIX: &str = "-backout-old";

/// The repository whose tags mark the images a service was rolled back from.
pub fn known_bad_repository(project: &str, service: &str) -> String {
    format!("backout-rolled-back/{project}.{service}")
}

/// The tag that marks `image_id` rolled back from at `at`: the id's first 12 hex
/// digits and the time in seconds (a tag allows only `[A-Za-z0-9_.-]`).
pub fn known_bad_tag(image_id: &str, at: Timestamp) -> String {
    format!("{}.{}", short_id(image_id), at.as_second())
}

/// An image id's first 12 hex digits, as `docker images` shows it.
pub fn short_id(image_id: &str) -> String {
    image_id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

/// Reads the marks among an image's tags: its full id → when it was rolled back
/// from. A mark whose time does not parse still marks the image bad.
pub fn known_bad_of(
    repository: &str,
    images: &[(String, Vec<String>)],
) -> BTreeMap<String, Timestamp> {
    let mut out = BTreeMap::new();
    for (id, tags) in images {
        for tag in tags {
            // An engine may spell the repository with a registry in front.
            let Some((_, mark)) = tag.split_once(&format!("{repository}:")) else {
                continue;
            };
            let (short, secs) = mark.split_once('.').unwrap_or((mark, ""));
            if short_id(id) != short {
                continue;
            }
            let at = secs
                .parse::<i64>()
                .ok()
                .and_then(|s| Timestamp::from_second(s).ok())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            let earliest = out.entry(id.clone()).or_insert(at);
            *earliest = (*earliest).min(at);
        }
    }
    out
}

/// The repository of an image reference: `registry:5000/shop/web:2` →
/// `registry:5000/shop/web`; a digest is dropped too.
pub fn repository_of(reference: &str) -> &str {
    let reference = reference.split('@').next().unwrap_or(reference);
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(colon) => &reference[..last_slash + colon],
        None => reference,
    }
}

#[cfg(test)]
mod tests;
