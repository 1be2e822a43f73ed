//! backout: a terminal incident console for deploy rollbacks.
//!
//! The modules follow the data flow; docs/ARCHITECTURE.md draws it.

pub mod actions;
pub mod app;
pub mod cli;
pub mod config;
pub mod engine;
pub mod k8s;
pub mod sim;
pub mod sources;
pub mod ui;
