"""Run configuration: a TOML file plus `key.sub=value` overrides.

    tripost run --config my.toml train.epochs=2 collect.max_edits=3 --out runs/x

Precedence: built-in defaults < the TOML file < command-line overrides. The
resolved config is written into every run folder (config.json) and hashed
(`config_hash`) into every log record, so a run is reproducible from its folder.

Values on the command line are read as TOML values when they parse as one
(`3`, `1.5`, `true`, `[1.5, 1, 1]`, `"text"`), else as plain strings
(`teacher.spec=openai:gpt-4o-mini`).
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

from tripost.errors import TripostError


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(config: dict[str, Any], item: str, known: dict[str, Any] | None = None) -> None:
    """Apply one `a.b.c=value` to a nested dict. With `known` (the defaults),
    an unknown key is an error that names it, so a typo never passes silently."""
    if "=" not in item:
        raise TripostError(f"override {item!r} is not KEY=VALUE (e.g. train.epochs=2)")
    key, _, raw = item.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise TripostError(f"override {item!r} has an empty key")
    node, ref = config, known
    for i, part in enumerate(parts[:-1]):
        if ref is not None:
            if not isinstance(ref.get(part), dict):
                raise TripostError(f"unknown config section {'.'.join(parts[: i + 1])!r} in override {item!r}")
            ref = ref[part]
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise TripostError(f"config key {'.'.join(parts[: i + 1])!r} is not a section")
    if ref is not None and parts[-1] not in ref:
        raise TripostError(f"unknown config key {key.strip()!r}; known in this section: {', '.join(sorted(ref))}")
    node[parts[-1]] = parse_value(raw.strip())


def merge(base: dict[str, Any], extra: dict[str, Any], known: dict[str, Any] | None = None, where: str = "") -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        path = f"{where}.{k}" if where else k
        if known is not None and k not in known:
            raise TripostError(f"unknown config key {path!r}")
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v, known[k] if known is not None and isinstance(known.get(k), dict) else None, path)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(defaults: dict[str, Any], path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    config = copy.deepcopy(defaults)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise TripostError(f"config file {p} not found")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise TripostError(f"config file {p}: {e}") from None
        config = merge(config, data, defaults)
    for item in overrides or []:
        apply_override(config, item, defaults)
    return config


def config_hash(config: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_config(config: dict[str, Any], folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    return path
