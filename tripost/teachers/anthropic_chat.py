"""`anthropic:MODEL`: the Messages API through the official `anthropic` SDK.

The SDK reads `ANTHROPIC_API_KEY` (or `ANTHROPIC_AUTH_TOKEN`) and
`ANTHROPIC_BASE_URL`. The 2.x SDK no longer takes `temperature` as an
argument, so it travels in the request body (`extra_body`): the request runs
at the temperature its cache key records, not at the API's default.
The system prompt and the few-shot examples are the
same for every request of a kind, so they are marked for prompt caching
(`cache_control`), which the provider bills as cache writes and then much
cheaper cache reads (usage.py keeps the buckets apart). The SDK's own
retries are off (`max_retries=0`): retry.py retries, once.

The request goes out through `with_raw_response`, so sending (whose
failures retry.py classifies) and reading the 200 body are apart: an HTML
page, a body that is not JSON or a text block whose text is not a string is
a `malformed_response` for this one request, never an exception that stops
the run.
"""

from __future__ import annotations

import os
from typing import Any

from tripost.errors import TripostError
from tripost.teachers.chat import ChatRequest, ChatResponse, Usage, endpoint_id, get_field
from tripost.teachers.retry import malformed, register_secret

_LOCAL_PLACEHOLDER_KEY = "not-needed"
DEFAULT_ENDPOINT = "https://api.anthropic.com"  # where the SDK goes without a base URL


class AnthropicChat:
    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_concurrency: int = 16,
        prompt_caching: bool = True,
    ):
        if not model:
            raise TripostError("anthropic teacher: give a model, e.g. anthropic:claude-3-5-haiku-latest")
        self.model = model
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.prompt_caching = prompt_caching
        self._base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.endpoint = endpoint_id(self._base_url or DEFAULT_ENDPOINT)
        self._auth_token: str | None = None
        key = api_key or os.environ.get("ANTHROPIC_API_KEY") or None
        if key is None and os.environ.get("ANTHROPIC_AUTH_TOKEN"):
            self._auth_token = os.environ["ANTHROPIC_AUTH_TOKEN"]
        elif key is None:
            if self._base_url is None:
                raise TripostError(
                    "anthropic teacher: set ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL for a local compatible server)"
                )
            key = _LOCAL_PLACEHOLDER_KEY
        register_secret(key)
        register_secret(self._auth_token)
        self._key = key
        self._client: Any = None

    def __repr__(self) -> str:  # never show the key
        return f"AnthropicChat(model={self.model!r})"

    def _get_client(self) -> Any:
        if self._client is None:
            import anthropic

            auth = {"auth_token": self._auth_token} if self._auth_token else {"api_key": self._key}
            self._client = anthropic.AsyncAnthropic(
                **auth, base_url=self._base_url, timeout=self.timeout, max_retries=0
            )
        return self._client

    def build_params(self, request: ChatRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for i, m in enumerate(request.messages):
            block: dict[str, Any] = {"type": "text", "text": m.content}
            # The last message of the shared prefix closes the cacheable part.
            if self.prompt_caching and request.cache_prefix and i == request.cache_prefix - 1:
                block["cache_control"] = {"type": "ephemeral"}
            messages.append({"role": m.role, "content": [block]})
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
            # The SDK (2.x) has no `temperature` argument any more, but the
            # API takes it in the body; sent always, so the answer is sampled
            # at the temperature the cache key records.
            "extra_body": {"temperature": request.temperature},
        }
        if request.system:
            system: dict[str, Any] = {"type": "text", "text": request.system}
            if self.prompt_caching and not request.cache_prefix:
                system["cache_control"] = {"type": "ephemeral"}
            params["system"] = [system]
        stops = [s for s in request.stop if s.strip()]
        if stops:
            params["stop_sequences"] = stops
        return params

    async def acomplete(self, request: ChatRequest) -> ChatResponse:
        raw = await self._get_client().messages.with_raw_response.create(**self.build_params(request))
        await raw.read()  # a failure while receiving is the connection's, classified by retry.py
        try:
            return self.read_message(await raw.parse())
        except Exception as e:  # anything wrong from here on is the body's fault
            raise malformed(self.name, e) from None

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

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
