//! A versioned alias: a name that points at one immutable version and, weighted, sends
//! a share of the traffic to another. AWS Lambda aliases and MLflow model aliases
//! work this way. This is what a read of one says, as the summary every kind shares,
//! and the plan of a shift back, whichever API serves it (`lambda`, `model`).
//!
//! Each kind keeps, where every process can read them back: backout's record of the
//! rollback it made (which version it left, for which, who, why), and the versions
//! known bad, which outlive that record.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::actions::rollback::Request;
use crate::engine::kept::{Canary, InstanceHealth, Revision, TargetKind, WorkloadSummary};
use crate::engine::lineage::RollbackRecord;
use crate::engine::rollbacks::{Preview, RollbackError};

/// One immutable version.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// Its place in the history, oldest first: what the console and `--to-revision`
    /// call it.
    pub number: u64,
    /// What names it for good, in the alias, the marks and a pinned plan: Lambda's and
    /// MLflow's version number, an image's content id.
    pub id: String,
    /// What identifies its build in the history's image column: a code hash, a
    /// model's source.
    pub identity: String,
    pub description: String,
    pub created: Option<Timestamp>,
}

/// What one read of an alias says.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub kind: TargetKind,
    /// How its own tools name it: `FUNCTION:ALIAS`, `MODEL@ALIAS`.
    pub handle: String,
    /// What its marks hang on: a function's ARN, a registered model's name.
    pub resource: String,
    /// The version that takes what the weights do not send elsewhere.
    pub version: String,
    /// Version → share of the requests (0..1).
    pub weights: BTreeMap<String, f64>,
    /// backout's record of its last rollback, as JSON, where the kind keeps it.
    pub record_text: String,
    /// For a kind that runs its own instances (a Compose service's containers): how
    /// many there are and how many are ready. `None` where the platform scales it.
    pub instances: Option<(i32, i32)>,
    /// Those instances' health, as the triggers read it.
    pub health: Option<InstanceHealth>,
    /// A token that changes with every write of the alias (Lambda's RevisionId);
    /// empty where the API has none.
    pub revision_id: String,
    pub versions: Vec<Version>,
    /// Version → when it was rolled back from, as the kind's marks say.
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

    /// backout's record of the rollback that put the alias where it is: only one
    /// that names the version the alias is on, with nothing split off since.
    pub fn record(&self) -> Option<RollbackRecord> {
        serde_json::from_str::<RollbackRecord>(&self.record_text)
            .ok()
            .filter(|r| r.to_replicaset == self.version && self.canary().is_none())
    }

    /// The version named `id`.
    pub fn find(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }

    /// The place in the history of the version named `id`; 0 for one not held.
    pub fn number_of(&self, id: &str) -> u64 {
        self.find(id).map_or(0, |v| v.number)
    }

    /// The command the shift to `version` equals. A Compose service's tools name an
    /// image by its reference, not its id.
    pub fn command(&self, version: &str) -> String {
        let by_image = self.kind.words().is_some_and(|w| w.names_by_image);
        let to = match (by_image, self.find(version)) {
            (true, Some(v)) => v.identity.as_str(),
            _ => version,
        };
        self.kind.command(&self.handle, "", to, false)
    }
}

/// The newest version the alias has sent traffic to, as far as it says: the stable
/// one, the canary, or the one its record says it was rolled back from.
fn newest_routed(a: &Alias) -> u64 {
    let number = |v: &str| a.number_of(v);
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
            let name = v.id.clone();
            let share = match canary {
                Some((c, w)) if c == name => w as i32,
                Some((_, w)) if a.version == name => 100 - w as i32,
                None if a.version == name => 100,
                _ => 0,
            };
            Revision {
                number: v.number,
                replicaset: name,
                images: vec![v.identity.clone()],
                change_cause: (!v.description.is_empty()).then(|| v.description.clone()),
                deployed_by: None,
                created: v.created,
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
/// traffic: 100 desired and ready (the service scales by itself), the canary's share as
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
    // Percent of the traffic, or a count of the kind's own instances.
    let (replicas, ready) = a.instances.unwrap_or((100, 100));
    let share = |percent: i32| percent * replicas / 100;
    WorkloadSummary {
        kind: a.kind,
        name: service.to_string(),
        // The newest version routed, as a rollback leaves an Argo canary's revision.
        revision: newest_routed(a),
        generation: 1,
        observed_generation: 1,
        paused: false,
        replicas,
        status_replicas: replicas,
        updated_replicas: match (canary, aborted) {
            (Some((_, w)), _) => share(w as i32),
            (None, true) => 0,
            (None, false) => replicas,
        },
        ready_replicas: ready,
        available_replicas: ready,
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
            record: aborted.then(|| a.record_text.clone()),
        }),
        handle: Some(a.handle.clone()),
        marked_bad: a.known_bad.iter().map(|(v, at)| (v.clone(), *at)).collect(),
        instances: a.health.clone(),
    }
}

/// A planned shift, with the read it was planned from.
#[derive(Debug, Clone)]
pub struct Plan {
    pub preview: Preview,
    pub alias: Alias,
    /// The version that takes traffic now and is rolled back from.
    pub from: String,
    /// The version every request goes to.
    pub to: String,
}

/// The plan a read makes: the version previewed, or asked for; else during a canary
/// the stable version, and after a full shift the newest earlier version not rolled
/// back from.
pub fn plan_from(alias: Alias, req: &Request) -> Result<Plan, RollbackError> {
    let name = alias.handle.clone();
    let from = alias
        .canary()
        .map_or_else(|| alias.version.clone(), |(v, _)| v.to_string());
    let from_number = alias.number_of(&from);
    let bad = |v: &str| alias.known_bad.contains_key(v);
    let exists = |v: &str| alias.find(v).is_some();
    // Once previewed, the shift means that version, whatever happened since.
    let pinned = req
        .to_replicaset
        .clone()
        .or_else(|| req.expected.as_ref().map(|e| e.to_replicaset.clone()));
    let to = match (pinned, req.to_revision) {
        (Some(v), _) if exists(&v) => v,
        (Some(v), _) => return Err(RollbackError::MissingRevision(v.parse().unwrap_or(0))),
        (None, Some(n)) => alias
            .versions
            .iter()
            .find(|v| v.number == n)
            .ok_or(RollbackError::MissingRevision(n))?
            .id
            .clone(),
        (None, None) if alias.canary().is_some() => alias.version.clone(),
        (None, None) => alias
            .versions
            .iter()
            .rev()
            .find(|v| v.number < from_number && !bad(&v.id))
            .map(|v| v.id.clone())
            .ok_or_else(|| RollbackError::NoHistory(format!("alias {name}")))?,
    };
    if to == from && alias.canary().is_some() {
        return Err(RollbackError::Api(format!(
            "version {to} is the canary of {name}; a rollback goes to the stable version {}",
            alias.version
        )));
    }
    let already_there = alias.canary().is_none() && alias.version == to;
    if let Some(expected) = req.expected.as_ref().filter(|_| !already_there) {
        if expected.from_replicaset != from || expected.to_replicaset != to {
            return Err(RollbackError::Conflict(format!(
                "alias {name} (it now routes to version {from})"
            )));
        }
    }
    let images = |v: &str| {
        alias
            .find(v)
            .map(|x| vec![x.identity.clone()])
            .unwrap_or_default()
    };
    let preview = Preview {
        from_revision: from_number,
        from_images: images(&from),
        to_revision: alias.number_of(&to),
        to_images: images(&to),
        already_there,
        kubectl: alias.command(&to),
        resource_version: alias.revision_id.clone(),
        to_replicaset: to.clone(),
        from_replicaset: from.clone(),
        switch: None,
        // A shift makes no version: the one rolled back from stays the newest.
        abort: true,
        revert: None,
        flag: None,
    };
    Ok(Plan {
        preview,
        alias,
        from,
        to,
    })
}

// Tested through the kinds that read aliases: `lambda/tests.rs` and `model.rs`.
