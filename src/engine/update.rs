//! `update(&mut State, Msg) -> Vec<Effect>`: the one place state changes. Pure: no
//! I/O, no clock (time arrives in messages), so every rule is unit-testable.

use super::answers::{apply_answer, held_open, query, stale_after, trigger_at};
use super::decision::{self, Action};
use super::journal::{incident_id, Entry};
use super::msg::{Effect, Msg, PlacedAnswer};
use super::rollbacks;
use super::signals::DataState;
use super::state::{Service, ServiceKey, State, Tally};

pub fn update(state: &mut State, msg: Msg) -> Vec<Effect> {
    let mut effects = Vec::new();
    let touched: Vec<ServiceKey> = match msg {
        Msg::Tick(now) => {
            state.now = now.max(state.now);
            let mut touched = std::collections::BTreeSet::new();
            for answer in super::cluster_signals::sample(state) {
                touched.extend(apply_answer(state, answer, None, &mut effects));
            }
            let tally = tick(state, &mut effects);
            super::retry::due(state, &mut effects);
            state.blind_at_tick = state.blind_given(&tally);
            state.answered_at_tick = (tally.answered, tally.asked);
            // A quiet service's decision reads only its objects, and those arrive as
            // messages: re-deciding thousands of them every second changed nothing and
            // cost a core's worth of ticks at 2,000 services.
            touched.extend(
                state
                    .services
                    .iter()
                    .filter(|(key, svc)| in_play(state, key, svc))
                    .map(|(key, _)| key.clone()),
            );
            touched.into_iter().collect()
        }
        Msg::Kube(change) => super::kube_apply::kube(state, change),
        Msg::Query(answer) => query(state, answer, None, &mut effects)
            .into_iter()
            .collect(),
        Msg::Queries(grouped) => {
            let Some(trigger_at) = trigger_at(state, &grouped.trigger) else {
                return effects;
            };
            let (answered_at, partial_from) = (grouped.answered_at, grouped.partial_from);
            super::fan_out::fan_out(grouped.services, grouped.outcome)
                .into_iter()
                .filter_map(|(service, outcome)| {
                    let answer = PlacedAnswer {
                        trigger_at,
                        service,
                        answered_at,
                        outcome,
                    };
                    apply_answer(state, answer, partial_from, &mut effects)
                })
                .collect()
        }
        Msg::RollbackFailed { service, error } => {
            rollbacks::failed(state, &service, error, &mut effects);
            vec![service]
        }
        Msg::RollbackRequested { service, request } => {
            rollbacks::order(state, &service, request, &mut effects);
            vec![service]
        }
        Msg::Abandon { service, why } => {
            super::verification::abandon(state, &service, &why, &mut effects);
            vec![service]
        }
        Msg::Drain => {
            state.draining = true;
            Vec::new()
        }
        Msg::RollbackStep { service, step } => {
            rollbacks::step(state, &service, step, &mut effects);
            vec![service]
        }
        Msg::PreviewRequested {
            service,
            to_revision,
            switch_to,
        } => {
            effects.extend(rollbacks::preview(state, &service, to_revision, switch_to));
            Vec::new()
        }
        Msg::Previewed {
            service,
            to_revision,
            result,
        } => {
            rollbacks::previewed(state, &service, to_revision, result);
            Vec::new()
        }
        Msg::Alerts { at, alerts } => {
            state.alerts_answered_at = Some(at.max(state.alerts_answered_at.unwrap_or(at)));
            let mut changed = Vec::new();
            for (key, svc) in state.services.iter_mut() {
                let mine = super::model::alerts::naming(&alerts, &key.namespace, &key.name);
                if mine != svc.alerts {
                    svc.alerts = mine;
                    changed.push(key.clone());
                }
            }
            state.alerts = alerts;
            changed
        }
        Msg::Target(read) => super::target_apply::apply(state, read),
        Msg::Flag(flag) => {
            let service = flag.service.clone();
            state.flags.insert(flag.name.clone(), flag);
            vec![service]
        }
        Msg::Infra(seen) => {
            state.infra.insert(seen.name.clone(), seen);
            state.services.keys().cloned().collect()
        }
        Msg::ImagesChecked(answers) => {
            let images: Vec<String> = answers.iter().map(|(i, _)| i.clone()).collect();
            state.images.extend(answers);
            state
                .services
                .iter()
                .filter(|(_, svc)| {
                    svc.decision
                        .target
                        .as_ref()
                        .is_some_and(|t| t.images.iter().any(|i| images.contains(i)))
                })
                .map(|(key, _)| key.clone())
                .collect()
        }
        Msg::PodOpened(opened) => {
            state.pod_view = opened.map(|(service, pod, opened)| {
                super::model::pod_view::PodView::new(service, pod, opened)
            });
            Vec::new()
        }
        Msg::Pod { opened, feed } => {
            // A reader of a pod since closed may still be sending.
            if let Some(view) = state.pod_view.as_mut().filter(|v| v.opened == opened) {
                view.apply(feed);
            }
            Vec::new()
        }
        Msg::JournalFailed { error } => {
            // A failed journal write cannot be journaled; it is kept and shown.
            keep_error(state, format!("journal write failed: {error}"));
            Vec::new()
        }
        Msg::Notified {
            service,
            channel,
            attempts,
            error,
        } => {
            if let Some(e) = &error {
                keep_error(state, format!("notification via {channel} failed: {e}"));
            }
            let incident = service
                .as_ref()
                .and_then(|k| state.services.get(k))
                .and_then(|s| s.incident.clone());
            let entry = Entry::Notification {
                channel,
                delivered: error.is_none(),
                detail: error.unwrap_or_else(|| {
                    format!("{attempts} attempt{}", if attempts == 1 { "" } else { "s" })
                }),
            };
            let who = service.map_or(String::new(), |k| k.to_string());
            effects.push(state.journal(incident, &who, entry));
            Vec::new()
        }
        Msg::Source { source, health } => {
            if state.sources.get(&source) != Some(&health) {
                effects.push(state.journal(
                    None,
                    "",
                    Entry::Source {
                        source: source.label().into(),
                        health: format!("{health:?}"),
                    },
                ));
                state.sources.insert(source, health);
            }
            Vec::new()
        }
    };
    for key in touched {
        super::following::adopt(state, &key, &mut effects);
        super::verification::advance(state, &key, &mut effects);
        redecide(state, &key, &mut effects);
    }
    // The console's timeline shows the journal as it is written.
    for effect in &effects {
        if let Effect::Journal(record) = effect {
            state.journaled.push_back(record.clone());
        }
    }
    while state.journaled.len() > JOURNAL_KEPT {
        state.journaled.pop_front();
    }
    effects
}

fn keep_error(state: &mut State, error: String) {
    state.effect_errors.push_back(error);
    while state.effect_errors.len() > 20 {
        state.effect_errors.pop_front();
    }
}

/// How many journal records the timeline keeps.
const JOURNAL_KEPT: usize = 200;

/// Marks triggers whose last answer is too old as stale, and pages once when a trigger
/// has been blind for longer than the policy allows. Counts every state as it goes
/// (`State::tally`), in the same walk: at 2,000 services a walk is a millisecond.
fn tick(state: &mut State, effects: &mut Vec<Effect>) -> Tally {
    let (now, stale, blind_after) = (
        state.now,
        stale_after(state),
        state.config.policy.blind_after,
    );
    // A query that never answers (a hung Prometheus) is as blind as one that stopped:
    // the clock starts when the service is first ticked with the trigger unanswered.
    let prometheus = state.config.prometheus.is_some();
    let triggers = &state.config.triggers;
    let queried = |at: usize| prometheus && triggers[at].cluster.is_none();
    let by_name = super::by_name::ByName::new(triggers);
    let (mut pages, mut tally) = (Vec::new(), Tally::default());
    for (key, svc) in state.services.iter_mut() {
        let unasked = by_name
            .pair(svc.triggers.iter())
            .any(|(at, t)| t.is_none() && queried(at));
        if unasked {
            for t in triggers.iter().enumerate().filter(|(at, _)| queried(*at)) {
                if !svc.triggers.contains_key(&t.1.name) {
                    svc.triggers.insert(t.1.name.clone(), Default::default());
                }
            }
        }
        let instances = svc.has_instances();
        for (at, t) in by_name.pair(svc.triggers.iter_mut()) {
            let Some(t) = t else {
                tally.add(&triggers[at], instances, None);
                continue;
            };
            match t.last_answer {
                Some(last) => {
                    let silent = now.duration_since(last).as_secs();
                    if silent > stale.as_secs() as i64 && t.data.is_clean() {
                        t.data = DataState::Stale(format!("no answer for {silent}s"));
                        t.blind_since.get_or_insert(now);
                    }
                }
                None if queried(at) => {
                    let since = *t.blind_since.get_or_insert(now);
                    let silent = now.duration_since(since).as_secs();
                    if silent > stale.as_secs() as i64 {
                        t.data = DataState::Stale(format!("no answer in {silent}s of asking"));
                    }
                }
                None => {}
            }
            if let Some(since) = t.blind_since {
                if !t.paged_blind
                    && now.duration_since(since).as_secs() >= blind_after.as_secs() as i64
                {
                    t.paged_blind = true;
                    pages.push((
                        key.clone(),
                        svc.incident.clone(),
                        triggers[at].name.clone(),
                        since,
                        t.data.clone(),
                    ));
                }
            }
            tally.add(&triggers[at], instances, Some(t));
        }
    }
    for (key, incident, trigger, since, data) in pages {
        let detail = match &data {
            DataState::NoData(d) | DataState::Error(d) | DataState::Stale(d) => d.clone(),
            other => other.label().into(),
        };
        effects.push(state.journal(
            incident,
            &key.to_string(),
            Entry::MetricsBlind {
                trigger: trigger.clone(),
                since,
                detail: detail.clone(),
            },
        ));
        effects.push(Effect::Page {
            service: key,
            summary: format!(
                "metrics blind: {trigger} has had {} since {since}: {detail}",
                data.label()
            ),
        });
    }
    tally
}

/// Whether a service's decision can move without a change to its objects: something
/// fires, an incident or a rollback is open, or one was just seen in the cluster.
/// With nothing firing, `decide` returns before it reads a trigger or the clock (but
/// for the blast radius of a deploy whose time is unknown), so a quiet service is
/// re-decided when its objects change, not on every answer and every tick.
fn in_play(state: &State, key: &ServiceKey, svc: &Service) -> bool {
    state.firing.contains(key) || held_open(svc)
}

/// A target image on a configured registry that nobody has asked about yet: ask, once.
fn ask_about_images(state: &mut State, next: &decision::Decision, effects: &mut Vec<Effect>) {
    use super::model::images::{parse, ImagePresence};
    let Some(target) = &next.target else {
        return;
    };
    let new: Vec<String> = target
        .images
        .iter()
        .filter(|i| !state.images.contains_key(*i))
        .filter(|i| {
            parse(i).is_some_and(|(host, ..)| state.config.registry.iter().any(|r| r.host == host))
        })
        .cloned()
        .collect();
    if new.is_empty() {
        return;
    }
    for image in &new {
        state.images.insert(image.clone(), ImagePresence::Asked);
    }
    effects.push(Effect::CheckImages { images: new });
}

fn redecide(state: &mut State, key: &ServiceKey, effects: &mut Vec<Effect>) {
    if !state.services.contains_key(key) {
        return;
    }
    let next = decision::decide(state, key);
    ask_about_images(state, &next, effects);
    let now = state.now;
    let svc = state.services.get_mut(key).expect("checked above");
    let prev = std::mem::replace(&mut svc.decision, next.clone());
    let changed =
        prev.action != next.action || prev.target != next.target || failed(&prev) != failed(&next);
    if !changed {
        return;
    }
    let mut opened = None;
    let mitigating = svc.rollback.as_ref().is_some_and(|p| p.running());
    if next.action != Action::None && svc.incident.is_none() {
        // Named by the deploy, not the clock: a restart or a namespace switch that
        // finds the same incident gives it the same id.
        let id = incident_id(next.deployed_at.unwrap_or(now), &key.namespace, &key.name);
        svc.incident = Some(id.clone());
        let firing: Vec<_> = next.firing.iter().map(|f| f.trigger.as_str()).collect();
        opened = Some(Entry::IncidentOpened {
            summary: format!("{key}: {} firing", firing.join(", ")),
        });
    }
    let incident = svc.incident.clone();
    if let Some(entry) = opened {
        effects.push(state.journal(incident.clone(), &key.to_string(), entry));
    }
    // While a rollback runs, its steps tell the story; a re-decision over the draining
    // signal would contradict it. The decision after it ends is journaled as usual.
    if !mitigating {
        effects.push(state.journal(
            incident.clone(),
            &key.to_string(),
            Entry::Decision {
                action: next.action.label().into(),
                confidence: next.confidence.as_ref().map(|c| c.score),
                target_revision: next.target.as_ref().map(|t| t.revision),
                gates_failed: failed(&next),
                why_not_automatic: next.why_not_automatic.clone(),
                evidence: Some(Box::new(super::evidence::of(state, key, &next))),
            },
        ));
    }
    if mitigating {
        // One story while a rollback (anyone's) runs: it is followed and verified;
        // no second rollback, no second page.
    } else if super::retry::allowed(state, key) {
        super::retry::order(state, key, 1, effects);
    } else if next.action >= Action::Suggest && next.action > prev.action {
        // No automatic rollback: a person decides, so tell them, with the command ready.
        effects.push(Effect::Page {
            service: key.clone(),
            summary: suggestion(state, key, &next),
        });
    }
    if next.action == Action::None && incident.is_some() && !mitigating {
        effects.push(state.journal(
            incident,
            &key.to_string(),
            Entry::IncidentResolved {
                summary: format!("{key}: no trigger firing"),
            },
        ));
        state.services.get_mut(key).expect("checked above").incident = None;
    }
}

/// A page for a rollback backout will not make itself: what fires, the target, and
/// the command that does it, in the kind's own words (a flag in play is its kill
/// switch).
fn suggestion(state: &State, key: &ServiceKey, d: &decision::Decision) -> String {
    let firing: Vec<&str> = d.firing.iter().map(|f| f.trigger.as_str()).collect();
    let mut text = format!("{key}: {} firing; {}", firing.join(", "), d.action.label());
    let workload = state.services.get(key).and_then(|s| s.deployment.as_ref());
    let window = state.config.policy.onset_window;
    let flag = super::model::flags::in_play(state.flags.values(), key, state.now, window);
    if let Some((f, _)) = flag {
        text.push_str(&format!(
            ": turn off flag {} (the kill switch; the template stays) with `backout rollback {} -n {}`",
            f.name, key.name, key.namespace
        ));
    } else if let Some(t) = &d.target {
        let kind = workload.map(|w| w.kind).unwrap_or_default();
        let handle = workload.and_then(|w| w.handle.clone());
        let canary = workload
            .and_then(|w| w.canary.as_ref())
            .is_some_and(|c| c.in_progress());
        let to = t.revision.to_string();
        // A Compose service's tools name an image by its reference.
        let named = match kind.words().is_some_and(|w| w.names_by_image) {
            true => t.images.first().unwrap_or(&to),
            false => &to,
        };
        let command = kind.command(
            handle.as_deref().unwrap_or(&key.name),
            &key.namespace,
            named,
            canary,
        );
        text.push_str(&format!(
            ": roll back to revision {to} ({}) with `{command}` or `backout rollback {} --to-revision {to} -n {}`",
            t.images.join(", "),
            key.name,
            key.namespace
        ));
    }
    if !d.why_not_automatic.is_empty() {
        text.push_str(&format!(
            "; not automatic because {}",
            d.why_not_automatic.join("; ")
        ));
    } else if d.action == Action::AutoRollback {
        text.push_str(
            "; automatic rollback is off here (`backout watch --auto-rollback` or [policy] auto_rollback = true turns it on)",
        );
    }
    text
}

fn failed(d: &decision::Decision) -> Vec<String> {
    d.gates
        .iter()
        .filter(|g| !g.passed)
        .map(|g| format!("{}", g.number))
        .collect()
}
