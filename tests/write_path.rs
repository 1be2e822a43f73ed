//! One write path: the CLI and the console roll back through the same engine and
//! runner, so they journal the same records; and `--read-only` is one check, in the
//! runner, that every write path meets.

mod common;

use std::time::Duration;

use backout::app::core::Core;
use backout::engine::journal::{Entry, Record};
use backout::engine::rollbacks::{Expected, Request};
use backout::engine::{Msg, ServiceKey};
use common::{console_core, previewed, rollback_ended, web_with_history};

fn web() -> ServiceKey {
    ServiceKey::new("shop", "web")
}

/// What the dialog does: a dry run of revision 1, then `y` with what it showed.
async fn confirm_in_console(core: &mut Core) {
    let expected = previewed(core, &web(), 1)
        .await
        .ok()
        .map(|p| Expected::of(&p));
    let request = Request {
        to_revision: Some(1),
        automatic: false,
        reason: "rolled back by hand".into(),
        by: core.actor.clone(),
        expected,
    };
    core.apply(Msg::RollbackRequested {
        service: web(),
        request,
    })
    .await;
}

/// The rollback's own records, in order, as kind and the fields that do not depend
/// on the clock: what a handoff is built from.
fn rollback_records(journal: &str) -> Vec<String> {
    journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .filter(|r| r.service == "shop/web")
        .filter_map(|r| match r.entry {
            Entry::Rollback {
                from_revision,
                to_revision,
                to_images,
                reason,
                automatic,
                ..
            } => Some(format!(
                "rollback {from_revision}→{to_revision} {to_images:?} {reason} automatic={automatic}"
            )),
            Entry::RollbackFailed { error, .. } => Some(format!("failed {error}")),
            Entry::AlreadyThere { to_revision, .. } => Some(format!("already {to_revision}")),
            Entry::Verification { outcome, checks } => {
                let names: Vec<String> = checks
                    .iter()
                    .map(|c| c.split(':').next().unwrap_or_default().to_string())
                    .collect();
                Some(format!("verification {outcome} {names:?}"))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_console_journal_the_same_rollback_records() {
    let (Some(by_cli), Some(by_console)) = (
        web_with_history(&["web:2"]).await,
        web_with_history(&["web:2"]).await,
    ) else {
        return;
    };
    let out = by_cli
        .backout(&["rollback", "web", "--to-revision", "1", "--yes"], &[])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut core = console_core(&by_console, false).await;
    confirm_in_console(&mut core).await;
    rollback_ended(&mut core, &web(), Duration::from_secs(60))
        .await
        .expect("verified");
    core.shutdown(Duration::from_secs(5)).await;

    let (cli, console) = (
        rollback_records(&by_cli.journal()),
        rollback_records(&by_console.journal()),
    );
    assert_eq!(cli.len(), 2, "a rollback and its verification: {cli:?}");
    assert!(cli[1].starts_with("verification verified"), "{cli:?}");
    assert_eq!(cli, console);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_every_write_path_at_the_one_place_writes_happen() {
    let Some(c) = web_with_history(&["web:2"]).await else {
        return;
    };
    // The CLI: the dry run is already refused, naming why.
    let out = c
        .backout(
            &[
                "rollback",
                "web",
                "--to-revision",
                "1",
                "--yes",
                "--read-only",
            ],
            &[],
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--read-only was given"), "{stderr}");

    // The gate cannot decide what it may not do.
    let out = c
        .backout(&["gate", "web", "--observe", "1s", "--read-only"], &[])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("--read-only was given")
            || String::from_utf8_lossy(&out.stderr).contains("--read-only was given"),
        "{out:?}"
    );

    // The console (and the watcher, which orders through the same runner): the order is
    // taken, and the runner refuses it.
    let mut core = console_core(&c, true).await;
    confirm_in_console(&mut core).await;
    let result = rollback_ended(&mut core, &web(), Duration::from_secs(20)).await;
    assert!(
        result.unwrap_err().contains("--read-only was given"),
        "refused by the runner"
    );
    core.shutdown(Duration::from_secs(5)).await;
    assert_eq!(c.image("web").await, "web:2", "nothing was written");
    assert_eq!(c.revision("web").await, "2");
}
