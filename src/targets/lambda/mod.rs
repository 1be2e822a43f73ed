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
//! This file is the pure half (what a read says, as the engine's summary); `aws`
//! reads and writes through the official SDK, and `revert` plans and applies.

pub mod aws;
pub mod revert;

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::engine::kept::{Canary, Revision, TargetKind, WorkloadSummary};
use crate::engine::lineage::RollbackRecord;

/// The function tag that lists the versions rolled back from, as
/// `VERSION@TIME VERSION@TIME` (characters every AWS tag value allows).
pub const KNOWN_BAD_TAG: &str = "backout:rolled-back-from";

/// An alias description holds at most this many characters.
const DESCRIPTION_MAX: usize = 256;

/// A tag value holds at most this many characters; the oldest entries give way.
const TAG_VALUE_MAX: usize = 256;

/// One published version, as `ListVersionsByFunction` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub number: u64,
    pub code_sha256: String,
    pub description: String,
    pub last_modified: Option<Timestamp>,
}

/// What one read of an alias says: the alias, the function's versions and its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub function: String,
    pub alias: String,
    /// The function's ARN, which its tags hang on.
    pub function_arn: String,
    /// The version that takes what the routing config does not send elsewhere.
    pub version: String,
    /// Version → share of the requests (0..1), from the routing config.
    pub weights: BTreeMap<String, f64>,
    pub description: String,
    pub revision_id: String,
    pub versions: Vec<Version>,
    /// Version → when it was rolled back from, as the tag says.
    pub known_bad: BTreeMap<String, Timestamp>,
}

impl Alias {
    /// The version with a share of the traffic beside the stable one, and its share
    /// in percent.
    pub fn canary(&self) -> Option<(&str, u32)> {
        self.weights
            .iter()
            .filter(|(v, w)| **w > 0.0 && **v != self.version)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(v, w)| (v.as_str(), (w * 100.0).round() as u32))
    }

    /// backout's record of the rollback that put the alias where it is, if the
    /// description holds one that names the version the alias is on.
    pub fn record(&self) -> Option<RollbackRecord> {
        serde_json::from_str::<RollbackRecord>(&self.description)
            .ok()
            .filter(|r| r.to_replicaset == self.version && self.canary().is_none())
    }

    /// What `aws lambda update-alias` equals the revert to `version`.
    pub fn command(&self, version: &str) -> String {
        format!(
            "aws lambda update-alias --function-name {} --name {} --function-version {version} --routing-config AdditionalVersionWeights={{}}",
            self.function, self.alias
        )
    }
}

/// The short form of a version's code hash that the history shows for its image.
pub fn code_of(v: &Version) -> String {
    let hash: String = v.code_sha256.chars().take(12).collect();
    format!("code {hash}")
}

/// The newest version the alias has sent traffic to, as far as it says: the stable
/// one, the canary, or the one its record says it was rolled back from.
fn newest_routed(a: &Alias) -> u64 {
    let number = |v: &str| v.parse::<u64>().unwrap_or(0);
    [
        Some(number(&a.version)),
        a.canary().map(|(v, _)| number(v)),
        a.record().map(|r| number(&r.from_replicaset)),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0)
}

/// The versions as revisions, the traffic share of each as its replicas. A version
/// published after the newest one routed is not a revision of this alias yet.
pub fn revisions(a: &Alias) -> Vec<Revision> {
    let canary = a.canary();
    let newest = newest_routed(a);
    a.versions
        .iter()
        .filter(|v| v.number <= newest)
        .map(|v| {
            let name = v.number.to_string();
            let share = match canary {
                Some((c, w)) if c == name => w as i32,
                Some((_, w)) if a.version == name => 100 - w as i32,
                None if a.version == name => 100,
                _ => 0,
            };
            Revision {
                number: v.number,
                replicaset: name,
                images: vec![code_of(v)],
                change_cause: (!v.description.is_empty()).then(|| v.description.clone()),
                deployed_by: None,
                created: v.last_modified,
                replicas: share,
                returned: false,
                held_before: Vec::new(),
                rollback_record: None,
                template: None,
            }
        })
        .collect()
}

/// The alias read into the summary every kind shares. Replicas are percent of the
/// traffic: 100 desired and ready (Lambda scales by itself), the canary's share as
/// the updated ones. A rollback recorded on the alias is an aborted canary: the
/// version rolled back from, and the stable version that took the traffic back.
pub fn summary(a: &Alias, service: &str) -> WorkloadSummary {
    let canary = a.canary();
    let record = a.record();
    let (canary_version, weight) = match (canary, &record) {
        (Some((v, w)), _) => (v.to_string(), w),
        (None, Some(r)) => (r.from_replicaset.clone(), 0),
        (None, None) => (a.version.clone(), 0),
    };
    let aborted = canary.is_none() && record.is_some();
    WorkloadSummary {
        kind: TargetKind::LambdaAlias,
        name: service.to_string(),
        // The newest version routed, as a rollback leaves an Argo canary's revision.
        revision: newest_routed(a),
        generation: 1,
        observed_generation: 1,
        paused: false,
        replicas: 100,
        status_replicas: 100,
        updated_replicas: match (canary, aborted) {
            (Some((_, w)), _) => w as i32,
            (None, true) => 0,
            (None, false) => 100,
        },
        ready_replicas: 100,
        available_replicas: 100,
        progress_reason: None,
        template_labels: BTreeMap::new(),
        references: Vec::new(),
        manager: None,
        template: None,
        canary: Some(Canary {
            canary_replicaset: canary_version,
            stable_replicaset: a.version.clone(),
            weight,
            step: (0, 0),
            aborted,
            aborted_at: record.as_ref().map(|r| r.at),
            phase: if canary.is_some() {
                "Progressing"
            } else {
                "Healthy"
            }
            .into(),
            message: String::new(),
            record: aborted.then(|| a.description.clone()),
        }),
        handle: Some(format!("{}:{}", a.function, a.alias)),
        marked_bad: a.known_bad.iter().map(|(v, at)| (v.clone(), *at)).collect(),
    }
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
mod tests;
