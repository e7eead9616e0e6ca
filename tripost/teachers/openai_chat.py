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

from typing import Any

from tripost.errors import TripostError
from tripost.teachers.chat import ChatRequest, ChatResponse, Usage, get_field
from tripost.teachers.options import TOKEN_PARAMS
from tripost.teachers.sdk import SDKChat


class OpenAIChat(SDKChat):
    name = "openai"
    KEY_ENV = "OPENAI_API_KEY"
    BASE_URL_ENV = "OPENAI_BASE_URL"
    DEFAULT_ENDPOINT = "https://api.openai.com/v1"
    EXAMPLE_MODEL = "gpt-4o-mini"
    LOCAL_SERVER = "OpenAI-compatible server"

    def __init__(self, model: str, *, token_param: str = "max_tokens", **common: Any):
        """`common`: base_url, api_key, timeout, max_concurrency (SDKChat)."""
        if token_param not in TOKEN_PARAMS:
            raise TripostError(f"openai teacher: token_param must be one of {', '.join(TOKEN_PARAMS)}, not {token_param!r}")
        super().__init__(model, **common)
        self.token_param = token_param

    def make_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(api_key=self.key, base_url=self.base_url, timeout=self.timeout, max_retries=0)

    async def acomplete(self, request: ChatRequest) -> ChatResponse:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.openai_messages(),
            "temperature": request.temperature,
            self.token_param: request.max_tokens,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)[:4]
        raw = await self.client().chat.completions.with_raw_response.create(**kwargs)
        return await self.read_body(raw, self.read_completion)

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
