"""`openai:MODEL`: Chat Completions through the official `openai` SDK.

Any OpenAI-compatible server works unchanged (vLLM, Ollama, llama.cpp,
`tripost serve-teacher`): the SDK reads `OPENAI_BASE_URL` and
`OPENAI_API_KEY`. A local server usually needs no key; when a base URL is set
and no key is, a placeholder is sent. The answer length limit goes out as
`max_tokens`, or as `max_completion_tokens` (`token_param`), which OpenAI's
reasoning models require instead. The SDK's own retries are off
(`max_retries=0`): retry.py retries, once.

The request goes out through `with_raw_response`, so sending (whose
failures retry.py classifies) and reading the 200 body are apart: a body
that does not parse, or parses into the wrong shape, is a
`malformed_response` for this one request, never an exception that stops
the run.
"""

from __future__ import annotations

import os
from typing import Any

from tripost.errors import TripostError
from tripost.teachers.chat import ChatRequest, ChatResponse, Usage, endpoint_id, get_field
from tripost.teachers.options import TOKEN_PARAMS
from tripost.teachers.retry import malformed, register_secret

_LOCAL_PLACEHOLDER_KEY = "not-needed"
DEFAULT_ENDPOINT = "https://api.openai.com/v1"  # where the SDK goes without a base URL


class OpenAIChat:
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_concurrency: int = 16,
        token_param: str = "max_tokens",
    ):
        if not model:
            raise TripostError("openai teacher: give a model, e.g. openai:gpt-4o-mini")
        if token_param not in TOKEN_PARAMS:
            raise TripostError(f"openai teacher: token_param must be one of {', '.join(TOKEN_PARAMS)}, not {token_param!r}")
        self.model = model
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.token_param = token_param
        self._base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.endpoint = endpoint_id(self._base_url or DEFAULT_ENDPOINT)
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if key is None:
            if self._base_url is None:
                raise TripostError(
                    "openai teacher: set OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)"
                )
            key = _LOCAL_PLACEHOLDER_KEY
        register_secret(key)
        self._key = key
        self._client: Any = None

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChat(model={self.model!r})"

    def _get_client(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=self._key, base_url=self._base_url, timeout=self.timeout, max_retries=0
            )
        return self._client

    async def acomplete(self, request: ChatRequest) -> ChatResponse:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.openai_messages(),
            "temperature": request.temperature,
            self.token_param: request.max_tokens,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)[:4]
        raw = await self._get_client().chat.completions.with_raw_response.create(**kwargs)
        try:
            return self.read_completion(raw.parse())
        except Exception as e:  # anything wrong from here on is the body's fault
            raise malformed(self.name, e) from None

    def read_completion(self, completion: Any) -> ChatResponse:
        """The answer in a parsed completion; raises on a body of the wrong
        shape (the SDK hands back a str for a non-JSON body, and builds its
        model without validating the fields)."""
        choices = get_field(completion, "choices")
        if not isinstance(choices, list):
            raise ValueError("no choices list" if not isinstance(completion, str) else "the body is not JSON")
        usage = Usage.from_openai(get_field(completion, "usage"))
        model = get_field(completion, "model")
        model = model if isinstance(model, str) and model else self.model
        if not choices:
            # A valid answer with nothing in it: the teacher rejects it as empty.
            return ChatResponse(text="", usage=usage, model=model)
        choice = choices[0]
        text = get_field(get_field(choice, "message"), "content")
        if text is None:  # a refusal or a tool call: no text, as the API allows
            text = ""
        if not isinstance(text, str):
            raise ValueError(f"message content is {type(text).__name__}, not text")
        return ChatResponse(
            text=text,
            usage=usage,
            model=model,
            finish_reason=str(get_field(choice, "finish_reason") or ""),
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
