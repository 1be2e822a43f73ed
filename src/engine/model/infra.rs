//! What backout knows of an infrastructure state it watches (Terraform): when it last
//! changed, or why that is unknown.

use jiff::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InfraState {
    pub name: String,
    pub changed_at: Option<Timestamp>,
    pub serial: Option<u64>,
    /// The file could not be read: whether it changed is unknown.
    pub error: Option<String>,
}
