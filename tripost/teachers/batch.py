"""`teacher.batch`: each collection round's requests as one provider batch, at half price.

OpenAI's Batch API and Anthropic's Message Batches take a file of requests,
answer them within 24 hours (most within minutes), and bill 50% of the list
price (usage.py). TriPosT's collection works in rounds: with a batching
teacher (`PromptedTeacher.answers_in_rounds`) every trajectory of a
collection pass is edited at once (sources/teacher.py), so all of them ask
for feedback together, then all the wrong ones for an improvement, then for
feedback on it, and so on: a round is everything the pass can ask at once.

`BatchingBackend` is a `ChatBackend` built on that. It does not send a
request when asked: it holds every request that arrives until none has
arrived for `wait` seconds (every trajectory of the round is waiting for its
answer), sends them as one batch (or as many as the provider's limits ask:
`MAX_BATCH_REQUESTS` requests and `MAX_BATCH_BYTES` bytes of request body per
batch, `split_round`), polls the batch with backoff until it has
ended, and answers each waiting request with its own result. Everything
above it runs unchanged: the requester (cache, retries, ledger), the prompted
teacher's validation, the collection loop. A request that failed inside the
batch (an error status, expiry, cancellation) is retried by retry.py like a
live one and goes out with the next round.

    round 1: 1,024 x feedback -> batch A (one upload, one create, a few polls)
    round 2:   797 x improve  -> batch B   (227 attempts were right)
    round 3:   797 x feedback -> batch C   ...

Resuming without paying twice: every batch sent is recorded in a small JSON
file (`BatchLog`: the run folder's `teacher-batches.json` in `tripost run`
and `tripost collect`) with the custom id of each of its requests, which is
the request's cache key (a hash of everything that determines the answer,
requester.py). A killed run that asks the same requests again finds them
there and waits for, or downloads the results of, the batch it already paid
for. A request whose result in that batch was a failure is not looked up
there again, so its retry goes into a new batch. Answers the teacher accepts
also go into the on-disk response cache as usual, so a later run reads them
without asking anyone.

Not covered: a batch the provider created but whose id this process did not
live to write down (one HTTP round trip) is sent again by the rerun; both
are billed. And the record does not know which answers the teacher
rejected: a rerun reads such an answer from its batch again (and rejects it
again) instead of asking anew, where a live teacher would sample afresh.

The record lives in the run folder for `tripost run` and `tripost collect`,
and under $TRIPOST_HOME for the other verbs (`teach`); writers merge into
it under a file lock, so processes sharing one record keep each other's
batches.

The provider side is three coroutines on the backend (`BatchAPI`), written
next to its live request in openai_chat.py and anthropic_chat.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tripost.errors import TripostError
from tripost.fileio import atomic_write_json
from tripost.layout import BATCH_LOG
from tripost.teachers.chat import ChatRequest, ChatResponse
from tripost.teachers.retry import ChatError, classify

BATCH_LOG_FILE = BATCH_LOG  # in a run folder (tripost.layout), and under TRIPOST_HOME for a teacher built in code
MAX_POLL_S = 600.0  # the longest wait between two status checks (batches run for hours at most)
POLL_GROWTH = 1.5  # each wait is 1.5x the last: 30 s, 45 s, 68 s, ... 10 min
MAX_STATUS_FAILURES = 8  # status checks in a row that fail before the waiting requests fail (and retry)
# Room left in a batch's byte limit for what wraps its items (the create
# call's `{"requests": [...]}` and commas, a file upload's multipart headers).
ENVELOPE_BYTES = 64 * 1024


@dataclass(frozen=True)
class BatchStatus:
    """Where a provider batch is: the provider's own word for it (`state`),
    whether it has ended (completed, expired, failed, cancelled), and how many
    of its `total` requests are done."""

    id: str
    state: str
    ended: bool
    done: int = 0
    total: int = 0


@runtime_checkable
class BatchAPI(Protocol):
    """A backend with a provider batch API (OpenAIChat, AnthropicChat).

    Results are keyed by the custom id each request was sent with; a request
    that failed comes back as a `ChatError` (retryable or not, as its status
    says), a request missing from the results is treated as expired."""

    MAX_BATCH_REQUESTS: int  # requests per batch, the provider's limit
    MAX_BATCH_BYTES: int  # bytes of request body (Anthropic) or input file (OpenAI) per batch

    def batch_item(self, key: str, request: ChatRequest) -> bytes:
        """One request as the batch holds it (its size counts toward MAX_BATCH_BYTES)."""
        ...

    async def submit_batch(self, items: Sequence[tuple[str, ChatRequest]]) -> str:
        """Send (custom id, request) pairs as one batch; returns its id."""
        ...

    async def batch_status(self, batch_id: str) -> BatchStatus:
        ...

    async def batch_results(self, batch_id: str, keys: Sequence[str] = ()) -> dict[str, ChatResponse | ChatError]:
        """The results of an ended batch (`keys`: the custom ids it was sent
        with); each response carries `batch_id`."""
        ...


def supports_batches(backend: Any) -> bool:
    return isinstance(backend, BatchAPI)


def split_round(sizes: Sequence[int], max_requests: int, max_bytes: int) -> tuple[list[list[int]], list[int]]:
    """The indexes of a round's items in batches of at most `max_requests`
    items and `max_bytes` bytes (`sizes`: each item's bytes; room is left
    for the envelope, ENVELOPE_BYTES), in order; and the items that exceed
    the byte limit alone, which no batch can hold."""
    limit = max(max_bytes - ENVELOPE_BYTES, 1)
    batches: list[list[int]] = []
    too_big: list[int] = []
    current: list[int] = []
    used = 0
    for i, size in enumerate(sizes):
        if size > limit:
            too_big.append(i)
            continue
        if current and (len(current) >= max_requests or used + size > limit):
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += size
    if current:
        batches.append(current)
    return batches, too_big


# ------------------------------------------------------------- the record ---


class BatchLog:
    """The batches sent, as a JSON file: which requests (custom ids) each
    holds, whether it has ended, and which of its requests failed there.

    Holds ids and hashes only, never a prompt or a credential."""

    VERSION = 1

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.batches: list[dict[str, Any]] = []
        try:  # now, not after the first batch is paid for
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TripostError(f"teacher batch record {self.path}: cannot make its folder ({e.strerror})") from None
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                batches = data["batches"]
                if not isinstance(batches, list) or not all(isinstance(b, dict) and isinstance(b.get("keys"), list) for b in batches):
                    raise ValueError("batches is not a list of batch records")
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise TripostError(
                    f"teacher batch record {self.path} is unreadable ({type(e).__name__}); it lists the batches already paid for, "
                    "so it is not overwritten: move it away to start afresh"
                ) from None
            self.batches = batches
        self._index: dict[str, dict[str, Any]] = {}
        for b in self.batches:
            self._add_to_index(b)

    def _add_to_index(self, batch: dict[str, Any]) -> None:
        failed = set(batch.get("failed") or ())
        for key in batch["keys"]:
            if key not in failed:
                self._index[key] = batch  # a later batch of the same request wins

    def find(self, key: str) -> str | None:
        """The batch that holds request `key` and did not fail it, if any."""
        batch = self._index.get(key)
        return str(batch["id"]) if batch is not None else None

    def add(self, batch_id: str, backend: str, endpoint: str, model: str, keys: Sequence[str]) -> None:
        batch = {"id": batch_id, "backend": backend, "endpoint": endpoint, "model": model,
                 "created": round(time.time(), 3), "state": "sent", "keys": list(keys), "failed": []}
        self.batches.append(batch)
        self._add_to_index(batch)
        self._save()

    def keys_of(self, batch_id: str) -> list[str]:
        return next((list(b["keys"]) for b in self.batches if b["id"] == batch_id), [])

    def ended(self, batch_id: str, state: str, failed: Sequence[str]) -> None:
        """Record that `batch_id` ended; its `failed` requests are asked anew."""
        for b in self.batches:
            if b["id"] == batch_id:
                b["state"] = state
                b["failed"] = sorted(set(b.get("failed") or ()) | set(failed))
        self._index = {}
        for b in self.batches:  # a request failed here may have an answer in an earlier batch
            self._add_to_index(b)
        self._save()

    def _save(self) -> None:
        """Write the record, keeping the batches other processes added to the
        same file meanwhile (two `tripost teach` under one $TRIPOST_HOME)."""
        with _locked(self.path.with_name(self.path.name + ".lock")):
            mine = {b["id"] for b in self.batches}
            try:
                theirs = json.loads(self.path.read_text(encoding="utf-8")).get("batches", [])
            except (OSError, ValueError, AttributeError):
                theirs = []
            merged = [b for b in theirs if isinstance(b, dict) and b.get("id") not in mine] + self.batches
            atomic_write_json(self.path, {"version": self.VERSION, "batches": merged})


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` between processes (POSIX; elsewhere none)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------ the backend ---


def _say(message: str) -> None:
    # Through tqdm, so the collection's progress bar is redrawn below the line.
    from tqdm import tqdm

    tqdm.write(f"tripost: {message}", file=sys.stderr)


class BatchingBackend:
    """A `ChatBackend` that answers through its backend's batch API (see the
    module docstring). `wait`: seconds without a new request before the held
    ones go out; `poll`: seconds before the first status re-check."""

    # Requests are answered a round at a time: a caller asks all it can at once (PromptedTeacher.answers_in_rounds).
    answers_in_rounds = True

    def __init__(self, backend: Any, log: BatchLog, *, wait: float = 2.0, poll: float = 30.0,
                 say: Callable[[str], None] = _say):
        if not supports_batches(backend):
            raise TripostError(f"teacher.batch: the {backend.name} backend has no batch API (openai: and anthropic: have)")
        self.backend = backend
        self.name = backend.name
        self.model = backend.model
        self.endpoint = backend.endpoint
        self.sampling_rule = getattr(backend, "sampling_rule", None)  # what its requests may carry (sampling.py)
        # Every request of a round must be held at once: the requester's
        # concurrency bound is the provider's batch size, not a connection count.
        self.max_concurrency = int(backend.MAX_BATCH_REQUESTS)
        self.max_bytes = int(backend.MAX_BATCH_BYTES)
        self.log = log
        self.wait = wait
        self.poll = poll
        self.say = say
        self._held: dict[str, tuple[ChatRequest, list[asyncio.Future[ChatResponse]]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._first_held = 0.0
        self._watches: dict[str, asyncio.Task[dict[str, ChatResponse | ChatError]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiting: set[asyncio.Future[ChatResponse]] = set()  # every request not yet answered

    # ------------------------------------------------------------ requests ---

    async def acomplete(self, request: ChatRequest) -> ChatResponse:
        loop = asyncio.get_running_loop()
        key = request.key(self.name, self.endpoint)
        fut: asyncio.Future[ChatResponse] = loop.create_future()
        self._waiting.add(fut)
        fut.add_done_callback(self._waiting.discard)
        if not self._held:
            self._first_held = loop.time()
        self._held.setdefault(key, (request, []))[1].append(fut)
        self._arm(loop)
        return await fut

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send the held requests once `wait` seconds pass without a new one
        (at the latest 10 waits after the first), or at once when they fill a batch."""
        if self._timer is not None:
            self._timer.cancel()
        if len(self._held) >= self.max_concurrency or loop.time() - self._first_held >= 10 * self.wait:
            self._timer = None
            self._send_held()
        else:
            self._timer = loop.call_later(self.wait, self._send_held)

    def _send_held(self) -> None:
        self._timer = None
        held, self._held = self._held, {}
        if held:
            self._spawn(self._dispatch(held))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, held: dict[str, tuple[ChatRequest, list[asyncio.Future[ChatResponse]]]]) -> None:
        try:
            await self._send(held)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # never leave a request waiting for good: it fails, and says why
            error = classify(e, self.name)
            for _, futures in held.values():
                _fail(futures, error)

    async def _send(self, held: dict[str, tuple[ChatRequest, list[asyncio.Future[ChatResponse]]]]) -> None:
        """Requests already in a recorded batch wait for it; the rest go out
        as new batches within the provider's count and byte limits
        (`split_round`); a request bigger than a whole batch may hold fails
        alone, as the API would refuse it (413)."""
        known: dict[str, dict[str, list[asyncio.Future[ChatResponse]]]] = {}
        new: list[tuple[str, ChatRequest, list[asyncio.Future[ChatResponse]]]] = []
        for key, (request, futures) in held.items():
            batch_id = self.log.find(key)
            if batch_id is not None:
                known.setdefault(batch_id, {})[key] = futures
            else:
                new.append((key, request, futures))
        for batch_id, waiting in known.items():
            self._attach(batch_id, waiting, resumed=batch_id not in self._watches)
        try:
            sizes = [len(self.backend.batch_item(key, request)) for key, request, _ in new]
        except Exception as e:  # a request no batch can carry (build_params refused it): each fails as it would live
            error = classify(e, self.name)
            for _, _, futures in new:
                _fail(futures, error)
            return
        chunks, too_big = split_round(sizes, self.max_concurrency, self.max_bytes)
        for i in too_big:
            _fail(new[i][2], ChatError(f"{self.name}: a request of {sizes[i]:,} bytes is over the {self.max_bytes:,} bytes a batch "
                                       f"may hold", status=413, kind="http"))
        for indexes in chunks:
            chunk = [new[i] for i in indexes]
            try:
                batch_id = await self.backend.submit_batch([(key, request) for key, request, _ in chunk])
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the requests fail as a live request would, and retry.py decides
                error = classify(e, self.name)
                for _, _, futures in chunk:
                    _fail(futures, error)
                continue
            try:
                self.log.add(batch_id, self.name, self.endpoint, self.model, [key for key, _, _ in chunk])
            except OSError as e:  # the batch is paid for: wait for it all the same, and say a rerun cannot resume it
                self.say(f"warning: teacher batch {batch_id} could not be recorded in {self.log.path} ({e.strerror}); "
                         "if this run dies before it ends, a rerun sends its requests again")
            self.say(f"teacher batch {batch_id}: sent {len(chunk)} {self.name} request(s); polling until it ends "
                     f"(the provider allows 24 h); a killed run resumes it from {self.log.path}")
            self._attach(batch_id, {key: futures for key, _, futures in chunk})

    def _attach(self, batch_id: str, waiting: dict[str, list[asyncio.Future[ChatResponse]]], resumed: bool = False) -> None:
        watch = self._watches.get(batch_id)
        if watch is None:
            if resumed:
                self.say(f"teacher batch {batch_id}: {len(waiting)} request(s) were sent in it before; waiting for its results instead of paying again")
            watch = asyncio.get_running_loop().create_task(self._watch(batch_id))
            self._watches[batch_id] = watch
            # Done: its deliveries hold it; a later request of this batch reads it anew.
            watch.add_done_callback(lambda w, b=batch_id: self._watches.pop(b) if self._watches.get(b) is w else None)
        self._spawn(self._deliver(batch_id, watch, waiting))

    async def _deliver(self, batch_id: str, watch: asyncio.Task[dict[str, ChatResponse | ChatError]],
                       waiting: dict[str, list[asyncio.Future[ChatResponse]]]) -> None:
        try:
            results = await asyncio.shield(watch)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            error = classify(e, self.name)
            for futures in waiting.values():
                _fail(futures, error)
            return
        for key, futures in waiting.items():
            result = results.get(key)
            if result is None:
                result = ChatError(f"{self.name}: batch {batch_id} has no result for a request it was sent", retryable=True, kind="batch_missing")
            if isinstance(result, ChatError):
                _fail(futures, result)
            else:
                for f in futures:
                    if not f.done():
                        f.set_result(result)

    async def _watch(self, batch_id: str) -> dict[str, ChatResponse | ChatError]:
        try:
            return await self._poll_and_read(batch_id)
        except ChatError as e:
            if e.status not in (404, 410):
                raise
            # The provider does not know the batch (another project's key, past
            # its retention): its requests go out again, in a new batch, instead
            # of every rerun looking them up in this one.
            self._record_end(batch_id, "gone", self.log.keys_of(batch_id))
            raise ChatError(f"{self.name}: batch {batch_id} is gone ({e}); its requests are sent again",
                            retryable=True, kind="batch_gone") from None

    def _record_end(self, batch_id: str, state: str, failed: Sequence[str]) -> None:
        try:
            self.log.ended(batch_id, state, failed)
        except OSError as e:  # the results are here: deliver them; only the record is stale
            self.say(f"warning: could not record in {self.log.path} that batch {batch_id} ended ({e.strerror})")

    async def _poll_and_read(self, batch_id: str) -> dict[str, ChatResponse | ChatError]:
        """Poll `batch_id` until it ends (at once, then after `poll` seconds,
        growing 1.5x a time up to MAX_POLL_S), then read its results."""
        t0 = time.monotonic()
        delay, failures, seen = self.poll, 0, ""
        while True:
            try:
                status = await self.backend.batch_status(batch_id)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:
                error = classify(e, self.name)
                failures += 1
                if not error.retryable or failures >= MAX_STATUS_FAILURES:
                    raise error from None
                status = None
            if status is not None:
                if status.state != seen:
                    seen = status.state
                    if not status.ended:
                        self.say(f"teacher batch {batch_id}: {status.state}, {status.done}/{status.total} done")
                if status.ended:
                    break
            await asyncio.sleep(delay)
            delay = min(delay * POLL_GROWTH, max(self.poll, MAX_POLL_S))
        keys = self.log.keys_of(batch_id)
        results = await self._results(batch_id, keys)
        keys = keys or list(results)
        failed = [k for k in keys if not isinstance(results.get(k), ChatResponse)]
        self._record_end(batch_id, status.state, failed)
        self.say(f"teacher batch {batch_id}: {status.state} after {time.monotonic() - t0:.0f} s; "
                 f"{len(keys) - len(failed)} answered, {len(failed)} to ask again")
        return results

    async def _results(self, batch_id: str, keys: Sequence[str]) -> dict[str, ChatResponse | ChatError]:
        for attempt in range(MAX_STATUS_FAILURES):
            try:
                return await self.backend.batch_results(batch_id, keys)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                error = classify(e, self.name)
                if not error.retryable or attempt == MAX_STATUS_FAILURES - 1:
                    raise error from None
                await asyncio.sleep(min(self.poll * POLL_GROWTH ** attempt, MAX_POLL_S))
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._held = {}
        for f in list(self._waiting):  # every caller learns the backend closed
            f.cancel()
        pending = [*self._tasks, *self._watches.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._watches.clear()
        await self.backend.aclose()


def _fail(futures: list[asyncio.Future[ChatResponse]], error: ChatError) -> None:
    for f in futures:
        if not f.done():
            f.set_exception(error)


__all__ = ["BATCH_LOG_FILE", "BatchAPI", "BatchLog", "BatchStatus", "BatchingBackend", "supports_batches"]
