"""HTTP/1.1 over the agent's Unix socket, with the standard library only.

The agent lives on the same host, so the transport is ``http.client`` with the
TCP connect swapped for an ``AF_UNIX`` one. Connections are kept alive and
pooled: a permission check costs one round trip on an open socket, which is
what makes checking on every request affordable.

Retries are deliberately narrow. A pooled connection the agent has closed
(idle timeout, reload) fails on first use; such a call is retried once on a
fresh connection only when that cannot run an operation twice: always for
idempotent calls, and for others only when the request could not even be
sent (the agent never saw it). Re-sending a refresh-token rotation the agent
already processed would look like token reuse and revoke the session.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._exceptions import ConnectError, ProtocolError, Timeout, error_from_response

__all__ = ["DEFAULT_SOCKET", "DEFAULT_TIMEOUT", "Response", "Transport", "UnixHTTPConnection", "default_socket"]

#: Where the agent listens in production (``RuntimeDirectory=warden``).
DEFAULT_SOCKET = "/run/warden/warden.sock"
#: Seconds for connecting and for each read; checks take microseconds, so a
#: slow answer means a stuck agent and the caller should fail closed.
DEFAULT_TIMEOUT = 5.0
#: Idle connections kept per client; more concurrent callers open more and
#: close the surplus when done.
MAX_IDLE = 8


def default_socket(env: Mapping[str, str] | None = None) -> str:
    """The socket path: ``WARDEN_SOCKET`` if set, else :data:`DEFAULT_SOCKET`."""
    env = os.environ if env is None else env
    return env.get("WARDEN_SOCKET") or DEFAULT_SOCKET


class UnixHTTPConnection(http.client.HTTPConnection):
    """An ``HTTPConnection`` whose socket is an ``AF_UNIX`` stream socket."""

    def __init__(self, socket_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        # The host only fills the Host header; nothing resolves it.
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        # A Unix socket whose listen backlog is full fails connect() at once
        # with EAGAIN when the socket has a timeout (it is non-blocking
        # underneath), where TCP would wait. A burst of callers must queue,
        # not fail: retry with a short backoff until the timeout is spent.
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        pause = 0.001
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
            except BlockingIOError:
                sock.close()
                if deadline is not None and time.monotonic() + pause > deadline:
                    raise TimeoutError(f"agent backlog full for {self.timeout}s") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
                continue
            except BaseException:
                sock.close()
                raise
            self.sock = sock
            return


@dataclass(frozen=True)
class Response:
    """A complete answer: status, headers (lower-cased names) and raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON; :class:`ProtocolError` if it is not."""
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise ProtocolError(f"answer is not JSON (status {self.status}): {e}") from None


def _is_dropped(conn: UnixHTTPConnection) -> bool:
    """Whether an idle connection was closed by the agent: an idle keep-alive
    socket that is readable can only be at EOF (or carry junk), so it must not
    be used. One non-blocking poll, as urllib3 does."""
    sock = conn.sock
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _SendFailed(Exception):
    """The request did not reach the agent; safe to retry on a new connection."""


class _Lost(Exception):
    """The agent closed the connection without answering; it may or may not
    have seen the request."""


class Transport:
    """A small thread-safe pool of keep-alive connections to one socket."""

    def __init__(self, socket_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._idle: list[UnixHTTPConnection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        """Closes idle connections; calls after this open new ones as needed."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> tuple[UnixHTTPConnection, bool]:
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn = self._idle.pop()
            if _is_dropped(conn):
                conn.close()
                continue
            return conn, True
        return UnixHTTPConnection(self.socket_path, self.timeout), False

    def _give_back(self, conn: UnixHTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = False,
    ) -> Response:
        """Sends one request and reads the whole answer (any status)."""
        all_headers = {"Accept": "application/json"}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        if headers:
            all_headers.update(headers)
        conn, reused = self._take()
        try:
            return self._exchange(conn, method, path, body, all_headers)
        except _SendFailed as e:
            if not reused:
                raise ConnectError(f"cannot reach the agent at {self.socket_path}: {e.__cause__}") from None
            return self._retry(method, path, body, all_headers)
        except _Lost as e:
            # On a reused connection this is usually an idle close before the
            # agent read anything, but not provably so.
            if reused and idempotent:
                return self._retry(method, path, body, all_headers)
            raise ConnectError(f"connection to the agent lost: {e.__cause__}") from None

    def _retry(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        conn = UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            return self._exchange(conn, method, path, body, headers)
        except _SendFailed as e:
            raise ConnectError(f"cannot reach the agent at {self.socket_path}: {e.__cause__}") from None
        except _Lost as e:
            raise ConnectError(f"connection to the agent lost: {e.__cause__}") from None

    def _exchange(
        self,
        conn: UnixHTTPConnection,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
    ) -> Response:
        keep = False
        try:
            sent: OSError | None = None
            try:
                conn.request(method, path, body=body, headers=headers)
            except TimeoutError as e:
                raise Timeout(f"sending to the agent timed out after {self.timeout}s") from e
            except OSError as e:
                if conn.sock is None:
                    raise _SendFailed() from e  # could not even connect
                # The agent may have answered early and closed (413 for an
                # oversized body after reading only the headers): read that
                # answer if it is there.
                sent = e
            try:
                resp = conn.getresponse()
                data = resp.read()
            except TimeoutError:
                raise Timeout(f"no answer from the agent within {self.timeout}s") from None
            except http.client.IncompleteRead as e:
                raise ProtocolError(f"answer cut short: {e!r}") from None
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                if sent is not None:
                    # Nothing to read either: the request never got through.
                    raise _SendFailed() from sent
                if isinstance(e, ConnectionError):
                    # Includes http.client.RemoteDisconnected (closed before
                    # any status line).
                    raise _Lost() from e
                if isinstance(e, http.client.HTTPException):
                    raise ProtocolError(f"malformed answer: {e!r}") from None
                raise ConnectError(f"reading the answer failed: {e}") from None
            keep = sent is None and not resp.will_close
            return Response(
                status=resp.status,
                headers={k.lower(): v for k, v in resp.getheaders()},
                body=data,
            )
        finally:
            if keep:
                self._give_back(conn)
            else:
                conn.close()

    def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        idempotent: bool = False,
    ) -> Any:
        """Sends ``payload`` as JSON and returns the decoded 2xx answer.

        Raises the :mod:`warden` exception for the agent's error code on a
        non-2xx answer.
        """
        body = None if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        resp = self.request(method, path, body, idempotent=idempotent)
        return decode(resp)


def decode(resp: Response) -> Any:
    """The JSON of a 2xx answer, or the matching exception for any other."""
    if 200 <= resp.status < 300:
        return resp.json()
    try:
        parsed: Any = json.loads(resp.body)
    except ValueError:
        parsed = None
    raise error_from_response(resp.status, parsed)

