"""Problems from a JSON-lines file (`--data FILE.jsonl`).

Each line is an object with at least `question` and `answer`; the family's
`from_record` does the rest (arithmetic and word sorting parse the question
fully, so the scripted teacher works on them). A bad line is an `InputError`
naming the file and the line; nothing is silently skipped.

`check_record` holds what every family's record must be, whatever the family:
the types of the fields families read loosely (options, rationale, id,
difficulty, meta) and bounds on sizes. Each family's `from_record` calls it,
so records that reach a family another way (`tasks check`, `teach`) get the
same checks as a `--data` file.

`record_id`, `record_split` and `record_subset` are the one rule every
family's `from_record` and `load_problems` use for those fields: a row's
own `split` field wins; a row without one is split by a hash of its
question (`split_of`), exactly like a generated problem, so a file's rows
fall into train, val and test once, whatever split a command asks for.
`problem_from_record` reads the records of `tasks check` and `teach`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from typing import Any

from tripost.errors import InputError, TripostError, clip
from tripost.jsonl import read_jsonl
from tripost.tasks.base import SPLITS, SUBSETS, Problem, problem_id, split_of
from tripost.tasks.registry import get_task


# Size bounds on a record. A file can hold anything, and every later stage keeps
# each problem in memory, puts it in prompts and writes it to the log for each
# sample: a 10 MB question was accepted and `collect` then tried to allocate
# 17 GB. The trainer drops rows over 2,048 tokens (train.max_length), about
# 8,000 characters of English, so a longer question could never be learnt
# from; the longest GSM8K and MATH questions are under 4,000 characters and
# the longest generated ones (logical_deduction, paper preset) under 1,000.
MAX_QUESTION_CHARS = 8_000
# GSM8K-style answer fields carry the worked solution before "#### 72", so an
# answer may be as long as a question.
MAX_ANSWER_CHARS = 8_000
# A rationale restates parts of the question at every step (word sorting lists
# each word again for every letter it reads): generated gold rationales run to
# about twice their question (2,000 characters at most in the paper preset).
# Twice the question bound leaves room for external ones and still bounds the
# step checkers, which may look at every pair of steps' expressions.
MAX_RATIONALE_CHARS = 16_000
MAX_OPTIONS = 26  # options are named (A) to (Z)
MAX_OPTION_CHARS = 1_000  # an option is one answer: a date, a name, a number
MAX_ID_CHARS = 200  # an id is a name in logs and reports, not content


def _too_long(field: str, text: str, limit: int) -> TripostError:
    return TripostError(f"field {field!r} is {len(text):,} characters long, more than the {limit:,} accepted")


def _scalar(value: Any) -> bool:
    """A string or a number (not a boolean): what an id, a difficulty or an option may be."""
    return isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))


def check_text(record: dict[str, Any]) -> None:
    """Every string of the record, keys and nested values included, is text:
    JSON can spell a lone surrogate ("\\ud800"), which no UTF-8 file or
    terminal can hold, so it would fail later, when the problem's id is
    hashed or its first log line written. A `TripostError` naming the field."""
    for field, top in record.items():
        todo: list[Any] = [field, top]  # a walk, not a recursion: JSON may nest deeper than Python recurses
        while todo:
            value = todo.pop()
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as e:
                    raise TripostError(f"field {clip(field)} holds a lone surrogate ({value[e.start]!r} at character {e.start}), "
                                       f"which is not text; fix that escape in the row") from None
            elif isinstance(value, list):
                todo += value
            elif isinstance(value, dict):
                todo += [*value.keys(), *value.values()]


def check_record(record: Any) -> None:
    """Raise a one-line `TripostError` for a record no family can take: not an
    object, a string that is not text (`check_text`), a loosely read field of
    the wrong type, or a field too long. `question` and `answer` are typed by
    each family (the rules differ); here only their length is bounded."""
    if not isinstance(record, dict):
        raise TripostError("a problem record must be a JSON object with 'question' and 'answer'")
    check_text(record)
    for field, limit in (("question", MAX_QUESTION_CHARS), ("answer", MAX_ANSWER_CHARS), ("rationale", MAX_RATIONALE_CHARS)):
        value = record.get(field)
        if isinstance(value, str) and len(value) > limit:
            raise _too_long(field, value, limit)
    rationale = record.get("rationale")
    if rationale is not None and not isinstance(rationale, str):
        raise TripostError(f"field 'rationale' must be a string, got {type(rationale).__name__}")
    options = record.get("options")
    if options is not None:
        if not isinstance(options, list) or not all(_scalar(o) for o in options):
            raise TripostError("field 'options' must be a list of strings (or numbers)")
        if len(options) > MAX_OPTIONS:
            raise TripostError(f"field 'options' has {len(options)} options, more than the {MAX_OPTIONS} (A) to (Z) can name")
        for o in options:
            if isinstance(o, str) and len(o) > MAX_OPTION_CHARS:
                raise _too_long("options", o, MAX_OPTION_CHARS)
    for field in ("id", "difficulty"):
        value = record.get(field)
        if value is not None and not _scalar(value):
            raise TripostError(f"field {field!r} must be a string or a number, got {type(value).__name__}")
        if isinstance(value, str) and len(value) > MAX_ID_CHARS:
            raise _too_long(field, value, MAX_ID_CHARS)
    meta = record.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise TripostError(f"field 'meta' must be an object, got {type(meta).__name__}")


def record_id(record: dict[str, Any], family: str, question: str) -> str:
    """The record's `id` when it has one (any non-empty value), else
    `problem_id(family, question)`: the id a generated problem with the same
    question gets, so a problem keeps its id however it arrives."""
    return str(record.get("id") or problem_id(family, question))


def record_split(record: dict[str, Any], question: str) -> str:
    """The record's `split` when it names one, else the question's own
    (`split_of`), as if the problem had been generated."""
    split = record.get("split")
    return split if isinstance(split, str) and split in SPLITS else split_of(question)


def record_subset(record: dict[str, Any]) -> str:
    """The record's `subset` when it names one, else seen."""
    subset = record.get("subset")
    return subset if isinstance(subset, str) and subset in SUBSETS else "seen"


def record_options(record: dict[str, Any]) -> tuple[str, ...]:
    """The record's options as strings (`check_record` has typed them)."""
    return tuple(str(o) for o in record.get("options") or ())


def record_difficulty(record: dict[str, Any], default: str) -> str:
    """The record's `difficulty` as a string, or `default` when it has none."""
    difficulty = record.get("difficulty")
    return default if difficulty is None or difficulty == "" else str(difficulty)


def load_problems(path: str | Path, family: str) -> list[Problem]:
    """Every problem of a JSON-lines file, read as `family`. A row's split is
    its `split` field, else the question's hash split (`record_split`), as
    for a generated problem; the caller filters (`select_problems`)."""
    task = get_task(family)
    problems: list[Problem] = []
    seen: set[str] = set()
    for lineno, record in read_jsonl(str(path), required=("question", "answer")):
        try:
            check_record(record)  # the families call it too; here it also covers any family that forgets
            p = task.from_record(record)
        except TripostError as e:
            raise InputError(str(path), str(e), lineno) from None
        subset = record.get("subset", "seen")
        if subset not in SUBSETS:
            raise InputError(str(path), f"subset must be one of {', '.join(SUBSETS)}, got {clip(subset)}", lineno)
        if "split" in record and record["split"] not in SPLITS:
            raise InputError(str(path), f"split must be one of {', '.join(SPLITS)}, got {clip(record['split'])}", lineno)
        # Never the split a command asks for: a row without one would be in every split (test rows trained on).
        rsplit = record_split(record, p.question)
        pid = record_id(record, family, p.question)
        if pid in seen:
            raise InputError(str(path), f"duplicate problem id {pid!r}", lineno)
        seen.add(pid)
        problems.append(replace(p, id=pid, family=family, subset=subset, split=rsplit))
    if not problems:
        raise InputError(str(path), "no problems in file")
    return problems


def problem_from_record(family: str, record: dict[str, Any], source: str, lineno: int) -> Problem:
    """A record of `tasks check` or `teach`: one from `tasks sample` (it
    carries `meta`) is taken as it is; any other goes through the family's
    `from_record`. A bad record is an `InputError` naming `source` and the
    line."""
    try:
        check_text(record)  # a record from `tasks sample` skips the family's checks, not this one
        if record.get("meta") and record.get("family", family) == family and "answer" in record:
            return Problem.from_dict({**record, "family": family, "id": record.get("id", "")})
        if "answer" not in record:
            raise InputError(source, "missing field 'answer' (needed unless the record comes from `tripost tasks sample`)", lineno)
        return get_task(family).from_record(record)
    except InputError:
        raise
    except TripostError as e:
        raise InputError(source, str(e), lineno) from None
    except (TypeError, ValueError) as e:
        raise InputError(source, f"not a {family} problem record ({e})", lineno) from None
