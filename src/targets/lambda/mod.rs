//! AWS Lambda weighted aliases as a rollback target. An alias is a service: its
//! revisions are the function's published versions (immutable: code and
//! configuration), its canary is the version its routing config sends a share to,
//! and its revert is one `UpdateAlias` that sends every request back to the stable
//! version, pinned by the alias's `RevisionId`.
//!
//! What every process must be able to read back, and where it lives:
//! - the rollback itself: backout's record, as JSON in the alias's description,
//!   written by the same `UpdateAlias` that moves the traffic (atomic with it);
//! - the versions known bad: the function's tag [`KNOWN_BAD_TAG`], written before the
//!   alias moves, so that a later deploy (which rewrites the description) does not
//!   make a rolled-back version a target again.
//!
//! A read is a `targets::alias::Alias` (the summary and the plan are every alias's);
//! this file encodes the record and the tag within AWS's limits, `aws` reads and
//! writes through the official SDK, and `revert` plans and applies.

pub mod aws;
pub mod revert;

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::engine::lineage::RollbackRecord;
use crate::targets::words::Words;

/// How a Lambda alias's shift is told.
pub const WORDS: Words = Words {
    moves: "sends every request",
    holds: "a version holds the function's code and configuration (environment, memory, layers), so both go back",
    beside: "event source mappings, other aliases, provisioned concurrency, and whatever the new version wrote (tables, queues)",
    began: "canary began",
    unchecked_beside: None,
    revert_time: (1, "an alias shift: traffic moves in one call"),
    read: "alias",
    step: "shift v",
    refused_if: "refused if it moves",
    ask: "Shift {service} back to version {to}?",
    unit: "version",
    to_note: "(every request)",
    sent: "alias updated",
    done: "{resource} shifted back by {by}: version {to} takes every request",
    names_by_image: false,
    status: None,
};

/// The function tag that lists the versions rolled back from, as
/// `VERSION@TIME VERSION@TIME` (characters every AWS tag value allows).
pub const KNOWN_BAD_TAG: &str = "backout:rolled-back-from";

/// An alias description holds at most this many characters.
const DESCRIPTION_MAX: usize = 256;

/// A tag value holds at most this many characters; the oldest entries give way.
const TAG_VALUE_MAX: usize = 256;

/// The short form of a version's code hash that the history shows for its image.
pub fn code_of(code_sha256: &str) -> String {
    let hash: String = code_sha256.chars().take(12).collect();
    format!("code {hash}")
}

/// The record as the alias description holds it: the reason is shortened until the
/// JSON fits the description's 256 characters.
pub fn description_of(record: &RollbackRecord) -> String {
    let mut r = record.clone();
    loop {
        let json = serde_json::to_string(&r).unwrap_or_default();
        let excess = json.chars().count().saturating_sub(DESCRIPTION_MAX);
        if excess == 0 || r.reason.is_empty() {
            return json;
        }
        let keep = r.reason.trim_end_matches('…').chars().count();
        let keep = keep.saturating_sub(excess + 1);
        r.reason = match keep {
            0 => String::new(),
            _ => format!("{}…", r.reason.chars().take(keep).collect::<String>()),
        };
    }
}

/// Reads the known-bad tag: `3@2026-12-06T05:00:00Z 5@…`; an entry that does not
/// parse is kept as bad with no time rather than dropped.
pub fn parse_known_bad(tag: &str) -> BTreeMap<String, Timestamp> {
    tag.split_whitespace()
        .filter_map(|entry| {
            let (version, at) = entry.split_once('@').unwrap_or((entry, ""));
            let at = at.parse().unwrap_or(Timestamp::UNIX_EPOCH);
            (!version.is_empty()).then(|| (version.to_string(), at))
        })
        .collect()
}

/// The tag with `version` added, the oldest entries dropped to fit the value's limit.
pub fn with_known_bad(known: &BTreeMap<String, Timestamp>, version: &str, at: Timestamp) -> String {
    let mut entries: Vec<(String, Timestamp)> = known
        .iter()
        .filter(|(v, _)| *v != version)
        .map(|(v, t)| (v.clone(), *t))
        .collect();
    entries.push((version.to_string(), at));
    entries.sort_by_key(|(_, t)| *t);
    loop {
        let value = entries
            .iter()
            .map(|(v, t)| format!("{v}@{}", t.strftime("%Y-%m-%dT%H:%M:%SZ")))
            .collect::<Vec<_>>()
            .join(" ");
        if value.len() <= TAG_VALUE_MAX || entries.len() == 1 {
            return value;
        }
        entries.remove(0);
    }
}

#[cfg(test)]
pub(crate) mod tests;
