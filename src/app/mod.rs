//! Running backout: the core loop that owns the state, shared by every mode, and the
//! console session the terminal drives.

pub mod console;
pub mod core;
pub mod session;
mod tty;
