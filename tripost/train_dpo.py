"""Preference optimisation on (chosen, rejected) pairs: `train.objective=dpo`.

RLHF-sharpening (Huang et al. 2024, "Self-Improvement in Language Models: The
Sharpening Mechanism", Section 4): the student's own likelihood is the
reward, and a KL-regularised preference loss moves the student toward the
answers it already rates highest. The pairs come from the student's own
samples (tripost/sources/sharpen.py: per problem, chosen = the sample with the
highest self-reward, rejected = the lowest; tripost.buffer.preference_pairs),
and the loss is DPO's (Rafailov et al. 2023):

    -log sigmoid(beta * [(log pi(y+|x) - log ref(y+|x)) - (log pi(y-|x) - log ref(y-|x))])

TRL's `DPOTrainer` computes it, with peft: a LoRA student's reference is the
same model with the adapter off; a fully fine-tuned student's reference is a
frozen copy of the weights it started from. Run online, one round per
iteration of `tripost run` (sample with the latest weights -> pair -> train),
the reference of a full-weights round is that round's starting point, as in
iterated DPO; a LoRA round's reference stays the base model.

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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripost.errors import TripostError
from tripost.train import CONFIG_FILE, TrainConfig, finish_folder, load_for_training, report_targets, resolve_setup

if TYPE_CHECKING:
    import datasets

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def dpo_dataset(pairs: "datasets.Dataset", tokenizer: Any, config: TrainConfig) -> "datasets.Dataset":
    """The buffer's pairs (question, chosen, rejected texts) in TRL's standard
    format: the prompt rendered as the student samples it, each response
    closed by the end-of-sequence token."""
    import datasets

    from tripost.student.prompt import PromptFormat, build_prompt

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


def train_dpo(config: TrainConfig, pairs: "datasets.Dataset", out_dir: str | Path) -> dict[str, Any]:
    """Train (or continue) the student on preference pairs and write the
    result to `out_dir`; returns the metrics written to train_metrics.json."""
    from trl import DPOConfig, DPOTrainer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # DPO pads its own batches: no packed rows, no compile.
    setup = replace(resolve_setup(config), packing=False, compile=False)
    student = load_for_training(config, setup)
    train_set = dpo_dataset(pairs, student.tokenizer, config)
    if student.tokenizer.pad_token is None:
        student.tokenizer.pad_token = student.tokenizer.eos_token
    args = DPOConfig(
        output_dir=str(out / "checkpoints"), beta=config.dpo_beta, learning_rate=config.learning_rate,
        num_train_epochs=config.epochs, max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
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
    if config.progress:
        print(f"training setup: DPO (beta {config.dpo_beta}), {setup.describe()}", flush=True)
    (out / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    trainer = DPOTrainer(model=student.model, ref_model=None, args=args, train_dataset=train_set, processing_class=student.tokenizer)
    t0 = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - t0
    trainer.save_model(str(out))
    history = [h for h in trainer.state.log_history if "loss" in h]
    metrics = {
        "objective": "dpo", "beta": config.dpo_beta, "pairs": len(train_set), "steps": int(trainer.state.global_step),
        "epochs": float(trainer.state.epoch or 0.0), "train_loss": float(output.training_loss),
        "final_loss": float(history[-1]["loss"]) if history else None,
        "loss_curve": [{"step": int(h["step"]), "loss": float(h["loss"]),
                        "reward_margin": float(h["rewards/margins"]) if "rewards/margins" in h else None} for h in history],
        # Tokens the policy processed (chosen and rejected, prompts included), as TRL counts them.
        "tokens": int(float(history[-1].get("num_tokens", 0))) if history else 0,
        "seconds": round(seconds, 3), "setup": setup.to_dict(), "processes": int(trainer.args.world_size),
        "trainable_params": sum(p.numel() for p in student.model.parameters() if p.requires_grad),
    }
    if trainer.is_world_process_zero():
        student.model = trainer.model
        finish_folder(out, student, setup.mode, config, metrics)
    return metrics


__all__ = ["PAIR_COLUMNS", "dpo_dataset", "train_dpo"]
