use std::collections::BTreeMap;

use jiff::Timestamp;

use super::*;
use crate::actions::rollback::Request;
use crate::engine::rollbacks::{Expected, RollbackError};
use crate::targets::alias::{plan_from, revisions, summary, Alias, Version};
use crate::targets::TargetKind;

pub(crate) fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// payments:live on `version`, with versions 1..=`published`.
pub(crate) fn alias(version: &str, weights: &[(&str, f64)], published: u64) -> Alias {
    Alias {
        kind: TargetKind::LambdaAlias,
        handle: "payments:live".into(),
        resource: "arn:aws:lambda:eu-west-1:1:function:payments".into(),
        version: version.into(),
        weights: weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
        instances: None,
        health: None,
        record_text: String::new(),
        revision_id: "rev-1".into(),
        versions: (1..=published)
            .map(|n| Version {
                number: n,
                id: n.to_string(),
                identity: format!("code sha{n}AAAAAAAA"),
                description: format!("payments build {n}"),
                created: Some(at("2026-12-06T04:00:00Z")),
            })
            .collect(),
        known_bad: BTreeMap::new(),
    }
}

fn request(to: Option<u64>) -> Request {
    Request {
        namespace: "lambda".into(),
        deployment: "payments".into(),
        to_revision: to,
        to_replicaset: None,
        reason: "error-rate 30%".into(),
        actor: "dana@laptop".into(),
        incident: None,
        automatic: false,
        expected: None,
    }
}

fn record(from: &str, to: &str) -> RollbackRecord {
    RollbackRecord {
        revision: to.parse().unwrap(),
        from_replicaset: from.into(),
        to_replicaset: to.into(),
        at: at("2026-12-06T05:00:00Z"),
        by: "dana@laptop".into(),
        reason: "error-rate 30%".into(),
        automatic: false,
        incident: Some("inc-1".into()),
    }
}

#[test]
fn a_weighted_alias_is_a_canary_of_the_newer_version() {
    let a = alias("2", &[("3", 0.2)], 3);
    let s = summary(&a, "payments");
    let c = s.canary.as_ref().unwrap();
    assert_eq!((s.kind, s.revision), (TargetKind::LambdaAlias, 3));
    assert_eq!(
        (c.canary_replicaset.as_str(), c.stable_replicaset.as_str()),
        ("3", "2")
    );
    assert_eq!((c.weight, s.updated_replicas), (20, 20));
    assert!(c.in_progress() && !c.aborted);
    assert_eq!(s.handle.as_deref(), Some("payments:live"));
    let shares: Vec<(u64, i32)> = revisions(&a)
        .iter()
        .map(|r| (r.number, r.replicas))
        .collect();
    assert_eq!(
        shares,
        [(1, 0), (2, 80), (3, 20)],
        "replicas are the traffic share"
    );
}

#[test]
fn backouts_record_on_the_alias_is_an_aborted_canary_and_the_tag_outlives_it() {
    let mut a = alias("2", &[], 3);
    a.record_text = description_of(&record("3", "2"));
    let s = summary(&a, "payments");
    let c = s.canary.as_ref().unwrap();
    assert!(c.aborted && !c.in_progress());
    assert_eq!(c.canary_replicaset, "3", "rolled back from version 3");
    assert_eq!(c.aborted_at, Some(at("2026-12-06T05:00:00Z")));
    assert_eq!(s.updated_replicas, 0, "no request goes to version 3");
    // A record naming another version than the alias's is someone else's past.
    a.record_text = description_of(&record("3", "1"));
    assert!(!summary(&a, "payments").canary.unwrap().aborted);
    // The next deploy rewrites the description; the tag still marks version 3.
    a.record_text = "payments build 4".into();
    a.known_bad = parse_known_bad("3@2026-12-06T05:00:00Z");
    let s = summary(&a, "payments");
    assert_eq!(
        s.marked_bad,
        [("3".to_string(), at("2026-12-06T05:00:00Z"))]
    );
}

#[test]
fn a_version_published_but_never_routed_is_not_a_revision_yet() {
    let a = alias("2", &[], 4);
    let numbers: Vec<u64> = revisions(&a).iter().map(|r| r.number).collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(summary(&a, "payments").revision, 2);
}

#[test]
fn the_record_fits_the_alias_description_by_shortening_the_reason() {
    let mut long = record("3", "2");
    long.reason = "error-rate ".repeat(40);
    let text = description_of(&long);
    assert!(text.chars().count() <= 256, "{}", text.len());
    let back: RollbackRecord = serde_json::from_str(&text).unwrap();
    assert!(back.reason.ends_with('…') && back.reason.starts_with("error-rate"));
    assert_eq!(
        (back.from_replicaset.as_str(), back.to_replicaset.as_str()),
        ("3", "2")
    );
    let short = description_of(&record("3", "2"));
    assert_eq!(
        serde_json::from_str::<RollbackRecord>(&short).unwrap(),
        record("3", "2")
    );
}

#[test]
fn the_known_bad_tag_round_trips_and_drops_its_oldest_to_fit() {
    let mut known = BTreeMap::new();
    for n in 0..30u64 {
        let t = Timestamp::from_second(1_800_000_000 + n as i64 * 60).unwrap();
        known.insert(n.to_string(), t);
    }
    let tag = with_known_bad(&known, "99", Timestamp::from_second(1_900_000_000).unwrap());
    assert!(tag.len() <= 256);
    let back = parse_known_bad(&tag);
    assert!(back.contains_key("99") && back.contains_key("29"));
    assert!(!back.contains_key("0"), "the oldest gave way");
    assert!(
        tag.chars()
            .all(|c| c.is_ascii_alphanumeric() || " @:-".contains(c)),
        "only characters every AWS tag value allows: {tag}"
    );
}

#[test]
fn during_a_canary_the_plan_goes_to_the_stable_version() {
    let plan = plan_from(alias("2", &[("3", 0.2)], 3), &request(None)).unwrap();
    assert_eq!((plan.from.as_str(), plan.to.as_str()), ("3", "2"));
    let p = &plan.preview;
    assert!(p.abort && !p.already_there);
    assert_eq!((p.from_revision, p.to_revision), (3, 2));
    assert_eq!(p.resource_version, "rev-1");
    assert_eq!(
        p.kubectl,
        "aws lambda update-alias --function-name payments --name live --function-version 2 --routing-config AdditionalVersionWeights={}"
    );
}

#[test]
fn after_a_full_shift_the_plan_skips_versions_rolled_back_from() {
    let mut a = alias("4", &[], 4);
    a.known_bad = parse_known_bad("3@2026-12-06T05:00:00Z");
    let plan = plan_from(a.clone(), &request(None)).unwrap();
    assert_eq!((plan.from.as_str(), plan.to.as_str()), ("4", "2"));
    assert!(plan.preview.abort, "a shift makes no revision");
    a.known_bad =
        parse_known_bad("1@2026-12-06T05:00:00Z 2@2026-12-06T05:00:00Z 3@2026-12-06T05:00:00Z");
    assert!(matches!(
        plan_from(a, &request(None)),
        Err(RollbackError::NoHistory(_))
    ));
}

#[test]
fn a_moved_alias_is_a_conflict_and_one_already_back_changes_nothing() {
    let previewed = plan_from(alias("2", &[("3", 0.2)], 3), &request(None)).unwrap();
    let mut confirmed = request(None);
    confirmed.expected = Some(Expected::of(&previewed.preview));
    // Promoted since the dialog opened: still from 3 to 2, the same shift.
    let promoted = plan_from(alias("3", &[], 3), &confirmed).unwrap();
    assert_eq!((promoted.from.as_str(), promoted.to.as_str()), ("3", "2"));
    // Someone started a canary of version 4 since: not what was confirmed.
    let moved = plan_from(alias("3", &[("4", 0.1)], 4), &confirmed);
    assert!(
        matches!(moved, Err(RollbackError::Conflict(_))),
        "{moved:?}"
    );
    // Someone else rolled back first.
    let back = plan_from(alias("2", &[], 3), &confirmed).unwrap();
    assert!(back.preview.already_there);
    assert!(matches!(
        plan_from(alias("2", &[], 3), &request(Some(9))),
        Err(RollbackError::MissingRevision(9))
    ));
    assert!(plan_from(alias("2", &[("3", 0.2)], 3), &request(Some(3))).is_err());
}

#[test]
fn lambda_times_parse_with_or_without_the_offsets_colon() {
    let t = at("2026-12-06T04:44:35.651Z");
    assert_eq!(aws::parse_time("2026-12-06T04:44:35.651+0000"), Some(t));
    assert_eq!(aws::parse_time("2026-12-06T04:44:35.651+00:00"), Some(t));
    assert_eq!(aws::parse_time("2026-12-06T04:44:35.651000000Z"), Some(t));
    assert_eq!(aws::parse_time("yesterday"), None);
}
