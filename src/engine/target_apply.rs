//! Applying reads of targets that live outside the cluster (a Lambda alias): each
//! read replaces the service's summary and revisions whole. A failed read changes
//! nothing it knew; the source reports its health, and a rollback reads afresh.
//! Part of `update`, and as pure.

use super::msg::TargetRead;
use super::state::{ServiceKey, State};

/// Applies a read; returns the services whose decisions it may move.
pub(super) fn apply(state: &mut State, read: TargetRead) -> Vec<ServiceKey> {
    let TargetRead { service, read } = read;
    let Ok((summary, revisions)) = read else {
        return Vec::new();
    };
    let now = state.now;
    let svc = state.service_mut(&service);
    if summary.revision > 0 {
        svc.revision_seen.entry(summary.revision).or_insert(now);
    }
    svc.deployment = Some(summary);
    svc.replicasets = revisions
        .into_iter()
        .map(|r| (r.replicaset.clone(), Box::new(r)))
        .collect();
    super::kube_apply::relineage(state, &service);
    vec![service]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kept::{Revision, TargetKind, WorkloadSummary};

    fn revision(n: u64) -> Revision {
        Revision {
            number: n,
            replicaset: n.to_string(),
            images: vec![format!("code v{n}")],
            change_cause: None,
            deployed_by: None,
            created: None,
            replicas: 0,
            returned: false,
            held_before: Vec::new(),
            rollback_record: None,
            template: None,
        }
    }

    fn summary(marked_bad: Vec<(String, jiff::Timestamp)>) -> WorkloadSummary {
        WorkloadSummary {
            kind: TargetKind::LambdaAlias,
            name: "payments".into(),
            revision: 3,
            generation: 1,
            observed_generation: 1,
            paused: false,
            replicas: 100,
            status_replicas: 100,
            updated_replicas: 100,
            ready_replicas: 100,
            available_replicas: 100,
            progress_reason: None,
            template_labels: Default::default(),
            references: Vec::new(),
            manager: None,
            template: None,
            canary: None,
            handle: Some("payments:live".into()),
            marked_bad,
            instances: None,
        }
    }

    #[test]
    fn a_read_replaces_the_revisions_and_a_failed_one_keeps_them() {
        let mut state = State::new(
            crate::config::Config::default(),
            "2026-12-06T05:00:00Z".parse().unwrap(),
        );
        let key = ServiceKey::new("lambda", "payments");
        let read = |r| TargetRead {
            service: key.clone(),
            read: r,
        };
        let touched = apply(
            &mut state,
            read(Ok((summary(Vec::new()), vec![revision(2), revision(3)]))),
        );
        assert_eq!(touched, std::slice::from_ref(&key));
        assert_eq!(state.services[&key].replicasets.len(), 2);
        assert!(apply(&mut state, read(Err("throttled".into()))).is_empty());
        assert_eq!(
            state.services[&key].replicasets.len(),
            2,
            "an unanswered read is not an empty history"
        );
        let at: jiff::Timestamp = "2026-12-06T05:00:00Z".parse().unwrap();
        apply(
            &mut state,
            read(Ok((
                summary(vec![("2".into(), at)]),
                vec![revision(1), revision(2), revision(3)],
            ))),
        );
        let svc = &state.services[&key];
        assert_eq!(svc.replicasets.len(), 3);
        assert!(
            svc.lineage.is_known_bad("2"),
            "the function's tag marks version 2 bad for every process"
        );
    }
}
