"""Teachers behind one interface; `make_teacher(spec)` builds one from a spec.

Specs (docs/design.md):

    scripted         knows the task, always right (the default)
    openai:MODEL     Chat Completions via the openai SDK (OPENAI_BASE_URL /
                     OPENAI_API_KEY: OpenAI, vLLM, Ollama, llama.cpp,
                     `tripost serve-teacher`)
    anthropic:MODEL  the Messages API via the anthropic SDK (ANTHROPIC_BASE_URL /
                     ANTHROPIC_API_KEY)
    hf:PATH          a local transformers model (folder, .gguf, or smollm2-135m)
    replay:LOG       answers recorded in an interaction log (file or folder)

The three LLM backends share one `PromptedTeacher` (prompted.py) with an
on-disk response cache, retries, bounded concurrency and a usage ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tripost.errors import TripostError, clip
from tripost.paths import tripost_home
from tripost.registry import Registry
from tripost.teachers.base import FeedbackReply, ImproveReply, Teacher, TeacherCall
from tripost.teachers.options import TeacherOptions, add_teacher_flags

_DEFAULT = TeacherOptions()  # the option defaults, declared once (options.py)


@dataclass(frozen=True)
class Backend:
    """One kind of teacher spec (`KIND` or `KIND:ARG`): the class that builds
    it from the spec (`from_spec(arg, **options)`), what its argument is
    ("" none, "model" or "path") with an example spec, whether it is a chat
    model that `PromptedTeacher` wraps (prompts, cache, retries, usage), its
    default answer length, and whether it answers on this machine, one
    request at a time (`max_concurrency`), so has no batch API."""

    target: str
    arg: str
    example: str
    chat: bool = True
    max_tokens: int = 768
    local: bool = False


BACKENDS: dict[str, Backend] = {
    "scripted": Backend("tripost.teachers.scripted:ScriptedTeacher", "", "scripted", chat=False),  # knows the task, always right
    "openai": Backend("tripost.teachers.openai_chat:OpenAIChat", "model", "openai:gpt-6-luna"),
    "anthropic": Backend("tripost.teachers.anthropic_chat:AnthropicChat", "model", "anthropic:claude-haiku-5-5"),
    # CPU decoding is slow: a shorter answer budget by default.
    "hf": Backend("tripost.teachers.hf_chat:HFChat", "path", "hf:/path/to/model", max_tokens=320, local=True),
    "replay": Backend("tripost.teachers.replay:ReplayTeacher", "path", "replay:run/log.jsonl", chat=False),
}
# The classes, imported on first use (the SDK imports are a measured start-up cost).
TEACHERS = Registry("teacher", {kind: b.target for kind, b in BACKENDS.items()})
SPECS = tuple(f"{kind}:{b.arg.upper()}" if b.arg else kind for kind, b in BACKENDS.items())
CACHE_FILE = "teacher-cache.sqlite"


def default_cache_path() -> Path:
    return tripost_home() / CACHE_FILE


def check_teacher_spec(spec: str, *, batch: bool = False) -> tuple[str, str]:
    """(kind, argument) of a teacher spec, or a one-line `TripostError`: the
    spec's syntax and the options it cannot take, checked without building a
    client, reading a key or loading a model, so `tripost run` can check it
    before its first stage (a wrong spec was found when iteration 1's collect
    began: after iteration 0 had trained and evaluated)."""
    kind, _, arg = spec.strip().partition(":")
    arg = arg.strip()
    backend = BACKENDS.get(kind)
    if backend is None:
        raise TripostError(f"unknown teacher spec {clip(spec)}; expected one of: {', '.join(SPECS)}")
    if backend.arg and not arg:
        raise TripostError(f"teacher spec {clip(spec)} needs a {backend.arg}, e.g. {backend.example}")
    if not backend.arg and arg:
        raise TripostError(f"unknown teacher spec {clip(spec)}; expected one of: {', '.join(SPECS)}")
    if batch and backend.local:  # before the model loads (a teacher that is no chat model has no requests to batch: ignored)
        raise TripostError(f"teacher.batch (--teacher-batch) needs an openai: or anthropic: teacher; an {kind}: teacher answers on this machine")
    return kind, arg


def make_teacher(
    spec: str,
    *,
    cache: bool | str | Path | Any = True,
    concurrency: int | None = _DEFAULT.concurrency,
    prices: str | Path | Mapping[str, Any] | None = None,
    ledger: Any = None,
    timeout: float = _DEFAULT.timeout,
    max_attempts: int = _DEFAULT.max_attempts,
    policy: Any = None,
    max_tokens: int | None = None,
    temperature: float | str | None = _DEFAULT.temperature,
    token_param: str = _DEFAULT.token_param,
    embed_request: bool = True,
    base_url: str | None = None,
    api_key: str | None = None,
    device: str | None = None,
    batch: bool = _DEFAULT.batch,
    batch_wait: float = _DEFAULT.batch_wait,
    batch_poll: float = _DEFAULT.batch_poll,
    batch_log: str | Path | None = None,
) -> Teacher:
    """Build a teacher from a spec; options apply to the LLM backends only.

    cache        True: the shared cache under `tripost_home()`; a path: that
                 sqlite file; False/None: no cache; or a `ResponseCache`
    concurrency  in-flight requests per backend (default: teacher.concurrency's, 8; hf: at most 1;
                 None: the backend's own, which for the API backends is the same default)
    prices       price overrides: mapping or TOML/JSON file (usage.py)
    ledger       a `Ledger` to book usage into (shared between teachers if you like)
    timeout      per-request timeout in seconds (API backends)
    max_attempts tries per request, the first included (retry.py), unless `policy` is given
    max_tokens   answer length limit (default 768; 320 for hf, where CPU decoding is slow)
    temperature  sampling temperature, sent only where the model takes one and part of
                 the cache key (sampling.py); "auto" (default): 0 where the model takes a
                 temperature, else the provider's default; None: the provider's default
    token_param  the name OpenAI gets the length limit under: max_tokens, or
                 max_completion_tokens (its reasoning models); auto (default):
                 max_completion_tokens for o-series and GPT-5+ names; other backends ignore it
    embed_request append the machine-readable request block to prompts (templates.py)
    base_url/api_key  override the SDK environment variables
    batch        answer through the provider's batch API, a round at a time
                 (openai:, anthropic:; batch.py), at half the list price
    batch_wait/batch_poll  seconds of quiet before a round goes out; before a status re-check
    batch_log    the JSON record of the batches sent, so a rerun resumes them
                 (default: `teacher-batches.json` under `tripost_home()`;
                 `tripost run` and `collect` keep it in the run folder)

    The options a user sets (the run config's `[teacher]` section, the
    `--teacher-*` flags) are `TeacherOptions` (options.py):
    `make_teacher(spec, **options.teacher_kwargs())`.
    """
    kind, arg = check_teacher_spec(spec, batch=batch)
    built = TEACHERS.get(kind).from_spec(arg, base_url=base_url, api_key=api_key, timeout=timeout, token_param=token_param, device=device)
    if not BACKENDS[kind].chat:
        return built

    # The LLM teacher's machinery loads here, on first use, like the backends
    # (the registry): a verb that builds no teacher (buffer, replay) imports
    # none of it (tests/test_replay.py guards that).
    from tripost.teachers.cache import ResponseCache
    from tripost.teachers.prompted import PromptedTeacher
    from tripost.teachers.retry import RetryPolicy
    from tripost.teachers.usage import Ledger, load_prices

    backend: Any = built
    if concurrency is not None and BACKENDS[kind].local:
        # One local model generates one answer at a time (hf_chat.py): more
        # requests in flight would only wait in threads.
        concurrency = min(concurrency, backend.max_concurrency)

    if batch:
        from tripost.teachers.batch import BATCH_LOG_FILE, BatchingBackend, BatchLog

        backend = BatchingBackend(backend, BatchLog(batch_log or tripost_home() / BATCH_LOG_FILE), wait=batch_wait, poll=batch_poll)
        # A round is every request in flight at once, so the requester may hold
        # a whole batch; the teacher source edits a whole collection pass at
        # once in batch mode (sources/teacher.py), and batch.py splits a round
        # by the provider's count and byte limits.
        concurrency = None

    if cache is True:
        response_cache = ResponseCache(default_cache_path())
    elif cache is False or cache is None:
        response_cache = None
    elif isinstance(cache, (str, Path)):
        response_cache = ResponseCache(cache)
    else:
        response_cache = cache
    if ledger is None:
        ledger = Ledger(load_prices(prices))
    elif prices is not None:
        raise TripostError("make_teacher: give prices= or ledger=, not both (a ledger has its own price table)")
    return PromptedTeacher(
        backend,
        cache=response_cache,
        ledger=ledger,
        concurrency=concurrency,
        policy=policy or RetryPolicy(max_attempts=max_attempts),
        max_tokens=max_tokens or BACKENDS[kind].max_tokens,
        temperature=temperature,
        embed_request=embed_request,
        name=f"{kind}:{arg.strip()}",
    )


__all__ = [
    "FeedbackReply", "ImproveReply", "Teacher", "TeacherCall", "TeacherOptions", "check_teacher_spec", "make_teacher", "add_teacher_flags",
    "BACKENDS", "Backend", "SPECS", "TEACHERS", "default_cache_path",
]
