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
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tripost.errors import InputError, TripostError
from tripost.fileio import DISK_FULL, no_space

SCHEMA = "tripost.log/1"
# improvement: a wrong answer fixed (by the teacher, or the student itself);
# direct: right at once; critique: a wrong answer and the teacher's critique,
# kept when the fix that followed made no progress yet ended right (the
# authors' rule, tripost.sources.teacher.edit_trajectory); failed: nothing to train.
KINDS = ("improvement", "direct", "critique", "failed")
CORRECT_KINDS = ("improvement", "direct")  # whose last turn is a right answer
USABLE_KINDS = ("improvement", "direct", "critique")  # what the buffer can train on


def usable(kinds: dict[str, int]) -> int:
    """How many records of these kind counts the buffer can train on."""
    return sum(kinds.get(k, 0) for k in USABLE_KINDS)
SOURCES = ("teacher", "rejection", "sharpen", "guided", "self_verified", "demo")


@dataclass
class LogRecord:
    """One finished trajectory. `turns[i]` is a rationale and the feedback on
    it; `turns[i+1].rationale` is the improvement of `turns[i]`."""

    key: str
    problem: dict[str, Any]
    kind: str  # one of KINDS
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
    # `guided` (a guided round of Guided Self-Improvement; `guide` says how),
    # `self_verified` (the student's own samples kept or weighed by its own
    # verifier, no gold answer: Song et al. 2024; tripost.sources.selfverify),
    # `demo` (the LLM teacher's own attempt at temperature 1.0, or with the
    # scripted teacher a wrong attempt the task family makes from the gold
    # rationale, corrected by the teacher, no student attempt: TriPosT's
    # learn-from-demonstrations ablation; `guide` holds the first wrong step,
    # or the teacher attempt's sample and temperature; tripost.sources.demo).
    source: str = "teacher"
    guide: dict[str, Any] | None = None
    # Whether a check (the gold answer, the teacher) stands behind `kind`. An
    # unchecked record (SFT-sharpening's pick: the student's own choice) is
    # trained whether right or not, and as the attempt alone: no closing
    # "also correct" verdict, which nothing made (tripost.buffer).
    checked: bool = True
    # How much the record counts in training: the buffer carries it into the
    # example's weight (tripost.buffer), which multiplies its loss when
    # train.use_example_weight is on. 1 unless a source weighs its records
    # (self_verified's reweight mode: the verifier's score, normalised per problem).
    weight: float = 1.0
    # A preference pair's other side (RLHF-sharpening: the student's lowest
    # rated sample, {"rationale", "logprob", "mean_logprob", ...}); `turns[0]`
    # is the chosen one. None: no pair (tripost.buffer.preference_pairs).
    rejected: dict[str, Any] | None = None
    schema: str = SCHEMA

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> "LogRecord":
        """A record from a parsed log line; a `ValueError` names the first field
        that breaks the schema (replay/README.md), so a reader never meets a
        wrong type deep inside the buffer or the format parser."""
        check_record(d)
        known = cls.__dataclass_fields__
        rec = cls(**{k: v for k, v in d.items() if k in known})
        if "checked" not in d and rec.source == "sharpen":
            rec.checked = False  # written before records carried the flag: sharpen picks were never checked
        return rec


REQUIRED = ("key", "problem", "kind", "turns", "final_correct", "stop_reason")
# Field -> the JSON type it must have; `None` in a tuple means null is allowed.
_TOP_TYPES: dict[str, tuple[type | None, ...]] = {
    "key": (str,), "problem": (dict,), "kind": (str,), "turns": (list,), "final_correct": (bool,),
    "stop_reason": (str,), "sample_index": (int,), "iteration": (int,), "seed": (int,), "config_hash": (str,),
    "teacher_calls": (list,), "student": (dict,), "source": (str,), "guide": (dict, None), "checked": (bool,), "weight": (float, int), "rejected": (dict, None),
    "schema": (str,),
}
# What readers take from `problem` (the buffer's prompt and grouping, the
# tasks' `Problem.from_dict`): `question` is required, the rest optional.
_PROBLEM_TYPES: dict[str, tuple[type | None, ...]] = {
    "question": (str,), "id": (str,), "family": (str,), "answer": (str, int, float), "rationale": (str, None),
    "difficulty": (str, int), "subset": (str,), "split": (str,), "options": (list,), "meta": (dict,),
}
_TURN_TYPES: dict[str, tuple[type | None, ...]] = {"rationale": (str,), "feedback": (str, None), "source": (str,), "error_step": (int, None)}
_JSON_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false", dict: "an object", list: "an array", None: "null"}


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    for t in (bool, int, float, str, dict, list):  # bool first: it is an int to Python
        if isinstance(v, t):
            return _JSON_NAMES[t]
    return type(v).__name__


def _has_type(v: Any, types: tuple[type | None, ...]) -> bool:
    if v is None:
        return None in types
    if isinstance(v, bool):
        return bool in types
    return any(t is not None and t is not bool and isinstance(v, t) for t in types)


def _check_fields(obj: dict[str, Any], spec: dict[str, tuple[type | None, ...]], where: str) -> None:
    for name, types in spec.items():
        if name in obj and not _has_type(obj[name], types):
            want = " or ".join(_JSON_NAMES[t] for t in types)
            raise ValueError(f"{where}{name!r} must be {want}, not {_json_type(obj[name])}")


def check_record(d: Any) -> None:
    """Raise `ValueError` (the message names the field) unless `d` is a record
    of the current schema that every reader can use as it is."""
    if not isinstance(d, dict):
        raise ValueError(f"a log record must be a JSON object, not {_json_type(d)}")
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise ValueError(f"missing field {', '.join(repr(m) for m in missing)}")
    if d.get("schema", SCHEMA) != SCHEMA:
        raise ValueError(f"unsupported log schema {d.get('schema')!r} (this tripost reads {SCHEMA})")
    _check_fields(d, _TOP_TYPES, "field ")
    if d["kind"] not in KINDS:
        raise ValueError(f"unknown kind {d['kind']!r}")
    if "weight" in d and not (math.isfinite(d["weight"]) and d["weight"] >= 0):
        raise ValueError(f"field 'weight' must be a finite number >= 0, not {d['weight']!r}")
    if d.get("source", "teacher") not in SOURCES:
        raise ValueError(f"unknown source {d['source']!r}")
    if "question" not in d["problem"]:
        raise ValueError("'problem' has no 'question'")
    _check_fields(d["problem"], _PROBLEM_TYPES, "problem field ")
    for i, t in enumerate(d["turns"]):
        if not isinstance(t, dict) or "rationale" not in t:
            raise ValueError(f"'turns[{i}]' must be an object with a 'rationale'")
        _check_fields(t, _TURN_TYPES, f"turns[{i}] field ")
    if d["kind"] != "failed" and not d["turns"]:
        raise ValueError(f"a {d['kind']!r} record needs at least one turn")
    if d.get("rejected") is not None and not isinstance(d["rejected"].get("rationale"), str):
        raise ValueError("'rejected' must be an object with a 'rationale' string")
    for i, c in enumerate(d.get("teacher_calls", [])):
        if not isinstance(c, dict):
            raise ValueError(f"'teacher_calls[{i}]' must be an object, not {_json_type(c)}")


# What a reader that cannot skip lines tells the user to do about a bad one.
REPAIR_HINT = "the lines before it are intact: repair or delete this line, then rerun"
# ... and what a reader with --skip-bad-lines (buffer, replay) says instead.
SKIP_HINT = "rerun with --skip-bad-lines to go on without it"


def read_log(path: str | Path, skip_bad_lines: bool = False, bad: list[int] | None = None, hint: str = REPAIR_HINT) -> Iterator[LogRecord]:
    """Records of a log. A corrupt line (not JSON, or not a record of the
    schema) is an `InputError` naming file and line and ending with `hint`
    (what the user can do: only a verb that has --skip-bad-lines may offer
    it), unless `skip_bad_lines` (then its number goes into `bad`). A last
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
            raise InputError(str(path), f"corrupt log line ({msg}); {hint}", lineno) from None


def check_resumable(path: str | Path) -> None:
    """Read a log a run is about to resume, if there is one, so that a line it
    cannot resume from is an `InputError` before the model loads, not after."""
    if Path(path).is_file():
        for _ in read_log(path):
            pass


class LogWriter:
    """Append records to a log, one line each, written (and fsynced) per record.

    Opening an existing log repairs a torn last line left by a crash (it is
    cut off: that trajectory was not finished) and loads the keys already
    there, so `done(key)` lets a resumed run skip finished work. A record
    the disk has no room for is cut off again at once and the write is one
    `tripost.fileio.no_space` error: the log holds whole records only, every
    one written before, and the same command resumes after them.
    """

    def __init__(self, path: str | Path, fsync: bool = True, skip_bad_lines: bool = False):
        self._fd: int | None = None  # first: a log that fails its checks below is dropped with nothing to close
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._keys: set[str] = set()
        if self.path.exists():
            self._repair_tail()
            for rec in read_log(self.path, skip_bad_lines=skip_bad_lines):
                self._keys.add(rec.key)
        # Unbuffered writes to the descriptor: a line is on disk or not, and
        # nothing half-written waits in a buffer to be flushed after a failed
        # write was cut off.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

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
        if self._fd is None:
            raise ValueError(f"log {self.path} is closed")
        line = memoryview((record.to_json() + "\n").encode("utf-8"))
        end = os.fstat(self._fd).st_size
        try:
            while line:
                line = line[os.write(self._fd, line):]
            if self.fsync:
                os.fsync(self._fd)
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            try:
                os.ftruncate(self._fd, end)  # the part that fit: a torn line for no one to read
            except OSError:
                pass  # left for the next open to cut off (`_repair_tail`)
            raise no_space(self.path) from None
        self._keys.add(record.key)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        # As a file object would: a writer dropped without close() frees its descriptor.
        self.close()

    def __enter__(self) -> "LogWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
