"""Sampling from the student: the backend interface and the local one.

A `GenerationBackend` turns fully rendered prompts (see prompt.py) into
completions. Prompts are plain strings, already through the chat template, so
a remote OpenAI-compatible completions server (vLLM serving the student with
its adapter) can stand in for the local backend without re-rendering anything.

The local backend batches with left padding (every prompt ends where decoding
starts, so one KV cache serves the whole batch), sorts prompts by length to
waste little on padding, draws `n` samples per prompt, and seeds each batch
from (seed, batch index) in a private generator: same arguments, same text,
and the caller's random stream is left alone.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from tripost.errors import TripostError
from tripost.student.base import FINISH_REASONS, Generation, LoadedModel, SamplingParams, unwrap_model
from tripost.student.engine import DEFAULT_BATCH, ContinuousBatcher, supports_engine
from tripost.student.tokens import encode_prompt, left_pad

# SamplingParams and Generation live in base.py (engine.py needs them too);
# this module is where callers have always found them.
__all__ = [
    "DEFAULT_BATCH",
    "ENGINES",
    "FINISH_REASONS",
    "Generation",
    "GenerationBackend",
    "GenerationStats",
    "LocalBackend",
    "SamplingParams",
    "context_length",
    "encode_prompt",
    "fit_context",
    "greedy",
    "left_pad",
    "sample",
]


@runtime_checkable
class GenerationBackend(Protocol):
    """Anything that samples completions for rendered prompts.

    `generate` returns one list per prompt, in prompt order, of `params.n`
    generations in sample order."""

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]: ...


@dataclass
class GenerationStats:
    """Throughput of the last `generate` call (for summaries and benchmarks)."""

    sequences: int = 0
    tokens: int = 0
    seconds: float = 0.0
    engine: Any = None  # the continuous engine's counters (EngineStats), when it ran
    truncated: int = 0  # prompts cut to fit the model's context (their start dropped)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


ENGINES = ("auto", "continuous", "static")


class LocalBackend:
    """Sampling with a local transformers model (the student).

    engine "continuous" (tripost.student.engine): sequences leave the batch
    when done and waiting prompts take their slots; "static": transformers'
    `generate` on length-sorted fixed batches (the reference the tests
    compare against, and the path for model types the engine does not
    support); "auto": continuous where supported. `batch_size` is the number
    of sequences decoded together (None: DEFAULT_BATCH)."""

    def __init__(self, student: LoadedModel, batch_size: int | None = None, progress: bool = False, engine: str = "auto"):
        if batch_size is not None and batch_size < 1:
            raise TripostError(f"batch size must be at least 1, got {batch_size}")
        if engine not in ENGINES:
            raise TripostError(f"unknown sampling engine {engine!r}; choose from {', '.join(ENGINES)}")
        self.student = student
        self.batch_size = batch_size or DEFAULT_BATCH
        self.progress = progress
        if engine == "auto":
            engine = "continuous" if supports_engine(student.model) else "static"
        elif engine == "continuous" and not supports_engine(student.model):
            raise TripostError("the continuous engine supports Llama-family models only; use engine 'static'")
        self.engine = engine
        self.last_stats = GenerationStats()

    def generate(self, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int] | None = None) -> list[list[Generation]]:
        """`params.n` generations per prompt. `seeds` (one per prompt): each
        prompt samples from its own seed, whatever else is in the call (a
        collector's record then depends on the record alone); None: the call's
        `params.seed`."""
        if seeds is not None and len(seeds) != len(prompts):
            raise TripostError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        if self.engine == "static":
            if seeds is None:
                return self._generate_static(prompts, params)
            # The static path seeds whole batches: a prompt alone per seed.
            return [self._generate_static([p], replace(params, seed=int(s)))[0] for p, s in zip(prompts, seeds)]
        return self._generate_continuous(prompts, params, seeds)

    def _generate_continuous(self, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int] | None = None) -> list[list[Generation]]:
        tok = self.student.tokenizer
        prompts = list(prompts)
        if not prompts:
            self.last_stats = GenerationStats()
            return []
        eos_ids = _eos_ids(self.student.model, tok)
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else eos_ids[0]
        stop_check = _stop_checker(tok, params.stop) if params.stop else None
        batcher = ContinuousBatcher(self.student.model, tok, slots=self.batch_size, progress=self.progress)
        encoded, truncated = fit_context(self.student.model, [encode_prompt(tok, p) for p in prompts], params.max_new_tokens)
        ids = batcher.run(encoded, params, eos_ids, stop_check, seeds=seeds)
        out = [
            [_finish(tok, row, eos_ids, pad_id, params, i, j, reason=batcher.finishes[i][j]) for j, row in enumerate(rows)]
            for i, rows in enumerate(ids)
        ]
        st = batcher.stats
        self.last_stats = GenerationStats(sequences=st.sequences, tokens=sum(g.n_tokens for r in out for g in r), seconds=st.seconds, engine=st,
                                          truncated=truncated)
        return out

    def _generate_static(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        import torch
        from tqdm.auto import tqdm

        model, tok = self.student.model, self.student.tokenizer
        prompts = list(prompts)
        out: list[list[Generation | None]] = [[None] * params.n for _ in prompts]
        if not prompts:
            self.last_stats = GenerationStats()
            return []
        # Token lengths decide the batching order: similar lengths batch
        # together, so little compute goes to padding.
        encoded, truncated = fit_context(model, [encode_prompt(tok, p) for p in prompts], params.max_new_tokens)
        jobs = [(i, j) for i in range(len(prompts)) for j in range(params.n)]
        jobs.sort(key=lambda ij: (len(encoded[ij[0]]), ij[0], ij[1]))
        batches = [jobs[k : k + self.batch_size] for k in range(0, len(jobs), self.batch_size)]
        device = self.student.device
        eos_ids = _eos_ids(model, tok)
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else eos_ids[0]
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": pad_id,
            "eos_token_id": eos_ids,
            "bos_token_id": tok.bos_token_id,
        }
        if params.ignore_eos:
            # EOS is masked out until the last token, so every row decodes
            # exactly max_new_tokens (a fixed workload for benchmarks).
            gen_kwargs["min_new_tokens"] = params.max_new_tokens
        # Sampling happens in our own logits processor (see _NucleusSampler),
        # which hands transformers a one-hot choice; its argmax then picks it.
        gen_kwargs["do_sample"] = False
        sampler = None
        if not params.greedy:
            sampler = _NucleusSampler(params.temperature, params.top_p, device)
            gen_kwargs["logits_processor"] = [sampler]
        if params.stop:
            gen_kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
        stats = GenerationStats(truncated=truncated)
        start = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            for b, batch in enumerate(tqdm(batches, desc="sampling", unit="batch", disable=not self.progress or len(batches) < 2)):
                input_ids, attention = left_pad([encoded[i] for i, _ in batch], pad_id)
                width = input_ids.shape[1]
                if sampler is not None:
                    sampler.generator.manual_seed(_batch_seed(params.seed, b))
                with torch.inference_mode():
                    seqs = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **gen_kwargs)
                new = seqs[:, width:].tolist()
                for (i, j), row in zip(batch, new):
                    g = _finish(tok, row, eos_ids, pad_id, params, i, j)
                    out[i][j] = g
                    stats.tokens += g.n_tokens
                stats.sequences += len(batch)
        finally:
            if was_training:
                model.train()
        stats.seconds = time.perf_counter() - start
        self.last_stats = stats
        return [[g for g in row if g is not None] for row in out]


def context_length(model: Any) -> int | None:
    """The most positions the model was trained for (None: unknown)."""
    n = getattr(getattr(unwrap_model(model), "config", None), "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def fit_context(model: Any, encoded: list[list[int]], max_new_tokens: int) -> tuple[list[list[int]], int]:
    """Prompts cut to leave room for `max_new_tokens` in the model's context:
    the start is dropped, since the end (the question's tail and the turn
    marker) is what the next token depends on. Returns the prompts and how
    many were cut; a cut is reported once on stderr, not silently."""
    limit = context_length(model)
    if limit is None:
        return encoded, 0
    room = max(1, limit - max_new_tokens)
    cut = sum(len(ids) > room for ids in encoded)
    if not cut:
        return encoded, 0
    print(f"note: {cut} prompt(s) longer than the model's context ({limit} tokens, {max_new_tokens} kept for the answer) "
          f"were cut to their last {room} tokens", file=sys.stderr, flush=True)
    return [ids[-room:] if len(ids) > room else ids for ids in encoded], cut


def _stop_checker(tok: Any, stop: Sequence[str]) -> Any:
    """Whether a sequence's text now holds a stop string: the decoded tail,
    long enough for the longest stop string (every token is >= 1 character)."""
    tail = max(len(s) for s in stop) + 2

    def check(ids: list[int]) -> bool:
        text = tok.decode(ids[-tail:], skip_special_tokens=True)
        return any(s in text for s in stop)

    return check


class _NucleusSampler:
    """Temperature + nucleus (top-p) sampling (Holtzman et al. 2020) as a
    transformers logits processor that returns a one-hot choice.

    Why not transformers' own sampling: it sorts the whole vocabulary and draws
    from all of it at every step; for 32 rows of SmolLM2's 49k vocabulary that
    took ~200 ms a step on 2 CPU cores, a fifth of batched decoding. Here the
    nucleus is looked for among the top `k` tokens first (a partial top-k, ~8
    ms); only a row whose top `k` hold less than `top_p` of the mass falls back
    to a full sort, so the result is exactly nucleus sampling either way. The
    draw uses a private generator: seeded per batch, and the caller's global
    random stream is never touched.
    """

    def __init__(self, temperature: float, top_p: float, device: Any, k: int = 256):
        import torch

        self.temperature = temperature
        self.top_p = top_p
        self.k = k
        self.generator = torch.Generator(device=device)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logits = scores.float() / self.temperature
        if self.top_p >= 1.0:
            # Plain categorical draw, by the Gumbel-max trick (no full-vocabulary multinomial).
            u = torch.rand(logits.shape, generator=self.generator, device=logits.device).clamp_(min=1e-20)
            choice = (logits - torch.log(-torch.log(u))).argmax(-1, keepdim=True)
        else:
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)
            k = min(self.k, logits.shape[-1])
            top, idx = logits.topk(k, dim=-1)  # descending
            probs = (top - lse).exp()
            cover = probs.sum(-1) >= self.top_p
            choice = torch.empty((logits.shape[0], 1), dtype=torch.long, device=logits.device)
            if bool(cover.any()):
                rows = cover.nonzero().squeeze(-1)
                choice[rows] = self._draw(probs[rows], idx[rows])
            if not bool(cover.all()):
                rows = (~cover).nonzero().squeeze(-1)
                full, full_idx = logits[rows].sort(dim=-1, descending=True)
                choice[rows] = self._draw((full - lse[rows]).exp(), full_idx)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, choice, 0.0)

    def _draw(self, probs: Any, idx: Any) -> Any:
        """Keep the smallest top set whose mass reaches top_p (a token stays if
        the mass before it is below top_p; the first always stays), then draw."""
        import torch

        before = probs.cumsum(-1) - probs
        weights = probs.masked_fill(before >= self.top_p, 0.0)
        pick = torch.multinomial(weights, 1, generator=self.generator)
        return idx.gather(-1, pick)


def _batch_seed(seed: int, batch: int) -> int:
    return (seed * 1_000_003 + batch) % (2**63)


def _eos_ids(model: Any, tok: Any) -> list[int]:
    ids: list[int] = []
    cfg = getattr(model, "generation_config", None)
    raw = getattr(cfg, "eos_token_id", None) if cfg is not None else None
    for x in raw if isinstance(raw, (list, tuple)) else [raw]:
        if x is not None and x not in ids:
            ids.append(int(x))
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(int(tok.eos_token_id))
    if not ids:
        raise TripostError("the student's tokenizer has no end-of-sequence token")
    return ids


def _finish(tok: Any, row: list[int], eos_ids: list[int], pad_id: int, params: SamplingParams, i: int, j: int, reason: str | None = None) -> Generation:
    """Trim one generated row to its text, token count and finish reason.
    `reason` given (the continuous engine's rows end where they finished):
    only the text is cut; None (a static batch's padded row): found here."""
    if reason is not None:
        body = row[:-1] if reason == "eos" else row
        text = tok.decode(body, skip_special_tokens=True)
        if params.stop:
            cut = min((p for p in (text.find(s) for s in params.stop) if p >= 0), default=-1)
            if cut >= 0:
                text, reason = text[:cut], "stop"
        return Generation(prompt_index=i, sample_index=j, text=text, n_tokens=len(row), finish_reason=reason)
    n = len(row)
    reason = "length"
    if not params.ignore_eos:
        for k, t in enumerate(row):
            if t in eos_ids:
                n, reason = k + 1, "eos"
                break
    if reason == "length" and params.stop:
        # A row stopped by a stop string is padded to the batch's length.
        while n > 0 and row[n - 1] == pad_id:
            n -= 1
    body = [t for t in row[:n] if t not in eos_ids] if reason == "eos" else row[:n]
    text = tok.decode(body, skip_special_tokens=True)
    if params.stop:
        cut = min((p for p in (text.find(s) for s in params.stop) if p >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
            # transformers stops a row on a stop string and pads the rest: when
            # pad and EOS are one token, that padding is not a real EOS.
            if reason == "eos" and pad_id in eos_ids:
                n -= 1
            reason = "stop"
    return Generation(prompt_index=i, sample_index=j, text=text, n_tokens=n, finish_reason=reason)


def sample(student: LoadedModel, prompts: Sequence[str], params: SamplingParams, *, batch_size: int | None = None, progress: bool = False,
           seeds: Sequence[int] | None = None) -> list[list[Generation]]:
    """`params.n` samples for each prompt with the local backend (`seeds`: one per prompt, see LocalBackend.generate)."""
    return LocalBackend(student, batch_size=batch_size, progress=progress).generate(prompts, params, seeds=seeds)


def greedy(
    student: LoadedModel,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 256,
    stop: Sequence[str] = (),
    batch_size: int | None = None,
    progress: bool = False,
) -> list[Generation]:
    """One greedy completion per prompt."""
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=tuple(stop))
    return [row[0] for row in sample(student, prompts, params, batch_size=batch_size, progress=progress)]
