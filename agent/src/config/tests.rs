use super::*;

fn env() -> Env {
    Env::default()
}

fn parse(text: &str) -> Result<Config, Error> {
    Config::parse(text, Source::Embedded, &env())
}

const MINIMAL: &str = r#"
[server]
socket = "/tmp/w.sock"
[state]
dir = "/tmp/w"
"#;

#[test]
fn embedded_dev_config_is_valid() {
    let c = Config::load(&Source::Embedded, &env()).unwrap();
    assert_eq!(c.mode, Mode::Development);
    assert_eq!(c.server.socket, PathBuf::from("./var/warden.sock"));
    assert_eq!(c.server.socket_mode, 0o660);
}

#[test]
fn production_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/warden.toml");
    let c = Config::load(&Source::File(path), &env()).unwrap();
    assert_eq!(c.mode, Mode::Production);
    assert_eq!(c.server.socket, PathBuf::from("/run/warden/warden.sock"));
    assert_eq!(c.state.dir, PathBuf::from("/var/lib/warden"));
}

#[test]
fn defaults_fill_in() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.mode, Mode::Production);
    assert_eq!(c.server.max_body_bytes, 1024 * 1024);
    assert_eq!(
        c.server.header_read_timeout,
        std::time::Duration::from_secs(5)
    );
    assert!(c.callers.rules.is_empty());
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
mode = "staging"
typo_at_top = 1
[server]
socket = "/tmp/w.sock"
idle_timout = "5s"
header_read_timeout = "soon"
socket_mode = "999"
[state]
dir = "/tmp/w"
[log]
format = "xml"
"#;
    let Err(Error::Invalid { problems, .. }) = parse(text) else {
        panic!("expected invalid")
    };
    let all = problems.to_string();
    for needle in [
        "typo_at_top",
        "server.idle_timout",
        "mode",
        "header_read_timeout",
        "socket_mode",
        "log.format",
    ] {
        assert!(all.contains(needle), "missing {needle} in:\n{all}");
    }
    assert_eq!(problems.items().len(), 6, "{all}");
}

#[test]
fn type_errors_name_the_line() {
    let err = parse("[server]\nsocket = 5\n[state]\ndir = \"/x\"\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line 2"), "{text}");
}

#[test]
fn environment_overrides_win() {
    let env = Env::from_pairs([
        (env::SOCKET, "/tmp/other.sock"),
        (env::STATE_DIR, "/tmp/other"),
        (env::LOG, "debug"),
    ]);
    let c = Config::parse(MINIMAL, Source::Embedded, &env).unwrap();
    assert_eq!(c.server.socket, PathBuf::from("/tmp/other.sock"));
    assert_eq!(c.state.dir, PathBuf::from("/tmp/other"));
    assert_eq!(c.log.level, "debug");
}

#[test]
fn missing_required_options_are_named() {
    let Err(Error::Invalid { problems, .. }) = parse("") else {
        panic!("expected invalid")
    };
    let all = problems.to_string();
    assert!(
        all.contains("server.socket") && all.contains("state.dir"),
        "{all}"
    );
}

#[test]
fn overlong_socket_path_is_rejected() {
    let long = format!(
        "[server]\nsocket = \"/tmp/{}\"\n[state]\ndir = \"/x\"\n",
        "a".repeat(120)
    );
    assert!(parse(&long).unwrap_err().to_string().contains("107 bytes"));
}

#[test]
fn source_resolution_prefers_flag_then_env() {
    let env = Env::from_pairs([(env::CONFIG, "/etc/warden/warden.toml")]);
    assert_eq!(
        Source::resolve(Some(Path::new("/a.toml")), &env),
        Source::File("/a.toml".into())
    );
    assert_eq!(
        Source::resolve(None, &env),
        Source::File("/etc/warden/warden.toml".into())
    );
    assert_eq!(Source::resolve(None, &Env::default()), Source::Embedded);
}

#[test]
fn effective_config_round_trips() {
    let c = parse(MINIMAL).unwrap();
    let text = c.to_toml();
    assert!(text.contains("idle_timeout = \"1m\""), "{text}");
    assert!(text.contains("socket_mode = \"0660\""), "{text}");
}
