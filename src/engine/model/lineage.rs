//! A Deployment's past as data: rollbacks read from the cluster, backout's record of
//! its own, and the templates known bad.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What backout writes about a rollback it makes, as JSON in [`ROLLBACK_RECORD`].
/// It is trusted only on the ReplicaSet it names, at the revision it expected, since
/// the controller also copies it onto later ReplicaSets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackRecord {
    /// The revision the rollback creates (the current one plus one).
    pub revision: u64,
    pub from_replicaset: String,
    pub to_replicaset: String,
    pub at: Timestamp,
    pub by: String,
    pub reason: String,
    pub automatic: bool,
    #[serde(default)]
    pub incident: Option<String>,
}

/// A rollback read from the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeenRollback {
    /// The revision the rollback created.
    pub revision: u64,
    /// The ReplicaSet rolled back from, when the history still names it.
    pub from_replicaset: Option<String>,
    pub to_replicaset: String,
    /// When it happened: backout's record, when it was seen live, or its pods' start;
    /// `None` when nothing says.
    pub at: Option<Timestamp>,
    /// Who: backout's record, else the change-cause, else "outside backout".
    pub by: String,
    pub reason: Option<String>,
    pub automatic: bool,
    pub incident: Option<String>,
    /// Made by backout (its record is on the ReplicaSet).
    pub by_backout: bool,
}

/// A template that was rolled back from, by ReplicaSet name (one per template).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KnownBad {
    pub replicaset: String,
    /// The rollback away from it.
    pub rollback: SeenRollback,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lineage {
    /// Oldest first.
    pub rollbacks: Vec<SeenRollback>,
    /// ReplicaSet name → why it is known bad.
    pub known_bad: BTreeMap<String, KnownBad>,
    /// What runs now is a rollback (a template that came back, not a re-deployed bad one).
    pub current_is_rollback: bool,
}

impl Lineage {
    pub fn is_known_bad(&self, replicaset: &str) -> bool {
        self.known_bad.contains_key(replicaset)
    }

    /// Why a ReplicaSet's template is known bad, in words: "rolled back from 2m ago by
    /// dana@laptop: error-rate 14%".
    pub fn why_bad(&self, replicaset: &str, now: Timestamp) -> Option<String> {
        let r = &self.known_bad.get(replicaset)?.rollback;
        Some(format!(
            "rolled back from{} by {}{}",
            r.at.map_or(String::new(), |t| format!(
                " {} ago",
                super::decision::ago(now, t)
            )),
            r.by,
            r.reason
                .as_ref()
                .map_or(String::new(), |why| format!(": {why}"))
        ))
    }

    /// The newest rollback, if any.
    pub fn latest(&self) -> Option<&SeenRollback> {
        self.rollbacks.last()
    }
}
