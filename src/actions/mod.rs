//! Side effects, performed by the effect runner on behalf of `update`, and the
//! rollback itself: the one place backout writes to a cluster.

pub mod access;
mod alias_shift;
mod atlassian;
pub mod bluegreen;
mod execute;
pub mod journal;
mod kill_switch;
pub mod lease;
pub mod notify;
pub mod registry;
pub mod rollback;
pub mod runner;
