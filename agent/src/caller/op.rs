//! Operation classes: the unit of the caller ACL.

use serde::{Serialize, Serializer};

/// A class of socket operations granted together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Op {
    /// Permission checks and the permission listing.
    Check = 1 << 0,
    /// Issuing, refreshing and verifying tokens; revoking sessions.
    Tokens = 1 << 1,
    /// MFA enrolment and verification.
    Mfa = 1 << 2,
    /// Webhook verification and signing; idempotency keys.
    Webhooks = 1 << 3,
    /// Recording audit events.
    AuditWrite = 1 << 4,
    /// Reading the audit log.
    AuditRead = 1 << 5,
    /// Status details (keys, audit head, policy errors).
    Status = 1 << 6,
    /// Reloads, key rotation and other operator actions.
    Admin = 1 << 7,
}

impl Op {
    pub const ALL: [Op; 8] = [
        Op::Check,
        Op::Tokens,
        Op::Mfa,
        Op::Webhooks,
        Op::AuditWrite,
        Op::AuditRead,
        Op::Status,
        Op::Admin,
    ];

    pub const ALL_NAMES: [&'static str; 9] = [
        "check",
        "tokens",
        "mfa",
        "webhooks",
        "audit_write",
        "audit_read",
        "status",
        "admin",
        "all",
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Check => "check",
            Op::Tokens => "tokens",
            Op::Mfa => "mfa",
            Op::Webhooks => "webhooks",
            Op::AuditWrite => "audit_write",
            Op::AuditRead => "audit_read",
            Op::Status => "status",
            Op::Admin => "admin",
        }
    }

    fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// A set of operation classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpSet(u16);

impl OpSet {
    pub const EMPTY: OpSet = OpSet(0);
    pub const ALL: OpSet = OpSet(u16::MAX);

    /// Parses names from the config; `"all"` grants every class, including
    /// ones added in later versions. Returns the first unknown name.
    pub fn parse(names: &[String]) -> Result<OpSet, String> {
        let mut set = OpSet::EMPTY;
        for name in names {
            if name == "all" {
                set = OpSet::ALL;
            } else {
                let op = Op::from_name(name).ok_or_else(|| name.clone())?;
                set.0 |= op as u16;
            }
        }
        Ok(set)
    }

    pub fn contains(self, op: Op) -> bool {
        self.0 & op as u16 != 0
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn from_bits(bits: u16) -> OpSet {
        OpSet(bits)
    }

    pub fn union(self, other: OpSet) -> OpSet {
        OpSet(self.0 | other.0)
    }

    pub fn names(self) -> Vec<&'static str> {
        if self == OpSet::ALL {
            return vec!["all"];
        }
        Op::ALL
            .into_iter()
            .filter(|op| self.contains(*op))
            .map(Op::name)
            .collect()
    }
}

impl Serialize for OpSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}
