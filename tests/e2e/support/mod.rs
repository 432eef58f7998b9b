//! Test support: start the real `warden` binary and talk to it.
//!
//! [`Daemon`] writes a temporary config, state directory and short socket
//! path, starts `target/.../warden serve` with a cleared environment, waits
//! until the socket answers, and on drop sends SIGTERM and asserts the agent
//! exited cleanly (status 0, socket file removed). Every end-to-end test uses
//! it so they all exercise the same binary operators run.
#![allow(dead_code)]

mod http;

pub use http::{Client, Response};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn warden_bin() -> &'static str {
    env!("CARGO_BIN_EXE_warden")
}

/// Root of the repository (for `config/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds a daemon's config; options are dotted TOML paths.
pub struct Builder {
    table: toml::Table,
    env: Vec<(String, String)>,
    wait_ready: bool,
    own_registry: bool,
    dir: Option<tempfile::TempDir>,
}

/// A running agent.
pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    expect_clean_exit: bool,
}

/// Copies the example registry into `root/policies` (for tests that edit it).
pub fn copy_registry(root: &Path) -> PathBuf {
    let dir = root.join("policies");
    copy_tree(&repo_root().join("config/policies"), &dir);
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy file");
        }
    }
}

/// A short temp dir under /tmp: socket paths must fit in 107 bytes.
pub fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wd")
        .tempdir_in("/tmp")
        .expect("create temp dir")
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        let mut table = toml::Table::new();
        let base: toml::Table = toml::from_str(
            r#"
mode = "development"
[server]
socket_mode = "0660"
idle_timeout = "30s"
header_read_timeout = "2s"
body_read_timeout = "2s"
shutdown_grace = "5s"
[log]
format = "human"
level = "debug"
[[callers]]
name = "test"
agent_user = true
allow = ["all"]
"#,
        )
        .expect("base config");
        table.extend(base);
        // Every daemon serves the example registry unless a test says otherwise.
        let mut policy = toml::Table::new();
        policy.insert(
            "dir".into(),
            repo_root()
                .join("config/policies")
                .to_string_lossy()
                .to_string()
                .into(),
        );
        table.insert("policy".into(), toml::Value::Table(policy));
        Builder {
            table,
            env: Vec::new(),
            wait_ready: true,
            own_registry: false,
            dir: None,
        }
    }

    /// Sets a dotted option, e.g. `set("server.max_body_bytes", 64)`.
    pub fn set(mut self, path: &str, value: impl Into<toml::Value>) -> Builder {
        let mut parts: Vec<&str> = path.split('.').collect();
        let last = parts.pop().expect("non-empty path");
        let mut table = &mut self.table;
        for part in parts {
            table = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("path through tables");
        }
        table.insert(last.to_string(), value.into());
        self
    }

    /// Replaces the caller ACL with the given rules (TOML array of tables).
    pub fn callers(mut self, rules_toml: &str) -> Builder {
        #[derive(serde::Deserialize)]
        struct Wrap {
            callers: toml::Value,
        }
        let w: Wrap = toml::from_str(rules_toml).expect("caller rules");
        self.table.insert("callers".into(), w.callers);
        self
    }

    /// Removes every caller rule: only open endpoints remain reachable.
    pub fn no_callers(mut self) -> Builder {
        self.table.remove("callers");
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Reuse a directory (and its state) from an earlier daemon.
    pub fn in_dir(mut self, dir: tempfile::TempDir) -> Builder {
        self.dir = Some(dir);
        self
    }

    /// Serves a copy of the example registry in `<dir>/policies` (kept
    /// across restarts in the same dir) that the test may edit.
    pub fn own_registry(mut self) -> Builder {
        self.own_registry = true;
        self
    }

    pub fn no_wait(mut self) -> Builder {
        self.wait_ready = false;
        self
    }

    /// Writes the config and returns the paths, without starting anything.
    pub fn prepare(mut self) -> (Daemon, Vec<(String, String)>) {
        let tmp = self.dir.take().unwrap_or_else(short_tempdir);
        let dir = tmp.path().to_path_buf();
        let socket = dir.join("s.sock");
        let state_dir = dir.join("state");
        if self.own_registry {
            let policies = dir.join("policies");
            if !policies.exists() {
                copy_registry(&dir);
            }
            self = self.set("policy.dir", policies.to_string_lossy().to_string());
        }
        if self
            .table
            .get("server")
            .and_then(|s| s.get("socket"))
            .is_none()
        {
            self = self.set("server.socket", socket.to_string_lossy().to_string());
        }
        if self.table.get("state").and_then(|s| s.get("dir")).is_none() {
            self = self.set("state.dir", state_dir.to_string_lossy().to_string());
        }
        let config_path = dir.join("warden.toml");
        std::fs::write(
            &config_path,
            toml::to_string(&self.table).expect("render config"),
        )
        .expect("write config");
        let socket = PathBuf::from(
            self.table["server"]["socket"]
                .as_str()
                .expect("socket is a string"),
        );
        let state_dir = PathBuf::from(self.table["state"]["dir"].as_str().expect("dir"));
        (
            Daemon {
                child: None,
                log_path: dir.join("warden.log"),
                dir,
                socket,
                state_dir,
                config_path,
                _tmp: Some(tmp),
                expect_clean_exit: true,
            },
            self.env,
        )
    }

    /// Starts the agent and waits until it answers `/v1/health`.
    pub fn start(self) -> Daemon {
        let wait = self.wait_ready;
        let (mut daemon, env) = self.prepare();
        daemon.spawn(&env);
        if wait {
            daemon.wait_healthy();
        }
        daemon
    }
}

impl Daemon {
    /// A daemon on the default test config.
    pub fn start() -> Daemon {
        Builder::new().start()
    }

    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Runs `warden serve` on this daemon's config (again, after a stop).
    pub fn spawn(&mut self, env: &[(String, String)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open log");
        let mut cmd = Command::new(warden_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn warden"));
        self.expect_clean_exit = true;
    }

    /// Starts a second `warden serve` on the same config and waits for it to
    /// exit; returns its status and combined output.
    pub fn run_again(&self) -> (ExitStatus, String) {
        let out = Command::new(warden_bin())
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .current_dir(&self.dir)
            .env_clear()
            .output()
            .expect("run warden");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text)
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    /// Polls `/v1/health` until it answers 200 (or the process dies).
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("warden exited early with {status}; log:\n{}", self.log());
            }
            if let Ok(mut c) = Client::connect(&self.socket) {
                if let Ok(r) = c.get("/v1/health") {
                    if r.status == 200 {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "warden did not become healthy; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new connection to the agent.
    pub fn client(&self) -> Client {
        Client::connect(&self.socket).expect("connect to warden")
    }

    pub fn get(&self, path: &str) -> Response {
        self.client().get(path).expect("GET")
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.client().post_json(path, body).expect("POST")
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).expect("send signal");
    }

    /// Sends SIGTERM and waits for exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(20))
    }

    /// SIGKILL: no chance to clean up (crash tests).
    pub fn kill(&mut self) -> ExitStatus {
        self.signal(Signal::SIGKILL);
        self.expect_clean_exit = false;
        self.wait_exit(Duration::from_secs(20))
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("warden did not exit in time; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs a `warden` CLI subcommand against this daemon's socket.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(warden_bin())
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("WARDEN_SOCKET", &self.socket)
            .output()
            .expect("run warden cli")
    }

    /// Keeps the temp dir (state) for a follow-up daemon.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        if self.child.is_some() {
            let status = self.stop();
            assert!(status.success(), "warden exited with {status}");
        }
        self._tmp.take().expect("temp dir")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let status = self.stop();
        if std::thread::panicking() || !self.expect_clean_exit {
            return;
        }
        assert!(
            status.success(),
            "warden exited with {status} after SIGTERM; log:\n{}",
            self.log()
        );
        assert!(
            !Path::new(&self.socket).exists(),
            "socket file left behind after shutdown"
        );
    }
}
