"""Where things live: the shipped prompt templates and the local cache."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from tripost.errors import TripostError


def beside(path: str | Path, suffix: str) -> Path:
    """The file that goes with a result file: NAME.json -> NAME + `suffix`
    in the same folder (a name without .json keeps its whole name)."""
    path = Path(path)
    stem = path.name[: -len(".json")] if path.name.endswith(".json") else path.name
    return path.with_name(stem + suffix)


def prompts_dir() -> Path:
    """The prompt templates: `tripost._prompts` in an installed wheel (setup.py
    maps the repository's top-level prompts/ there), else the source tree's."""
    try:
        path = Path(str(resources.files("tripost._prompts")))
        if path.is_dir():
            return path
    except ModuleNotFoundError:
        pass
    source = Path(__file__).resolve().parent.parent / "prompts"
    if source.is_dir():
        return source
    raise TripostError("prompt templates not found: reinstall tripost")


def read_prompt(name: str) -> str:
    path = prompts_dir() / name
    if not path.is_file():
        raise TripostError(f"prompt template {name!r} not found in {prompts_dir()}")
    return path.read_text(encoding="utf-8")


def tripost_home() -> Path:
    """Cache root: $TRIPOST_HOME, else $XDG_CACHE_HOME/tripost, else ~/.cache/tripost."""
    env = os.environ.get("TRIPOST_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tripost"
