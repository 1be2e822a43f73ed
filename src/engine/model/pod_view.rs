//! The pod the console has open (Enter in the pods pane): a describe-like summary,
//! the previous container's last lines (what a crash loop died of) and the current
//! container's log, followed live. The reader in `sources::pod_view` fills it.

use std::collections::VecDeque;

use super::keys::ServiceKey;

/// Lines of the live log kept: enough to scroll back through an incident's minutes,
/// bounded so a chatty pod cannot grow the console.
pub const LOG_LINES_KEPT: usize = 2_000;

#[derive(Debug, Clone)]
pub struct PodView {
    pub service: ServiceKey,
    pub pod: String,
    /// Which opening this is: what a reader of an earlier opening sends is dropped.
    pub opened: u64,
    /// Describe-like lines, once the pod has been read.
    pub summary: Vec<String>,
    /// The previous container's last lines, when a container has restarted.
    pub previous: Option<PodLog>,
    pub log: VecDeque<String>,
    /// Lines dropped from the front to stay within `LOG_LINES_KEPT`.
    pub dropped: usize,
    /// The follow ended (the container stopped) or failed, in words.
    pub ended: Option<String>,
}

/// A finished log: the previous run of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct PodLog {
    pub container: String,
    pub lines: Vec<String>,
}

/// What the pod reader sends, in the order it learns it.
#[derive(Debug, Clone, PartialEq)]
pub enum PodFeed {
    Summary(Vec<String>),
    Previous(PodLog),
    Lines(Vec<String>),
    Ended(String),
}

impl PodView {
    pub fn new(service: ServiceKey, pod: String, opened: u64) -> PodView {
        PodView {
            service,
            pod,
            opened,
            summary: Vec::new(),
            previous: None,
            log: VecDeque::new(),
            dropped: 0,
            ended: None,
        }
    }

    pub fn apply(&mut self, feed: PodFeed) {
        match feed {
            PodFeed::Summary(lines) => self.summary = lines,
            PodFeed::Previous(log) => self.previous = Some(log),
            PodFeed::Lines(lines) => {
                self.log.extend(lines);
                let over = self.log.len().saturating_sub(LOG_LINES_KEPT);
                self.log.drain(..over);
                self.dropped += over;
            }
            PodFeed::Ended(why) => self.ended = Some(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_its_newest_lines_and_counts_what_it_dropped() {
        let mut v = PodView::new(ServiceKey::new("shop", "web"), "web-1".into(), 1);
        let lines = |from: usize, n: usize| (from..from + n).map(|i| i.to_string()).collect();
        v.apply(PodFeed::Lines(lines(0, LOG_LINES_KEPT)));
        assert_eq!(v.dropped, 0);
        v.apply(PodFeed::Lines(lines(LOG_LINES_KEPT, 5)));
        assert_eq!(v.log.len(), LOG_LINES_KEPT);
        assert_eq!(v.dropped, 5);
        assert_eq!(v.log.front().map(String::as_str), Some("5"));
        assert_eq!(
            v.log.back().map(String::as_str),
            Some((LOG_LINES_KEPT + 4).to_string().as_str())
        );
    }
}
