//! Kubernetes semantics that both the simulator and backout rely on: label and field
//! selectors, and pod-template identity (hash, equality, revisions).

pub mod selectors;
pub mod template;
