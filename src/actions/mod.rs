//! Side effects, performed by the effect runner on behalf of `update`.

pub mod journal;
pub mod runner;
