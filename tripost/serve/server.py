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

import hashlib
import ipaddress
import json
import logging
import math
import random
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from tripost.errors import TripostError
from tripost.format import UPDATED_PREFIX, parse_feedback, parse_rationale
from tripost.teachers.chat import ChatMessage, ChatRequest, ChatResponse
from tripost.teachers.retry import ChatError, redact, register_secret
from tripost.teachers.sampling import (
    API_DEFAULT_TEMPERATURE,
    SAMPLING_PARAMS,
    anthropic_takes_sampling,
    openai_reasoning_model,
    rule_of,
)
from tripost.teachers.templates import parse_block
from tripost.serve.batches import BatchStore, match_route
from tripost.serve.bounds import CLIENT_GONE, BoundedHandler, BoundedServer, Limits, token_matches
from tripost.serve.failures import QUOTA, WRONG_SHAPE_ANSWERS, HTTPFailure, error_payload, injected_failure, upstream_failure

log = logging.getLogger("tripost.serve")

DEFAULT_FAIL_CODES = (429, 500, 529)
_GARBAGE = (
    "",
    "I am not sure what you mean.",
    "Feedback: In step (99) the part \"nothing\" is incorrect. This is because it does not exist.",
    "Feedback: everything looks great to me!",
    "Updated Answer:\n(1) Something unrelated.\n(2) More of it.",
    "Updated Answer:\n(1) Let us think.\n(Final response) So the answer is",
    "{\"feedback\": \"truncated json",
    "lorem ipsum dolor sit amet, consectetur adipiscing elit",
)


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
TOKEN_ENV = "TRIPOST_SERVE_TOKEN"
DISCONNECTED = "disconnected"  # the /stats status of a request whose client went away
# What a client that went away looks like to the handler.
_CLIENT_GONE = CLIENT_GONE


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


CACHE_MIN_TOKENS = 1024  # the shortest prefix OpenAI and most Claude models cache


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


@dataclass
class Faults:
    fail_rate: float = 0.0
    fail_codes: tuple[int | str, ...] = DEFAULT_FAIL_CODES
    latency: float = 0.0
    garbage_rate: float = 0.0
    retry_after: float = 1.0
    seed: int = 0
    malformed_rate: float = 0.0
    batch_latency: float = 0.0  # seconds a batch stays in progress before its items are answered
    batch_expire_rate: float = 0.0  # share of batch items never answered (the batch ends expired)

    def __post_init__(self) -> None:
        for name in ("fail_rate", "garbage_rate", "malformed_rate", "batch_expire_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise TripostError(f"serve-teacher: --{name.replace('_', '-')} must be between 0 and 1, got {v}")
        if self.latency < 0 or self.retry_after < 0 or self.batch_latency < 0:
            raise TripostError("serve-teacher: --latency, --retry-after and --batch-latency cannot be negative")
        if self.fail_rate > 0 and not self.fail_codes:
            raise TripostError("serve-teacher: --fail-rate needs at least one code in --fail-codes")


def parse_fail_codes(text: str) -> tuple[int | str, ...]:
    """'429,500,529,quota' -> (429, 500, 529, 'quota')."""
    out: list[int | str] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part == QUOTA:
            out.append(QUOTA)
            continue
        try:
            code = int(part)
        except ValueError:
            raise TripostError(f"serve-teacher: bad status code {part!r} in --fail-codes (e.g. 429,500,529,quota)") from None
        if not 400 <= code <= 599:
            raise TripostError(f"serve-teacher: --fail-codes takes error statuses 400-599, got {code}")
        out.append(code)
    return tuple(out)


# /stats "batches": batches created (both APIs, then each), items received, and how items ended.
BATCH_COUNTERS = ("created", "openai", "anthropic", "requests", "succeeded", "errored", "expired", "canceled")


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    by_status: Counter[str] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    # "max_completion_tokens=99", "temperature=0.3", "temperature=absent": how
    # the length limit and the temperature arrived, so a test can see what a
    # client really sent (values of two parameters, never content).
    params: Counter[str] = field(default_factory=Counter)
    # Batch API counters (BATCH_COUNTERS): batches created, items received and how they ended.
    batches: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0  # the most chat requests answered at once
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, path: str, status: int | str, fault: str | None = None) -> None:
        with self.lock:
            self.by_status[str(status)] += 1
            self.by_path[path] += 1
            if fault:
                self.faults[fault] += 1

    def batch(self, *keys: str, n: int = 1, fault: str | None = None) -> None:
        """Count `n` under each of `keys` in "batches" (and a batch item's injected `fault`)."""
        with self.lock:
            for key in keys:
                self.batches[key] += n
            if fault:
                self.faults[fault] += 1

    def sampling(self, body: dict[str, Any]) -> None:
        def shown(v: Any) -> str:  # numbers only: a client's text never lands in /stats
            return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "other"

        with self.lock:
            for name in ("max_tokens", "max_completion_tokens"):
                if name in body:
                    self.params[f"{name}={shown(body[name])}"] += 1
            self.params[f"temperature={shown(body['temperature']) if 'temperature' in body else 'absent'}"] += 1

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def disconnected(self, status: int) -> None:
        """A request recorded with `status` whose client went away before the answer was written."""
        with self.lock:
            self.by_status[str(status)] -= 1
            if self.by_status[str(status)] <= 0:
                del self.by_status[str(status)]
            self.by_status[DISCONNECTED] += 1

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": sum(self.by_path.values()),
                "by_status": dict(self.by_status),
                "by_path": dict(self.by_path),
                "faults": dict(self.faults),
                "params": dict(self.params),
                "batches": {key: self.batches[key] for key in BATCH_COUNTERS},
                "max_in_flight": self.max_in_flight,
                "uptime_s": round(time.time() - self.started, 3),
            }


def proxy_answer_check(messages: list[ChatMessage]) -> Callable[[ChatResponse], bool]:
    """Which upstream answers the proxy may cache: for a request carrying a
    `<tripost-request>` block, those that pass the prompted teacher's own
    validation (a garbage answer cached here would reach every client for
    good); without one, nothing tells a good answer from a bad one, so at
    least an empty answer is never cached."""
    from tripost.teachers.prompted import answer_check

    users = [m for m in messages if m.role == "user"]
    try:
        block = parse_block(users[-1].content) if users else None
    except TripostError:
        block = None
    if block is not None:
        if block.kind == "feedback":
            return answer_check("feedback", block.attempt)
        if block.kind == "attempt":
            return answer_check("attempt", "")
        fb = parse_feedback(block.feedback or "", parse_rationale(block.attempt).n_steps)
        if fb is not None and fb.error_step is not None:
            return answer_check("improve", block.attempt, fb)
    return lambda r: bool(r.text.strip())


class TeacherService:
    """The part that answers: a teacher, fault injection and usage accounting."""

    def __init__(self, teacher: Any, model: str = "tripost-teacher", faults: Faults | None = None,
                 cache_min_tokens: int = CACHE_MIN_TOKENS):
        self.teacher = teacher
        self.model = model
        self.cache_min_tokens = cache_min_tokens
        self.faults = faults or Faults()
        self.stats = Stats()
        self._rng = random.Random(self.faults.seed)
        self._rng_lock = threading.Lock()
        self._malformed = 0
        self._seen_prefixes: set[str] = set()
        self._prefix_lock = threading.Lock()
        self.batches = BatchStore(self)  # the Batch APIs' files and batches, in memory

    # ---------------------------------------------------------------- faults ---

    def draw_fault(self) -> tuple[str, Any] | None:
        """None, ("fail", code), ("garbage", text) or ("malformed", n), from
        the seeded stream; the n-th malformed answer takes the variants in
        turn, so a few requests see every one."""
        f = self.faults
        with self._rng_lock:
            r = self._rng.random()
            if r < f.fail_rate:
                code = self._rng.choice(f.fail_codes)
                with_retry_after = self._rng.random() < 0.5
                return ("fail", (code, with_retry_after))
            garbage = f.fail_rate + (1 - f.fail_rate) * f.garbage_rate
            if r < garbage:
                return ("garbage", self._rng.choice(_GARBAGE))
            if r < garbage + (1 - garbage) * f.malformed_rate:
                self._malformed += 1
                return ("malformed", self._malformed - 1)
        return None

    # --------------------------------------------------------------- answers ---

    def answer(
        self, system: str, messages: list[ChatMessage], max_tokens: int, temperature: float | None, stop: tuple[str, ...] = ()
    ) -> str:
        """The text answering one request; `temperature` None: the request
        carried none (the provider's default)."""
        from tripost.teachers.prompted import PromptedTeacher

        if isinstance(self.teacher, PromptedTeacher):
            try:  # what the upstream model takes (sampling.py): its default travels as none
                sent = rule_of(self.teacher.backend).request_temperature(temperature, "serve-teacher's upstream", "by the request")
            except TripostError as e:
                raise HTTPFailure(400, str(e)) from None
            req = ChatRequest(
                model=self.teacher.backend.model,
                system=system,
                messages=tuple(messages),
                max_tokens=max_tokens,
                temperature=sent,
                stop=stop,
            )
            try:
                out = self.teacher.complete(req, accept=proxy_answer_check(messages))
            except ChatError as e:  # fatal upstream (401, 400, spend limit): passed on as it is
                log.warning("upstream refused a request: %s", e)
                raise upstream_failure(e) from None
            except TripostError as e:  # the backend itself cannot run (e.g. a model that does not load)
                log.warning("the backend failed: %s", redact(str(e)))
                raise HTTPFailure(500, f"the backend failed: {redact(str(e))}", "api_error") from None
            if out.response is None:
                assert out.error is not None
                log.warning("upstream failed: %s", out.error)
                raise upstream_failure(out.error)
            return out.response.text
        users = [m for m in messages if m.role == "user"]
        if not users:
            raise HTTPFailure(400, "no user message")
        try:
            block = parse_block(users[-1].content)
        except TripostError as e:
            raise HTTPFailure(400, str(e)) from None
        if block is None:
            raise HTTPFailure(
                400,
                f"this server runs the {getattr(self.teacher, 'name', 'scripted')} teacher, which needs the "
                "<tripost-request> block that tripost's prompted teacher appends (embed_request=True)",
            )
        try:
            if block.kind == "attempt":
                from tripost.serve.attempts import answer_attempt

                # No temperature: the providers' default, 1.0, at which samples differ.
                sampled_at = temperature if temperature is not None else API_DEFAULT_TEMPERATURE
                return answer_attempt(self.teacher, block, sampled_at, seed=self.faults.seed)
            if block.kind == "feedback":
                reply = self.teacher.feedback(block.problem, block.attempt)
                return f"Feedback: {reply.text}" if reply.text else ""
            fb = parse_feedback(block.feedback or "", parse_rationale(block.attempt).n_steps)
            if fb is None:
                raise HTTPFailure(400, "the feedback in the request block does not parse")
            imp = self.teacher.improve(block.problem, block.attempt, fb)
            return f"{UPDATED_PREFIX}\n{imp.rationale}" if imp.rationale else ""
        except TripostError as e:
            raise HTTPFailure(422, str(e)) from None

    def prompt_usage(
        self, flavour: str, system: str, messages: list[ChatMessage], cacheable: bool
    ) -> tuple[int, int, bool]:
        """(prefix tokens, rest tokens, prefix cacheable) for the caching mimicry
        (one prompt cache per API flavour, as with two providers). `cacheable`:
        the client asked (always, for OpenAI's automatic caching). The third
        value is None when the prefix is not cached at all (not asked, or
        below `cache_min_tokens`), else whether it was seen before (a read)
        or is written now."""
        prefix_text = flavour + "\x00" + system + "".join(f"\x00{m.role}\x00{m.content}" for m in messages[:-1])
        rest = messages[-1].content if messages else ""
        prefix_tokens = estimate_tokens(system) + sum(estimate_tokens(m.content) for m in messages[:-1])
        if not cacheable or len(messages) < 2 or prefix_tokens < self.cache_min_tokens:
            return prefix_tokens, estimate_tokens(rest), None
        key = hashlib.sha256(prefix_text.encode()).hexdigest()
        with self._prefix_lock:
            seen = key in self._seen_prefixes
            self._seen_prefixes.add(key)
        return prefix_tokens, estimate_tokens(rest), seen

    # ------------------------------------------------------------- flavours ---

    def openai_completion(self, body: dict[str, Any], garbage: str | None = None) -> dict[str, Any]:
        """The chat.completion answering an OpenAI Chat Completions `body`
        (`garbage`: this text instead of the teacher's); HTTPFailure when the
        body is bad or the teacher cannot answer. Live requests and batch
        items alike."""
        raw = body.get("messages")
        if not isinstance(raw, list) or not raw:
            raise HTTPFailure(400, "messages must be a non-empty list")
        system_parts: list[str] = []
        messages: list[ChatMessage] = []
        for m in raw:
            if not isinstance(m, dict):
                raise HTTPFailure(400, "each message must be an object")
            text, _ = _text_of(m.get("content", ""))
            role = m.get("role")
            if role in ("system", "developer"):
                system_parts.append(text)
            elif role in ("user", "assistant"):
                messages.append(ChatMessage(role, text))
            else:
                raise HTTPFailure(400, f"unknown role {role!r}")
        system = "\n".join(system_parts)
        temperature = _temperature(body)
        if openai_reasoning_model(str(body.get("model") or "")):
            # OpenAI's reasoning models: the default temperature only, and no max_tokens (sampling.py).
            if temperature is not None and temperature != API_DEFAULT_TEMPERATURE:
                raise HTTPFailure(400, f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. "
                                       "Only the default (1) value is supported.", param="temperature", code="unsupported_value")
            if body.get("max_tokens") is not None:
                raise HTTPFailure(400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                       "Use 'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")
        max_tokens = _int(body, "max_completion_tokens", "max_tokens", default=768)
        stop = body.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else tuple(str(x) for x in stop)
        text = garbage if garbage is not None else self.answer(system, messages, max_tokens, temperature, stop)
        # OpenAI caches long prompt prefixes automatically.
        prefix, rest, seen = self.prompt_usage("openai", system, messages, cacheable=True)
        completion = estimate_tokens(text)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or self.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}],
            "usage": {
                "prompt_tokens": prefix + rest,
                "completion_tokens": completion,
                "total_tokens": prefix + rest + completion,
                "prompt_tokens_details": {"cached_tokens": prefix if seen else 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }

    def anthropic_message(self, body: dict[str, Any], garbage: str | None = None, api_version: str = "") -> dict[str, Any]:
        """The message answering an Anthropic Messages `body`, as
        openai_completion; `api_version`: the request's `anthropic-version`
        header (a batch item: its batch's), which decides whether sampling
        parameters are refused."""
        raw = body.get("messages")
        if not isinstance(raw, list) or not raw:
            raise HTTPFailure(400, "messages: must be a non-empty list")
        if body.get("max_tokens") is None:
            raise HTTPFailure(400, "max_tokens: field required")
        if api_version and not anthropic_takes_sampling(api_version):
            for name in SAMPLING_PARAMS:  # refused at any value, defaults included (sampling.py)
                if name in body:
                    raise HTTPFailure(400, f"{name}: Extra inputs are not permitted")
        system, ttl = _text_of(body.get("system") or "")
        messages: list[ChatMessage] = []
        for m in raw:
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                raise HTTPFailure(400, "messages: each message needs role user or assistant")
            text, m_ttl = _text_of(m.get("content", ""))
            ttl = ttl or m_ttl
            messages.append(ChatMessage(m["role"], text))
        max_tokens = _int(body, "max_tokens", default=768)
        stop = tuple(str(x) for x in body.get("stop_sequences") or ())
        text = garbage if garbage is not None else self.answer(system, messages, max_tokens, _temperature(body), stop)
        prefix, rest, seen = self.prompt_usage("anthropic", system, messages, cacheable=ttl is not None)
        written = prefix if seen is False else 0
        if seen is not None:
            usage: dict[str, Any] = {
                "input_tokens": rest,
                "cache_read_input_tokens": prefix if seen else 0,
                "cache_creation_input_tokens": written,
            }
        else:
            usage = {"input_tokens": prefix + rest, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": written if ttl != "1h" else 0,
                                   "ephemeral_1h_input_tokens": written if ttl == "1h" else 0}
        usage["output_tokens"] = estimate_tokens(text)
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": str(body.get("model") or self.model),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }

# ------------------------------------------------------------ HTTP plumbing ---


def _text_of(content: Any) -> tuple[str, str | None]:
    """(text, the TTL of its `cache_control` mark: "5m", "1h", or None when
    unmarked) of a message content: a string or a list of blocks."""
    if isinstance(content, str):
        return content, None
    if isinstance(content, list):
        parts, ttl = [], None
        for block in content:
            if isinstance(block, dict) and block.get("type", "text") == "text":
                parts.append(str(block.get("text", "")))
                mark = block.get("cache_control")
                if mark is not None and ttl is None:
                    ttl = str(mark.get("ttl") or "5m") if isinstance(mark, dict) else "5m"
        return "".join(parts), ttl
    raise HTTPFailure(400, "message content must be a string or a list of text blocks")


def _temperature(body: dict[str, Any]) -> float | None:
    """The request's temperature, None when it carries none (the provider's default)."""
    value = body.get("temperature")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HTTPFailure(400, "temperature: must be a number")
    return float(value)


def _int(body: dict[str, Any], *names: str, default: int) -> int:
    for n in names:
        if body.get(n) is not None:
            try:
                return int(body[n])
            except (TypeError, ValueError):
                raise HTTPFailure(400, f"{n} must be an integer") from None
    return default


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
        except _CLIENT_GONE:
            raise  # handle() logs it: there is nobody to answer
        except HTTPFailure as e:
            self._send_error(flavour, path, e.status, str(e), e.kind, headers=e.headers, param=e.param, code=e.code)
        except Exception as e:  # a bug here must answer 500, not hang the client
            log.exception("internal error answering %s", path)
            self._send_error(flavour, path, 500, f"internal error: {type(e).__name__}", "api_error")
        finally:
            self.service.stats.leave()

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
        try:
            body = self.read_body() if method == "POST" else b""
            host = self.headers.get("host") or "%s:%s" % self.server.server_address[:2]
            reply = self.service.batches.handle(route, body, self.headers.get("content-type") or "", host,
                                                api_version=self.headers.get("anthropic-version") or "")
            self._send_bytes(reply.status, reply.data, reply.content_type, path=route.template)
        except _CLIENT_GONE:
            raise
        except HTTPFailure as e:
            self._send_error(route.flavour, route.template, e.status, str(e), e.kind, headers=e.headers, param=e.param, code=e.code)
        except Exception as e:  # a bug: 500, no traceback to the client
            log.exception("internal error answering %s", route.template)
            self._send_error(route.flavour, route.template, 500, f"internal error: {type(e).__name__}", "api_error")
        return True

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
