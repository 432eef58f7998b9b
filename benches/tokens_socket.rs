//! Token latencies over the socket against the real `warden` binary:
//! `/v1/health` as the floor, verification of a repeated (cached) token and
//! of first-seen tokens, issue and refresh. One keep-alive connection, one
//! request at a time; prints p50/p99.
//!
//! `cargo bench --bench tokens_socket` (`-- --quick` for fewer samples).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    fn connect(path: &std::path::Path) -> std::io::Result<Conn> {
        let s = UnixStream::connect(path)?;
        Ok(Conn {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    fn call(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: warden\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut buf = vec![0u8; len];
        self.reader.read_exact(&mut buf).unwrap();
        (status, buf)
    }

    fn post(&mut self, path: &str, body: &Value) -> Value {
        let (status, bytes) = self.call("POST", path, body.to_string().as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        serde_json::from_slice(&bytes).unwrap()
    }
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name:<40} n={:<6} p50={:>9.2?} p99={:>9.2?}",
        samples.len(),
        p(0.50),
        p(0.99)
    );
}

fn timed(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    for i in 0..n / 10 {
        f(i);
    }
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect()
}

struct Agent {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 1_000 } else { 10_000 };
    let dir = tempfile::Builder::new()
        .prefix("wb")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let socket = dir.path().join("s.sock");
    // The example registry plus 100 bench users in acme.
    let policies = dir.path().join("policies");
    copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policies"),
        &policies,
    );
    let mut users = std::fs::read_to_string(policies.join("directory.toml")).unwrap();
    for i in 0..100 {
        users.push_str(&format!(
            "\n[[user]]\nid = \"u-{i}\"\nname = \"Bench User {i}\"\nmemberships = [\n  {{ org = \"acme\", roles = [\"inventory_clerk\"] }},\n]\n"
        ));
    }
    std::fs::write(policies.join("directory.toml"), users).unwrap();
    let config = format!(
        "mode = \"development\"\n[server]\nsocket = \"{}\"\n[state]\ndir = \"{}\"\n[log]\nlevel = \"warn\"\n[policy]\ndir = \"{}\"\n[[callers]]\nagent_user = true\nallow = [\"all\"]\n",
        socket.display(),
        dir.path().join("state").display(),
        policies.display()
    );
    std::fs::write(dir.path().join("warden.toml"), config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--config"])
        .arg(dir.path().join("warden.toml"))
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _agent = Agent { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if let Ok(mut c) = Conn::connect(&socket) {
            if c.call("GET", "/v1/health", b"").0 == 200 {
                break c;
            }
        }
        assert!(Instant::now() < deadline, "agent did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let login = |c: &mut Conn, i: usize| {
        c.post(
            "/v1/tokens/issue",
            &json!({"user_id": format!("u-{}", i % 100), "org_id": "acme", "amr": ["pwd"]}),
        )
    };

    report(
        "GET /v1/health (floor)",
        timed(n, |_| {
            c.call("GET", "/v1/health", b"");
        }),
    );
    let issue_n = n / 5;
    report(
        "POST /v1/tokens/issue",
        timed(issue_n, |i| {
            login(&mut c, i);
        }),
    );
    let fresh: Vec<String> = (0..n + n / 10)
        .map(|i| {
            login(&mut c, i)["access_token"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let bodies: Vec<Vec<u8>> = fresh
        .iter()
        .map(|t| json!({ "token": t }).to_string().into_bytes())
        .collect();
    let mut next = 0;
    report(
        "POST /v1/tokens/verify, first seen",
        timed(n, |_| {
            let (s, _) = c.call("POST", "/v1/tokens/verify", &bodies[next]);
            assert_eq!(s, 200);
            next += 1;
        }),
    );
    let repeated = bodies[0].clone();
    report(
        "POST /v1/tokens/verify, repeated",
        timed(n, |_| {
            let (s, _) = c.call("POST", "/v1/tokens/verify", &repeated);
            assert_eq!(s, 200);
        }),
    );
    report(
        "GET /v1/health (floor, again)",
        timed(n, |_| {
            c.call("GET", "/v1/health", b"");
        }),
    );
    let mut refresh: Vec<String> = (0..issue_n + issue_n / 10)
        .map(|i| {
            login(&mut c, i)["refresh_token"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut k = 0;
    report(
        "POST /v1/tokens/refresh",
        timed(issue_n, |_| {
            let v = c.post("/v1/tokens/refresh", &json!({"refresh_token": refresh[k]}));
            refresh[k] = v["refresh_token"].as_str().unwrap().to_string();
            k += 1;
        }),
    );
}
