//! A real control plane per test: etcd, kube-apiserver and kube-controller-manager
//! built from published Go modules by `tests/controlplane/build.sh`, started on free
//! loopback ports in the test's own directory, with static tokens for an admin and an
//! on-call viewer. Locally a missing Go toolchain skips the tier; under CI=true it
//! fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "backout-admin-token";
pub const VIEWER_TOKEN: &str = "backout-viewer-token";

/// The directory holding the three binaries, built or reused; `None` (locally) when
/// they cannot be built here.
pub fn binaries() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/controlplane/build.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("build.sh runs");
    if out.status.success() {
        return Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the real control plane is required under CI=true, and tests/controlplane/build.sh failed"
    );
    eprintln!("skipping: the real control plane could not be built here");
    None
}

/// The directory holding Argo Rollouts' controller and its CRDs, built or
/// reused by build-argo.sh; `None` (locally) when it cannot be built here.
pub fn argo_rollouts() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/controlplane/build-argo.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("build-argo.sh runs");
    if out.status.success() {
        return Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "Argo Rollouts is required under CI=true, and tests/controlplane/build-argo.sh failed"
    );
    eprintln!("skipping: Argo Rollouts could not be built here");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct ControlPlane {
    pub url: String,
    bin: PathBuf,
    etcd_url: String,
    etcd_args: Vec<String>,
    apiserver_args: Vec<String>,
    // Stopped in reverse: the controller manager, the API server, then etcd.
    kcm: Option<Process>,
    others: Vec<Process>,
    apiserver: Option<Process>,
    etcd: Option<Process>,
    // Last, so it is removed after every process that writes there has stopped.
    pub dir: tempfile::TempDir,
}

/// A CA, a serving certificate for 127.0.0.1 and a service-account signing key, as
/// PEM files in `dir`.
fn write_pki(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let sa = KeyPair::generate().unwrap();
    for (file, pem) in [
        ("ca.crt", ca.pem()),
        ("serving.crt", cert.pem()),
        ("serving.key", key.serialize_pem()),
        ("sa.key", sa.serialize_pem()),
        ("sa.pub", sa.public_key_pem()),
    ] {
        std::fs::write(dir.join(file), pem).unwrap();
    }
}

fn kubeconfig(server: &str, ca: &Path, user: &str, token: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": user,
        "clusters": [{"name": "real", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "real", "user": user, "namespace": "shop"}}],
    })
    .to_string()
}

impl ControlPlane {
    /// A fresh control plane, ready to serve; `None` when the tier is skipped.
    pub async fn start() -> Option<ControlPlane> {
        let bin = tokio::task::spawn_blocking(binaries).await.unwrap()?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        write_pki(d);
        std::fs::write(
            d.join("tokens.csv"),
            format!(
                "{ADMIN_TOKEN},backout-admin,uid-admin,\"system:masters\"\n{VIEWER_TOKEN},oncall-viewer,uid-viewer\n"
            ),
        )
        .unwrap();
        let (client, peer, secure) = (free_port(), free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client}");
        let url = format!("https://127.0.0.1:{secure}");
        let path = |f: &str| d.join(f).display().to_string();
        let etcd_args = vec![
            "--name=backout".into(),
            format!("--data-dir={}", path("etcd")),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-cluster=backout=http://127.0.0.1:{peer}"),
            // A test's data need not survive a power cut; fsync would dominate.
            "--unsafe-no-fsync".into(),
            "--log-level=error".into(),
        ];
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            // A loopback address cannot be the kubernetes Service's endpoint.
            "--endpoint-reconciler-type=none".into(),
            format!("--secure-port={secure}"),
            format!("--tls-cert-file={}", path("serving.crt")),
            format!("--tls-private-key-file={}", path("serving.key")),
            format!("--token-auth-file={}", path("tokens.csv")),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", path("sa.pub")),
            format!("--service-account-signing-key-file={}", path("sa.key")),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--profiling=false".into(),
            "-v=0".into(),
        ];
        std::fs::write(
            d.join("admin.kubeconfig"),
            kubeconfig(&url, &d.join("ca.crt"), "backout-admin", ADMIN_TOKEN),
        )
        .unwrap();
        std::fs::write(
            d.join("viewer.kubeconfig"),
            kubeconfig(&url, &d.join("ca.crt"), "oncall-viewer", VIEWER_TOKEN),
        )
        .unwrap();
        let mut cp = ControlPlane {
            url,
            bin,
            etcd_url,
            etcd_args,
            apiserver_args,
            kcm: None,
            others: Vec::new(),
            apiserver: None,
            etcd: None,
            dir,
        };
        cp.etcd = Some(cp.spawn("etcd", &cp.etcd_args.clone()));
        cp.start_apiserver().await;
        let kcm_args = vec![
            format!("--kubeconfig={}", path("admin.kubeconfig")),
            "--leader-elect=false".into(),
            format!("--service-account-private-key-file={}", path("sa.key")),
            format!("--root-ca-file={}", path("ca.crt")),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()),
            "-v=0".into(),
        ];
        cp.kcm = Some(cp.spawn("kube-controller-manager", &kcm_args));
        // The namespace every test works in, with its default ServiceAccount.
        // kubectl may retry a create whose first answer it lost: already there is fine.
        let created = cp.kubectl(&["create", "namespace", "shop"]).await;
        assert!(
            created.status.success()
                || String::from_utf8_lossy(&created.stderr).contains("AlreadyExists"),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        Some(cp)
    }

    /// Installs Argo Rollouts' CRDs and runs its real controller against this control
    /// plane; `false` when the tier is skipped.
    pub async fn start_argo_rollouts(&mut self) -> bool {
        let Some(dir) = tokio::task::spawn_blocking(argo_rollouts).await.unwrap() else {
            return false;
        };
        let crds = dir.join("crds");
        self.kubectl_ok(&["apply", "--server-side", "-f", crds.to_str().unwrap()])
            .await;
        // `kubectl wait` (and a jsonpath filter) fail outright on a CRD with no
        // conditions yet: read it whole and look.
        let started = Instant::now();
        let established = async || {
            let crd = self
                .kubectl_ok(&["get", "crd/rollouts.argoproj.io", "-o", "json"])
                .await;
            let crd: serde_json::Value = serde_json::from_str(&crd).unwrap_or_default();
            crd["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        };
        while !established().await {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the Rollout CRD was not established in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let args = [
            format!("--kubeconfig={}", self.kubeconfig().display()),
            "--leader-elect=false".into(),
            "--namespaced".into(),
            "--namespace=shop".into(),
            format!("--metricsport={}", free_port()),
            format!("--healthzPort={}", free_port()),
            "--loglevel=info".into(),
        ];
        let log = std::fs::File::create(self.dir.path().join("rollouts-controller.log")).unwrap();
        let controller = Command::new(dir.join("rollouts-controller"))
            .args(&args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("rollouts-controller starts");
        self.others.push(Process(controller));
        true
    }

    fn spawn(&self, name: &str, args: &[String]) -> Process {
        self.spawn_as(name, name, args)
    }

    /// Runs binary `bin` with its output in `log`.log.
    fn spawn_as(&self, bin: &str, log: &str, args: &[String]) -> Process {
        let log = std::fs::File::create(self.dir.path().join(format!("{log}.log"))).unwrap();
        Process(
            Command::new(self.bin.join(bin))
                .args(args)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{bin} starts: {e}")),
        )
    }

    async fn start_apiserver(&mut self) {
        self.apiserver = Some(self.spawn("kube-apiserver", &self.apiserver_args.clone()));
        self.wait_ready(Duration::from_secs(90)).await;
    }

    pub fn stop_apiserver(&mut self) {
        self.apiserver = None;
    }

    /// Starts the stopped API server again, on the same port and etcd: what a
    /// control-plane upgrade or crash looks like to a client.
    pub async fn restart_apiserver(&mut self) {
        self.apiserver = None;
        self.start_apiserver().await;
    }

    /// A second API server on the same etcd (an HA control plane's other member), and
    /// an admin kubeconfig for it: writes through it happen while the first is down.
    pub async fn second_apiserver(&mut self) -> std::path::PathBuf {
        let port = free_port();
        let args: Vec<String> = self
            .apiserver_args
            .iter()
            .map(|a| match a.starts_with("--secure-port=") {
                true => format!("--secure-port={port}"),
                false => a.clone(),
            })
            .collect();
        let url = format!("https://127.0.0.1:{port}");
        let process = self.spawn_as("kube-apiserver", "kube-apiserver-2", &args);
        self.others.push(process);
        self.wait_ready_at(&url, "kube-apiserver-2", Duration::from_secs(90))
            .await;
        let path = self.dir.path().join("second.kubeconfig");
        let ca = self.dir.path().join("ca.crt");
        std::fs::write(&path, kubeconfig(&url, &ca, "backout-admin", ADMIN_TOKEN)).unwrap();
        path
    }

    /// Compacts etcd's history up to now, through its JSON gateway: every watch that
    /// resumes from before this point gets 410 Gone.
    pub async fn compact_etcd(&self) {
        let http = reqwest::Client::new();
        let range: serde_json::Value = http
            .post(format!("{}/v3/kv/range", self.etcd_url))
            .body(r#"{"key":"AA=="}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let revision = range["header"]["revision"].as_str().unwrap().to_string();
        let compacted = http
            .post(format!("{}/v3/kv/compaction", self.etcd_url))
            .body(format!(r#"{{"revision":"{revision}","physical":true}}"#))
            .send()
            .await
            .unwrap();
        assert!(
            compacted.status().is_success(),
            "{}",
            compacted.text().await.unwrap_or_default()
        );
    }

    async fn wait_ready(&self, limit: Duration) {
        self.wait_ready_at(&self.url, "kube-apiserver", limit).await;
    }

    /// Polls `url`'s `/readyz` until that API server says ready.
    async fn wait_ready_at(&self, url: &str, name: &str, limit: Duration) {
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(self.dir.path().join("ca.crt")).unwrap())
                .unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let started = Instant::now();
        loop {
            let ready = http
                .get(format!("{url}/readyz"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "{name} not ready in {limit:?}; its log:\n{}",
                self.log(name)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A process's errors (klog's `E` lines), then its last lines.
    pub fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let errors: Vec<&str> = lines
            .iter()
            .filter(|l| l.starts_with('E'))
            .take(20)
            .copied()
            .collect();
        format!(
            "errors:\n{}\nlast lines:\n{}",
            errors.join("\n"),
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    pub fn viewer_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("viewer.kubeconfig")
    }

    /// A kubeconfig that authenticates with `token` (a ServiceAccount's).
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(
            &path,
            kubeconfig(&self.url, &self.dir.path().join("ca.crt"), name, token),
        )
        .unwrap();
        path
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.path().join("journal.jsonl")
    }

    pub async fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let (kubeconfig, cache) = (
            kubeconfig.to_path_buf(),
            self.dir.path().join("kubectl-cache"),
        );
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new("kubectl")
                .env("KUBECONFIG", &kubeconfig)
                .arg("--cache-dir")
                .arg(&cache)
                .args(&args)
                .output()
                .expect("kubectl runs")
        })
        .await
        .unwrap()
    }

    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as(&self.kubeconfig(), args).await
    }

    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub async fn jsonpath(&self, object: &str, path: &str) -> String {
        self.kubectl_ok(&["get", object, "-o", &format!("jsonpath={path}")])
            .await
    }

    /// `backout ARGS` against this control plane as `kubeconfig`'s user.
    pub async fn backout_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let (kubeconfig, journal) = (kubeconfig.to_path_buf(), self.journal_path());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_backout"))
                .args(&args)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .env("BACKOUT_JOURNAL", journal)
                .output()
                .expect("backout runs")
        })
        .await
        .unwrap()
    }

    /// `backout ARGS` as `kubeconfig`'s user, running on with its output in
    /// backout.out and backout.log (a pipe nobody reads would stall it); killed
    /// when dropped.
    pub fn spawn_backout_as(&self, kubeconfig: &Path, args: &[&str]) -> tokio::process::Child {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_backout"))
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env("BACKOUT_JOURNAL", self.journal_path())
            .stdout(std::fs::File::create(self.dir.path().join("backout.out")).unwrap())
            .stderr(std::fs::File::create(self.dir.path().join("backout.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("backout starts")
    }

    /// Applies `manifest` and returns a kubeconfig with a token of its ServiceAccount
    /// `namespace/name`, issued by the real TokenRequest API.
    pub async fn service_account(&self, manifest: &Path, namespace: &str, name: &str) -> PathBuf {
        self.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()])
            .await;
        let token = self
            .kubectl_ok(&["create", "token", name, "-n", namespace])
            .await;
        self.kubeconfig_with_token(&format!("{namespace}-{name}"), token.trim())
    }

    /// assets/deploy/sim-kubelet.yaml applied; a kubeconfig as its ServiceAccount,
    /// the workload half's narrow kubelet identity.
    pub async fn sim_kubelet(&self) -> PathBuf {
        let manifest = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/deploy/sim-kubelet.yaml"
        );
        self.service_account(manifest.as_ref(), "backout-sim", "kubelet")
            .await
    }

    /// A kube-rs client as `kubeconfig`'s user, as the workload half uses one.
    pub async fn client_as(&self, kubeconfig: &Path) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    pub async fn backout(&self, args: &[&str]) -> Output {
        self.backout_as(&self.kubeconfig(), args).await
    }
}
