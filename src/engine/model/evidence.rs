//! What a decision rested on, as journaled beside it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub firing: Vec<SignalRecord>,
    pub gates: Vec<GateRecord>,
    pub confidence_parts: Vec<(String, f64)>,
    pub deploy: Option<RevisionRecord>,
    pub target: Option<RevisionRecord>,
    /// What rolling back to the target changes in the pod template.
    pub changes: Vec<String>,
    pub blast_radius: Vec<NoteRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    pub trigger: String,
    pub value: Option<f64>,
    pub comparison: String,
    pub threshold: f64,
    pub onset: Option<Timestamp>,
    /// (unix ms, value), oldest first.
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    pub number: u8,
    pub name: String,
    pub passed: bool,
    pub evidence: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRecord {
    pub revision: u64,
    pub images: Vec<String>,
    pub change_cause: Option<String>,
    pub deployed_by: Option<String>,
    pub created: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoteRecord {
    pub risk: bool,
    pub text: String,
}
