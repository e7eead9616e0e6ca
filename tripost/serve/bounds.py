"""What serve-teacher and serve-student read and hold: one implementation for both.

A request is taken in this order (`BoundedHandler`, issue 32):

1. its request line and headers, each socket read bounded by `read_timeout`
   (http.server bounds their size: 64 KiB a line, 100 headers; an idle
   kept-alive connection is closed after `read_timeout` too);
2. the token (each server's route checks it with `token_matches` before any
   byte of the body is read: a stranger is answered 401 whatever it declares);
3. the declared length: one `Content-Length` that is a whole number of bytes
   (negative, non-numeric or conflicting: 400; `Transfer-Encoding`: 411),
   at most `max_body` (413), refused before anything is read or allocated;
4. the body, read within `read_timeout` seconds in all (408 otherwise), in
   chunks, so that a client that declares much and sends little holds
   neither memory nor the thread for longer than that.

A request answered without reading its body (a 401, a 413, an unknown
route) ends its connection (`Connection: close`): what the client still
sends is read and dropped for at most LINGER_S seconds and LINGER_BYTES
bytes, so that closing does not reset the connection before the client has
read its answer, and never stored. `Expect: 100-continue` is answered only
when the body is going to be read.

The server (`BoundedServer`) runs one thread per connection and at most
`max_connections` of them; a connection over that is answered 503 with
Retry-After by the accepting thread and closed at once.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import math
import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tripost.errors import TripostError
from tripost.serve.failures import HTTPFailure

log = logging.getLogger("tripost.serve")

DEFAULT_MAX_BODY_MB = 64  # a request body larger than this is refused (413) before it is read
DEFAULT_READ_TIMEOUT_S = 30.0  # each read of a request's head; the whole body
DEFAULT_MAX_CONNECTIONS = 64  # connections served at once (one thread each)
LINGER_S = 2.0  # after an answer sent without reading the body: how long the rest is read and dropped
LINGER_BYTES = 4 * 2**20  # ... and how much of it at most
BUSY_RETRY_AFTER_S = 1  # the Retry-After of the 503 a connection over the cap gets
BUSY_DRAIN_S = 0.1  # ... and how long the accepting thread drops what that connection still sends
# What a client that went away looks like to a handler.
CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


@dataclass(frozen=True)
class Limits:
    """What one server reads and holds (see the module docstring)."""

    max_body: int = DEFAULT_MAX_BODY_MB * 2**20  # bytes
    read_timeout: float = DEFAULT_READ_TIMEOUT_S  # seconds
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        if not isinstance(self.max_body, int) or self.max_body < 1:
            raise TripostError(f"--max-body-mb must be more than 0, got {self.max_body} bytes")
        if not (isinstance(self.read_timeout, (int, float)) and math.isfinite(self.read_timeout) and self.read_timeout > 0):
            raise TripostError(f"--read-timeout must be a number of seconds more than 0, got {self.read_timeout}")
        if not isinstance(self.max_connections, int) or self.max_connections < 1:
            raise TripostError(f"--max-connections must be at least 1, got {self.max_connections}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Limits":
        mb = args.max_body_mb
        if not (math.isfinite(mb) and mb > 0):
            raise TripostError(f"--max-body-mb must be more than 0, got {mb}")
        return cls(max_body=max(1, int(mb * 2**20)), read_timeout=args.read_timeout, max_connections=args.max_connections)


def add_limit_arguments(p: argparse.ArgumentParser) -> None:
    """--max-body-mb, --read-timeout and --max-connections, on `p`."""
    p.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY_MB, metavar="MB",
                   help=f"largest request body read; a larger declared Content-Length is answered 413 before "
                        f"anything is read (default {DEFAULT_MAX_BODY_MB})")
    p.add_argument("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT_S, metavar="SECONDS",
                   help=f"how long a request's head (each read) and its whole body may take to arrive; a body "
                        f"later than that is answered 408, an idle connection closed (default {DEFAULT_READ_TIMEOUT_S:g})")
    p.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                   help=f"connections served at once; one more is answered 503 with Retry-After (default {DEFAULT_MAX_CONNECTIONS})")


def token_matches(headers: Any, token: str) -> bool:
    """Whether the request carries `token` as an SDK sends an API key:
    `Authorization: Bearer TOKEN` (openai) or `x-api-key: TOKEN` (anthropic).
    Constant-time: how much of a guess matched must not show in the timing."""
    presented = []
    scheme, _, value = (headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        presented.append(value.strip())
    if headers.get("x-api-key"):
        presented.append(headers["x-api-key"].strip())
    want = token.encode()
    return any(hmac.compare_digest(p.encode("utf-8", "replace"), want) for p in presented)


class BoundedHandler(BaseHTTPRequestHandler):
    """A request handler that reads bodies only through `read_body` (the
    server's `Limits`), closes a connection whose body it did not read, and
    turns a client that went away into `client_gone` (one log line)."""

    protocol_version = "HTTP/1.1"
    server: "BoundedServer"
    _unread = False  # the request being answered declared a body not read (yet)
    _expect_100 = False  # ... and asked for "100 Continue" before sending it
    _said_connection = False  # the answer being written has a Connection header

    @property
    def limits(self) -> Limits:
        return getattr(self.server, "limits", None) or Limits()

    def setup(self) -> None:
        self.timeout = self.limits.read_timeout  # every socket read and write (StreamRequestHandler.setup)
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except CLIENT_GONE as e:
            self.client_gone(e)
        except TimeoutError as e:  # a write to a client that stopped reading
            self.client_gone(e)

    def client_gone(self, e: BaseException) -> None:
        """The client closed (or stopped reading) while we read or wrote."""
        log.debug("client %s went away (%s)", self.client_address[0], type(e).__name__)

    def handle_one_request(self) -> None:
        self._unread = self._expect_100 = False
        super().handle_one_request()
        if self._unread:
            # Answered without reading the body: the rest of the stream is no request.
            self.close_connection = True
            self._discard_rest()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        # A body is pending unless none is declared or every Content-Length is a plain zero.
        lengths = [v.strip() for v in self.headers.get_all("content-length") or []]
        zero = all(v.isascii() and v.isdigit() and not v.strip("0") for v in lengths)
        self._unread = "transfer-encoding" in self.headers or not zero
        return True

    def handle_expect_100(self) -> bool:
        # "100 Continue" invites the body: sent by read_body, after the token and the length are checked.
        self._expect_100 = True
        return True

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection":
            self._said_connection = True
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        if self._unread and not self._said_connection:  # answered before the body was read: this connection ends
            self.send_header("Connection", "close")
        self._said_connection = False
        super().end_headers()

    # ------------------------------------------------------------ the body ---

    def declared_length(self) -> int:
        """The body's declared length, checked against the limit; HTTPFailure
        (400, 411 or 413) when it cannot be read. Reads nothing."""
        if self.headers.get("transfer-encoding") is not None:
            raise HTTPFailure(411, "send the request body with a Content-Length (chunked transfer encoding is not accepted)")
        values = [v.strip() for v in self.headers.get_all("content-length") or []]
        if not values:
            return 0
        v = values[0]
        if any(x != v for x in values) or not (v.isascii() and v.isdigit()):
            raise HTTPFailure(400, "Content-Length must be one whole number of bytes (0 or more)")
        digits = v.lstrip("0") or "0"
        limit = self.limits.max_body
        if len(digits) > 18 or int(digits) > limit:
            shown = f"{int(digits)} bytes" if len(digits) <= 18 else f"a {len(digits)}-digit number of bytes"
            raise HTTPFailure(413, f"the request body ({shown}) is over this server's limit of {limit} bytes (--max-body-mb)",
                              "request_too_large")
        return int(digits)

    def read_body(self) -> bytes:
        """The request's body, within the limits: its declared length checked
        first (`declared_length`), then read within `read_timeout` seconds in
        all (408 otherwise). A client that closes before sending all of it
        raises ConnectionAbortedError (nobody to answer)."""
        n = self.declared_length()
        if n == 0:
            self._unread = False
            return b""
        if self._expect_100:
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._expect_100 = False
        timeout = self.limits.read_timeout
        deadline = time.monotonic() + timeout
        buf = bytearray()
        try:
            while len(buf) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(n - len(buf), 2**20))
                if not chunk:
                    raise ConnectionAbortedError("the client closed before sending all of its body")
                buf += chunk
        except TimeoutError:
            raise HTTPFailure(408, f"the request body ({n} bytes declared, {len(buf)} received) did not arrive within "
                                   f"{timeout:g} s (--read-timeout)", "timeout_error") from None
        finally:
            try:
                self.connection.settimeout(timeout)
            except OSError:
                pass
        self._unread = False
        return bytes(buf)

    def _discard_rest(self) -> None:
        """Stop sending, then read and drop what the client still sends, for
        at most LINGER_S seconds and LINGER_BYTES bytes."""
        sock = self.connection
        try:
            self.wfile.flush()
            sock.shutdown(socket.SHUT_WR)
            deadline, dropped = time.monotonic() + LINGER_S, 0
            while dropped < LINGER_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    break
                dropped += len(data)
        except (OSError, ValueError):
            pass

    def peer_closed(self) -> bool:
        """Whether the client has closed its end (readable, yet nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):  # reset by the peer, or closed
            return True


class BoundedServer(ThreadingHTTPServer):
    """One daemon thread per connection, at most `limits.max_connections` at
    once; one more is answered 503 (Retry-After) and closed."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    busy_message = "too many connections to this server at once; retry later (--max-connections)"

    def __init__(self, address: Any, handler: type[BaseHTTPRequestHandler], limits: Limits | None = None):
        self.limits = limits or Limits()
        self._slots = threading.BoundedSemaphore(self.limits.max_connections)
        self.refused_busy = 0  # connections answered 503
        self._busy_logged = float("-inf")
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused_busy += 1
            if time.monotonic() - self._busy_logged >= 1.0:  # a flood is a line a second, not a line a connection
                self._busy_logged = time.monotonic()
                log.warning("refused a connection from %s with 503: %d connections open (--max-connections); %d refused so far",
                            client_address[0], self.limits.max_connections, self.refused_busy)
            self._answer_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _answer_busy(self, request: socket.socket) -> None:
        """503 on the accepting thread, which must not wait for the client: a
        short timeout, and what has arrived of the request is read first so
        that closing does not reset the connection before the answer is read."""
        data = json.dumps({"error": {"message": self.busy_message, "type": "overloaded_error"}}).encode()
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                f"Retry-After: {BUSY_RETRY_AFTER_S}\r\nConnection: close\r\n\r\n").encode()
        try:
            request.setblocking(False)
            try:
                request.recv(65536)
            except BlockingIOError:
                pass
            request.settimeout(0.5)
            request.sendall(head + data)
            request.shutdown(socket.SHUT_WR)
            # A moment for the rest of the request to arrive and be dropped (closing on unread data resets).
            deadline = time.monotonic() + BUSY_DRAIN_S
            while (left := deadline - time.monotonic()) > 0 and select.select([request], [], [], left)[0]:
                if not request.recv(65536):
                    break
        except OSError:
            pass
        finally:
            self.shutdown_request(request)


__all__ = [
    "BoundedHandler", "BoundedServer", "CLIENT_GONE", "DEFAULT_MAX_BODY_MB", "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_READ_TIMEOUT_S", "Limits", "add_limit_arguments", "token_matches",
]
