//! The engine's data: plain types with no logic beyond formatting, which every other
//! engine module may use and which use no engine module but the leaf ones
//! (`signals`, `rollout`). Keeping the types here is what keeps the engine's module
//! graph free of cycles.

pub mod alerts;
pub mod decision;
pub mod evidence;
pub mod flags;
pub mod images;
pub mod infra;
pub mod journal;
pub mod keys;
pub mod lineage;
pub mod msg;
pub mod pod_view;
pub mod rollback;
