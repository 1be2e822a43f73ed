//! End to end in a real terminal: `backout demo` in tmux, keys sent with send-keys,
//! the screen read with capture-pane. The rollback must reach the cluster, and the
//! terminal must be usable again after quitting and after SIGTERM.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::have;

struct Tmux(String);

impl Tmux {
    fn start(name: &str, width: u16, height: u16) -> Tmux {
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                "bash --norc --noprofile",
            ])
            .status()
            .unwrap();
        assert!(ok.success());
        Tmux(name.to_string())
    }

    fn keys(&self, keys: &[&str]) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.0])
            .args(keys)
            .status()
            .unwrap();
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(
            &Command::new("tmux")
                .args(["capture-pane", "-p", "-t", &self.0])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned()
    }

    fn wait_for(&self, text: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < limit,
                "waited {limit:?} for {text:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// Waits until no process matches `pattern`: the console has really exited.
fn gone(pattern: &str) {
    let start = Instant::now();
    while Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{pattern} did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `backout demo` in a new 100x30 tmux session, its journal and config in `dir`.
fn demo_in_tmux(name: &str, dir: &std::path::Path) -> Tmux {
    demo_of("bad-deploy", name, dir)
}

fn demo_of(scenario: &str, name: &str, dir: &std::path::Path) -> Tmux {
    let tmux = Tmux::start(&format!("{name}-{}", std::process::id()), 100, 30);
    let bin = env!("CARGO_BIN_EXE_backout");
    tmux.keys(&[
        &format!(
            "BACKOUT_JOURNAL={} {bin} demo --write-config {} --scenario {scenario}",
            dir.join("journal.jsonl").display(),
            dir.display()
        ),
        "Enter",
    ]);
    tmux
}

/// q during a rollback warns that it stops the verification; a second q quits, and
/// this test's own console is gone (other tests' demos run beside it).
fn quit_during_the_rollback(tmux: &Tmux, dir: &std::path::Path) {
    tmux.keys(&["q"]);
    tmux.wait_for("q again quits", Duration::from_secs(5));
    tmux.keys(&["q"]);
    let bin = env!("CARGO_BIN_EXE_backout");
    gone(&format!("{bin} demo --write-config {}", dir.display()));
}

fn revision(dir: &std::path::Path) -> String {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args([
            "get",
            "deploy/checkout",
            "-n",
            "shop",
            "-o",
            r#"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}"#,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_demo_rolls_back_from_the_keyboard_and_restores_the_terminal() {
    if !have("tmux") || !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = demo_in_tmux("backout-e2e", dir.path());
    let (bin, journal) = (
        env!("CARGO_BIN_EXE_backout"),
        dir.path().join("journal.jsonl"),
    );
    tmux.wait_for("backout demo", Duration::from_secs(20));
    let screen = tmux.wait_for("error-rate firing", Duration::from_secs(60));
    assert!(screen.contains("checkout"), "{screen}");
    tmux.keys(&["r"]);
    let dialog = tmux.wait_for("Roll back shop/checkout?", Duration::from_secs(5));
    assert!(
        dialog.contains("kubectl rollout undo deployment/checkout --to-revision=1 -n shop"),
        "{dialog}"
    );
    tmux.wait_for("dry run: accepted", Duration::from_secs(10));
    tmux.keys(&["y"]);
    let start = Instant::now();
    while revision(dir.path()) != "3" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the rollback did not reach the cluster"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let live = tmux.wait_for("ROLL", Duration::from_secs(10));
    // Pages and warnings go to console.log: a log line on the terminal tears the screen.
    assert!(
        !live.contains("WARN") && !live.contains(" INFO "),
        "nothing but the console is drawn: {live}"
    );
    // Verification shows what it waits for, with the time left, and nothing else:
    // no second decision over the draining signal.
    let verifying = tmux.wait_for("left", Duration::from_secs(20));
    assert!(verifying.contains("ROLLING BACK"), "{verifying}");
    assert!(
        !verifying.contains("SUGGEST") && !verifying.contains("AUTO_ROLLBACK"),
        "one story while the rollback runs: {verifying}"
    );
    // q warns that it stops the verification; a second q quits and says so.
    quit_during_the_rollback(&tmux, dir.path());
    let journaled = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(
        journaled.contains("verification abandoned") && journaled.contains("quit the console"),
        "{journaled}"
    );
    tmux.keys(&["echo restored-$((40+2))", "Enter"]);
    tmux.wait_for("restored-42", Duration::from_secs(10));

    // Again, ended by SIGTERM instead of q.
    tmux.keys(&["clear", "Enter"]);
    tmux.keys(&[&format!("{bin} demo",), "Enter"]);
    tmux.wait_for("backout demo", Duration::from_secs(20));
    Command::new("pkill")
        .args(["-TERM", "-f", &format!("^{bin} demo$")])
        .status()
        .unwrap();
    // As a person would, type only once it has gone: keys typed while the terminal is
    // being restored are the terminal's to discard.
    gone(&format!("^{bin} demo$"));
    tmux.keys(&["echo after-term-$((40+3))", "Enter"]);
    let screen = tmux.wait_for("after-term-43", Duration::from_secs(10));
    assert!(
        !screen.contains("services ("),
        "the console's screen is gone: {screen}"
    );
}

#[test]
fn the_console_leaves_when_its_terminal_is_killed_as_an_ssh_drop_would() {
    if !have("tmux") || !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = demo_in_tmux("backout-hangup", dir.path());
    tmux.wait_for("error-rate firing", Duration::from_secs(60));
    // With the dialog open, as an engineer deciding would have it.
    tmux.keys(&["r"]);
    tmux.wait_for("Roll back shop/checkout?", Duration::from_secs(5));
    drop(tmux);
    // The process is gone on its own: no SIGKILL, no spinning orphan.
    gone(&format!("demo --write-config {}", dir.path().display()));
}

#[test]
fn enter_on_a_crash_looping_pod_shows_the_panic_its_previous_run_died_of() {
    if !have("tmux") || !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = demo_of("crashloop", "backout-pods", dir.path());
    tmux.wait_for("backout demo", Duration::from_secs(20));
    // The bad revision's pods crash as soon as they start.
    tmux.wait_for("r2 ", Duration::from_secs(60));
    tmux.keys(&["p"]);
    tmux.wait_for("CrashLoopBackOff", Duration::from_secs(30));
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("panicked at", Duration::from_secs(10));
    // The previous run's lines, then the current one's.
    assert!(screen.contains("── now ──"), "{screen}");
    assert!(
        screen.contains("last terminated (Error, exit 1)"),
        "{screen}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_for("pods (", Duration::from_secs(5));
}

#[test]
fn the_dialog_on_an_argo_canary_aborts_it_as_kubectl_argo_rollouts_would() {
    if !have("tmux") || !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = demo_of("canary-abort", "backout-canary", dir.path());
    let screen = tmux.wait_for("error-rate firing", Duration::from_secs(60));
    assert!(screen.contains("checkout [rollout]"), "{screen}");
    assert!(screen.contains("the canary at 20%"), "{screen}");
    tmux.keys(&["r"]);
    let dialog = tmux.wait_for("Abort the canary of shop/checkout?", Duration::from_secs(5));
    assert!(
        dialog.contains("canary revision 2 (20% of the replicas)"),
        "{dialog}"
    );
    assert!(
        dialog.contains("kubectl argo rollouts abort checkout -n shop"),
        "{dialog}"
    );
    tmux.wait_for(
        "dry run: accepted, abort r2 → stable r1",
        Duration::from_secs(10),
    );
    tmux.keys(&["y"]);
    let aborted = || {
        let out = Command::new("kubectl")
            .env("KUBECONFIG", dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["get", "rollouts.argoproj.io/checkout", "-n", "shop"])
            .args(["-o", "jsonpath={.status.abort}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout) == "true"
    };
    let start = Instant::now();
    while !aborted() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the abort did not reach the cluster"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    tmux.wait_for("ROLLING BACK", Duration::from_secs(10));
    quit_during_the_rollback(&tmux, dir.path());
}

#[test]
fn the_dialog_on_a_lambda_alias_shifts_it_back_as_aws_lambda_update_alias_would() {
    if !have("tmux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = demo_of("lambda-alias", "backout-lambda", dir.path());
    let screen = tmux.wait_for("error-rate firing", Duration::from_secs(60));
    assert!(screen.contains("payments-api [lambda]"), "{screen}");
    tmux.keys(&["r"]);
    let dialog = tmux.wait_for(
        "Shift lambda/payments-api back to version 1?",
        Duration::from_secs(5),
    );
    assert!(
        dialog.contains("from version 2 (20% of the requests)"),
        "{dialog}"
    );
    assert!(
        dialog.contains("aws lambda update-alias --function-name payments-api --name live"),
        "{dialog}"
    );
    tmux.wait_for(
        "check: alias read afresh, shift v2 → v1",
        Duration::from_secs(10),
    );
    tmux.keys(&["y"]);
    tmux.wait_for(
        "✓ plan from a fresh read  ✓ alias updated",
        Duration::from_secs(20),
    );
    tmux.wait_for(
        "rollout completes: alias payments-api:live",
        Duration::from_secs(20),
    );
    quit_during_the_rollback(&tmux, dir.path());
    let journal = std::fs::read_to_string(dir.path().join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"kind\":\"rollback\"") && journal.contains("lambda/payments-api"),
        "the shift is journaled: {journal}"
    );
}

#[test]
fn the_dialog_on_an_mlflow_model_alias_moves_champion_back() {
    if !have("tmux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = demo_of("model-alias", "backout-model", dir.path());
    let screen = tmux.wait_for("error-rate firing", Duration::from_secs(60));
    assert!(screen.contains("fraud-model [model]"), "{screen}");
    tmux.keys(&["r"]);
    let dialog = tmux.wait_for(
        "Shift models/fraud-model back to version 1?",
        Duration::from_secs(5),
    );
    assert!(dialog.contains("set_registered_model_alias"), "{dialog}");
    tmux.wait_for(
        "check: alias read afresh, shift v2 → v1",
        Duration::from_secs(10),
    );
    tmux.keys(&["y"]);
    tmux.wait_for(
        "✓ plan from a fresh read  ✓ alias updated",
        Duration::from_secs(20),
    );
    quit_during_the_rollback(&tmux, dir.path());
}

#[test]
fn the_dialog_on_a_compose_service_recreates_it_on_the_previous_image() {
    if !have("tmux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = demo_of("compose-rollback", "backout-compose", dir.path());
    let screen = tmux.wait_for("error-rate firing", Duration::from_secs(60));
    assert!(screen.contains("billing [compose]"), "{screen}");
    tmux.keys(&["r"]);
    let dialog = tmux.wait_for(
        "Recreate legacy/billing's containers on revision 1?",
        Duration::from_secs(5),
    );
    assert!(
        dialog.contains("to   revision 1 (volumes kept)  registry.local/legacy/billing:7.2"),
        "{dialog}"
    );
    assert!(
        dialog.contains("docker compose -p legacy up -d --no-deps billing"),
        "{dialog}"
    );
    tmux.wait_for(
        "check: containers read afresh, image r2 → r1",
        Duration::from_secs(10),
    );
    tmux.keys(&["y"]);
    tmux.wait_for(
        "✓ plan from a fresh read  ✓ containers recreated",
        Duration::from_secs(20),
    );
    tmux.wait_for(
        "rollout completes: compose service legacy/billing runs 2 of 2",
        Duration::from_secs(20),
    );
    quit_during_the_rollback(&tmux, dir.path());
    let journal = std::fs::read_to_string(dir.path().join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"kind\":\"rollback\"") && journal.contains("legacy/billing"),
        "the rollback is journaled: {journal}"
    );
}

#[test]
fn the_dialog_on_a_flag_turned_on_lately_is_its_kill_switch() {
    if !have("tmux") || !have("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = demo_of("flag-kill", "backout-flag", dir.path());
    tmux.wait_for("error-rate firing", Duration::from_secs(60));
    tmux.keys(&["r"]);
    let dialog = tmux.wait_for(
        "Turn off flag new-coupon-engine for shop/checkout?",
        Duration::from_secs(10),
    );
    assert!(
        dialog.contains("turned on") && dialog.contains("by dana@unleash"),
        "{dialog}"
    );
    assert!(
        dialog.contains("the kill switch leaves the template at"),
        "{dialog}"
    );
    assert!(dialog.contains("curl -X POST"), "{dialog}");
    tmux.wait_for("check: the flag read afresh is on", Duration::from_secs(10));
    tmux.keys(&["y"]);
    tmux.wait_for("✓ patched", Duration::from_secs(20));
    let config = std::fs::read_to_string(dir.path().join("backout.toml")).unwrap();
    let url = config
        .lines()
        .find_map(|l| l.strip_prefix("url = \"https://"))
        .map(|u| format!("https://{}", u.trim_end_matches('"')))
        .expect("the [[flag]] url");
    let flag = Command::new("curl")
        .arg("-s")
        .arg("--cacert")
        .arg(dir.path().join("ca.crt"))
        .arg(format!(
            "{url}/api/admin/projects/default/features/new-coupon-engine"
        ))
        .output()
        .unwrap();
    let flag = String::from_utf8_lossy(&flag.stdout);
    assert!(
        flag.contains("\"enabled\":false"),
        "the flag is off: {flag}"
    );
    quit_during_the_rollback(&tmux, dir.path());
}

#[test]
fn the_dialog_on_a_gitops_deployment_offers_the_revert_of_its_commit() {
    if !have("tmux") || !have("git") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = demo_of("gitops-revert", "backout-gitops", dir.path());
    let bin = env!("CARGO_BIN_EXE_backout");
    tmux.wait_for("error-rate firing", Duration::from_secs(60));
    tmux.keys(&["r"]);
    let dialog = tmux.wait_for("Revert commit", Duration::from_secs(15));
    for want in [
        "\"checkout 1.4.1: new coupon engine\" by dana@ci",
        "&& git revert ",
        "auto-sync applies the revert",
    ] {
        assert!(dialog.contains(want), "{want:?} in:\n{dialog}");
    }
    tmux.keys(&["Escape"]);
    tmux.wait_for("cancelled", Duration::from_secs(5));
    tmux.keys(&["q"]);
    gone(&format!(
        "{bin} demo --write-config {}",
        dir.path().display()
    ));
}
