"""The client against the real ``warden`` binary (session fixture ``agent``)."""

from __future__ import annotations

import os

import pytest

import warden
import warden._transport
from conftest import RealAgent, run_agent


def test_health(agent: RealAgent) -> None:
    with agent.client() as client:
        assert client.health() == {"status": "ok"}


def test_ready(agent: RealAgent) -> None:
    with agent.client() as client:
        assert client.ready() is True


def test_status_describes_this_agent(agent: RealAgent) -> None:
    with agent.client() as client:
        status = client.status()
    assert status["socket"] == agent.socket_path, status
    assert status["state_dir"] == agent.state_dir, status
    assert isinstance(status["uptime_seconds"], int), status
    assert status["version"], status


def test_metrics_are_prometheus_text(agent: RealAgent) -> None:
    with agent.client() as client:
        client.health()
        text = client.metrics()
    assert "warden_" in text


def test_unknown_path_is_not_found(agent: RealAgent) -> None:
    with agent.client() as client, pytest.raises(warden.NotFound) as info:
        client._transport.call("GET", "/v1/no-such-endpoint", idempotent=True)
    assert info.value.status == 404
    assert info.value.code == "not_found"
    assert info.value.message


def test_wrong_method_is_method_not_allowed(agent: RealAgent) -> None:
    with agent.client() as client, pytest.raises(warden.MethodNotAllowed) as info:
        client._transport.call("DELETE", "/v1/health", idempotent=True)
    assert info.value.status == 405


def test_bad_json_is_bad_request(agent: RealAgent) -> None:
    with agent.client() as client:
        resp = client._transport.request("POST", "/v1/admin/reload", b'{"not json')
        with pytest.raises(warden.BadRequest) as info:
            warden._transport.decode(resp)
    assert info.value.status == 400
    assert info.value.code == "bad_request"


def test_oversized_body_is_payload_too_large(agent: RealAgent) -> None:
    big = b'{"pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    with agent.client() as client:
        resp = client._transport.request("POST", "/v1/admin/reload", big)
        with pytest.raises(warden.PayloadTooLarge) as info:
            warden._transport.decode(resp)
        assert info.value.status == 413
        # The client recovers: the next call opens a fresh connection.
        assert client.health() == {"status": "ok"}


def test_keep_alive_serves_many_calls_on_one_client(agent: RealAgent) -> None:
    with agent.client() as client:
        for _ in range(50):
            assert client.health()["status"] == "ok"


# This test's OS user may read the status but not call admin operations.
STATUS_ONLY = """
mode = "development"

[server]
socket = "{socket}"
socket_mode = "0660"

[state]
dir = "{state}"

[log]
format = "human"
level = "info"

# Readiness needs a policy: the example registry (the agent's cwd is the repo).
[policy]
dir = "config/policies"

[[callers]]
name = "tests"
uids = [UID]
allow = ["status"]
"""


def test_the_caller_acl_maps_to_caller_not_allowed() -> None:
    with run_agent(STATUS_ONLY.replace("UID", str(os.getuid()))) as restricted, restricted.client() as client:
        assert client.health() == {"status": "ok"}
        assert client.status()["socket"] == restricted.socket_path
        with pytest.raises(warden.CallerNotAllowed) as info:
            client.reload()
        assert info.value.status == 403
        assert info.value.code == "caller_not_allowed"
        # The refusal leaves the connection usable.
        assert client.ready() is True


def test_reload_as_an_allowed_caller(agent: RealAgent) -> None:
    with agent.client() as client:
        answer = client.reload()
    assert isinstance(answer, dict), answer
