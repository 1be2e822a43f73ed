//! The decision corpus: every shipped scenario, end to end through the real kube-rs
//! and Prometheus clients, must yield its expected action. `bad-deploy` also runs
//! against a real Prometheus. All run at once; each timeline is moved 12 s sooner.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backout::app::core::{Core, Options};
use backout::config::Config;
use backout::engine::{Action, Decision, ServiceKey};
use backout_sim::scenario::Scenario;
use backout_sim::tls::Pki;
use backout_sim::SimOptions;
use common::{free_port, have, start, start_in, Cluster, RealPrometheus};

const SOONER: Duration = Duration::from_secs(12);
/// Long enough for the moved deploy (3 s), a breach in the 1m windows, and the 6 s for-durations.
const DEADLINE: Duration = Duration::from_secs(45);

enum Expect {
    /// This service reaches `action` with exactly these gates failing.
    Reaches {
        service: &'static str,
        action: Action,
        failed_gates: &'static [u8],
    },
    /// These services never get past `none`.
    Quiet(&'static [&'static str]),
}

fn shifted(name: &str) -> Scenario {
    let mut s = Scenario::load(name).unwrap();
    for e in &mut s.timeline {
        let at = &mut e.get_mut().at;
        *at = at.saturating_sub(SOONER);
    }
    s
}

fn failed(d: &Decision) -> Vec<u8> {
    d.gates
        .iter()
        .filter(|g| !g.passed)
        .map(|g| g.number)
        .collect()
}

/// Runs the core against `c` until the expectation is met or the deadline passes.
async fn judge(name: &str, c: &Cluster, config: Config, expect: &Expect) -> Result<(), String> {
    let journal = c.dir().join("journal.jsonl");
    let opts = Options {
        kubeconfig: Some(c.kubeconfig()),
        journal: Some(journal.clone()),
        ..Options::default()
    };
    let mut core = Core::start(config, opts)
        .await
        .map_err(|e| format!("{name}: core did not start: {e:#}"))?;
    let started = Instant::now();
    let key = |s: &str| ServiceKey::new("shop", s);
    while started.elapsed() < DEADLINE {
        let _ = tokio::time::timeout(Duration::from_secs(1), core.step()).await;
        match expect {
            Expect::Reaches {
                service,
                action,
                failed_gates,
            } => {
                if let Some(d) = core.state.services.get(&key(service)).map(|s| &s.decision) {
                    if d.action == *action && failed(d) == *failed_gates {
                        let journaled = std::fs::read_to_string(&journal).unwrap_or_default();
                        if !journaled.contains("\"kind\":\"incident_opened\"") {
                            continue; // the runner appends asynchronously
                        }
                        return Ok(());
                    }
                }
            }
            Expect::Quiet(services) => {
                for s in *services {
                    if let Some(d) = core
                        .state
                        .services
                        .get(&key(s))
                        .map(|s| &s.decision)
                        .filter(|d| d.action != Action::None)
                    {
                        return Err(format!(
                            "{name}: {s} should stay quiet but got {} (firing {:?}, why {:?})",
                            d.action.label(),
                            d.firing,
                            d.why_not_automatic
                        ));
                    }
                }
            }
        }
    }
    match expect {
        Expect::Quiet(_) if core.ready() => Ok(()),
        Expect::Quiet(_) => Err(format!("{name}: the core never saw every trigger answered")),
        Expect::Reaches {
            service,
            action,
            failed_gates,
        } => {
            let d = core
                .state
                .services
                .get(&key(service))
                .map(|s| s.decision.clone())
                .unwrap_or_default();
            Err(format!(
                "{name}: expected {service} to reach {} failing gates {failed_gates:?}; last decision {} failing {:?}; why {:?}; triggers {:?}",
                action.label(),
                d.action.label(),
                failed(&d),
                d.why_not_automatic,
                core.state.services.get(&key(service)).map(|s| s.triggers.iter().map(|(n, t)| format!("{n}: {} {} {:?}", t.alert.label(), t.data.label(), t.value)).collect::<Vec<_>>())
            ))
        }
    }
}

async fn against_simulator(name: &'static str, expect: Expect) -> Result<(), String> {
    let c = start(shifted(name)).await;
    let config = Config::parse(
        &c.dir().join("backout.toml"),
        &std::fs::read_to_string(c.dir().join("backout.toml")).unwrap(),
    )
    .unwrap();
    judge(name, &c, config, &expect).await
}

async fn against_real_prometheus() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::generate([127, 0, 0, 1].into()).unwrap());
    std::fs::write(dir.path().join("ca.crt"), &pki.ca_pem).unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let prom = RealPrometheus::start(dir.path(), listen).await;
    let c = start_in(
        dir,
        shifted("bad-deploy"),
        SimOptions {
            listen,
            pki: Some(pki),
            ..SimOptions::default()
        },
    )
    .await;
    let mut config = Config::parse(
        &c.dir().join("backout.toml"),
        &std::fs::read_to_string(c.dir().join("backout.toml")).unwrap(),
    )
    .unwrap();
    let p = config.prometheus.as_mut().unwrap();
    p.url = prom.url.clone();
    p.ca_file = None;
    let expect = Expect::Reaches {
        service: "checkout",
        action: Action::AutoRollback,
        failed_gates: &[],
    };
    judge("bad-deploy (real Prometheus)", &c, config, &expect).await
}

type Run = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_yields_its_expected_decision() {
    use Expect::*;
    let auto = Action::AutoRollback;
    let suggest = Action::Suggest;
    let mut runs: Vec<Run> = vec![
        Box::pin(against_simulator(
            "bad-deploy",
            Reaches {
                service: "checkout",
                action: auto,
                failed_gates: &[],
            },
        )),
        Box::pin(against_simulator(
            "crashloop",
            Reaches {
                service: "checkout",
                action: auto,
                failed_gates: &[],
            },
        )),
        Box::pin(against_simulator(
            "latency-only",
            Reaches {
                service: "search",
                action: suggest,
                failed_gates: &[4],
            },
        )),
        Box::pin(against_simulator(
            "deploy-with-migration",
            Reaches {
                service: "orders",
                action: suggest,
                failed_gates: &[5],
            },
        )),
        Box::pin(against_simulator(
            "deploy-with-configmap",
            Reaches {
                service: "cart",
                action: suggest,
                failed_gates: &[3],
            },
        )),
        Box::pin(against_simulator("cross-service", Quiet(&["frontend"]))),
        Box::pin(against_simulator(
            "cross-service",
            Reaches {
                service: "inventory",
                action: suggest,
                failed_gates: &[2, 7],
            },
        )),
        Box::pin(against_simulator("healthy-deploy", Quiet(&["checkout"]))),
        Box::pin(against_simulator("noisy-baseline", Quiet(&["reviews"]))),
    ];
    if have("prometheus") {
        runs.push(Box::pin(against_real_prometheus()));
    }
    let problems: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
}
