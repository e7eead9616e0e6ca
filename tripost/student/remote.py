"""A student sampled on a server: an OpenAI-compatible completions endpoint.

Users with a GPU serve the student with vLLM (`vllm serve MODEL
--enable-lora --lora-modules NAME=ADAPTER_DIR`), whose OpenAI-compatible
completions API names the base model or a LoRA adapter per request; `tripost
serve-student` serves a local student the same way, and keeps vLLM's rules
where they matter to this client (for tests, and to share one loaded model
between processes). `RemoteStudent` has the methods the stages use of a
loaded `Student`:

    sample / generate  POST /v1/completions with the rendered prompts, `n`,
                       temperature, top_p, max_tokens, stop, seed and
                       `add_special_tokens`
    greedy             the same at temperature 0
    use_adapter        POST /v1/load_lora_adapter {lora_name, lora_path,
                       load_inplace}: the engine (re)loads a LoRA adapter
                       folder at runtime, every later request names it, and
                       the adapter this process had it load before for the
                       same base model is unloaded (/v1/unload_lora_adapter)
    logprobs           POST /v1/completions with prompt + continuation as
                       token ids and `prompt_logprobs`: the continuation's
                       token log-probabilities, read by position

vLLM's rules this client keeps (the vLLM source they come from is cited where
each is applied):

- at most VLLM_MAX_COMPLETION_PROMPTS (1,024) prompts in one request: calls
  with more are sent in several;
- a text prompt is tokenized with `add_special_tokens`, true unless sent:
  it is sent with every request, as the in-process student encodes the prompt
  (`tokens.adds_special_tokens`: no second BOS before a chat-templated
  prompt that spells its own), so a tokenizer that adds a BOS gets one;
- scored sequences are sent as token ids, tokenized here exactly as the
  in-process scorer tokenizes them (`tokens.encode_prompt` /
  `encode_continuation`), so both score the same tokens: no text offsets,
  which drift where a character is split across tokens;
- an adapter loaded again under its name is reloaded from its folder only
  with `load_inplace` (else vLLM keeps serving the weights it read first).

Prompts are rendered here, with the student's own tokenizer (loaded locally,
no weights), exactly as for the in-process student. tripost's engine seeds
each sequence by (seed, prompt index, sample index), so serve-student answers
a call of up to 1,024 prompts (one request) exactly as the in-process student
would; a longer call is several requests, whose prompt indices restart, and a
server that does not seed that way (vLLM) gives other, equally valid samples.
Token counts of generations are counted with the local tokenizer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.student.base import Generation, SamplingParams, SequenceScore
from tripost.student.load import resolve_model_dir
from tripost.student.spec import StudentSpec, parse_spec
from tripost.student.tokens import adds_special_tokens, encode_continuation, encode_prompt
from tripost.urls import endpoint_id

log = logging.getLogger("tripost.student.remote")

# How a completions API says why a choice ended -> tripost's FINISH_REASONS.
FINISH = {"stop": "stop", "length": "length", "eos": "eos"}
KEY_ENV = "TRIPOST_ENGINE_KEY"  # the key sent to the engine (serve-student's token); else OPENAI_API_KEY
# vLLM refuses a completions request with more prompts than this (400, "prompt
# list length N exceeds the maximum allowed count"): the default of its
# VLLM_MAX_COMPLETION_PROMPTS (vllm/envs.py; checked in CompletionRequest's
# validate_prompt_list_length, vllm/entrypoints/openai/completion/protocol.py).
# A list of token ids is one prompt; a list of such lists counts its length.
MAX_COMPLETION_PROMPTS = 1024
RUNTIME_LORA_OFF = ("runtime LoRA loading is off (start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True "
                    "and --enable-lora)")

# The adapter this process last had each engine load for each base model:
# (engine, base model name) -> adapter name. Each stage of a run opens its own
# RemoteStudent, so "the previous iteration's adapter" is known per process,
# not per object; an object whose adapter was unloaded since loads it again
# (`RemoteStudent._create`).
_LOADED: dict[tuple[str, str], str] = {}
_LOADED_LOCK = threading.Lock()


@dataclass
class RemoteStudent:
    """A student behind a completions endpoint. `model` is the name the server
    knows it by (the base model, or an adapter: the adapter is named per
    request); `tokenizer` renders prompts and counts tokens here."""

    in_process = False  # StudentLike: the model is on the engine

    base_url: str
    model: str
    tokenizer: Any
    spec: StudentSpec
    api_key: str | None = None
    timeout: float = 600.0
    _client: Any = field(default=None, repr=False)
    _base_model: str = field(default="", repr=False)  # the base model's name there (`model` before any adapter)
    _adapter_dir: Path | None = field(default=None, repr=False)  # the folder `model` was loaded from, if an adapter

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise TripostError(f"engine {self.base_url!r}: give the server's base URL, e.g. http://127.0.0.1:8000/v1")
        if not self.model:
            raise TripostError("a remote engine needs the model name the server serves (--engine-model)")
        self._base_model = self._base_model or self.model

    def client(self) -> Any:
        if self._client is None:
            import openai

            key = self.api_key or os.environ.get(KEY_ENV) or os.environ.get("OPENAI_API_KEY") or "not-needed"
            self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=2)
        return self._client

    @property
    def where(self) -> str:
        return f"engine {endpoint_id(self.base_url)}"

    def describe(self) -> dict[str, Any]:
        return {"student": str(self.spec), "precision": "remote", "adapter": None, "engine": endpoint_id(self.base_url),
                "engine_model": self.model}

    @contextlib.contextmanager
    def _engine_errors(self) -> Iterator[None]:
        """An SDK error as one line naming the engine (never its key)."""
        import openai

        try:
            yield
        except openai.NotFoundError as e:
            raise TripostError(f"{self.where}: no model {self.model!r} there ({_message(e)})") from None
        except openai.AuthenticationError:
            raise TripostError(f"{self.where}: the key was refused (set {KEY_ENV} to the server's token)") from None
        except openai.APIConnectionError:
            raise TripostError(f"{self.where}: cannot connect (is the server running?)") from None
        except openai.APIStatusError as e:
            raise TripostError(f"{self.where}: HTTP {e.status_code}: {_message(e)}") from None

    def _create(self, **kw: Any) -> Any:
        """One completions request naming `self.model`. An adapter this
        object loaded that is gone from the engine (unloaded by another of
        this process's students since, or the engine restarted) is loaded
        again from its folder, once."""
        import openai

        folder = self._adapter_dir
        with self._engine_errors():
            try:
                return self.client().completions.create(model=self.model, **kw)
            except openai.NotFoundError:
                if folder is None:
                    raise
            self._load(self.model, folder)
            return self.client().completions.create(model=self.model, **kw)

    # ------------------------------------------------------------ adapters ---

    def use_adapter(self, path: str | Path, name: str | None = None) -> "RemoteStudent":
        """Have the engine load the LoRA adapter folder `path` and name it in
        every request from now on. vLLM's runtime LoRA API
        (`POST /v1/load_lora_adapter`; vLLM needs `--enable-lora` and
        VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), which serve-student serves too.
        The server reads `path` itself: the same machine, or a shared file
        system. `name` defaults to one derived from the folder's absolute
        path, so a rerun names the same adapter alike; it is loaded with
        `load_inplace`, so an adapter retrained at the same path serves its
        new weights. The adapter this process had the engine load before for
        the same base model (the previous iteration's) is then unloaded."""
        folder = Path(path).resolve()
        name = name or adapter_name(folder)
        self._load(name, folder)
        key = (endpoint_id(self.base_url), self._base_model)
        with _LOADED_LOCK:
            previous = _LOADED.get(key)
            _LOADED[key] = name
        if previous and previous != name:
            self._unload(previous)
        self.model, self._adapter_dir = name, folder
        return self

    def _load(self, name: str, folder: Path) -> None:
        """POST /v1/load_lora_adapter with `load_inplace`: vLLM's
        LoadLoRAAdapterRequest field (vllm/entrypoints/serve/lora/protocol.py).
        Without it vLLM refuses a name loaded before (400 "has already been
        loaded"); with it the engine reads the folder again. A vLLM older than
        the field ignores it and refuses: then the adapter is unloaded and
        loaded afresh, which reads the folder too."""
        import openai

        body = {"lora_name": name, "lora_path": str(folder), "load_inplace": True}
        with self._engine_errors():
            try:
                self._post("/load_lora_adapter", body)
            except openai.BadRequestError as e:
                if "already been loaded" not in _message(e):
                    raise
                self._post("/unload_lora_adapter", {"lora_name": name})
                self._post("/load_lora_adapter", {"lora_name": name, "lora_path": str(folder)})

    def _unload(self, name: str) -> None:
        """POST /v1/unload_lora_adapter. Not loaded (404) is what was wanted;
        any other failure leaves the adapter loaded, which costs the engine
        memory, not this run its results: a warning, not an error."""
        import openai

        try:
            self._post("/unload_lora_adapter", {"lora_name": name})
        except openai.NotFoundError:
            pass
        except openai.APIError as e:
            log.warning("%s: could not unload adapter %s (%s)", self.where, name, _message(e))

    def _post(self, route: str, body: dict[str, Any]) -> None:
        """A POST to one of vLLM's LoRA routes; they answer 200 with a plain
        text ("Success: ..."). A 404 whose message is not vLLM's "No adapter
        found" is the route missing: FastAPI's 404, when vLLM runs without
        VLLM_ALLOW_RUNTIME_LORA_UPDATING (vllm/entrypoints/serve/lora/api_router.py
        registers the routes only then)."""
        import openai

        try:
            self.client().post(route, body=body, cast_to=str)
        except openai.NotFoundError as e:
            if route != "/load_lora_adapter":
                raise
            if "No adapter found" in _message(e):  # vLLM's LoRA loader (worker_manager.py), 404 since vLLM maps it so
                raise TripostError(f"{self.where}: no LoRA adapter at {body['lora_path']} as the engine sees it (it reads "
                                   "the folder itself: the same machine or a shared file system)") from None
            raise TripostError(f"{self.where}: {RUNTIME_LORA_OFF}") from None

    # ------------------------------------------------------------ sampling ---

    def _requests(self, prompts: Sequence[str]) -> Iterator[tuple[int, int, bool]]:
        """(start, stop, add_special_tokens) of each request a call of
        `prompts` takes: runs of prompts encoded alike (one request carries one
        `add_special_tokens`), each at most MAX_COMPLETION_PROMPTS long."""
        flags = [adds_special_tokens(self.tokenizer, p) for p in prompts]
        start = 0
        while start < len(prompts):
            stop = start + 1
            while stop < len(prompts) and stop - start < MAX_COMPLETION_PROMPTS and flags[stop] == flags[start]:
                stop += 1
            yield start, stop, flags[start]
            start = stop

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        """`params.n` generations per prompt, in prompt order."""
        rows: list[list[Generation]] = [[] for _ in prompts]
        for start, stop, special in self._requests(prompts):
            # add_special_tokens is a vLLM extra (CompletionRequest, default True): sent always, as encoded here.
            resp = self._create(prompt=list(prompts[start:stop]), n=params.n, temperature=params.temperature,
                                top_p=params.top_p, max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
                                seed=params.seed, extra_body={"add_special_tokens": special})
            for choice in sorted(resp.choices, key=lambda c: c.index):
                i, j = divmod(choice.index, params.n)
                if i >= stop - start:
                    raise TripostError(f"{self.where}: answer index {choice.index} for {stop - start} prompts")
                text = choice.text or ""
                n_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
                rows[start + i].append(Generation(prompt_index=start + i, sample_index=j, text=text, n_tokens=n_tokens,
                                                  finish_reason=FINISH.get(str(choice.finish_reason), "stop")))
        if any(len(r) != params.n for r in rows):
            raise TripostError(f"{self.where}: expected {params.n} choices per prompt, got {[len(r) for r in rows]}")
        return rows

    def sample(self, prompts: Sequence[str], params: SamplingParams, **kw: Any) -> list[list[Generation]]:
        """As `Student.sample`; batch and progress options are the server's business."""
        return self.generate(prompts, params)

    def greedy(self, prompts: Sequence[str], max_new_tokens: int = 256, stop: Sequence[str] = (), **kw: Any) -> list[Generation]:
        params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=tuple(stop))
        return [row[0] for row in self.generate(prompts, params)]

    # ------------------------------------------------------------- scoring ---

    def logprobs(self, prompts: Sequence[str], continuations: Sequence[str], *, append_eos: bool = False, **kw: Any) -> list[SequenceScore]:
        """The continuation's token log-probabilities after each prompt, as
        `Student.logprobs` (with `append_eos` the end-of-sequence token's too):
        the same token ids (tokenized here as `sequence_logprobs` does), sent
        as ids, up to MAX_COMPLETION_PROMPTS sequences a request. vLLM's
        `prompt_logprobs` (a CompletionRequest extra; each choice's
        `prompt_logprobs` is None for the first token, then a dict from token
        id to {logprob, rank, decoded_token} holding at least the prompt's own
        token) gives each position's log-probability."""
        if len(prompts) != len(continuations):
            raise TripostError("logprobs: prompts and continuations differ in number")
        tok = self.tokenizer
        pairs = [(encode_prompt(tok, p), encode_continuation(tok, c, append_eos=append_eos)) for p, c in zip(prompts, continuations)]
        values: list[list[float]] = [[] for _ in pairs]
        todo = [k for k, (_, cont) in enumerate(pairs) if cont]  # an empty continuation scores 0 over 0 tokens
        for at in range(0, len(todo), MAX_COMPLETION_PROMPTS):
            chunk = todo[at : at + MAX_COMPLETION_PROMPTS]
            # One token is generated (vLLM generates at least one) and ignored; prompt_logprobs=0: the prompt token's only.
            resp = self._create(prompt=[pairs[k][0] + pairs[k][1] for k in chunk], max_tokens=1, temperature=0.0,
                                extra_body={"prompt_logprobs": 0})
            for choice in resp.choices:
                if not 0 <= choice.index < len(chunk):
                    raise TripostError(f"{self.where}: answer index {choice.index} for {len(chunk)} sequences")
                k = chunk[choice.index]
                values[k] = self._read_prompt_logprobs(getattr(choice, "prompt_logprobs", None), *pairs[k])
        out = []
        for k, v in enumerate(values):
            if len(v) != len(pairs[k][1]):
                raise TripostError(f"{self.where}: no prompt_logprobs for sequence {k} (is it a vLLM server?)")
            total = math.fsum(v)
            out.append(SequenceScore(sum=total, mean=total / len(v) if v else 0.0, n_tokens=len(v), token_logprobs=tuple(v)))
        return out

    def _read_prompt_logprobs(self, entries: Any, prompt_ids: list[int], cont_ids: list[int]) -> list[float]:
        """The continuation's log-probabilities out of a choice's
        `prompt_logprobs`, by position, each checked to be for the token sent."""
        ids = prompt_ids + cont_ids
        if not isinstance(entries, list) or len(entries) != len(ids):
            got = len(entries) if isinstance(entries, list) else "none"
            raise TripostError(f"{self.where}: prompt_logprobs for {got} tokens, {len(ids)} sent (is it a vLLM server?)")
        out = []
        for pos in range(len(prompt_ids), len(ids)):
            entry = entries[pos] if isinstance(entries[pos], dict) else {}
            lp = entry.get(str(ids[pos]), entry.get(ids[pos]))  # JSON keys are strings
            value = lp.get("logprob") if isinstance(lp, dict) else None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TripostError(f"{self.where}: prompt_logprobs at position {pos} lacks the token sent there ({ids[pos]})")
            out.append(float(value))
        return out


def adapter_name(folder: str | Path) -> str:
    """The name an adapter folder is loaded under in an engine: from its
    absolute path, so two runs' `it1` adapters never share a name."""
    return "tripost-" + hashlib.sha256(str(Path(folder).resolve()).encode("utf-8")).hexdigest()[:16]


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(e, "message", e))


def load_remote_student(spec: str | StudentSpec, engine: str, model: str, *, api_key: str | None = None) -> RemoteStudent:
    """A `RemoteStudent` for `spec` served at `engine` under the name `model`;
    the spec gives the tokenizer (its folder, no weights loaded)."""
    from transformers import AutoTokenizer

    spec = parse_spec(spec)
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_dir(spec)))
    return RemoteStudent(base_url=engine.rstrip("/"), model=model, tokenizer=tokenizer, spec=spec, api_key=api_key)


__all__ = ["KEY_ENV", "MAX_COMPLETION_PROMPTS", "RemoteStudent", "adapter_name", "load_remote_student"]
