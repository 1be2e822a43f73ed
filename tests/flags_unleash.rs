//! The kill switch against its real part: Unleash (the npm package unleash-server,
//! installed by .ci/run into target/unleash) on PostgreSQL from Debian, both started
//! here on loopback. A flag turned on in Unleash for the simulator's `web` is what
//! `backout rollback web` turns off; Unleash's own events then say it was, and the
//! template was left alone.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{eventually, free_port, get_json, have, serve, small_scenario, start, Served};
use serde_json::json;

/// PostgreSQL and Unleash, stopped on drop.
struct Unleash {
    served: Served,
    pgdata: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Unleash {
    fn drop(&mut self) {
        let _ = as_postgres(&[
            "pg_ctl",
            "-D",
            &self.pgdata.display().to_string(),
            "-m",
            "immediate",
            "stop",
        ]);
    }
}

/// Where .ci/run installs unleash-server.
fn unleash_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/unleash")
}

/// Debian keeps PostgreSQL's server programs off PATH, under its version.
fn pg_bin(program: &str) -> Option<PathBuf> {
    let on_path = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|v| v.path().join("bin").join(program))
            .filter(|p| p.exists())
            .collect();
        found.sort();
        found.pop()
    })
}

/// Runs a PostgreSQL server program; as the postgres user when this is root, which
/// PostgreSQL refuses to run as.
fn as_postgres(args: &[&str]) -> std::process::Output {
    let bin = pg_bin(args[0]).expect("PostgreSQL is installed");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.args(&args[1..])
        .output()
        .expect("a PostgreSQL command runs")
}

async fn unleash() -> Option<Unleash> {
    let installed = unleash_dir().join("node_modules/unleash-server").exists();
    if !installed {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "unleash-server is required under CI=true: .ci/run installs it into target/unleash"
        );
        eprintln!("skipping: unleash-server is not installed in target/unleash (.ci/run does it)");
        return None;
    }
    if pg_bin("initdb").is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is required under CI=true: .ci/run installs it"
        );
        eprintln!("skipping: PostgreSQL is not installed");
        return None;
    }
    if !have("node") || !have("psql") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let pgdata = dir.path().join("pgdata");
    std::fs::create_dir(&pgdata).unwrap();
    let _ = Command::new("chown")
        .args(["-R", "postgres"])
        .arg(dir.path())
        .status();
    let pgdata_s = pgdata.display().to_string();
    let init = as_postgres(&["initdb", "-D", &pgdata_s, "-A", "trust", "-U", "unleash"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let pgport = free_port().to_string();
    let opts = format!(
        "-p {pgport} -k {} -c listen_addresses=127.0.0.1",
        dir.path().display()
    );
    let log = dir.path().join("pg.log").display().to_string();
    let started = as_postgres(&[
        "pg_ctl", "-D", &pgdata_s, "-o", &opts, "-l", &log, "-w", "start",
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let created = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pgport,
            "-U",
            "unleash",
            "-d",
            "postgres",
        ])
        .args(["-c", "create database unleash"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/unleash/start.js");
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .env("NODE_PATH", unleash_dir().join("node_modules"))
        .env("PGPORT", &pgport)
        .env("PORT", port.to_string());
    let url = format!("http://127.0.0.1:{port}");
    let served = serve(cmd, url, "/health", Duration::from_secs(120)).await;
    Some(Unleash {
        served,
        pgdata,
        _dir: dir,
    })
}

async fn enabled(http: &reqwest::Client, url: &str) -> bool {
    let f = get_json(
        http,
        &format!("{url}/api/admin/projects/default/features/new-checkout"),
    )
    .await
    .expect("the flag");
    f["environments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "production" && e["enabled"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backout_turns_off_the_flag_in_unleash_and_leaves_the_template() {
    if !have("kubectl") {
        return;
    }
    let Some(u) = unleash().await else {
        return;
    };
    let http = reqwest::Client::new();
    let made = http
        .post(format!(
            "{}/api/admin/projects/default/features",
            u.served.url
        ))
        .json(&json!({"name": "new-checkout", "type": "release"}))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "{:?}", made.text().await);
    let on = http
        .post(format!(
            "{}/api/admin/projects/default/features/new-checkout/environments/production/on",
            u.served.url
        ))
        .send()
        .await
        .unwrap();
    assert!(on.status().is_success());
    assert!(enabled(&http, &u.served.url).await);

    let c = start(small_scenario(
        "[[event]]\nat = \"1s\"\ndeploy = { service = \"web\", image = \"web:2\" }\n",
    ))
    .await;
    let config = c.add_config(&format!(
        "\n[[flag]]\nname = \"new-checkout\"\nnamespace = \"shop\"\ndeployment = \"web\"\nurl = {:?}\n",
        u.served.url
    ));
    eventually(Duration::from_secs(30), "web's revision 2", async || {
        (c.revision("web").await == "2").then_some(())
    })
    .await;

    let (ok, said) = c
        .backout_said(
            &[
                "rollback",
                "web",
                "--yes",
                "--no-verify",
                "--reason",
                "drill",
                "--config",
                &config,
            ],
            &[],
        )
        .await;
    assert!(ok, "{said}");
    assert!(
        said.contains("turn off flag new-checkout for shop/web"),
        "{said}"
    );
    assert!(
        !enabled(&http, &u.served.url).await,
        "Unleash has the flag off"
    );
    let events = get_json(
        &http,
        &format!(
            "{}/api/admin/search/events?feature=IS:new-checkout&limit=5",
            u.served.url
        ),
    )
    .await
    .expect("Unleash's events");
    assert_eq!(
        events["events"][0]["type"], "feature-environment-disabled",
        "Unleash's own record: {events}"
    );
    assert_eq!(c.revision("web").await, "2", "the template stays");
}
