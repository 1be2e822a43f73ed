//! Running backout: the core loop that owns the state, shared by every mode.

pub mod console;
pub mod core;
pub mod ui_state;
