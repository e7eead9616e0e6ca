"""TriPosT's weighted causal-LM loss: per-token weights, packed attention (causal within each
example), and the fused head loss that computes each chunk's logits gradient in the forward pass.

TriPosT (Yu et al., NAACL 2024, Section 2.2 "Learning") fine-tunes the model on
its buffer with a weighted language-modelling loss: the tokens of the first
attempt count 1, everything from the first `Feedback:` on — the self-written
feedback and the improved answers — counts more (their weight 1.5), because
those are the skills the iteration is meant to teach; the prompt is not a
target. Here, per token t of an example with weight w_t,

    loss = sum_t w_t * CE_t / #{t : w_t > 0}        (shifted, causal)

summed over every token of the whole optimiser step (all micro-batches of a
gradient-accumulation cycle and all data-parallel ranks), so long and short
examples weigh as their tokens do, exactly as with one big batch. The
denominator counts the target tokens, not their weights, as the authors'
trainer does: a weight scales how hard its token trains, and is not divided
out again by the step's total weight. A feedback token (1.5) counts 1.5
times an attempt token, and an example weight (`use_example_weight`: the
buffer's `weight` column, e.g. the self-verified source's reweighting) makes
a step of low-weight examples move the model less than the same step at high
weight. A token of weight 0 is no target and is not counted. An option
the paper does not have, off by default: `revised_attempt_weight` gives the
first attempt of an improvement trajectory (the student's own, wrong) its own
weight; 0 teaches flagging and fixing without imitating the wrong attempt
(docs/benchmarks/learning-masked.md measures it).

Packing (CPU default): the examples of a micro-batch are concatenated into
one row with position ids restarting at 0 per example, and attention runs
per example (`packed_attention`, causal within each, nothing across), so no
compute goes to padding and the loss and gradients are those of the padded
batch (tests/test_train.py compares them). Each example's first token is
never a target: its weight is 0, as in the padded batch, where position 0
predicts nothing. In bf16 on a CPU, an example of up to
`MATMUL_ATTENTION_MAX_TOKENS` tokens attends through three bf16 matmuls
(`matmul_causal_attention`) instead of SDPA's CPU flash kernel, which is slow
in bf16 at these lengths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tripost.errors import TripostError
from tripost.student.base import unwrap_model

if TYPE_CHECKING:
    import torch


PACKED_ATTENTION = "tripost_packed"
# Longest example that attends through `matmul_causal_attention` in bf16 on a
# CPU. SDPA's CPU flash kernel runs its bf16 forward+backward at ~20 GFLOP/s
# at these lengths (AMD Zen 4, avx512_bf16, 9 heads of 64, GQA 3): 6-7 ms a
# 256-token example and layer, against ~4 ms for the matmuls; from ~600
# tokens on the flash kernel is faster (27 vs 42 ms at 800), and it is in
# fp32 at every length (4.7 vs 7.2 ms at 256), so fp32 keeps it.
# docs/benchmarks/train.md gives the whole-step figures.
MATMUL_ATTENTION_MAX_TOKENS = 512
_MATMUL_ATTENTION: Any = None


def _matmul_attention():
    """The autograd function of `matmul_causal_attention` (built once, lazily: importing tripost.train must not import torch)."""
    global _MATMUL_ATTENTION
    if _MATMUL_ATTENTION is not None:
        return _MATMUL_ATTENTION
    import torch

    class MatmulCausalAttention(torch.autograd.Function):
        """Causal attention of one example as bf16 matmuls: scores and the
        softmax in fp32, the probabilities kept in bf16 for backward (what
        the second matmul reads anyway). The query heads that share a KV head
        form one matrix, so the few KV heads are never repeated and their
        gradients need no reduction. q [H, n, D], k and v [KV, n, D]."""

        @staticmethod
        def forward(ctx: Any, q: Any, k: Any, v: Any, scale: float, low: Any) -> Any:
            heads, n, dim = q.shape
            kv = k.shape[0]
            ctx.dtypes = (q.dtype, k.dtype, v.dtype)
            # Under CPU autocast RoPE hands q and k over in fp32 (its cos/sin follow the fp32 residual stream).
            q, k, v = q.to(low), k.to(low), v.to(low)
            qg = q.reshape(kv, -1, dim)
            s = torch.matmul(qg, k.transpose(-1, -2)).float().view(kv, heads // kv, n, n)
            s.mul_(scale).masked_fill_(torch.ones(n, n, dtype=torch.bool, device=q.device).triu_(1), float("-inf"))
            p = torch.softmax(s, dim=-1).to(low).view(kv, -1, n)
            del s
            out = torch.matmul(p, v)
            ctx.save_for_backward(qg, k, v, p)
            ctx.scale = scale
            return out.view(heads, n, dim)

        @staticmethod
        def backward(ctx: Any, grad_out: Any) -> Any:
            qg, k, v, p = ctx.saved_tensors
            heads, n, dim = grad_out.shape
            g = grad_out.to(qg.dtype).reshape(k.shape[0], -1, dim)
            grad_v = torch.matmul(p.transpose(-1, -2), g)
            # The softmax's backward, dS = P * (dP - rowsum(P * dP)), in fp32 on
            # the bf16 dP: the row sums taken from dP itself (not from dO * O,
            # equal in exact arithmetic) keep a one-token row's gradient at 0.
            dp = torch.matmul(g, v.transpose(-1, -2)).float()
            pf = p.float()
            ds = dp.sub_((pf * dp).sum(-1, keepdim=True)).mul_(pf).mul_(ctx.scale).to(qg.dtype)
            del dp, pf
            grad_q = torch.matmul(ds, k).view(heads, n, dim)
            grad_k = torch.matmul(ds.transpose(-1, -2), qg)
            tq, tk, tv = ctx.dtypes
            return grad_q.to(tq), grad_k.to(tk), grad_v.to(tv), None, None

    _MATMUL_ATTENTION = MatmulCausalAttention
    return _MATMUL_ATTENTION


def matmul_causal_attention(query: Any, key: Any, value: Any, scale: float, low: Any) -> Any:
    """Causal attention of one example, q [1, H, n, D] and k, v [1, KV, n, D]
    (H a multiple of KV), computed by bf16 (`low`) matmuls; [1, H, n, D]."""
    return _matmul_attention().apply(query[0], key[0], value[0], scale, low)[None]


def takes_matmul_attention(device_type: str, bf16: bool) -> bool:
    """The rule for `matmul_causal_attention`: a CPU computing in bf16 (where
    SDPA's flash kernel is slow at these lengths); everywhere else SDPA. One
    rule for the attention itself (from its tensors) and for the memory
    estimate (tripost.train.setup, from the resolved config)."""
    return device_type == "cpu" and bf16


def _matmul_dtype(query: Any) -> Any:
    """bf16 when `packed_attention` takes the matmuls (`takes_matmul_attention`), else None."""
    import torch

    low = torch.get_autocast_dtype("cpu") if query.device.type == "cpu" and torch.is_autocast_enabled("cpu") else query.dtype
    return low if takes_matmul_attention(query.device.type, low == torch.bfloat16) else None


def packed_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                     scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    """Attention for packed rows: causal within each example, nothing across.

    Registered with transformers as the attention implementation
    `tripost_packed` (transformers passes the forward's extra keyword
    `packed_seq_lens` through to here). One SDPA call per example with
    `is_causal`, so no compute goes to the blocks a block-diagonal mask would
    discard; in bf16 on a CPU, examples of up to MATMUL_ATTENTION_MAX_TOKENS
    take `matmul_causal_attention`. Without `packed_seq_lens` it is
    transformers' SDPA attention."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    lens = kwargs.pop("packed_seq_lens", None)
    if lens is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs)
    if query.shape[0] != 1:
        raise TripostError("packed attention takes one packed row per micro-batch")
    groups = getattr(module, "num_key_value_groups", 1)
    dropout = dropout if module.training else 0.0
    low = _matmul_dtype(query) if dropout == 0.0 else None
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    outs, start = [], 0
    for n in lens:
        sl = slice(start, start + n)
        if low is not None and n <= MATMUL_ATTENTION_MAX_TOKENS:
            outs.append(matmul_causal_attention(query[:, :, sl], key[:, :, sl], value[:, :, sl], scaling, low))
        else:
            # GQA: repeating the few KV heads per example measured faster on CPU than
            # SDPA's enable_gqa (0.30 vs 0.35 s for 30 layers' forward+backward).
            outs.append(F.scaled_dot_product_attention(query[:, :, sl], repeat_kv(key[:, :, sl], groups), repeat_kv(value[:, :, sl], groups),
                                                       is_causal=True, scale=scaling, dropout_p=dropout))
        start += n
    out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
    return out.transpose(1, 2).contiguous(), None


def use_packed_attention(model: Any) -> None:
    """Register `packed_attention` and switch `model` (and its submodules' shared config) to it."""
    import torch
    from transformers import AttentionInterface

    # Not traced by torch.compile: the per-example loop would specialise the
    # graph on every micro-batch's lengths (a graph break here instead).
    AttentionInterface.register(PACKED_ATTENTION, torch.compiler.disable(packed_attention))
    unwrap_model(model).config._attn_implementation = PACKED_ATTENTION


# -------------------------------------------------------------------- loss ---


def weighted_ce_sum(logits: "torch.Tensor", input_ids: "torch.Tensor", weights: "torch.Tensor", offset: int = 0) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(sum_t w_t * CE_t, #{t : w_t > 0}) of the shifted causal LM loss: the
    weighted sum and the number of target tokens it is divided by.

    `logits[:, j]` is the model's output at position `offset + j` and predicts
    token `offset + j + 1`; weights are per predicted token. Only positions with
    a positive weight are upcast and scored, so zero-weight prompt tokens cost
    nothing here."""
    import torch
    import torch.nn.functional as F

    targets = input_ids[:, offset + 1 :]
    w = weights[:, offset + 1 :].to(torch.float32)
    logits = logits[:, : targets.shape[1]]
    keep = w > 0
    if not bool(keep.any()):
        zero = logits.sum() * 0.0  # keeps the graph: backward works, gradients are 0
        return zero.float(), keep.sum().to(torch.float32)
    ce = F.cross_entropy(logits[keep].float(), targets[keep], reduction="none")
    return (ce * w[keep]).sum(), keep.sum().to(torch.float32)


def weighted_causal_lm_loss(model: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor | None", weights: "torch.Tensor", *,
                            fused: bool = True, **model_kwargs: Any) -> "torch.Tensor":
    """Σ w·CE / #{w > 0} for one batch (the per-batch form of the trainer's
    loss; module docstring). `model_kwargs`: a packed batch's `position_ids`
    and `packed_seq_lens`."""
    total, norm = forward_weighted(model, input_ids, attention_mask, weights, fused=fused, model_kwargs=model_kwargs)
    return total / norm.clamp_min(1e-8)


# Model types whose logits are exactly `lm_head(last hidden state)`: nothing
# (soft-capping, scaling) after the head, so the loss may apply the head itself.
_PLAIN_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "smollm3", "phi3", "olmo2"})
# Rows of logits scored at once: ~256 MiB of fp32 logits for a 64k vocabulary.
_CHUNK_ELEMENTS = 2**23


def accepts_logits_to_keep(model: Any) -> bool:
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(unwrap_model(model).forward).parameters
    except (TypeError, ValueError):
        return False


def _plain_head(model: Any) -> Any:
    """The output projection when the loss may apply it itself, else None."""
    import torch

    base = unwrap_model(model)
    if getattr(getattr(base, "config", None), "model_type", None) not in _PLAIN_HEAD_TYPES:
        return None
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    return head if type(head) is torch.nn.Linear else None


def _chunk_ce(hidden: "torch.Tensor", weight: "torch.Tensor", bias: "torch.Tensor | None", targets: "torch.Tensor", w: "torch.Tensor") -> "torch.Tensor":
    import torch.nn.functional as F

    logits = F.linear(hidden, weight, bias).float()
    return (F.cross_entropy(logits, targets, reduction="none") * w).sum()


def _linear_cross_entropy():
    """The autograd function of the fused head's loss (built once, lazily: importing tripost.train must not import torch)."""
    global _LINEAR_CE
    if _LINEAR_CE is not None:
        return _LINEAR_CE
    import torch
    import torch.nn.functional as F

    class LinearCrossEntropy(torch.autograd.Function):
        """Σ w·CE of `hidden @ weight.T + bias` against `targets`, `rows` rows
        at a time, with the gradients computed in the forward pass: per chunk,
        logits -> w·(softmax - onehot(target)) -> that chunk's rows of the
        hidden states' gradient, and an in-place addition to the weight's.
        Backward only scales them by the incoming gradient. So no chunk's
        logits outlive it or are computed twice, and the weight's gradient is
        one tensor, not one per chunk added into another."""

        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, bias: Any, targets: Any, w: Any, rows: int) -> Any:
            need_h, need_w, need_b = ctx.needs_input_grad[:3]
            grad_h = torch.empty_like(hidden) if need_h else None
            grad_w = torch.zeros_like(weight) if need_w else None
            grad_b = torch.zeros_like(bias) if need_b else None
            total = hidden.new_zeros((), dtype=torch.float32)
            for i in range(0, hidden.shape[0], rows):
                h, t, wc = hidden[i : i + rows], targets[i : i + rows], w[i : i + rows]
                out = F.linear(h, weight, bias)
                low = out.dtype  # the logits' own dtype (bf16 under autocast): their gradient is cast to it, as autograd would
                logits = out.float()
                del out
                lse = torch.logsumexp(logits, dim=-1)
                total += ((lse - logits.gather(1, t[:, None]).squeeze(1)) * wc).sum()
                d = logits.sub_(lse[:, None]).exp_()  # softmax, in place
                d.scatter_add_(1, t[:, None], d.new_full((t.shape[0], 1), -1.0))
                d = d.mul_(wc[:, None]).to(low)
                if need_h:
                    grad_h[i : i + rows] = d @ weight.to(low)
                if need_w:
                    if grad_w.dtype == low:
                        grad_w.addmm_(d.t(), h.to(low))
                    else:
                        grad_w += d.t() @ h.to(low)
                if need_b:
                    grad_b += d.sum(0)
                del logits, d
            ctx.grads = (grad_h, grad_w, grad_b)
            return total

        @staticmethod
        def backward(ctx: Any, grad_total: Any) -> Any:
            grads, ctx.grads = ctx.grads, None
            return (*(None if g is None else g.mul_(grad_total.to(g.dtype)) for g in grads), None, None, None)

    _LINEAR_CE = LinearCrossEntropy
    return _LINEAR_CE


_LINEAR_CE = None


def forward_weighted(
    model: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor | None", weights: "torch.Tensor",
    keep_ok: bool | None = None, fused: bool = True, model_kwargs: dict[str, Any] | None = None,
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(Σ w·CE, #{w > 0}) of one batch.

    The vocabulary projection of a 49k-word model is a large share of a small
    model's compute and most of its training memory (batch x length x vocab
    floats, several times over in the loss and its gradient). Two savings:
    the model stops its logits at the first position that predicts a weighted
    token (`logits_to_keep`: the prompt weighs 0), and, for models whose logits
    are a plain linear head (`fused`), the head is skipped inside the model and
    applied here only to the positions with a positive weight, in chunks
    whose gradients are computed as each chunk's logits are (the
    LinearCrossEntropy function above), so no chunk's logits are stored or
    computed twice. Both give the same loss (tests/test_train.py compares
    them)."""
    import torch

    positive = (weights[:, 1:] > 0).any(dim=0).nonzero()
    start = int(positive[0]) if len(positive) else input_ids.shape[1] - 1
    if keep_ok is None:
        keep_ok = accepts_logits_to_keep(model)
    # Right padding (the collator's) never sits before a real token, so under
    # causal attention no real token can see it: the mask changes nothing the
    # loss reads, and without it SDPA takes its fused causal kernel instead of
    # materialising a mask.
    right_padded = attention_mask is not None and bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": None if right_padded else attention_mask, "use_cache": False, **(model_kwargs or {})}
    if keep_ok and start > 0:
        kwargs["logits_to_keep"] = input_ids.shape[1] - start
    else:
        start = 0
    head = _plain_head(model) if fused else None
    if head is None:
        logits = model(**kwargs).logits
        return weighted_ce_sum(logits, input_ids, weights, offset=start)

    captured: list[torch.Tensor] = []

    def skip_head(module: Any, args: tuple) -> tuple:
        captured.append(args[0])
        return (args[0][:, :0],)  # the model's own logits come out empty

    handle = head.register_forward_pre_hook(skip_head)
    try:
        model(**kwargs)
    finally:
        handle.remove()
    hidden = captured[-1]
    targets = input_ids[:, start + 1 :]
    w = weights[:, start + 1 :].to(torch.float32)
    keep = w > 0
    norm = keep.sum().to(torch.float32)
    hidden = hidden[:, : targets.shape[1]][keep]
    targets, w = targets[keep], w[keep]
    if hidden.shape[0] == 0:
        # Zero, with the head's weight in the graph: its gradient is a dense
        # zero, never only the embedding's sparse rows (sparse_tied_embedding_grad).
        return (hidden.sum() + head.weight.sum()) * 0.0, norm
    rows = max(1, _CHUNK_ELEMENTS // max(1, head.out_features))
    if torch.is_grad_enabled() and (hidden.requires_grad or head.weight.requires_grad):
        return _linear_cross_entropy().apply(hidden, head.weight, head.bias, targets, w, rows), norm
    total = hidden.new_zeros((), dtype=torch.float32)
    for i in range(0, hidden.shape[0], rows):
        total = total + _chunk_ce(hidden[i : i + rows], head.weight, head.bias, targets[i : i + rows], w[i : i + rows])
    return total, norm
