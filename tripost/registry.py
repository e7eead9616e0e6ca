"""Named things imported on first use: one small registry for every kind.

    TASKS = Registry("task family", {"arithmetic": "tripost.tasks.arithmetic:ArithmeticTask", ...})
    TASKS.get("arithmetic")      # the class, imported now
    TASKS.names                  # ("arithmetic", ...), in declaration order
    TASKS.get("arithmatic")      # TripostError: unknown task family 'arithmatic'; choose from arithmetic, ...

An entry is a `"module:attribute"` string, so listing the names (a CLI's
`choices`, `tripost tasks list`) imports nothing; the module is imported the
first time its entry is asked for. Modelled on lm-evaluation-harness'
`lm_eval/api/registry.py`, without its decorators: the table is the one
place a reader looks to see what exists.

Registries in the tree: task families (tripost.tasks.registry), data sources
(tripost.sources.registry), teacher backends (tripost.teachers), training
objectives (tripost.train.objectives).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from tripost.errors import TripostError, clip


_REQUIRED = object()  # get() without a default: an unknown name is an error


def _check_entry(kind: str, name: str, target: str) -> None:
    module, sep, attr = target.partition(":")
    if not (module and sep and attr):
        raise ValueError(f"{kind} {name!r}: entry {target!r} is not 'module:attribute'")


class Registry(MutableMapping[str, str]):
    """A table name -> "module:attribute", looked up lazily.

    `kind` names what the entries are in errors ("task family", "data
    source"). A mapping over the entry strings, so `name in REG`, `list(REG)`
    and `len(REG)` work without importing anything; `REG["mine"] =
    "my_package.module:MySource"` registers one of your own from your code."""

    def __init__(self, kind: str, entries: Mapping[str, str]) -> None:
        for name, target in entries.items():
            _check_entry(kind, name, target)
        self.kind = kind
        self._entries = dict(entries)
        self._loaded: dict[str, Any] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """The registered names, in declaration order (a snapshot)."""
        return tuple(self._entries)

    def check(self, name: str) -> str:
        """`name` if registered, else one `TripostError` listing the names."""
        if name not in self._entries:
            raise TripostError(f"unknown {self.kind} {clip(name)}; choose from {', '.join(self._entries)}")
        return name

    def get(self, name: str, default: Any = _REQUIRED) -> Any:  # type: ignore[override]
        """The object registered under `name`, imported on first use; an
        unknown name is one `TripostError` listing the known ones, or
        `default` when one is given."""
        if name not in self._entries and default is not _REQUIRED:
            return default
        self.check(name)
        if name not in self._loaded:
            module, _, attr = self._entries[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attr)
        return self._loaded[name]

    def __getitem__(self, name: str) -> str:
        return self._entries[self.check(name)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __setitem__(self, name: str, target: str) -> None:
        _check_entry(self.kind, name, target)
        self._entries[name] = target
        self._loaded.pop(name, None)

    def __delitem__(self, name: str) -> None:
        del self._entries[self.check(name)]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"


__all__ = ["Registry"]
