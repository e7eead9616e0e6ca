"""`anthropic:MODEL`: the Messages API through the official `anthropic` SDK.

The SDK reads `ANTHROPIC_API_KEY` (or `ANTHROPIC_AUTH_TOKEN`) and
`ANTHROPIC_BASE_URL`. Sampling parameters: the pinned SDK (2.x) sends
`anthropic-version: 2026-10-21`, under which the API refuses `temperature`,
`top_p` and `top_k` (sampling.py), so a request carries none and the model
samples at its default (1.0); a temperature travels (in `extra_body`, the
2.x SDK having no argument for it) only under an older API version.
The system prompt and the few-shot examples are the
same for every request of a kind, so they can be marked for prompt caching
(`cache_control`), which the provider bills as cache writes and then much
cheaper cache reads (usage.py keeps the buckets apart). But the API caches a
prefix only from a minimum length on (1,024 tokens for many models, 2,048 or
4,096 for some: `cache_minimum`), and most of tripost's few-shot prefixes
are shorter (550-900 tokens by the SmolLM2 tokenizer; logical deduction's
900-1,000: scripts/teacher_prefixes.py, docs/benchmarks/teacher-prefixes.md):
a shorter prefix is marked for nothing. So the prefix is measured first
(`prefix_tokens`, a generous estimate of 2.5 characters a token, so a
borderline prefix is still marked: marking one that is too short costs
nothing, leaving one unmarked that was long enough loses the discount) and
marked only when it can be cached; a model the table does not know (newer
than it) is marked whenever there is a prefix. The provider's answer tells
the rest: a marked prefix it neither wrote to nor read from its cache
(`cache_creation_input_tokens` and `cache_read_input_tokens` both 0) was
below the model's minimum, and says so once (`warn_uncached`).
Message Batches items are marked with the 1-hour TTL (`BATCH_CACHE_TTL`):
a batch runs for minutes to hours, longer than the default 5 minutes keep a
prefix, and Anthropic's batch docs advise the 1-hour cache for it (its
writes are billed at their own price, usage.py). The SDK's own
retries are off (`max_retries=0`): retry.py retries, once.

The request goes out through `with_streaming_response`, so sending (whose
failures retry.py classifies) and reading the 200 body are apart: the body
is read only as far as `max_tokens` allows (sdk.py; `too_long` beyond), and
an HTML page, a body that is not JSON or a text block whose text is not a
string is a `malformed_response` for this one request, never an exception
that stops the run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tripost.errors import TripostError
from tripost.teachers.batch import BatchStatus
from tripost.teachers.chat import ChatRequest, ChatResponse, Usage, get_field
from tripost.teachers.retry import ChatError, malformed, register_secret, status_error
from tripost.teachers.sampling import anthropic_api_version, rule_for
from tripost.teachers.sdk import SDKChat

# The HTTP status each error type of the Messages API stands for, so an
# errored batch request retries (or stops the run) as the live one would.
ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
    "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
    "timeout_error": 504, "overloaded_error": 529,
}


# The minimum cacheable prompt length (tokens) by model family, from
# Anthropic's prompt-caching docs (as far as they went: the 4.6 models); the
# first name a model id contains wins. Opus 4 and Sonnet 4 by their exact
# ids ("-0", dated "-2025..."), so that a later 4.x model is not taken for them.
CACHE_MINIMUMS: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-6", 4096), ("claude-opus-4-5", 4096), ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4-6", 2048), ("claude-3-5-haiku", 2048), ("claude-3-haiku", 2048),
    ("claude-sonnet-4-5", 1024), ("claude-opus-4-1", 1024),
    ("claude-opus-4-0", 1024), ("claude-opus-4-2025", 1024), ("claude-sonnet-4-0", 1024), ("claude-sonnet-4-2025", 1024),
    ("claude-3-7-sonnet", 1024), ("claude-3-5-sonnet", 1024), ("claude-3-opus", 1024),
)
# A model the table does not know: any prefix is marked (a prefix below the
# model's minimum is not cached and costs nothing more), and the provider's
# answer says whether it was cached (`warn_uncached`).
DEFAULT_CACHE_MINIMUM = 0
CHARS_PER_TOKEN = 2.5  # generous: English is nearer 4; digits, dates and symbols nearer 2
# Message Batches run for minutes to hours: the 1-hour cache keeps a prefix
# across them (Anthropic's batch-processing docs advise it for batches).
BATCH_CACHE_TTL = "1h"
MB = 1000 * 1000


def cache_minimum(model: str) -> int:
    """The fewest tokens a prefix needs before `model` caches it (0: not known, mark it)."""
    return next((n for name, n in CACHE_MINIMUMS if name in model), DEFAULT_CACHE_MINIMUM)


def prefix_tokens(request: ChatRequest) -> int:
    """Estimated tokens of the part of `request` that would be marked: the
    system prompt and the first `cache_prefix` messages (the system prompt
    alone when there is no shared message prefix)."""
    text = request.system + "".join(m.content for m in request.messages[: request.cache_prefix])
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _warn(message: str) -> None:
    # Through tqdm, so a collection's progress bar is redrawn below the line.
    from tqdm import tqdm

    tqdm.write(f"tripost: warning: {message}", file=sys.stderr)


class AnthropicChat(SDKChat):
    name = "anthropic"
    KEY_ENV = "ANTHROPIC_API_KEY"
    BASE_URL_ENV = "ANTHROPIC_BASE_URL"
    DEFAULT_ENDPOINT = "https://api.anthropic.com"
    EXAMPLE_MODEL = "claude-haiku-5-5"  # a live model (the SDK's ModelParam, anthropic/types/model_param.py)
    # The Message Batches limits per batch: 100,000 requests, 256 MB of request body.
    MAX_BATCH_REQUESTS = 100_000
    MAX_BATCH_BYTES = 256 * MB

    @classmethod
    def from_spec(cls, arg: str, *, base_url: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                  **options: Any) -> "AnthropicChat":
        """`anthropic:MODEL`."""
        return cls(arg.strip(), base_url=base_url, api_key=api_key, timeout=timeout)

    def __init__(self, model: str, *, prompt_caching: bool = True, **common: Any):
        """`common`: base_url, api_key, timeout, max_concurrency (SDKChat)."""
        self.auth_token: str | None = None
        super().__init__(model, **common)
        self.prompt_caching = prompt_caching
        # The API version the SDK sends decides whether a temperature may travel (sampling.py).
        self.api_version = anthropic_api_version()
        self.sampling_rule = rule_for(self.name, model, self.api_version)
        self._warned_uncached = False
        self._marked_in_batches: set[str] = set()  # custom ids of batch items sent with a marked prefix
        self._warn_lock = threading.Lock()

    def resolve_key(self, api_key: str | None) -> str | None:
        # The SDK's second credential: a bearer token instead of an API key.
        if not (api_key or os.environ.get(self.KEY_ENV)) and os.environ.get("ANTHROPIC_AUTH_TOKEN"):
            self.auth_token = os.environ["ANTHROPIC_AUTH_TOKEN"]
            register_secret(self.auth_token)
            return None
        return super().resolve_key(api_key)

    def make_client(self) -> Any:
        import anthropic

        auth = {"auth_token": self.auth_token} if self.auth_token else {"api_key": self.key}
        return anthropic.AsyncAnthropic(**auth, base_url=self.base_url, timeout=self.timeout, max_retries=0)

    def caches(self, request: ChatRequest) -> bool:
        """Whether the request's shared prefix is marked for prompt caching:
        caching on, a prefix to mark (few-shot messages, or the system
        prompt), and long enough for the model to cache it."""
        has_prefix = bool(request.cache_prefix or request.system)
        return self.prompt_caching and has_prefix and prefix_tokens(request) >= cache_minimum(request.model)

    def build_params(self, request: ChatRequest, cache_ttl: str | None = None) -> dict[str, Any]:
        """The Messages API body of `request`; `cache_ttl`: the TTL of the
        cache mark ("1h"; None: the API's default, 5 minutes)."""
        cache = self.caches(request)
        mark: dict[str, Any] = {"type": "ephemeral", **({"ttl": cache_ttl} if cache_ttl else {})}
        messages: list[dict[str, Any]] = []
        for i, m in enumerate(request.messages):
            block: dict[str, Any] = {"type": "text", "text": m.content}
            # The last message of the shared prefix closes the cacheable part.
            if cache and request.cache_prefix and i == request.cache_prefix - 1:
                block["cache_control"] = dict(mark)
            messages.append({"role": m.role, "content": [block]})
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        }
        if request.temperature is not None:
            if not self.sampling_rule.takes_temperature:
                # The prompted teacher never builds such a request (sampling.py); a caller that did gets the API's 400 here, unsent.
                raise TripostError(f"anthropic teacher: a request for temperature {request.temperature:g}, "
                                   f"but {self.sampling_rule.why}")
            # Only an older API version (an SDK before 2.x) takes it, and the 2.x
            # SDK has no argument for it: it travels in the body.
            params["extra_body"] = {"temperature": request.temperature}
        if request.system:
            system: dict[str, Any] = {"type": "text", "text": request.system}
            if cache and not request.cache_prefix:
                system["cache_control"] = dict(mark)
            params["system"] = [system]
        stops = [s for s in request.stop if s.strip()]
        if stops:
            params["stop_sequences"] = stops
        return params

    def warn_uncached(self, request_marked: bool, usage: Usage) -> None:
        """Say once when the provider cached none of a marked prefix: it was
        shorter than the model's prompt-cache minimum, so the requests pay
        the full input price for it (and the marking could be left off)."""
        if not request_marked or usage.cache_write_tokens or usage.cache_read_tokens:
            return
        with self._warn_lock:
            if self._warned_uncached:
                return
            self._warned_uncached = True
        _warn(f"anthropic model {self.model!r} cached none of a prompt prefix marked for caching (cache_creation_input_tokens 0): "
              f"the prefix is shorter than the model's prompt-cache minimum, so it is billed at the full input price")

    # ------------------------------------------------- the Message Batches ---
    # The requests go in the create call itself ({custom_id, params}); once
    # the batch has ended its results stream as JSONL, one line per request:
    # succeeded (a message), errored (an error object), expired or canceled.
    # batch.py drives this; https://docs.anthropic.com/en/docs/build-with-claude/batch-processing

    def batch_params(self, request: ChatRequest) -> dict[str, Any]:
        """`build_params` as one batch request's `params`, its prefix cached
        for an hour (`BATCH_CACHE_TTL`); a batch request has no `extra_body`,
        so a temperature (older API versions only) joins the other fields."""
        params = self.build_params(request, cache_ttl=BATCH_CACHE_TTL)
        params.update(params.pop("extra_body", {}))
        return params

    def batch_item(self, key: str, request: ChatRequest) -> bytes:
        """One request of a batch as the create call's body holds it (batch.py counts its bytes)."""
        return json.dumps({"custom_id": key, "params": self.batch_params(request)}, ensure_ascii=False).encode("utf-8")

    async def submit_batch(self, items: Sequence[tuple[str, ChatRequest]]) -> str:
        batch = await self.client().messages.batches.create(
            requests=[{"custom_id": key, "params": self.batch_params(request)} for key, request in items])
        self._marked_in_batches.update(key for key, request in items if self.caches(request))
        return str(batch.id)

    async def batch_status(self, batch_id: str) -> BatchStatus:
        batch = await self.client().messages.batches.retrieve(batch_id)
        c = batch.request_counts
        total = c.processing + c.succeeded + c.errored + c.canceled + c.expired
        return BatchStatus(batch_id, str(batch.processing_status), batch.processing_status == "ended", total - c.processing, total)

    async def batch_results(self, batch_id: str, keys: Sequence[str] = ()) -> dict[str, ChatResponse | ChatError]:
        results: dict[str, ChatResponse | ChatError] = {}
        stream = await self.client().messages.batches.results(batch_id)
        try:
            async for entry in stream:
                key = get_field(entry, "custom_id")
                if isinstance(key, str):
                    results[key] = result = self.read_batch_result(get_field(entry, "result"), batch_id)
                    if isinstance(result, ChatResponse):
                        self.warn_uncached(key in self._marked_in_batches, result.usage)
                    self._marked_in_batches.discard(key)
        finally:
            await stream.close()
        return results

    def read_batch_result(self, result: Any, batch_id: str) -> ChatResponse | ChatError:
        kind = get_field(result, "type")
        if kind == "succeeded":
            try:
                message = get_field(result, "message")
                response = replace(self.read_message(message), batch_id=batch_id)
            except Exception as e:  # the body's fault: this one request is malformed
                return malformed(self.name, e)
            usage = response.usage
            if get_field(get_field(message, "usage"), "cache_creation") is None and usage.cache_write_tokens:
                # No split by TTL in the answer: a batch item's mark is the 1-hour one (BATCH_CACHE_TTL), and so its price.
                response = replace(response, usage=replace(usage, cache_write_1h_tokens=usage.cache_write_tokens))
            return response
        if kind == "errored":
            error = get_field(get_field(result, "error"), "error")
            etype = str(get_field(error, "type") or "api_error")
            body = {"error": {"type": etype, "message": get_field(error, "message")}}
            return status_error(self.name, ERROR_STATUS.get(etype, 500), body)
        # expired or canceled before it ran: nothing wrong with the request, so it is asked again.
        return ChatError(f"anthropic: batch {batch_id} did not run a request ({kind})", retryable=True, kind=f"batch_{kind}")

    async def acomplete(self, request: ChatRequest) -> ChatResponse:
        # A failure while receiving is the connection's, classified by retry.py.
        streamed = self.client().messages.with_streaming_response.create(**self.build_params(request))
        response = await self.read_answer(streamed, request, self.read_message)
        self.warn_uncached(self.caches(request), response.usage)
        return response

    def read_message(self, message: Any) -> ChatResponse:
        """The text blocks of a parsed message; raises on a body of the wrong
        shape (the SDK hands back a str for a non-JSON body, and builds its
        model without validating the fields)."""
        content = get_field(message, "content")
        if not isinstance(content, list):
            raise ValueError("no content list" if not isinstance(message, str) else "the body is not JSON")
        parts: list[str] = []
        for block in content:
            if get_field(block, "type") != "text":
                continue  # thinking, tool use: not the answer
            text = get_field(block, "text")
            if not isinstance(text, str):
                raise ValueError(f"a text block's text is {type(text).__name__}, not a string")
            parts.append(text)
        model = get_field(message, "model")
        return ChatResponse(
            text="".join(parts),
            usage=Usage.from_anthropic(get_field(message, "usage")),
            model=model if isinstance(model, str) and model else self.model,
            finish_reason=str(get_field(message, "stop_reason") or ""),
        )
