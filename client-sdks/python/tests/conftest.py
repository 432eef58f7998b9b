"""Fixtures: a fake agent on a Unix socket (unit tests of the client) and the
real ``warden`` binary (end-to-end tests).

The real agent is started once per session from ``WARDEN_BIN`` (default
``target/debug/warden`` at the repository root) with a temp socket and a temp
state dir, and stopped with SIGTERM; a non-zero exit fails the session.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import warden

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


#: A route answers (status, headers, body); a dict or list body is sent as JSON.
Answer = tuple[int, dict[str, str], Any]
Route = Callable[[Recorded], Answer]


@dataclass
class FakeAgent:
    """A tiny HTTP/1.1 server on a Unix socket that records every request."""

    socket_path: str
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    connections: int = 0
    closed: int = 0
    server_errors: list[str] = field(default_factory=list)
    #: Close each connection after answering, without a Connection: close
    #: header (what an agent's idle timeout looks like to a pooled client).
    close_after_response: bool = False
    #: Read the next N requests, then close without answering.
    drop_next: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)

    def route(self, method: str, path: str, status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> None:
        answer: Answer = (status, headers or {}, {"status": "ok"} if body is None else body)
        self.routes[(method, path)] = lambda _req: answer

    def wait_all_closed(self) -> None:
        """Blocks until the fake has closed every connection it accepted."""
        with self.lock:
            assert self.lock.wait_for(lambda: self.closed == self.connections, timeout=5)

    def client(self, timeout: float = 2.0) -> warden.Client:
        return warden.Client(self.socket_path, timeout=timeout)

    def seen(self, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def _handler(fake: FakeAgent) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with fake.lock:
                fake.connections += 1

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with fake.lock:
                fake.requests.append(req)
                drop = fake.drop_next > 0
                if drop:
                    fake.drop_next -= 1
            if drop:
                self.close_connection = True
                return
            route = fake.routes.get((self.command, self.path))
            if route is None:
                answer: Answer = (404, {}, {"error": {"code": "not_found", "message": f"no route {self.path}"}})
            else:
                answer = route(req)
            status, headers, payload = answer
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            if fake.close_after_response:
                self.close_connection = True

        do_GET = _serve
        do_POST = _serve
        do_PUT = _serve
        do_DELETE = _serve

    return Handler


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    fake: FakeAgent

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer is part of several tests; keep the
        # error for inspection instead of printing a traceback.
        with self.fake.lock:
            self.fake.server_errors.append(repr(sys.exc_info()[1]))

    def shutdown_request(self, request: Any) -> None:
        # Counted only once the socket itself is closed, so a test can wait
        # for the close the client will observe.
        super().shutdown_request(request)
        with self.fake.lock:
            self.fake.closed += 1
            self.fake.lock.notify_all()


@pytest.fixture
def fake() -> Iterator[FakeAgent]:
    tmp = tempfile.mkdtemp(prefix="wf")
    agent = FakeAgent(os.path.join(tmp, "f.sock"))
    server = _Server(agent.socket_path, _handler(agent))
    server.fake = agent
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class RealAgent:
    socket_path: str
    state_dir: str
    process: subprocess.Popen[bytes]
    log_path: str

    def client(self, timeout: float = 5.0) -> warden.Client:
        return warden.Client(self.socket_path, timeout=timeout)

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")


@contextlib.contextmanager
def run_agent(config_text: str | None = None) -> Iterator[RealAgent]:
    """Runs ``warden serve`` on a temp socket and state dir, with the dev
    config or, if given, ``config_text`` (where ``{socket}`` and ``{state}``
    stand for the temp paths); SIGTERM at the end must give exit 0."""
    # Absolute, since the agent runs with the repository root as its cwd.
    binary = Path(os.environ.get("WARDEN_BIN") or REPO / "target" / "debug" / "warden").resolve()
    if not binary.is_file():
        pytest.fail(f"warden binary not found at {binary}: build it with `cargo build` or set WARDEN_BIN")
    tmp = tempfile.mkdtemp(prefix="wa")  # short: socket paths max out at 108 bytes
    socket_path = os.path.join(tmp, "w.sock")
    state_dir = os.path.join(tmp, "state")
    os.mkdir(state_dir, 0o700)
    log_path = os.path.join(tmp, "agent.log")
    config = REPO / "config" / "warden.dev.toml"
    if config_text is not None:
        config = Path(tmp) / "warden.toml"
        config.write_text(config_text.format(socket=socket_path, state=state_dir))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "WARDEN_SOCKET": socket_path,
        "WARDEN_STATE_DIR": state_dir,
        "WARDEN_LOG": "info",
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = RealAgent(socket_path, state_dir, proc, log_path)
    try:
        _wait_healthy(running)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"agent ignored SIGTERM for 15 s:\n{running.log()}")
        log_text = running.log()
        shutil.rmtree(tmp, ignore_errors=True)
        assert code == 0, f"agent exited with {code} after SIGTERM:\n{log_text}"


@pytest.fixture(scope="session")
def agent() -> Iterator[RealAgent]:
    """The real ``warden serve`` on a temp socket with the dev config."""
    with run_agent() as running:
        yield running


def _wait_healthy(running: RealAgent) -> None:
    deadline = time.monotonic() + 30
    with running.client(timeout=1.0) as client:
        while True:
            if running.process.poll() is not None:
                pytest.fail(f"agent exited with {running.process.returncode} at start:\n{running.log()}")
            try:
                if client.health().get("status") == "ok":
                    return
            except warden.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"agent not healthy within 30 s:\n{running.log()}")
            time.sleep(0.05)
