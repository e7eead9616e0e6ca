"""What the tests of API teachers share: an environment where the real openai
and anthropic SDKs reach only a loopback `serve-teacher`, and its counters."""

from __future__ import annotations

import json
import urllib.request


def isolate_sdks(monkeypatch, tmp_path, token: str) -> None:
    """A fresh TRIPOST_HOME; no SDK variable from the machine; `token` as both keys."""
    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path / "home"))
    for var in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", token)
    monkeypatch.setenv("ANTHROPIC_API_KEY", token)


def point_at(monkeypatch, srv) -> None:
    """Both SDKs at the server `srv`."""
    monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)


def stats(srv) -> dict:
    """The server's counters (requests, parameters seen, ...)."""
    with urllib.request.urlopen(srv.url + "/stats") as r:
        return json.loads(r.read())
