//! The headless core every mode shares: state, the pure `update`, the decision and
//! what feeds it. Nothing in here performs I/O.

mod answers;
pub mod blast;
mod by_name;
pub mod cluster_signals;
pub mod decision;
pub mod evidence;
pub mod fan_out;
pub mod following;
pub mod forward;
pub mod gates;
pub mod handoff;
pub mod kept;
mod kube_apply;
pub mod lineage;
pub mod model;
pub mod recent;
pub mod retry;
pub mod rollbacks;
pub mod rollout;
pub mod series;
pub mod signals;
pub mod state;
mod target_apply;
pub mod update;
pub mod verification;
mod verification_words;

// The data types live in `model`; these paths are the ones the rest of backout uses.
pub use model::{journal, msg};

pub use model::decision::{Action, Decision};
pub use model::keys::ServiceKey;
pub use msg::{
    Effect, GroupedAnswer, GroupedOutcome, KubeChange, KubeKind, KubeObject, Msg, QueryAnswer,
    SourceHealth, SourceId,
};
pub use state::State;
pub use update::update;

#[cfg(test)]
mod blind_tests;
#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod dependency_tests;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
#[cfg(test)]
mod incident_tests;
#[cfg(test)]
mod partial_tests;
#[cfg(test)]
mod quiet_tests;
#[cfg(test)]
mod target_tests;
#[cfg(test)]
mod tests;
