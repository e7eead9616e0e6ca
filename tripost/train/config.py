"""How a training run is configured: `TrainConfig` (its fields, defaults and checks), the
names of the files a trained folder holds, and the experiment trackers `report_to` takes.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from tripost.config import SWITCH_WORDS, switch
from tripost.errors import TripostError
from tripost.settings import option
from tripost.student.load import PRECISIONS
from tripost.student.prompt import CHAT_MODES
from tripost.train.objectives import OBJECTIVES


CONFIG_FILE = "train_config.json"
METRICS_FILE = "train_metrics.json"
CHECKPOINTS = "checkpoints"
# Where a checkpoint is written before it is renamed into OUT/checkpoints
# (a name neither transformers' `checkpoint-*` glob nor its regex matches).
STAGING_DIR = ".saving"
MODES = ("auto", "lora", "full")
DPO_REFERENCES = ("start", "base", "previous")
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


@dataclass
class TrainConfig:
    """Everything a training run depends on; written resolved into the output."""

    student: str = option("smollm2-135m", "the student spec: the embedded default, a transformers folder or a GGUF file")
    adapter: str | None = option(None, "continue from this folder of trained weights (iteration t-1), loaded trainable")
    # The weights a run's self-improvement started from: `tripost run` sets
    # iteration 0's (dpo_reference=start scores the reference with them). None:
    # `adapter` (one round on its own, as `tripost train` runs it).
    start_adapter: str | None = option(None, "the weights the self-improvement started from (tripost run: iteration 0; unset: adapter)")
    # lora: a LoRA adapter on a frozen base; full: every weight (TriPosT's own
    # setting); auto: full on a CPU for a student whose training state fits
    # (FULL_MEMORY_SHARE), else lora (QLoRA on GPUs, as before).
    mode: str = option("auto", "lora (an adapter on a frozen base), full (every weight) or auto (full on a CPU where it fits, else lora)", choices=MODES)
    # Base weights: auto = nf4 (QLoRA) on a GPU in lora mode, else fp32 (with
    # bf16 autocast where the device computes bf16 fast: mixed_precision).
    precision: str = option("auto", "base weights (auto: nf4 for LoRA on a GPU, else fp32)", choices=PRECISIONS)

    # Per-token loss weights (TriPosT Section 2.2): prompt / first attempt /
    # everything from the first "Feedback:" on (incl. the closing EOS), the
    # last only in examples built from improvements (the buffer's
    # weighted_feedback column; others train at attempt_weight throughout).
    prompt_weight: float = option(0.0, "loss weight of the prompt's tokens")
    attempt_weight: float = option(1.0, "loss weight of the first attempt")
    feedback_weight: float = option(1.5, "loss weight from the first 'Feedback:' on, in examples built from improvements")
    # The first attempt of an example that goes on to revise it ("Updated
    # Answer:" after the first feedback: an improvement trajectory, whose first
    # attempt is the student's own, with a wrong step). None = attempt_weight,
    # as TriPosT trains on it. 0 masks it, so the student learns to flag and fix
    # its attempts without also imitating the wrong ones; only examples with a
    # revision change, so gold SFT (iteration 0) is the same either way.
    revised_attempt_weight: float | None = option(None, "loss weight of a first attempt that the example goes on to revise (unset: attempt_weight; 0 masks it)")
    # Multiply each example's token weights by the buffer's `weight` column
    # (difficulty-aware reweighting, tripost.buffer; the self-verified
    # source's reweight mode, whose weights average 1 per problem); off by
    # default. The loss is normalised by the number of target tokens, not by
    # their total weight (module docstring), so a weight below 1 trains less.
    use_example_weight: bool = option(False, "multiply each example's token weights by the buffer's weight column")

    # The prompt, rendered exactly as the student renders it at sampling time
    # (tripost.student.prompt.PromptFormat).
    prompt_template: str = option("student.txt", "the student's prompt template, rendered as at sampling time")
    chat: str = option("auto", "the tokenizer's chat template: auto (when it has one), on (required) or off", choices=CHAT_MODES)
    system: str | None = option(None, "a system message for the chat template (unset: the template's own default)")

    # LoRA (a new adapter; a continued one keeps its own settings).
    lora_r: int = option(16, "LoRA rank (a new adapter)")
    lora_alpha: int = option(32, "LoRA alpha (a new adapter)")
    lora_dropout: float = option(0.05, "LoRA dropout (a new adapter), in [0, 1)")
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], metadata={"help": "the linear layers LoRA adapts (a new adapter)"})

    # Optimisation. LoRA wants a much larger learning rate than TriPosT's full
    # fine-tuning; 2e-4 with a 0.3 clip is QLoRA's setting for small models.
    epochs: float = option(3.0, "passes over the buffer, a fraction allowed")
    max_steps: int = option(-1, "> 0: train this many optimizer steps (overrides epochs)")
    # > 0: train about this many tokens whatever the data's size (epochs =
    # budget / the training set's tokens, a fraction allowed): methods
    # compared at an equal training-token budget (issue 28, step 4).
    token_budget: int = option(0, "> 0: train about this many tokens whatever the data's size (equal-budget comparisons)")
    batch_size: int = option(8, "examples (or packed rows) per micro-batch")
    grad_accum: int = option(1, "micro-batches per optimizer step")
    learning_rate: float = option(2e-4, "peak learning rate (SFT)")
    lr_scheduler: str = option("cosine", "transformers' scheduler name")
    warmup: float = option(0.03, "< 1: a fraction of the steps; else a step count")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(0.3, "gradient clipping norm")
    # transformers' optimizer name. adamw_torch_fused: torch's AdamW as one
    # kernel per parameter (transformers' own default since torch 2.8): the
    # same update as adamw_torch without its per-parameter temporaries, and
    # faster (the 135M student's step on a 2-core CPU: ~0.15 vs ~0.5 s).
    optim: str = option("adamw_torch_fused", "transformers' optimizer name")
    seed: int = option(0, "training seed (data order, dropout, new adapter weights)")

    # Batching and memory.
    max_length: int = option(2048, "longer examples are dropped (a truncated one would never learn to stop)")
    group_by_length: bool = option(True, "batch examples of similar length together (padded batches)")
    pad_to_multiple_of: int | None = option(None, "pad each batch to a multiple of this many tokens (unset: no rounding)")
    # Activation checkpointing keeps ~0.1 GiB of activations per 1000 tokens
    # instead of ~1.3 GiB (fp32, the 135M student) for ~30% more compute.
    # Full fine-tuning of the 135M student at 8 x 256 tokens on a CPU: peak
    # RSS ~2.9 GiB with it (_lean_checkpointing), ~4.8 GiB without, and
    # steps ~20% slower with it.
    # auto: on for QLoRA (nf4, its recipe), else only when the largest
    # micro-batch's activations would not fit in memory (ACTIVATION_MEMORY_SHARE).
    gradient_checkpointing: str = option("auto", "activation checkpointing (auto: on for QLoRA, or when the activations would not fit in memory)", choices=SWITCH_WORDS)
    # Packed rows (module docstring); auto: on CPU, off on GPUs (padded,
    # length-grouped batches: the GPU path as it was).
    packing: str = option("auto", "pack examples into full rows (auto: on a CPU)", choices=SWITCH_WORDS)
    # torch.compile the model (its cache reused across runs under
    # $TRIPOST_HOME/inductor); auto: on CPUs with bf16 matrix units for runs
    # of COMPILE_MIN_TOKENS or more, else off (measured slower on an AVX2 CPU:
    # docs/benchmarks/train.md).
    compile: str = option("auto", "torch.compile the model (auto: on bf16 CPUs for long runs)", choices=SWITCH_WORDS)
    mixed_precision: str = option("auto", "bf16 autocast (auto: where the device computes bf16 fast: GPUs, AMX/AVX512-BF16 CPUs)", choices=MIXED)
    device: str | None = option(None, "cpu, cuda, cuda:N ... (unset: CUDA when available)")

    # Checkpoints, logging.
    save_steps: int = option(200, "write a checkpoint every this many steps")
    save_total_limit: int = option(2, "checkpoints kept while training")
    keep_checkpoints: bool = option(False, "keep OUT/checkpoints after training finishes")
    resume: bool = option(True, "continue from the last checkpoint under OUT/checkpoints")
    logging_steps: int = option(5, "log the loss every this many steps")
    progress: bool = option(True, "show progress bars")
    # Experiment trackers the loss curve also goes to, passed through to
    # transformers: "none", or names from REPORTERS, comma-separated
    # ("tensorboard", "tensorboard,wandb"); tensorboard writes under OUT/logs.
    report_to: str = option("none", "experiment trackers, comma-separated (none, tensorboard, wandb, ...)")

    # What the loss is: "sft", weighted SFT on the buffer (TriPosT); "dpo",
    # preference optimisation on (chosen, rejected) pairs with a KL pull to the
    # reference model of strength `dpo_beta` (Rafailov et al. 2023, through
    # TRL's DPOTrainer; tripost/train/objectives/dpo.py): RLHF-sharpening when the pairs
    # are the student's own best and worst samples by its own likelihood
    # (Huang et al. 2024).
    objective: str = option("sft", "the loss: sft (weighted SFT, TriPosT) or dpo (preference pairs)")
    dpo_beta: float = option(0.1, "DPO's KL strength")
    # The DPO reference (tripost/train/objectives/dpo.py). "start": the weights
    # the sharpening started from (`start_adapter`: in `tripost run`, iteration
    # 0, the gold-SFT student that drew the first samples), fixed across
    # rounds, as Huang et al.'s RLHF-sharpening fixes pi_base, the model being
    # sharpened (target pi_base^(1+1/beta)). "base": the spec's weights without
    # any adapter or continued weights (before iteration 0 taught the format).
    # "previous": the weights the round starts from (`adapter`, else the
    # base): iterated DPO, whose reference moves each round.
    dpo_reference: str = option("start", "DPO reference: start (the weights sharpening started from), base, or previous (the round's start)", choices=DPO_REFERENCES)
    # DPO's own learning rate; SFT's 2e-4 is far too large for DPO. None: by
    # the resolved mode, 1e-6 for full fine-tuning (TRL's DPOConfig default)
    # and 5e-6 for LoRA (TRL's LoRA example, trl/scripts/dpo.py).
    dpo_learning_rate: float | None = option(None, "DPO's learning rate (unset: 1e-6 full, 5e-6 LoRA, TRL's)")

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
        OBJECTIVES.check(self.objective)
        if not (isinstance(self.dpo_beta, (int, float)) and not isinstance(self.dpo_beta, bool) and self.dpo_beta > 0):
            raise TripostError(f"dpo_beta must be a number > 0, got {self.dpo_beta!r}")
        if self.dpo_reference not in DPO_REFERENCES:
            raise TripostError(f"unknown dpo_reference {self.dpo_reference!r}; choose from {', '.join(DPO_REFERENCES)}")
        v = self.dpo_learning_rate
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
            raise TripostError(f"dpo_learning_rate must be a number > 0 (or unset), got {v!r}")
        self.target_modules = list(self.target_modules)
        for name in ("adapter", "start_adapter"):
            if getattr(self, name) is not None:
                setattr(self, name, str(getattr(self, name)))

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
