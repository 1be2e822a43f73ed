//! The terminal console: owns the terminal, feeds key presses to the UI state, drives
//! the core, and redraws only when something changed (within 16 ms of a key, at most
//! every 100 ms for data alone), inside synchronized output so frames do not tear
//! over SSH or tmux.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
use tokio::sync::mpsc;

use super::core::Core;
use super::session::{Flow, Session};
use super::tty::Input;
use crate::ui::state::UiState;

/// Restores the terminal however the console ends: return, error or unwinding panic.
/// On a terminal that is gone the writes fail, and that is fine.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Tells the key reader to stop. It is never joined: on a vanished terminal a join
/// could wait for ever, and the thread ends with the process anyway.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        // Long enough for a reader inside its 50 ms poll to see the flag, so it does
        // not take the first keys typed into the shell.
        std::thread::sleep(Duration::from_millis(60));
    }
}

const FRAME: Duration = Duration::from_millis(16);

/// How often a screen that only data changed is redrawn. A poll at 2,000 services
/// arrives as dozens of messages over a few hundred milliseconds; drawing each at 60
/// frames a second cost a tenth of the console's idle CPU, and nobody reads faster
/// than ten frames a second. A key press is still drawn within a FRAME.
const DATA_FRAME: Duration = Duration::from_millis(100);

pub async fn run(core: Core, ui: UiState) -> anyhow::Result<()> {
    let mut session = Session::new(core, ui);
    // ratatui::init also installs a panic hook that restores the terminal first.
    let mut terminal = ratatui::init();
    let _restore = Restore;
    let (inputs, mut input_rx) = mpsc::unbounded_channel::<Input>();
    let stop = Arc::new(AtomicBool::new(false));
    super::tty::spawn_reader(stop.clone(), inputs);
    // Declared after `_restore`, so dropped before it.
    let _stop_reader = StopOnDrop(stop);
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut dirty = true;
    // Whether a person is waiting for the change: a key or a context switch.
    let mut keyed = true;
    let mut last_draw = Instant::now() - DATA_FRAME;
    let why = loop {
        let gap = if keyed { FRAME } else { DATA_FRAME };
        if dirty && last_draw.elapsed() >= gap {
            // Paging keys move by a share of the screen.
            if let Ok(size) = terminal.size() {
                session.ui.height = size.height;
            }
            // A frame that cannot be written means the terminal is gone.
            if let Err(e) = draw(&mut terminal, &session) {
                break format!("terminal lost (write failed: {e})");
            }
            (dirty, keyed) = (false, false);
            last_draw = Instant::now();
        }
        let wait = gap.saturating_sub(last_draw.elapsed());
        tokio::select! {
            alive = session.core.step() => {
                if !alive {
                    break "the engine stopped".to_string();
                }
                dirty = true;
            }
            Some(input) = input_rx.recv() => {
                (dirty, keyed) = (true, true);
                let key = match input {
                    Input::Key(key) => key,
                    Input::Resize => continue,
                    Input::Hangup(why) => break format!("terminal lost ({why})"),
                };
                if session.key(key).await? == Flow::Quit {
                    break format!("{} quit the console", session.core.actor);
                }
            }
            started = session.switching.next(), if session.switching.is_some() => {
                (dirty, keyed) = (true, true);
                session.switched(started);
            }
            _ = tokio::time::sleep(wait), if dirty => {}
            _ = term.recv() => break "SIGTERM".to_string(),
            _ = hup.recv() => break "terminal lost (SIGHUP)".to_string(),
        }
    };
    // What was under way is journaled as abandoned, and the Leases given back,
    // before the process goes; the patch already sent stands. Bounded: the process
    // leaves within two seconds of losing its terminal.
    let _ = tokio::time::timeout(Duration::from_secs(2), session.close(&why)).await;
    Ok(())
}

fn draw(terminal: &mut ratatui::DefaultTerminal, session: &Session) -> std::io::Result<()> {
    let mut out = std::io::stdout();
    execute!(out, BeginSynchronizedUpdate)?;
    terminal.draw(|f| crate::ui::render(&session.core.state, &session.ui, f))?;
    execute!(out, EndSynchronizedUpdate)?;
    out.flush()
}
