"""What the two SDK backends (OpenAI, Anthropic) share: the server address and
key from the SDK's own environment variables, the key kept secret, one client
made on first use, a 200 body read only as far as its request's `max_tokens`
allows (`too_long` beyond), and a 200 body that does not read as an answer
turned into a `malformed_response` for that one request.

The body bound: both SDKs read a whole body before handing it over (httpx
`send(stream=False)` under `with_raw_response`), and neither takes a size
limit (a timeout bounds time, not bytes). So a request goes out through
`with_streaming_response`, which returns once the headers are in; the body
is then read chunk by chunk (decoded, so a gzip bomb counts as what it
unpacks to) and the connection closed as soon as it passes `max_body_bytes`
(a declared Content-Length over it is refused before a byte is read), and
the JSON is parsed here. The SDKs still read an error status's body whole to
build their exception; batch results files are read whole (one holds many
answers), and each answer in them is bounded by the requester instead.

A subclass sets the names (`name`, the two environment variables, the
endpoint the SDK uses without a base URL, an example model), makes its SDK
client (`make_client`) and sends and reads a request (`acomplete`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any, ClassVar

from tripost.errors import TripostError
from tripost.settings import default_of
from tripost.teachers.chat import ChatRequest, ChatResponse, max_body_bytes
from tripost.teachers.options import TeacherOptions
from tripost.teachers.retry import malformed, register_secret, too_long
from tripost.urls import endpoint_id

# Sent as the key to a local server that needs none (the SDKs refuse no key).
LOCAL_PLACEHOLDER_KEY = "not-needed"


class SDKChat:
    name: ClassVar[str]
    KEY_ENV: ClassVar[str]
    BASE_URL_ENV: ClassVar[str]
    DEFAULT_ENDPOINT: ClassVar[str]  # where the SDK goes without a base URL
    EXAMPLE_MODEL: ClassVar[str]
    LOCAL_SERVER: ClassVar[str] = "compatible server"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 max_concurrency: int = default_of(TeacherOptions, "concurrency")):
        if not model:
            raise TripostError(f"{self.name} teacher: give a model, e.g. {self.name}:{self.EXAMPLE_MODEL}")
        self.model = model
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.base_url = base_url or os.environ.get(self.BASE_URL_ENV) or None
        self.endpoint = endpoint_id(self.base_url or self.DEFAULT_ENDPOINT)
        self.key = self.resolve_key(api_key)
        register_secret(self.key)
        self._client: Any = None

    def resolve_key(self, api_key: str | None) -> str | None:
        """The key to send: given, from the environment, or (a local server
        that needs none) a placeholder; none at all for the provider's own
        endpoint is an error saying which variable to set."""
        key = api_key or os.environ.get(self.KEY_ENV) or None
        if key is None:
            if self.base_url is None:
                raise TripostError(f"{self.name} teacher: set {self.KEY_ENV} (or {self.BASE_URL_ENV} for a local {self.LOCAL_SERVER})")
            key = LOCAL_PLACEHOLDER_KEY
        return key

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(model={self.model!r})"

    def make_client(self) -> Any:
        raise NotImplementedError

    def client(self) -> Any:
        """The SDK client, made once (its own retries off: retry.py retries)."""
        if self._client is None:
            self._client = self.make_client()
        return self._client

    async def read_answer(self, streamed: Any, request: ChatRequest, read: Callable[[Any], ChatResponse]) -> ChatResponse:
        """The answer to `request` from `streamed`, an SDK call through
        `with_streaming_response` (not yet entered). Sending, an error status
        and a failure while receiving raise as the SDK raises them (retry.py
        classifies them); a body over `max_body_bytes` is `too_long`; anything
        wrong after that is the body's fault: a `malformed_response` for this
        request, never an exception that stops the run."""
        limit = max_body_bytes(request.max_tokens)
        async with streamed as raw:
            data = await self._read_bounded(raw, limit, request.max_tokens)
        try:
            try:
                body = json.loads(data)
            except ValueError:
                raise ValueError("the body is not JSON") from None
            return read(body)
        except Exception as e:
            raise malformed(self.name, e) from None

    async def _read_bounded(self, raw: Any, limit: int, max_tokens: int) -> bytes:
        """At most `limit` bytes of `raw`'s body, within the request timeout."""
        what = f"the {limit:,} bytes a {max_tokens}-token answer may take"
        declared = str((getattr(raw, "headers", None) or {}).get("content-length") or "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise too_long(self.name, f"a body of {int(declared):,} bytes, over {what}; not read")
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.timeout if self.timeout and self.timeout > 0 else None):
            async for chunk in raw.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise too_long(self.name, f"a body over {what}; read no further")
                chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


__all__ = ["LOCAL_PLACEHOLDER_KEY", "SDKChat"]
