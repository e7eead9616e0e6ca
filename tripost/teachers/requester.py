"""One backend plus everything around a request: cache, retries, a bound on
in-flight requests, and the usage ledger.

    outcome = await requester.request(chat_request, accept=is_usable)

A cache hit returns at once without touching the backend. Otherwise the
request waits for one of `concurrency` slots (per backend), goes out with
retries (retry.py), and its answer is booked, and cached when `accept` passes
it: the caller validates answers, and only a valid one may be served again
(a cached rejection would be a rejection for good). A cached answer `accept`
refuses is dropped and asked again. Identical requests in flight at the same
time share one backend call.

Failures: a fatal error (bad request, authentication, spend limit) is raised
as a `ChatError` (a `TripostError`: a configuration problem the user must
fix). A retryable one that outlives its retries, or a 200 whose body is
malformed, comes back as an `Outcome` with `error` set, so a batch of many
problems carries on and the teacher reports the request as rejected.

Length: an answer longer than its request's `max_tokens` allows
(`max_answer_chars`) is a `too_long` error outcome: billed in the ledger,
never cached nor shared as an answer, its text dropped here so that no log
record carries it. A cached answer over the bound (an older version stored
it) is dropped and asked again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tripost.settings import default_of
from tripost.teachers.cache import ResponseCache
from tripost.teachers.chat import ChatBackend, ChatRequest, ChatResponse, Usage, max_answer_chars
from tripost.teachers.options import TeacherOptions
from tripost.teachers.retry import ChatError, RetryPolicy, call_with_retries, too_long
from tripost.teachers.usage import Ledger


@dataclass(frozen=True)
class Outcome:
    response: ChatResponse | None
    error: ChatError | None = None
    retries: int = 0
    cached: bool = False
    latency_s: float = 0.0
    cost_usd: float = 0.0
    key: str = ""
    retry_reasons: dict[str, int] = field(default_factory=dict)
    usage: Usage | None = None  # what an answer refused here (too long) was billed; its text is gone


class Requester:
    def __init__(
        self,
        backend: ChatBackend,
        *,
        cache: ResponseCache | None = None,
        ledger: Ledger | None = None,
        policy: RetryPolicy | None = None,
        concurrency: int | None = None,
    ):
        self.backend = backend
        self.cache = cache
        self.ledger = ledger or Ledger()
        self.policy = policy or RetryPolicy()
        # None: the backend's own bound; a backend without one: teacher.concurrency's default.
        self.concurrency = max(1, int(concurrency or getattr(backend, "max_concurrency", default_of(TeacherOptions, "concurrency"))))
        self._sem: asyncio.Semaphore | None = None
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}
        self.in_flight = 0
        self.max_in_flight = 0  # the highest number of concurrent backend calls seen

    def _semaphore(self) -> asyncio.Semaphore:
        # Created lazily, on the loop that runs the requests.
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        return self._sem

    def key(self, req: ChatRequest) -> str:
        """The cache key of `req` sent to this backend: its kind and its
        endpoint, so two servers never share answers."""
        return req.key(self.backend.name, getattr(self.backend, "endpoint", ""))

    async def request(self, req: ChatRequest, accept: Callable[[ChatResponse], bool] | None = None) -> Outcome:
        """`accept`: whether an answer may be cached (None: every answer)."""
        name, model = self.backend.name, self.backend.model
        key = self.key(req)
        t0 = time.perf_counter()
        accept = _bounded(accept, max_answer_chars(req.max_tokens))
        if self.cache is not None:
            hit = self.cache.get(key, accept)
            if hit is not None:
                self.ledger.record(name, model, hit.usage, cached=True)
                return Outcome(response=hit, cached=True, latency_s=time.perf_counter() - t0, key=key)
        shared = self._inflight.get(key)
        if shared is not None:
            out = await asyncio.shield(shared)
            self.ledger.record(name, model, Usage(), cached=True)
            return Outcome(response=out.response, error=out.error, cached=True, latency_s=time.perf_counter() - t0, key=key)
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            out = await self._call(req, key, t0, accept)
            fut.set_result(out)
            return out
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._inflight[key]

    async def _call(self, req: ChatRequest, key: str, t0: float, accept: Callable[[ChatResponse], bool]) -> Outcome:
        name, model = self.backend.name, self.backend.model
        reasons: Counter[str] = Counter()

        async def attempt() -> ChatResponse:
            async with self._semaphore():
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    return await self.backend.acomplete(req)
                finally:
                    self.in_flight -= 1

        try:
            response, retries = await call_with_retries(
                attempt, self.policy, name, on_retry=lambda e: reasons.update([e.reason])
            )
        except ChatError as e:
            n_retries = sum(reasons.values())
            self.ledger.record(name, model, Usage(), retries=n_retries, failed=True, retry_reasons=reasons)
            if e.fatal:
                raise
            reasons.update([e.reason])
            return Outcome(
                response=None, error=e, retries=n_retries, latency_s=time.perf_counter() - t0, key=key,
                retry_reasons=dict(reasons),
            )
        limit = max_answer_chars(req.max_tokens)
        if len(response.text) > limit:
            error = too_long(name, f"{len(response.text):,} characters where a {req.max_tokens}-token answer may have {limit:,}")
            cost = self.ledger.record(name, model, response.usage, retries=retries, failed=True, retry_reasons=reasons,
                                      batched=bool(response.batch_id))
            reasons.update([error.reason])
            return Outcome(
                response=None, error=error, retries=retries, latency_s=time.perf_counter() - t0, cost_usd=cost, key=key,
                retry_reasons=dict(reasons), usage=response.usage,
            )
        cost = self.ledger.record(name, model, response.usage, retries=retries, retry_reasons=reasons, batched=bool(response.batch_id))
        if self.cache is not None and accept(response):
            self.cache.put(key, name, model, response)
        return Outcome(
            response=response, retries=retries, latency_s=time.perf_counter() - t0, cost_usd=cost, key=key,
            retry_reasons=dict(reasons),
        )


def _bounded(accept: Callable[[ChatResponse], bool] | None, limit: int) -> Callable[[ChatResponse], bool]:
    """`accept` (None: every answer), for answers of at most `limit`
    characters; a longer one is refused before `accept` reads it."""
    return lambda r: len(r.text) <= limit and (accept is None or accept(r))
