"""The interaction log: JSON Lines, one record per finished trajectory.

Append-only and flushed per record, so a crash (even `kill -9`) loses at most
the trajectory being written; a resumed run reads the keys already present
and skips them, so nothing is duplicated and no teacher call is paid twice
(the teacher cache answers the rest). The schema is documented in
replay/README.md; `SCHEMA` is bumped on any incompatible change.

A record's `key` identifies the unit of work (problem id, sample index,
iteration): resuming skips every key already in the log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tripost.errors import InputError, TripostError

SCHEMA = "tripost.log/1"
KINDS = ("improvement", "direct", "failed")
SOURCES = ("teacher", "rejection", "sharpen", "guided")


@dataclass
class LogRecord:
    """One finished trajectory. `turns[i]` is a rationale and the feedback on
    it; `turns[i+1].rationale` is the improvement of `turns[i]`."""

    key: str
    problem: dict[str, Any]
    kind: str  # improvement | direct | failed
    turns: list[dict[str, Any]]
    final_correct: bool
    stop_reason: str
    sample_index: int = 0
    iteration: int = 0
    seed: int = 0
    config_hash: str = ""
    teacher_calls: list[dict[str, Any]] = field(default_factory=list)
    student: dict[str, Any] = field(default_factory=dict)
    # Who made the trajectory: `teacher` (TriPosT's interactive editing),
    # `rejection` (the student's own correct samples, no teacher: STaR/LMSI),
    # `sharpen` (the student's own best-of-N by its likelihood: SFT-sharpening),
    # `guided` (a guided round of Guided Self-Improvement; `guide` says how).
    source: str = "teacher"
    guide: dict[str, Any] | None = None
    schema: str = SCHEMA

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LogRecord":
        known = cls.__dataclass_fields__
        missing = [k for k in ("key", "problem", "kind", "turns", "final_correct", "stop_reason") if k not in d]
        if missing:
            raise ValueError(f"missing field {', '.join(repr(m) for m in missing)}")
        if d.get("schema", SCHEMA) != SCHEMA:
            raise ValueError(f"unsupported log schema {d.get('schema')!r} (this tripost reads {SCHEMA})")
        if d["kind"] not in KINDS:
            raise ValueError(f"unknown kind {d['kind']!r}")
        if d.get("source", "teacher") not in SOURCES:
            raise ValueError(f"unknown source {d['source']!r}")
        if not isinstance(d["turns"], list) or not all(isinstance(t, dict) and "rationale" in t for t in d["turns"]):
            raise ValueError("'turns' must be a list of objects with a 'rationale'")
        return cls(**{k: v for k, v in d.items() if k in known})


def read_log(path: str | Path, skip_bad_lines: bool = False, bad: list[int] | None = None) -> Iterator[LogRecord]:
    """Records of a log. A corrupt line is an `InputError` naming file and
    line, unless `skip_bad_lines` (then its number goes into `bad`). A last
    line without its newline is what a crash leaves behind: it is ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such log file")
    with path.open("rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    complete = lines[:-1]  # the last element is b"" when the file ends with \n, else a torn tail
    for lineno, raw in enumerate(complete, 1):
        if not raw.strip():
            continue
        try:
            yield LogRecord.from_dict(json.loads(raw.decode("utf-8")))
        except (ValueError, TypeError, UnicodeDecodeError) as e:
            if skip_bad_lines:
                if bad is not None:
                    bad.append(lineno)
                continue
            msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
            raise InputError(str(path), f"corrupt log line ({msg}); rerun with --skip-bad-lines to go on", lineno) from None


def read_logs(paths: Iterable[str | Path], skip_bad_lines: bool = False) -> list[LogRecord]:
    out: list[LogRecord] = []
    for p in paths:
        out.extend(read_log(p, skip_bad_lines=skip_bad_lines))
    return out


class LogWriter:
    """Append records to a log, one line each, flushed (and fsynced) per record.

    Opening an existing log repairs a torn last line left by a crash (it is
    cut off: that trajectory was not finished) and loads the keys already
    there, so `done(key)` lets a resumed run skip finished work.
    """

    def __init__(self, path: str | Path, fsync: bool = True, skip_bad_lines: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._keys: set[str] = set()
        if self.path.exists():
            self._repair_tail()
            for rec in read_log(self.path, skip_bad_lines=skip_bad_lines):
                self._keys.add(rec.key)
        self._f = self.path.open("a", encoding="utf-8")

    def _repair_tail(self) -> None:
        with self.path.open("rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def done(self, key: str) -> bool:
        return key in self._keys

    @property
    def n_records(self) -> int:
        return len(self._keys)

    def write(self, record: LogRecord) -> None:
        if record.key in self._keys:
            raise TripostError(f"log {self.path}: key {record.key!r} written twice")
        self._f.write(record.to_json() + "\n")
        self._f.flush()
        if self.fsync:
            os.fsync(self._f.fileno())
        self._keys.add(record.key)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "LogWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
