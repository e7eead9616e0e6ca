"""Preference optimisation on (chosen, rejected) pairs: `train.objective=dpo`.

RLHF-sharpening (Huang et al. 2024, "Self-Improvement in Language Models: The
Sharpening Mechanism", Section 4): the student's own likelihood is the
reward, and a KL-regularised preference loss moves the student toward the
answers it already rates highest. The pairs come from the student's own
samples (tripost/sources/sharpen.py: per problem, chosen = the sample with the
highest self-reward, rejected = the lowest; tripost.buffer.preference_pairs),
and the loss is DPO's (Rafailov et al. 2023):

    -log sigmoid(beta * [(log pi(y+|x) - log ref(y+|x)) - (log pi(y-|x) - log ref(y-|x))])

TRL's `DPOTrainer` computes it; `train.dpo_reference` says what ref is.
Run online, one round per iteration of `tripost run` (sample with the latest
weights -> pair -> train):

- ``start`` (the default): the weights the sharpening started from, in every
  round: in `tripost run` iteration 0 (`train.start_adapter`, set by the run:
  the gold-SFT student that drew the first samples); in a `tripost train`
  round on its own, the weights it continues (`--adapter`), else the base.
  Huang et al. fix pi_base, the model being sharpened, as the reference (their
  KL-regularised optimum is pi_base^(1+1/beta)); their pi_base is a pretrained
  model sampled as it is, ours learnt the format in iteration 0 first. Full
  fine-tuning: a frozen copy of those weights. LoRA: a frozen copy of that
  adapter under the name TRL scores its reference with ("ref").
- ``base``: the spec's weights without any adapter or continued weights, in
  every round: the student before iteration 0, which has not learnt the
  answer format (in the campaign it gave the iteration-0 student's answers
  85-95 nats less log-probability than that student: DPO's logged rewards,
  beta times that gap, read 8.4-9.4 from the first steps). LoRA: the same
  model with its adapter off (PEFT's `disable_adapter`; TRL's copy of the
  adapter, below, is removed). Full fine-tuning: a frozen copy of the base
  weights, loaded from the spec at the round's precision.
- ``previous``: the weights the round starts from, i.e. iterated DPO, whose
  reference moves each round (after T rounds the target compounds to
  pi_0^((1+1/beta)^T)). LoRA: a frozen copy of the adapter the round
  continues, which is what TRL 1.16 does by itself for a PEFT model passed
  without a reference (trl/trainer/dpo_trainer.py, `__init__`: it adds an
  adapter "ref" copied from "default" and scores the reference with it active;
  a fresh adapter starts at zero, so there it is the base). Full fine-tuning:
  a frozen copy of the starting weights.

In round 1 of a run, start and previous are the same weights.

The learning rate is DPO's own, `train.dpo_learning_rate` (SFT's 2e-4 would
move a DPO policy far from its reference in a few steps); unset, 1e-6 for
full fine-tuning (TRL's DPOConfig default) and 5e-6 for LoRA (TRL's LoRA
example). Both, and the reference, are written into train_metrics.json.

The student is loaded exactly as weighted SFT loads it (`tripost.train`:
`load_for_training`, the device setup resolved and recorded), without packed
rows: DPO's collator pads its own batches. Prompts are rendered as the student
samples them, and each response ends with the end-of-sequence token, as an
SFT completion does. The folder written is the same kind SFT writes (a PEFT
adapter or full weights, plus tripost-student.json and train_metrics.json).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripost.errors import TripostError
from tripost.student.load import load_student
from tripost.student.prompt import PromptFormat, build_prompt
from tripost.train.card import finish_folder
from tripost.train.config import CONFIG_FILE, DPO_LEARNING_RATES, TrainConfig, report_targets
from tripost.train.objectives import Objective
from tripost.train.setup import load_for_training, resolve_setup

if TYPE_CHECKING:
    import datasets

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def dpo_dataset(pairs: "datasets.Dataset", tokenizer: Any, config: TrainConfig) -> "datasets.Dataset":
    """The buffer's pairs (question, chosen, rejected texts) in TRL's standard
    format: the prompt rendered as the student samples it, each response
    closed by the end-of-sequence token."""
    import datasets

    missing = [c for c in PAIR_COLUMNS if c not in pairs.column_names]
    if missing:
        raise TripostError(f"a DPO training set needs the columns {', '.join(PAIR_COLUMNS)} (tripost buffer --pairs); missing {', '.join(missing)}")
    if len(pairs) == 0:
        raise TripostError("no preference pairs to train on")
    fmt = PromptFormat(template=config.prompt_template, chat=config.chat, system=config.system)
    eos = tokenizer.eos_token or ""
    return datasets.Dataset.from_dict({
        "prompt": [build_prompt(tokenizer, q, fmt) for q in pairs["prompt"]],
        "chosen": [c + eos for c in pairs["chosen"]],
        "rejected": [r + eos for r in pairs["rejected"]],
    })


@dataclass
class DPORun:
    """Everything `train_dpo` trains with, ready to `trainer.train()`."""

    student: Any
    trainer: Any
    setup: Any  # tripost.train.TrainSetup
    learning_rate: float
    reference: str  # what the reference is, in words (train_metrics.json)


def dpo_learning_rate(config: TrainConfig, mode: str) -> float:
    """`train.dpo_learning_rate`, or when unset the default for the resolved mode."""
    return float(config.dpo_learning_rate) if config.dpo_learning_rate is not None else DPO_LEARNING_RATES[mode]


def _frozen(model: Any) -> Any:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def reference_weights(config: TrainConfig) -> str | None:
    """The folder of trained weights the reference is (None: the base student)."""
    if config.dpo_reference == "base":
        return None
    if config.dpo_reference == "start" and config.start_adapter is not None:
        return config.start_adapter
    return config.adapter  # previous, or start for a round on its own


def reference_model(config: TrainConfig, student: Any, setup: Any) -> Any:
    """The frozen reference of a fully fine-tuned round: a copy of the weights
    the round starts from when the reference is those, else the reference's
    weights (the base student, or start's folder) loaded from the spec."""
    import copy

    weights = reference_weights(config)
    if weights == config.adapter:
        return _frozen(copy.deepcopy(student.model))
    return _frozen(load_student(config.student, setup.precision, adapter=weights, device=student.device).model)


def _reference_words(config: TrainConfig, mode: str) -> str:
    weights = reference_weights(config)
    if weights is None:
        return f"the base student ({'adapter off' if mode == 'lora' else 'a frozen copy'})"
    return f"the weights of {weights} ({'a frozen copy of the adapter' if mode == 'lora' else 'a frozen copy'})"


def _use_reference_adapter(model: Any, weights: str) -> None:
    """Make TRL's reference adapter "ref" a frozen copy of the adapter in
    `weights` (start's, when the round continues another one)."""
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")
    model.load_adapter(weights, adapter_name="ref", is_trainable=False)
    model.set_adapter("default")


def build_dpo(config: TrainConfig, pairs: "datasets.Dataset", out: Path) -> DPORun:
    """Load the student, resolve the setup, build TRL's DPOTrainer with the
    reference `config.dpo_reference` names (module docstring)."""
    from trl import DPOConfig, DPOTrainer

    # DPO pads its own batches: no packed rows, no compile.
    setup = replace(resolve_setup(config), packing=False, compile=False)
    student = load_for_training(config, setup)
    train_set = dpo_dataset(pairs, student.tokenizer, config)
    if student.tokenizer.pad_token is None:
        student.tokenizer.pad_token = student.tokenizer.eos_token
    lr = dpo_learning_rate(config, setup.mode)
    epochs = config.epochs
    if config.token_budget:
        # As many passes as the budget buys (tripost.train's token_budget): a
        # pair costs its prompt twice and both responses, as TRL feeds them.
        tok = student.tokenizer
        per_pass = sum(2 * len(tok(p, add_special_tokens=False).input_ids) + len(tok(c, add_special_tokens=False).input_ids)
                       + len(tok(r, add_special_tokens=False).input_ids)
                       for p, c, r in zip(train_set["prompt"], train_set["chosen"], train_set["rejected"]))
        epochs = config.token_budget / max(1, per_pass)
    args = DPOConfig(
        output_dir=str(out / "checkpoints"), beta=config.dpo_beta, learning_rate=lr,
        num_train_epochs=epochs, max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup if config.warmup < 1 else int(config.warmup),  # transformers 5: < 1 is a fraction of the steps
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, optim=config.optim, seed=config.seed,
        max_length=config.max_length, logging_steps=config.logging_steps, save_strategy="no",
        report_to=report_targets(config.report_to) or "none", bf16=setup.autocast == "bf16",
        use_cpu=setup.device == "cpu", disable_tqdm=not config.progress,
        gradient_checkpointing=setup.gradient_checkpointing,
        # Dropout off in policy and reference alike: the log-ratio compares like with like.
        disable_dropout=True,
    )
    # LoRA: no reference model; TRL scores the reference on the policy itself
    # (a copy of the adapter, or with the adapter off). Full: our own frozen copy
    # (TRL would reload `config._name_or_path`, whatever folder that names).
    ref = reference_model(config, student, setup) if setup.mode == "full" else None
    trainer = DPOTrainer(model=student.model, ref_model=ref, args=args, train_dataset=train_set, processing_class=student.tokenizer)
    weights = reference_weights(config)
    if setup.mode == "lora" and weights is None:
        # TRL 1.16 copied the adapter into "ref" (its reference); without it, it
        # scores the reference with the adapter off: the base.
        _drop_reference_adapter(trainer.model)
    elif setup.mode == "lora" and "ref" not in getattr(trainer.model, "peft_config", {}):
        # Another TRL (or a peft it works around) left no copy: its reference
        # would be the base, not the weights named.
        raise TripostError(f"dpo_reference={config.dpo_reference} with a LoRA student needs TRL's copy of the adapter as the reference "
                           "(adapter \"ref\", TRL 1.16), which this TRL/peft did not make; use dpo_reference=base")
    elif setup.mode == "lora" and weights != config.adapter:
        _use_reference_adapter(trainer.model, weights)  # start's adapter, not the one this round continues
    return DPORun(student=student, trainer=trainer, setup=setup, learning_rate=lr, reference=_reference_words(config, setup.mode))


def _drop_reference_adapter(model: Any) -> None:
    """Remove TRL's reference adapter "ref" (a frozen copy of the trained one),
    so that the reference is the base and the saved folder holds one adapter."""
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict) and "ref" in peft_config:
        model.delete_adapter("ref")
        model.set_adapter("default")


def train_dpo(config: TrainConfig, pairs: "datasets.Dataset", out_dir: str | Path) -> dict[str, Any]:
    """Train (or continue) the student on preference pairs and write the
    result to `out_dir`; returns the metrics written to train_metrics.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = build_dpo(config, pairs, out)
    student, trainer, setup = run.student, run.trainer, run.setup
    if config.progress:
        print(f"training setup: DPO (beta {config.dpo_beta}, learning rate {run.learning_rate:g}, reference: {run.reference}), "
              f"{setup.describe()}", flush=True)
    (out / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    t0 = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - t0
    _drop_reference_adapter(trainer.model)  # the folder holds the trained adapter alone
    trainer.save_model(str(out))
    history = [h for h in trainer.state.log_history if "loss" in h]
    metrics = {
        "objective": "dpo", "beta": config.dpo_beta, "learning_rate": run.learning_rate,
        "reference": config.dpo_reference, "reference_model": run.reference,
        "pairs": len(trainer.train_dataset), "steps": int(trainer.state.global_step),
        "epochs": float(trainer.state.epoch or 0.0), "train_loss": float(output.training_loss),
        "final_loss": float(history[-1]["loss"]) if history else None,
        # With each side's summed log-probability: a margin can grow while the chosen side loses
        # likelihood too (DPO's likelihood displacement), which the margin alone hides.
        "loss_curve": [{"step": int(h["step"]), "loss": float(h["loss"]),
                        **{name: float(h[key]) if key in h else None for name, key in (
                            ("reward_margin", "rewards/margins"), ("logp_chosen", "logps/chosen"), ("logp_rejected", "logps/rejected"))}}
                       for h in history],
        # Tokens the policy processed (chosen and rejected, prompts included), as TRL counts them.
        "tokens": int(float(history[-1].get("num_tokens", 0))) if history else 0,
        "seconds": round(seconds, 3), "setup": setup.to_dict(), "processes": int(trainer.args.world_size),
        "trainable_params": sum(p.numel() for p in student.model.parameters() if p.requires_grad),
    }
    if trainer.is_world_process_zero():
        student.model = trainer.model
        finish_folder(out, student, setup.mode, config, metrics)
    return metrics


def train(config: TrainConfig, dataset: "datasets.Dataset", out_dir: str | Path) -> dict[str, Any]:
    """The objective's entry (tripost.train.objectives): DPO on a buffer of
    (prompt, chosen, rejected) pairs (tripost buffer --pairs); its metrics."""
    return train_dpo(config, dataset, out_dir)


def summary(m: dict[str, Any], out_dir: str | Path) -> str:
    """What `tripost train` prints of a run's metrics (`train`'s dict)."""
    return (f"trained {m['steps']} DPO steps (beta {m['beta']}) on {m['pairs']} pairs: final loss "
            f"{m['final_loss'] if m['final_loss'] is None else round(m['final_loss'], 4)}; weights: {out_dir}")


OBJECTIVE = Objective(train=train, summary=summary)


__all__ = ["OBJECTIVE", "PAIR_COLUMNS", "DPORun", "build_dpo", "dpo_dataset", "dpo_learning_rate", "reference_model", "reference_weights",
           "summary", "train", "train_dpo"]
