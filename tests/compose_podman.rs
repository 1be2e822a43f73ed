//! The Compose service against its real part: podman (from Debian, installed by
//! .ci/run) serving the Docker Engine API on a Unix socket, with its own store in a
//! temp dir. No Docker engine runs on these machines; podman's API is the same paths.
//!
//! Three images of `localhost/cafe/menu` are made from Debian's static busybox (each
//! serves its own `/VERSION` over HTTP); a container labelled as Compose labels the
//! service `cafe/menu` runs the second, writing to a named volume. `backout rollback`
//! moves it to the first; podman's API then shows the container, its record, the
//! environment it kept, the mark on the second image, and the volume's data. After a
//! person deploys the third by hand, the next rollback skips the marked second.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{eventually, free_port, have, small_scenario, start};
use serde_json::Value;

/// `podman system service` on a socket, and the podman command line on its store.
struct Podman {
    dir: tempfile::TempDir,
    service: std::process::Child,
    api: reqwest::Client,
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cli(&["rm", "-a", "-f", "-t", "0"]);
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

impl Podman {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        let d = self.dir.path();
        Command::new("podman")
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("store"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(args)
            .output()
            .expect("podman runs")
    }

    fn must(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    async fn get(&self, path: &str) -> Value {
        let r = (self.api.get(format!("http://d/v1.41{path}")).send().await)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        r.json().await.unwrap_or(Value::Null)
    }

    /// An image of `localhost/cafe/menu:N` whose `/VERSION` says N.
    fn image(&self, n: u32) {
        self.image_with(n, &["sh", "httpd", "cat"]);
    }

    /// The same, with only these busybox applets on its PATH.
    fn image_with(&self, n: u32, applets: &[&str]) {
        let root = self.dir.path().join(format!("rootfs{n}"));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in applets {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.join("VERSION"), format!("{n}\n")).unwrap();
        let tar = self.dir.path().join(format!("rootfs{n}.tar"));
        let made = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(made.success());
        self.must(&[
            "import",
            tar.to_str().unwrap(),
            &format!("localhost/cafe/menu:{n}"),
        ]);
        // An image's creation time is in seconds, and it orders the revisions.
        std::thread::sleep(Duration::from_millis(1100));
    }

    /// Runs image N as Compose runs the service's first container.
    fn deploy(&self, n: u32, port: u16) {
        self.deploy_with(n, port, &[]);
    }

    /// The same, with more `podman run` options (a health check).
    fn deploy_with(&self, n: u32, port: u16, options: &[&str]) {
        let _ = self.cli(&["rm", "-f", "-t", "0", "cafe-menu-1"]);
        let serve = format!("cat /VERSION >> /data/log; exec httpd -f -p 127.0.0.1:{port} -h /");
        self.must(
            &[
                "run",
                "-d",
                "--name",
                "cafe-menu-1",
                "--label",
                "com.docker.compose.project=cafe",
                "--label",
                "com.docker.compose.service=menu",
                "--label",
                "com.docker.compose.container-number=1",
                "--network",
                "host",
                "-v",
                "cafedata:/data",
                "-e",
                "GREETING=hello",
            ]
            .iter()
            .chain(options)
            .chain(&[
                format!("localhost/cafe/menu:{n}").as_str(),
                "sh",
                "-c",
                &serve,
            ])
            .copied()
            .collect::<Vec<_>>(),
        );
    }
}

async fn podman() -> Option<Podman> {
    if !(have("podman") && have("runc") && have("busybox")) {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("pm")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    // This machine's sandbox refuses crun's rlimits and its hybrid cgroups; runc on
    // cgroupfs with the inherited limits runs containers here.
    std::fs::write(
        d.join("containers.conf"),
        "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .unwrap();
    let socket = d.join("podman.sock");
    let service = Command::new("podman")
        .env("CONTAINERS_CONF", d.join("containers.conf"))
        .arg("--root")
        .arg(d.join("store"))
        .arg("--runroot")
        .arg(d.join("run"))
        .arg("--tmpdir")
        .arg(d.join("tmp"))
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("podman system service starts");
    let api = reqwest::Client::builder()
        .unix_socket(socket.clone())
        .build()
        .unwrap();
    let p = Podman { dir, service, api };
    eventually(
        Duration::from_secs(60),
        "podman's API to answer",
        async || {
            let r = p.api.get("http://d/_ping").send().await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    Some(p)
}

async fn http_text(url: &str) -> Option<String> {
    let r = reqwest::get(url).await.ok()?;
    r.status().is_success().then_some(())?;
    r.text().await.ok()
}

/// The image's id as the Engine API spells it (podman's CLI leaves out `sha256:`).
fn image_id(p: &Podman, n: u32) -> String {
    let id = p.must(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("localhost/cafe/menu:{n}"),
    ]);
    format!("sha256:{}", id.trim_start_matches("sha256:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backout_recreates_a_compose_service_on_the_previous_image_in_podman() {
    let Some(p) = podman().await else {
        return;
    };
    for n in 1..=3 {
        p.image(n);
    }
    let port = free_port();
    p.deploy(2, port);
    let served = format!("http://127.0.0.1:{port}");
    let version = eventually(Duration::from_secs(30), "version 2 to serve", async || {
        http_text(&format!("{served}/VERSION")).await
    })
    .await;
    assert_eq!(version.trim(), "2");

    let c = start(small_scenario("")).await;
    let config = c.add_config(&format!(
        "\n[[compose]]\nproject = \"cafe\"\nservice = \"menu\"\nengine = \"unix://{}\"\nstop_timeout = 1\n",
        p.socket().display()
    ));
    let rollback = |reason: &'static str| {
        let config = config.clone();
        let c = &c;
        async move {
            c.backout_said(
                &[
                    "rollback",
                    "menu",
                    "-n",
                    "cafe",
                    "--yes",
                    "--no-verify",
                    "--reason",
                    reason,
                    "--config",
                    &config,
                ],
                &[],
            )
            .await
        }
    };
    // Each rollback goes to the first image, the only one not rolled back from.
    let rolled_back_to_1 = |(ok, said): (bool, String)| {
        assert!(ok, "{said}");
        assert!(
            said.contains("to   revision 1 (localhost/cafe/menu:1)"),
            "{said}"
        );
    };
    rolled_back_to_1(rollback("drill").await);

    let menu = p.get("/containers/cafe-menu-1/json").await;
    assert_eq!(menu["Image"], image_id(&p, 1), "{menu}");
    assert_eq!(menu["State"]["Running"], true, "{menu}");
    let env = menu["Config"]["Env"].to_string();
    assert!(env.contains("GREETING=hello"), "{env}");
    let record: Value = serde_json::from_str(
        menu["Config"]["Labels"]["dev.backout.rollback"]
            .as_str()
            .unwrap_or_default(),
    )
    .expect("backout's record on the container");
    assert_eq!(record["from_replicaset"], image_id(&p, 2));
    assert_eq!(record["reason"], "drill");
    let aside = p.get("/containers/cafe-menu-1-backout-old/json").await;
    assert!(
        aside.get("Id").is_none(),
        "the old container is gone: {aside}"
    );
    let tags = p.get(&format!("/images/{}/json", image_id(&p, 2))).await["RepoTags"].to_string();
    assert!(tags.contains("backout-rolled-back/cafe.menu:"), "{tags}");
    let version = eventually(Duration::from_secs(30), "version 1 to serve", async || {
        http_text(&format!("{served}/VERSION")).await
    })
    .await;
    assert_eq!(version.trim(), "1");
    let log = http_text(&format!("{served}/data/log"))
        .await
        .unwrap_or_default();
    assert_eq!(log, "2\n1\n", "the named volume kept what version 2 wrote");

    // A person deploys 3 by hand; the next rollback skips 2, which was rolled back from.
    p.deploy(3, port);
    let (_, status) = c
        .backout_said(&["status", "-n", "cafe", "--config", &config], &[])
        .await;
    let short = image_id(&p, 3)["sha256:".len()..][..12].to_string();
    assert!(
        status.contains(&format!(
            "compose service cafe/menu runs 1 of 1 containers on image {short}"
        )) && status.contains("→ revision 1 (localhost/cafe/menu:1)"),
        "{status}"
    );
    rolled_back_to_1(rollback("again").await);
    let menu = p.get("/containers/cafe-menu-1/json").await;
    assert_eq!(menu["Image"], image_id(&p, 1), "{menu}");

    // A replacement that cannot start (image 4 has no shell for the container's
    // command) is removed, and the container it was to replace is put back and runs.
    p.image_with(4, &["httpd"]);
    let (ok, said) = c
        .backout_said(
            &[
                "rollback",
                "menu",
                "-n",
                "cafe",
                "--yes",
                "--no-verify",
                "--to-revision",
                "4",
                "--config",
                &config,
            ],
            &[],
        )
        .await;
    assert!(
        !ok && said.contains("the replacement was removed and cafe-menu-1 put back"),
        "{said}"
    );
    let menu = p.get("/containers/cafe-menu-1/json").await;
    assert_eq!(menu["Image"], image_id(&p, 1), "put back: {menu}");
    assert_eq!(menu["State"]["Running"], true, "{menu}");
    let aside = p.get("/containers/cafe-menu-1-backout-old/json").await;
    assert!(aside.get("Id").is_none(), "nothing is left aside: {aside}");
    let all = p.get("/containers/json?all=true").await;
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(1),
        "no replacement is left: {all}"
    );
    let version = eventually(
        Duration::from_secs(30),
        "version 1 to serve again",
        async || http_text(&format!("{served}/VERSION")).await,
    )
    .await;
    assert_eq!(version.trim(), "1");

    // A health check that fails makes the container unready, read from the engine: no
    // systemd runs podman's checks here, so the test runs them as its timer would.
    p.deploy_with(
        3,
        port,
        &[
            "--health-cmd",
            "cat /no-such-file",
            "--health-interval",
            "1h",
        ],
    );
    for _ in 0..3 {
        let _ = p.cli(&["healthcheck", "run", "cafe-menu-1"]);
    }
    let inspected = p.get("/containers/cafe-menu-1/json").await;
    assert_eq!(
        inspected["State"]["Health"]["Status"], "unhealthy",
        "{inspected}"
    );
    let unready = eventually(
        Duration::from_secs(20),
        "the unready container",
        async || {
            let json = common::status_of(&c, "menu", &["-n", "cafe"]).await;
            let trigger = json["triggers"]
                .as_array()?
                .iter()
                .find(|t| t["name"] == "pods-unready")?
                .clone();
            (trigger["data"]["state"] == "ok" && trigger["value"].as_f64()? >= 1.0).then_some(json)
        },
    )
    .await;
    assert!(
        unready.to_string().contains("0 of 1 containers ready"),
        "{unready}"
    );

    // An engine that is not there is named, with what to do.
    let bad = c.dir().join("bad.toml");
    let toml = std::fs::read_to_string(&config)
        .unwrap()
        .replace(p.socket().to_str().unwrap(), "/nonexistent/docker.sock");
    std::fs::write(&bad, toml).unwrap();
    let (ok, said) = c
        .backout_said(
            &[
                "rollback",
                "menu",
                "-n",
                "cafe",
                "--yes",
                "--config",
                bad.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert!(!ok, "{said}");
    assert!(
        said.contains("/nonexistent/docker.sock")
            && said.contains("cannot reach the Docker engine"),
        "{said}"
    );
}
