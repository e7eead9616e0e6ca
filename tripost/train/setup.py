"""What a run trains with on this device, decided once (`resolve_setup` -> `TrainSetup`: LoRA or
full, QLoRA, autocast, packing, activation checkpointing, compile), and the student loaded for it.

What is trained (`mode`): a LoRA adapter (r=16, all linear layers; Hu et al.
2021) on a frozen base, or every weight (`full`, as TriPosT itself fine-tunes;
cheap for a 135M student). How (`resolve_setup`, decided per device and
written into train_metrics.json): on a GPU, QLoRA (Dettmers et al. 2023: the
base in 4-bit NF4, bf16 compute) as before; on a CPU, fp32 weights with bf16
autocast where the CPU has bf16 matrix instructions (tripost.student.hardware
reads them off the CPU's flags), packed rows, no activation checkpointing while the activations
fit in memory. Iteration t continues from iteration t-1's weights, as TriPosT
trains one model across iterations.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

from tripost.errors import TripostError
from tripost.student.base import unwrap_model
from tripost.student.hardware import compute_profile
from tripost.student.load import (LoraSettings, attach_lora, check_adapter_dir, is_full_weights, load_adapter, load_student,
                                  resolve_model_dir)
from tripost.student.spec import parse_spec
from tripost.train.config import ACTIVATION_MEMORY_SHARE, COMPILE_MIN_TOKENS, FULL_MEMORY_SHARE, TrainConfig
from tripost.train.loss import MATMUL_ATTENTION_MAX_TOKENS, takes_matmul_attention, use_packed_attention


# ------------------------------------------------------------------ setup ---


@dataclass(frozen=True)
class TrainSetup:
    """How a run trains on its device: `TrainConfig`'s "auto"s resolved, with
    the reason for each choice (printed at start, kept in train_metrics.json)."""

    device: str
    mode: str
    precision: str  # the base weights' storage: nf4, bf16 or fp32
    autocast: str  # "bf16" or "no"
    gradient_checkpointing: bool
    packing: bool
    compile: bool
    reasons: tuple[str, ...] = ()

    def describe(self) -> str:
        what = "LoRA" if self.mode == "lora" else "full fine-tuning"
        if self.precision == "nf4":
            what = "QLoRA (nf4 base)"
        parts = [what, f"{self.precision} weights", "bf16 autocast" if self.autocast == "bf16" else "no autocast",
                 "packed rows" if self.packing else "padded batches",
                 "activation checkpointing" if self.gradient_checkpointing else "no activation checkpointing",
                 "torch.compile" if self.compile else "eager", f"on {self.device}"]
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d


def activation_bytes_per_token(model_config: Any, mode: str, lora_dropout: float, autocast: bool, matmul_attention: bool = False) -> int:
    """What one token's activations cost a step without checkpointing (kept
    for backward): per layer ~8 hidden-wide tensors (norm inputs/outputs,
    q/k/v/attention outputs, residuals) and 4 intermediate-wide ones (gate, up,
    their activation, the down projection's input); LoRA dropout keeps a
    dropped copy of each adapted input. The embedded student in fp32: 30 x
    (8 x 576 + 4 x 1536) x 4 B = 1.3 MB per token. `matmul_attention` (packed
    rows in bf16 on a CPU, loss.py) also keeps each example's bf16 attention
    probabilities, a row of at most MATMUL_ATTENTION_MAX_TOKENS per head: at
    most 30 x 9 x 512 x 2 B = 0.28 MB more per token."""
    hidden = int(getattr(model_config, "hidden_size", 576))
    inter = int(getattr(model_config, "intermediate_size", 4 * hidden))
    layers = int(getattr(model_config, "num_hidden_layers", 30))
    floats = 8 * hidden + 4 * inter
    if mode == "lora" and lora_dropout > 0:
        floats += 6 * hidden + inter
    probs = int(getattr(model_config, "num_attention_heads", 9)) * MATMUL_ATTENTION_MAX_TOKENS * 2 if matmul_attention else 0
    return layers * (floats * (2 if autocast else 4) + probs)


def student_parameters(spec: str) -> int | None:
    """The student's parameter count from its config (no weights loaded); None when unknown."""

    try:
        cfg = json.loads((resolve_model_dir(parse_spec(spec)) / "config.json").read_text(encoding="utf-8"))
        h, inter, layers, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
        heads = cfg["num_attention_heads"]
        kv = cfg.get("num_key_value_heads") or heads
        head_dim = cfg.get("head_dim") or h // heads
    except (OSError, ValueError, KeyError, TypeError, TripostError):
        return None
    attention = h * head_dim * (2 * heads + 2 * kv)  # q, o and k, v projections
    embeddings = vocab * h * (1 if cfg.get("tie_word_embeddings", True) else 2)
    return embeddings + layers * (attention + 3 * h * inter)


def available_memory_bytes(device: Any) -> int | None:
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resolve_setup(config: TrainConfig, *, device: Any = None, model_config: Any = None,
                  max_batch_tokens: int | None = None, planned_tokens: int | None = None) -> TrainSetup:
    """Resolve the config's "auto"s for `device` (None: CUDA when available).
    `max_batch_tokens` (the largest micro-batch, in tokens) and `planned_tokens`
    (the whole run) inform checkpointing and compilation."""
    import torch

    dev = torch.device(device if device is not None else (config.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    profile = compute_profile(dev)
    reasons = [profile.reason]

    def free_memory() -> int | None:
        # A simulated device (the tests' seam) says its own; else ask the device.
        return profile.memory_bytes if profile.memory_bytes is not None else available_memory_bytes(dev)

    mode = config.mode
    if mode == "auto" and config.adapter:
        mode = "full" if is_full_weights(config.adapter) else "lora"
        reasons.append(f"mode auto: {mode}, as the weights it continues from ({config.adapter})")
    elif mode == "auto":
        mode = "lora"
        if dev.type == "cpu":
            params = student_parameters(config.student)
            free = free_memory()
            fits = params is not None and free is not None and 16 * params <= FULL_MEMORY_SHARE * free
            mode = "full" if fits else "lora"
            size = "unknown size" if params is None else f"{params / 1e6:.0f}M parameters"
            reasons.append(f"mode auto: {mode} ({size}; full fine-tuning on a CPU while its training state fits in {FULL_MEMORY_SHARE:.0%} of free memory)")
        else:
            reasons.append("mode auto: lora (QLoRA on a GPU)")
    precision = config.precision
    if precision == "auto":
        precision = "nf4" if dev.type == "cuda" and mode == "lora" else "fp32"
        reasons.append(f"precision auto: {precision} ({'QLoRA on a GPU' if precision == 'nf4' else 'fp32 master weights'})")
    if config.mixed_precision == "bf16":
        if dev.type == "cuda" and not profile.bf16:
            raise TripostError("mixed_precision=bf16 but this GPU does not support bf16")
        autocast = "bf16"
    elif config.mixed_precision == "no" or precision == "bf16":
        autocast = "no"
    else:
        autocast = "bf16" if profile.bf16 else "no"
    packing = config.packing == "on" or (config.packing == "auto" and dev.type == "cpu")
    if config.gradient_checkpointing != "auto":
        ckpt = config.gradient_checkpointing == "on"
    elif precision == "nf4":
        ckpt = True
        reasons.append("activation checkpointing: on (QLoRA's recipe)")
    else:
        ckpt = False
        if model_config is not None and max_batch_tokens:
            matmul_attention = packing and takes_matmul_attention(dev.type, autocast == "bf16" or precision == "bf16")
            need = max_batch_tokens * activation_bytes_per_token(model_config, mode, config.lora_dropout, autocast == "bf16", matmul_attention)
            free = free_memory()
            if free is not None and need > ACTIVATION_MEMORY_SHARE * free:
                ckpt = True
            reasons.append(
                f"activation checkpointing: {'on' if ckpt else 'off'} (largest micro-batch {max_batch_tokens} tokens ~ {need / 2**30:.1f} GiB"
                f" of activations; {'unknown' if free is None else f'{free / 2**30:.1f} GiB'} free)"
            )
    if config.compile != "auto":
        compiled = config.compile == "on"
    else:
        compiled = dev.type == "cpu" and profile.bf16 and (planned_tokens or 0) >= COMPILE_MIN_TOKENS
        reasons.append(f"compile: {'on' if compiled else 'off'} (auto: CPUs with bf16 matrix units, runs of >= {COMPILE_MIN_TOKENS:,} tokens)")
    return TrainSetup(device=str(dev), mode=mode, precision=precision, autocast=autocast,
                      gradient_checkpointing=ckpt, packing=packing, compile=compiled, reasons=tuple(reasons))


# -------------------------------------------------------------- the model ---


def enable_checkpointing(model: Any) -> None:
    """Activation checkpointing on the transformers model under any wrapper."""
    base = unwrap_model(model)
    # transformers 5.x renamed it activation checkpointing (the old name warns
    # on every run); 5.0 has only the old one.
    if hasattr(base, "activation_checkpointing_enable"):
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def sparse_tied_embedding_grad(model: Any) -> bool:
    """Give a trained input embedding that shares its weight with the output
    head (tied, as the embedded student's) a sparse gradient: the rows of the
    step's tokens, added into the head's dense gradient of the same weight,
    instead of a dense vocabulary x hidden tensor of zeros (108 MiB for the
    135M student, allocated, filled and added at the very end of the backward
    pass, where the step's memory peaks with every other gradient). The
    weight's gradient is the same dense tensor either way (the head's is
    dense), so the optimizer sees no difference. One process, eager only
    (DDP buckets and compiled graphs expect dense gradients). True if set."""
    import torch

    base = unwrap_model(model)
    emb = base.get_input_embeddings() if hasattr(base, "get_input_embeddings") else None
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if type(emb) is not torch.nn.Embedding or head is None or getattr(head, "weight", None) is not emb.weight or not emb.weight.requires_grad:
        return False
    emb.sparse = True
    return True


def load_for_training(config: TrainConfig, setup: TrainSetup | None = None) -> Any:
    """The student ready to train as `setup` says (None: resolved here).

    lora: a trainable LoRA adapter (new, or continued from `config.adapter`)
    on a frozen base. The base is prepared first (frozen; for NF4, the
    non-quantised parameters upcast to fp32 by `prepare_model_for_kbit_training`)
    and the adapter wrapped around it after, since preparing freezes every
    parameter it sees. full: every weight trainable, from the base or from
    `config.adapter`'s full weights."""
    from peft import prepare_model_for_kbit_training
    from transformers import set_seed

    setup = setup or resolve_setup(config)
    set_seed(config.seed)  # the new adapter's initialisation
    adapter = check_adapter_dir(config.adapter) if config.adapter else None
    full_from = adapter is not None and is_full_weights(adapter)
    mode = setup.mode
    if full_from and mode == "lora":
        raise TripostError(f"{adapter} holds fully fine-tuned weights; continue it with train.mode full (a LoRA adapter on top would not load against the base)")
    if adapter is not None and not full_from and mode == "full":
        raise TripostError(f"{adapter} is a LoRA adapter; continue it with train.mode lora")
    device = config.device
    if device is None and os.environ.get("LOCAL_RANK") is not None:
        import torch

        # Under `accelerate launch` / torchrun every process loads its own
        # copy onto its own GPU (the QLoRA-with-DDP recipe), not all onto GPU 0.
        if torch.cuda.is_available():
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    student = load_student(config.student, setup.precision, adapter=adapter if full_from else None, device=device, trainable=True)
    model = student.model
    if setup.precision == "nf4":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=setup.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    else:
        for p in model.parameters():
            p.requires_grad_(mode == "full")
        if setup.gradient_checkpointing:
            enable_checkpointing(model)
    model.config.use_cache = False  # no KV cache while training
    student.model = model
    if mode == "lora":
        if adapter is not None:
            student.model = load_adapter(model, adapter, trainable=True, verb="continue from")
            student.adapter = adapter
            # The adapter names its base by Hub id (make_portable); while training, by the local folder
            # it is on, so that PEFT's checks at save time read that folder instead of asking the Hub.
            for peft_config in student.model.peft_config.values():
                peft_config.base_model_name_or_path = str(student.source_dir)
        else:
            attach_lora(student, LoraSettings(r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout, target_modules=tuple(config.target_modules)))
    if setup.packing:
        use_packed_attention(student.model)
    student.model.train()
    return student
