//! Running backout: the core loop that owns the state, shared by every mode.

pub mod core;
