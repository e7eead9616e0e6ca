"""`tripost serve-teacher`: any teacher as an OpenAI- and Anthropic-shaped HTTP service.

Endpoints
    POST /v1/chat/completions   OpenAI Chat Completions shape
    POST /v1/messages           Anthropic Messages shape
    GET  /v1/models             the one model served
    OpenAI Batch API            POST /v1/files (purpose=batch), GET /v1/files[/{id}[/content]],
                                POST /v1/batches, GET /v1/batches[/{id}], POST /v1/batches/{id}/cancel
    Anthropic Message Batches   POST /v1/messages/batches, GET /v1/messages/batches[/{id}[/results]],
                                POST /v1/messages/batches/{id}/cancel
                                (batches.py: in memory only, forgotten on restart; each item is
                                answered by the same code as a live request)
    GET  /stats                 requests by status, path and injected fault, the sampling
                                parameters they carried, the most answered at once, batch counters
                                ("batches": created, openai, anthropic, requests, succeeded, errored,
                                expired, canceled) (no token needed; batch routes by template,
                                e.g. /v1/batches/{id})
    GET  /health                liveness (no token needed)

Authentication
    Every /v1 request must carry the server's token the way the SDKs send an
    API key: `Authorization: Bearer TOKEN` (openai) or `x-api-key: TOKEN`
    (anthropic); anything else is answered 401 before the request is read
    any further. Without it any process that can reach the port could use the
    teacher, and in proxy mode spend the operator's API key upstream. The
    token is given (`--token`, `TRIPOST_SERVE_TOKEN`) or generated; it never
    appears in a log line or an error message. /stats and /health carry counts
    only, no content, and stay open so that a monitor needs no secret.

What a request may cost (bounds.py, shared with serve-student)
    The token is checked before any byte of the body is read; then the
    declared Content-Length: negative, non-numeric or conflicting is a 400,
    chunked a 411, over `--max-body-mb` (64 by default) a 413, all without
    reading; then the body, which must arrive within `--read-timeout`
    seconds (30; else 408). A request answered without reading its body ends
    its connection. At most `--max-connections` (64) connections are served
    at once, one thread each; one more is answered 503 with Retry-After.

How a request is answered
    - an LLM teacher (openai:, anthropic:, hf:) is exposed as a chat proxy:
      the messages go to its backend (through its cache and retries) and the
      backend's text comes back. An upstream error comes back with its own
      status (401 stays 401, an exhausted 529 stays 529; a timeout is 504, an
      unreachable or malformed upstream 502), as one log line, never a 500
      with a traceback. Only answers that pass the prompted teacher's
      validation of the request block are cached (non-empty ones for a
      request without a block), as in the teacher itself;
    - any other teacher (scripted, replay:) reads the `<tripost-request>`
      block the prompted teacher appends to its prompts (templates.py) and
      answers with `Feedback: ...` or `Updated Answer: ...` text, exactly
      what the teacher itself returns; an attempt request (the teacher's
      own attempt, sampled at the temperature the request carries) is
      answered by attempts.py: a replay log's recorded attempt, or for the
      scripted teacher a seeded draw of the gold rationale or the family's
      wrong attempt (which needs the gold in the block: `attempt_gold`).

Fault injection (seeded, for testing clients): `fail_rate` answers an error
status drawn from `fail_codes` (429s carry `Retry-After` half of the time;
the code `quota` is a 429 saying the account is out of quota, which a client
must not retry), `latency` sleeps before every answer, `garbage_rate`
answers 200 with text that is not what was asked for, `malformed_rate`
answers 200 with a body a client cannot read (JSON cut short, an HTML page,
a text block whose text is null; the variants in turn).
Batch items draw from the same stream (a failed item is errored with that
status, a malformed one is a 200 item whose content is 5 or null) but sleep
no `latency`; instead `batch_latency` keeps each batch in progress that long
before its items are answered, and `batch_expire_rate` (its own stream,
seeded seed+1) leaves that share of items unanswered, so that their batch
ends expired (`--batch-latency`, `--batch-expire-rate`). The batch
management routes themselves get no injected fault.

A client that goes away before its answer is written (a timeout, a killed
process) is one log line and counts as "disconnected" in /stats, not as a
500 with a BrokenPipeError traceback.

Usage numbers are estimated (4 characters a token) and mimic provider
prompt caching: a prompt prefix (system + all but the last message) of at
least `cache_min_tokens` (1,024 by default, the providers' usual minimum;
`--cache-min-tokens`) seen before counts as cached: OpenAI
`prompt_tokens_details.cached_tokens` (part of `prompt_tokens`), Anthropic
`cache_read_input_tokens` / `cache_creation_input_tokens` (for prefixes
marked with `cache_control`, excluded from `input_tokens`; `cache_creation`
splits the writes by the mark's TTL, 5 minutes or 1 hour). A shorter prefix
is never cached, marked or not, as with the real APIs.

Sampling parameters, as the providers take them today (tripost.teachers.sampling):
a Messages request (live, or an item of a Message Batch created with it)
whose `anthropic-version` header is 2026-10-21 or later is answered 400
`invalid_request_error` when it carries `temperature`, `top_p` or `top_k`,
at any value; a Chat Completions request (live or batch item) for an OpenAI
reasoning model name (o1, o3, o4-mini, gpt-5, gpt-5.4-mini, ...) is
answered 400 for a temperature other than the default 1, and for
`max_tokens` (it takes `max_completion_tokens`). A request without a
temperature is answered at the providers' default, 1.0 (an attempt request
of the scripted sampler then draws per sample).

The server logs no header and no credential: the token is only compared.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

# Re-exported: what was defined here before the split, imported from here still.
from tripost.errors import TripostError
from tripost.serve.batches import match_route
from tripost.serve.bounds import BoundedHandler, BoundedServer, CLIENT_GONE, Limits, token_matches
from tripost.serve.failures import HTTPFailure, WRONG_SHAPE_ANSWERS, error_payload, injected_failure
from tripost.serve.faults import DEFAULT_FAIL_CODES, Faults, parse_fail_codes
from tripost.serve.running import RunningServer, TOKEN_ENV, check_token, is_loopback, new_token
from tripost.serve.stats import BATCH_COUNTERS, DISCONNECTED, Stats
from tripost.serve.teacher_service import CACHE_MIN_TOKENS, TeacherService, estimate_tokens, proxy_answer_check
from tripost.teachers.retry import redact

log = logging.getLogger("tripost.serve")

# 200 bodies a client cannot read, per API flavour: (content type, body).
_MALFORMED = {
    "openai": (
        ("application/json", b'{"choices": [ {not json'),
        ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        ("application/json", json.dumps(WRONG_SHAPE_ANSWERS["openai"]).encode()),
    ),
    "anthropic": (
        ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        ("application/json", json.dumps(WRONG_SHAPE_ANSWERS["anthropic"]).encode()),
        ("application/json", b'{"type": "message", "content": [ {not json'),
    ),
}
# What a client that went away looks like to the handler.
_CLIENT_GONE = CLIENT_GONE


class _Handler(BoundedHandler):
    """serve-teacher's routes; reading and bounding requests is BoundedHandler's (bounds.py)."""

    server_version = "tripost-serve-teacher"
    service: TeacherService  # set on the subclass made per server
    token: str  # likewise
    _answering: str | None = None  # the path of the request being answered, if any

    def log_message(self, format: str, *args: Any) -> None:  # request line only: never headers
        log.debug("%s %s", self.address_string(), redact(format % args))

    def client_gone(self, e: BaseException) -> None:
        # The client closed while we read or wrote: its business, one line.
        if self._answering is not None:
            log.warning("client %s went away before its answer to %s (%s)",
                        self.client_address[0], redact(self._answering), type(e).__name__)
        else:  # reset between requests on a kept-alive connection: nothing was lost
            log.debug("client %s reset an idle connection", self.client_address[0])

    def do_GET(self) -> None:
        self._answering = self.path.split("?")[0]
        self._get()
        self._answering = None  # not reached when the client went away: handle() tells

    def do_POST(self) -> None:
        self._answering = self.path.split("?")[0]
        self._post()
        self._answering = None

    # ------------------------------------------------------------------ auth ---

    def _authorized(self) -> bool:
        """The request carries the token as an SDK sends an API key."""
        return token_matches(self.headers, self.token)

    def _refuse(self, flavour: str, path: str) -> None:
        """401, before any byte of the body is read (the connection then ends: bounds.py)."""
        log.info("refused %s %s from %s: no valid token", self.command, redact(path), self.client_address[0])
        self._send_error(
            flavour, path, 401,
            "missing or wrong token: send serve-teacher's token as the API key (Authorization: Bearer, or x-api-key)",
            "authentication_error",
        )

    # ---------------------------------------------------------------- routes ---

    def _get(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path == "/stats":
            self._send_json(200, self.service.stats.to_dict(), record=False)
        elif path in ("", "/health", "/healthz"):
            self._send_json(200, {"status": "ok"}, path=path)
        elif self._batch_route("GET", path):
            pass
        elif not self._authorized():
            self._refuse("openai", path)
        elif path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [{"id": self.service.model, "object": "model", "owned_by": "tripost"}]}, path=path)
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}}, path=path)

    def _post(self) -> None:
        # The token first, then the route, then the body's declared length, and only then the body.
        path = self.path.split("?")[0].rstrip("/")
        if self._batch_route("POST", path):
            return
        flavour = "anthropic" if path.endswith("/messages") else "openai"
        if not self._authorized():
            self._refuse(flavour, path)
            return
        if not path.endswith(("/chat/completions", "/messages")):
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}}, path=path)
            return
        self.service.stats.enter()
        try:
            with self._errors_answered(flavour, path):
                self._answer(flavour, path)
        finally:
            self.service.stats.leave()

    def _answer(self, flavour: str, path: str) -> None:
        """A live chat request, read and answered (or a fault injected);
        its errors are answered by `_errors_answered`."""
        body = self._read_body()
        self.service.stats.sampling(body)
        if self.service.faults.latency:
            time.sleep(self.service.faults.latency)
        if self.peer_closed():
            # Gone while we waited: answering (in proxy mode, paying upstream) is wasted.
            self.service.stats.record(path, DISCONNECTED)
            log.warning("client %s went away before its answer to %s", self.client_address[0], redact(path))
            self.close_connection = True
            return
        fault = self.service.draw_fault()
        if fault is not None and fault[0] == "fail":
            self._send_failure(flavour, path, *fault[1])
            return
        if fault is not None and fault[0] == "malformed":
            variants = _MALFORMED[flavour]
            ctype, data = variants[fault[1] % len(variants)]
            self._send_bytes(200, data, ctype, path=path, fault=f"malformed_{fault[1] % len(variants)}")
            return
        garbage = fault[1] if fault is not None else None
        if flavour == "openai":
            payload = self.service.openai_completion(body, garbage=garbage)
        else:
            payload = self.service.anthropic_message(body, garbage=garbage, api_version=self.headers.get("anthropic-version") or "")
        self._send_json(200, payload, path=path, fault="garbage" if fault else None)

    def _batch_route(self, method: str, path: str) -> bool:
        """Answer `path` if it is a Batch API route (batches.py), in its
        provider's error shape, recorded under its template; else False.
        The token before the body, as for the live routes. No injected fault
        and no latency here: those are for the items."""
        route = match_route(method, path)
        if route is None:
            return False
        if not self._authorized():
            self._refuse(route.flavour, route.template)
            return True
        with self._errors_answered(route.flavour, route.template):
            body = self.read_body() if method == "POST" else b""
            host = self.headers.get("host") or "%s:%s" % self.server.server_address[:2]
            reply = self.service.batches.handle(route, body, self.headers.get("content-type") or "", host,
                                                api_version=self.headers.get("anthropic-version") or "")
            self._send_bytes(reply.status, reply.data, reply.content_type, path=route.template)
        return True

    @contextlib.contextmanager
    def _errors_answered(self, flavour: str, path: str) -> Iterator[None]:
        """An error raised while answering `path`, answered in `flavour`'s
        shape: an HTTPFailure with its status, anything else a 500."""
        try:
            yield
        except _CLIENT_GONE:
            raise  # handle() logs it: there is nobody to answer
        except HTTPFailure as e:
            self._send_error(flavour, path, e.status, str(e), e.kind, headers=e.headers, param=e.param, code=e.code)
        except Exception as e:  # a bug here must answer 500 (no traceback to the client), not hang the client
            log.exception("internal error answering %s", path)
            self._send_error(flavour, path, 500, f"internal error: {type(e).__name__}", "api_error")

    # ------------------------------------------------------------- responses ---

    def _send_failure(self, flavour: str, path: str, code: int | str, with_retry_after: bool) -> None:
        e = injected_failure(code, self.service.faults.retry_after if with_retry_after else None)
        self._send_error(flavour, path, e.status, str(e), e.kind, headers=e.headers, fault=f"fail_{code}")

    def _send_error(
        self, flavour: str, path: str, status: int, message: str, kind: str,
        headers: dict[str, str] | None = None, fault: str | None = None, param: str | None = None, code: str | None = None,
    ) -> None:
        self._send_json(status, error_payload(flavour, message, kind, param=param, code=code), path=path, headers=headers, fault=fault)

    def _read_body(self) -> dict[str, Any]:
        raw = self.read_body()  # bounded: bounds.BoundedHandler
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HTTPFailure(400, "the request body is not valid JSON") from None
        except RecursionError:
            raise HTTPFailure(400, "the request body nests too deep") from None
        if not isinstance(body, dict):
            raise HTTPFailure(400, "the request body must be a JSON object")
        if body.get("stream"):
            raise HTTPFailure(400, "streaming is not supported by serve-teacher")
        return body

    def _send_json(
        self, status: int, payload: Any, *, path: str | None = None, headers: dict[str, str] | None = None,
        fault: str | None = None, record: bool = True,
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send_bytes(status, data, "application/json", path=path, headers=headers, fault=fault, record=record)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, *, path: str | None = None,
        headers: dict[str, str] | None = None, fault: str | None = None, record: bool = True,
    ) -> None:
        # Counted before writing, so a client that reads /stats right after
        # its answer sees it; moved to "disconnected" if the write fails.
        if record:
            self.service.stats.record(path or self.path, status, fault)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except _CLIENT_GONE:
            if record:
                self.service.stats.disconnected(status)
            raise


class _Server(BoundedServer):
    """One thread per connection, at most `Limits.max_connections` (bounds.py)."""


def make_server(service: TeacherService, host: str = "127.0.0.1", port: int = 0, *, token: str,
                limits: Limits | None = None) -> ThreadingHTTPServer:
    """A server answering only requests that carry `token`, reading and
    holding no more than `limits` allow (bounds.py; default `Limits()`).
    Warns (log WARNING) when the address it bound is reachable from other
    machines."""
    handler = type("Handler", (_Handler,), {"service": service, "token": check_token(token)})
    try:
        httpd = _Server((host, port), handler, limits)
    except OSError as e:
        raise TripostError(f"serve-teacher: cannot listen on {host}:{port} ({e.strerror})") from None
    bound = str(httpd.server_address[0])
    if not is_loopback(bound):
        log.warning(
            "WARNING: listening on %s, which is not loopback: other machines can reach this teacher. Anyone with "
            "the token can use it%s, and plain HTTP carries the token and every prompt unencrypted. "
            "Use --host 127.0.0.1 unless that is what you want.",
            bound, " and spend the upstream API key" if _is_proxy(service) else "",
        )
    return httpd


def _is_proxy(service: TeacherService) -> bool:
    # Imported here, not at the top: `tripost --help` loads this module (serve_cmd), and the
    # verbs that never reach a teacher (buffer, replay) must not load its stack (tests/test_replay.py).
    from tripost.teachers.prompted import PromptedTeacher

    return isinstance(service.teacher, PromptedTeacher)


def start_server(
    teacher: Any, *, host: str = "127.0.0.1", port: int = 0, model: str = "tripost-teacher",
    faults: Faults | None = None, token: str | None = None, cache_min_tokens: int = CACHE_MIN_TOKENS,
    limits: Limits | None = None,
) -> RunningServer:
    """Serve `teacher` in a daemon thread; port 0 picks a free one. Without
    `token` a fresh one is made: `RunningServer.token`."""
    service = TeacherService(teacher, model=model, faults=faults, cache_min_tokens=cache_min_tokens)
    token = token if token is not None else new_token()
    return RunningServer.start(make_server(service, host, port, token=token, limits=limits), service, token,
                               "tripost-serve-teacher")


__all__ = [
    "BATCH_COUNTERS", "CACHE_MIN_TOKENS", "DEFAULT_FAIL_CODES", "DISCONNECTED", "TOKEN_ENV", "Faults", "RunningServer",
    "Stats", "TeacherService", "check_token", "estimate_tokens", "is_loopback", "make_server", "new_token",
    "parse_fail_codes", "proxy_answer_check", "start_server",
]
