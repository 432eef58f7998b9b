"""The Warden client: one method per endpoint of the socket API.

Methods return the decoded JSON (typed with :mod:`warden._types`) and raise
the exception for the agent's error code, so callers never inspect statuses.
Secrets (tokens, refresh tokens, codes) are only ever sent in request bodies,
never in paths, and never appear in exception messages built here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote

from ._exceptions import ProtocolError
from ._transport import DEFAULT_TIMEOUT, Transport, decode, default_socket
from ._types import (
    AuditAppended,
    AuditEvent,
    AuditHead,
    CheckAnswer,
    CheckRequest,
    Health,
    Jwks,
    Resource,
    Subject,
    TaskToken,
    TokenPair,
    TokenVerification,
)

__all__ = ["Client"]


def _without_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _field(answer: Any, name: str, kind: type[Any]) -> Any:
    """``answer[name]`` if the answer is an object holding a ``kind`` there;
    anything else breaks the contract and is a :class:`ProtocolError`."""
    value = answer.get(name) if isinstance(answer, dict) else None
    # bool is an int subclass; a count must not be true/false.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"answer has no {kind.__name__} field {name!r}")
    return value


class Client:
    """A client for the agent on ``socket_path`` (default: ``WARDEN_SOCKET``,
    else ``/run/warden/warden.sock``).

    Thread-safe; keeps up to a few keep-alive connections open. Use it as a
    context manager or call :meth:`close` to close them.
    """

    def __init__(self, socket_path: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = socket_path or default_socket()
        self._transport = Transport(self.socket_path, timeout)

    def __repr__(self) -> str:
        return f"Client(socket_path={self.socket_path!r})"

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _get(self, path: str) -> Any:
        return self._transport.call("GET", path, idempotent=True)

    def _post(self, path: str, payload: Any, *, idempotent: bool = False) -> Any:
        return self._transport.call("POST", path, payload, idempotent=idempotent)

    # --- health and operations -------------------------------------------

    def health(self) -> Health:
        """``GET /v1/health``: ``{"status": "ok"}`` while the agent serves."""
        return cast(Health, self._get("/v1/health"))

    def ready(self) -> bool:
        """``GET /v1/ready``: whether a valid policy snapshot is loaded
        (``False`` on 503, any other error raises)."""
        resp = self._transport.request("GET", "/v1/ready", idempotent=True)
        if resp.status == 503:
            return False
        decode(resp)
        return True

    def status(self) -> dict[str, Any]:
        """``GET /v1/status``: policy, central store, audit, keys, uptime."""
        return cast(dict[str, Any], self._get("/v1/status"))

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text exposition."""
        resp = self._transport.request("GET", "/metrics", idempotent=True)
        if not 200 <= resp.status < 300:
            decode(resp)
        try:
            return resp.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"metrics are not UTF-8: {e}") from None

    def reload(self) -> dict[str, Any]:
        """``POST /v1/admin/reload``: reload the policy source now (``admin``)."""
        return cast(dict[str, Any], self._post("/v1/admin/reload", {}))

    # --- permission checks ------------------------------------------------

    def check(
        self,
        subject: Subject,
        permission: str,
        action: str,
        *,
        surface: str = "http",
        resource: Resource | Mapping[str, str] | None = None,
    ) -> CheckAnswer:
        """``POST /v1/check``. Allow only if ``answer["allow"]`` is true;
        any exception means deny (fail closed)."""
        payload = _without_none(
            subject=subject,
            permission=permission,
            action=action,
            surface=surface,
            resource=dict(resource) if resource is not None else None,
        )
        return cast(CheckAnswer, self._post("/v1/check", payload, idempotent=True))

    def check_batch(self, checks: Sequence[CheckRequest | Mapping[str, Any]]) -> list[CheckAnswer]:
        """``POST /v1/check/batch``: up to 1,000 checks, answers in order."""
        answer = self._post("/v1/check/batch", {"checks": [dict(c) for c in checks]}, idempotent=True)
        return cast(list[CheckAnswer], _field(answer, "results", list))

    def permissions(self) -> dict[str, Any]:
        """``GET /v1/permissions``: the permission registry."""
        return cast(dict[str, Any], self._get("/v1/permissions"))

    # --- tokens and sessions ----------------------------------------------

    def issue_tokens(
        self,
        user_id: str,
        org_id: str,
        amr: Sequence[str] = ("pwd",),
        *,
        device_id: str | None = None,
    ) -> TokenPair:
        """``POST /v1/tokens/issue``: a new session's access and refresh tokens."""
        payload = _without_none(user_id=user_id, org_id=org_id, amr=list(amr), device_id=device_id)
        return cast(TokenPair, self._post("/v1/tokens/issue", payload))

    def refresh_tokens(self, refresh_token: str) -> TokenPair:
        """``POST /v1/tokens/refresh``: rotate; the old refresh token dies.

        Never retried automatically: presenting the same refresh token twice
        raises :class:`~warden.RefreshReused` and revokes the session.
        """
        return cast(TokenPair, self._post("/v1/tokens/refresh", {"refresh_token": refresh_token}))

    def verify_token(self, token: str, *, audience: str | None = None) -> TokenVerification:
        """``POST /v1/tokens/verify``: ``{"valid": true, "claims": ...}`` or
        ``{"valid": false, "reason": ...}``."""
        payload = _without_none(token=token, audience=audience)
        return cast(TokenVerification, self._post("/v1/tokens/verify", payload, idempotent=True))

    def task_token(self, task: str, subject: Subject) -> TaskToken:
        """``POST /v1/tokens/task``: a short-lived token for Celery task ``task``."""
        return cast(TaskToken, self._post("/v1/tokens/task", {"task": task, "subject": subject}))

    def revoke_sessions(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        reason: str,
    ) -> int:
        """``POST /v1/sessions/revoke`` for a user's sessions or one session;
        returns how many were revoked."""
        if (user_id is None) == (session_id is None):
            raise ValueError("pass exactly one of user_id and session_id")
        payload = _without_none(user_id=user_id, session_id=session_id, reason=reason)
        return cast(int, _field(self._post("/v1/sessions/revoke", payload), "revoked", int))

    def jwks(self) -> Jwks:
        """``GET /v1/jwks``: every public key that may still verify a token."""
        return cast(Jwks, self._get("/v1/jwks"))

    # --- MFA ----------------------------------------------------------------

    def totp_enroll(self, user_id: str, org_id: str, *, account_name: str | None = None) -> dict[str, Any]:
        """``POST /v1/mfa/totp/enroll``: ``secret``, ``otpauth_uri``, ``qr_svg``."""
        payload = _without_none(user_id=user_id, org_id=org_id, account_name=account_name)
        return cast(dict[str, Any], self._post("/v1/mfa/totp/enroll", payload))

    def totp_confirm(self, user_id: str, org_id: str, code: str) -> dict[str, Any]:
        """``POST /v1/mfa/totp/confirm``: ``backup_codes`` (shown once)."""
        return cast(
            dict[str, Any],
            self._post("/v1/mfa/totp/confirm", {"user_id": user_id, "org_id": org_id, "code": code}),
        )

    def mfa_verify(
        self,
        user_id: str,
        org_id: str,
        *,
        code: str | None = None,
        backup_code: str | None = None,
        device: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/mfa/verify`` with a TOTP ``code`` or a ``backup_code``."""
        if (code is None) == (backup_code is None):
            raise ValueError("pass exactly one of code and backup_code")
        payload = _without_none(
            user_id=user_id,
            org_id=org_id,
            code=code,
            backup_code=backup_code,
            device=dict(device) if device is not None else None,
        )
        return cast(dict[str, Any], self._post("/v1/mfa/verify", payload))

    def mfa_requirement(self, user_id: str, org_id: str, device: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/mfa/requirement``: ``{"required": bool, "reason"}``."""
        payload = {"user_id": user_id, "org_id": org_id, "device": dict(device)}
        return cast(dict[str, Any], self._post("/v1/mfa/requirement", payload, idempotent=True))

    def mfa_revoke_devices(self, user_id: str, org_id: str, *, device_id: str | None = None) -> int:
        """``POST /v1/mfa/devices/revoke``: returns how many were revoked."""
        payload = _without_none(user_id=user_id, org_id=org_id, device_id=device_id)
        return cast(int, _field(self._post("/v1/mfa/devices/revoke", payload), "revoked", int))

    def mfa_reset(self, user_id: str, org_id: str, reason: str) -> dict[str, Any]:
        """``POST /v1/mfa/reset`` (``admin``)."""
        payload = {"user_id": user_id, "org_id": org_id, "reason": reason}
        return cast(dict[str, Any], self._post("/v1/mfa/reset", payload))

    # --- webhooks and idempotency -------------------------------------------

    def webhook_verify(self, integration: str, raw_body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """``POST /v1/webhooks/{integration}/verify``: ``raw_body`` byte for
        byte, with the inbound signature headers forwarded unchanged."""
        path = f"/v1/webhooks/{quote(integration, safe='')}/verify"
        resp = self._transport.request("POST", path, raw_body, headers, idempotent=False)
        return cast(dict[str, Any], decode(resp))

    def webhook_sign(self, integration: str, raw_body: bytes) -> dict[str, str]:
        """``POST /v1/webhooks/{integration}/sign``: headers to attach."""
        path = f"/v1/webhooks/{quote(integration, safe='')}/sign"
        answer = decode(self._transport.request("POST", path, raw_body))
        return cast(dict[str, str], _field(answer, "headers", dict))

    def idempotency_claim(self, scope: str, key: str, ttl_seconds: int) -> dict[str, Any]:
        """``POST /v1/idempotency/claim``: ``claimed``, ``in_progress`` or ``completed``."""
        payload = {"scope": scope, "key": key, "ttl_seconds": ttl_seconds}
        return cast(dict[str, Any], self._post("/v1/idempotency/claim", payload))

    def idempotency_complete(self, scope: str, key: str, result: Any) -> dict[str, Any]:
        """``POST /v1/idempotency/complete``."""
        payload = {"scope": scope, "key": key, "result": result}
        return cast(dict[str, Any], self._post("/v1/idempotency/complete", payload))

    # --- audit ----------------------------------------------------------------

    def append_audit_events(self, events: Sequence[AuditEvent | Mapping[str, Any]]) -> AuditAppended:
        """``POST /v1/audit/events``: answered once the events are durable."""
        payload = {"events": [dict(e) for e in events]}
        return cast(AuditAppended, self._post("/v1/audit/events", payload))

    def audit_head(self) -> AuditHead:
        """``GET /v1/audit/head``: the chain head and last signed checkpoint."""
        return cast(AuditHead, self._get("/v1/audit/head"))
