"""What serve-teacher and serve-student share to run: the token clients
send as their API key, whether an address is this machine only, and a
server running in a background thread (`RunningServer`)."""

from __future__ import annotations

import ipaddress
import secrets
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from tripost.errors import TripostError
from tripost.teachers.retry import register_secret

TOKEN_ENV = "TRIPOST_SERVE_TOKEN"


def new_token() -> str:
    """A fresh random token (32 url-safe characters after the prefix)."""
    return "tpst-" + secrets.token_urlsafe(24)


def check_token(token: str, source: str = "--token") -> str:
    """The token, refused when a header could not carry it or it is too short
    to protect anything; remembered so that `redact` hides it."""
    if len(token) < 8 or any(c.isspace() or not c.isprintable() for c in token):
        raise TripostError(f"serve-teacher: {source} must be at least 8 printable characters without spaces")
    register_secret(token)
    return token


def is_loopback(host: str) -> bool:
    """Whether an address is this machine only (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class RunningServer:
    """A server running in a background thread (tests, benchmarks; serve-teacher
    and serve-student alike)."""

    httpd: ThreadingHTTPServer
    thread: threading.Thread
    service: Any  # TeacherService, or serve-student's StudentService
    token: str = field(repr=False)  # what clients send as their API key

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def stats(self) -> dict[str, Any]:
        return self.service.stats.to_dict()

    @classmethod
    def start(cls, httpd: ThreadingHTTPServer, service: Any, token: str, name: str) -> "RunningServer":
        """Serve `httpd` in a daemon thread called `name`."""
        thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)
        thread.start()
        return cls(httpd=httpd, thread=thread, service=service, token=token)

    def stop(self) -> None:
        batches = getattr(self.service, "batches", None)
        if batches is not None:
            batches.close()  # the batch workers stop between items
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
