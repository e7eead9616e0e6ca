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
- attention as two matmuls against a key cache stored transposed
  (rows x kv heads x head_dim x columns), the query heads of one KV head
  packed as its rows (grouped-query attention without repeating the cache),
  softmax in fp32.

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

    def step(self, ids: "torch.Tensor", positions: "torch.Tensor", allowed: "torch.Tensor",
             keys_t: list["torch.Tensor"], values: list["torch.Tensor"], cur: int) -> "torch.Tensor":
        """`ids`, `positions`: (rows,) token and position of each live row;
        `allowed`: (rows, cur + 1) bool, the cache columns each row attends to
        (column `cur` is the new token's); `keys_t[layer]`: (slots, kv heads,
        head_dim, capacity), `values[layer]`: (slots, kv heads, capacity,
        head_dim). The new keys/values are written at column `cur`."""
        import torch
        import torch.nn.functional as F

        a, nh, kv, d = ids.shape[0], self.heads, self.kv_heads, self.head_dim
        groups, c = nh // kv, cur + 1
        x = self.embed(ids)  # (a, hidden)
        cos, sin = self.rotary(x.unsqueeze(1), positions.view(a, 1))
        cos, sin = cos.view(a, 1, d), sin.view(a, 1, d)
        bias = torch.zeros((a, 1, 1, c), dtype=torch.float32, device=x.device).masked_fill_(~allowed.view(a, 1, 1, c), float("-inf"))
        half = d // 2
        for i, L in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), L.ln1, self.eps)
            qkv = F.linear(h, L.wqkv, L.bqkv)
            qk = qkv[:, : (nh + kv) * d].view(a, nh + kv, d)
            qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), dim=-1) * sin
            kt, vs = keys_t[i], values[i]
            kt[:a, :, :, cur] = qk[:, nh:]
            vs[:a, :, cur] = qkv[:, (nh + kv) * d :].view(a, kv, d)
            q = qk[:, :nh].reshape(a, kv, groups, d)
            scores = torch.matmul(q, kt[:a, :, :, :c]).float().mul_(self.scale).add_(bias)
            probs = torch.softmax(scores, dim=-1).to(x.dtype)
            o = torch.matmul(probs, vs[:a, :, :c]).reshape(a, nh * d)
            x = x + F.linear(o, L.wo, L.bo)
            h = F.rms_norm(x, (self.hidden,), L.ln2, self.eps)
            gate, up = F.linear(h, L.wgu, L.bgu).split(self.inter, dim=-1)
            x = x + F.linear(F.silu(gate) * up, L.wdown, L.bdown)
        return F.linear(F.rms_norm(x, (self.hidden,), self.norm, self.eps), self.head_w, self.head_b)
