"""The client against the real ``warden`` binary (session fixture ``agent``)."""

from __future__ import annotations

import pytest

import warden
import warden._transport
from conftest import RealAgent


def test_health(agent: RealAgent) -> None:
    with agent.client() as client:
        assert client.health() == {"status": "ok"}


def test_ready(agent: RealAgent) -> None:
    with agent.client() as client:
        assert client.ready() is True


def test_status_reports_uptime_and_policy(agent: RealAgent) -> None:
    with agent.client() as client:
        status = client.status()
    assert isinstance(status, dict)
    assert "uptime_seconds" in status or "uptime" in status, status
    assert "policy" in status, status


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
        try:
            resp = client._transport.request("POST", "/v1/admin/reload", big)
        except warden.ConnectError:
            pytest.skip("agent closed the connection before the 413 was read")
        with pytest.raises(warden.PayloadTooLarge):
            warden._transport.decode(resp)


def test_keep_alive_serves_many_calls_on_one_client(agent: RealAgent) -> None:
    with agent.client() as client:
        for _ in range(50):
            assert client.health()["status"] == "ok"
