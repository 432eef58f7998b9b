//! Audit events and their canonical encoding.
//!
//! The chain hashes bytes, so the encoding is part of the log's format and
//! must never change silently. **Canonical encoding, version 1**: UTF-8 JSON,
//! no insignificant whitespace, object keys sorted by their UTF-8 bytes at
//! every depth, every top-level field present (absent optional values are
//! `null`), strings escaped minimally as `serde_json` does (`"`, `\`, and
//! control characters), integers in plain decimal, floats (only possible in
//! `attrs`) in shortest round-trip form. Top-level fields: `action`, `attrs`,
//! `host`, `identity` {`pid`, `roles`, `session`, `uid`, `user`}, `kid`,
//! `kind`, `org_id`, `outcome`, `permission`, `reason`, `seq`, `target`,
//! `ts_ms`, `v` (= 1). Verification hashes the stored bytes as they are, and
//! also checks they decode to a record whose `seq` and `host` match the row,
//! so moved or re-labelled records are caught.
//!
//! Encoding runs on the caller's thread, split around `seq` (which only the
//! writer knows), so the writer thread only concatenates and hashes.

use super::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Version of the canonical encoding written into every record (`v`).
pub const ENCODING_VERSION: u32 = 1;

/// Kind prefixes only the agent itself records; events from the socket may
/// not use them, so an ERP process cannot forge a decision or a token event.
pub const RESERVED_KINDS: &[&str] = &[
    "decision", "token.", "session.", "key.", "policy.", "config.", "caller.", "mfa.", "webhook.",
    "audit.",
];

/// Checks the kind of an event that arrives from outside the agent.
pub fn check_external_kind(kind: &str) -> Result<(), Error> {
    check_token("kind", kind)?;
    match RESERVED_KINDS.iter().find(|p| kind.starts_with(*p)) {
        Some(p) => Err(Error::invalid(
            "kind",
            format!("kinds starting with {p:?} are recorded by the agent itself"),
        )),
        None => Ok(()),
    }
}

/// Longest free-text field (target, reason) in characters.
const MAX_TEXT: usize = 1024;
/// Longest identifier (user, session, org, permission, kid ...).
const MAX_ID: usize = 256;
/// Most roles on one identity.
const MAX_ROLES: usize = 64;
/// Largest encoded `attrs` object in bytes: records are evidence, not blobs.
const MAX_ATTRS_BYTES: usize = 16 * 1024;

/// Who acted: the ERP identity and the OS process that called the agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub user: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub session: Option<String>,
    /// Calling uid from SO_PEERCRED.
    pub uid: Option<u32>,
    /// Calling pid from SO_PEERCRED.
    pub pid: Option<u32>,
}

/// One event to record. `ts_ms` is filled from the recorder's clock when
/// absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// What happened, dotted lowercase: `decision`, `token.issue`,
    /// `erp.stock_adjust` ...
    pub kind: String,
    pub identity: Identity,
    pub permission: Option<String>,
    /// The action exercised on the permission (`read|write|approve|export`).
    pub action: Option<String>,
    pub org_id: Option<String>,
    /// Key id of the key or signature that proves the act.
    pub kid: Option<String>,
    pub target: Option<String>,
    /// `allow`, `deny`, `success`, `failure` ...
    pub outcome: String,
    pub reason: Option<String>,
    pub attrs: BTreeMap<String, Value>,
    pub ts_ms: Option<i64>,
}

/// A stored record as decoded from its canonical bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub action: Option<String>,
    pub attrs: BTreeMap<String, Value>,
    pub host: String,
    pub identity: Identity,
    pub kid: Option<String>,
    pub kind: String,
    pub org_id: Option<String>,
    pub outcome: String,
    pub permission: Option<String>,
    pub reason: Option<String>,
    pub seq: u64,
    pub target: Option<String>,
    pub ts_ms: i64,
    pub v: u32,
}

impl Record {
    /// Decodes canonical bytes.
    pub fn decode(bytes: &str) -> Result<Record, serde_json::Error> {
        serde_json::from_str(bytes)
    }
}

/// An event encoded up to `seq`: the record is `head + seq + tail`.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub head: String,
    pub tail: String,
    pub ts_ms: i64,
}

impl Encoded {
    /// Encoded size in bytes without the seq digits.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The full canonical record for `seq`.
    pub fn with_seq(&self, seq: u64) -> String {
        let mut out = String::with_capacity(self.len() + 20);
        out.push_str(&self.head);
        // Writing to a String cannot fail.
        let _ = write!(out, "{seq}");
        out.push_str(&self.tail);
        out
    }
}

fn check_token(field: &str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "must be 1-64 characters of a-z, 0-9, '.', '_', ':' or '-'",
        ))
    }
}

fn check_len(field: &str, value: &Option<String>, max: usize) -> Result<(), Error> {
    match value {
        Some(v) if v.is_empty() => {
            Err(Error::invalid(field, "must not be empty (omit it instead)"))
        }
        Some(v) if v.chars().count() > max => Err(Error::invalid(
            field,
            format!("longer than {max} characters"),
        )),
        _ => Ok(()),
    }
}

impl Event {
    /// Checks the event and encodes it canonically, stamping `now_ms` when
    /// the event carries no time.
    pub fn encode(mut self, host: &str, now_ms: i64) -> Result<Encoded, Error> {
        check_token("kind", &self.kind)?;
        check_token("outcome", &self.outcome)?;
        check_len("identity.user", &self.identity.user, MAX_ID)?;
        check_len("identity.session", &self.identity.session, MAX_ID)?;
        check_len("permission", &self.permission, MAX_ID)?;
        check_len("org_id", &self.org_id, MAX_ID)?;
        check_len("kid", &self.kid, MAX_ID)?;
        check_len("target", &self.target, MAX_TEXT)?;
        check_len("reason", &self.reason, MAX_TEXT)?;
        if let Some(action) = &self.action {
            check_token("action", action)?;
        }
        if self.identity.roles.len() > MAX_ROLES {
            return Err(Error::invalid(
                "identity.roles",
                format!("more than {MAX_ROLES} roles"),
            ));
        }
        for role in &self.identity.roles {
            check_len("identity.roles", &Some(role.clone()), MAX_ID)?;
        }
        // Roles are a set; sort so the same identity always encodes alike.
        self.identity.roles.sort();
        self.identity.roles.dedup();
        let ts_ms = self.ts_ms.unwrap_or(now_ms);
        if ts_ms < 0 {
            return Err(Error::invalid("ts_ms", "must not be before 1970"));
        }

        let mut attrs = String::new();
        canonical_object(&self.attrs, &mut attrs);
        if attrs.len() > MAX_ATTRS_BYTES {
            return Err(Error::invalid(
                "attrs",
                format!(
                    "encoded size {} exceeds {MAX_ATTRS_BYTES} bytes",
                    attrs.len()
                ),
            ));
        }

        let mut head = String::with_capacity(256 + attrs.len());
        head.push_str("{\"action\":");
        opt_str(&self.action, &mut head);
        head.push_str(",\"attrs\":");
        head.push_str(&attrs);
        head.push_str(",\"host\":");
        string(host, &mut head);
        head.push_str(",\"identity\":{\"pid\":");
        opt_num(self.identity.pid, &mut head);
        head.push_str(",\"roles\":[");
        for (i, role) in self.identity.roles.iter().enumerate() {
            if i > 0 {
                head.push(',');
            }
            string(role, &mut head);
        }
        head.push_str("],\"session\":");
        opt_str(&self.identity.session, &mut head);
        head.push_str(",\"uid\":");
        opt_num(self.identity.uid, &mut head);
        head.push_str(",\"user\":");
        opt_str(&self.identity.user, &mut head);
        head.push_str("},\"kid\":");
        opt_str(&self.kid, &mut head);
        head.push_str(",\"kind\":");
        string(&self.kind, &mut head);
        head.push_str(",\"org_id\":");
        opt_str(&self.org_id, &mut head);
        head.push_str(",\"outcome\":");
        string(&self.outcome, &mut head);
        head.push_str(",\"permission\":");
        opt_str(&self.permission, &mut head);
        head.push_str(",\"reason\":");
        opt_str(&self.reason, &mut head);
        head.push_str(",\"seq\":");

        let mut tail = String::with_capacity(64);
        tail.push_str(",\"target\":");
        opt_str(&self.target, &mut tail);
        let _ = write!(tail, ",\"ts_ms\":{ts_ms},\"v\":{ENCODING_VERSION}}}");
        Ok(Encoded { head, tail, ts_ms })
    }
}

fn string(s: &str, out: &mut String) {
    // serde_json's escaping of a plain &str cannot fail.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

fn opt_str(s: &Option<String>, out: &mut String) {
    match s {
        Some(s) => string(s, out),
        None => out.push_str("null"),
    }
}

fn opt_num(n: Option<u32>, out: &mut String) {
    match n {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}

fn canonical_object(map: &BTreeMap<String, Value>, out: &mut String) {
    // BTreeMap<String, _> iterates in byte order of the keys.
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(k, out);
        out.push(':');
        canonical(v, out);
    }
    out.push('}');
}

/// Writes `value` in canonical form (sorted keys, no whitespace).
pub fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, out);
                out.push(':');
                if let Some(v) = map.get(k) {
                    canonical(v, out);
                }
            }
            out.push('}');
        }
    }
}
