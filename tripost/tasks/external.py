"""Problems from a JSON-lines file (`--data FILE.jsonl`).

Each line is an object with at least `question` and `answer`; the family's
`from_record` does the rest (arithmetic and word sorting parse the question
fully, so the scripted teacher works on them). A bad line is an `InputError`
naming the file and the line; nothing is silently skipped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tripost.errors import InputError, TripostError
from tripost.jsonl import read_jsonl
from tripost.tasks import get_task
from tripost.tasks.base import SPLITS, SUBSETS, Problem, problem_id


def load_problems(path: str | Path, family: str, split: str = "test") -> list[Problem]:
    task = get_task(family)
    problems: list[Problem] = []
    seen: set[str] = set()
    for lineno, record in read_jsonl(str(path), required=("question", "answer")):
        try:
            p = task.from_record(record)
        except TripostError as e:
            raise InputError(str(path), str(e), lineno) from None
        subset = record.get("subset", "seen")
        rsplit = record.get("split", split)
        if subset not in SUBSETS:
            raise InputError(str(path), f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}", lineno)
        if rsplit not in SPLITS:
            raise InputError(str(path), f"split must be one of {', '.join(SPLITS)}, got {rsplit!r}", lineno)
        pid = str(record.get("id") or problem_id(family, p.question))
        if pid in seen:
            raise InputError(str(path), f"duplicate problem id {pid!r}", lineno)
        seen.add(pid)
        problems.append(replace(p, id=pid, family=family, subset=subset, split=rsplit))
    if not problems:
        raise InputError(str(path), "no problems in file")
    return problems
