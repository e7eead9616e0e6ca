"""A student sampled on a server: an OpenAI-compatible completions endpoint.

Users with a GPU serve the student with vLLM (`vllm serve MODEL
--enable-lora --lora-modules NAME=ADAPTER_DIR`), whose OpenAI-compatible
completions API names the base model or a LoRA adapter per request; `tripost
serve-student` serves a local student the same way (for tests, and to share
one loaded model between processes). `RemoteStudent` has the methods the
stages use of a loaded `Student`:

    sample / generate  POST /v1/completions with the rendered prompts, `n`,
                       temperature, top_p, max_tokens, stop and seed
    greedy             the same at temperature 0
    use_adapter        POST /v1/load_lora_adapter {lora_name, lora_path}: the
                       engine loads a LoRA adapter folder at runtime (vLLM
                       with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), and every
                       later request names it (`tripost run` with
                       `student.engine`: one adapter per iteration)
    logprobs           POST /v1/completions with prompt + continuation,
                       `echo` and `logprobs`: the log-probabilities of the
                       continuation's tokens (those at or after the prompt's
                       last character, by `text_offset`)

The prompts are rendered here, with the student's own tokenizer (loaded
locally, no weights), exactly as for the in-process student, and a call
sends all its prompts in one request: tripost's engine seeds each sequence
by (seed, prompt index, sample index), so serve-student answers a call
exactly as the in-process student would. A server that does not seed that
way (vLLM) gives other, equally valid samples.

Scoring tokenizes prompt and continuation together on the server, the
in-process student apart; they agree when the prompt ends a token (tripost's
prompts end with the chat template's assistant header and a newline).
Token counts of generations are counted with the local tokenizer.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.student.base import Generation, SamplingParams
from tripost.student.logprob import SequenceScore
from tripost.student.spec import StudentSpec
from tripost.urls import endpoint_id

# How a completions API says why a choice ended -> tripost's FINISH_REASONS.
FINISH = {"stop": "stop", "length": "length", "eos": "eos"}
KEY_ENV = "TRIPOST_ENGINE_KEY"  # the key sent to the engine (serve-student's token); else OPENAI_API_KEY


@dataclass
class RemoteStudent:
    """A student behind a completions endpoint. `model` is the name the server
    knows it by (the base model, or an adapter: the adapter is named per
    request); `tokenizer` renders prompts and counts tokens here."""

    base_url: str
    model: str
    tokenizer: Any
    spec: StudentSpec
    api_key: str | None = None
    timeout: float = 600.0
    _client: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise TripostError(f"engine {self.base_url!r}: give the server's base URL, e.g. http://127.0.0.1:8000/v1")
        if not self.model:
            raise TripostError("a remote engine needs the model name the server serves (--engine-model)")

    def client(self) -> Any:
        if self._client is None:
            import openai

            key = self.api_key or os.environ.get(KEY_ENV) or os.environ.get("OPENAI_API_KEY") or "not-needed"
            self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=2)
        return self._client

    def describe(self) -> dict[str, Any]:
        return {"student": str(self.spec), "precision": "remote", "adapter": None, "engine": endpoint_id(self.base_url),
                "engine_model": self.model}

    @contextlib.contextmanager
    def _engine_errors(self) -> Iterator[None]:
        """An SDK error as one line naming the engine (never its key)."""
        import openai

        where = f"engine {endpoint_id(self.base_url)}"
        try:
            yield
        except openai.NotFoundError as e:
            raise TripostError(f"{where}: no model {self.model!r} there ({_message(e)})") from None
        except openai.AuthenticationError:
            raise TripostError(f"{where}: the key was refused (set {KEY_ENV} to the server's token)") from None
        except openai.APIConnectionError:
            raise TripostError(f"{where}: cannot connect (is the server running?)") from None
        except openai.APIStatusError as e:
            raise TripostError(f"{where}: HTTP {e.status_code}: {_message(e)}") from None

    def _create(self, **kw: Any) -> Any:
        with self._engine_errors():
            return self.client().completions.create(model=self.model, **kw)

    def use_adapter(self, path: str | Path, name: str | None = None) -> "RemoteStudent":
        """Have the engine load the LoRA adapter folder `path` and name it in
        every request from now on. vLLM's runtime LoRA API
        (`POST /v1/load_lora_adapter`; vLLM needs `--enable-lora` and
        VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), which serve-student serves too.
        The server reads `path` itself: the same machine, or a shared file
        system. `name` defaults to one derived from the folder's absolute
        path, so a rerun names the same adapter alike and finds it loaded."""
        import openai

        folder = Path(path).resolve()
        name = name or adapter_name(folder)
        with self._engine_errors():
            try:
                self.client().post("/load_lora_adapter", body={"lora_name": name, "lora_path": str(folder)}, cast_to=str)
            except openai.BadRequestError as e:
                # vLLM and serve-student refuse a name loaded before: a resumed run's adapter is there already.
                if "already" not in _message(e).lower():
                    raise
        self.model = name
        return self

    # ------------------------------------------------------------ sampling ---

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        """`params.n` generations per prompt, in prompt order, one request."""
        if not prompts:
            return []
        resp = self._create(prompt=list(prompts), n=params.n, temperature=params.temperature, top_p=params.top_p,
                            max_tokens=params.max_new_tokens, stop=list(params.stop) or None, seed=params.seed)
        rows: list[list[Generation]] = [[] for _ in prompts]
        for choice in sorted(resp.choices, key=lambda c: c.index):
            i, j = divmod(choice.index, params.n)
            if i >= len(prompts):
                raise TripostError(f"engine {endpoint_id(self.base_url)}: answer index {choice.index} for {len(prompts)} prompts")
            text = choice.text or ""
            n_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            rows[i].append(Generation(prompt_index=i, sample_index=j, text=text, n_tokens=n_tokens,
                                      finish_reason=FINISH.get(str(choice.finish_reason), "stop")))
        if any(len(r) != params.n for r in rows):
            raise TripostError(f"engine {endpoint_id(self.base_url)}: expected {params.n} choices per prompt, got {[len(r) for r in rows]}")
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
        `Student.logprobs` (with `append_eos` the end-of-sequence token's too)."""
        if len(prompts) != len(continuations):
            raise TripostError("logprobs: prompts and continuations differ in number")
        eos = self.tokenizer.eos_token or ""
        out: list[SequenceScore] = []
        for prompt, cont in zip(prompts, continuations):
            text = prompt + cont + (eos if append_eos else "")
            resp = self._create(prompt=text, max_tokens=1, echo=True, logprobs=0, temperature=0.0)
            lp = resp.choices[0].logprobs
            values = [float(v) for v, off in zip(lp.token_logprobs, lp.text_offset) if off >= len(prompt) and off < len(text) and v is not None]
            total = math.fsum(values)
            out.append(SequenceScore(sum=total, mean=total / len(values) if values else 0.0, n_tokens=len(values), token_logprobs=tuple(values)))
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

    from tripost.student.load import resolve_model_dir
    from tripost.student.spec import parse_spec

    spec = parse_spec(spec)
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_dir(spec)))
    return RemoteStudent(base_url=engine.rstrip("/"), model=model, tokenizer=tokenizer, spec=spec, api_key=api_key)


__all__ = ["KEY_ENV", "RemoteStudent", "adapter_name", "load_remote_student"]
