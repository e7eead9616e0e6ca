"""`tripost export`: a trained student in the forms other tools load.

The source is a run folder (its last trained iteration, or one chosen) or a
train output folder. Into the export folder go:

- the weights: the PEFT adapter as trained, its base named by Hub id
  (tripost.train.make_portable), so `AutoPeftModelForCausalLM` finds it on
  any machine; or, `merge`, a standard transformers folder: a (Q)LoRA
  adapter merged into the full-precision base (fp32 or bf16), fully
  fine-tuned weights as they are;
- `gguf`: NAME.TYPE.gguf for llama.cpp and Ollama, written with the `gguf`
  package (the writer of llama.cpp's own converter) from the merged weights:
  llama.cpp's tensor names, the row order of the query and key projections
  its rotary embedding expects (`_permute`, as convert_hf_to_gguf.py), the
  byte-level BPE vocabulary with its merges, special tokens and chat template.
  Llama-architecture students (SmolLM2, the embedded default, is one);
- README.md: the model card (tripost.train.model_card), with the base's Hub
  id and revision, how the weights were trained, and, from a run, the loop's
  method, the data of each iteration and the evaluation table (tripost.report);
- `push`: the folder to the Hugging Face Hub as ORG/NAME, only when the Hub
  is on: with the user's HF_HUB_OFFLINE=1 it is refused in one line before
  anything is written.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripost.errors import TripostError, clip
from tripost.fileio import atomic_directory
from tripost.layout import RunLayout
from tripost.paths import read_prompt
from tripost.report import ACCURACY_NOTE, accuracy_table, collect_run, collection_table
from tripost.student import load_student
from tripost.student.embedded import find_embedded_gguf
from tripost.student.load import ADAPTER_META, check_adapter_dir, is_full_weights, is_trained_weights
from tripost.student.spec import hub_offline_setting, parse_spec
from tripost.train import CARD_FILE, CONFIG_FILE, METRICS_FILE, base_model_info, is_trained, make_portable, model_card

GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
GGUF_TYPE = "f16"  # llama.cpp's converter's default too; quantise further with llama-quantize
MERGE_DTYPES = ("fp32", "bf16")
MERGE_DTYPE = "fp32"  # what tripost trains in on a CPU, and what the embedded student was dequantised to
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
# What a trained folder holds that an export leaves behind: the trainer's
# checkpoints, its staging folder and the loss curve's event files.
_LEFT_BEHIND = ("checkpoints", ".saving", "logs")


@dataclass(frozen=True)
class ExportSource:
    """Trained weights to export and where they came from."""

    folder: Path  # the trained folder (a PEFT adapter or full weights)
    kind: str  # "lora" or "full"
    student: str  # the student spec they were trained on
    precision: str  # the base's precision in training (nf4: QLoRA)
    base: dict[str, Any]  # tripost.train.base_model_info
    run: Path | None = None  # the run folder, when exported from one
    iteration: int | None = None  # the run's iteration whose student this is
    note: str | None = None  # e.g. "iteration 2 trained nothing; its student is iteration 1's"


def _meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / ADAPTER_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise TripostError(f"{folder} has no readable {ADAPTER_META}, so the student it was trained on is unknown: "
                           "export a folder written by `tripost train` or `tripost run`") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("student"), str):
        raise TripostError(f"{folder / ADAPTER_META} names no student")
    return meta


def _source(folder: Path, run: Path | None = None, iteration: int | None = None, note: str | None = None) -> ExportSource:
    folder = check_adapter_dir(folder)
    meta = _meta(folder)
    spec = parse_spec(meta["student"])
    # Folders trained before the base was recorded: its Hub id from the spec (revision unknown).
    base = meta.get("base_model") or base_model_info(spec, spec.path or folder)
    return ExportSource(folder=folder, kind="full" if is_full_weights(folder) else "lora", student=meta["student"],
                        precision=str(meta.get("precision", "fp32")), base=base, run=run, iteration=iteration, note=note)


def find_source(path: str | Path, iteration: int | None = None) -> ExportSource:
    """The trained weights `path` names: a train output folder as it is, or a
    run folder's last trained iteration (`iteration`: that one's student,
    which is an earlier iteration's where it trained nothing)."""

    path = Path(path).expanduser()
    if not path.is_dir():
        raise TripostError(f"{clip(str(path), 200, str)}: no such folder")
    if is_trained_weights(path):
        if iteration is not None:
            raise TripostError(f"{path} is one trained folder, not a run: --iteration picks an iteration of a run folder")
        return _source(path)
    layout = RunLayout(path)
    its = layout.iterations()
    if not layout.config.is_file() or not its:
        raise TripostError(f"{path} is neither a run folder (config.json, itN/train) nor a trained folder "
                           "(a PEFT adapter or full weights, with tripost-student.json)")
    done = [t for t in its if is_trained(layout.it(t).train) and is_trained_weights(layout.it(t).train)]
    if iteration is None:
        if not done:
            raise TripostError(f"{path}: no iteration has finished training yet")
        return _source(layout.it(done[-1]).train, run=path, iteration=done[-1])
    if iteration not in its:
        raise TripostError(f"{path} has no iteration {iteration} (iterations: {', '.join(map(str, its))})")
    if iteration in done:
        return _source(layout.it(iteration).train, run=path, iteration=iteration)
    earlier = [t for t in done if t < iteration]
    if layout.it(iteration).train_skipped.is_file() and earlier:
        return _source(layout.it(earlier[-1]).train, run=path, iteration=iteration,
                       note=f"iteration {iteration} trained nothing (empty buffer); its student is iteration {earlier[-1]}'s")
    raise TripostError(f"{path}: iteration {iteration} has not finished training"
                       + (f" (finished: {', '.join(map(str, done))})" if done else ""))


# ------------------------------------------------------------------- push ---


def check_push(repo: str) -> None:
    """`--push ORG/NAME` can be done: a Hub model id, and the Hub not switched
    off by the user (HF_HUB_OFFLINE=1: refused in one line, before any work)."""

    if not _REPO_ID.fullmatch(repo or ""):
        raise TripostError(f"--push {clip(repo)}: give a Hub model id ORG/NAME (e.g. my-org/smollm2-135m-tripost)")
    offline = hub_offline_setting()
    if offline:
        raise TripostError(f"--push {repo}: {offline} is set, so nothing goes to the Hugging Face Hub; "
                           f"unset {offline.split('=')[0]} to push (the export itself needs no network)")


def push_folder(folder: Path, repo: str) -> str:
    """Upload `folder` to the Hub model repository `repo` (made if missing);
    its URL. The Hub is switched on for this call when only tripost's own
    default had it off (tripost.student.spec.hub_offline_by_default)."""
    from huggingface_hub import HfApi, constants

    check_push(repo)
    lift = constants.HF_HUB_OFFLINE
    try:
        if lift:
            constants.HF_HUB_OFFLINE = False
        api = HfApi()
        api.create_repo(repo, repo_type="model", exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                                 commit_message="Upload a student trained with tripost")
    except Exception as e:  # huggingface_hub raises many types (auth, network, permissions); the user needs one line
        text = str(e).strip()
        raise TripostError(f"--push {repo}: the upload failed: {text.splitlines()[0] if text else type(e).__name__} "
                           f"(the export is in {folder})") from None
    finally:
        if lift:
            constants.HF_HUB_OFFLINE = True
    return str(getattr(info, "repo_url", None) or f"{constants.ENDPOINT}/{repo}")


# ------------------------------------------------------------------- GGUF ---


def _permute(w: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """The query / key rows in the order llama.cpp's rotary embedding reads
    them (pairs interleaved; transformers keeps the two halves apart): the
    permutation of llama.cpp's convert_hf_to_gguf.py (LlamaModel.permute),
    which transformers' GGUF loader undoes."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_pre(student: str, tokenizer: Any) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer (`tokenizer.ggml.pre`):
    the source GGUF's own where the student came from one (the embedded
    default, gguf:PATH), else read from the tokenizer's pre-tokenizer."""
    import gguf

    spec = parse_spec(student)
    if spec.kind in ("embedded", "gguf"):
        reader = gguf.GGUFReader(str(find_embedded_gguf() if spec.kind == "embedded" else spec.path))
        field = reader.fields.get("tokenizer.ggml.pre")
        if field is not None:
            return str(field.contents())
    pre = json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [(p.get("type"), p.get("individual_digits"), p.get("use_regex")) for p in parts]
    if kinds == [("Digits", True, None), ("ByteLevel", None, True)]:
        return "smollm"  # SmolLM's: single digits, then GPT-2's byte-level split
    if kinds == [("ByteLevel", None, True)]:
        return "gpt-2"
    raise TripostError(f"GGUF export: this tokenizer's pre-tokenizer ({', '.join(str(k[0]) for k in kinds) or 'none'}) has no llama.cpp "
                       "name tripost knows; export with --merge and convert the folder with llama.cpp's convert_hf_to_gguf.py")


def _vocab(tokenizer: Any, n_vocab: int) -> tuple[list[str], list[int]]:
    """Tokens in id order and their llama.cpp types, as convert_hf_to_gguf.py's
    get_vocab_base: special added tokens CONTROL, other added ones
    USER_DEFINED, ids without a token UNUSED placeholders."""
    import gguf

    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        token = reverse[i]
        tokens.append(token)
        if token in added:
            types.append(gguf.TokenType.CONTROL if decoder[i].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    return tokens, [int(t) for t in types]


def write_gguf(model: Any, tokenizer: Any, path: Path, *, gguf_type: str, name: str, base: dict[str, Any], pre: str) -> Path:
    """`model` (a transformers Llama-architecture model, merged) and its
    tokenizer as one GGUF file at `path`, tensors in `gguf_type` (norms stay
    F32, as llama.cpp needs; Q8_0 only where a row splits into its 32-value blocks)."""
    import gguf
    import numpy as np
    import torch

    if gguf_type not in GGUF_TYPES:
        raise TripostError(f"unknown GGUF type {gguf_type!r}; choose from {', '.join(GGUF_TYPES)}")
    cfg = model.config
    if getattr(cfg, "model_type", None) != "llama":
        raise TripostError(f"GGUF export writes Llama-architecture students (SmolLM2, Llama); this one is {getattr(cfg, 'model_type', '?')}: "
                           "export with --merge and convert the folder with llama.cpp's convert_hf_to_gguf.py")
    rope = getattr(cfg, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise TripostError(f"GGUF export: rope scaling {rope.get('rope_type')!r} is not written by tripost; "
                           "export with --merge and convert the folder with llama.cpp's convert_hf_to_gguf.py")
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        raise TripostError("GGUF export: projections with biases are not written by tripost; convert the merged folder with llama.cpp")
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    theta = rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
    qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[gguf_type]
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[gguf_type]

    tokens, types = _vocab(tokenizer, cfg.vocab_size)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    if base.get("hub_id"):
        org, _, repo_name = base["hub_id"].partition("/")
        w.add_base_model_count(1)
        w.add_base_model_name(0, repo_name)
        w.add_base_model_organization(0, org)
        w.add_base_model_repo_url(0, f"https://huggingface.co/{base['hub_id']}")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(theta))
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_rope_dimension_count(head_dim)
    if head_dim != cfg.hidden_size // n_head:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(int(ftype))
    if qtype == gguf.GGMLQuantizationType.Q8_0:
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    with tempfile.TemporaryDirectory() as tmp:  # SpecialVocab reads the saved files (merges, special ids, chat template)
        tokenizer.save_pretrained(tmp)
        special = gguf.SpecialVocab(tmp, load_merges=True, n_vocab=len(tokens))
    # Whether llama.cpp puts BOS before a prompt: as the tokenizer does (tripost's
    # chat prompts spell their BOS out, and the embedded GGUF says false too).
    probe = tokenizer("a")["input_ids"]
    special.add_special_token["bos"] = bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id
    special.add_to_gguf(w, quiet=True)
    w.add_add_space_prefix(False)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for key, tensor in model.state_dict().items():
        if tied and key == "lm_head.weight":
            continue  # llama.cpp reads the tied output from token_embd, as transformers' loader does
        new = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise TripostError(f"GGUF export: no llama.cpp name for the tensor {key}")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if key.endswith("q_proj.weight"):
            data = _permute(data, n_head, n_head)
        elif key.endswith("k_proj.weight"):
            data = _permute(data, n_head, n_kv)
        kind = qtype if data.ndim > 1 else gguf.GGMLQuantizationType.F32
        if kind == gguf.GGMLQuantizationType.Q8_0 and data.shape[-1] % gguf.GGML_QUANT_SIZES[kind][0]:
            kind = gguf.GGMLQuantizationType.F16  # llama.cpp's converter falls back the same way
        raw = gguf.quants.quantize(np.ascontiguousarray(data), kind)
        w.add_tensor(new, raw, raw_dtype=kind)  # a quantised type's byte shape is turned back into its value shape
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# ---------------------------------------------------------------- the card ---


def _load_json(path: Path) -> dict[str, Any]:
    """A JSON file tripost wrote, or {} where it is missing or unreadable (an older or partial folder)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _data_and_results(src: ExportSource) -> list[str]:
    """The card's sections beyond training: from a run, the loop, each
    iteration's data and the evaluation table (tripost.report); from a
    train folder, its data size."""

    train_cfg = _load_json(src.folder / CONFIG_FILE)
    sections = []
    if src.run is not None:
        data = collect_run(src.run)
        upto = src.iteration if src.iteration is not None else 0
        data["iterations"] = [r for r in data["iterations"] if r["iteration"] == "base" or int(r["iteration"][2:]) <= upto]
        cfg = data["config"] or {}
        tasks, loop, collect, buffer = (cfg.get(k, {}) for k in ("tasks", "loop", "collect", "buffer"))
        sections.append("\n".join([
            "## The TriPosT loop", "",
            f"This is the student after iteration {upto} of a `tripost run` of {loop.get('iterations')} iteration(s), seed {cfg.get('seed')}"
            + (f" ({src.note})" if src.note else "") + ".",
            "",
            f"- Tasks: {', '.join(tasks.get('families', []))} (preset `{tasks.get('preset')}`), {tasks.get('n_train')} training problems",
            *(["- Iteration 0: SFT on the gold rationales of the training problems (the answer format)"] if loop.get("iteration0") else []),
            f"- Each later iteration: collect trajectories with the previous student (source `{collect.get('source')}`, teacher "
            f"`{cfg.get('teacher', {}).get('spec')}`), build the replay buffer (improvement : direct : gold = "
            f"{':'.join(str(x) for x in buffer.get('ratio', []))}, turns `{buffer.get('turns')}`, last {buffer.get('keep_last') or 'all'} "
            "iteration(s) kept), train on it continuing the previous weights, evaluate on held-out test problems",
        ]))
        trained = [(r["iteration"], r["train"]) for r in data["iterations"] if r["train"]]
        lines = ["## Data", "", *collection_table(data), "", "| iteration | training examples | tokens | steps | final loss |", "|---|---:|---:|---:|---:|"]
        for it, t in trained:
            loss = "—" if t.get("final_loss") is None else f"{t['final_loss']:.3f}"
            lines.append(f"| {it} | {t.get('examples', t.get('pairs', '—'))} | {t.get('tokens', '—')} | {t.get('steps', '—')} | {loss} |")
        sections.append("\n".join(lines))
        if any(r["eval"] for r in data["iterations"]):
            sections.append("\n".join(["## Evaluation", "", f"Held-out test problems ({tasks.get('n_eval')} per family and subset); "
                                       "the gold answer is used only for scoring.", "", *accuracy_table(data), "", ACCURACY_NOTE]))
        else:
            sections.append("## Evaluation\n\nThe run evaluated none of these iterations.")
    else:
        m = _load_json(src.folder / METRICS_FILE)
        sections.append("\n".join(["## Data", "", f"- {m.get('examples', m.get('pairs', 'an unrecorded number of'))} training examples, "
                                   f"{m.get('tokens', 'unrecorded')} tokens, {m.get('steps', '?')} steps"]))
        sections.append("## Evaluation\n\nNone recorded with these weights: export the run folder they came from for its evaluation table.")
    template = train_cfg.get("prompt_template", "student.txt")
    try:
        instruction = read_prompt(template).rstrip()
    except TripostError:
        instruction = f"(the prompt template {template})"
    chat = {"off": "followed by a line `Answer:` (no chat template)"}.get(train_cfg.get("chat", "auto"),
                                                                       "as the user turn of its chat template (the answer is the assistant's turn)")
    sections.append("\n".join(["## Prompt", "", f"The student was trained on this instruction, `{{question}}` replaced by the problem, {chat}:",
                               "", "```", instruction, "```"]))
    return sections


def _usage(kind: str, gguf_file: str | None) -> str:
    lines = ["## Use", "", "```python"]
    if kind == "lora":
        lines += ["from peft import AutoPeftModelForCausalLM", 'model = AutoPeftModelForCausalLM.from_pretrained("THIS_FOLDER_OR_REPO")  # loads the base by its Hub id']
    else:
        lines += ["from transformers import AutoModelForCausalLM", 'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER_OR_REPO")']
    lines += ["```"]
    if gguf_file:
        lines += ["", f"llama.cpp: `llama-cli -m {gguf_file} -cnv`; Ollama: a Modelfile with `FROM ./{gguf_file}`, then `ollama create NAME -f Modelfile`."]
    return "\n".join(lines)


# ----------------------------------------------------------------- export ---


def export_student(src: ExportSource, to: str | Path, *, merge: bool = False, gguf: bool = False, gguf_type: str = GGUF_TYPE,
                   dtype: str = MERGE_DTYPE) -> dict[str, Any]:
    """Write the export of `src` into the folder `to` (new, or empty),
    atomically: a failure leaves no half-written folder. Returns a summary
    (the folder, its kind, the files written)."""

    to = Path(to).expanduser()
    if gguf_type not in GGUF_TYPES:
        raise TripostError(f"unknown GGUF type {gguf_type!r}; choose from {', '.join(GGUF_TYPES)}")
    if dtype not in MERGE_DTYPES:
        raise TripostError(f"unknown merge precision {dtype!r}; choose from {', '.join(MERGE_DTYPES)}")
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise TripostError(f"--to {to} already exists and is not an empty folder; give a new folder")
    if to.resolve() == src.folder or src.folder in to.resolve().parents:
        raise TripostError(f"--to {to} is inside the trained folder {src.folder}; give a folder outside it")
    train_cfg = _load_json(src.folder / CONFIG_FILE)
    merged = merge or src.kind == "full"
    kind = "full" if src.kind == "full" else "merged" if merged else "lora"
    name = to.resolve().name
    to.parent.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    with atomic_directory(to, keep_existing=lambda _: False) as tmp:
        model = tokenizer = None
        if merged or gguf:
            model, tokenizer = _merged(src, dtype)
        if merged:
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
            meta = {"student": src.student, "precision": dtype, "kind": "full", "trained_as": src.kind, "trained_precision": src.precision,
                    "base_model": src.base}
            (tmp / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")
            for extra in (CONFIG_FILE, METRICS_FILE):
                if (src.folder / extra).is_file():
                    shutil.copy2(src.folder / extra, tmp / extra)
        else:
            for p in src.folder.iterdir():
                if p.name in _LEFT_BEHIND:
                    continue
                (shutil.copytree if p.is_dir() else shutil.copy2)(p, tmp / p.name)
            make_portable(tmp, src.base)  # a folder trained before adapters named their base portably
        gguf_file = None
        if gguf:
            gguf_file = f"{name}.{gguf_type.upper()}.gguf"
            write_gguf(model, tokenizer, tmp / gguf_file, gguf_type=gguf_type, name=name, base=src.base, pre=gguf_pre(src.student, tokenizer))
        title = f"{name}: {src.base.get('hub_id') or 'a student'} trained with tripost"
        card = model_card(src.base, kind=kind, precision=src.precision, train=train_cfg, title=title,
                          sections=[*_data_and_results(src), _usage("lora" if kind == "lora" else "full", gguf_file)])
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir())
        del model
    return {"folder": str(to), "kind": kind, "source": str(src.folder), "iteration": src.iteration, "gguf": gguf_file, "files": files,
            "base_model": src.base.get("hub_id"), "note": src.note}


def _merged(src: ExportSource, dtype: str) -> tuple[Any, Any]:
    """The trained student as one plain transformers model in `dtype` on the
    CPU: a LoRA adapter merged into its full-precision base (also one trained
    on the 4-bit base: QLoRA's usual merge), full weights as they are; and
    the tokenizer as trained (padding and all as saved, not as tripost
    samples with it)."""
    from transformers import AutoTokenizer

    student = load_student(src.student, precision=dtype, adapter=src.folder, device="cpu")
    model = student.model.merge_and_unload() if src.kind == "lora" else student.model
    model.config.use_cache = True  # training turned the KV cache off; generation wants it
    where = src.folder if (src.folder / "tokenizer_config.json").is_file() else student.source_dir
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(where))
    except (OSError, ValueError) as e:
        raise TripostError(f"cannot load the tokenizer from {where}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    return model, tokenizer
