//! Audit errors. Each variant maps to exactly one API answer (`api/error.rs`):
//! the distinction that matters to callers is "your event is wrong" (400)
//! versus "nothing was recorded, fail closed" (503), never a silent success.

/// What went wrong while recording, shipping or verifying audit records.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent an event the log will not store.
    #[error("invalid audit event: {field}: {reason}")]
    InvalidEvent { field: String, reason: String },
    /// Policy `block` at the unshipped cap, or policy `alert` at the hard
    /// limit: the record is refused, never silently dropped.
    #[error("audit log is full: {unshipped} records ({bytes} bytes) not yet shipped, limit {limit}; refusing to record (fail closed)")]
    Backpressure {
        unshipped: u64,
        bytes: u64,
        limit: String,
    },
    /// The writer could not make records durable; nothing was acknowledged.
    #[error("audit log write failed: {0}")]
    Write(String),
    /// The writer thread is gone (shutting down or crashed).
    #[error("audit recorder is not running")]
    Stopped,
    #[error("audit store: {0}")]
    Store(#[from] crate::store::Error),
    #[error("audit sink {sink}: {reason}")]
    Sink { sink: String, reason: String },
    #[error("checkpoint signing failed: {0}")]
    Signing(String),
    /// An inclusion proof cannot be given (not yet checkpointed, pruned ...).
    #[error("no proof available: {0}")]
    Proof(String),
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidEvent {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
