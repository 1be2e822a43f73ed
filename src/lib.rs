//! backout: a terminal incident console for deploy rollbacks.
//!
//! The modules follow the data flow; docs/ARCHITECTURE.md draws it.

pub mod actions;
pub mod app;
pub mod cli;
pub mod config;
pub mod engine;
pub mod redact;
pub mod sources;
pub mod targets;
pub mod ui;

/// Kubernetes semantics shared with the simulator, in a crate of their own.
pub use backout_k8s as k8s;
