"""Run configuration: a TOML file plus `key.sub=value` overrides.

    tripost run --config my.toml train.epochs=2 collect.max_edits=3 --out runs/x

Precedence: built-in defaults < the TOML file < command-line overrides. The
resolved config is written into every run folder (config.json) and hashed
(`config_hash`) into every log record, so a run is reproducible from its folder.

Values on the command line are read as TOML values when they parse as one
(`3`, `1.5`, `true`, `[1.5, 1, 1]`, `"text"`), else as plain strings
(`teacher.spec=openai:gpt-6-luna`).

Every value must have its default's type (`check_types`): a string where a
number belongs is an error naming the key when the config is resolved, not a
traceback when some stage first compares it with a number.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

from tripost.errors import TripostError, clip
from tripost.fileio import atomic_write_json

# String defaults that are switches: they also take TOML's true/false (on/off).
SWITCH_WORDS = ("auto", "on", "off")
# How deep a value may nest: a config is a section of keys whose values are
# at most a list of lists. A 5,000-deep inline table or array made the TOML
# parser (and every copy and comparison after it) run out of Python's stack.
MAX_DEPTH = 16


def switch(name: str, value: object) -> str:
    """A switch setting as "auto", "on" or "off" (true/false mean on/off); anything else is one line naming it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value not in SWITCH_WORDS:
        raise TripostError(f"{name} must be one of {', '.join(SWITCH_WORDS)} (or true/false), got {clip(value, 40)}")
    return str(value)


def _depth(value: Any) -> int:
    """How deep `value` nests (a scalar: 0), counted without recursion and
    no further than MAX_DEPTH + 1."""
    depth, level = 0, [value]
    while depth <= MAX_DEPTH:
        level = [v for x in level for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else ())]
        if not level:
            return depth
        depth += 1
    return depth


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    """`tomllib.loads`, with a value nested deeper than MAX_DEPTH one line
    naming `where` (the parser itself recurses once per level)."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        data = None
    if data is None or _depth(data) > MAX_DEPTH:
        raise TripostError(f"{where}: a value nests tables or arrays more than {MAX_DEPTH} deep; a config needs no more than 3")
    return data


def parse_value(text: str, where: str = "an override") -> Any:
    try:
        return _parse_toml(f"v = {text}", where)["v"]
    except tomllib.TOMLDecodeError:
        return text


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing, unreadable, non-UTF-8 or malformed
    file is one `TripostError` naming it."""
    p = Path(path)
    if not p.is_file():
        raise TripostError(f"config file {p} not found")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise TripostError(f"config file {p}: cannot read it ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TripostError(f"config file {p}: not UTF-8 text (byte {e.start}); TOML files are UTF-8") from None
    try:
        return _parse_toml(text, f"config file {p}")
    except tomllib.TOMLDecodeError as e:
        raise TripostError(f"config file {p}: {e}") from None


def apply_override(config: dict[str, Any], item: str, known: dict[str, Any] | None = None) -> None:
    """Apply one `a.b.c=value` to a nested dict. With `known` (the defaults),
    an unknown key is an error that names it, so a typo never passes silently."""
    if "=" not in item:
        raise TripostError(f"override {clip(item)} is not KEY=VALUE (e.g. train.epochs=2)")
    key, _, raw = item.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise TripostError(f"override {clip(item)} has an empty key")
    node, ref = config, known
    for i, part in enumerate(parts[:-1]):
        if ref is not None:
            if not isinstance(ref.get(part), dict):
                raise TripostError(f"unknown config section {clip('.'.join(parts[: i + 1]))} in override {clip(item)}")
            ref = ref[part]
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise TripostError(f"config key {clip('.'.join(parts[: i + 1]))} is not a section")
    if ref is not None and parts[-1] not in ref:
        raise TripostError(f"unknown config key {clip(key.strip())}; known in this section: {', '.join(sorted(ref))}")
    if ref is not None and isinstance(ref[parts[-1]], dict):
        section = ".".join(parts)
        example = next(iter(ref[parts[-1]]), "key")
        raise TripostError(f"override {clip(item)}: {section!r} is a config section, not a value; set one of its keys, e.g. {section}.{example}=...")
    node[parts[-1]] = parse_value(raw.strip(), f"override {clip(item)}")


def merge(base: dict[str, Any], extra: dict[str, Any], known: dict[str, Any] | None = None, where: str = "") -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        path = f"{where}.{k}" if where else k
        if known is not None and k not in known:
            raise TripostError(f"unknown config key {clip(path)}")
        if known is not None and isinstance(known[k], dict) and not isinstance(v, dict):
            raise TripostError(f"config key {path!r} is a section ([{path}] with keys such as {next(iter(known[k]), 'key')} = ...), not a value")
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v, known[k] if known is not None and isinstance(known.get(k), dict) else None, path)
        else:
            out[k] = copy.deepcopy(v)
    return out


# How a config file spells each value type; bool first, since it is an int to Python.
_KIND_WORDS = ((bool, "true/false"), (int, "a whole number"), (float, "a number"), (str, "a string"), (list, "a list"), (dict, "a section"))


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys: {"train": {"epochs": 1}} -> {"train.epochs": 1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _kind(v: Any) -> str:
    """The value's type as a config file spells it."""
    return next((word for t, word in _KIND_WORDS if isinstance(v, t)), type(v).__name__)


def _fits(value: Any, default: Any) -> bool:
    """Whether `value` has the type of `default`: a float takes a whole number
    too, a switch string takes true/false, an "auto" default also takes a
    number (teacher.temperature: auto or a value), and an unset default (""
    or None: TOML has no null) takes any value that is not a section (the
    component that reads it checks it further)."""
    if default is None or default == "":
        return not isinstance(value, dict)
    if default == "auto" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str) or (isinstance(value, bool) and default in SWITCH_WORDS)
    if isinstance(default, list):
        if not isinstance(value, list):
            return False
        # Elements: as the default's, when all of its elements agree (a list
        # of names, a list of numbers).
        if default and all(isinstance(d, str) for d in default):
            return all(isinstance(x, str) for x in value)
        if default and all(isinstance(d, (int, float)) and not isinstance(d, bool) for d in default):
            return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
        return True
    return True


def _shown(value: Any) -> str:
    """A config value as the file spells it, clipped for a one-line error."""
    return clip(value, show=lambda v: json.dumps(v, default=str))


def check_types(config: dict[str, Any], defaults: dict[str, Any], where: str = "") -> None:
    """Every key of `config` that `defaults` knows has the default's type; the
    first that does not is a `TripostError` naming the key, the type it needs
    and the value it got."""
    for k, default in defaults.items():
        if k not in config:
            continue
        path = f"{where}.{k}" if where else k
        value = config[k]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise TripostError(f"config key {path!r} is a section, not a value (got {_shown(value)})")
            check_types(value, default, path)
        elif not _fits(value, default):
            want = _kind(default)
            if isinstance(default, float):
                want = "a number"
            elif isinstance(default, list) and default:
                want = f"a list of {'strings' if isinstance(default[0], str) else 'numbers'}"
            raise TripostError(f"config key {path!r} must be {want}, not {_kind(value)} ({_shown(value)})")


def load_config(defaults: dict[str, Any], path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    config = copy.deepcopy(defaults)
    if path is not None:
        config = merge(config, read_toml(path), defaults)
    for item in overrides or []:
        apply_override(config, item, defaults)
    check_types(config, defaults)
    return config


def config_hash(config: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_config(config: dict[str, Any], folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    atomic_write_json(path, config, sort_keys=True, default=str, ensure_ascii=True)
    return path
