//! Full-screen snapshots at 80x24 and 160x48 of the states an engineer meets.
//! States are built through `update`, as the sources build them.

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use crate::engine::fixtures::*;
use crate::engine::rollbacks::Request;
use crate::ui::state::{Command, Mode, UiState};

use crate::engine::{update, Msg, SourceHealth, SourceId, State};

fn ui() -> UiState {
    let mut ui = UiState::new(
        Mode::Live,
        "backout-sim".into(),
        "https://127.0.0.1:6443".into(),
    );
    ui.color = false;
    ui.ascii = false;
    ui.namespace = "shop".into();
    ui.user = "alice@bastion".into();
    ui
}

/// A confirmed rollback that has been dry-run and patched, rolled out, and is now
/// waiting for the error rate to recover.
fn rolling_back(state: &mut State) {
    rolled_back(state, 2, 1, "alice@bastion");
    reverted_in_cluster(state, Some(record("alice@bastion", 205, false)));
    recovers(state, 0.03, 210, 210);
}

fn connected(mut state: State) -> State {
    for s in [SourceId::Kubernetes, SourceId::Prometheus] {
        update(
            &mut state,
            Msg::Source {
                source: s,
                health: SourceHealth::Connected,
            },
        );
    }
    state
}

/// Every trigger answered healthy up to `now`; `breach` overrides one trigger.
fn answered(state: &mut State, now: i64, breach: Option<(&str, f64)>) {
    let names: Vec<String> = state
        .config
        .triggers
        .iter()
        .map(|t| t.name.clone())
        .collect();
    for name in names {
        let (before, after) = match breach {
            Some((b, v)) if b == name => (0.001, v),
            _ => (0.001, 0.001),
        };
        run(state, "checkout", &name, before, after, 30, now);
    }
}

/// A key, and the messages the console would send for what it asks.
fn key_in(ui: &mut UiState, state: &mut State, code: KeyCode) {
    for cmd in ui.on_key(state, KeyEvent::new(code, KeyModifiers::NONE)) {
        match cmd {
            Command::Preview {
                service,
                to_revision,
            } => {
                update(
                    state,
                    Msg::PreviewRequested {
                        service,
                        to_revision,
                        switch_to: None,
                    },
                );
            }
            Command::RollBack {
                service,
                to_revision,
            } => {
                let request = Request {
                    to_revision,
                    automatic: false,
                    reason: "confirmed".into(),
                    by: "alice@bastion".into(),
                    expected: None,
                };
                update(state, Msg::RollbackRequested { service, request });
            }
            Command::OpenPod { service, pod } => {
                update(state, Msg::PodOpened(Some((service, pod, 1))));
            }
            Command::ClosePod => {
                update(state, Msg::PodOpened(None));
            }
            Command::Quit | Command::Switch { .. } => {}
        }
    }
}

fn press(ui: &mut UiState, state: &mut State, c: char) {
    key_in(ui, state, KeyCode::Char(c));
}

fn screens(name: &str, state: &State, ui: &UiState) {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal.draw(|f| super::render(state, ui, f)).unwrap();
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend());
    }
}

#[test]
fn healthy() {
    let mut state = connected(world(""));
    answered(&mut state, 200, None);
    screens("healthy", &state, &ui());
}

#[test]
fn firing_with_a_suggestion() {
    let mut state = connected(world(""));
    answered(&mut state, 300, Some(("p99-latency", 7.0)));
    assert_eq!(
        state.services[&key("checkout")].decision.action,
        crate::engine::Action::Suggest
    );
    screens("firing_suggestion", &state, &ui());
}

#[test]
fn the_confirmation_dialog() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    let mut ui = ui();
    press(&mut ui, &mut state, 'r');
    assert!(ui.dialog.is_some());
    update(
        &mut state,
        Msg::Previewed {
            service: key("checkout"),
            to_revision: Some(1),
            result: Ok(preview(2, 1)),
        },
    );
    screens("dialog", &state, &ui);
}

#[test]
fn the_dialog_for_a_live_blue_green_colour_shows_the_switch() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    let mut ui = ui();
    press(&mut ui, &mut state, 'r');
    let switch = crate::engine::rollbacks::Switch {
        service: "shopfront".into(),
        label: "color".into(),
        from: "green".into(),
        to: "blue".into(),
        to_deployment: Some("checkout-blue".into()),
        resource_version: "7".into(),
    };
    let result = Ok(crate::engine::rollbacks::Preview {
        kubectl: "kubectl patch service/shopfront -n shop --type=merge -p '{\"spec\":{\"selector\":{\"color\":\"blue\"}}}'".into(),
        switch: Some(Box::new(switch)),
        abort: false,
        revert: None,
        flag: None,
        ..preview(2, 1)
    });
    update(
        &mut state,
        Msg::Previewed {
            service: key("checkout"),
            to_revision: Some(1),
            result,
        },
    );
    screens("dialog_switch", &state, &ui);
}

#[test]
fn the_dialog_on_an_argo_canary_offers_the_abort() {
    let mut state = State::new(config(""), t(0));
    canary(&mut state, serde_json::json!({}));
    let mut state = connected(state);
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    let mut ui = ui();
    press(&mut ui, &mut state, 'r');
    let result = Ok(crate::engine::rollbacks::Preview {
        kubectl: "kubectl argo rollouts abort checkout -n shop".into(),
        abort: true,
        revert: None,
        flag: None,
        ..preview(2, 1)
    });
    update(
        &mut state,
        Msg::Previewed {
            service: key("checkout"),
            to_revision: Some(1),
            result,
        },
    );
    screens("dialog_canary", &state, &ui);
}

#[test]
fn a_dry_run_the_server_refused_offers_only_escape() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    let mut ui = ui();
    press(&mut ui, &mut state, 'r');
    update(
        &mut state,
        Msg::Previewed {
            service: key("checkout"),
            to_revision: Some(1),
            result: Err("deployments.apps \"checkout\" is forbidden".into()),
        },
    );
    screens("dialog_refused", &state, &ui);
    press(&mut ui, &mut state, 'y');
    assert!(ui.dialog.is_none(), "y closes the dialog");
    assert!(
        !state.services[&key("checkout")].rollback_in_flight(),
        "and orders nothing"
    );
}

#[test]
fn the_history_with_a_diff() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    let mut ui = ui();
    key_in(&mut ui, &mut state, KeyCode::Tab);
    key_in(&mut ui, &mut state, KeyCode::Down);
    screens("history", &state, &ui);
    press(&mut ui, &mut state, 'r');
    assert_eq!(
        ui.dialog.as_ref().and_then(|d| d.to_revision),
        Some(1),
        "r in the history rolls back to the chosen revision"
    );
}

#[test]
fn a_rollback_in_progress() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    rolling_back(&mut state);
    let mut ui = ui();
    press(&mut ui, &mut state, 'r');
    assert!(
        ui.dialog.is_none(),
        "r again while one is under way does nothing"
    );
    screens("in_progress", &state, &ui);
}

#[test]
fn verified() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    verified_rollback(&mut state, 205);
    screens("verified", &state, &ui());
}

#[test]
fn read_only() {
    let mut state = connected(world(""));
    state.read_only =
        Some("read-only: you may not patch deployments.apps in namespace \"shop\"".into());
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    screens("read_only", &state, &ui());
}

#[test]
fn a_source_down() {
    let mut state = connected(world(""));
    answered(&mut state, 60, None);
    update(
        &mut state,
        Msg::Source {
            source: SourceId::Prometheus,
            health: SourceHealth::Retrying {
                attempt: 3,
                retry_in_secs: 8,
                error: "connection refused".into(),
            },
        },
    );
    update(&mut state, Msg::Tick(t(120)));
    screens("source_down", &state, &ui());
}

/// checkout's two crashing pods of revision 2 and a healthy one of revision 1.
fn with_pods(state: &mut State) {
    pod(state, "checkout-1-7f9c4", "checkout-1", 150, 6);
    pod(state, "checkout-1-2kq8d", "checkout-1", 151, 5);
    pod(state, "checkout-0-x8m2p", "checkout-0", -3_600, 0);
}

#[test]
fn the_pods_pane() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    with_pods(&mut state);
    let mut ui = ui();
    press(&mut ui, &mut state, 'p');
    screens("pods", &state, &ui);
    let order: Vec<&str> = ui.pods(&state).iter().map(|(n, _)| *n).collect();
    assert_eq!(
        order,
        ["checkout-1-2kq8d", "checkout-1-7f9c4", "checkout-0-x8m2p"],
        "not ready first"
    );
}

#[test]
fn a_crash_looping_pods_logs_show_what_its_previous_run_died_of() {
    use crate::engine::model::pod_view::{PodFeed, PodLog};
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    with_pods(&mut state);
    let mut ui = ui();
    press(&mut ui, &mut state, 'p');
    key_in(&mut ui, &mut state, KeyCode::Enter);
    let view = state.pod_view.as_ref().expect("Enter opens the pod");
    assert_eq!(view.pod, "checkout-1-2kq8d");
    let feeds = [
        PodFeed::Summary(vec![
            "node node-a  ip 10.244.1.7  started 2026-12-05T10:02:30Z  phase Running".into(),
            "container app  checkout:2  ready false  restarts 5  now waiting (CrashLoopBackOff)  last terminated (Error, exit 1)".into(),
        ]),
        PodFeed::Previous(PodLog {
            container: "app".into(),
            lines: vec![
                "level=info msg=\"starting\" version=checkout:2".into(),
                "thread 'main' panicked at src/config.rs:42:10:".into(),
                "called `Result::unwrap()` on an `Err` value: missing required setting PAYMENTS_URL".into(),
            ],
        }),
        PodFeed::Lines(vec!["level=info msg=\"starting\" version=checkout:2".into()]),
    ];
    for feed in feeds {
        update(&mut state, Msg::Pod { opened: 1, feed });
    }
    screens("pod_logs", &state, &ui);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| super::render(&state, &ui, f)).unwrap();
    let screen = format!("{}", terminal.backend());
    assert!(
        screen.contains("panicked at src/config.rs:42:10"),
        "{screen}"
    );
    key_in(&mut ui, &mut state, KeyCode::Esc);
    assert!(state.pod_view.is_none(), "Esc closes the pod");
}

#[test]
fn the_decision_pane_scrolls_to_its_last_gate_at_80x24() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    let mut ui = ui();
    let screen = |ui: &UiState, state: &State| {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| super::render(state, ui, f)).unwrap();
        format!("{}", terminal.backend())
    };
    let gate_7 = "✓ 7 ";
    assert!(
        !screen(&ui, &state).contains(gate_7),
        "80x24 cannot show all seven gates"
    );
    // A page at a time until gate 7 is in view: it must come into view.
    for _ in 0..8 {
        if screen(&ui, &state).contains(gate_7) {
            break;
        }
        key_in(&mut ui, &mut state, KeyCode::PageDown);
    }
    assert!(screen(&ui, &state).contains(gate_7));
    screens("decision_scrolled", &state, &ui);
    deploy(&mut state, "frontend", &["frontend:1"], -3_600, false);
    key_in(&mut ui, &mut state, KeyCode::Down);
    assert_eq!(ui.selected_service(&state), Some(&key("frontend")));
    assert_eq!(ui.scroll, 0, "another service starts at its top");
}

fn one_screen(state: &State, ui: &UiState, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| super::render(state, ui, f)).unwrap();
    format!("{}", terminal.backend())
}

#[test]
fn ascii_mode_at_80x24_draws_only_ascii_with_the_series_apart_from_the_threshold() {
    let mut state = connected(world(""));
    answered(&mut state, 300, Some(("error-rate", 0.25)));
    let mut ui = ui();
    ui.ascii = true;
    let screen = one_screen(&state, &ui, 80, 24);
    insta::assert_snapshot!("ascii_80x24", screen);
    assert!(screen.is_ascii(), "{screen}");
    assert!(screen.contains('*') && screen.contains("---"), "{screen}");
}

#[test]
fn a_terminal_too_small_says_so_and_what_it_needs() {
    let mut state = connected(world(""));
    answered(&mut state, 200, None);
    let screen = one_screen(&state, &ui(), 40, 12);
    insta::assert_snapshot!("too_small_40x12", screen);
    assert!(screen.contains("terminal too small: 40x12"), "{screen}");
    assert!(!one_screen(&state, &ui(), 60, 16).contains("too small"));
}

#[test]
fn every_key_that_dismisses_the_dialog_says_cancelled() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    for dismiss in [
        KeyCode::Esc,
        KeyCode::Enter,
        KeyCode::Char('n'),
        KeyCode::Char('Y'),
    ] {
        let mut ui = ui();
        press(&mut ui, &mut state, 'r');
        assert!(ui.dialog.is_some());
        key_in(&mut ui, &mut state, dismiss);
        assert!(ui.dialog.is_none(), "{dismiss:?} closes the dialog");
        let screen = one_screen(&state, &ui, 80, 24);
        assert!(
            screen.contains("cancelled: nothing was changed on shop/checkout"),
            "{dismiss:?}: {screen}"
        );
        assert!(!state.services[&key("checkout")].rollback_in_flight());
    }
}

#[test]
fn the_whole_timeline_scrolls_in_its_pane() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    verified_rollback(&mut state, 205);
    let mut ui = ui();
    press(&mut ui, &mut state, 't');
    let top = one_screen(&state, &ui, 80, 24);
    assert!(top.contains("timeline, newest first"), "{top}");
    screens("timeline_pane", &state, &ui);
    for _ in 0..3 {
        key_in(&mut ui, &mut state, KeyCode::Char('j'));
    }
    assert_eq!(ui.scroll, 3, "j scrolls the timeline, selecting nothing");
    assert_eq!(ui.selected, 0);
    assert_ne!(one_screen(&state, &ui, 80, 24), top, "the pane moved");
    key_in(&mut ui, &mut state, KeyCode::Tab);
    assert_eq!(ui.pane, crate::ui::state::Pane::Decision, "Tab cycles back");
}

#[test]
fn the_history_of_an_alias_moves_to_a_whole_version() {
    use crate::engine::msg::TargetRead;
    use crate::targets::alias;
    let mut state = connected(world(""));
    answered(&mut state, 200, None);
    let a = crate::targets::lambda::tests::alias("2", &[], 2);
    let read = (alias::summary(&a, "payments"), alias::revisions(&a));
    update(
        &mut state,
        Msg::Target(TargetRead {
            service: key("payments"),
            read: Ok(read),
        }),
    );
    run(&mut state, "payments", "error-rate", 0.001, 0.25, 30, 200);
    let mut ui = ui();
    assert_eq!(
        ui.selected_service(&state),
        Some(&key("payments")),
        "the firing alias is listed first"
    );
    key_in(&mut ui, &mut state, KeyCode::Tab);
    key_in(&mut ui, &mut state, KeyCode::Down);
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
    terminal.draw(|f| super::render(&state, &ui, f)).unwrap();
    let screen = format!("{}", terminal.backend());
    assert!(
        screen.contains("rolling back r2 → r1 moves the alias to a whole version")
            && screen.contains("code sha1AAAAAAAA"),
        "{screen}"
    );
}
