//! Start, stop, restart: graceful drain, stale sockets, second instances, and
//! clear errors for an unusable state directory or database.

use crate::support::{short_tempdir, Daemon};
use std::time::Duration;

#[test]
fn sigterm_drains_a_request_in_flight() {
    let mut d = Daemon::start();
    let mut c = d.client();
    // Start a request whose body is still on its way when SIGTERM arrives.
    c.send_raw(b"POST /v1/admin/reload HTTP/1.1\r\nhost: w\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    d.signal(nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    // New connections are no longer accepted...
    assert!(crate::support::Client::connect(&d.socket)
        .and_then(|mut c| c.get("/v1/health"))
        .is_err());
    // ...but the in-flight request completes.
    c.send_raw(b"}").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(!d.socket.exists());
    assert!(d.log().contains("warden agent stopped"));
}

#[test]
fn a_stale_socket_from_a_crash_is_reclaimed() {
    let mut d = Daemon::start();
    d.kill();
    assert!(d.socket.exists(), "SIGKILL leaves the socket file behind");
    d.spawn(&[]);
    d.wait_healthy();
    assert!(d.log().contains("removing stale socket"));
}

#[test]
fn a_second_instance_on_the_same_socket_is_refused() {
    let d = Daemon::start();
    let (status, output) = d.run_again();
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("already serving"), "{output}");
    // The first one is untouched.
    assert_eq!(d.get("/v1/health").status, 200);
}

#[test]
fn a_non_socket_file_at_the_socket_path_is_not_replaced() {
    let dir = short_tempdir();
    let path = dir.path().join("s.sock");
    std::fs::write(&path, b"precious").unwrap();
    let (d, _) = Daemon::builder().in_dir(dir).prepare();
    let (status, output) = d.run_again();
    assert_eq!(status.code(), Some(1));
    assert!(output.contains("is not a socket"), "{output}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn an_unwritable_state_dir_is_a_clear_error() {
    let dir = short_tempdir();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let (d, _) = Daemon::builder()
        .set(
            "state.dir",
            blocker.join("state").to_string_lossy().to_string(),
        )
        .in_dir(dir)
        .prepare();
    let (status, output) = d.run_again();
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("state directory"), "{output}");
    assert!(
        !d.socket.exists(),
        "socket must be removed when start fails"
    );
}

#[test]
fn a_corrupt_database_is_a_clear_error() {
    let dir = short_tempdir();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("warden.db"), vec![0x5a; 16384]).unwrap();
    let (d, _) = Daemon::builder().in_dir(dir).prepare();
    let (status, output) = d.run_again();
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("corrupt"), "{output}");
}

#[test]
fn state_survives_a_restart() {
    let d = Daemon::start();
    let id = d.get("/v1/status").json()["host_id"].clone();
    let dir = d.into_dir();
    let d = Daemon::builder().in_dir(dir).start();
    assert_eq!(d.get("/v1/status").json()["host_id"], id);
}

#[test]
fn config_check_validates_and_prints_the_effective_config() {
    let root = crate::support::repo_root();
    let out = std::process::Command::new(crate::support::warden_bin())
        .args(["config", "check"])
        .arg(root.join("config/warden.toml"))
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/run/warden/warden.sock"), "{text}");

    let dir = short_tempdir();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "bogus = 1\n[server]\nsocket = \"/tmp/x\"\nidle_timeout = \"never\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::warden_bin())
        .args(["config", "check"])
        .arg(&bad)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let text = String::from_utf8_lossy(&out.stderr);
    for needle in ["bogus", "idle_timeout", "state.dir"] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
}

#[test]
fn serve_with_an_invalid_config_exits_64() {
    let dir = short_tempdir();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nsocket = 3\n").unwrap();
    let out = std::process::Command::new(crate::support::warden_bin())
        .args(["serve", "--config"])
        .arg(&bad)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn systemd_notify_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = short_tempdir();
    let notify_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut d = Daemon::builder()
        .in_dir(dir)
        .env("NOTIFY_SOCKET", notify_path.to_str().unwrap())
        .env("WATCHDOG_USEC", "200000")
        .start();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    // READY=1 first, then watchdog pings every ~100 ms.
    while seen
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 3
    {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("notification: {e}; seen {seen:?}; log:\n{}", d.log()));
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(seen[0].contains("READY=1"), "{seen:?}");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    loop {
        let n = sock.recv(&mut buf).expect("STOPPING=1 before exit");
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            break;
        }
    }
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}
