"""The trainer: a `transformers.Trainer` subclass with TriPosT's weighted loss, built with
its callbacks (`build_trainer`, `prepare_run`), and `train_sft`, the weighted-SFT objective's run.

The trainer is a `transformers.Trainer` subclass that only replaces the loss,
so `accelerate launch` (DDP, FSDP, DeepSpeed) runs it unchanged: N processes
of batch B train what one process of batch N*B does (same loss, same
weights up to rounding; tests/test_train_multiprocess.py). Batches are
grouped by length (`LengthBucketSampler`) and padded only to the longest
example in each batch: the buffer mixes short direct answers with
long multi-edit trajectories, and random batches would pay for the long ones'
padding on every short one (scripts/bench_train.py measures it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from tripost.paths import tripost_home
from tripost.student.base import unwrap_model
from tripost.train.card import finish_folder
from tripost.train.checkpoints import last_checkpoint, promote_checkpoint
from tripost.train.config import CHECKPOINTS, CONFIG_FILE, LOGS, STAGING_DIR, TrainConfig, is_main_process, report_targets
from tripost.train.data import LengthBucketSampler, PackedCollator, WeightedCollator, prepare_dataset
from tripost.train.loss import accepts_logits_to_keep, forward_weighted
from tripost.train.setup import TrainSetup, enable_checkpointing, load_for_training, resolve_setup, sparse_tied_embedding_grad

if TYPE_CHECKING:
    import datasets


class WeightedSFTTrainer(Trainer):
    """`Trainer` with TriPosT's weighted loss, normalised over the whole
    optimiser step: `get_batch_samples` counts the target tokens (weight
    > 0) of every micro-batch (and rank) of the step, `compute_loss`
    divides each micro-batch's Σ w·CE by that count."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keep_ok = accepts_logits_to_keep(self.model)
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
        total, local_norm = forward_weighted(model, ids, mask, weights, self._keep_ok, self._fused, extra)
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


class LogLastStep(TrainerCallback):
    """Log the last step too, so the loss curve ends where training did."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_log = True
        return control


def trainer_class() -> type:
    """The Trainer subclass (`WeightedSFTTrainer`)."""
    return WeightedSFTTrainer


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


def build_trainer(config: TrainConfig, student: Any, train_set: "datasets.Dataset", out_dir: Path, callbacks: Sequence[Any] = (),
                  setup: TrainSetup | None = None) -> Any:

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
        callbacks=[LogLastStep(), *callbacks],
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


class LeanHeapCallback(TrainerCallback):
    """Keeps glibc's heap lean around each step (`_LeanHeap`)."""

    def __init__(self, heap: _LeanHeap) -> None:
        self.heap = heap

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.heap.before_optimizer_step(kwargs.get("optimizer"))

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.heap.after_optimizer_step()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.heap.trim()  # the step's gradients and transients are freed: nearly the whole heap


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
        trainer.add_callback(LeanHeapCallback(heap))


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

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = prepare_run(config, dataset, out, callbacks)
    student, trainer, setup, counts = run.student, run.trainer, run.setup, run.counts
    resume = last_checkpoint(out / CHECKPOINTS) if config.resume else None
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
