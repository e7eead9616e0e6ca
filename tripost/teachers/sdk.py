"""What the two SDK backends (OpenAI, Anthropic) share: the server address and
key from the SDK's own environment variables, the key kept secret, one client
made on first use, and a 200 body that does not read as an answer turned into
a `malformed_response` for that one request.

A subclass sets the names (`name`, the two environment variables, the
endpoint the SDK uses without a base URL, an example model), makes its SDK
client (`make_client`) and sends and reads a request (`acomplete`).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any, ClassVar

from tripost.errors import TripostError
from tripost.teachers.chat import ChatResponse
from tripost.urls import endpoint_id
from tripost.teachers.retry import malformed, register_secret

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
                 max_concurrency: int = 16):
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

    async def read_body(self, raw: Any, read: Callable[[Any], ChatResponse]) -> ChatResponse:
        """`read` of the SDK's parse of a raw 200 response. Anything wrong from
        here on is the body's fault: a `malformed_response` for this request,
        never an exception that stops the run."""
        try:
            parsed = raw.parse()
            if inspect.isawaitable(parsed):  # the async SDKs' parse is a coroutine in some versions
                parsed = await parsed
            return read(parsed)
        except Exception as e:
            raise malformed(self.name, e) from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


__all__ = ["LOCAL_PLACEHOLDER_KEY", "SDKChat"]
