"""Load the student: resolve the spec to a folder, pick a precision, attach
or load a LoRA adapter.

Precisions:
    auto  bf16 where the device computes bf16 matmuls fast (GPUs, CPUs with
          AMX / AVX512-BF16: tripost.student.hardware measures it), else fp32
    fp32  full precision
    bf16  half the memory; fast on GPUs and CPUs with bf16 matrix units,
          emulated (very slow) on others
    nf4   bitsandbytes 4-bit NormalFloat with double quantisation: the QLoRA
          base (Dettmers et al. 2023), used by the trainer; bitsandbytes >= 0.48
          runs it on CPU too

The precision, spec and adapter travel with the `Student` (`describe()`), so
run outputs can record exactly what produced them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripost.errors import TripostError
from tripost.fileio import atomic_directory
from tripost.student.base import Generation, SamplingParams
from tripost.student.embedded import embedded_model_dir, gguf_model_dir
from tripost.student.generate import greedy, sample
from tripost.student.hardware import compute_profile
from tripost.student.logprob import SequenceScore, sequence_logprobs
from tripost.student.spec import StudentSpec, hub_snapshot, parse_spec

if TYPE_CHECKING:  # heavy imports stay lazy: `tripost --help` must not load torch
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "nf4")


def resolve_precision(precision: str, device: "str | torch.device | None" = None) -> str:
    """`auto` -> bf16 or fp32 for the device (tripost.student.hardware); others as given."""
    if precision != "auto":
        return precision
    return "bf16" if compute_profile(device).bf16 else "fp32"


ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
# Written next to a saved adapter (PEFT ignores unknown files): which student
# and precision it was trained on, for `--adapter DIR` users and reports. Its
# "kind" is "full" in a folder of fully fine-tuned weights (train.mode full),
# which `--adapter DIR` takes in place of the base's weights.
ADAPTER_META = "tripost-student.json"
FULL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters (Hu et al. 2021); all linear layers by default, as in QLoRA."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES


@dataclass
class Student:
    """A loaded student model with its tokenizer and where it came from."""

    model: Any  # a transformers PreTrainedModel, or a peft PeftModel around one
    tokenizer: Any
    spec: StudentSpec
    precision: str
    source_dir: Path
    adapter: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> "torch.device":
        return next(self.model.parameters()).device

    @property
    def in_process(self) -> bool:
        return True  # StudentLike: the model is here

    @property
    def has_lora(self) -> bool:
        from peft import PeftModel

        return isinstance(self.model, PeftModel)

    def describe(self) -> dict[str, Any]:
        return {
            "student": str(self.spec),
            "precision": self.precision,
            "adapter": str(self.adapter) if self.adapter else None,
            "source_dir": str(self.source_dir),
        }

    # Convenience wrappers; the functions are the API other modules import.
    def sample(self, prompts: Sequence[str], params: SamplingParams, **kw: Any) -> list[list[Generation]]:
        return sample(self, prompts, params, **kw)

    def greedy(self, prompts: Sequence[str], max_new_tokens: int = 256, stop: Sequence[str] = (), **kw: Any) -> list[Generation]:
        return greedy(self, prompts, max_new_tokens=max_new_tokens, stop=stop, **kw)

    def logprobs(self, prompts: Sequence[str], continuations: Sequence[str], **kw: Any) -> list[SequenceScore]:
        return sequence_logprobs(self, prompts, continuations, **kw)

    def attach_lora(self, settings: LoraSettings | None = None) -> "Student":
        return attach_lora(self, settings)

    def save_adapter(self, folder: str | Path) -> Path:
        return save_adapter(self, folder)


def default_device() -> "torch.device":
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_model_dir(spec: StudentSpec) -> Path:
    """The transformers folder a spec loads from (converting a GGUF on first
    use; a Hub model's snapshot in the Hub cache, downloaded on first use)."""
    if spec.kind == "embedded":
        return embedded_model_dir()
    if spec.kind == "gguf":
        assert spec.path is not None
        return gguf_model_dir(spec.path)
    if spec.repo is not None:
        return hub_snapshot(spec.repo)
    assert spec.path is not None
    return spec.path


def load_student(
    spec: str | StudentSpec,
    precision: str = "auto",
    adapter: str | Path | None = None,
    *,
    trainable: bool = False,
    device: "str | torch.device | None" = None,
) -> Student:
    """Load a student. `adapter` is an existing PEFT folder (loaded trainable
    when `trainable`); to start a new adapter call `attach_lora` afterwards."""
    if precision not in PRECISIONS:
        raise TripostError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    precision = resolve_precision(precision, device)
    spec = parse_spec(spec)
    adapter_path = check_adapter_dir(adapter) if adapter is not None else None
    folder = resolve_model_dir(spec)
    full = adapter_path is not None and is_full_weights(adapter_path)
    # Our own GGUF conversions may also hold their NF4 quantisation (see _load_nf4).
    model, tokenizer = _load_model(adapter_path if full else folder, precision, device, what=str(spec), cache_nf4=spec.kind != "hf" and not full)
    student = Student(model=model, tokenizer=tokenizer, spec=spec, precision=precision, source_dir=folder)
    if adapter_path is not None:
        if not full:
            student.model = load_adapter(student.model, adapter_path, trainable=trainable)
        student.adapter = adapter_path
    if not trainable:
        student.model.eval()
    return student


def _load_model(
    folder: Path, precision: str, device: "str | torch.device | None", what: str, cache_nf4: bool = False
) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = torch.device(device) if device is not None else default_device()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TripostError(f"student {what}: cannot load the tokenizer from {folder}: {_first_line(e)}") from None
    # Batched generation pads on the left so every prompt ends where decoding
    # starts; scoring sets its own padding explicitly.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        if precision == "nf4":
            model = _load_nf4(folder, dev, cache_nf4)
        else:
            dtype = torch.float32 if precision == "fp32" else torch.bfloat16
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
            model.to(dev)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as e:
        raise TripostError(f"student {what}: cannot load the model from {folder}: {_first_line(e)}") from None
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


NF4_MARKER = "tripost-nf4.json"


def _load_nf4(folder: Path, dev: "torch.device", cacheable: bool) -> Any:
    """Quantise to NF4 on load; for our own GGUF conversions (immutable cache
    folders) keep the quantised weights in a subfolder and load those next
    time: quantising 135M parameters on CPU takes ~3 s, loading them ~0.3 s,
    and the result is bit-identical."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    # bitsandbytes warns at import that an optional hub-fetched CPU kernel is
    # absent; we never fetch from a hub, so the warning is noise.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # bf16 compute on GPUs (QLoRA's setting); fp32 on CPU, where bf16 matmuls
    # are emulated on many chips.
    compute = torch.bfloat16 if dev.type == "cuda" else torch.float32
    device_map = {"": str(dev)}
    cache = folder / f"nf4-{dev.type}"
    if cacheable and (cache / NF4_MARKER).is_file():
        model = AutoModelForCausalLM.from_pretrained(str(cache), device_map=device_map, dtype=compute)
        model.config._name_or_path = str(folder)  # adapters record the real base
        return model
    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
    model = AutoModelForCausalLM.from_pretrained(str(folder), quantization_config=config, dtype=compute, device_map=device_map)
    if cacheable:
        _save_nf4(model, cache)
        model.config._name_or_path = str(folder)
    return model


def _save_nf4(model: Any, cache: Path) -> None:
    """Write the quantised weights atomically (tripost.fileio); a failure only
    costs the next load its quantisation time."""
    try:
        with atomic_directory(cache) as tmp:
            model.save_pretrained(str(tmp), safe_serialization=True)
            (tmp / NF4_MARKER).write_text(json.dumps({"quantization": "nf4", "double_quant": True}) + "\n")
    except Exception:  # a cache that cannot be written is not an error
        pass


# ------------------------------------------------------------------ adapters ---


def is_full_weights(folder: str | Path) -> bool:
    """Whether `folder` holds fully fine-tuned weights saved by the trainer."""
    path = Path(folder)
    try:
        meta = json.loads((path / ADAPTER_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == "full" and (path / "config.json").is_file() and any((path / w).is_file() for w in FULL_WEIGHTS)


def is_trained_weights(folder: str | Path) -> bool:
    """Whether `folder` holds trained weights a student can load: a PEFT adapter or full weights."""
    return (Path(folder) / ADAPTER_CONFIG).is_file() or is_full_weights(folder)


def check_adapter_dir(folder: str | Path) -> Path:
    """A usable folder of trained weights (a PEFT adapter, or the trainer's
    full fine-tuned weights), or a `TripostError` saying what is wrong with it."""
    path = Path(folder).expanduser()
    if not path.exists():
        raise TripostError(f"adapter folder {path} does not exist")
    if not path.is_dir():
        raise TripostError(f"adapter {path} is not a folder (expected a PEFT adapter folder)")
    if is_full_weights(path):
        return path.resolve()
    cfg = path / ADAPTER_CONFIG
    if not cfg.is_file():
        raise TripostError(f"adapter folder {path} has no {ADAPTER_CONFIG}; not a PEFT adapter")
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TripostError(f"adapter folder {path}: {ADAPTER_CONFIG} is corrupt ({_first_line(e)})") from None
    if not isinstance(data, dict) or "peft_type" not in data:
        raise TripostError(f"adapter folder {path}: {ADAPTER_CONFIG} has no peft_type; not a PEFT adapter")
    if not any((path / w).is_file() for w in ADAPTER_WEIGHTS):
        raise TripostError(f"adapter folder {path} has no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")
    return path.resolve()


def load_adapter(model: Any, folder: str | Path, *, trainable: bool = False, verb: str = "load", name: str = "default") -> Any:
    """`model` wrapped with the PEFT adapter in `folder` (trainable when
    `trainable`), as adapter `name`; a model that is a PEFT model already
    gains it beside its others (serve-student's runtime adapters). A bad
    folder is a one-line `TripostError` ("cannot {verb} adapter FOLDER: ...").
    The one place adapters are loaded: `load_student`, the trainer
    (continuing iteration t-1's adapter) and serve-student all come here."""
    from peft import PeftModel

    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(folder), adapter_name=name, is_trainable=trainable)
            return model
        return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable, adapter_name=name)
    except Exception as e:  # peft raises many types for a bad folder; the user needs one line
        raise TripostError(f"cannot {verb} adapter {folder}: {_first_line(e)}") from None


def attach_lora(student: Student, settings: LoraSettings | None = None) -> Student:
    """Wrap the model with a new, trainable LoRA adapter (B = 0: outputs unchanged)."""
    from peft import LoraConfig, get_peft_model

    if student.has_lora:
        raise TripostError("the student already has a LoRA adapter")
    s = settings or LoraSettings()
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=s.r,
        lora_alpha=s.alpha,
        lora_dropout=s.dropout,
        target_modules=list(s.target_modules),
    )
    student.model = get_peft_model(student.model, config)
    return student


def save_adapter(student: Student, folder: str | Path) -> Path:
    """Save the LoRA adapter in standard PEFT format (adapter_config.json +
    adapter_model.safetensors), loadable by `PeftModel.from_pretrained`."""
    if not student.has_lora:
        raise TripostError("the student has no LoRA adapter to save")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    student.model.save_pretrained(str(path), safe_serialization=True)
    (path / ADAPTER_META).write_text(json.dumps({"student": str(student.spec), "precision": student.precision}, indent=2) + "\n")
    return path


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
