//! The key reader, made so that a vanished terminal ends it. crossterm's own event
//! source loops forever when the tty read returns EOF or EIO (an SSH drop, a killed
//! tmux pane), so the reader first polls the terminal itself: a hangup, an error or an
//! EOF is reported as `Input::Hangup` and the thread returns. crossterm then parses
//! only bytes that are there.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEvent, KeyEventKind};
use rustix::event::{PollFd, PollFlags, Timespec};
use tokio::sync::mpsc;

pub enum Input {
    Key(KeyEvent),
    Resize,
    /// The terminal is gone: hung up, closed, or it answered a read with an error.
    Hangup(String),
}

/// How the terminal's input stands after waiting up to `wait` for it.
enum Ready {
    Nothing,
    Bytes,
    Gone(String),
}

fn wait_for_input(wait: Duration) -> Ready {
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    if !rustix::termios::isatty(fd) {
        // Not a terminal (a test harness): crossterm reads /dev/tty itself.
        return match event::poll(wait) {
            Ok(true) => Ready::Bytes,
            Ok(false) => Ready::Nothing,
            Err(e) => Ready::Gone(e.to_string()),
        };
    }
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    });
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(0) => Ready::Nothing,
        Ok(_) => {
            let got = fds[0].revents();
            if got.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                Ready::Gone(format!("the terminal hung up ({got:?})"))
            } else {
                Ready::Bytes
            }
        }
        Err(rustix::io::Errno::INTR) => Ready::Nothing,
        Err(e) => Ready::Gone(format!("the terminal cannot be polled: {e}")),
    }
}

/// Reads keys until `stop` is set, the console drops the channel, or the terminal
/// goes; in the last case it says so on the channel first.
pub fn spawn_reader(stop: Arc<AtomicBool>, inputs: mpsc::UnboundedSender<Input>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match wait_for_input(Duration::from_millis(50)) {
                Ready::Nothing => continue,
                Ready::Gone(why) => {
                    let _ = inputs.send(Input::Hangup(why));
                    return;
                }
                Ready::Bytes => {}
            }
            // Every event crossterm parsed from those bytes, not only the first.
            loop {
                let input = match event::read() {
                    // Presses only: releases and repeats would act twice on some terminals.
                    Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => Some(Input::Key(k)),
                    Ok(Event::Resize(..)) => Some(Input::Resize),
                    Ok(_) => None,
                    Err(e) => Some(Input::Hangup(format!("the terminal read failed: {e}"))),
                };
                let gone = matches!(input, Some(Input::Hangup(_)));
                if let Some(input) = input {
                    if inputs.send(input).is_err() || gone {
                        return;
                    }
                }
                if !event::poll(Duration::ZERO).unwrap_or(false) {
                    break;
                }
            }
        }
    });
}
