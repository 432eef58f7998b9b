"""Typed shapes of the agent's requests and answers (``TypedDict``).

They describe the JSON of the socket API contract for type checkers; at run
time they are plain dicts, so a newer agent's extra fields pass through
untouched.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "Action",
    "AuditAppended",
    "AuditEvent",
    "AuditHead",
    "CheckAnswer",
    "CheckRequest",
    "Health",
    "Jwks",
    "Resource",
    "Subject",
    "Surface",
    "TaskToken",
    "TokenPair",
    "TokenVerification",
    "bot_subject",
    "peer_subject",
    "task_token_subject",
    "token_subject",
    "user_subject",
]

Action = Literal["read", "write", "approve", "export"]
Surface = Literal["http", "task", "cli", "bot", "internal"]

#: One of ``{"user_id", "org_id"}``, ``{"token"}``, ``{"task_token"}``,
#: ``{"bot": {"platform", "id"}}`` or ``{"peer": true}``; build it with the
#: ``*_subject`` helpers below.
Subject = dict[str, Any]


def user_subject(user_id: str, org_id: str) -> Subject:
    """A user looked up in the synced directory."""
    return {"user_id": user_id, "org_id": org_id}


def token_subject(access_token: str) -> Subject:
    """The bearer of an access JWT (verified; roles and org from the token)."""
    return {"token": access_token}


def task_token_subject(task_token: str) -> Subject:
    """A Celery task acting with a task token."""
    return {"task_token": task_token}


def bot_subject(platform: str, bot_user_id: str) -> Subject:
    """A linked bot account, e.g. ``bot_subject("telegram", "12345")``."""
    return {"bot": {"platform": platform, "id": bot_user_id}}


def peer_subject() -> Subject:
    """The calling OS user, mapped to an ERP identity (CLI use)."""
    return {"peer": True}


class Resource(TypedDict, total=False):
    org_id: str
    owner_id: str
    assignee_id: str
    region: str


class CheckRequest(TypedDict):
    subject: Subject
    permission: str
    action: str
    surface: NotRequired[str]
    resource: NotRequired[Resource]


class CheckAnswer(TypedDict):
    allow: bool
    reason: str
    enforced: bool
    decision_id: str
    policy_version: str
    matched: Any


class Health(TypedDict):
    status: str


class TokenPair(TypedDict):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session_id: str


class TokenVerification(TypedDict):
    valid: bool
    claims: NotRequired[dict[str, Any]]
    reason: NotRequired[str]


class TaskToken(TypedDict):
    task_token: str
    expires_in: int


class Jwks(TypedDict):
    keys: list[dict[str, Any]]


class AuditEvent(TypedDict):
    kind: str
    actor: str
    org_id: str
    outcome: str
    permission: NotRequired[str]
    target: NotRequired[str]
    attrs: NotRequired[dict[str, Any]]


class AuditAppended(TypedDict):
    first_seq: int
    last_seq: int


class AuditHead(TypedDict):
    seq: int
    hash: str
    checkpoint: NotRequired[dict[str, Any]]
