"""The small chat interface every LLM teacher is built on.

A `ChatBackend` turns one `ChatRequest` (system prompt, messages, sampling
parameters) into one `ChatResponse` (text and token usage). Backends know
nothing about tasks, prompts, retries or caching: the prompted teacher
(prompted.py) writes the prompts and parses the answers, the requester
(requester.py) adds retries, the cache, the concurrency limit and the usage
ledger. So OpenAI, Anthropic, a local transformers model or anything else
plugs in by implementing one coroutine.

Usage is normalised into four separate buckets, because providers count
differently (OpenAI's `cached_tokens` are part of `prompt_tokens`;
Anthropic's `input_tokens` exclude cache reads and writes):

    input_tokens        uncached input, billed at the input price
    cache_read_tokens   input served from the provider's prompt cache
    cache_write_tokens  input written to the provider's prompt cache (of
                        them, cache_write_1h_tokens with Anthropic's 1-hour
                        TTL, which is billed at its own price)
    output_tokens       generated tokens
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from tripost.teachers.sampling import PROVIDER_DEFAULT

# 2: the endpoint joined the key (two servers may call different models by
# one name); keys made by version 1 are never looked up again.
CACHE_KEY_VERSION = 2

# How long an answer may be (issue 32, item 6). A request asks for at most
# `max_tokens` tokens; a token of English is ~4 characters in the BPE
# vocabularies the providers use (serve-teacher estimates 4 too), so an
# answer that obeys the limit is at most ~4 * max_tokens characters. The
# bound is 8 times that, 32 characters a token: room for long tokens (runs
# of spaces or dashes, long words, code) and servers that count loosely,
# while a padded answer (a right answer with a megabyte of text after it)
# is refused: 24,576 characters at the default 768 tokens. Never under
# MIN_ANSWER_CHARS, so a small max_tokens cannot refuse an honest answer.
ANSWER_CHARS_PER_TOKEN = 32
MIN_ANSWER_CHARS = 4096
# The HTTP body around the answer: JSON escapes a character in up to 12
# bytes (a \uXXXX surrogate pair), and the rest of the body (ids, usage, a
# reasoning model's other blocks, which max_tokens bounds too) gets a fixed
# 256 KiB: 557 KB at 768 tokens, however large the body the server sends.
BODY_BYTES_PER_CHAR = 12
BODY_OVERHEAD_BYTES = 256 * 1024


def max_answer_chars(max_tokens: int) -> int:
    """The most characters an answer to a request for `max_tokens` tokens may have."""
    return max(ANSWER_CHARS_PER_TOKEN * max(int(max_tokens), 0), MIN_ANSWER_CHARS)


def max_body_bytes(max_tokens: int) -> int:
    """The most bytes of an HTTP answer body read for a request for `max_tokens` tokens."""
    return BODY_BYTES_PER_CHAR * max_answer_chars(max_tokens) + BODY_OVERHEAD_BYTES


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request, independent of the provider.

    `cache_prefix` is how many leading messages are the same for every request
    of a kind (the few-shot examples): a backend with prompt caching
    (Anthropic) marks them so the provider can reuse them.
    `sample_index` distinguishes repeated samples of the same prompt in the
    on-disk cache; it is never sent. `temperature` None: the request carries
    none and the model samples at its provider's default (sampling.py), which
    the cache key records as "provider default".
    """

    model: str
    system: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int = 512
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    sample_index: int = 0
    cache_prefix: int = 0

    def canonical(self, backend: str, endpoint: str = "") -> dict[str, Any]:
        """Everything that determines the answer, and nothing else (no API
        key, no timeout): the cache key is a hash of this. `endpoint` is the
        backend's server (`tripost.urls.endpoint_id` of its base URL): two servers that
        both serve a "llama-3" need not answer alike."""
        return {
            "v": CACHE_KEY_VERSION,
            "backend": backend,
            "endpoint": endpoint,
            "model": self.model,
            "system": self.system,
            "messages": [[m.role, m.content] for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature if self.temperature is not None else PROVIDER_DEFAULT,
            "stop": list(self.stop),
            "sample_index": self.sample_index,
        }

    def key(self, backend: str, endpoint: str = "") -> str:
        blob = json.dumps(self.canonical(backend, endpoint), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def openai_messages(self) -> list[dict[str, str]]:
        out = [{"role": "system", "content": self.system}] if self.system else []
        out.extend({"role": m.role, "content": m.content} for m in self.messages)
        return out


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # of cache_write_tokens, those kept for 1 hour (Anthropic `ttl: "1h"`)

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(**{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__})

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def buckets(self) -> dict[str, int]:
        """The short names the interaction log uses (replay/README.md); the
        1-hour share of the cache writes only when there is one, so a record
        without it reads as it always has."""
        out = {
            "input": self.input_tokens,
            "output": self.output_tokens,
            "cache_read": self.cache_read_tokens,
            "cache_write": self.cache_write_tokens,
        }
        if self.cache_write_1h_tokens:
            out["cache_write_1h"] = self.cache_write_1h_tokens
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Usage":
        d = d or {}
        return cls(**{k: int(d.get(k) or 0) for k in cls.__dataclass_fields__})

    @classmethod
    def from_openai(cls, usage: Any) -> "Usage":
        """OpenAI: `prompt_tokens` includes `prompt_tokens_details.cached_tokens`."""
        if usage is None:
            return cls()
        prompt = int(get_field(usage, "prompt_tokens") or 0)
        details = get_field(usage, "prompt_tokens_details")
        cached = int(get_field(details, "cached_tokens") or 0) if details is not None else 0
        return cls(
            input_tokens=max(prompt - cached, 0),
            output_tokens=int(get_field(usage, "completion_tokens") or 0),
            cache_read_tokens=cached,
        )

    @classmethod
    def from_anthropic(cls, usage: Any) -> "Usage":
        """Anthropic: `input_tokens` already excludes cache reads and writes;
        `cache_creation` splits the writes by TTL (anthropic/types/cache_creation.py:
        ephemeral_5m_input_tokens, ephemeral_1h_input_tokens), which are billed
        at different prices."""
        if usage is None:
            return cls()
        one_hour = get_field(get_field(usage, "cache_creation"), "ephemeral_1h_input_tokens")
        return cls(
            input_tokens=int(get_field(usage, "input_tokens") or 0),
            output_tokens=int(get_field(usage, "output_tokens") or 0),
            cache_read_tokens=int(get_field(usage, "cache_read_input_tokens") or 0),
            cache_write_tokens=int(get_field(usage, "cache_creation_input_tokens") or 0),
            cache_write_1h_tokens=int(one_hour) if isinstance(one_hour, int) and not isinstance(one_hour, bool) else 0,
        )


def get_field(obj: Any, name: str) -> Any:
    """`obj.name` or `obj[name]`: SDK objects, or plain dicts where an SDK
    built its model from a body it could not validate."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


@dataclass(frozen=True)
class ChatResponse:
    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""  # the model that answered, as the provider names it
    finish_reason: str = ""
    batch_id: str = ""  # the provider batch that answered it (batch.py), billed at the batch price; "" when live

    def to_dict(self) -> dict[str, Any]:
        out = {"text": self.text, "usage": self.usage.to_dict(), "model": self.model, "finish_reason": self.finish_reason}
        if self.batch_id:
            out["batch_id"] = self.batch_id
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ChatResponse":
        return cls(
            text=str(d.get("text", "")),
            usage=Usage.from_dict(d.get("usage")),
            model=str(d.get("model", "")),
            finish_reason=str(d.get("finish_reason", "")),
            batch_id=str(d.get("batch_id", "")),
        )


@runtime_checkable
class ChatBackend(Protocol):
    """One provider and model. `name` is the backend kind ("openai",
    "anthropic", "hf"), `model` what it runs, `endpoint` the server it asks
    (`tripost.urls.endpoint_id` of its base URL; "" for a local model), which the cache key
    holds; `max_concurrency` is a sensible default for in-flight requests (1
    for a local model). A backend may also declare `sampling_rule`
    (sampling.py `SamplingRule`): which temperatures its model takes; one
    that declares none takes any."""

    name: str
    model: str
    endpoint: str
    max_concurrency: int

    async def acomplete(self, request: ChatRequest) -> ChatResponse:
        """Answer one request or raise `ChatError` (see retry.py)."""
        ...

    async def aclose(self) -> None:
        ...
