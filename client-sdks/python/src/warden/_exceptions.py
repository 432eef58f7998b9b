"""Exceptions raised by the Warden client.

Every error the agent answers has a stable ``snake_case`` code (see the socket
API contract); each code maps to one exception class here so callers catch
what they mean (``except warden.NotFound``) instead of comparing strings.
Transport failures (no agent, timeouts, garbled answers) have their own
branch, because "the agent said no" and "the agent did not answer" call for
different handling: permission checks must fail closed on both.

    WardenError                 .code, .status, .message
    +-- TransportError          no usable answer (status is None)
    |   +-- ConnectError        socket missing, refused, connection lost
    |   +-- Timeout             connect or read took longer than the timeout
    |   +-- ProtocolError       the answer was not the JSON the contract promises
    +-- APIError                the agent answered non-2xx (status is set)
        +-- BadRequest          400 bad_request
        +-- Unauthorized        401
        |   +-- RefreshReused   401 refresh_reused (the session is now revoked)
        +-- CallerNotAllowed    403 caller_not_allowed
        +-- NotFound            404 not_found
        +-- MethodNotAllowed    405 method_not_allowed
        +-- RequestTimeout      408 request_timeout
        +-- Conflict            409 conflict
        +-- PayloadTooLarge     413 payload_too_large
        +-- UnsupportedMediaType 415 unsupported_media_type
        +-- TooManyRequests     429 too_many_requests
        +-- InternalError       500 internal
        +-- Unavailable         503 (e.g. not_ready, shutting_down)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "BadRequest",
    "CallerNotAllowed",
    "Conflict",
    "ConnectError",
    "InternalError",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "ProtocolError",
    "RefreshReused",
    "RequestTimeout",
    "Timeout",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "WardenError",
    "error_from_response",
]


class WardenError(Exception):
    """Base of every error the client raises.

    ``code`` is the agent's error code (or a client-side code such as
    ``connect_error``), ``status`` the HTTP status (``None`` when no answer
    arrived), ``message`` the human text.
    """

    code: str = "warden_error"
    status: int | None = None

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, message={self.message!r})"


class TransportError(WardenError):
    """No usable answer came back from the agent."""

    code = "transport_error"


class ConnectError(TransportError):
    """The socket could not be opened, or the connection broke mid-call."""

    code = "connect_error"


class Timeout(TransportError):
    """Connecting or reading the answer took longer than the client's timeout."""

    code = "timeout"


class ProtocolError(TransportError):
    """The agent's answer was not valid HTTP/JSON as the contract describes."""

    code = "protocol_error"


class APIError(WardenError):
    """The agent answered with a non-2xx status and an error body.

    ``body`` is the decoded JSON answer, for codes this client does not know
    yet.
    """

    code = "api_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.body = body


class BadRequest(APIError):
    """400: malformed JSON, unknown or wrongly typed field (the message names it)."""

    code = "bad_request"
    status = 400


class Unauthorized(APIError):
    """401: a token or credential was not accepted."""

    code = "unauthorized"
    status = 401


class RefreshReused(Unauthorized):
    """401: a refresh token was presented twice; the whole session was revoked."""

    code = "refresh_reused"


class CallerNotAllowed(APIError):
    """403: this OS user/group may not call that operation (caller ACL)."""

    code = "caller_not_allowed"
    status = 403


class NotFound(APIError):
    """404: no such endpoint or resource."""

    code = "not_found"
    status = 404


class MethodNotAllowed(APIError):
    """405: the endpoint exists but not with this HTTP method."""

    code = "method_not_allowed"
    status = 405


class RequestTimeout(APIError):
    """408: the agent gave up waiting for the request (headers or body)."""

    code = "request_timeout"
    status = 408


class Conflict(APIError):
    """409: the request conflicts with the current state."""

    code = "conflict"
    status = 409


class PayloadTooLarge(APIError):
    """413: the request body exceeds the agent's limit (1 MiB by default)."""

    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(APIError):
    """415: the body is not JSON."""

    code = "unsupported_media_type"
    status = 415


class TooManyRequests(APIError):
    """429: a rate limit was hit."""

    code = "too_many_requests"
    status = 429


class InternalError(APIError):
    """500: the agent failed on its side (never for bad input)."""

    code = "internal"
    status = 500


class Unavailable(APIError):
    """503: the agent cannot serve this now (not ready, shutting down)."""

    code = "unavailable"
    status = 503


_API_ERRORS: tuple[type[APIError], ...] = (
    BadRequest,
    Unauthorized,
    RefreshReused,
    CallerNotAllowed,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    InternalError,
    Unavailable,
)

# Exact code first; the status decides for codes this client does not know,
# so a newer agent's code still lands in the right branch of the tree.
_BY_CODE: dict[str, type[APIError]] = {cls.code: cls for cls in _API_ERRORS}
_BY_CODE["internal_error"] = InternalError
_BY_CODE["not_ready"] = Unavailable
_BY_CODE["shutting_down"] = Unavailable
_BY_CODE["rate_limited"] = TooManyRequests
_BY_STATUS: dict[int, type[APIError]] = {}
for _cls in _API_ERRORS:
    if _cls.status is not None:
        _BY_STATUS.setdefault(_cls.status, _cls)


def error_from_response(status: int, body: Any) -> APIError:
    """Builds the exception for a non-2xx answer with (decoded) ``body``.

    The contract's shape is ``{"error": {"code": ..., "message": ...}}``; a
    body without it still yields an exception chosen by status.
    """
    code: str | None = None
    message: str | None = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            raw_code = err.get("code")
            raw_message = err.get("message")
            code = raw_code if isinstance(raw_code, str) else None
            message = raw_message if isinstance(raw_message, str) else None
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or APIError
    if message is None:
        message = f"HTTP {status}"
    return cls(message, code=code, status=status, body=body)
