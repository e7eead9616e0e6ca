"""Checkpoints whole or absent: which checkpoint a resume may take, promoting a finished save into
place, and whether a folder holds a finished training (`is_trained`).

Checkpoints (OUT/checkpoints/checkpoint-STEP, every `save_steps`) are whole
or absent: each is written under OUT/checkpoints/.saving and renamed into
place once complete, and a resume takes the newest checkpoint that is whole
(trainer_state.json, which the Trainer writes last, reads; the safetensors
and torch files add up), removing newer torn ones with one line that says
so (a run killed mid-save by an older version, a disk that filled).

"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

from tripost.fileio import replace_directory
from tripost.train.config import METRICS_FILE, is_main_process


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


def last_checkpoint(folder: Path) -> str | None:
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


def is_trained(out_dir: str | Path) -> bool:
    """Whether `out_dir` holds a finished training run (metrics are written last)."""
    return (Path(out_dir) / METRICS_FILE).is_file()
