//! The integration-test harness: the real Worker in workerd through `wrangler dev`. The root
//! package's integration tests, the migrator's tests and the benchmark all use it as
//! `test_support::...`.
//!
//! [`TestWorker::start`] builds the Worker once per test run (the first caller builds, under a
//! file lock so that concurrent test binaries never build at the same time), then starts
//! `wrangler dev` on free loopback ports with a fresh `--persist-to` folder of its own: local KV,
//! R2 and Durable Objects that no other test sees. Dropping the `TestWorker` (also while a
//! failing test unwinds) kills the whole process group, wrangler and its workerd children, and
//! waits until it is gone.

use std::fs::{self, File};
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod data_path;
// Adversarial databases for tests. It needs proptest: the benchmark, which runs this harness as a
// program, leaves it out (the `generate` feature).
#[cfg(feature = "generate")]
pub mod generate;
pub mod keys;
pub mod legacy;
pub mod load;
pub mod watch;

pub use data_path::{for_each_path, users_on_each_path, DataPath};
pub use keys::{backup_key, database_key, flag_key};

/// How long a cold `wrangler dev` may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the process group may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The folder with `wrangler.toml`: the workspace root above this crate, wherever the test or
/// program that uses the harness lives.
fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("wrangler.toml").exists())
        .expect("wrangler.toml above the crate")
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
    /// `--config`: a wrangler configuration other than production's `wrangler.toml`, such as
    /// `wrangler.dev.toml`.
    pub config: Option<String>,
    /// `--var NAME:VALUE` overrides.
    pub vars: Vec<(String, String)>,
    /// Serve HTTPS with this certificate (`--local-protocol https`), trusted through its CA.
    pub tls: Option<TlsFiles>,
}

/// A server certificate and key, and the CA that signed it (PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
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

impl TestResponse {
    /// The `X-DB-Version` the response reflects.
    pub fn db_version(&self) -> u64 {
        self.header("X-DB-Version")
            .unwrap_or_else(|| panic!("no X-DB-Version on {} {:?}", self.status, self.headers))
            .parse()
            .expect("a decimal version")
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
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)));
        if let Some(tls) = &options.tls {
            let pem = fs::read(&tls.ca).expect("the CA certificate is readable");
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let agent: ureq::Agent = config.build().into();
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

    /// The Durable Objects that have storage, by id: each gets a SQLite file (with its `-wal`
    /// and `-shm`) when it first stores anything, so an object that was never woken has none.
    pub fn objects_with_storage(&self) -> std::collections::BTreeSet<String> {
        fn walk(dir: &Path) -> Vec<PathBuf> {
            let Ok(entries) = fs::read_dir(dir) else {
                return Vec::new();
            };
            entries
                .flatten()
                .flat_map(|entry| match entry.path() {
                    path if path.is_dir() => walk(&path),
                    path => vec![path],
                })
                .collect()
        }
        walk(&self.persist_dir())
            .into_iter()
            .filter(|path| path.to_string_lossy().contains("UserDataStore"))
            .filter_map(|path| {
                let name = path.file_name()?.to_string_lossy().into_owned();
                let (id, _) = name.split_once('.')?;
                // The namespace's own bookkeeping, there before any object.
                (id != "metadata").then(|| id.to_owned())
            })
            .collect()
    }

    /// Everything wrangler and workerd printed so far.
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// The resident memory of the workerd processes of this Worker: the Worker and its
    /// Durable Objects, and workerd's own memory (its HTTP buffers, the local R2, KV and Queues it
    /// simulates, its SQLite).
    pub fn runtime_memory_bytes(&self) -> u64 {
        self.process.workerd_rss_bytes()
    }

    /// A connection to the Worker's V8 inspector (what the platform's memory limit counts:
    /// the isolate's JavaScript heap and the buffers it holds).
    pub fn inspector(&self) -> Inspector {
        let url = format!("ws://127.0.0.1:{}/ws", self.process.inspector_port);
        let (socket, _) = tungstenite::connect(&url).expect("the inspector answers");
        if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
            // A call it does not answer must fail the test, not hang it.
            let _ = stream.set_read_timeout(Some(INSPECTOR_TIMEOUT));
        }
        Inspector {
            socket,
            id: 0,
            poke: format!("{}/api/health", self.base_url()),
            agent: self.agent.clone(),
        }
    }

    /// The isolate's wasm linear memory in bytes (it never shrinks), from `/api/health` of a
    /// Worker started with the var `REPORT_WASM_MEMORY`.
    pub fn wasm_memory_bytes(&self) -> u64 {
        let health = self.get("/api/health", None);
        health
            .header("X-Wasm-Memory-Bytes")
            .expect("the Worker was started with REPORT_WASM_MEMORY")
            .parse()
            .expect("a number of bytes")
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

    /// Sends `body` as JSON for `user`.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        user: &str,
        body: serde_json::Value,
    ) -> TestResponse {
        let headers = [("Content-Type", "application/json")];
        self.request(
            method,
            path,
            Some(user),
            &headers,
            body.to_string().into_bytes(),
        )
    }

    /// Sends `parts` as `multipart/form-data` for `user`.
    pub fn send_form(
        &self,
        method: &str,
        path: &str,
        user: &str,
        parts: &[(&str, Part<'_>)],
    ) -> TestResponse {
        let (content_type, body) = multipart(parts);
        self.request(
            method,
            path,
            Some(user),
            &[("Content-Type", &content_type)],
            body,
        )
    }

    /// `POST /api/projects` with this name.
    pub fn create_project(&self, user: &str, name: &str) -> TestResponse {
        let body = serde_json::json!({"name": name, "aspect_ratio": "1:1"});
        self.send_json("POST", "/api/projects", user, body)
    }

    /// The names of the user's projects, sorted.
    pub fn project_names(&self, user: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .get("/api/projects", Some(user))
            .json()
            .as_array()
            .expect("a list of projects")
            .iter()
            .map(|project| project["name"].as_str().expect("a name").to_owned())
            .collect();
        names.sort();
        names
    }

    pub fn get(&self, path: &str, user: Option<&str>) -> TestResponse {
        self.request("GET", path, user, &[], Vec::new())
    }

    /// Runs `wrangler <args> --local --persist-to <this worker's state>`.
    fn wrangler_local(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(wrangler_bin());
        command
            .current_dir(project_root())
            .args(args)
            .arg("--local")
            .arg("--persist-to")
            .arg(persist_dir(self.state.path()))
            .env("WRANGLER_SEND_METRICS", "false")
            .stdin(Stdio::null());
        if let Some(config) = &self.options.config {
            command.args(["--config", config]);
        }
        command.output().expect("wrangler runs")
    }

    /// Like [`Self::wrangler_local`], and the command must succeed.
    fn wrangler_local_ok(&self, args: &[&str]) {
        let output = self.wrangler_local(args);
        assert!(
            output.status.success(),
            "wrangler {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Writes a key of the `FLAGS` KV namespace.
    pub fn put_kv(&self, key: &str, value: &str) {
        self.wrangler_local_ok(&["kv", "key", "put", "--binding", "FLAGS", key, value]);
    }

    /// Deletes a key of the `FLAGS` KV namespace.
    pub fn delete_kv(&self, key: &str) {
        self.wrangler_local_ok(&["kv", "key", "delete", "--binding", "FLAGS", key]);
    }

    /// Reads an object of the `USER_DATA` R2 bucket, if it exists.
    pub fn get_r2(&self, key: &str) -> Option<Vec<u8>> {
        let file = self.state.path().join("download.bin");
        let _ = fs::remove_file(&file);
        let target = format!("reel-ballers-users/{key}");
        let path = file.to_string_lossy().into_owned();
        let output = self.wrangler_local(&["r2", "object", "get", &target, "--file", &path]);
        output
            .status
            .success()
            .then(|| fs::read(&file).ok())
            .flatten()
    }

    /// Writes an object of the `USER_DATA` R2 bucket (without custom metadata: the CLI cannot).
    pub fn put_r2(&self, key: &str, bytes: &[u8]) {
        self.put_r2_typed(key, bytes, None);
    }

    /// Writes an object of the `USER_DATA` R2 bucket, stored with `content_type` when given (as
    /// an uploader of the existing app could have stored a file).
    pub fn put_r2_typed(&self, key: &str, bytes: &[u8], content_type: Option<&str>) {
        let file = self.state.path().join("upload.bin");
        fs::write(&file, bytes).expect("the upload file is written");
        let target = format!("reel-ballers-users/{key}");
        let file = file.to_string_lossy().into_owned();
        let mut args = vec!["r2", "object", "put", &target, "--file", &file];
        if let Some(content_type) = content_type {
            args.extend(["--content-type", content_type]);
        }
        self.wrangler_local_ok(&args);
    }

    /// Writes many objects of the `USER_DATA` R2 bucket with one wrangler run (`r2 bulk put`),
    /// as they are: no custom metadata, so each is a legacy file at version 0 (an import
    /// through the admin API would upgrade it first).
    pub fn put_r2_many(&self, objects: &[(String, Vec<u8>)]) {
        let dir = tempfile::tempdir_in(self.state.path()).expect("a folder for the uploads");
        let entries: Vec<serde_json::Value> = objects
            .iter()
            .enumerate()
            .map(|(i, (key, bytes))| {
                let file = dir.path().join(format!("{i}.bin"));
                fs::write(&file, bytes).expect("an upload file is written");
                serde_json::json!({"key": key, "file": file})
            })
            .collect();
        let list = dir.path().join("objects.json");
        fs::write(&list, serde_json::to_vec(&entries).expect("a list")).expect("the list");
        let list = list.to_string_lossy().into_owned();
        self.wrangler_local_ok(&[
            "r2",
            "bulk",
            "put",
            "reel-ballers-users",
            "--filename",
            &list,
        ]);
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

/// The isolate's memory as V8 reports it.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeapUsage {
    /// Bytes of live JavaScript objects.
    pub used: u64,
    /// Bytes of `ArrayBuffer` contents (request bodies, binding values).
    pub array_buffers: u64,
}

/// The Worker's V8 inspector (Chrome DevTools protocol), for measuring the isolate.
pub struct Inspector {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    id: u64,
    /// A route that touches no storage (`/api/health`): a request there lets the isolate run the
    /// tasks the inspector queued (see [`Inspector::heap_after_collection`]).
    poke: String,
    agent: ureq::Agent,
}

impl Inspector {
    /// Sends `method`; returns the id its answer will carry.
    fn send(&mut self, method: &str) -> u64 {
        self.id += 1;
        let request = serde_json::json!({"id": self.id, "method": method}).to_string();
        self.socket
            .send(tungstenite::Message::text(request))
            .expect("the inspector takes a call");
        self.id
    }

    /// The `result` of the call `id`, if it arrives before the socket's read timeout (other
    /// clients' answers and events, which the inspector passes to every client, are skipped).
    fn answer(&mut self, id: u64) -> Result<serde_json::Value, tungstenite::Error> {
        loop {
            let message = self.socket.read()?;
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(answer) = serde_json::from_str::<serde_json::Value>(text) else {
                continue;
            };
            if answer["id"] == id {
                return Ok(result_of(&answer).unwrap_or_else(|err| panic!("{err}")));
            }
        }
    }

    /// Calls `method` and returns its `result`.
    fn call(&mut self, method: &str) -> serde_json::Value {
        let id = self.send(method);
        self.answer(id)
            .unwrap_or_else(|err| panic!("the inspector did not answer {method}: {err}"))
    }

    /// The isolate's heap now. A reading that fails fails the test: it is never taken as 0.
    pub fn heap_usage(&mut self) -> HeapUsage {
        let result = self.call("Runtime.getHeapUsage");
        heap_usage_of(&result).unwrap_or_else(|err| panic!("{err}"))
    }

    /// The isolate's heap after a full collection: what is still held, not what is merely not
    /// collected yet. workerd runs the collection V8's inspector asks for as a task of the
    /// isolate, which runs only when the isolate next has work: a request to a route that
    /// touches no storage gives it some, until the collection is reported done.
    pub fn heap_after_collection(&mut self) -> HeapUsage {
        let id = self.send("HeapProfiler.collectGarbage");
        let socket = match self.socket.get_ref() {
            tungstenite::stream::MaybeTlsStream::Plain(stream) => stream,
            _ => unreachable!("the inspector is served over plain TCP"),
        };
        let _ = socket.set_read_timeout(Some(Duration::from_millis(500)));
        let mut done = None;
        for _ in 0..40 {
            let poked = self.agent.get(&self.poke).call();
            assert!(poked.is_ok(), "{} failed: {poked:?}", self.poke);
            match self.answer(id) {
                Ok(_) => {
                    done = Some(());
                    break;
                }
                Err(tungstenite::Error::Io(err))
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(err) => panic!("the inspector failed during a collection: {err}"),
            }
        }
        if let tungstenite::stream::MaybeTlsStream::Plain(stream) = self.socket.get_ref() {
            let _ = stream.set_read_timeout(Some(INSPECTOR_TIMEOUT));
        }
        done.expect("the isolate never reported the collection done");
        self.heap_usage()
    }
}

/// How long an inspector call may take before it fails the test.
const INSPECTOR_TIMEOUT: Duration = Duration::from_secs(10);

/// The `result` of an inspector answer; `Err` for an answer that carries an `error` instead (a
/// call that failed, such as a collection that did not run) or no `result` at all.
fn result_of(answer: &serde_json::Value) -> Result<serde_json::Value, String> {
    match (answer.get("error"), answer.get("result")) {
        (None, Some(result)) => Ok(result.clone()),
        _ => Err(format!("the inspector's call failed: {answer}")),
    }
}

/// The heap in the `result` of `Runtime.getHeapUsage`; `Err` when a size is missing.
fn heap_usage_of(result: &serde_json::Value) -> Result<HeapUsage, String> {
    let bytes = |field: &str| {
        result[field]
            .as_f64()
            .map(|size| size as u64)
            .ok_or_else(|| format!("Runtime.getHeapUsage answered without {field}: {result}"))
    };
    Ok(HeapUsage {
        used: bytes("usedSize")?,
        array_buffers: bytes("backingStorageSize")?,
    })
}

/// The process group and command name of a process (from `/proc/<pid>/stat`).
fn group_and_name(stat: &str) -> Option<(libc::pid_t, String)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(2)?.parse().ok()?, name))
}

/// One `wrangler dev` process group; stopped when dropped.
struct WranglerDev {
    /// `None` once stopped.
    child: Option<Child>,
    port: u16,
    /// `http`, or `https` with [`Options::tls`].
    scheme: &'static str,
    log_path: PathBuf,
    /// Where wrangler serves the Worker's V8 inspector.
    inspector_port: u16,
}

/// How often to try fresh ports when another process took the ones we picked.
const PORT_ATTEMPTS: usize = 5;

impl WranglerDev {
    /// Starts `wrangler dev` and waits until it answers. A free port can be taken by a parallel
    /// test between our check and wrangler's bind: then it starts again on other ports.
    fn spawn(options: &Options, state: &Path, agent: &ureq::Agent) -> Self {
        for _ in 1..PORT_ATTEMPTS {
            let mut process = Self::launch(options, state);
            match process.wait_until_ready(agent) {
                Ok(()) => return process,
                // workerd may also fail to start for a port taken under it (seen on restarts
                // on a loaded machine); a fresh start on other ports is the cure for both.
                Err(logs)
                    if logs.contains("Address already in use")
                        || logs.contains("The Workers runtime failed to start") =>
                {
                    continue
                }
                Err(logs) => panic!("{logs}"),
            }
        }
        let mut process = Self::launch(options, state);
        if let Err(logs) = process.wait_until_ready(agent) {
            panic!("{logs}");
        }
        process
    }

    fn launch(options: &Options, state: &Path) -> Self {
        let port = free_port();
        let inspector_port = free_port();
        let log_path = state.join(format!("wrangler-{port}.log"));
        let log = File::create(&log_path).expect("a log file");
        let mut command = Command::new(wrangler_bin());
        command
            .current_dir(project_root())
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &inspector_port.to_string()])
            .arg("--persist-to")
            .arg(persist_dir(state))
            .args([
                "--log-level",
                "info",
                "--show-interactive-dev-session=false",
            ])
            .env("SKIP_WORKER_BUILD", "1")
            .env("WRANGLER_SEND_METRICS", "false")
            // glibc would keep large freed buffers (a request's body, a batch) in its arenas, and
            // the runtime's resident memory would then count what it no longer holds; with a
            // fixed threshold they are mapped, and unmapped when freed.
            .env("MALLOC_MMAP_THRESHOLD_", "65536")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            // Its own process group, so that stopping it also stops workerd.
            .process_group(0);
        if let Some(config) = &options.config {
            command.args(["--config", config]);
        }
        // Tests name their users in X-User-ID unless they test sign-in itself: wrangler.toml
        // is production, whose default is `jwt` (another configuration says its own mode).
        if options.config.is_none() && !options.vars.iter().any(|(name, _)| name == "AUTH_MODE") {
            command.args(["--var", "AUTH_MODE:header"]);
        }
        for (name, value) in &options.vars {
            command.args(["--var", &format!("{name}:{value}")]);
        }
        if let Some(tls) = &options.tls {
            command
                .args(["--local-protocol", "https", "--https-key-path"])
                .arg(&tls.key)
                .arg("--https-cert-path")
                .arg(&tls.cert);
        }
        let child = command.spawn().expect("wrangler dev starts");
        Self {
            child: Some(child),
            port,
            scheme: if options.tls.is_some() {
                "https"
            } else {
                "http"
            },
            log_path,
            inspector_port,
        }
    }

    fn base_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// The summed `VmRSS` of the group's workerd processes.
    fn workerd_rss_bytes(&self) -> u64 {
        let Some(group) = self.child.as_ref().map(|child| child.id() as libc::pid_t) else {
            return 0;
        };
        let Ok(entries) = fs::read_dir("/proc") else {
            return 0;
        };
        entries
            .flatten()
            .filter(|entry| {
                fs::read_to_string(entry.path().join("stat"))
                    .ok()
                    .and_then(|stat| group_and_name(&stat))
                    .is_some_and(|(pgrp, name)| pgrp == group && name == "workerd")
            })
            .filter_map(|entry| fs::read_to_string(entry.path().join("status")).ok())
            .filter_map(|status| {
                let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
                let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb * 1024)
            })
            .sum()
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// `Err` with what wrangler printed when it exits or does not answer in time.
    fn wait_until_ready(&mut self, agent: &ureq::Agent) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            let exited = self.child.as_mut().map(|child| child.try_wait());
            if let Some(Ok(Some(status))) = exited {
                return Err(format!(
                    "wrangler dev exited with {status}:\n{}",
                    self.logs()
                ));
            }
            let probe = agent
                .get(format!("{}/api/health", self.base_url()))
                .config()
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .call();
            if matches!(probe, Ok(response) if response.status() == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "wrangler dev did not answer within {READY_TIMEOUT:?}:\n{}",
            self.logs()
        ))
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
    let conn = app_database();
    conn.execute_batch(sql).expect("the seed SQL applies");
    into_file(conn)
}

/// A SQLite file made by `sql` alone (unlike [`sqlite_file_with`], without our schema first),
/// foreign keys not enforced, as the app ran.
pub fn sqlite_file_of(sql: &str) -> Vec<u8> {
    let conn = rusqlite::Connection::open_in_memory().expect("an in-memory database");
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .expect("the pragma applies");
    conn.execute_batch(sql).expect("the SQL applies");
    into_file(conn)
}

/// Files the R2 path refuses to serve (503), each with its name: our schema with
/// `games.video_duration` declared TEXT (`text_duration`), with an extra NOT NULL column
/// without a default that the app's inserts leave out (`extra_not_null`), a file that is not
/// SQLite (`not_sqlite`), and a realistic database with a page of its first table overwritten
/// (`damaged`).
pub fn refused_databases() -> Vec<(&'static str, Vec<u8>)> {
    let schema = include_str!("../../schema/0001_init.sql");
    let games = "CREATE TABLE IF NOT EXISTS games (";
    assert!(schema.contains(games) && schema.contains("video_duration REAL"));
    let row = "INSERT INTO games (name) VALUES ('g');";
    let mut damaged = realistic_database(20);
    let page = usize::from(u16::from_be_bytes([damaged[16], damaged[17]]));
    damaged[page..2 * page].fill(0xA5);
    vec![
        (
            "text_duration",
            sqlite_file_of(&format!(
                "{}{row}",
                schema.replace("video_duration REAL", "video_duration TEXT")
            )),
        ),
        (
            "extra_not_null",
            sqlite_file_of(&format!(
                "{}INSERT INTO games (name, owner) VALUES ('g', 'ann');",
                schema.replace(games, &format!("{games}\n    owner TEXT NOT NULL,"))
            )),
        ),
        (
            "not_sqlite",
            b"name,rating\nclip 1,5\n(a spreadsheet saved over the database)\n".to_vec(),
        ),
        ("damaged", damaged),
    ]
}

/// An in-memory database with the existing app's schema and its settings: foreign keys
/// declared, never enforced (docs/schema.md §0).
fn app_database() -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().expect("an in-memory database");
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .expect("the pragma applies");
    conn.execute_batch(include_str!("../../schema/0001_init.sql"))
        .expect("the schema applies");
    conn
}

/// The bytes of a SQLite file holding `conn`'s database.
fn into_file(mut conn: rusqlite::Connection) -> Vec<u8> {
    let bytes = conn
        .serialize(rusqlite::MAIN_DB)
        .expect("the database serialises")
        .to_vec();
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

/// The admin token the migration tests start the Worker with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

impl TestWorker {
    /// A Worker with the admin API enabled, plus `vars`.
    pub fn start_with_admin(vars: &[(&str, &str)]) -> Self {
        let mut all = vec![("ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned())];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self::start_with(Options {
            vars: all,
            ..Options::default()
        })
    }

    /// Every page of `GET /admin/users`, `limit` users at most per page.
    pub fn user_pages(&self, limit: u32) -> Vec<admin_api::UserPage> {
        let mut pages: Vec<admin_api::UserPage> = Vec::new();
        loop {
            let path = match pages.last().and_then(|page| page.cursor.as_deref()) {
                Some(cursor) => format!(
                    "/admin/users?limit={limit}&cursor={}",
                    admin_api::request::encode(cursor)
                ),
                None if pages.is_empty() => format!("/admin/users?limit={limit}"),
                None => return pages,
            };
            let page = self.admin_ok("GET", &path, Vec::new());
            pages.push(serde_json::from_value(page).expect("a page of users"));
        }
    }

    /// An admin API request with the token.
    pub fn admin(&self, method: &str, path: &str, body: Vec<u8>) -> TestResponse {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        self.request(method, path, None, &[("Authorization", &auth)], body)
    }

    /// An admin request that must answer 200; its JSON body.
    pub fn admin_ok(&self, method: &str, path: &str, body: Vec<u8>) -> serde_json::Value {
        let response = self.admin(method, path, body);
        assert_eq!(
            response.status,
            200,
            "{method} {path}: {}",
            String::from_utf8_lossy(&response.body)
        );
        response.json()
    }
}

/// A database in the shape of the existing app's (docs/schema.md): all 8 tables, JSON in text
/// columns, NULLs, non-ASCII text, and deleted rows so that `sqlite_sequence` is ahead of the
/// row counts. `clips` scales it (3000 clips is about 5 MB).
pub fn realistic_database(clips: usize) -> Vec<u8> {
    realistic_database_with(clips, 10)
}

/// [`realistic_database`] with `clips_per_project` clips in each project.
pub fn realistic_database_with(clips: usize, clips_per_project: usize) -> Vec<u8> {
    let mut conn = app_database();
    let tx = conn.transaction().expect("a transaction");
    let region = r##"[{"id": "r1", "raw_start_frame": 3, "raw_end_frame": 90, "duration_seconds": 2.9, "keyframes": [{"raw_frame": 3, "raw_x": 512.5, "raw_y": 300.25, "raw_radiusX": 30.0, "raw_radiusY": 50.0, "opacity": 0.15, "color": "#FFFF00", "player_image_path": null}]}]"##;
    for game in 1..=20 {
        tx.execute(
            "INSERT INTO games (name, opponent_name, game_date, game_type, tournament_name, video_size, brilliant_count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                format!("Spiel {game} – Fußball ⚽.mp4"),
                if game % 3 == 0 { None } else { Some(format!("Équipe {game}")) },
                format!("2025-{:02}-{:02}", game % 12 + 1, game % 28 + 1),
                ["home", "away", "tournament"][game % 3],
                if game % 3 == 2 { Some("Coupe d'hiver") } else { None },
                if game % 2 == 0 { Some(1_000_000 + game as i64) } else { None },
                game as i64 % 4,
            ],
        )
        .expect("a game");
    }
    for clip in 1..=clips {
        tx.execute(
            "INSERT INTO raw_clips (filename, rating, tags, name, notes, start_time, end_time, game_id, default_highlight_regions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![
                format!("{clip:012x}.mp4"),
                (clip % 5 + 1) as i64,
                r#"["Goals", "D\u00e9fense"]"#,
                if clip % 4 == 0 { String::new() } else { format!("Clip {clip} — «beau»") },
                if clip % 2 == 0 { None } else { Some("notes ".repeat(30)) },
                clip as f64 * 1.5,
                clip as f64 * 1.5 + 4.25,
                (clip % 20 + 1) as i64,
                region,
            ],
        )
        .expect("a clip");
        if (clip - 1) % clips_per_project == 0 {
            tx.execute(
                "INSERT INTO projects (name, aspect_ratio, current_mode) VALUES (?1, '9:16', ?2)",
                rusqlite::params![
                    format!("Projet {clip}"),
                    if clip % 20 == 1 {
                        None
                    } else {
                        Some("overlay")
                    }
                ],
            )
            .expect("a project");
        }
        let project = ((clip - 1) / clips_per_project + 1) as i64;
        tx.execute(
            "INSERT INTO working_clips (project_id, raw_clip_id, sort_order, version, crop_data, exported_at)
             VALUES (?1, ?2, ?3, 1, ?4, ?5)",
            rusqlite::params![
                project,
                clip as i64,
                ((clip - 1) % clips_per_project) as i64,
                r#"[{"time": 0.0, "x": 10, "y": 20, "width": 540, "height": 960}]"#,
                if clip % 3 == 0 { Some("2026-01-02 03:04:05") } else { None },
            ],
        )
        .expect("a working clip");
    }
    tx.execute_batch(
        r#"INSERT INTO working_videos (project_id, filename, version, highlights_data, text_overlays)
               SELECT id, 'working_' || id || '.mp4', 1, '[{"id": "h", "start_time": 0.5}]', '[]' FROM projects;
           INSERT INTO final_videos (project_id, filename, version, source_type, rating_counts)
               SELECT id, 'final_' || id || '.mp4', 1, 'custom_project', NULL FROM projects;
           INSERT INTO final_videos (project_id, filename, version, source_type, game_id, name, rating_counts)
               VALUES (0, 'annotated.mp4', 1, 'annotated_game', 3, 'Spiel 3 (Annotated)',
                       '{"brilliant": 1, "good": 2, "interesting": 0, "mistake": 0, "blunder": 1}');
           INSERT INTO export_jobs (id, project_id, type, status, input_data, error)
               SELECT 'export_' || printf('%012x', id), id, 'framing', 'error', '{}', 'Server restarted during processing' FROM projects;
           INSERT INTO before_after_tracks (final_video_id, raw_clip_id, source_path, start_frame, end_frame, clip_index)
               SELECT f.id, 1, '/data/raw_clips/x.mp4', 0, 90, 0 FROM final_videos f;
           DELETE FROM raw_clips WHERE id % 97 = 0;
           DELETE FROM games WHERE id = 20;
           DELETE FROM projects WHERE id = (SELECT MAX(id) FROM projects);"#,
    )
    .expect("the rest of the tables");
    tx.commit().expect("commit");
    into_file(conn)
}

/// Every row of `table` in a SQLite file, in rowid order, values rendered by SQLite's `quote()`.
pub fn table_rows(file: &[u8], table: &str) -> Vec<String> {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, file, file.len(), true)
        .unwrap();
    let columns: Vec<String> = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .unwrap()
        .query_map([], |row| row.get::<_, String>(1))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let rendered = columns
        .iter()
        .map(|c| format!("quote(\"{c}\")"))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let mut statement = conn
        .prepare(&format!("SELECT {rendered} FROM {table} ORDER BY rowid"))
        .unwrap();
    let rows = statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

/// The `sqlite_sequence` entry of `table` in a SQLite file.
pub fn sequence_of(file: &[u8], table: &str) -> i64 {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, file, file.len(), true)
        .unwrap();
    conn.query_row(
        "SELECT seq FROM sqlite_sequence WHERE name = ?1",
        [table],
        |row| row.get(0),
    )
    .unwrap()
}

/// A realistic database (see [`realistic_database`]) of about `bytes` bytes (within a few
/// percent) with 20 projects whatever its size: a list of projects then returns the same data at
/// every size, and only the clips and their data grow.
pub fn realistic_database_of_size(bytes: usize) -> Vec<u8> {
    let of_clips = |clips: usize| realistic_database_with(clips, clips.div_ceil(20));
    let scaled =
        |clips: usize, size: usize| ((clips as f64 * bytes as f64 / size as f64) as usize).max(20);
    // The size is nearly linear in the clip count (a little more per clip as the b-trees grow):
    // estimate from a sample of the same shape, then correct once.
    let estimate = scaled(1000, of_clips(1000).len());
    let first = of_clips(estimate);
    let corrected = scaled(estimate, first.len());
    if corrected == estimate {
        first
    } else {
        of_clips(corrected)
    }
}

/// An HS256 sign-in token for `user`, valid for ten minutes, signed with `secret` by the real
/// `openssl` (for a Worker in `jwt` mode with `AUTH_JWT_SECRET`).
pub fn hs256_token(secret: &str, user: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use std::io::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    let part = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let input = format!(
        "{}.{}",
        part(serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        part(serde_json::json!({"sub": user, "exp": now + 600}))
    );
    let key = format!("key:{secret}");
    let mut openssl = Command::new("openssl")
        .args([
            "dgst", "-sha256", "-mac", "HMAC", "-macopt", &key, "-binary",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    openssl
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input.as_bytes())
        .expect("openssl reads the input");
    let signature = openssl.wait_with_output().expect("openssl signs").stdout;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[cfg(test)]
mod inspector_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_heap_reading_is_an_error_never_zero() {
        let failed = json!({"id": 3, "error": {"code": -32000, "message": "no isolate"}});
        assert!(result_of(&failed).is_err());
        assert!(result_of(&json!({"id": 3})).is_err());
        assert!(heap_usage_of(&json!({})).is_err());
        assert!(heap_usage_of(&json!({"usedSize": 10.0})).is_err());
        let read = json!({"id": 3, "result": {"usedSize": 10.0, "backingStorageSize": 2.0}});
        let heap = heap_usage_of(&result_of(&read).unwrap()).unwrap();
        assert_eq!((heap.used, heap.array_buffers), (10, 2));
    }
}
