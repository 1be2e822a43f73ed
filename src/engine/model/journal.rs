//! The incident journal's records: one JSON line each, grouped by incident id.
//! `update` produces them as effects; the effect runner appends and fsyncs them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub at: Timestamp,
    pub incident: Option<String>,
    /// `namespace/deployment`, or empty for cluster-wide records.
    pub service: String,
    #[serde(flatten)]
    pub entry: Entry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    IncidentOpened {
        summary: String,
    },
    IncidentResolved {
        summary: String,
    },
    Decision {
        action: String,
        confidence: Option<f64>,
        target_revision: Option<u64>,
        gates_failed: Vec<String>,
        why_not_automatic: Vec<String>,
        /// What the decision rested on; absent in journals written before it existed.
        #[serde(default)]
        evidence: Option<Box<super::evidence::Evidence>>,
    },
    Trigger {
        trigger: String,
        from: String,
        to: String,
        value: Option<f64>,
        data: String,
    },
    MetricsBlind {
        trigger: String,
        since: Timestamp,
        detail: String,
    },
    Source {
        source: String,
        health: String,
    },
    Rollback {
        from_revision: u64,
        from_images: Vec<String>,
        to_revision: u64,
        to_images: Vec<String>,
        by: String,
        reason: String,
        automatic: bool,
    },
    /// Written by the effect runner just before the rollback's patch is sent, so a
    /// process killed between the patch and its record leaves the intent behind.
    RollbackIntent {
        from_revision: u64,
        to_revision: u64,
        by: String,
        reason: String,
        automatic: bool,
    },
    /// A blue-green Service switched back.
    Switch {
        label: String,
        from: String,
        to: String,
        by: String,
        reason: String,
    },
    /// A rollback found its target already running and changed nothing.
    AlreadyThere {
        to_revision: u64,
        by: String,
    },
    RollbackFailed {
        to_revision: u64,
        by: String,
        error: String,
    },
    Verification {
        outcome: String,
        checks: Vec<String>,
    },
    Notification {
        channel: String,
        delivered: bool,
        detail: String,
    },
}

/// An incident id: when it opened and for which Deployment, readable in a file name.
pub fn incident_id(at: Timestamp, namespace: &str, name: &str) -> String {
    format!("{}-{namespace}-{name}", at.strftime("%Y%m%dT%H%M%SZ"))
}
