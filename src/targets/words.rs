//! How each kind outside the cluster (an alias read by polling: Lambda, MLflow, a
//! Compose service) is told wherever a revert is told: the blast radius, gates 1 and
//! 3, the roll-back-or-forward estimate, the dialog and the CLI. One table per kind,
//! kept beside the kind (`lambda::WORDS`, `model::WORDS`, `compose::WORDS`) and
//! registered in `TargetKind::words`, so that adding a kind touches its own file and
//! that registration, not the engine, the console and the CLI.

use crate::engine::kept::{Canary, WorkloadSummary};
use crate::engine::rollout::Rollout;

pub struct Words {
    /// What a revert does to the traffic, for the blast radius: "sends every request".
    pub moves: &'static str,
    /// What a version holds, so goes back with it.
    pub holds: &'static str,
    /// What lives beside the versions, so a revert does not touch.
    pub beside: &'static str,
    /// Gate 1: what starts the onset window, after "revision N's".
    pub began: &'static str,
    /// Gate 3: why the kind cannot show that only the version changed, if it cannot.
    /// Such a kind is never rolled back automatically.
    pub unchecked_beside: Option<&'static str>,
    /// The estimate: how many seconds a revert takes here, and why.
    pub revert_time: (u64, &'static str),
    /// The fresh read that stands in for a dry run: what is read, how a move from
    /// one version to another is written (`v2 → v1`), and what refuses it.
    pub read: &'static str,
    pub step: &'static str,
    pub refused_if: &'static str,
    /// The dialog's question, with `{service}` and `{to}`; what it calls a revision,
    /// and what it says of the target.
    pub ask: &'static str,
    pub unit: &'static str,
    pub to_note: &'static str,
    /// The console's step once the revert is made.
    pub sent: &'static str,
    /// The CLI's line once it is made, with `{resource}`, `{by}`, `{to}` and `{images}`.
    pub done: &'static str,
    /// Whether its own tools name a version by its image reference (else by number).
    pub names_by_image: bool,
    /// Its own words for how the revert stands, where a generic alias's do not fit.
    pub status: Option<fn(&WorkloadSummary, &Canary) -> Rollout>,
}

impl Words {
    /// `template` with its placeholders filled.
    pub fn fill(template: &str, fields: &[(&str, &str)]) -> String {
        fields
            .iter()
            .fold(template.to_string(), |text, (name, value)| {
                text.replace(&format!("{{{name}}}"), value)
            })
    }
}
