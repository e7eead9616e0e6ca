"""A journal of an evaluation's generate calls, so a killed `tripost eval` resumes where it stopped.

An evaluation is a fixed sequence of generate calls (selfimprove.py: every
attempt, then every feedback, then every update, in chunks), each call's
prefixes fixed by the outputs before it. The journal appends each call's
outputs (text, finish reason, tokens) as one JSON line the moment the call
returns. Rerun with the same journal, the first calls are answered from it,
in order, so the calls after them get the same prefixes in the same batches
as in an uninterrupted run, and the result is the one that run would have
written. Only the call that was cut off is generated again.

The first line is a header with the evaluation's fingerprint (what decides
the text: the generation settings, the student, its weights' files, the
problems); a journal with another fingerprint is refused rather than
replayed. Each call's line carries a digest of its prefixes, so a replay
that would diverge stops with an error instead of answering the wrong
prompts. A line cut off by the kill is dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.paths import beside

SCHEMA = "tripost.eval-journal/1"


class JournalMismatch(TripostError):
    """The journal is not this evaluation's: another fingerprint, or not a journal at all."""


@dataclass(frozen=True)
class JournaledOutput:
    """One generated piece as the journal keeps it (what selfimprove reads of an output)."""

    text: str
    finish_reason: str | None = None
    n_tokens: int | None = None


def journal_path(out: str | Path) -> Path:
    """The journal beside an evaluation's --out file: NAME.journal.jsonl."""
    return beside(out, ".journal.jsonl")


def files_identity(folder: str | Path | None) -> list[list[Any]] | None:
    """Name, size and modification time of each file directly in `folder`:
    a retrained adapter saved at the same path does not match its old journal."""
    if not folder:
        return None
    path = Path(folder)
    if not path.is_dir():
        return None
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(path.iterdir()) if p.is_file()]


def _digest(prefixes: Sequence[str], stop: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps([list(prefixes), list(stop)], ensure_ascii=False).encode("utf-8")).hexdigest()


def _encode(out: Any) -> list[Any]:
    if isinstance(out, str):
        return [out, None, None]
    return [out.text, getattr(out, "finish_reason", None), getattr(out, "n_tokens", None)]


def check_journal(path: str | Path, fingerprint: dict[str, Any]) -> None:
    """Refuse a journal whose fingerprint differs from `fingerprint` in any
    key `fingerprint` has: what can be checked before the student loads."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
    except (OSError, ValueError):
        return  # no journal, or one cut off before its header: CallJournal starts it afresh or says what is wrong
    _check_header(path, header, json.loads(json.dumps(fingerprint)), partial=True)


def _check_header(path: Path, header: Any, ours: dict[str, Any], partial: bool = False) -> None:
    """Refuse a header that is not this evaluation's: compared on every key
    either fingerprint has, or (`partial`) only on the keys of `ours`."""
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        raise JournalMismatch(f"{path}: not an evaluation journal ({SCHEMA})")
    theirs = header.get("fingerprint") or {}
    differ = sorted(k for k in (ours if partial else set(ours) | set(theirs)) if theirs.get(k) != ours.get(k))
    if differ:
        raise JournalMismatch(f"{path} was written by a different evaluation ({', '.join(differ)} differ)")


class CallJournal:
    """Replays the journalled calls of `path` and appends new ones (module docstring)."""

    def __init__(self, path: str | Path, fingerprint: dict[str, Any]):
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from the file
        self.calls: list[tuple[str, list[JournaledOutput]]] = []
        self.replayed = 0
        self._next = 0
        if self.path.exists():
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"schema": SCHEMA, "fingerprint": self.fingerprint})

    def _load(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        good = len(raw) if raw.endswith(b"\n") else len(raw) - len(lines[-1])  # bytes up to the last whole line
        rows = []
        for line in lines[:-1]:  # whole lines; the last element is b"" or a line the kill cut off
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise JournalMismatch(f"{self.path}: not an evaluation journal (a line does not parse)") from None
        if good < len(raw):  # the kill cut the last line off: drop it, so the next line starts clean
            with open(self.path, "r+b") as f:
                f.truncate(good)
        if not rows:  # killed before its header was whole: a new journal
            self._append({"schema": SCHEMA, "fingerprint": self.fingerprint})
            return
        _check_header(self.path, rows[0], self.fingerprint)
        for row in rows[1:]:
            self.calls.append((row["key"], [JournaledOutput(*o) for o in row["outs"]]))

    def _append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def wrap(self, generate_fn: Any) -> Any:
        """`generate_fn` with its calls answered from the journal while it has them, and journalled after."""

        def generate(prefixes: Sequence[str], stop: Sequence[str]) -> list[Any]:
            key, k = _digest(prefixes, stop), self._next
            self._next += 1
            if k < len(self.calls):
                recorded_key, outs = self.calls[k]
                if recorded_key != key or len(outs) != len(prefixes):
                    raise JournalMismatch(f"{self.path}: call {k + 1} asks for other prompts than the journal holds "
                                       "(the evaluation changed since it was written)")
                self.replayed += 1
                return list(outs)
            outs = list(generate_fn(prefixes, stop))
            self._append({"key": key, "outs": [_encode(o) for o in outs]})
            return outs

        return generate


__all__ = ["CallJournal", "JournalMismatch", "JournaledOutput", "SCHEMA", "check_journal", "files_identity", "journal_path"]
