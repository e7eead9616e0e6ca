"""Settings sections: a dataclass whose fields carry default, help and flag once.

A section (the teacher's options, a collection's settings) is a frozen
dataclass whose fields are declared with `option(...)`. From it, and from
nothing else, come:

- the run config's keys and defaults (`section_defaults`, `tripost run`'s
  `[teacher]`, `[collect]` ...), read back with `from_section`;
- the command-line flags of the verbs that take the same settings
  (`add_flags`), with the same defaults, choices and help text, read back
  with `from_args`;
- the defaults of the library configs that hold the same settings under
  their own names (`view`: `CollectConfig.samples_per_problem`,
  `GuidedConfig.samples_per_round` ...), so a config built in code starts
  where the CLI and the run start.

So a default is written once, and `tripost run collect.max_new_tokens`,
`tripost collect --max-new-tokens` and a config built in code cannot drift
apart (tests/test_defaults.py checks it). Values are checked by the
section's own `check(name)`, where `name` spells a key the way the user wrote
it (`collect.samples_per_problem` or `--samples`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, field, fields
from typing import Any

KeyName = Callable[[str], str]


def option(default: Any, help: str, *, metavar: str | None = None, choices: Sequence[str] | None = None, flag: str | None = None) -> Any:
    """A section field: its default, help text, the metavar and choices of its
    flag, and the flag's name when it is not `--` + the key with dashes."""
    return field(default=default, metadata={"help": help, "metavar": metavar, "choices": tuple(choices) if choices else None, "flag": flag})


def described(f: Any) -> str:
    """A field's help with its choices, as `tripost run --keys` and `tripost train --help` list it."""
    choices = f.metadata.get("choices")
    return f.metadata.get("help", "") + (f" ({', '.join(choices)})" if choices else "")


def default_of(cls: type, name: str) -> Any:
    """The default of one section field."""
    return next(f.default for f in fields(cls) if f.name == name)


def view(section: type, key: str, *, override: Mapping[str, Any] | None = None) -> Any:
    """A field of a library config (`CollectConfig`, `GuidedConfig` ...) that
    holds a section's key under the library's name for it: its default is
    the section's, or, for a method whose own default differs, the one its
    override table names (declared once, beside the section, with the
    reason). The metadata says which key it views; tests/test_defaults.py
    reads it to check that every key has one default."""
    overridden = override is not None and key in override
    default = override[key] if overridden else default_of(section, key)  # type: ignore[index]
    return field(default=default, metadata={"section": section, "key": key, "override": override if overridden else None})


def section_defaults(cls: type) -> dict[str, Any]:
    """The run-config keys of a section, at their defaults."""
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def from_section(cls: type, section: dict[str, Any]) -> Any:
    """A section from a run-config table whose types `config.check_types`
    has checked (keys the section does not know are ignored: the config
    loader has already refused unknown ones)."""
    return cls(**{f.name: section[f.name] for f in fields(cls) if f.name in section})


def flag_of(cls: type, name: str) -> str:
    """The command-line flag of a section field."""
    f = next(f for f in fields(cls) if f.name == name)
    return f.metadata.get("flag") or "--" + name.replace("_", "-")


def shown(default: Any) -> str:
    """A default as help text shows it."""
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default) if default != "" else "none"


def add_flags(parser: Any, cls: type, *, dest: KeyName = lambda n: n, flag: KeyName | None = None,
              only: Sequence[str] | None = None, unset: bool = False, defaults: Mapping[str, Any] | None = None) -> None:
    """One flag per field of `cls` (or the fields named in `only`), with the
    field's default, choices and help. `dest` names the argparse attribute,
    `flag` the flag (default: the field's own, see `flag_of`). With `unset`,
    a flag not given is None (so a verb can tell which the user set) and
    `from_args` puts the field's default in its place. `defaults`: a verb's
    own default for a field, shown and used instead of the section's (a
    measurement that samples otherwise than a collection: `tripost gap`
    takes the section's --temperature at GapConfig's default); the flag,
    its meaning and its help stay the section's."""
    for f in fields(cls):
        if only is not None and f.name not in only:
            continue
        meta = f.metadata
        name = flag(f.name) if flag else flag_of(cls, f.name)
        value = defaults[f.name] if defaults is not None and f.name in defaults else f.default
        help_text = f"{meta['help']} (default {shown(value)})"
        default = None if unset else value
        if isinstance(f.default, bool):
            parser.add_argument(name, dest=dest(f.name), action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            parser.add_argument(name, dest=dest(f.name), type=type(f.default), default=default, metavar=meta["metavar"],
                                choices=meta["choices"], help=help_text)


def from_args(cls: type, args: argparse.Namespace, *, dest: KeyName = lambda n: n, **fixed: Any) -> Any:
    """A section from the flags `add_flags` added; a field without a flag, or
    whose flag was left unset, keeps its default (`fixed` values win)."""
    values = {f.name: getattr(args, dest(f.name)) for f in fields(cls) if getattr(args, dest(f.name), None) is not None}
    return cls(**{**values, **fixed})


__all__ = ["KeyName", "add_flags", "default_of", "flag_of", "from_args", "from_section", "option", "section_defaults", "shown", "view"]
