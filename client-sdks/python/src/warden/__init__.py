"""Python client for the Warden agent (standard library only).

    import warden

    with warden.Client() as agent:          # WARDEN_SOCKET or /run/warden/warden.sock
        answer = agent.check(warden.user_subject("u-42", "acme"),
                             "inventory.adjust_stock", "write")
        if not answer["allow"]:
            ...

Any :class:`WardenError` from a check means deny: fail closed.
"""

from __future__ import annotations

from ._client import Client
from ._exceptions import (
    APIError,
    BadRequest,
    CallerNotAllowed,
    Conflict,
    ConnectError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ProtocolError,
    RefreshReused,
    RequestTimeout,
    Timeout,
    TooManyRequests,
    TransportError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    WardenError,
)
from ._transport import DEFAULT_SOCKET, DEFAULT_TIMEOUT, UnixHTTPConnection, default_socket
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
    bot_subject,
    peer_subject,
    task_token_subject,
    token_subject,
    user_subject,
)

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AuditAppended",
    "AuditEvent",
    "AuditHead",
    "BadRequest",
    "CallerNotAllowed",
    "CheckAnswer",
    "CheckRequest",
    "Client",
    "Conflict",
    "ConnectError",
    "DEFAULT_SOCKET",
    "DEFAULT_TIMEOUT",
    "Health",
    "InternalError",
    "Jwks",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "ProtocolError",
    "RefreshReused",
    "RequestTimeout",
    "Resource",
    "Subject",
    "TaskToken",
    "Timeout",
    "TokenPair",
    "TokenVerification",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnixHTTPConnection",
    "UnsupportedMediaType",
    "WardenError",
    "__version__",
    "bot_subject",
    "default_socket",
    "peer_subject",
    "task_token_subject",
    "token_subject",
    "user_subject",
]
