"""BIG-bench and BIG-Bench-Hard task files as `--data` problems.

Both benchmarks keep a task as one JSON file of examples:

    {"canary": "...", "examples": [{"input": "...", "target": "..."}, ...]}

BIG-Bench-Hard (github.com/suzgunmirac/BIG-Bench-Hard, `bbh/TASK.json`)
spells a multiple-choice question's options in its input and its target as
the letter, `(B)`; BIG-bench's own `task.json` may instead give
`target_scores` (option -> 1 or 0), which is written here the way BBH writes
it: the options after the input as `Options:` / `(A) ...`, the target as the
letter of the option scored highest. TriPosT evaluated on four of these
tasks; the families that match them read their questions as they are
(`tripost tasks import` checks every row through the family before it
writes a line):

    word_sorting                      -> word_sorting
    multistep_arithmetic(_two)        -> arithmetic
    date_understanding                -> date_understanding
    logical_deduction_*_objects       -> logical_deduction
    any other task, with --task qa    -> qa (the final answer checked, no steps)

Every row is a `test` row of the `seen` subset (the files are benchmarks,
never training data: they carry a canary asking that they stay out of
training corpora), with an id naming the file and the example's position.
The files are not shipped with tripost; download them yourself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tripost.errors import InputError, TripostError, clip
from tripost.tasks.external import check_record
from tripost.tasks.registry import get_task

# The BIG-bench task names (a file's stem, or a task.json's folder) each family reads.
FAMILY_OF_TASK = {
    "word_sorting": "word_sorting",
    "multistep_arithmetic": "arithmetic",
    "date_understanding": "date_understanding",
    "logical_deduction": "logical_deduction",
}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def task_name(path: str | Path) -> str:
    """The benchmark task a file holds: its stem (`bbh/word_sorting.json`),
    or its folder's name for BIG-bench's `word_sorting/task.json`."""
    p = Path(path)
    return p.parent.name if p.stem == "task" else p.stem


def family_of(path: str | Path) -> str:
    """The tripost family that reads the task in `path`, from its name; an
    `InputError` listing the names known when none matches."""
    name = task_name(path)
    for prefix, family in FAMILY_OF_TASK.items():
        if name.startswith(prefix):
            return family
    raise InputError(str(path), f"no task family reads BIG-bench task {clip(name)}; known: {', '.join(FAMILY_OF_TASK)} "
                                "(or name the family with --task)")


def _question_answer(example: Any) -> tuple[str, str]:
    """(question, answer) of one example, BBH's way (see the module doc)."""
    if not isinstance(example, dict) or not isinstance(example.get("input"), str):
        raise TripostError("an example must be an object with a string 'input'")
    target = example.get("target")
    if isinstance(target, list) and target and all(isinstance(t, str) for t in target):
        target = target[0]  # BIG-bench allows several right targets; the first is the canonical one
    if isinstance(target, str):
        return example["input"], target
    scores = example.get("target_scores")
    if isinstance(scores, dict) and scores and len(scores) <= len(LETTERS):
        options = list(scores)
        best = max(range(len(options)), key=lambda i: scores[options[i]])
        lines = [f"({LETTERS[i]}) {o}" for i, o in enumerate(options)]
        return example["input"].rstrip() + "\nOptions:\n" + "\n".join(lines), f"({LETTERS[best]})"
    raise TripostError("an example needs a string 'target' (or a list of them) or 'target_scores'")


def read_bigbench(path: str | Path, family: str | None = None) -> list[dict[str, Any]]:
    """The `--data` rows of a BIG-bench / BIG-Bench-Hard task file, each
    checked by `family` (default: `family_of(path)`). A file that is not such
    a task, or a row the family cannot read, is an `InputError` naming the
    file and the example's position (1-based)."""
    family = get_task(family).name if family else family_of(path)
    task = get_task(family)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(str(path), f"cannot read: {e}") from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise InputError(str(path), f"not valid JSON ({getattr(e, 'msg', 'nested too deeply')})") from None
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list) or not examples:
        raise InputError(str(path), "not a BIG-bench task file: no 'examples' list")
    name, rows = task_name(path), []
    for i, example in enumerate(examples, 1):
        try:
            question, answer = _question_answer(example)
            row = {"id": f"bigbench-{name}-{i}", "question": question, "answer": answer, "split": "test", "subset": "seen",
                   "source": name}
            check_record(row)
            task.from_record(row)  # the family reads it, or the file is refused here rather than half way through an eval
        except TripostError as e:
            raise InputError(str(path), f"example {i}: {e}") from None
        except (TypeError, ValueError) as e:
            raise InputError(str(path), f"example {i}: not a {family} problem ({e})") from None
        rows.append(row)
    return rows


__all__ = ["FAMILY_OF_TASK", "family_of", "read_bigbench", "task_name"]
