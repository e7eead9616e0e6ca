"""`openai:MODEL`: Chat Completions through the official `openai` SDK.

Any OpenAI-compatible server works unchanged (vLLM, Ollama, llama.cpp,
`tripost serve-teacher`): the SDK reads `OPENAI_BASE_URL` and
`OPENAI_API_KEY`. A local server usually needs no key; when a base URL is set
and no key is, a placeholder is sent. The answer length limit goes out as
`max_tokens`, or as `max_completion_tokens` (`token_param`), which OpenAI's
reasoning models require instead ("auto", the default: by the model's name,
sampling.py). A temperature goes out only when one is set and the model
takes it: OpenAI's reasoning models take only the default, so they get none
(sampling.py). The SDK's own retries are off
(`max_retries=0`): retry.py retries, once.

The request goes out through `with_streaming_response`, so sending (whose
failures retry.py classifies) and reading the 200 body are apart: the body
is read only as far as `max_tokens` allows (sdk.py; `too_long` beyond), and
a body that does not parse, or parses into the wrong shape, is a
`malformed_response` for this one request, never an exception that stops
the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tripost.errors import TripostError
from tripost.teachers.batch import BatchStatus
from tripost.teachers.chat import ChatRequest, ChatResponse, Usage, get_field
from tripost.teachers.options import AUTO_TOKEN_PARAM, TOKEN_PARAMS
from tripost.teachers.retry import ChatError, malformed, status_error
from tripost.teachers.sampling import openai_reasoning_model, rule_for
from tripost.teachers.sdk import SDKChat

BATCH_URL = "/v1/chat/completions"
BATCH_ENDED = ("completed", "expired", "failed", "cancelled")
MB = 1000 * 1000


def token_param_for(model: str, token_param: str = AUTO_TOKEN_PARAM) -> str:
    """The name the length limit travels under: `token_param`, or for "auto"
    `max_completion_tokens` for OpenAI's reasoning models (which refuse
    `max_tokens`) and `max_tokens` for the rest (every OpenAI-compatible server takes it)."""
    if token_param != AUTO_TOKEN_PARAM:
        return token_param
    return "max_completion_tokens" if openai_reasoning_model(model) else "max_tokens"


class OpenAIChat(SDKChat):
    name = "openai"
    KEY_ENV = "OPENAI_API_KEY"
    BASE_URL_ENV = "OPENAI_BASE_URL"
    DEFAULT_ENDPOINT = "https://api.openai.com/v1"
    EXAMPLE_MODEL = "gpt-6-luna"  # a live model (the SDK's ChatModel, openai/types/shared/chat_model.py)
    LOCAL_SERVER = "OpenAI-compatible server"
    # The Batch API's limits per batch: 50,000 requests, 200 MB of input file.
    MAX_BATCH_REQUESTS = 50_000
    MAX_BATCH_BYTES = 200 * MB

    @classmethod
    def from_spec(cls, arg: str, *, base_url: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                  token_param: str = AUTO_TOKEN_PARAM, **options: Any) -> "OpenAIChat":
        """`openai:MODEL`."""
        return cls(arg.strip(), base_url=base_url, api_key=api_key, timeout=timeout, token_param=token_param)

    def __init__(self, model: str, *, token_param: str = AUTO_TOKEN_PARAM, **common: Any):
        """`common`: base_url, api_key, timeout, max_concurrency (SDKChat)."""
        if token_param not in TOKEN_PARAMS:
            raise TripostError(f"openai teacher: token_param must be one of {', '.join(TOKEN_PARAMS)}, not {token_param!r}")
        super().__init__(model, **common)
        self.token_param = token_param_for(model, token_param)
        self.sampling_rule = rule_for(self.name, model)

    def make_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(api_key=self.key, base_url=self.base_url, timeout=self.timeout, max_retries=0)

    def build_params(self, request: ChatRequest) -> dict[str, Any]:
        """The Chat Completions body of `request` (live, or one line of a batch)."""
        params: dict[str, Any] = {
            "model": request.model,
            "messages": request.openai_messages(),
            self.token_param: request.max_tokens,
        }
        if request.temperature is not None:
            if not self.sampling_rule.takes_temperature and request.temperature != self.sampling_rule.default:
                # The prompted teacher never builds such a request (sampling.py); a caller that did gets the API's 400 here, unsent.
                raise TripostError(f"openai teacher: a request for temperature {request.temperature:g}, but {self.sampling_rule.why}")
            params["temperature"] = request.temperature
        if request.stop:
            params["stop"] = list(request.stop)[:4]
        return params

    def batch_line(self, key: str, request: ChatRequest) -> str:
        """One line of a batch input file."""
        return json.dumps({"custom_id": key, "method": "POST", "url": BATCH_URL, "body": self.build_params(request)}, ensure_ascii=False)

    def batch_item(self, key: str, request: ChatRequest) -> bytes:
        """One request of a batch as its input file holds it (batch.py counts its bytes)."""
        return (self.batch_line(key, request) + "\n").encode("utf-8")

    async def acomplete(self, request: ChatRequest) -> ChatResponse:
        streamed = self.client().chat.completions.with_streaming_response.create(**self.build_params(request))
        return await self.read_answer(streamed, request, self.read_completion)

    # ------------------------------------------------------- the Batch API ---
    # A JSONL file of {custom_id, method, url, body} lines is uploaded
    # (purpose "batch"), a batch is created on it for /v1/chat/completions
    # with the 24 h window, and once it has ended its output file (answers)
    # and error file (error statuses, expired and cancelled requests) are
    # read back. batch.py drives this; https://platform.openai.com/docs/guides/batch

    async def submit_batch(self, items: Sequence[tuple[str, ChatRequest]]) -> str:
        lines = [self.batch_line(key, request) for key, request in items]
        client = self.client()
        upload = await client.files.create(file=("tripost-batch.jsonl", ("\n".join(lines) + "\n").encode("utf-8")), purpose="batch")
        batch = await client.batches.create(input_file_id=upload.id, endpoint=BATCH_URL, completion_window="24h",
                                             metadata={"client": "tripost"})
        return str(batch.id)

    async def batch_status(self, batch_id: str) -> BatchStatus:
        batch = await self.client().batches.retrieve(batch_id)
        counts = batch.request_counts
        done = (counts.completed + counts.failed) if counts is not None else 0
        return BatchStatus(batch_id, str(batch.status), batch.status in BATCH_ENDED, done, counts.total if counts is not None else 0)

    async def batch_results(self, batch_id: str, keys: Sequence[str] = ()) -> dict[str, ChatResponse | ChatError]:
        client = self.client()
        batch = await client.batches.retrieve(batch_id)
        if batch.status == "failed":
            # Refused as a whole before it ran: the input did not validate, or
            # (`token_limit_exceeded`) the organisation's queue of batch tokens
            # for the model is full. Neither is mended by asking again at once,
            # so every request fails for good and the run stops with the reason;
            # batch.py records them as failed, so a rerun sends a new batch.
            errors = get_field(batch.errors, "data") or []
            detail = "; ".join(f"{get_field(e, 'code') or 'error'}"
                               + (f" at line {get_field(e, 'line')}" if get_field(e, "line") is not None else "")
                               + f": {get_field(e, 'message')}" for e in errors[:3]) or "no detail"
            hint = (" (the organisation's limit on queued batch tokens for this model: collect fewer problems at once, "
                    "or rerun once running batches have finished)") if "token_limit_exceeded" in detail else ""
            error = ChatError(f"openai: batch {batch_id} failed before it ran: {detail}{hint}", status=400, kind="http")
            return {key: error for key in keys}
        results: dict[str, ChatResponse | ChatError] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await client.files.content(file_id)
            for line in content.text.splitlines():
                if line.strip():
                    key, result = self.read_batch_line(line, batch_id)
                    if key:
                        results[key] = result
        return results

    def read_batch_line(self, line: str, batch_id: str) -> tuple[str, ChatResponse | ChatError]:
        """(custom id, answer or error) of one line of a batch's output or error file."""
        try:
            item = json.loads(line)
            key = str(item["custom_id"])
        except (ValueError, KeyError, TypeError):
            return "", malformed(self.name, "a batch result line that is not a JSON object with a custom_id")
        response, error = item.get("response"), item.get("error")
        if isinstance(response, dict) and response.get("status_code") == 200:
            try:
                return key, replace(self.read_completion(response.get("body")), batch_id=batch_id)
            except Exception as e:  # the body's fault: this one request is malformed
                return key, malformed(self.name, e)
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            return key, status_error(self.name, response["status_code"], response.get("body"))
        code = get_field(error, "code") or "batch_expired"
        # Expired or cancelled before it ran: nothing wrong with the request, so it is asked again.
        return key, ChatError(f"openai: batch {batch_id} did not run a request ({code})", retryable=True, kind=str(code))

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
