//! `kill -9` at points spread over a rollback's life: the journal stays JSON lines
//! (a torn last line is ended before the next record and skipped by the report), the
//! cluster holds either no rollback or exactly one, and running the same command again
//! finishes the job once the dead process's Lease has lapsed.

mod common;

use std::time::Duration;

use common::{web_with_history, Cluster};

/// The simulator's config with a 3 s Lease, so a killed holder blocks only briefly.
fn short_lease(c: &Cluster) -> String {
    let text = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap();
    let text = text.replace("[policy]\n", "[policy]\nlease_duration = \"3s\"\n");
    let path = c.dir().join("short-lease.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Milliseconds after start to kill at, shifted by the clock so runs differ; printed
/// by every failure. Against the in-process simulator a rollback lands within tens of
/// milliseconds, so most points fall before the patch: connecting, listing, the
/// Lease, the dry run; the last ones fall in verification.
fn kill_points() -> Vec<u64> {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis() as u64
        % 15;
    [0, 10, 25, 40, 60, 400, 1500]
        .iter()
        .map(|p| p + jitter)
        .collect()
}

/// Every line of the journal but a torn last one is a JSON record; says whether the
/// last line was torn.
fn journal_lines_are_records(journal: &str, context: &str) -> bool {
    let lines: Vec<&str> = journal.lines().filter(|l| !l.is_empty()).collect();
    let bad: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| serde_json::from_str::<serde_json::Value>(l).is_err())
        .map(|(i, _)| i)
        .collect();
    let torn_tail = bad == [lines.len().saturating_sub(1)] && !journal.ends_with('\n');
    assert!(
        bad.is_empty() || torn_tail,
        "{context}: lines {bad:?} are not records:\n{journal}"
    );
    torn_tail
}

/// A record cut in the middle of its write.
const TEAR: &str = r#"{"at":"2026-12-05T03:00:00Z","kind":"rollb"#;

async fn killed_then_finished(at_ms: u64, tear: bool) {
    let Some(c) = web_with_history(&["web:2", "web:3"]).await else {
        return;
    };
    let config = short_lease(&c);
    let context = format!("killed at {at_ms} ms (tear: {tear})");
    let mut child = c.spawn_backout(&["rollback", "web", "--yes", "--config", &config]);
    tokio::time::sleep(Duration::from_millis(at_ms)).await;
    // SIGKILL: no handler runs, nothing is flushed or given back.
    let _ = child.start_kill();
    let _ = child.wait().await;

    if tear {
        // A write cut in the middle, as a kill inside `write` would leave it.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(c.journal_path())
            .unwrap();
        f.write_all(TEAR.as_bytes()).unwrap();
    }
    let torn = journal_lines_are_records(&c.journal(), &context);
    assert_eq!(torn, tear, "{context}: only the tear made here is torn");

    let report = c
        .backout(
            &["report", "--journal", c.journal_path().to_str().unwrap()],
            &[],
        )
        .await;
    let stderr = String::from_utf8_lossy(&report.stderr);
    assert!(!stderr.contains("panicked"), "{context}: {stderr}");
    let recorded_incident = c.journal().contains("\"incident\":\"");
    if recorded_incident {
        assert_eq!(report.status.code(), Some(0), "{context}: {stderr}");
    } else {
        assert_eq!(report.status.code(), Some(2), "{context}: {stderr}");
    }
    if tear {
        assert!(stderr.contains("skipped a line"), "{context}: {stderr}");
    }

    // The engineer runs it again: one rollback in all, whatever the kill interrupted.
    let again = c
        .backout(&["rollback", "web", "--yes", "--config", &config], &[])
        .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(again.status.success(), "{context}: {said}");
    assert_eq!(c.image("web").await, "web:2", "{context}: {said}");
    let history = c
        .jsonpath(
            "rs",
            r#"{range .items[*]}{.metadata.annotations.deployment\.kubernetes\.io/revision}{" "}{end}"#,
        )
        .await;
    let mut revisions: Vec<u64> = history
        .split_whitespace()
        .map(|r| r.parse().unwrap())
        .collect();
    revisions.sort();
    assert_eq!(
        revisions,
        [1, 3, 4],
        "{context}: one rollback, no second: {said}"
    );

    // The next process ended the torn line first: every record it wrote is whole,
    // and the fragment stays a line of its own for the report to skip.
    let journal = c.journal();
    let not_records: Vec<&str> = journal
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect();
    let expected: &[&str] = if tear { &[TEAR] } else { &[] };
    assert_eq!(not_records, expected, "{context}:\n{journal}");
    assert!(
        journal.ends_with('\n'),
        "{context}: the tail is whole again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_anywhere_in_a_rollback_leaves_a_readable_journal_and_one_rollback() {
    let points = kill_points();
    let runs = points
        .iter()
        .enumerate()
        .map(|(i, at)| killed_then_finished(*at, i % 2 == 1));
    futures::future::join_all(runs).await;
}
