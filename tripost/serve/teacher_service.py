"""serve-teacher's answering part (`TeacherService`): a teacher, fault
draws and usage accounting, for live requests and batch items alike; the
OpenAI and Anthropic request bodies it reads and the answers it makes."""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from tripost.errors import TripostError
from tripost.format import UPDATED_PREFIX, parse_feedback, parse_rationale
from tripost.serve.attempts import answer_attempt
from tripost.serve.batches import BatchStore
from tripost.serve.failures import HTTPFailure, upstream_failure
from tripost.serve.faults import Faults, GARBAGE
from tripost.serve.stats import Stats
from tripost.teachers.chat import ChatMessage, ChatRequest, ChatResponse
from tripost.teachers.retry import ChatError, redact
from tripost.teachers.sampling import API_DEFAULT_TEMPERATURE, SAMPLING_PARAMS, anthropic_takes_sampling, openai_reasoning_model, rule_of
from tripost.teachers.templates import parse_block

log = logging.getLogger("tripost.serve")

CACHE_MIN_TOKENS = 1024  # the shortest prefix OpenAI and most Claude models cache


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


def proxy_answer_check(messages: list[ChatMessage]) -> Callable[[ChatResponse], bool]:
    """Which upstream answers the proxy may cache: for a request carrying a
    `<tripost-request>` block, those that pass the prompted teacher's own
    validation (a garbage answer cached here would reach every client for
    good); without one, nothing tells a good answer from a bad one, so at
    least an empty answer is never cached."""
    # Imported here, not at the top: `tripost --help` loads this module (serve_cmd), and the
    # verbs that never reach a teacher (buffer, replay) must not load its stack (tests/test_replay.py).
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
                return ("garbage", self._rng.choice(GARBAGE))
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
        from tripost.teachers.prompted import PromptedTeacher  # here, as in proxy_answer_check

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


# ------------------------------------------------------- request fields ---


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
