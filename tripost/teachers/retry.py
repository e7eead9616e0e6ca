"""Which backend failures to retry, how long to wait, and keeping keys out of messages.

Retried (exponential backoff with jitter, through tenacity): HTTP 408, 409,
429, every 5xx (including Anthropic's 529 "overloaded"), timeouts and
connection errors. A `Retry-After` (or `retry-after-ms`) header sets the wait
instead. Not retried: 400, 401, 403, 404, 422 ..., and a 429 that says the
account is out of quota or over its spend limit, since waiting cannot fix
those. The SDKs' own retries are switched off (`max_retries=0`) so the two
layers don't multiply.

A 200 whose body cannot be read (not JSON, HTML from a proxy, a text block
that is null) is a `malformed_response`: the backend raises it, it is not
retried (like a garbage answer, asking again costs the same and is no more
likely to help), and the requester hands it back as an outcome so the teacher
counts one rejection instead of aborting the run. An answer longer than its
request's `max_tokens` allows (chat.py, `max_answer_chars`; the HTTP body is
read only that far) is `too_long`, handled the same way.

Every message a `ChatError` carries goes through `redact`: an API key (or
what looks like one) never reaches a log, a report or the terminal.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from tripost.errors import TripostError
from tripost.teachers.options import TeacherOptions

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 429})
MALFORMED = "malformed_response"  # ChatError.kind, and the teacher's rejection reason
TOO_LONG = "too_long"  # ChatError.kind, and the teacher's rejection reason: over what max_tokens allows
# Error codes/types providers use for "out of money", where a retry is useless.
_SPEND_LIMIT_MARKERS = ("insufficient_quota", "billing", "spend_limit", "spending limit", "credit balance", "quota")

# ------------------------------------------------------------------ secrets ---

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_KEY_ENV_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_ADMIN_KEY")
# Provider key shapes (sk-..., sk-ant-..., sk-proj-...), also when masked with *.
_KEY_RE = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{3,}")
_BEARER_RE = re.compile(r"(?i)(bearer|x-api-key:?)\s+\S+")


def register_secret(value: str | None) -> None:
    """Remember a key this process uses, so `redact` removes it verbatim."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every known key, key-shaped token and bearer value removed."""
    if not text:
        return text
    with _secrets_lock:
        secrets = set(_secrets)
    secrets.update(v for k in _KEY_ENV_VARS if (v := os.environ.get(k)) and len(v) >= 4)
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, "[redacted]")
    text = _KEY_RE.sub("[redacted]", text)
    return _BEARER_RE.sub(lambda m: f"{m.group(1)} [redacted]", text)


# ------------------------------------------------------------------- errors ---


class ChatError(TripostError):
    """A backend request that failed. `retryable` says whether waiting and
    trying again can help; `retry_after` is the server's requested wait."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        kind: str = "error",
    ):
        super().__init__(redact(message))
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind  # "http" | "timeout" | "connection" | "spend_limit" | MALFORMED | TOO_LONG | "error"

    @property
    def reason(self) -> str:
        """Short label for counting: "http_429", "timeout", ..."""
        if self.kind == "http" and self.status is not None:
            return f"http_{self.status}"
        return self.kind

    @property
    def fatal(self) -> bool:
        """A problem the user must fix (key, model, spend limit, a bad
        request): the run stops. Everything else is one failed request."""
        return not self.retryable and self.kind not in (MALFORMED, TOO_LONG)


def malformed(backend: str, problem: BaseException | str) -> ChatError:
    """The error for a 200 answer whose body is not what the API promises."""
    detail = problem if isinstance(problem, str) else f"{type(problem).__name__}: {str(problem)[:160]}"
    return ChatError(f"{backend}: malformed 200 response ({detail})", kind=MALFORMED)


def too_long(backend: str, detail: str) -> ChatError:
    """The error for an answer longer than its request allows: one rejected
    request (not retried: asking again costs as much and is no more likely
    to be shorter), never cached."""
    return ChatError(f"{backend}: answer too long ({detail})", kind=TOO_LONG)


def retry_after_seconds(headers: Any) -> float | None:
    """The wait a response asks for: `retry-after-ms`, then `Retry-After` as
    seconds or as an HTTP date. None when absent or unreadable."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(float(ms) / 1000.0, 0.0)
        value = headers.get("retry-after")
    except (TypeError, ValueError, AttributeError):
        return None
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _is_spend_limit(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    err = body.get("error", body)
    if not isinstance(err, dict):
        return False
    details = err.get("details") if isinstance(err.get("details"), dict) else {}
    words = " ".join(str(err.get(k) or "") for k in ("code", "type")) + " " + str(details.get("error_code") or "")
    return any(m in words.lower() for m in _SPEND_LIMIT_MARKERS)


def classify(exc: BaseException, backend: str) -> ChatError:
    """Turn an SDK or transport exception into a `ChatError` (duck-typed, so
    it covers both SDKs and plain httpx/asyncio errors)."""
    if isinstance(exc, ChatError):
        return exc
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if isinstance(status, int):
        return status_error(backend, status, getattr(exc, "body", None), getattr(response, "headers", None), type(exc).__name__)
    name = type(exc).__name__
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or "Timeout" in name:
        return ChatError(f"{backend}: request timed out", retryable=True, kind="timeout")
    if "Connection" in name or isinstance(exc, (ConnectionError, OSError)):
        return ChatError(f"{backend}: connection failed ({name})", retryable=True, kind="connection")
    return ChatError(f"{backend}: request failed ({name}: {str(exc)[:200]})", retryable=False, kind="error")


def status_error(backend: str, status: int, body: Any, headers: Any = None, what: str = "") -> ChatError:
    """The `ChatError` of an HTTP error status with its error body: from a
    live request (`classify`) or from one request of a provider batch, whose
    results carry each request's status and body (batch.py)."""
    detail = _error_message(body) or what or "no message"
    if status == 429 and _is_spend_limit(body):
        return ChatError(
            f"{backend}: HTTP 429, the account is out of quota or over its spend limit ({detail})",
            status=429,
            retryable=False,
            kind="spend_limit",
        )
    retryable = status in RETRY_STATUSES or status >= 500
    return ChatError(
        f"{backend}: HTTP {status} ({detail})",
        status=status,
        retryable=retryable,
        retry_after=retry_after_seconds(headers) if retryable else None,
        kind="http",
    )


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:200]
    if isinstance(body, str):
        return body[:200]
    return ""


# ------------------------------------------------------------------ policy ---


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` counts the first try. Backoff: `initial * 2**n` capped
    at `max_wait`, plus up to `jitter` seconds at random. A `Retry-After`
    longer than `max_retry_after` ends the retries (the caller learns now
    instead of sleeping for an hour)."""

    max_attempts: int = TeacherOptions.max_attempts  # teacher.max_attempts' default, declared there
    initial: float = 0.5
    max_wait: float = 20.0
    jitter: float = 0.5
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise TripostError("retries: max_attempts must be at least 1")


class _Wait:
    """Honour the server's Retry-After when it gave one, else back off."""

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self.backoff = wait_exponential_jitter(multiplier=policy.initial, max=policy.max_wait, jitter=policy.jitter)

    def __call__(self, state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ChatError) and exc.retry_after is not None:
            # A little jitter on top, so many clients told "1 s" don't return together.
            return exc.retry_after + random.uniform(0, min(self.policy.jitter, exc.retry_after * 0.1 + 0.01))
        return float(self.backoff(state))


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    backend: str,
    on_retry: Callable[[ChatError], None] | None = None,
) -> tuple[T, int]:
    """(result, number of retries). Raises the last `ChatError` when the
    retries run out or the error is not retryable."""
    retries = 0

    def retryable(exc: BaseException) -> bool:
        return (
            isinstance(exc, ChatError)
            and exc.retryable
            and (exc.retry_after is None or exc.retry_after <= policy.max_retry_after)
        )

    def before_sleep(state: Any) -> None:
        nonlocal retries
        retries += 1
        exc = state.outcome.exception()
        if on_retry is not None and isinstance(exc, ChatError):
            on_retry(exc)

    async def attempt() -> T:
        try:
            return await fn()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # every failure becomes a classified ChatError
            raise classify(e, backend) from None

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=_Wait(policy),
        retry=retry_if_exception(retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    result = await retrying(attempt)
    return result, retries
