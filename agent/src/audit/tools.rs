//! The offline `warden audit` commands: tail, verify, export.
//!
//! They open the state database read-only and never talk to the running
//! agent, so they work on a stopped host, on a copy taken for an
//! investigation, and while the agent is down because its log was tampered
//! with. Output is JSON Lines in the sink's format (`ship.rs`), so what
//! `export` writes and what the sink shipped can be compared line by line.

use super::verify::{verify, Report, TrustedKeys};
use super::Error;
use crate::store::audit::AuditRow;
use crate::store::Store;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Exit status of `warden audit verify` when the log fails verification
/// (1 means "could not run", 2 is clap's usage error, 64 a bad config).
pub const EXIT_TAMPERED: u8 = 3;

fn io(e: std::io::Error) -> Error {
    Error::Sink {
        sink: "stdout".into(),
        reason: e.to_string(),
    }
}

/// One record as a JSON line: `{"hash","host","record","seq"}`.
pub fn json_line(host: &str, row: &AuditRow) -> String {
    let host = serde_json::to_string(host).unwrap_or_else(|_| "\"\"".into());
    format!(
        "{{\"hash\":\"{}\",\"host\":{host},\"record\":{},\"seq\":{}}}",
        hex::encode(&row.hash),
        row.record,
        row.seq
    )
}

/// Writes one line; `Ok(false)` when the reader went away (`| head`),
/// which ends the command normally rather than as an error.
fn emit(out: &mut dyn Write, line: &str) -> Result<bool, Error> {
    match writeln!(out, "{line}") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(io(e)),
    }
}

fn flush(out: &mut dyn Write) -> Result<bool, Error> {
    match out.flush() {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(io(e)),
    }
}

fn host_of(store: &Store) -> Result<String, Error> {
    Ok(store.meta(super::HOST_META_KEY)?.unwrap_or_default())
}

/// `warden audit verify [--from SEQ]`: prints a summary and returns the
/// report; the caller exits [`EXIT_TAMPERED`] unless it is ok.
pub fn verify_command(
    state_dir: &Path,
    from: Option<u64>,
    trusted: &TrustedKeys,
    out: &mut dyn Write,
) -> Result<Report, Error> {
    let store = Store::open_read_only(state_dir)?;
    // One snapshot: the agent may be appending or pruning meanwhile.
    store.audit_begin_snapshot()?;
    let report = verify(&store, from, trusted)?;
    store.audit_end_snapshot()?;
    let host = report.host.clone().unwrap_or_else(|| "?".into());
    match &report.problem {
        None => writeln!(
            out,
            "audit log ok: host {host}, records {}..{} ({} verified), {} signed checkpoints verified, {} records after the last checkpoint",
            report.first_seq, report.last_seq, report.records, report.checkpoints, report.unsigned_tail
        ),
        Some(p) => writeln!(
            out,
            "audit log FAILED verification at record {}: {p} ({} records and {} checkpoints before it verified)",
            p.seq(),
            report.records,
            report.checkpoints
        ),
    }
    .map_err(io)?;
    Ok(report)
}

/// `warden audit export --since TIME`: every record at or after `since_ms`
/// as JSON Lines. Returns the number written.
pub fn export(state_dir: &Path, since_ms: i64, out: &mut dyn Write) -> Result<u64, Error> {
    let store = Store::open_read_only(state_dir)?;
    let host = host_of(&store)?;
    let mut after = 0u64;
    let mut n = 0u64;
    loop {
        let rows = store.audit_since(since_ms, after, 5000)?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in &rows {
            if !emit(out, &json_line(&host, row))? {
                return Ok(n);
            }
            n += 1;
        }
    }
    flush(out)?;
    Ok(n)
}

/// `warden audit tail [-n N] [-f]`: the last `lines` records, then (with
/// `follow`) new ones as they commit, until `stop` says so.
pub fn tail(
    state_dir: &Path,
    lines: u64,
    follow: bool,
    poll: Duration,
    out: &mut dyn Write,
    stop: &dyn Fn() -> bool,
) -> Result<(), Error> {
    let store = Store::open_read_only(state_dir)?;
    let host = host_of(&store)?;
    let head = store.audit_last()?.map_or(0, |r| r.seq);
    let mut next = head.saturating_sub(lines) + 1;
    loop {
        let rows = store.audit_range(next, 5000)?;
        for row in &rows {
            if !emit(out, &json_line(&host, row))? {
                return Ok(());
            }
            next = row.seq + 1;
        }
        if !flush(out)? || !follow || stop() {
            return Ok(());
        }
        if rows.is_empty() {
            std::thread::sleep(poll);
        }
    }
}

/// Parses `--since`: an RFC 3339 time (`2026-12-04T20:00:00Z`) or a
/// duration meaning "that long ago" (`90m`, `7d`). Returns Unix ms.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| format!("--since {s:?} is before 1970"))?
            .as_millis();
        return i64::try_from(ms).map_err(|_| format!("--since {s:?} is out of range"));
    }
    match humantime::parse_duration(s) {
        Ok(d) => Ok(now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        Err(_) => Err(format!(
            "--since {s:?}: expected an RFC 3339 time (2026-12-04T20:00:00Z) or a duration (90m, 7d)"
        )),
    }
}
