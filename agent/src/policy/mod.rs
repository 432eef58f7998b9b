//! The permission registry and the decision engine.
//!
//! Why a separate, pure module: every HTTP route, Celery task, CLI command and
//! bot command asks "may this identity do this action on this permission, for
//! this org's data?" thousands of times a second, so the answer must cost
//! microseconds and must never depend on the file system, the database or the
//! async runtime being healthy. This module therefore does no I/O and never
//! sees tokio: it parses registry text handed to it as `(file name, text)`
//! pairs, validates it (reporting every problem at once, with file and line),
//! and compiles it into an immutable [`Snapshot`] whose lookups allocate
//! nothing and take no lock. Loading files, watching them, caching the last
//! good registry and publishing snapshots is `crate::sync`'s job.
//!
//! Fail closed: unknown permissions, actions, subjects and roles deny; a
//! registry that does not validate is never compiled, so a bad edit can only
//! keep the previous snapshot serving, never open access.

mod cases;
mod compile;
mod decide;
mod diff;
mod error;
mod hash;
mod model;

pub use cases::{parse_cases, run_cases, Case, CaseOutcome, CaseReport, CaseSubject, ResourceSpec};
pub use compile::{GrantSource, PermissionInfo, Snapshot, DEFAULT_LOCKOUT_SHARE};
pub use decide::{Decision, Matched, Principal, Reason, Request, Resource, Subject, TraceStep};
pub use diff::{changed_users, diff, lockout, GrantChange, LockoutWarning, RoleChange};
pub use error::{Error, Problem};
pub use model::{Action, Mode, Scope, SourceFile, Surface, UserKind};

/// Parses, validates and compiles registry files in one step: the usual entry
/// point for the file source, the CLI and tests.
pub fn load(files: &[SourceFile]) -> Result<Snapshot, Error> {
    let registry = model::parse(files)?;
    compile::compile(&registry, files)
}

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
