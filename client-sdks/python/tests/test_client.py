"""The client against a fake agent: wire format, keep-alive, retries, errors."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from typing import Any

import pytest

import warden
import warden._transport
from conftest import Answer, FakeAgent, Recorded


def test_health_uses_a_get_over_the_socket(fake: FakeAgent) -> None:
    fake.route("GET", "/v1/health", body={"status": "ok"})
    with fake.client() as client:
        assert client.health() == {"status": "ok"}
    (req,) = fake.requests
    assert req.method == "GET"
    assert req.headers["host"] == "localhost"
    assert req.headers["accept"] == "application/json"
    assert req.body == b""


def test_connections_are_kept_alive(fake: FakeAgent) -> None:
    fake.route("GET", "/v1/health")
    with fake.client() as client:
        for _ in range(5):
            client.health()
    assert fake.connections == 1
    assert len(fake.requests) == 5


def test_check_sends_the_contract_json(fake: FakeAgent) -> None:
    answer = {"allow": True, "reason": "granted", "enforced": True, "decision_id": "d1", "policy_version": "v1", "matched": None}
    fake.route("POST", "/v1/check", body=answer)
    with fake.client() as client:
        got = client.check(
            warden.user_subject("u-42", "acme"),
            "inventory.adjust_stock",
            "write",
            resource={"org_id": "acme", "owner_id": "u-42"},
        )
        assert got == answer
        client.check(warden.peer_subject(), "reports.export", "export", surface="cli")
    first, second = fake.seen("/v1/check")
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {
        "subject": {"user_id": "u-42", "org_id": "acme"},
        "permission": "inventory.adjust_stock",
        "action": "write",
        "surface": "http",
        "resource": {"org_id": "acme", "owner_id": "u-42"},
    }
    assert second.json() == {"subject": {"peer": True}, "permission": "reports.export", "action": "export", "surface": "cli"}


def test_check_batch_keeps_order_and_rejects_a_bad_answer(fake: FakeAgent) -> None:
    fake.route("POST", "/v1/check/batch", body={"results": [{"allow": False}, {"allow": True}]})
    checks: list[warden.CheckRequest] = [
        {"subject": warden.token_subject("jwt"), "permission": "a.b", "action": "read"},
        {"subject": warden.bot_subject("telegram", "1"), "permission": "a.b", "action": "read", "surface": "bot"},
    ]
    with fake.client() as client:
        results = client.check_batch(checks)
        assert [r["allow"] for r in results] == [False, True]
        assert fake.seen("/v1/check/batch")[0].json() == {"checks": checks}
        fake.route("POST", "/v1/check/batch", body={"answers": []})
        with pytest.raises(warden.ProtocolError):
            client.check_batch(checks)


def test_token_calls_send_secrets_only_in_bodies(fake: FakeAgent) -> None:
    pair = {"access_token": "a", "token_type": "Bearer", "expires_in": 900, "refresh_token": "r2", "refresh_expires_in": 86400, "session_id": "s"}
    fake.route("POST", "/v1/tokens/issue", body=pair)
    fake.route("POST", "/v1/tokens/refresh", body=pair)
    fake.route("POST", "/v1/tokens/verify", body={"valid": False, "reason": "expired"})
    fake.route("POST", "/v1/tokens/task", body={"task_token": "t", "expires_in": 60})
    fake.route("POST", "/v1/sessions/revoke", body={"revoked": 3})
    fake.route("GET", "/v1/jwks", body={"keys": []})
    with fake.client() as client:
        assert client.issue_tokens("u-1", "acme", ["pwd", "otp"], device_id="d")["session_id"] == "s"
        assert client.refresh_tokens("secret-refresh")["refresh_token"] == "r2"
        assert client.verify_token("jwt", audience="erp") == {"valid": False, "reason": "expired"}
        assert client.task_token("reports.build", warden.user_subject("u-1", "acme"))["expires_in"] == 60
        assert client.revoke_sessions(user_id="u-1", reason="offboarded") == 3
        assert client.jwks() == {"keys": []}
        with pytest.raises(ValueError):
            client.revoke_sessions(reason="none given")
        for bad in ({"revoked": True}, {"revoked": "3"}, {}, [3]):
            fake.route("POST", "/v1/sessions/revoke", body=bad)
            with pytest.raises(warden.ProtocolError):
                client.revoke_sessions(session_id="s", reason="bad answer")
        with pytest.raises(ValueError):
            client.revoke_sessions(user_id="u", session_id="s", reason="both")
    assert fake.seen("/v1/tokens/issue")[0].json() == {"user_id": "u-1", "org_id": "acme", "amr": ["pwd", "otp"], "device_id": "d"}
    assert fake.seen("/v1/tokens/refresh")[0].json() == {"refresh_token": "secret-refresh"}
    assert fake.seen("/v1/tokens/verify")[0].json() == {"token": "jwt", "audience": "erp"}
    assert fake.seen("/v1/sessions/revoke")[0].json() == {"user_id": "u-1", "reason": "offboarded"}
    assert all("secret" not in r.path for r in fake.requests)


def test_mfa_idempotency_and_audit_calls(fake: FakeAgent) -> None:
    fake.route("POST", "/v1/mfa/verify", body={"ok": True, "reason": "valid"})
    fake.route("POST", "/v1/mfa/devices/revoke", body={"revoked": 1})
    fake.route("POST", "/v1/idempotency/claim", body={"status": "claimed"})
    fake.route("POST", "/v1/audit/events", body={"first_seq": 7, "last_seq": 8})
    fake.route("GET", "/v1/audit/head", body={"seq": 8, "hash": "ab"})
    with fake.client() as client:
        assert client.mfa_verify("u", "acme", code="123456", device={"user_agent": "ua", "ip": "::1", "remember": False})["ok"]
        with pytest.raises(ValueError):
            client.mfa_verify("u", "acme")
        assert client.mfa_revoke_devices("u", "acme") == 1
        assert client.idempotency_claim("bank", "k1", 60) == {"status": "claimed"}
        events: list[warden.AuditEvent] = [{"kind": "stock.adjusted", "actor": "u", "org_id": "acme", "outcome": "ok"}] * 2
        assert client.append_audit_events(events) == {"first_seq": 7, "last_seq": 8}
        assert client.audit_head()["seq"] == 8
    assert fake.seen("/v1/audit/events")[0].json() == {"events": events}


def test_webhook_verify_forwards_raw_body_and_headers(fake: FakeAgent) -> None:
    fake.route("POST", "/v1/webhooks/bank%20x/verify", body={"valid": True, "reason": "ok", "event_id": "e", "key_id": "k"})
    fake.route("POST", "/v1/webhooks/stripe/sign", body={"headers": {"webhook-signature": "v1,abc"}})
    raw = b'{"amount": 10,\n "x": "\xc3\xa9"}'
    with fake.client() as client:
        assert client.webhook_verify("bank x", raw, {"webhook-id": "msg_1", "webhook-signature": "v1,sig"})["valid"]
        assert client.webhook_sign("stripe", b"{}") == {"webhook-signature": "v1,abc"}
    (req,) = fake.seen("/v1/webhooks/bank%20x/verify")
    assert req.body == raw
    assert req.headers["webhook-id"] == "msg_1"
    assert req.headers["webhook-signature"] == "v1,sig"


def _error(code: str, message: str = "nope") -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (400, _error("bad_request", "field `permission`: expected a string"), warden.BadRequest, "bad_request"),
        (401, _error("refresh_reused"), warden.RefreshReused, "refresh_reused"),
        (401, _error("token_invalid"), warden.Unauthorized, "token_invalid"),
        (403, _error("caller_not_allowed"), warden.CallerNotAllowed, "caller_not_allowed"),
        (404, _error("not_found"), warden.NotFound, "not_found"),
        (405, _error("method_not_allowed"), warden.MethodNotAllowed, "method_not_allowed"),
        (408, _error("request_timeout"), warden.RequestTimeout, "request_timeout"),
        (409, _error("conflict"), warden.Conflict, "conflict"),
        (413, _error("payload_too_large"), warden.PayloadTooLarge, "payload_too_large"),
        (415, _error("unsupported_media_type"), warden.UnsupportedMediaType, "unsupported_media_type"),
        (429, _error("rate_limited"), warden.TooManyRequests, "rate_limited"),
        (500, _error("internal"), warden.InternalError, "internal"),
        (503, _error("not_ready"), warden.Unavailable, "not_ready"),
        # A code this client does not know lands by status.
        (404, _error("unknown_integration"), warden.NotFound, "unknown_integration"),
        # Neither known: the base API error, with the body kept.
        (418, _error("teapot"), warden.APIError, "teapot"),
        # Not the contract's shape at all.
        (502, "<html>bad gateway</html>", warden.APIError, "api_error"),
        (400, {"detail": "x"}, warden.BadRequest, "bad_request"),
    ],
)
def test_error_codes_map_to_the_exception_tree(fake: FakeAgent, status: int, body: Any, cls: type[warden.APIError], code: str) -> None:
    raw = body.encode() if isinstance(body, str) else body
    fake.routes[("GET", "/v1/status")] = lambda _req: (status, {}, raw)
    with fake.client() as client, pytest.raises(cls) as info:
        client.status()
    err = info.value
    assert type(err) is cls
    assert isinstance(err, warden.WardenError)
    assert err.status == status
    assert err.code == code
    assert str(status) in str(err)
    if isinstance(body, dict) and "error" in body:
        assert err.message == body["error"]["message"]
        assert err.body == body


def test_exception_tree_shape() -> None:
    assert issubclass(warden.RefreshReused, warden.Unauthorized)
    for cls in (warden.ConnectError, warden.Timeout, warden.ProtocolError):
        assert issubclass(cls, warden.TransportError)
        assert cls.status is None
    for name in warden.__all__:
        assert hasattr(warden, name), name


def test_ready_is_a_bool_and_other_errors_raise(fake: FakeAgent) -> None:
    with fake.client() as client:
        fake.route("GET", "/v1/ready", body={"status": "ready"})
        assert client.ready() is True
        fake.route("GET", "/v1/ready", status=503, body=_error("not_ready"))
        assert client.ready() is False
        fake.route("GET", "/v1/ready", status=403, body=_error("caller_not_allowed"))
        with pytest.raises(warden.CallerNotAllowed):
            client.ready()


def test_metrics_are_text(fake: FakeAgent) -> None:
    fake.route("GET", "/metrics", body=b"# TYPE warden_up gauge\nwarden_up 1\n", headers={"Content-Type": "text/plain"})
    with fake.client() as client:
        assert "warden_up 1" in client.metrics()


def test_a_2xx_answer_that_is_not_json_is_a_protocol_error(fake: FakeAgent) -> None:
    fake.route("GET", "/v1/health", body=b"ok")
    with fake.client() as client, pytest.raises(warden.ProtocolError) as info:
        client.health()
    assert info.value.status is None


def test_missing_socket_is_a_connect_error() -> None:
    path = os.path.join(tempfile.gettempdir(), "warden-test-none.sock")
    with warden.Client(path) as client, pytest.raises(warden.ConnectError) as info:
        client.health()
    assert path in str(info.value)
    assert info.value.code == "connect_error"


def test_a_silent_agent_hits_the_timeout(fake: FakeAgent) -> None:
    release = threading.Event()

    def stall(_req: Recorded) -> Answer:
        release.wait(10)
        return (200, {}, {"status": "ok"})

    fake.routes[("GET", "/v1/health")] = stall
    try:
        with fake.client(timeout=0.2) as client, pytest.raises(warden.Timeout):
            client.health()
    finally:
        release.set()


def test_idle_closed_connections_are_replaced(fake: FakeAgent) -> None:
    # The agent closes each connection after answering, as its idle timeout
    # would; the pooled connection is dead by the next call, which must go
    # through on a fresh one, for a GET and a non-idempotent POST alike.
    fake.route("GET", "/v1/health")
    fake.route("POST", "/v1/tokens/refresh", body={"refresh_token": "r"})
    fake.close_after_response = True
    with fake.client() as client:
        for _ in range(3):
            client.health()
            fake.wait_all_closed()
            client.refresh_tokens("r")
            fake.wait_all_closed()
    assert len(fake.requests) == 6
    assert fake.connections == 6


def test_a_send_on_a_dead_connection_is_retried(fake: FakeAgent) -> None:
    # The idle check cannot see a close that races with the send; a request
    # that could not be written at all is still safe to send again.
    fake.route("POST", "/v1/tokens/refresh", body={"refresh_token": "r"})
    fake.close_after_response = True
    with fake.client() as client:
        client.refresh_tokens("r")
        fake.wait_all_closed()
        transport = client._transport
        (conn,) = transport._idle
        assert conn.sock is not None
        conn.sock.shutdown(socket.SHUT_WR)  # our side can no longer send
        original = warden._transport._is_dropped
        warden._transport._is_dropped = lambda _c: False  # type: ignore[assignment]
        try:
            assert client.refresh_tokens("r")["refresh_token"] == "r"
        finally:
            warden._transport._is_dropped = original
    assert len(fake.seen("/v1/tokens/refresh")) == 2


def test_a_post_the_agent_may_have_seen_is_not_resent(fake: FakeAgent) -> None:
    fake.route("GET", "/v1/health")
    fake.route("POST", "/v1/tokens/refresh", body={"refresh_token": "r"})
    with fake.client() as client:
        client.health()  # pools a connection
        fake.drop_next = 1
        with pytest.raises(warden.ConnectError):
            client.refresh_tokens("once")
    assert len(fake.seen("/v1/tokens/refresh")) == 1


def test_an_idempotent_call_is_retried_once_on_a_lost_connection(fake: FakeAgent) -> None:
    fake.route("GET", "/v1/health")
    fake.route("POST", "/v1/check", body={"allow": False})
    with fake.client() as client:
        client.health()
        fake.drop_next = 1
        assert client.check(warden.user_subject("u", "o"), "a.b", "read")["allow"] is False
        # Dropped on a fresh connection too: no endless retrying.
        client.close()
        fake.drop_next = 2
        with pytest.raises(warden.ConnectError):
            client.check(warden.user_subject("u", "o"), "a.b", "read")
    assert len(fake.seen("/v1/check")) == 3


def test_concurrent_callers_share_the_pool(fake: FakeAgent) -> None:
    fake.route("GET", "/v1/health")
    errors: list[BaseException] = []
    client = fake.client()

    def work() -> None:
        try:
            for _ in range(20):
                assert client.health() == {"status": "ok"}
        except BaseException as e:  # collected and re-raised below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert errors == []
    assert len(fake.requests) == 160
    assert fake.connections <= 8


def test_default_socket_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert warden.default_socket({}) == "/run/warden/warden.sock"
    assert warden.default_socket({"WARDEN_SOCKET": "/tmp/x.sock"}) == "/tmp/x.sock"
    monkeypatch.setenv("WARDEN_SOCKET", "/tmp/env.sock")
    assert warden.Client().socket_path == "/tmp/env.sock"
    monkeypatch.delenv("WARDEN_SOCKET")
    assert warden.Client().socket_path == warden.DEFAULT_SOCKET


def test_a_full_backlog_waits_until_the_timeout() -> None:
    # Nobody accepts: once the listen backlog is full, connect() would fail
    # at once with EAGAIN; the client must keep trying until its timeout.
    tmp = tempfile.mkdtemp(prefix="wb")
    path = os.path.join(tmp, "b.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    filler: list[socket.socket] = []
    try:
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            filler.append(s)
            try:
                s.connect(path)
            except BlockingIOError:
                break
            assert len(filler) < 100
        with warden.Client(path, timeout=0.2) as client, pytest.raises(warden.Timeout):
            client.health()
    finally:
        for s in filler:
            s.close()
        listener.close()
        os.unlink(path)
        os.rmdir(tmp)
