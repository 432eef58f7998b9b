//! The route table: path and method to handler, with the operation class the
//! caller ACL requires. `None` means open to anyone who can open the socket
//! (health, readiness, metrics; see API.md).

use crate::caller::Op;
use hyper::Method;

/// Every endpoint the agent serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Ready,
    Status,
    Metrics,
    AdminReload,
    AuditEvents,
    AuditHead,
    AuditProof,
    AuditConsistency,
    TokensIssue,
    TokensRefresh,
    TokensVerify,
    TokensTask,
    SessionsRevoke,
    Jwks,
    AdminKeys,
    AdminKeysRotate,
    AdminKeysRollback,
    AdminKeysRetire,
    AdminTestClock,
    Check,
    CheckBatch,
    Permissions,
}

impl Route {
    /// All routes, indexed by `as usize`; used to pre-resolve metrics.
    pub const ALL: &'static [Route] = &[
        Route::Health,
        Route::Ready,
        Route::Status,
        Route::Metrics,
        Route::AdminReload,
        Route::AuditEvents,
        Route::AuditHead,
        Route::AuditProof,
        Route::AuditConsistency,
        Route::TokensIssue,
        Route::TokensRefresh,
        Route::TokensVerify,
        Route::TokensTask,
        Route::SessionsRevoke,
        Route::Jwks,
        Route::AdminKeys,
        Route::AdminKeysRotate,
        Route::AdminKeysRollback,
        Route::AdminKeysRetire,
        Route::AdminTestClock,
        Route::Check,
        Route::CheckBatch,
        Route::Permissions,
    ];

    /// The label used in metrics and logs: the path pattern, never the raw
    /// path, so label cardinality stays bounded.
    pub fn name(self) -> &'static str {
        match self {
            Route::Health => "/v1/health",
            Route::Ready => "/v1/ready",
            Route::Status => "/v1/status",
            Route::Metrics => "/metrics",
            Route::AdminReload => "/v1/admin/reload",
            Route::AuditEvents => "/v1/audit/events",
            Route::AuditHead => "/v1/audit/head",
            Route::AuditProof => "/v1/audit/proof",
            Route::AuditConsistency => "/v1/audit/consistency",
            Route::TokensIssue => "/v1/tokens/issue",
            Route::TokensRefresh => "/v1/tokens/refresh",
            Route::TokensVerify => "/v1/tokens/verify",
            Route::TokensTask => "/v1/tokens/task",
            Route::SessionsRevoke => "/v1/sessions/revoke",
            Route::Jwks => "/v1/jwks",
            Route::AdminKeys => "/v1/admin/keys",
            Route::AdminKeysRotate => "/v1/admin/keys/rotate",
            Route::AdminKeysRollback => "/v1/admin/keys/rollback",
            Route::AdminKeysRetire => "/v1/admin/keys/retire",
            Route::AdminTestClock => "/v1/admin/test/clock",
            Route::Check => "/v1/check",
            Route::CheckBatch => "/v1/check/batch",
            Route::Permissions => "/v1/permissions",
        }
    }

    pub fn method(self) -> Method {
        match self {
            Route::Health
            | Route::Ready
            | Route::Status
            | Route::Metrics
            | Route::AuditHead
            | Route::AuditProof
            | Route::AuditConsistency
            | Route::Jwks
            | Route::AdminKeys
            | Route::Permissions => Method::GET,
            Route::AdminReload
            | Route::AuditEvents
            | Route::TokensIssue
            | Route::TokensRefresh
            | Route::TokensVerify
            | Route::TokensTask
            | Route::SessionsRevoke
            | Route::AdminKeysRotate
            | Route::AdminKeysRollback
            | Route::AdminKeysRetire
            | Route::AdminTestClock
            | Route::Check
            | Route::CheckBatch => Method::POST,
        }
    }

    pub fn op(self) -> Option<Op> {
        match self {
            // The JWKS holds public keys only; any verifier may fetch it.
            Route::Health | Route::Ready | Route::Metrics | Route::Jwks => None,
            Route::Status => Some(Op::Status),
            Route::AuditEvents => Some(Op::AuditWrite),
            Route::AuditHead | Route::AuditProof | Route::AuditConsistency => Some(Op::AuditRead),
            Route::TokensIssue
            | Route::TokensRefresh
            | Route::TokensVerify
            | Route::TokensTask
            | Route::SessionsRevoke => Some(Op::Tokens),
            Route::AdminReload
            | Route::AdminKeys
            | Route::AdminKeysRotate
            | Route::AdminKeysRollback
            | Route::AdminKeysRetire
            | Route::AdminTestClock => Some(Op::Admin),
            Route::Check | Route::CheckBatch | Route::Permissions => Some(Op::Check),
        }
    }

    /// Whether the handler reads a request body.
    pub fn has_body(self) -> bool {
        self.method() == Method::POST
    }

    /// Finds the route for a path, ignoring the method.
    pub fn find(path: &str) -> Option<Route> {
        Some(match path {
            "/v1/health" => Route::Health,
            "/v1/ready" => Route::Ready,
            "/v1/status" => Route::Status,
            "/metrics" => Route::Metrics,
            "/v1/admin/reload" => Route::AdminReload,
            "/v1/audit/events" => Route::AuditEvents,
            "/v1/audit/head" => Route::AuditHead,
            "/v1/audit/proof" => Route::AuditProof,
            "/v1/audit/consistency" => Route::AuditConsistency,
            "/v1/tokens/issue" => Route::TokensIssue,
            "/v1/tokens/refresh" => Route::TokensRefresh,
            "/v1/tokens/verify" => Route::TokensVerify,
            "/v1/tokens/task" => Route::TokensTask,
            "/v1/sessions/revoke" => Route::SessionsRevoke,
            "/v1/jwks" => Route::Jwks,
            "/v1/admin/keys" => Route::AdminKeys,
            "/v1/admin/keys/rotate" => Route::AdminKeysRotate,
            "/v1/admin/keys/rollback" => Route::AdminKeysRollback,
            "/v1/admin/keys/retire" => Route::AdminKeysRetire,
            "/v1/admin/test/clock" => Route::AdminTestClock,
            "/v1/check" => Route::Check,
            "/v1/check/batch" => Route::CheckBatch,
            "/v1/permissions" => Route::Permissions,
            _ => return None,
        })
    }
}
