//! Full-screen snapshots at 80x24 and 160x48 of the states an engineer meets.
//! States are built through `update`, as the sources build them.

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use crate::app::ui_state::{Mode, UiState};
use crate::engine::fixtures::*;
use crate::engine::msg::{Outcome, RollbackReport};
use crate::engine::{update, Msg, SourceHealth, SourceId, State};

fn ui() -> UiState {
    let mut ui = UiState::new(
        Mode::Live,
        "backout-sim".into(),
        "https://127.0.0.1:6443".into(),
    );
    ui.color = false;
    ui.braille = true;
    ui
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

fn press(ui: &mut UiState, state: &State, c: char) {
    ui.on_key(state, KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
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
    press(&mut ui, &state, 'r');
    assert!(ui.dialog.is_some());
    screens("dialog", &state, &ui);
}

#[test]
fn a_rollback_in_progress() {
    let mut state = connected(world(""));
    answered(&mut state, 200, Some(("error-rate", 0.25)));
    update(
        &mut state,
        Msg::RollbackRequested {
            service: key("checkout"),
            to_revision: Some(1),
            reason: "test".into(),
        },
    );
    let mut ui = ui();
    press(&mut ui, &state, 'r');
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
    update(
        &mut state,
        Msg::RollbackRequested {
            service: key("checkout"),
            to_revision: Some(1),
            reason: "test".into(),
        },
    );
    update(
        &mut state,
        Msg::RollbackFinished(RollbackReport {
            service: key("checkout"),
            automatic: false,
            at: t(230),
            result: Ok(Outcome::Verified),
        }),
    );
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
