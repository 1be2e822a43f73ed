//! What the Prometheus source asks, and when. Every poll interval: one grouped range
//! query per trigger for all watched services (per namespace when the query does not
//! select by namespace), or one per (trigger, service) for a trigger whose query
//! cannot be grouped (config load says why). At most one request per question is in
//! flight, concurrency is bounded, and every answer goes to the core as a message.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use super::prometheus::{Labels, Prometheus};
use crate::config::grouping::{Grouped, GroupedTrigger};
use crate::config::{Config, Trigger};
use crate::engine::signals::QueryOutcome;
use crate::engine::{
    GroupedAnswer, GroupedOutcome, Msg, QueryAnswer, ServiceKey, SourceHealth, SourceId,
};

/// One request to make this round.
enum Question {
    /// A trigger that cannot be grouped, for one service.
    One {
        trigger: Trigger,
        service: ServiceKey,
    },
    /// A grouped trigger, for these services: every watched one, or one
    /// namespace's when the query does not select by namespace.
    Batch {
        trigger: Trigger,
        plan: Arc<GroupedTrigger>,
        namespace: Option<String>,
        services: Vec<ServiceKey>,
    },
}

impl Question {
    /// Which earlier request this one would repeat, if it is still in flight.
    fn id(&self) -> String {
        match self {
            Question::One { trigger, service } => format!("{}\0{service}", trigger.name),
            Question::Batch {
                trigger, namespace, ..
            } => format!("{}\0*{}", trigger.name, namespace.as_deref().unwrap_or("")),
        }
    }
}

/// This round's questions for `trigger` over `services`.
fn questions(
    trigger: &Trigger,
    grouped: Option<&Arc<GroupedTrigger>>,
    services: &[ServiceKey],
) -> Vec<Question> {
    let Some(plan) = grouped else {
        return services
            .iter()
            .map(|service| Question::One {
                trigger: trigger.clone(),
                service: service.clone(),
            })
            .collect();
    };
    if services.is_empty() {
        return Vec::new();
    }
    let namespaced =
        plan.query.namespaced() && plan.volume.as_ref().is_none_or(Grouped::namespaced);
    let mut batches: Vec<(Option<String>, Vec<ServiceKey>)> = Vec::new();
    if namespaced {
        batches.push((None, services.to_vec()));
    } else {
        let mut by_namespace: std::collections::BTreeMap<&str, Vec<ServiceKey>> =
            Default::default();
        for s in services {
            by_namespace
                .entry(&s.namespace)
                .or_default()
                .push(s.clone());
        }
        batches.extend(
            by_namespace
                .into_iter()
                .map(|(ns, services)| (Some(ns.to_string()), services)),
        );
    }
    batches
        .into_iter()
        .map(|(namespace, services)| Question::Batch {
            trigger: trigger.clone(),
            plan: plan.clone(),
            namespace,
            services,
        })
        .collect()
}

/// What every request of a round shares.
#[derive(Clone)]
struct Round {
    prom: Prometheus,
    now: Timestamp,
    lookback: Duration,
    step: Duration,
}

/// What a question's last answer covered: asked again for the same services, only what
/// is new since is asked for (at 2,000 services a whole lookback is megabytes a poll).
#[derive(Clone, Copy, PartialEq, Debug)]
struct Covered {
    end: Timestamp,
    services: u64,
}

/// How far back a question asks: the whole lookback, or (a step of overlap for samples
/// that arrived late) from just before what its last answer covered. Whole steps back
/// from `now`, so the points fall where a whole range query's would.
fn window(round: &Round, last: Option<Covered>, services: u64) -> (Duration, Option<i64>) {
    let whole = (round.lookback, None);
    let Some(last) = last.filter(|l| l.services == services) else {
        return whole;
    };
    let step = round.step.as_millis().max(1) as i64;
    let behind = round.now.as_millisecond() - last.end.as_millisecond();
    let steps = (behind + step - 1).div_euclid(step).max(0) + 1;
    let back = Duration::from_millis((steps * step) as u64);
    if behind < 0 || back >= round.lookback {
        return whole;
    }
    (
        back,
        Some(round.now.as_millisecond() - back.as_millis() as i64),
    )
}

/// A grouped question's PromQL for one set of services, built once and reused while
/// the set stays the same: at 2,000 services the alternation of names is tens of
/// kilobytes, and rebuilding it every poll was a few percent of an idle console.
struct BatchText {
    services: u64,
    /// The namespace a series without a namespace label belongs to.
    namespace: String,
    query: String,
    volume: Option<String>,
}

impl BatchText {
    fn new(plan: &GroupedTrigger, services: &[ServiceKey], fingerprint: u64) -> BatchText {
        let namespaces: BTreeSet<&str> = services.iter().map(|s| s.namespace.as_str()).collect();
        let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
        let (namespaces, names): (Vec<&str>, Vec<&str>) = (
            namespaces.into_iter().collect(),
            names.into_iter().collect(),
        );
        BatchText {
            services: fingerprint,
            // Without a namespace label the batch is one namespace's services.
            namespace: namespaces.first().copied().unwrap_or_default().to_string(),
            query: plan.query.query(&namespaces, &names),
            volume: plan.volume.as_ref().map(|v| v.query(&namespaces, &names)),
        }
    }
}

/// `question`'s PromQL if it is grouped: the text built for it before, while its
/// services are the same.
fn batch_text(
    texts: &mut HashMap<String, Arc<BatchText>>,
    id: &str,
    question: &Question,
) -> Option<Arc<BatchText>> {
    let Question::Batch { plan, services, .. } = question else {
        return None;
    };
    let asked = fingerprint(services);
    let text = match texts.get(id) {
        Some(built) if built.services == asked => built.clone(),
        _ => Arc::new(BatchText::new(plan, services, asked)),
    };
    texts.insert(id.to_string(), text.clone());
    Some(text)
}

fn fingerprint(services: &[ServiceKey]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    services.hash(&mut hasher);
    hasher.finish()
}

/// Polls every trigger until `tx` closes. The services come from the core through
/// `services`: a change to them starts a round at once, so the first answers follow
/// the first list of Deployments instead of waiting a poll interval for it.
pub fn spawn(
    prom: Prometheus,
    config: &Config,
    mut services: watch::Receiver<Vec<ServiceKey>>,
    tx: mpsc::Sender<Msg>,
) -> JoinHandle<()> {
    let cfg = config
        .prometheus
        .clone()
        .expect("spawn is called only with a [prometheus] section");
    // Cluster signals are read from the Kubernetes API by the engine, not queried here.
    let triggers: Vec<(Trigger, Option<Arc<GroupedTrigger>>)> = config
        .queried()
        .map(|t| {
            (
                t.clone(),
                crate::config::grouping::plan(t).ok().map(Arc::new),
            )
        })
        .collect();
    tokio::spawn(async move {
        let limit = Arc::new(Semaphore::new(cfg.max_concurrent.max(1)));
        let mut inflight: HashMap<String, JoinHandle<()>> = HashMap::new();
        // Each finished request reports whether Prometheus answered and, for a
        // grouped one, what its answer covered.
        let (report_tx, mut report_rx) =
            mpsc::unbounded_channel::<(String, Option<Covered>, bool)>();
        let mut covered: HashMap<String, Covered> = HashMap::new();
        let mut texts: HashMap<String, Arc<BatchText>> = HashMap::new();
        let mut ticker = tokio::time::interval(cfg.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let step = cfg.step();
        let mut last_health = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                Ok(()) = services.changed() => {}
                Some((id, answered, ok)) = report_rx.recv() => {
                    match answered {
                        Some(c) => covered.insert(id, c),
                        None => covered.remove(&id),
                    };
                    let health = if ok { SourceHealth::Connected } else {
                        SourceHealth::Retrying { attempt: 0, retry_in_secs: cfg.poll_interval.as_secs(), error: "queries are failing; see the triggers".into() }
                    };
                    if last_health.as_ref() != Some(&health) {
                        last_health = Some(health.clone());
                        if tx.send(Msg::Source { source: SourceId::Prometheus, health }).await.is_err() { return; }
                    }
                    continue;
                }
            }
            let round = Round {
                prom: prom.clone(),
                now: Timestamp::now(),
                lookback: cfg.lookback,
                step,
            };
            let services = services.borrow().clone();
            for (trigger, grouped) in &triggers {
                for question in questions(trigger, grouped.as_ref(), &services) {
                    let id = question.id();
                    // A slow answer is still an answer: a request runs to its own timeout
                    // and this round skips it, so a Prometheus slower than the poll is
                    // seen (and, past blind_after, paged) instead of never answering.
                    if inflight.get(&id).is_some_and(|h| !h.is_finished()) {
                        continue;
                    }
                    let last = covered.get(&id).copied();
                    let text = batch_text(&mut texts, &id, &question);
                    let (round, tx, limit, report) =
                        (round.clone(), tx.clone(), limit.clone(), report_tx.clone());
                    inflight.insert(
                        id.clone(),
                        tokio::spawn(async move {
                            let Ok(_permit) = limit.acquire().await else {
                                return;
                            };
                            let (msgs, answered, ok) = ask(&round, question, last, text).await;
                            for msg in msgs {
                                if tx.send(msg).await.is_err() {
                                    return;
                                }
                            }
                            // Reported once its messages are queued: the next partial
                            // answer then always follows the one it extends.
                            let _ = report.send((id, answered, ok));
                        }),
                    );
                }
            }
            inflight.retain(|_, h| !h.is_finished());
        }
    })
}

/// How many services one grouped message carries (see `fan_out::split`).
const SERVICES_PER_MESSAGE: usize = 200;

/// Asks one question; the answer as messages, what a grouped answer covered, and
/// whether Prometheus answered.
async fn ask(
    round: &Round,
    question: Question,
    last: Option<Covered>,
    text: Option<Arc<BatchText>>,
) -> (Vec<Msg>, Option<Covered>, bool) {
    match question {
        Question::One { trigger, service } => {
            let outcome = ask_one(round, &trigger, &service).await;
            let ok = !matches!(outcome, QueryOutcome::Failed { .. });
            let answer = QueryAnswer {
                trigger: trigger.name,
                service,
                answered_at: Timestamp::now(),
                outcome,
            };
            (vec![Msg::Query(answer)], None, ok)
        }
        Question::Batch {
            trigger,
            plan,
            services,
            ..
        } => {
            let text = text.unwrap_or_else(|| {
                Arc::new(BatchText::new(&plan, &services, fingerprint(&services)))
            });
            let asked = text.services;
            let (back, partial_from) = window(round, last, asked);
            let outcome = ask_batch(round, back, &plan, &text, &services).await;
            let ok = !matches!(outcome, GroupedOutcome::Failed { .. });
            let answer = GroupedAnswer {
                trigger: trigger.name,
                services,
                answered_at: Timestamp::now(),
                partial_from,
                outcome,
            };
            let parts = crate::engine::fan_out::split(answer, SERVICES_PER_MESSAGE);
            let covered = ok.then_some(Covered {
                end: round.now,
                services: asked,
            });
            (parts.into_iter().map(Msg::Queries).collect(), covered, ok)
        }
    }
}

async fn ask_one(round: &Round, trigger: &Trigger, svc: &ServiceKey) -> QueryOutcome {
    let Round {
        prom,
        now,
        lookback,
        step,
    } = round;
    let query = trigger.query_for(&svc.namespace, &svc.name, &svc.name);
    let mut outcome = prom.range(&query, *now, *lookback, *step).await;
    if let (
        QueryOutcome::Series {
            requests_per_second,
            ..
        },
        Some(volume),
    ) = (&mut outcome, &trigger.volume_query)
    {
        let volume = crate::config::triggers::expand(volume, &svc.namespace, &svc.name, &svc.name);
        if let QueryOutcome::Series { points, .. } =
            prom.range(&volume, *now, *step * 2, *step).await
        {
            *requests_per_second = points.last().map(|(_, v)| v);
        }
    }
    outcome
}

/// A grouped question over the last `back` of the lookback.
async fn ask_batch(
    round: &Round,
    back: Duration,
    plan: &GroupedTrigger,
    text: &BatchText,
    services: &[ServiceKey],
) -> GroupedOutcome {
    let Round {
        prom, now, step, ..
    } = round;
    let asked: HashSet<&ServiceKey> = services.iter().collect();
    let key_of = |grouped: &Grouped, labels: &Labels| {
        let (namespace, name) = grouped.service_of(|label| labels.get(label))?;
        let key = ServiceKey::new(namespace.unwrap_or(&text.namespace), name);
        asked.contains(&key).then_some(key)
    };
    let series = match prom
        .range_all(&text.query, *now, back, *step, |l| key_of(&plan.query, l))
        .await
    {
        Ok(series) => series,
        Err(error) => return GroupedOutcome::Failed { error },
    };
    let mut requests_per_second = HashMap::new();
    if let (Some(volume), Some(query)) = (&plan.volume, &text.volume) {
        // A failed volume query leaves the rates unknown, as it does per service.
        if let Ok(all) = prom
            .range_all(query, *now, *step * 2, *step, |l| key_of(volume, l))
            .await
        {
            for (key, points) in all {
                if let Some((_, last)) = points.last() {
                    requests_per_second.insert(key, last);
                }
            }
        }
    }
    GroupedOutcome::Series {
        series,
        requests_per_second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(query: &str) -> (Trigger, Option<Arc<GroupedTrigger>>) {
        let text = format!(
            "[[trigger]]\nname = \"t\"\nquery = {query:?}\nthreshold = 1.0\nseverity = \"log_only\"\n"
        );
        let config = Config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        let t = config.triggers.into_iter().find(|t| t.name == "t").unwrap();
        let grouped = crate::config::grouping::plan(&t).ok().map(Arc::new);
        (t, grouped)
    }

    fn services() -> Vec<ServiceKey> {
        ["shop/a", "shop/b", "ops/c"]
            .iter()
            .map(|s| {
                let (ns, name) = s.split_once('/').unwrap();
                ServiceKey::new(ns, name)
            })
            .collect()
    }

    fn asked(questions: &[Question]) -> Vec<String> {
        questions.iter().map(Question::id).collect()
    }

    #[test]
    fn a_grouped_trigger_is_one_question_for_every_service() {
        let (t, g) = trigger(r#"errors{namespace="$NAMESPACE",service="$SERVICE"}"#);
        let q = questions(&t, g.as_ref(), &services());
        assert_eq!(asked(&q), ["t\0*"]);
        let Question::Batch { services: all, .. } = &q[0] else {
            panic!("a batch")
        };
        assert_eq!(all.len(), 3);
        assert!(questions(&t, g.as_ref(), &[]).is_empty());
    }

    #[test]
    fn without_a_namespace_label_it_is_one_question_per_namespace() {
        let (t, g) = trigger(r#"errors{service="$SERVICE"}"#);
        assert_eq!(
            asked(&questions(&t, g.as_ref(), &services())),
            ["t\0*ops", "t\0*shop"]
        );
    }

    #[test]
    fn a_query_that_cannot_be_grouped_is_asked_per_service() {
        let (t, g) = trigger(r#"absent(errors{service="$SERVICE"})"#);
        assert!(t.per_service.as_deref().unwrap().contains("absent()"));
        assert_eq!(
            asked(&questions(&t, g.as_ref(), &services())),
            ["t\0shop/a", "t\0shop/b", "t\0ops/c"]
        );
    }

    #[test]
    fn a_grouped_query_is_built_once_for_the_same_services() {
        let (t, g) = trigger(r#"errors{namespace="$NAMESPACE",service="$SERVICE"}"#);
        let mut texts = HashMap::new();
        let ask = |services: &[ServiceKey]| questions(&t, g.as_ref(), services).remove(0);
        let first = batch_text(&mut texts, "t", &ask(&services())).unwrap();
        assert!(
            first.query.contains(r#"service=~"a|b|c""#),
            "{}",
            first.query
        );
        let again = batch_text(&mut texts, "t", &ask(&services())).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same services: the same text"
        );
        let fewer = batch_text(&mut texts, "t", &ask(&services()[..1])).unwrap();
        assert!(!Arc::ptr_eq(&first, &fewer));
        assert!(fewer.query.contains(r#"service=~"a""#), "{}", fewer.query);
        let (one, _) = trigger(r#"absent(errors{service="$SERVICE"})"#);
        let per_service = questions(&one, None, &services()).remove(0);
        assert!(batch_text(&mut texts, "one", &per_service).is_none());
    }

    #[test]
    fn a_question_asked_again_for_the_same_services_asks_only_what_is_new() {
        let at = |secs: i64| Timestamp::from_second(1_800_000_000 + secs).unwrap();
        let round = Round {
            prom: {
                let text = "[prometheus]\nurl = \"http://127.0.0.1:9\"\n";
                let config = Config::parse(std::path::Path::new("t.toml"), text).unwrap();
                Prometheus::new(config.prometheus.as_ref().unwrap()).unwrap()
            },
            now: at(10),
            lookback: Duration::from_secs(300),
            step: Duration::from_secs(4),
        };
        let all = fingerprint(&services());
        assert_eq!(
            window(&round, None, all),
            (round.lookback, None),
            "first asked"
        );
        let last = Covered {
            end: at(8),
            services: all,
        };
        // Two seconds behind: one step to catch up and one of overlap.
        let (back, from) = window(&round, Some(last), all);
        assert_eq!(back, Duration::from_secs(8));
        assert_eq!(from, Some(at(2).as_millisecond()));
        let other = fingerprint(&services()[..2]);
        assert_eq!(
            window(&round, Some(last), other).1,
            None,
            "other services: whole"
        );
        let long_ago = Covered {
            end: at(-400),
            services: all,
        };
        assert_eq!(
            window(&round, Some(long_ago), all).1,
            None,
            "older than the lookback"
        );
        let ahead = Covered {
            end: at(20),
            services: all,
        };
        assert_eq!(
            window(&round, Some(ahead), all).1,
            None,
            "a clock that went back"
        );
    }
}
