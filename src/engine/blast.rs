//! Blast radius: what a rollback reverts (the pod template) and what it does not
//! (ConfigMaps, Secrets, schema migrations, dependent services, a GitOps controller
//! that will sync the bad version back, an HPA's replica count).

pub use super::model::decision::Note;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::kept::Manager;
use super::model::decision::ago;
use super::rollout::{self, Revision};
use super::state::{Service, ServiceKey, State};

fn note(risk: bool, text: String) -> Note {
    Note { risk, text }
}

pub use super::kept::referenced;

fn current_template(svc: &Service) -> Option<PodTemplateSpec> {
    svc.deployment.as_ref()?.template.as_ref()?.spec()
}

/// The ConfigMaps and Secrets the current template reads, as read on arrival.
fn current_references(svc: &Service) -> Option<&[(&'static str, String)]> {
    svc.deployment.as_ref().map(|d| d.references.as_slice())
}

/// Referenced ConfigMaps and Secrets this user may not see (RBAC), with why: whether
/// they changed is unknown.
pub fn unseen_config(state: &State, key: &ServiceKey, svc: &Service) -> Vec<String> {
    let Some(references) = current_references(svc) else {
        return Vec::new();
    };
    references
        .iter()
        .filter_map(|(kind, name)| {
            let kube_kind = match *kind {
                "Secret" => super::model::keys::KubeKind::Secret,
                _ => super::model::keys::KubeKind::ConfigMap,
            };
            // Unseen in the namespace, or everywhere (an `-A` watch's relist is `""`).
            let hidden = [key.namespace.clone(), String::new()]
                .into_iter()
                .any(|ns| state.unseen.contains_key(&(kube_kind, ns)));
            hidden.then(|| format!("{kind} {name}"))
        })
        .collect()
}

/// Referenced ConfigMaps and Secrets that changed between the onset window before the
/// deploy and now, described with when.
pub fn changed_config(
    state: &State,
    key: &ServiceKey,
    svc: &Service,
    deployed: Option<Timestamp>,
) -> Vec<String> {
    let Some(references) = current_references(svc) else {
        return Vec::new();
    };
    let anchor = deployed.unwrap_or(state.now);
    let from = anchor
        .checked_sub(
            jiff::SignedDuration::try_from(state.config.policy.onset_window).unwrap_or_default(),
        )
        .unwrap_or(anchor);
    references
        .iter()
        .filter_map(|(kind, name)| {
            let obj = state
                .config_objects
                .get(&(key.namespace.clone(), *kind, name.clone()))?;
            let at = obj.changed_at.filter(|t| *t >= from)?;
            let when = if at <= anchor {
                format!("{} before the deploy", ago(anchor, at))
            } else {
                format!("{} after the deploy", ago(at, anchor))
            };
            Some(format!("{kind} {name} (changed {when})"))
        })
        .collect()
}

fn is_migration(job: &k8s_openapi::api::batch::v1::Job) -> bool {
    let meta = &job.metadata;
    let annotated = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::k8s::template::MIGRATION))
        .is_some_and(|v| v == "true");
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/component"))
        .is_some_and(|v| v == "migration");
    let named = meta.name.as_deref().is_some_and(|n| n.contains("migrat"));
    annotated || labelled || named
}

/// Migration Jobs in `namespace` that started within ± the migration window of the deploy.
pub fn migrations(state: &State, namespace: &str, deployed: Option<Timestamp>) -> Vec<String> {
    let anchor = deployed.unwrap_or(state.now);
    let window = state.config.policy.migration_window.as_secs() as i64;
    state
        .jobs
        .iter()
        .filter(|((ns, _), job)| ns == namespace && is_migration(job))
        .filter_map(|((_, name), job)| {
            let started = job
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .or(job.metadata.creation_timestamp.as_ref())?
                .0;
            let delta = started.duration_since(anchor).as_secs();
            (delta.abs() <= window).then(|| {
                let when = if delta <= 0 {
                    format!("{} before", ago(anchor, started))
                } else {
                    format!("{} after", ago(started, anchor))
                };
                format!("Job {name} ({when} the deploy)")
            })
        })
        .collect()
}

fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

/// Which of the references only the current template has were created for the
/// deploy (within the onset window before it), in words.
fn created_for_deploy(
    state: &State,
    key: &ServiceKey,
    kind: &str,
    names: &[String],
    deployed: Option<Timestamp>,
) -> String {
    let (Some(deployed), true) = (deployed, matches!(kind, "ConfigMap" | "Secret")) else {
        return String::new();
    };
    let window = state.config.policy.onset_window.as_secs() as i64;
    let made: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let at = state
                .config_objects
                .get(&(key.namespace.clone(), kind, name.clone()))?
                .changed_at?;
            let before = deployed.duration_since(at).as_secs();
            (before.abs() <= window)
                .then(|| format!("{name} was created {} before the deploy", ago(deployed, at)))
        })
        .collect();
    match made.is_empty() {
        true => String::new(),
        false => format!(" ({}; it stays in the cluster)", made.join(", ")),
    }
}

/// What an abort leaves behind: Argo keeps the canary's template in the spec, and
/// leaving the abort (a retry, a resync) would start that canary again.
fn canary_note(c: &super::kept::Canary) -> Option<Note> {
    if c.in_progress() {
        return Some(note(
            false,
            "an abort keeps the canary's template in the Rollout's spec: it stays off only while aborted; undo (or a fix in the source it syncs from) replaces it".into(),
        ));
    }
    c.aborted.then(|| {
        note(
            true,
            format!(
                "the canary is aborted ({}): the spec still holds its template; undo puts the stable one back and ends the abort",
                c.message
            ),
        )
    })
}

/// What shifting an alias back reverts (a Lambda alias, a model alias, the image a
/// Compose service runs): a version holds what it was built from, so that goes back;
/// what lives beside the versions does not.
fn alias_notes(
    d: &super::kept::WorkloadSummary,
    target: Option<&Revision>,
    history: &[Revision],
) -> Vec<Note> {
    let Some(words) = d.kind.words() else {
        return Vec::new();
    };
    let (moves, holds, beside) = (words.moves, words.holds, words.beside);
    let mut out = Vec::new();
    let share = d
        .canary
        .as_ref()
        .filter(|c| c.in_progress())
        .map_or(String::new(), |c| {
            format!(" (the canary's {}% and the rest)", c.weight)
        });
    match target {
        Some(t) => out.push(note(
            false,
            format!(
                "a rollback {moves}{share} to version {} ({}): {holds}",
                t.number,
                t.images.join(", ")
            ),
        )),
        None if history.len() <= 1 => out.push(note(false, "the first version: there is no earlier one to roll back to".into())),
        None => out.push(note(true, "no earlier version is left that was not rolled back from: there is nothing to roll back to".into())),
    }
    out.push(note(
        false,
        format!("a rollback does not revert what lives beside the versions: {beside}"),
    ));
    out
}

/// The service's feature flags: one turned on lately is what the rollback turns off
/// (the template stays); one that cannot be read is unknown, never "unchanged".
fn flag_notes(state: &State, key: &ServiceKey, svc: &Service) -> Vec<Note> {
    let window = state.config.policy.onset_window;
    let in_play = super::model::flags::in_play(state.flags.values(), key, state.now, window);
    let mut out = Vec::new();
    if let Some((f, on)) = in_play {
        out.push(note(
            false,
            format!(
                "flag {} was turned on {} ago{}: the rollback turns it off (the kill switch: instant, and the template stays at revision {}); backout never turns a flag on",
                f.name,
                super::model::decision::ago(state.now.max(on), on),
                f.changed_by.as_ref().map_or(String::new(), |b| format!(" by {b}")),
                svc.deployment.as_ref().map_or(0, |d| d.revision)
            ),
        ));
    }
    for f in state.flags.values().filter(|f| f.service == *key) {
        if let Some(e) = &f.error {
            out.push(note(
                true,
                format!("flag {} could not be read ({e}): whether it changed near the deploy is unknown", f.name),
            ));
        }
    }
    out
}

/// Terraform states that changed within the migration window of the deploy: a
/// rollback does not revert them, and backout only advises.
fn infrastructure(state: &State, deployed: Option<Timestamp>) -> Vec<Note> {
    let window = state.config.policy.migration_window;
    state
        .infra
        .values()
        .filter_map(|i| {
            if let Some(e) = &i.error {
                return Some(note(false, format!("whether Terraform state {} changed near the deploy is unknown: {e}", i.name)));
            }
            let (changed, deployed) = (i.changed_at?, deployed?);
            let apart = changed.duration_since(deployed).as_secs().unsigned_abs();
            (apart <= window.as_secs()).then(|| {
                let serial = i.serial.map_or(String::new(), |s| format!(" (serial {s})"));
                let when = match changed >= deployed {
                    true => format!("{} after", super::model::decision::ago(changed, deployed)),
                    false => format!("{} before", super::model::decision::ago(deployed, changed)),
                };
                note(
                    true,
                    format!("infrastructure changed near the deploy: Terraform state {}{serial} changed {when} it; a rollback does not revert it, and backout never runs Terraform: check `terraform plan` before rolling back", i.name),
                )
            })
        })
        .collect()
}

pub fn notes(
    state: &State,
    key: &ServiceKey,
    svc: &Service,
    history: &[Revision],
    deployed: Option<Timestamp>,
) -> Vec<Note> {
    let mut out = Vec::new();
    let target = super::lineage::target(svc, history);
    let alias = svc
        .deployment
        .as_ref()
        .filter(|d| d.kind.kube_kind().is_none());
    if let Some(d) = alias {
        out.extend(alias_notes(d, target, history));
    } else {
        match (
            current_template(svc),
            target.and_then(|t| t.template.as_ref()?.spec()),
        ) {
            (Some(current), Some(old)) => {
                let changes = rollout::diff(&current, &old);
                let summary: Vec<String> = changes
                    .iter()
                    .map(|c| format!("{} {}: {} → {}", c.container, c.field, c.from, c.to))
                    .collect();
                let canary = svc.deployment.as_ref().and_then(|d| d.canary.as_ref());
                let text = match canary.filter(|c| c.in_progress()) {
                _ if summary.is_empty() => "the target revision's pod template equals the current one; a rollback changes nothing".to_string(),
                Some(c) => format!(
                    "an abort moves the canary's {}% of the replicas back to the stable template ({}): {}",
                    c.weight,
                    c.stable_replicaset,
                    summary.join("; ")
                ),
                None => format!(
                    "a rollback reverts the pod template: {}",
                    summary.join("; ")
                ),
            };
                out.push(note(false, text));
                out.extend(canary.and_then(canary_note));
                for (kind, gone, back) in rollout::reference_changes(&current, &old) {
                    out.push(note(
                        false,
                        format!(
                            "a rollback switches the {kind} reference back: {} → {}{}",
                            listed(&gone),
                            listed(&back),
                            created_for_deploy(state, key, kind, &gone, deployed)
                        ),
                    ));
                }
            }
            // The first revision of a service: nothing went wrong by deploying it.
            _ if history.len() <= 1 => out.push(note(
                false,
                "the first revision: there is no earlier one to roll back to".into(),
            )),
            _ => out.push(note(
                true,
                "no earlier revision is left in history: there is nothing to roll back to".into(),
            )),
        }
    }
    for image in target.iter().flat_map(|t| &t.images) {
        use super::model::images::ImagePresence;
        match state.images.get(image) {
            Some(ImagePresence::Missing(why)) => out.push(note(
                true,
                format!("target image missing: {image} ({why}); push it back or choose another revision"),
            )),
            Some(ImagePresence::Unknown(why)) => out.push(note(
                false,
                format!("whether target image {image} still exists is unknown: {why}"),
            )),
            _ => {}
        }
    }
    out.extend(flag_notes(state, key, svc));
    out.extend(infrastructure(state, deployed));
    for changed in changed_config(state, key, svc, deployed) {
        out.push(note(
            true,
            format!("{changed}: a rollback does not revert it"),
        ));
    }
    let unseen = unseen_config(state, key, svc);
    for hidden in &unseen {
        out.push(note(
            true,
            format!("{hidden} is not visible to you (RBAC): whether it changed with this deploy is unknown, and a rollback would not revert it"),
        ));
    }
    if let Some(references) = current_references(svc) {
        let changed = changed_config(state, key, svc, deployed);
        let unchanged: Vec<String> = references
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .filter(|r| !unseen.contains(r))
            .filter(|r| !changed.iter().any(|c| c.starts_with(r.as_str())))
            .collect();
        if !unchanged.is_empty() {
            out.push(note(
                false,
                format!(
                    "also reads {} (unchanged in the window)",
                    unchanged.join(", ")
                ),
            ));
        }
    }
    for m in migrations(state, &key.namespace, deployed) {
        out.push(note(true, format!("{m}: a rollback does not undo a schema migration; check the old image reads the new schema")));
    }
    let dependents = state.config.dependents(&key.name);
    if !dependents.is_empty() {
        let firing: Vec<&str> = dependents
            .iter()
            .copied()
            .filter(|d| {
                state
                    .services
                    .get(&ServiceKey::new(&key.namespace, d))
                    .is_some_and(|s| s.decision.action != super::model::decision::Action::None)
            })
            .collect();
        let mut text = format!("depended on by {}", dependents.join(", "));
        // The order of a cascade's rollbacks matters only to a service that is in it.
        let itself_firing = svc.triggers.values().any(|t| t.alert.is_firing());
        if itself_firing && !firing.is_empty() {
            text.push_str(&format!(
                "; {} also firing: in a cascade roll back in reverse dependency order, {} first",
                firing.join(", "),
                key.name
            ));
        }
        out.push(note(itself_firing && !firing.is_empty(), text));
    }
    let gitops = state
        .config
        .gitops
        .iter()
        .find(|g| g.covers(&key.namespace, &key.name));
    match (svc.deployment.as_ref().and_then(|d| d.manager), gitops) {
        // backout reverts in Git, where the controller reads: nothing puts it back.
        (_, Some(g)) => out.push(note(
            !g.auto_sync,
            match g.auto_sync {
                true => format!("synced from {} ({}, {}): the rollback is a git revert there, which the controller's next sync applies; nothing puts the bad version back", g.repo, g.branch, g.path),
                false => format!("synced from {} ({}, {}) without auto-sync: the rollback is a git revert there, and reaches the cluster only when someone syncs", g.repo, g.branch, g.path),
            },
        )),
        (Some(Manager::ArgoCd), None) => out.push(note(true, "Argo CD manages this Deployment: its next sync puts the bad version back unless auto-sync is paused or Git is reverted (name its repository in a [[gitops]] entry and backout reverts there)".into())),
        (Some(Manager::Flux), None) => out.push(note(true, "Flux manages this Deployment: its next reconcile puts the bad version back unless it is suspended or Git is reverted (name its repository in a [[gitops]] entry and backout reverts there)".into())),
        (None, None) => {}
    }
    for ((ns, hpa), target) in &state.hpas {
        if ns == &key.namespace && target == &key.name {
            out.push(note(
                false,
                format!(
                    "HPA {hpa} scales this Deployment; a rollback keeps the current replica count"
                ),
            ));
        }
    }
    out
}
