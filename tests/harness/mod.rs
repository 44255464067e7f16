//! The integration-test harness: the real Worker in workerd through `wrangler dev`.
//!
//! [`TestWorker::start`] builds the Worker once per test run (the first caller builds, under a
//! file lock so that concurrent test binaries never build at the same time), then starts
//! `wrangler dev` on free loopback ports with a fresh `--persist-to` folder of its own: local KV,
//! R2 and Durable Objects that no other test sees. Dropping the `TestWorker` (also while a
//! failing test unwinds) kills the whole process group, wrangler and its workerd children, and
//! waits until it is gone.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::fs::{self, File};
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a cold `wrangler dev` may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the process group may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn wrangler_bin() -> PathBuf {
    project_root().join("node_modules/.bin/wrangler")
}

/// Builds the Worker once per test process; the file lock serialises test processes.
fn build_worker_once() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let lock_path = project_root().join("target/.worker-build.lock");
        fs::create_dir_all(lock_path.parent().unwrap()).map_err(|e| e.to_string())?;
        let lock = File::create(&lock_path).map_err(|e| e.to_string())?;
        lock.lock().map_err(|e| e.to_string())?;
        let output = Command::new("sh")
            .arg(project_root().join("scripts/build-worker.sh"))
            .current_dir(project_root())
            .env_remove("SKIP_WORKER_BUILD")
            .output()
            .map_err(|e| format!("could not run the build script: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "building the Worker failed:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// How to start a `wrangler dev`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--env`: a wrangler.toml environment such as `dev`.
    pub env: Option<String>,
    /// `--var NAME:VALUE` overrides.
    pub vars: Vec<(String, String)>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "status {} body is not JSON ({err}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A running Worker with its own local state.
pub struct TestWorker {
    // Declared before `state`: fields drop in order, and the process must stop before its
    // state folder is deleted.
    process: WranglerDev,
    options: Options,
    state: TempDir,
    agent: ureq::Agent,
}

impl TestWorker {
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        build_worker_once();
        let state = tempfile::Builder::new()
            .prefix("worker-test-")
            .tempdir()
            .expect("a temporary state folder");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let process = WranglerDev::spawn(&options, state.path(), &agent);
        Self {
            process,
            options,
            state,
            agent,
        }
    }

    /// Stops the Worker and starts it again on the same local state.
    pub fn restart(&mut self) {
        self.restart_after(|_| {});
    }

    /// Stops the Worker, lets `change` alter its persisted state, and starts it again.
    pub fn restart_after(&mut self, change: impl FnOnce(&Path)) {
        self.process.stop();
        change(&persist_dir(self.state.path()));
        self.process = WranglerDev::spawn(&self.options, self.state.path(), &self.agent);
    }

    pub fn base_url(&self) -> String {
        self.process.base_url()
    }

    /// The folder wrangler persists local KV, R2 and Durable Objects in.
    pub fn persist_dir(&self) -> PathBuf {
        persist_dir(self.state.path())
    }

    /// Everything wrangler and workerd printed so far.
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Sends a request; `user` becomes the `X-User-ID` header.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> TestResponse {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url()));
        if let Some(user) = user {
            builder = builder.header("X-User-ID", user);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body).expect("a valid request");
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|err| panic!("{method} {path} failed: {err}\n{}", self.logs()));
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .expect("a readable body");
        TestResponse {
            status: response.status().as_u16(),
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str, user: Option<&str>) -> TestResponse {
        self.request("GET", path, user, &[], Vec::new())
    }

    /// Runs `wrangler <args> --local --persist-to <this worker's state>`.
    fn wrangler_local(&self, args: &[&str]) {
        let mut command = Command::new(wrangler_bin());
        command
            .current_dir(project_root())
            .args(args)
            .arg("--local")
            .arg("--persist-to")
            .arg(persist_dir(self.state.path()))
            .env("WRANGLER_SEND_METRICS", "false")
            .stdin(Stdio::null());
        if let Some(env) = &self.options.env {
            command.args(["--env", env]);
        }
        let output = command.output().expect("wrangler runs");
        assert!(
            output.status.success(),
            "wrangler {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Writes a key of the `FLAGS` KV namespace.
    pub fn put_kv(&self, key: &str, value: &str) {
        self.wrangler_local(&["kv", "key", "put", "--binding", "FLAGS", key, value]);
    }

    /// Deletes a key of the `FLAGS` KV namespace.
    pub fn delete_kv(&self, key: &str) {
        self.wrangler_local(&["kv", "key", "delete", "--binding", "FLAGS", key]);
    }

    /// Reads an object of the `USER_DATA` R2 bucket, if it exists.
    pub fn get_r2(&self, key: &str) -> Option<Vec<u8>> {
        let file = self.state.path().join("download.bin");
        let _ = fs::remove_file(&file);
        let mut command = Command::new(wrangler_bin());
        command
            .current_dir(project_root())
            .args([
                "r2",
                "object",
                "get",
                &format!("reel-ballers-users/{key}"),
                "--file",
            ])
            .arg(&file)
            .arg("--local")
            .arg("--persist-to")
            .arg(persist_dir(self.state.path()))
            .env("WRANGLER_SEND_METRICS", "false")
            .stdin(Stdio::null());
        if let Some(env) = &self.options.env {
            command.args(["--env", env]);
        }
        let output = command.output().expect("wrangler runs");
        output
            .status
            .success()
            .then(|| fs::read(&file).ok())
            .flatten()
    }

    /// Writes an object of the `USER_DATA` R2 bucket (without custom metadata: the CLI cannot).
    pub fn put_r2(&self, key: &str, bytes: &[u8]) {
        let file = self.state.path().join("upload.bin");
        fs::write(&file, bytes).expect("the upload file is written");
        let target = format!("reel-ballers-users/{key}");
        let file = file.to_string_lossy().into_owned();
        self.wrangler_local(&["r2", "object", "put", &target, "--file", &file]);
    }
}

/// Whether any process of the group is still running. Zombies do not count: they have exited,
/// and whoever inherited them reaps them.
fn group_alive(group: libc::pid_t) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        // SAFETY: signal 0 only checks for existence.
        return unsafe { libc::kill(-group, 0) == 0 };
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp ...`; comm may contain spaces, so split after the ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        matches!(fields.as_slice(), [state, _ppid, pgrp, ..]
            if *state != "Z" && pgrp.parse() == Ok(group))
    })
}

/// One `wrangler dev` process group; stopped when dropped.
struct WranglerDev {
    /// `None` once stopped.
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
}

impl WranglerDev {
    fn spawn(options: &Options, state: &Path, agent: &ureq::Agent) -> Self {
        let port = free_port();
        let log_path = state.join(format!("wrangler-{port}.log"));
        let log = File::create(&log_path).expect("a log file");
        let mut command = Command::new(wrangler_bin());
        command
            .current_dir(project_root())
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(persist_dir(state))
            .args([
                "--log-level",
                "info",
                "--show-interactive-dev-session=false",
            ])
            .env("SKIP_WORKER_BUILD", "1")
            .env("WRANGLER_SEND_METRICS", "false")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            // Its own process group, so that stopping it also stops workerd.
            .process_group(0);
        if let Some(env) = &options.env {
            command.args(["--env", env]);
        }
        for (name, value) in &options.vars {
            command.args(["--var", &format!("{name}:{value}")]);
        }
        let child = command.spawn().expect("wrangler dev starts");
        let mut process = Self {
            child: Some(child),
            port,
            log_path,
        };
        process.wait_until_ready(agent);
        process
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    fn wait_until_ready(&mut self, agent: &ureq::Agent) {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            let exited = self.child.as_mut().map(|child| child.try_wait());
            if let Some(Ok(Some(status))) = exited {
                panic!("wrangler dev exited with {status}:\n{}", self.logs());
            }
            let probe = agent
                .get(format!("{}/api/health", self.base_url()))
                .config()
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .call();
            if matches!(probe, Ok(response) if response.status() == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "wrangler dev did not answer within {READY_TIMEOUT:?}:\n{}",
            self.logs()
        );
    }

    /// Stops the whole process group and waits until every process of it is gone. Idempotent.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals the process group we created.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while group_alive(group) && Instant::now() < deadline {
            let _ = child.try_wait();
            std::thread::sleep(Duration::from_millis(50));
        }
        if group_alive(group) {
            // SAFETY: as above.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = child.wait();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while group_alive(group) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WranglerDev {
    fn drop(&mut self) {
        self.stop();
    }
}

fn persist_dir(state: &Path) -> PathBuf {
    state.join("persist")
}

/// A SQLite file with the app's schema, made natively, as the existing app would have stored it.
pub fn sqlite_file_with(sql: &str) -> Vec<u8> {
    let mut conn = rusqlite::Connection::open_in_memory().expect("an in-memory database");
    conn.execute_batch(include_str!("../../schema/0001_init.sql"))
        .expect("the schema applies");
    conn.execute_batch(sql).expect("the seed SQL applies");
    let bytes = conn
        .serialize(rusqlite::MAIN_DB)
        .expect("the database serialises")
        .to_vec();
    drop(conn);
    bytes
}

/// One part of a `multipart/form-data` body.
pub enum Part<'a> {
    Text(&'a str),
    File {
        filename: &'a str,
        content_type: &'a str,
        bytes: &'a [u8],
    },
}

/// Encodes a `multipart/form-data` body; returns its content type and bytes.
pub fn multipart(parts: &[(&str, Part<'_>)]) -> (String, Vec<u8>) {
    const BOUNDARY: &str = "----harness-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, part) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part {
            Part::Text(value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File {
                filename,
                content_type,
                bytes,
            } => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                         Content-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}
