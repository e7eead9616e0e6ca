"""serve-teacher's batch APIs: the OpenAI Batch API and the Anthropic Message Batches API.

Routes (each needs the server's token; errors come in the provider's shape)
    OpenAI      POST /v1/files                      upload (multipart: purpose=batch, file)
                GET  /v1/files, /v1/files/{id}      FileObjects
                GET  /v1/files/{id}/content         the file's bytes (input, output or error file)
                POST /v1/batches                    {"input_file_id", "endpoint", "completion_window", "metadata"?}
                GET  /v1/batches, /v1/batches/{id}  Batch objects
                POST /v1/batches/{id}/cancel
    Anthropic   POST /v1/messages/batches           {"requests": [{"custom_id", "params"}]}
                GET  /v1/messages/batches, /v1/messages/batches/{id}
                GET  /v1/messages/batches/{id}/results   JSONL, once the batch has ended
                POST /v1/messages/batches/{id}/cancel

Files and batches live in this process's memory only: a restart of the
server forgets them all (ids from before answer 404).

How a batch runs: on its own daemon thread, after `Faults.batch_latency`
seconds in progress, item after item, each answered by exactly the code that
answers a live request (TeacherService.openai_completion /
anthropic_message). Each item first draws a fault from the server's seeded
stream, as a live request does: a failure makes the item errored with that
status (`quota`: a 429 insufficient_quota), garbage answers it with garbage
text, a malformed one is a 200 item a client cannot read (OpenAI: content is
the number 5; Anthropic: a text block whose text is null). Then the items
drawn (at creation, in order, from a second stream seeded seed+1) with
probability `Faults.batch_expire_rate` are never answered, and the batch
ends expired (OpenAI status "expired"; Anthropic result type "expired").
A cancelled batch stops between items; the items left are cancelled.
An Anthropic batch answers its items under the `anthropic-version` its
create request carried, as the API does: under 2026-10-21 an item with
`temperature`, `top_p` or `top_k` is errored 400 (server.py).

The items' content is never logged.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.parser import BytesParser
from typing import Any

from tripost.serve.failures import WRONG_SHAPE_ANSWERS, HTTPFailure, error_payload, injected_failure

log = logging.getLogger("tripost.serve")

WINDOW_S = 24 * 3600  # the completion window both APIs give a batch
OPENAI_ENDPOINT = "/v1/chat/completions"
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")
_MAX_LISTED_ERRORS = 100
_NOT_RUN = {  # OpenAI error-file lines of items never answered
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "canceled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
}


# ----------------------------------------------------------------- routes ---


@dataclass(frozen=True)
class Route:
    flavour: str  # "openai" or "anthropic": the error shape
    template: str  # the path as /stats records it
    action: str | None  # None: the path exists, the method does not
    id: str | None = None


_ROUTES = (
    ("openai", "/v1/files", {"GET": "list_files", "POST": "upload"}),
    ("openai", "/v1/files/{id}", {"GET": "file"}),
    ("openai", "/v1/files/{id}/content", {"GET": "file_content"}),
    ("openai", "/v1/batches", {"GET": "list_openai", "POST": "create_openai"}),
    ("openai", "/v1/batches/{id}", {"GET": "get_openai"}),
    ("openai", "/v1/batches/{id}/cancel", {"POST": "cancel"}),
    ("anthropic", "/v1/messages/batches", {"GET": "list_anthropic", "POST": "create_anthropic"}),
    ("anthropic", "/v1/messages/batches/{id}", {"GET": "get_anthropic"}),
    ("anthropic", "/v1/messages/batches/{id}/results", {"GET": "results"}),
    ("anthropic", "/v1/messages/batches/{id}/cancel", {"POST": "cancel"}),
)
_PATTERNS = [(re.compile(t.replace("{id}", "(?P<id>[^/]+)")), f, t, m) for f, t, m in _ROUTES]


def match_route(method: str, path: str) -> Route | None:
    """The batch route `path` (no query, no trailing slash) is, or None."""
    for pattern, flavour, template, methods in _PATTERNS:
        m = pattern.fullmatch(path)
        if m:
            return Route(flavour, template, methods.get(method), m.groupdict().get("id"))
    return None


@dataclass
class Reply:
    status: int
    data: bytes
    content_type: str = "application/json"


def _json(payload: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def _rfc3339(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


# ------------------------------------------------------------------ state ---


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: float = field(default_factory=time.time)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "file", "bytes": len(self.data), "created_at": int(self.created_at),
            "filename": self.filename, "purpose": self.purpose, "status": "processed",
            "expires_at": None, "status_details": None,
        }


@dataclass
class _Item:
    custom_id: str
    body: dict[str, Any]
    expire: bool  # drawn never to be answered
    id: str = field(default_factory=lambda: _new_id("batch_req_"))
    outcome: str | None = None  # succeeded, errored, expired, canceled
    status: int = 0  # the HTTP status a live request would have had
    payload: dict[str, Any] | None = None  # the answer, or the error body
    request_id: str = field(default_factory=lambda: _new_id("req_"))


@dataclass
class _Batch:
    id: str
    flavour: str
    items: list[_Item]
    status: str
    created_at: float = field(default_factory=time.time)
    times: dict[str, float] = field(default_factory=dict)  # in_progress, cancelling, completed, ...
    wake: threading.Event = field(default_factory=threading.Event)  # cancel (or the server closing)
    cancelled: bool = False
    api_version: str = ""  # Anthropic: the create request's anthropic-version, under which its items are answered
    # OpenAI only
    input_file_id: str = ""
    endpoint: str = OPENAI_ENDPOINT
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None
    errors: dict[str, Any] | None = None
    invalid: dict[str, Any] | None = None  # the errors found at creation, shown once "validated"
    output_file_id: str | None = None
    error_file_id: str | None = None

    def count(self, *outcomes: str) -> int:
        return sum(1 for i in self.items if i.outcome in outcomes)


class BatchStore:
    """The files and batches of one server, and the threads running them."""

    def __init__(self, service: Any):
        self.service = service  # TeacherService
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self._expire_rng = random.Random(service.faults.seed + 1)
        self._closing = threading.Event()

    def close(self) -> None:
        """Stop every running batch between two items (the server is going away)."""
        self._closing.set()
        with self._lock:
            for b in self._batches.values():
                b.wake.set()

    def handle(self, route: Route, body: bytes, content_type: str, host: str, api_version: str = "") -> Reply:
        """The answer to one request on `route`; HTTPFailure for the client's
        mistakes. `api_version`: the request's anthropic-version header."""
        if route.action is None:
            raise HTTPFailure(405, f"{route.template} does not take this method")
        if route.action == "upload":
            return self._upload(body, content_type)
        if route.action in ("create_openai", "create_anthropic"):
            return self._create(route.flavour, _json_body(body), api_version)
        if route.action in ("list_files", "list_openai", "list_anthropic"):
            return self._list(route.action, host)
        if route.action in ("file", "file_content"):
            with self._lock:
                f = self._files.get(route.id or "")
            if f is None:
                raise HTTPFailure(404, f"No such File object: {route.id}", "invalid_request_error")
            return _json(f.view()) if route.action == "file" else Reply(200, f.data, "application/octet-stream")
        b = self._batch(route)
        if route.action == "cancel":
            with self._lock:
                if b.status in ("completed", "expired", "failed", "cancelled", "ended"):
                    raise HTTPFailure(409, f"Cannot cancel a batch with status '{b.status}'", "invalid_request_error")
                if not b.cancelled:
                    b.cancelled = True
                    b.status = "cancelling" if b.flavour == "openai" else "canceling"
                    b.times["cancelling"] = time.time()
                    b.wake.set()
        elif route.action == "results":
            with self._lock:
                if b.status != "ended":
                    raise HTTPFailure(400, f"message batch {b.id} has not ended yet (processing_status {b.status}): "
                                           "its results are available once it has ended")
                lines = [{"custom_id": i.custom_id, "result": _anthropic_result(i)} for i in b.items]
            return Reply(200, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8"),
                         "application/binary")
        return _json(self._view(b, host))

    # ------------------------------------------------------------ creation ---

    def _upload(self, body: bytes, content_type: str) -> Reply:
        usage = "POST /v1/files takes multipart/form-data with the fields purpose (batch) and file"
        if not content_type.lower().startswith("multipart/form-data"):
            raise HTTPFailure(400, usage)
        try:
            msg = BytesParser(policy=policy.default).parsebytes(
                b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
            )
        except (UnicodeEncodeError, ValueError):
            raise HTTPFailure(400, usage) from None
        parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()} if msg.is_multipart() else {}
        if "purpose" not in parts or "file" not in parts:
            raise HTTPFailure(400, usage)
        purpose = (parts["purpose"].get_payload(decode=True) or b"").decode("utf-8", "replace").strip()
        if purpose != "batch":
            raise HTTPFailure(400, f"serve-teacher takes files with purpose 'batch' only, not {purpose!r}")
        data = parts["file"].get_payload(decode=True) or b""
        f = _File(_new_id("file-"), str(parts["file"].get_filename() or "upload.jsonl"), purpose, data)
        with self._lock:
            self._files[f.id] = f
        return _json(f.view())

    def _create(self, flavour: str, body: dict[str, Any], api_version: str = "") -> Reply:
        errors: list[dict[str, Any]] = []
        if flavour == "openai":
            requests, errors, b = self._openai_batch(body)
        else:
            requests = _anthropic_requests(body)
            b = _Batch(_new_id("msgbatch_"), "anthropic", [], "in_progress", api_version=api_version)
        with self._lock:  # the expiry draws: in creation order, item after item
            b.items = [_Item(cid, params, self._expire_rng.random() < self.service.faults.batch_expire_rate)
                       for cid, params in requests]
            self._batches[b.id] = b
        stats = self.service.stats
        stats.batch("created", flavour)
        stats.batch("requests", n=len(b.items))
        for item in b.items:
            stats.sampling(item.body)
        if errors:
            b.invalid = {"object": "list", "data": errors[:_MAX_LISTED_ERRORS]}
        reply = _json(self._view(b, ""))  # as created: OpenAI "validating", Anthropic "in_progress"
        threading.Thread(target=self._run, args=(b,), name=f"tripost-{b.id}", daemon=True).start()
        return reply

    def _openai_batch(self, body: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]], _Batch]:
        file_id = body.get("input_file_id")
        with self._lock:
            f = self._files.get(file_id) if isinstance(file_id, str) else None
        if f is None:
            raise HTTPFailure(404, f"No such File object: {file_id}", "invalid_request_error")
        if f.purpose != "batch":
            raise HTTPFailure(400, f"file {f.id} has purpose {f.purpose!r}, a batch needs purpose 'batch'")
        if body.get("endpoint") != OPENAI_ENDPOINT:
            raise HTTPFailure(400, f"endpoint: serve-teacher batches take {OPENAI_ENDPOINT} only")
        if body.get("completion_window") != "24h":
            raise HTTPFailure(400, "completion_window: must be '24h'")
        metadata = body.get("metadata")
        if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
            raise HTTPFailure(400, "metadata: must be an object of strings")
        requests, errors = _openai_requests(f.data)
        b = _Batch(_new_id("batch_"), "openai", [], "validating", input_file_id=f.id, metadata=metadata)
        return ([] if errors else requests), errors, b

    # ------------------------------------------------------------- running ---

    def _run(self, b: _Batch) -> None:
        try:
            with self._lock:
                b.errors = b.invalid
                if b.errors is None and not b.cancelled:  # validated (OpenAI; Anthropic validates at once)
                    b.status = "in_progress"
                    b.times["in_progress"] = time.time()
            if b.errors is None and self.service.faults.batch_latency:
                b.wake.wait(self.service.faults.batch_latency)
            for item in b.items:
                if b.errors is not None or b.wake.is_set():
                    break
                fault = self.service.draw_fault()
                if item.expire:
                    self._settle(item, "expired", 0, None)
                else:
                    self._answer(b, item, fault)
        except Exception:  # a bug: the batch still ends, its unanswered items errored
            log.exception("internal error running batch %s", b.id)
            for item in b.items:
                if item.outcome is None:
                    self._settle(item, "errored", 500, error_payload(b.flavour, "internal error", "api_error"))
        if self._closing.is_set():
            return
        self._finish(b)

    def _answer(self, b: _Batch, item: _Item, fault: tuple[str, Any] | None) -> None:
        flavour, name = b.flavour, None
        try:
            if fault is not None and fault[0] == "fail":
                name = f"batch_fail_{fault[1][0]}"
                raise injected_failure(fault[1][0])
            if fault is not None and fault[0] == "malformed":
                name, payload = "batch_malformed", dict(WRONG_SHAPE_ANSWERS[flavour])
            else:
                name = "batch_garbage" if fault is not None else None
                garbage = fault[1] if fault is not None else None
                if flavour == "openai":
                    payload = self.service.openai_completion(item.body, garbage=garbage)
                else:
                    payload = self.service.anthropic_message(item.body, garbage=garbage, api_version=b.api_version)
            self._settle(item, "succeeded", 200, payload, name)
        except HTTPFailure as e:
            self._settle(item, "errored", e.status, error_payload(flavour, str(e), e.kind, param=e.param, code=e.code), name)
        except Exception as e:  # a bug answering one item: that item is a 500
            log.exception("internal error answering an item of a batch")
            self._settle(item, "errored", 500, error_payload(flavour, f"internal error: {type(e).__name__}", "api_error"))

    def _settle(self, item: _Item, outcome: str, status: int, payload: dict[str, Any] | None, fault: str | None = None) -> None:
        with self._lock:
            item.outcome, item.status, item.payload = outcome, status, payload
        self.service.stats.batch(outcome, fault=fault)

    def _finish(self, b: _Batch) -> None:
        with self._lock:
            now = time.time()
            left = [i for i in b.items if i.outcome is None]
            for item in left:
                item.outcome = "canceled"
            if b.flavour == "anthropic":
                b.status = "ended"
                b.times["ended"] = now
            else:
                b.times["finalizing"] = now
                if b.errors is not None:
                    b.status = "failed"
                elif b.cancelled:
                    b.status = "cancelled"
                elif b.count("expired"):
                    b.status = "expired"
                else:
                    b.status = "completed"
                b.times[b.status] = now
                ok = [_openai_line(i) for i in b.items if i.outcome == "succeeded"]
                bad = [_openai_line(i) for i in b.items if i.outcome != "succeeded"]
                for lines, kind in ((ok, "output"), (bad, "error")):
                    if lines:
                        data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")
                        f = _File(_new_id("file-"), f"{b.id}_{kind}.jsonl", "batch_output", data, now)
                        self._files[f.id] = f
                        setattr(b, f"{kind}_file_id", f.id)
        if left:
            self.service.stats.batch("canceled", n=len(left))
        log.info("batch %s ended: %d succeeded, %d errored, %d expired, %d canceled", b.id,
                 b.count("succeeded"), b.count("errored"), b.count("expired"), b.count("canceled"))

    # --------------------------------------------------------------- views ---

    def _batch(self, route: Route) -> _Batch:
        with self._lock:
            b = self._batches.get(route.id or "")
        if b is None or b.flavour != route.flavour:
            if route.flavour == "anthropic":
                raise HTTPFailure(404, f"message batch {route.id} not found", "not_found_error")
            raise HTTPFailure(404, f"No such Batch object: {route.id}", "invalid_request_error")
        return b

    def _list(self, action: str, host: str) -> Reply:
        with self._lock:
            if action == "list_files":
                data = [f.view() for f in self._files.values()]
            else:
                flavour = "openai" if action == "list_openai" else "anthropic"
                data = [b for b in self._batches.values() if b.flavour == flavour]
        if action != "list_files":
            data = [self._view(b, host) for b in data]
        data.reverse()  # newest first, as the APIs list
        page: dict[str, Any] = {"data": data, "has_more": False,
                                "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
        if action != "list_anthropic":
            page["object"] = "list"
        return _json(page)

    def _view(self, b: _Batch, host: str) -> dict[str, Any]:
        with self._lock:
            return _openai_view(b) if b.flavour == "openai" else _anthropic_view(b, host)


def _openai_view(b: _Batch) -> dict[str, Any]:
    def at(key: str) -> int | None:
        return int(b.times[key]) if key in b.times else None

    return {
        "id": b.id, "object": "batch", "endpoint": b.endpoint, "errors": b.errors, "input_file_id": b.input_file_id,
        "completion_window": b.completion_window, "status": b.status,
        "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
        "created_at": int(b.created_at), "in_progress_at": at("in_progress"), "expires_at": int(b.created_at + WINDOW_S),
        "finalizing_at": at("finalizing"), "completed_at": at("completed"), "failed_at": at("failed"),
        "expired_at": at("expired"), "cancelling_at": at("cancelling"), "cancelled_at": at("cancelled"),
        "request_counts": {"total": len(b.items), "completed": b.count("succeeded"),
                           "failed": b.count("errored", "expired", "canceled")},
        "metadata": b.metadata,
    }


def _anthropic_view(b: _Batch, host: str) -> dict[str, Any]:
    ended = b.status == "ended"
    if ended and not _HOST.fullmatch(host):
        raise HTTPFailure(400, "the Host header is not host[:port]: no results_url can be made of it")
    counts = {k: b.count(k) if ended else 0 for k in ("succeeded", "errored", "canceled", "expired")}
    return {
        "id": b.id, "type": "message_batch", "processing_status": b.status,
        "request_counts": {"processing": 0 if ended else len(b.items), **counts},
        "created_at": _rfc3339(b.created_at), "expires_at": _rfc3339(b.created_at + WINDOW_S),
        "ended_at": _rfc3339(b.times.get("ended")), "archived_at": None,
        "cancel_initiated_at": _rfc3339(b.times.get("cancelling")),
        "results_url": f"http://{host}/v1/messages/batches/{b.id}/results" if ended else None,
    }


def _openai_line(i: _Item) -> dict[str, Any]:
    if i.outcome in _NOT_RUN:
        code, message = _NOT_RUN[i.outcome]
        return {"id": i.id, "custom_id": i.custom_id, "response": None, "error": {"code": code, "message": message}}
    response = {"status_code": i.status, "request_id": i.request_id, "body": i.payload}
    return {"id": i.id, "custom_id": i.custom_id, "response": response, "error": None}


def _anthropic_result(i: _Item) -> dict[str, Any]:
    if i.outcome == "succeeded":
        return {"type": "succeeded", "message": i.payload}
    if i.outcome == "errored":
        return {"type": "errored", "error": i.payload}
    return {"type": i.outcome}


# ------------------------------------------------------------- validation ---


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPFailure(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPFailure(400, "the request body must be a JSON object")
    return body


def _openai_requests(data: bytes) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """The (custom_id, body) requests of an OpenAI batch input file, and the
    errors of its bad lines (as Batch.errors.data lists them)."""
    requests: list[tuple[str, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def bad(n: int | None, message: str, code: str = "invalid_request") -> None:
        errors.append({"code": code, "message": message, "line": n, "param": None})

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        bad(None, "The input file is not UTF-8 text", "invalid_file_format")
        return requests, errors
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except json.JSONDecodeError:
            bad(n, f"Line {n} is not valid JSON")
            continue
        if not isinstance(req, dict):
            bad(n, f"Line {n} is not a JSON object")
            continue
        cid = req.get("custom_id")
        if not isinstance(cid, str) or not cid:
            bad(n, f"Line {n}: custom_id must be a non-empty string")
        elif cid in seen:
            bad(n, f"Line {n}: the custom_id {cid!r} is used more than once")
        elif req.get("method") != "POST":
            bad(n, f"Line {n}: method must be POST")
        elif req.get("url") != OPENAI_ENDPOINT:
            bad(n, f"Line {n}: url must be {OPENAI_ENDPOINT}, the batch's endpoint")
        elif not isinstance(req.get("body"), dict):
            bad(n, f"Line {n}: body must be an object")
        else:
            requests.append((cid, req["body"]))
        if isinstance(cid, str):
            seen.add(cid)
    if not requests and not errors:
        bad(None, "The input file contains no requests", "empty_file")
    return requests, errors


def _anthropic_requests(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (custom_id, params) of a Message Batches create body; HTTPFailure 400 if bad."""
    reqs = body.get("requests")
    if not isinstance(reqs, list) or not reqs:
        raise HTTPFailure(400, "requests: must be a non-empty list")
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for n, r in enumerate(reqs):
        if not isinstance(r, dict):
            raise HTTPFailure(400, f"requests.{n}: must be an object with custom_id and params")
        cid = r.get("custom_id")
        if not isinstance(cid, str) or not _CUSTOM_ID.fullmatch(cid):
            raise HTTPFailure(400, f"requests.{n}.custom_id: must be 1-64 characters of a-z, A-Z, 0-9, _ and -")
        if cid in seen:
            raise HTTPFailure(400, f"requests.{n}.custom_id: {cid!r} is used more than once; custom_ids must be unique")
        seen.add(cid)
        params = r.get("params")
        if not isinstance(params, dict):
            raise HTTPFailure(400, f"requests.{n}.params: must be an object")
        for name in ("model", "max_tokens", "messages"):
            if name not in params:
                raise HTTPFailure(400, f"requests.{n}.params.{name}: field required")
        if params.get("stream"):
            raise HTTPFailure(400, f"requests.{n}.params.stream: batch requests cannot stream")
        out.append((cid, params))
    return out
