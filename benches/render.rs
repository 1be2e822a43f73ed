//! One frame of the console at 200x60 with 2,000 services in the list and 4 trigger
//! graphs of an hour each (240 points), against the same frame with 20 services, so
//! the list's cost shows as a ratio within one run; then the open pod with a full log
//! (every line kept) and ASCII mode, each against the plain frame of the same run.
//! Run with `cargo bench --bench render`.

mod support;

use std::time::{Duration, Instant};

use backout::config::Config;
use backout::engine::model::pod_view::{PodFeed, LOG_LINES_KEPT};
use backout::engine::{update, Msg, State};
use backout::ui::state::{Mode, UiState};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use support::{answer_with, populate, t, SERVICES};

const NOW: i64 = 3_600;

fn state(services: usize) -> State {
    let config = Config::parse(
        std::path::Path::new("bench.toml"),
        "[prometheus]\nurl = \"http://p\"\n",
    )
    .unwrap();
    let triggers: Vec<String> = config.triggers.iter().map(|t| t.name.clone()).collect();
    let mut state = State::new(config, t(0));
    populate(&mut state);
    // Keep the first `services`: the list is what differs between the two states.
    let keep: Vec<_> = state.services.keys().take(services).cloned().collect();
    state.services.retain(|k, _| keep.contains(k));
    update(&mut state, Msg::Tick(t(NOW)));
    for i in 0..services {
        for trigger in &triggers {
            // The first service breaches for the last 20 minutes: a firing span to shade.
            let breach = i == 0 && trigger == "error-rate";
            let value = move |k: usize| if breach && k > 160 { 0.3 } else { 0.001 };
            update(&mut state, answer_with(i, trigger, value, NOW, 240));
        }
    }
    state
}

/// Median and p99 of `frames` renders of one state.
fn frame_times(state: &State, ui: &UiState, w: u16, h: u16, frames: usize) -> (Duration, Duration) {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut times: Vec<Duration> = (0..frames)
        .map(|_| {
            let start = Instant::now();
            terminal
                .draw(|f| backout::ui::render(state, ui, f))
                .unwrap();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[frames / 2], times[frames * 99 / 100])
}

fn main() {
    let mut ui = UiState::new(Mode::Live, "bench".into(), "https://bench".into());
    ui.color = true;
    let full = state(SERVICES);
    let small = state(20);
    let name = |s: &State| {
        let k = ui.selected_service(s).expect("a service is selected");
        format!("{k}")
    };
    assert_eq!(
        name(&full),
        name(&small),
        "both frames show the same service"
    );
    let frames = 300;
    let (big_median, big_p99) = frame_times(&full, &ui, 200, 60, frames);
    let (small_median, _) = frame_times(&small, &ui, 200, 60, frames);
    let (tiny_median, _) = frame_times(&full, &ui, 80, 24, frames);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "render 200x60, {SERVICES} services, 4 graphs of 240 points: median {:.2} ms, p99 {:.2} ms ({frames} frames)",
        ms(big_median),
        ms(big_p99)
    );
    println!(
        "render 200x60, 20 services: median {:.2} ms; {SERVICES} services cost {:.1}x that",
        ms(small_median),
        big_median.as_secs_f64() / small_median.as_secs_f64()
    );
    println!(
        "render 80x24, {SERVICES} services: median {:.2} ms; a 16 ms frame budget leaves {:.0}x headroom at 200x60",
        ms(tiny_median),
        16.0 / ms(big_median)
    );
    // The open pod at its fullest: more lines than are kept, following the end.
    let mut with_pod = state(SERVICES);
    let key = ui.selected_service(&with_pod).cloned().expect("a service");
    update(
        &mut with_pod,
        Msg::PodOpened(Some((key, "pod-1".into(), 1))),
    );
    let lines: Vec<String> = (0..3 * LOG_LINES_KEPT)
        .map(|i| {
            format!("level=info msg=\"request served\" path=/api/orders status=200 latency_ms={i}")
        })
        .collect();
    update(
        &mut with_pod,
        Msg::Pod {
            opened: 1,
            feed: PodFeed::Lines(lines),
        },
    );
    let (pod_median, pod_p99) = frame_times(&with_pod, &ui, 200, 60, frames);
    println!(
        "render 200x60, the open pod with {LOG_LINES_KEPT} log lines kept: median {:.2} ms, p99 {:.2} ms ({:.1}x the plain frame)",
        ms(pod_median),
        ms(pod_p99),
        pod_median.as_secs_f64() / big_median.as_secs_f64()
    );
    let mut ascii = ui.clone();
    ascii.ascii = true;
    let (ascii_median, _) = frame_times(&full, &ascii, 200, 60, frames);
    println!(
        "render 200x60 under BACKOUT_ASCII: median {:.2} ms ({:.2}x the plain frame)",
        ms(ascii_median),
        ascii_median.as_secs_f64() / big_median.as_secs_f64()
    );
}
