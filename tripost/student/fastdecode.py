"""One decode step of a Llama-architecture model, without the transformers module stack.

The engine's decode step feeds one token per sequence. At those shapes
(64 rows x 576 wide for the embedded student) each kernel is tiny, and the
profile of the transformers forward (docs/benchmarks/profile.md) showed the
step dominated by per-op and per-module cost rather than by the matmuls:
76 ATen calls (views included) and a dozen module calls per layer, norms that cast to fp32
and back, separate q/k/v and gate/up projections, and SDPA over a key cache
whose columns are strided (its per-row batched matmul ran at ~15 GFLOP/s).
This step is the same arithmetic written out once, nanoGPT-style:

- q, k, v in one matmul and gate, up in another (weights concatenated once
  per engine call, from the live model, so a model trained in between is
  seen as it is now);
- `F.rms_norm`, rotary embedding applied to q and k together;
- attention as matmuls against a key cache stored transposed (rows x kv
  heads x head_dim x columns), the query heads of one KV head packed as its
  rows (grouped-query attention without repeating the cache), softmax in
  fp32;
- the cache in blocks of `BLOCK` columns, each block its own contiguous
  tensor (`BlockCache`), attended block by block. CPU batched matmuls over
  a column slice of one long cache (batches strided by its capacity) ran
  well below the same matmuls on contiguous operands: on the 2-core Zen 4
  in bf16 a whole step at 128 rows and 261 live columns took 343 ms
  (median) over a 420-column cache's slice and 225 ms over a cache of
  exactly 261 columns. Blocks keep every operand contiguous at the cost of
  attending to the last block's unused (masked) columns.

It reads the weights of the model it is given and nothing else, so it
applies only where the model is exactly the plain architecture: a
`LlamaForCausalLM` with plain `nn.Linear` projections (no LoRA layer, no
quantized layer), SiLU MLP, and no sliding window. `supports_fast_decode`
says whether it does; the engine falls back to the transformers forward
otherwise. tests/test_fastdecode.py compares its logits with the
transformers forward's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tripost.student.base import unwrap_model

if TYPE_CHECKING:
    import torch


def supports_fast_decode(model: Any) -> bool:
    """True where `FastDecoder` computes exactly what the model's forward does."""
    import torch

    base = unwrap_model(model)
    cfg = getattr(base, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "llama" or type(base).__name__ != "LlamaForCausalLM":
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "sliding_window", None):
        return False
    if getattr(base, "hf_quantizer", None) is not None or getattr(base, "peft_config", None):
        return False
    head = base.get_output_embeddings()
    linears = [head] + [m for layer in base.model.layers
                        for m in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj,
                                  layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj)]
    return all(type(m) is torch.nn.Linear for m in linears)


# Cache columns per block: small enough that the last block's masked columns
# are a small share of a ~300-column attention, large enough that a step
# makes few matmul calls (2 per block and layer).
BLOCK = 64


class BlockCache:
    """The fast step's KV cache: per layer, `keys_t[layer][b]` (slots, kv
    heads, head_dim, BLOCK) and `values[layer][b]` (slots, kv heads, BLOCK,
    head_dim) hold columns [b * BLOCK, (b + 1) * BLOCK). Zeros at first: a
    masked column still meets the attention's arithmetic (0 x NaN would be
    NaN), so it must hold a finite value. `put`, `get` and `move_row` are the
    column operations the engine needs (prefill, compaction, retiring a
    slot), in the same terms as its column-layout cache."""

    def __init__(self, layers: int, slots: int, kv_heads: int, head_dim: int, capacity: int, dtype: Any, device: Any):
        import torch

        n = -(-capacity // BLOCK)
        self.dtype = dtype
        self.keys_t = [[torch.zeros((slots, kv_heads, head_dim, BLOCK), dtype=dtype, device=device) for _ in range(n)] for _ in range(layers)]
        self.values = [[torch.zeros((slots, kv_heads, BLOCK, head_dim), dtype=dtype, device=device) for _ in range(n)] for _ in range(layers)]

    @staticmethod
    def _spans(start: int, end: int):
        """(block, first, last column in it, first, last offset from start) for columns [start, end)."""
        for b in range(start // BLOCK, (end - 1) // BLOCK + 1) if end > start else ():
            lo, hi = max(start, b * BLOCK), min(end, (b + 1) * BLOCK)
            yield b, lo - b * BLOCK, hi - b * BLOCK, lo - start, hi - start

    def put(self, layer: int, rows: slice, start: int, keys: "torch.Tensor", values: "torch.Tensor") -> None:
        """Write `keys`, `values` (rows, kv heads, columns, head_dim) at columns start.. of `rows`."""
        for b, lo, hi, s0, s1 in self._spans(start, start + keys.shape[2]):
            self.keys_t[layer][b][rows, :, :, lo:hi] = keys[:, :, s0:s1].transpose(-1, -2)
            self.values[layer][b][rows, :, lo:hi] = values[:, :, s0:s1]

    def get(self, layer: int, rows: slice, start: int, end: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        """A copy of columns [start, end) of `rows`, as (rows, kv heads, columns, head_dim)."""
        import torch

        spans = list(self._spans(start, end))
        return (torch.cat([self.keys_t[layer][b][rows, :, :, lo:hi].transpose(-1, -2) for b, lo, hi, _, _ in spans], dim=2),
                torch.cat([self.values[layer][b][rows, :, lo:hi] for b, lo, hi, _, _ in spans], dim=2))

    def move_row(self, dst: int, src: int, end: int) -> None:
        """Slot `src`'s columns [0, end) into slot `dst` (whole blocks: columns past `end` are masked anyway)."""
        for layer in range(len(self.keys_t)):
            for b in range(-(-end // BLOCK)):
                self.keys_t[layer][b][dst] = self.keys_t[layer][b][src]
                self.values[layer][b][dst] = self.values[layer][b][src]


@dataclass
class _Layer:
    ln1: "torch.Tensor"
    wqkv: "torch.Tensor"
    bqkv: "torch.Tensor | None"
    wo: "torch.Tensor"
    bo: "torch.Tensor | None"
    ln2: "torch.Tensor"
    wgu: "torch.Tensor"
    wdown: "torch.Tensor"
    bgu: "torch.Tensor | None"
    bdown: "torch.Tensor | None"


def _cat_bias(*mods: Any) -> "torch.Tensor | None":
    import torch

    if all(m.bias is None for m in mods):
        return None
    return torch.cat([m.bias if m.bias is not None else m.weight.new_zeros(m.out_features) for m in mods])


class FastDecoder:
    """`step(...)` is one decode forward over the live rows, returning the
    last position's logits (rows x vocabulary)."""

    def __init__(self, model: Any):
        import torch

        base = unwrap_model(model)
        cfg = base.config
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.hidden = cfg.hidden_size
        self.inter = cfg.intermediate_size
        self.eps = cfg.rms_norm_eps
        self.scale = self.head_dim**-0.5
        self.embed = base.model.embed_tokens
        self.rotary = base.model.rotary_emb
        self.norm = base.model.norm.weight
        head = base.get_output_embeddings()
        self.head_w, self.head_b = head.weight, head.bias
        with torch.no_grad():
            self.layers = [
                _Layer(
                    ln1=layer.input_layernorm.weight,
                    wqkv=torch.cat([layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight, layer.self_attn.v_proj.weight]),
                    bqkv=_cat_bias(layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj),
                    wo=layer.self_attn.o_proj.weight, bo=layer.self_attn.o_proj.bias,
                    ln2=layer.post_attention_layernorm.weight,
                    wgu=torch.cat([layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight]),
                    bgu=_cat_bias(layer.mlp.gate_proj, layer.mlp.up_proj),
                    wdown=layer.mlp.down_proj.weight, bdown=layer.mlp.down_proj.bias,
                )
                for layer in base.model.layers
            ]

    def step(self, ids: "torch.Tensor", positions: "torch.Tensor", allowed: "torch.Tensor", cache: BlockCache, cur: int) -> "torch.Tensor":
        """`ids`, `positions`: (rows,) token and position of each live row;
        `allowed`: (rows, cur + 1) bool, the cache columns each row attends to
        (column `cur` is the new token's). The new keys/values are written
        at column `cur` of `cache`."""
        import torch
        import torch.nn.functional as F

        a, nh, kv, d = ids.shape[0], self.heads, self.kv_heads, self.head_dim
        groups, c = nh // kv, cur + 1
        blocks = -(-c // BLOCK)  # blocks holding columns 0..cur
        width = blocks * BLOCK
        at, col = divmod(cur, BLOCK)
        x = self.embed(ids)  # (a, hidden)
        cos, sin = self.rotary(x.unsqueeze(1), positions.view(a, 1))
        cos, sin = cos.view(a, 1, d), sin.view(a, 1, d)
        # The last block's columns past `cur` are masked like any other.
        bias = torch.full((a, 1, 1, width), float("-inf"), dtype=torch.float32, device=x.device)
        bias[..., :c].masked_fill_(allowed.view(a, 1, 1, c), 0.0)
        half = d // 2
        for i, L in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), L.ln1, self.eps)
            qkv = F.linear(h, L.wqkv, L.bqkv)
            qk = qkv[:, : (nh + kv) * d].view(a, nh + kv, d)
            qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), dim=-1) * sin
            kt, vs = cache.keys_t[i], cache.values[i]
            kt[at][:a, :, :, col] = qk[:, nh:]
            vs[at][:a, :, col] = qkv[:, (nh + kv) * d :].view(a, kv, d)
            q = qk[:, :nh].reshape(a, kv, groups, d)
            scores = torch.cat([torch.matmul(q, kt[b][:a]) for b in range(blocks)], dim=-1).float().mul_(self.scale).add_(bias)
            probs = torch.softmax(scores, dim=-1).to(x.dtype)
            # Each block's share of the output, summed in fp32 (one rounding to the model's dtype at the end).
            o = torch.matmul(probs[..., :BLOCK], vs[0][:a]).float()
            for b in range(1, blocks):
                o += torch.matmul(probs[..., b * BLOCK : (b + 1) * BLOCK], vs[b][:a])
            x = x + F.linear(o.to(x.dtype).reshape(a, nh * d), L.wo, L.bo)
            h = F.rms_norm(x, (self.hidden,), L.ln2, self.eps)
            gate, up = F.linear(h, L.wgu, L.bgu).split(self.inter, dim=-1)
            x = x + F.linear(F.silu(gate) * up, L.wdown, L.bdown)
        return F.linear(F.rms_norm(x, (self.hidden,), self.norm, self.eps), self.head_w, self.head_b)
