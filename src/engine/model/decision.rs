//! A decision as data: its action, the gates with their evidence, the confidence, the
//! target, the blast radius; and the one way times are said in words.

use jiff::Timestamp;
use serde::Serialize;

use super::super::rollout::Rollout;
use crate::config::{Severity, Signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    None,
    Log,
    Suggest,
    AutoRollback,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Log => "log",
            Action::Suggest => "suggest",
            Action::AutoRollback => "auto_rollback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    pub number: u8,
    pub name: &'static str,
    pub passed: bool,
    pub evidence: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    pub name: &'static str,
    pub value: f64,
    pub weight: f64,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confidence {
    pub score: f64,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub trigger: String,
    pub value: Option<f64>,
    pub threshold: f64,
    pub severity: Severity,
    pub signal: Signal,
    pub onset: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRevision {
    pub revision: u64,
    pub replicaset: String,
    pub images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Decision {
    pub action: Action,
    pub firing: Vec<Firing>,
    pub gates: Vec<Gate>,
    pub why_not_automatic: Vec<String>,
    pub confidence: Option<Confidence>,
    pub current_revision: Option<u64>,
    pub target: Option<TargetRevision>,
    pub deployed_at: Option<Timestamp>,
    pub rollout: Option<Rollout>,
    pub blast_radius: Vec<Note>,
    /// For signals a rollback does not fix (saturation, memory, latency alone): what
    /// to do instead.
    pub advice: Vec<String>,
    /// Roll back or roll forward, with its inputs; `None` while nothing fires.
    pub forward: Option<Forward>,
}

/// Seed 001's choice between rolling back and rolling forward (shipping a fix).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forward {
    pub verdict: ForwardVerdict,
    /// About how long the rollback would take to run here, and what says so.
    pub rollback_secs: u64,
    pub rollback_from: String,
    /// A fix written, tested and deployed in less than this beats the rollback.
    pub fix_under_secs: u64,
    /// The table's factors that apply, each with the way it leans.
    pub factors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardVerdict {
    RollBack,
    /// A schema migration is involved: in order, with traffic stopped.
    RollBackCarefully,
    /// The rollback has known risks and nothing fails for users.
    RollForward,
}

impl Forward {
    /// One line: the verdict, what the rollback costs here, and the fix time that
    /// would beat it.
    pub fn summary(&self) -> String {
        format!(
            "roll back or forward: {} — a rollback takes about {}s here ({}); a fix beats it only if written, tested and deployed in under {}m",
            self.verdict.label(),
            self.rollback_secs,
            self.rollback_from,
            self.fix_under_secs / 60
        )
    }
}

impl ForwardVerdict {
    pub fn label(self) -> &'static str {
        match self {
            ForwardVerdict::RollBack => "roll back",
            ForwardVerdict::RollBackCarefully => "roll back carefully",
            ForwardVerdict::RollForward => "roll forward",
        }
    }
}

pub fn ago(now: Timestamp, then: Timestamp) -> String {
    let s = now.duration_since(then).as_secs();
    match s {
        s if s < 0 => format!("in {}s", -s),
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    /// Something the rollback leaves in place that may keep the incident going.
    pub risk: bool,
    pub text: String,
}
