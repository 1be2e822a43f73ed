//! The terminal console: owns the terminal, feeds key presses to the UI state, drives
//! the core, and redraws only when something changed, at most every 16 ms, inside
//! synchronized output so frames do not tear over SSH or tmux.

use std::io::Write;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyEvent, KeyEventKind};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
use tokio::sync::mpsc;

use super::core::Core;
use super::session::{Flow, Session};
use crate::ui::state::UiState;

enum Input {
    Key(KeyEvent),
    Resize,
}

/// Restores the terminal however the console ends: return, error or unwinding panic.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Stops the key reader and waits for it, before the terminal is restored: a reader
/// still inside `poll` would take the first keys typed into the shell.
struct StopOnDrop(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Option<std::thread::JoinHandle<()>>,
);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(reader) = self.1.take() {
            let _ = reader.join();
        }
    }
}

const FRAME: Duration = Duration::from_millis(16);

pub async fn run(core: Core, ui: UiState) -> anyhow::Result<()> {
    let mut session = Session::new(core, ui);
    // ratatui::init also installs a panic hook that restores the terminal first.
    let mut terminal = ratatui::init();
    let _restore = Restore;
    let (inputs, mut input_rx) = mpsc::unbounded_channel::<Input>();
    // The reader polls so that it stops with the console: a thread left blocked in
    // read() would swallow what the engineer types into the shell afterwards.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let reader = std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if !event::poll(Duration::from_millis(50)).unwrap_or(false) {
                continue;
            }
            let sent = match event::read() {
                // Key presses only: releases and repeats would act twice on some terminals.
                Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => inputs.send(Input::Key(k)),
                Ok(Event::Resize(..)) => inputs.send(Input::Resize),
                Ok(_) => Ok(()),
                Err(_) => return,
            };
            if sent.is_err() {
                return;
            }
        }
    });
    // Declared after `_restore`, so dropped before it.
    let _stop_reader = StopOnDrop(flag, Some(reader));
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    let why = loop {
        if dirty && last_draw.elapsed() >= FRAME {
            let mut out = std::io::stdout();
            execute!(out, BeginSynchronizedUpdate)?;
            terminal.draw(|f| crate::ui::render(&session.core.state, &session.ui, f))?;
            execute!(out, EndSynchronizedUpdate)?;
            out.flush()?;
            dirty = false;
            last_draw = Instant::now();
        }
        let wait = FRAME.saturating_sub(last_draw.elapsed());
        tokio::select! {
            alive = session.core.step() => {
                if !alive {
                    break "the engine stopped".to_string();
                }
                dirty = true;
            }
            Some(input) = input_rx.recv() => {
                dirty = true;
                let Input::Key(key) = input else { continue };
                if session.key(key).await? == Flow::Quit {
                    break format!("{} quit the console", session.core.actor);
                }
            }
            _ = tokio::time::sleep(wait), if dirty => {}
            _ = term.recv() => break "SIGTERM".to_string(),
            _ = hup.recv() => break "terminal lost (SIGHUP)".to_string(),
        }
    };
    // What was under way is journaled as abandoned, and the Leases given back,
    // before the process goes; the patch already sent stands.
    session.close(&why).await;
    Ok(())
}
