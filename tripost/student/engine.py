"""Continuous batching for the local student: a decode loop that keeps every slot busy.

`model.generate` on a static batch decodes until its longest row is done: one
256-token answer holds 63 finished 40-token ones, and every step re-copies the
whole KV cache (`torch.cat`). This loop keeps `slots` sequences in flight;
when one finishes, a waiting prompt takes its slot (vLLM's continuous
batching, Yu et al. 2022 "Orca"). Three more savings, all exact:

* **Shared prefix.** Every prompt of a call starts with the same chat header
  and instruction (~85 of ~100 tokens for the student's prompts). Its keys and
  values are computed once and copied into each slot; only the suffix after it
  is prefilled per prompt.
* **Preallocated cache.** Keys and values live in one `[slots, kv_heads,
  capacity, head_dim]` tensor per layer (for the engine's own decode step,
  tripost.student.fastdecode, in blocks of 64 columns), written in place at
  a shared column `cur`; a step reads views, never copies. A slot's columns before its own
  sequence (left by earlier occupants) are masked out. When `cur` reaches the
  capacity, the columns no live sequence uses are dropped (one copy), so the
  attention width stays about one sequence long.
* **Per-sequence randomness.** Every sequence draws from its own generator,
  seeded by (seed, prompt index, sample index): what a sequence samples does
  not depend on which other sequences share its batch, so the same call gives
  the same text run to run.

How a step looks to the model: input ids `[A, 1]` (the last token of each of
the A live sequences), their own position ids, a boolean 4D mask `[A, 1, 1,
cur + 1]` of the columns each may see, and a cache object whose `update`
writes the new keys/values at column `cur` and returns the views. Models whose
attention takes a cache and a 4D mask this way (the Llama family) run here;
`SUPPORTED_MODEL_TYPES` lists them, and tripost.student.generate falls back to
`model.generate` for others.

Arithmetic for the embedded student (SmolLM2-135M: 30 layers, 3 KV heads of
64): one cached token is 30 x 2 x 3 x 64 floats = 46 KB in fp32, so 64 slots
of 500 columns hold 1.5 GB.
"""

from __future__ import annotations

import inspect
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tripost.errors import TripostError
from tripost.student.base import SamplingParams, unwrap_model
from tripost.student.fastdecode import BlockCache, FastDecoder, supports_fast_decode

if TYPE_CHECKING:
    import torch

SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
# Sequences in flight at once (the engine's slots; the local backend's batch).
# Chosen by measurement on a 2-core Zen 4 in bf16 (128 new tokens each,
# scripts/bench_student.py, docs/benchmarks/student.md; two runs): 413 / 445 /
# 481 and 373 / 380 / 406 tok/s at 64 / 128 / 192 (the 64: 304).
# A decode step's fixed costs (sampling, Python, thread hand-offs) are shared
# by more rows; 192 gains another 6-8% but needs 1.5x the KV cache (~2 GB for
# ~500 columns, the budget's edge) and 192 sequences in flight to fill, which
# an evaluation of 100-300 problems does not have for long. In fp32 the KV
# cache is twice as large and KV_BUDGET_MIB trims the slots.
DEFAULT_BATCH = 128
# A shared prefix shorter than this is not worth a separate forward pass.
MIN_SHARED_PREFIX = 8
# The KV cache of one call is bounded by this many MiB (the number of slots
# shrinks to fit): 64 slots x 500 columns of the embedded student are ~0.7 GB
# in bf16, ~1.5 GB in fp32.
KV_BUDGET_MIB = 2048
# Nucleus sampling looks for the nucleus among this many top tokens first; a
# row whose top-k hold less than top_p of the mass falls back to a full sort.
TOP_K_FIRST = 256


def supports_engine(model: Any) -> bool:
    cfg = getattr(unwrap_model(model), "config", None)
    return getattr(cfg, "model_type", None) in SUPPORTED_MODEL_TYPES and getattr(cfg, "_attn_implementation", "sdpa") in ("sdpa", "eager")


def _cache_kwarg(model: Any) -> str:
    """transformers 5.x renamed the forward's `past_key_values` to `cache`."""
    try:
        params = inspect.signature(unwrap_model(model).forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


class _PrefillCache:
    """Cache for a prefill forward: returns (shared prefix ++ new) per layer and
    keeps the new keys/values for the caller to store."""

    def __init__(self, prefix: list[tuple["torch.Tensor", "torch.Tensor"]] | None, rows: int):
        self.prefix = prefix
        self.rows = rows
        self.new: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def update(self, key: "torch.Tensor", value: "torch.Tensor", layer_idx: int, *args: Any, **kwargs: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        self.new[layer_idx] = (key, value)
        if not self.prefix:
            return key, value
        pk, pv = self.prefix[layer_idx]
        return torch.cat([pk.expand(self.rows, -1, -1, -1), key], dim=2), torch.cat([pv.expand(self.rows, -1, -1, -1), value], dim=2)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


class _ColumnCache:
    """The KV cache of the transformers-forward step: one `[slots, kv_heads,
    capacity, head_dim]` tensor per layer for keys and one for values, the
    layout the model's attention reads. Same column operations as the fast
    step's `BlockCache`."""

    def __init__(self, layers: int, slots: int, kv_heads: int, head_dim: int, capacity: int, dtype: Any, device: Any):
        import torch

        # Zeros, not empty: a masked column still meets the attention's
        # arithmetic (0 x NaN would be NaN), so it must hold a finite value.
        self.dtype = dtype
        self.keys = [torch.zeros((slots, kv_heads, capacity, head_dim), dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros((slots, kv_heads, capacity, head_dim), dtype=dtype, device=device) for _ in range(layers)]

    def put(self, layer: int, rows: slice, start: int, keys: "torch.Tensor", values: "torch.Tensor") -> None:
        self.keys[layer][rows, :, start : start + keys.shape[2]] = keys
        self.values[layer][rows, :, start : start + values.shape[2]] = values

    def get(self, layer: int, rows: slice, start: int, end: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        return self.keys[layer][rows, :, start:end].clone(), self.values[layer][rows, :, start:end].clone()

    def move_row(self, dst: int, src: int, end: int) -> None:
        for layer in range(len(self.keys)):
            self.keys[layer][dst, :, :end] = self.keys[layer][src, :, :end]
            self.values[layer][dst, :, :end] = self.values[layer][src, :, :end]


class _SlotCache:
    """Cache for a decode step: writes each live row's new key/value at column
    `cur` of the preallocated store and returns views up to it."""

    def __init__(self, keys: list["torch.Tensor"], values: list["torch.Tensor"], rows: int, cur: int):
        self.keys, self.values, self.rows, self.cur = keys, values, rows, cur

    def update(self, key: "torch.Tensor", value: "torch.Tensor", layer_idx: int, *args: Any, **kwargs: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
        k, v, a, c = self.keys[layer_idx], self.values[layer_idx], self.rows, self.cur
        k[:a, :, c : c + 1] = key
        v[:a, :, c : c + 1] = value
        return k[:a, :, : c + 1], v[:a, :, : c + 1]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.cur


@dataclass
class _Seq:
    """One sequence to generate: a prompt and a sample index."""

    job: int  # index in the call's flat job list
    prompt_index: int
    sample_index: int
    suffix: list[int]  # prompt ids after the shared prefix
    rng: random.Random
    out: list[int] = field(default_factory=list)
    start: int = 0  # first column of its suffix in its slot
    finish: str | None = None


@dataclass
class EngineStats:
    """Counters of one `run` (for summaries and benchmarks)."""

    sequences: int = 0
    tokens: int = 0  # generated tokens (EOS included)
    prefill_tokens: int = 0  # prompt tokens run through the model (the shared prefix once)
    prompt_tokens: int = 0  # prompt tokens a plain batch would have run
    steps: int = 0  # decode forwards
    prefills: int = 0  # prefill forwards
    compactions: int = 0
    slots: int = 0
    seconds: float = 0.0


class ContinuousBatcher:
    """The decode loop. `run(prompt_ids, params)` returns, per prompt, its
    `params.n` generations in sample order."""

    def __init__(self, model: Any, tokenizer: Any, *, slots: int = DEFAULT_BATCH, kv_budget_mib: int = KV_BUDGET_MIB, progress: bool = False,
                 fast_decode: bool = True):
        if slots < 1:
            raise TripostError(f"slots must be at least 1, got {slots}")
        if kv_budget_mib < 1:
            raise TripostError(f"kv_budget_mib must be at least 1, got {kv_budget_mib}")
        self.model = model
        self.tok = tokenizer
        self.slots = slots
        self.kv_budget_mib = kv_budget_mib
        self.progress = progress
        # The decode step without the transformers module stack
        # (tripost.student.fastdecode), where the model is plain Llama.
        self.fast_decode = fast_decode and supports_fast_decode(model)
        self.stats = EngineStats()
        self._cache_kw = _cache_kwarg(model)
        cfg = unwrap_model(model).config
        self._bool_mask = getattr(cfg, "_attn_implementation", "sdpa") == "sdpa"
        self._layers = cfg.num_hidden_layers
        self._kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self._head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads

    # ----------------------------------------------------------------- run ---

    def run(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, eos_ids: Sequence[int], stop_check: Any = None,
            seeds: Sequence[int] | None = None) -> list[list[list[int]]]:
        """Token ids generated per prompt and sample, and the finish reason of
        each (`self.finishes`, same nesting). `stop_check(ids) -> bool` says
        whether a sequence's text now contains a stop string. `seeds`: one
        seed per prompt, so that what a prompt samples depends on its own seed
        alone and not on its place in the call (default: params.seed and the
        prompt's index)."""
        import torch
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        prompts = [list(p) for p in prompt_ids]
        if any(not p for p in prompts):
            raise TripostError("an empty prompt has nothing to continue from")
        if seeds is not None and len(seeds) != len(prompts):
            raise TripostError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        n_jobs = len(prompts) * params.n
        self.stats = EngineStats(sequences=n_jobs, prompt_tokens=sum(len(p) for p in prompts) * params.n)
        result: list[list[list[int]]] = [[[] for _ in range(params.n)] for _ in prompts]
        self.finishes: list[list[str]] = [["length"] * params.n for _ in prompts]
        if not n_jobs:
            return result
        p0 = _shared_prefix_len(prompts)
        queue = [
            _Seq(job=k, prompt_index=i, sample_index=j, suffix=prompts[i][p0:],
                 rng=random.Random(_seq_seed(params.seed, i, j) if seeds is None else _seq_seed(int(seeds[i]), 0, j)))
            for k, (i, j) in enumerate((i, j) for i in range(len(prompts)) for j in range(params.n))
        ]
        queue.reverse()  # pop() from the end takes jobs in order
        eos = set(int(e) for e in eos_ids)
        row_len = max(len(s.suffix) for s in queue) + params.max_new_tokens
        # Capacity: the shared prefix, one sequence, and half a sequence of room
        # so that dropping unused columns happens every ~row_len/2 steps.
        cap = p0 + row_len + max(16, row_len // 2)
        dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        dtype_bytes = 2 if dtype in (torch.bfloat16, torch.float16) else 4
        per_slot = cap * self._layers * 2 * self._kv_heads * self._head_dim * dtype_bytes
        slots = max(1, min(self.slots, n_jobs, self.kv_budget_mib * 2**20 // per_slot))
        self.stats.slots = slots
        model = self.model
        dev = next(model.parameters()).device
        was_training = model.training
        model.eval()
        bar = tqdm(total=n_jobs, desc="sampling", unit="seq", disable=not self.progress or n_jobs < 2)
        try:
            with torch.inference_mode():
                prefix = self._prefill_prefix(prompts[0][:p0], dev) if p0 else None
                fast = FastDecoder(model) if self.fast_decode else None
                kv = (BlockCache if fast else _ColumnCache)(self._layers, slots, self._kv_heads, self._head_dim, cap, dtype, dev)
                valid = torch.zeros((slots, cap), dtype=torch.bool, device=dev)
                if prefix:
                    for layer, (pk, pv) in enumerate(prefix):
                        kv.put(layer, slice(None), 0, pk.expand(slots, -1, -1, -1), pv.expand(slots, -1, -1, -1))
                    valid[:, :p0] = True
                live: list[_Seq] = []  # live[r] occupies slot r
                cur = p0
                last = torch.zeros(slots, dtype=torch.long)
                admit_min = max(1, slots // 8)
                while queue or live:
                    # Admit waiting sequences into free slots: batched prefill.
                    free = slots - len(live)
                    if queue and free and (not live or free >= admit_min or len(queue) <= free):
                        if not live:  # a fresh wave: the cache starts over after the prefix
                            cur = p0 + max(len(s.suffix) for s in queue[-free:])
                            valid[:, p0:] = False
                        batch: list[_Seq] = []
                        while queue and len(batch) < free and len(queue[-1].suffix) <= cur - p0:
                            batch.append(queue.pop())
                        if batch:
                            first = self._prefill(batch, prefix, p0, cur, len(live), kv, valid, dev, params, eos)
                            for r, seq in enumerate(batch):
                                live.append(seq)
                                self._emit(seq, first[r], params, eos, stop_check)
                                last[len(live) - 1] = int(seq.out[-1])
                    # Retire finished sequences (swap the last live slot into the hole).
                    done = [r for r, s in enumerate(live) if s.finish is not None]
                    for r in reversed(done):
                        seq = live[r]
                        result[seq.prompt_index][seq.sample_index] = seq.out
                        self.finishes[seq.prompt_index][seq.sample_index] = seq.finish
                        tail = len(live) - 1
                        if r != tail:
                            kv.move_row(r, tail, cur)
                            valid[r, :cur] = valid[tail, :cur]
                            live[r] = live[tail]
                            last[r] = last[tail]
                        live.pop()
                        bar.update(1)
                    if not live:
                        continue
                    if cur >= cap:
                        cur = self._compact(live, p0, cur, kv, valid)
                    # One decode step for every live sequence.
                    a = len(live)
                    positions = torch.tensor([[p0 + len(s.suffix) + len(s.out) - 1] for s in live], dtype=torch.long, device=dev)
                    valid[:a, cur] = True
                    if fast:
                        logits = fast.step(last[:a].to(dev), positions.view(a), valid[:a, : cur + 1], kv, cur)
                    else:
                        mask = self._mask(valid[:a, : cur + 1].view(a, 1, 1, cur + 1), dtype)
                        cache = _SlotCache(kv.keys, kv.values, a, cur)
                        logits = model(input_ids=last[:a].view(a, 1).to(dev), position_ids=positions, attention_mask=mask,
                                       use_cache=True, logits_to_keep=1, **{self._cache_kw: cache}).logits[:, -1]
                    cur += 1
                    self.stats.steps += 1
                    chosen = self._choose(logits, live, params, eos)
                    for r, seq in enumerate(live):
                        self._emit(seq, chosen[r], params, eos, stop_check)
                        last[r] = chosen[r]
        finally:
            bar.close()
            if was_training:
                model.train()
        self.stats.tokens = sum(len(x) for row in result for x in row)
        self.stats.seconds = time.perf_counter() - t0
        return result

    # ------------------------------------------------------------- pieces ---

    def _mask(self, allowed: "torch.Tensor", dtype: Any) -> "torch.Tensor":
        """SDPA takes the boolean mask as is; eager attention adds it."""
        import torch

        if self._bool_mask:
            return allowed
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, torch.finfo(dtype).min)

    def _forward(self, ids: "torch.Tensor", positions: "torch.Tensor", mask: "torch.Tensor", cache: Any) -> Any:
        return self.model(input_ids=ids, position_ids=positions, attention_mask=mask, use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})

    def _prefill_prefix(self, ids: list[int], dev: Any) -> list[tuple["torch.Tensor", "torch.Tensor"]]:
        import torch

        n = len(ids)
        cache = _PrefillCache(None, 1)
        mask = torch.ones((n, n), dtype=torch.bool, device=dev).tril_().view(1, 1, n, n)
        self._forward(torch.tensor([ids], device=dev), torch.arange(n, device=dev).view(1, n), self._mask(mask, next(self.model.parameters()).dtype), cache)
        self.stats.prefills += 1
        self.stats.prefill_tokens += n
        return [cache.new[layer] for layer in range(self._layers)]

    def _prefill(self, batch: list[_Seq], prefix: Any, p0: int, cur: int, row0: int, kv: Any,
                 valid: "torch.Tensor", dev: Any, params: SamplingParams, eos: set[int]) -> list[int]:
        """Run the suffixes of `batch` (left-padded to one width w) after the
        shared prefix, store their keys/values in slots row0.. at columns
        [cur - w, cur), and return the logits of each suffix's last token."""
        import torch

        n = len(batch)
        w = max(len(s.suffix) for s in batch)
        ids = torch.full((n, w), self.tok.pad_token_id if self.tok.pad_token_id is not None else 0, dtype=torch.long)
        pos = torch.zeros((n, w), dtype=torch.long)
        real = torch.zeros((n, w), dtype=torch.bool)
        for r, s in enumerate(batch):
            m = len(s.suffix)
            ids[r, w - m :] = torch.tensor(s.suffix, dtype=torch.long)
            pos[r, w - m :] = torch.arange(p0, p0 + m)
            real[r, w - m :] = True
        # Query q sees the whole prefix and the real suffix tokens k <= q;
        # padded queries see the prefix only (their outputs are never read).
        causal = torch.ones((w, w), dtype=torch.bool).tril_()
        own = causal.view(1, w, w) & real.view(n, 1, w)
        mask = torch.cat([torch.ones((n, w, p0), dtype=torch.bool), own], dim=2) if p0 else own
        if not p0:  # a padded query with no prefix would see nothing: let it see itself
            mask |= torch.eye(w, dtype=torch.bool).view(1, w, w)
        cache = _PrefillCache(prefix, n)
        out = self._forward(ids.to(dev), pos.to(dev), self._mask(mask.view(n, 1, w, p0 + w).to(dev), kv.dtype), cache)
        for layer in range(self._layers):
            k, v = cache.new[layer]
            kv.put(layer, slice(row0, row0 + n), cur - w, k, v)
        valid[row0 : row0 + n, p0:] = False
        valid[row0 : row0 + n, cur - w : cur] = real.to(dev)
        for s in batch:
            s.start = cur - len(s.suffix)
        self.stats.prefills += 1
        self.stats.prefill_tokens += sum(len(s.suffix) for s in batch)
        return self._choose(out.logits[:, -1], batch, params, eos)

    def _compact(self, live: list[_Seq], p0: int, cur: int, kv: Any, valid: "torch.Tensor") -> int:
        """Drop the columns before the oldest live sequence: shift [m, cur) to
        [p0, ...). Capacity >= p0 + one whole sequence guarantees m > p0."""
        m = min(s.start for s in live)
        shift = m - p0
        if shift <= 0:
            raise TripostError("internal error: the decode cache has no room left (capacity below one sequence)")
        a = len(live)
        for layer in range(self._layers):
            kv.put(layer, slice(0, a), p0, *kv.get(layer, slice(0, a), m, cur))
        valid[:a, p0 : cur - shift] = valid[:a, m:cur].clone()
        valid[:a, cur - shift :] = False
        for s in live:
            s.start -= shift
        self.stats.compactions += 1
        return cur - shift

    def _choose(self, logits: "torch.Tensor", seqs: Sequence[_Seq], params: SamplingParams, eos: set[int]) -> list[int]:
        """The next token of each row: greedy, or temperature + nucleus with
        each sequence's own uniform draw (inverse CDF over the nucleus)."""
        import torch

        logits = logits.float()
        if params.ignore_eos:
            logits[:, list(eos)] = float("-inf")
        if params.greedy:
            return logits.argmax(-1).tolist()
        if params.temperature != 1.0:  # x / 1.0 is x: the authors' collection temperature skips a pass over 49,152 logits a row
            logits = logits.div_(params.temperature)  # in place: `logits` is this call's own fp32 copy (or the step's output, read once)
        # One fused softmax gives the normaliser and every probability; the
        # nucleus is then read from the probabilities themselves (descending
        # probabilities are descending logits). Before issue 31 this was a
        # log-sum-exp pass plus an exp of the top-k: ~3x the softmax's time.
        probs = torch.softmax(logits, dim=-1)
        u = torch.tensor([s.rng.random() for s in seqs], dtype=torch.float32, device=logits.device)
        if params.top_p >= 1.0:
            cdf = probs.cumsum(-1)
            idx = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1)).clamp_(max=logits.shape[-1] - 1)
            return idx.squeeze(-1).tolist()
        k = min(TOP_K_FIRST, logits.shape[-1])
        top, idx = probs.topk(k, dim=-1)
        cover = top.sum(-1) >= params.top_p
        if not bool(cover.all()):
            rows = (~cover).nonzero().squeeze(-1)
            full, full_idx = probs[rows].sort(dim=-1, descending=True)
            pick = _nucleus_pick(full, params.top_p, u[rows])
            choice = torch.empty(len(seqs), dtype=torch.long, device=logits.device)
            choice[rows] = full_idx.gather(-1, pick.unsqueeze(-1)).squeeze(-1)
            keep = cover.nonzero().squeeze(-1)
            if len(keep):
                choice[keep] = idx[keep].gather(-1, _nucleus_pick(top[keep], params.top_p, u[keep]).unsqueeze(-1)).squeeze(-1)
            return choice.tolist()
        return idx.gather(-1, _nucleus_pick(top, params.top_p, u).unsqueeze(-1)).squeeze(-1).tolist()

    def _emit(self, seq: _Seq, token: int, params: SamplingParams, eos: set[int], stop_check: Any) -> None:
        seq.out.append(int(token))
        if not params.ignore_eos and token in eos:
            seq.finish = "eos"
        elif stop_check is not None and stop_check(seq.out):
            seq.finish = "stop"
        elif len(seq.out) >= params.max_new_tokens:
            seq.finish = "length"


def _nucleus_pick(probs: "torch.Tensor", top_p: float, u: "torch.Tensor") -> "torch.Tensor":
    """Index into each row of descending `probs`: keep the smallest top set
    whose mass reaches top_p (a token stays while the mass before it is below
    top_p; the first always stays), then invert its CDF at u."""
    import torch

    before = probs.cumsum(-1) - probs
    weights = probs.masked_fill(before >= top_p, 0.0)
    cdf = weights.cumsum(-1)
    target = (u * cdf[:, -1]).unsqueeze(-1)
    return torch.searchsorted(cdf, target).squeeze(-1).clamp_(max=probs.shape[-1] - 1)


def _seq_seed(seed: int, prompt: int, sample: int) -> int:
    return (seed * 1_000_003 + prompt) * 1_000_033 + sample


def _shared_prefix_len(prompts: list[list[int]]) -> int:
    """Length of the common prefix of all prompts, leaving every prompt at
    least one token of its own (its last token's logits give the first sample)."""
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
        if n < MIN_SHARED_PREFIX:
            return 0
    return n if n >= MIN_SHARED_PREFIX else 0
