"""One problem selection (tripost.tasks.select), the held-out check, one id
rule for records, and the shared base of the generated families."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tripost.errors import TripostError
from tripost.tasks import FAMILIES, StepCheck, check_held_out, get_task, problem_id, sample_problems, select_problems
from tripost.tasks.base import split_of
from tripost.tasks.external import load_problems, problem_from_record
from tripost.tasks.family import FORM_REASON, GeneratedFamily

GENERATED = ["arithmetic", "word_sorting", "date_understanding", "logical_deduction"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def arithmetic_rows() -> list[dict]:
    """Rows of every split and subset, and rows that name neither."""
    marks = [("r1", "train", "seen"), ("r2", "test", "seen"), ("r3", None, None), ("r4", "val", "unseen"),
             ("r5", "train", "unseen"), ("r6", "test", "unseen"), ("r7", None, "unseen"), ("r8", "train", None)]
    rows = []
    for i, (rid, split, subset) in enumerate(marks, start=1):
        row = {"question": f"({i} + 1) =", "answer": i + 1, "id": rid}
        row.update({k: v for k, v in (("split", split), ("subset", subset)) if v})
        rows.append(row)
    return rows


# ------------------------------------------------------------ selection ---


def test_data_rows_of_other_splits_are_never_selected(tmp_path):
    data = write_jsonl(tmp_path / "p.jsonl", arithmetic_rows())
    train = select_problems(["arithmetic"], split="train", subsets=("seen", "unseen"), n=100, data=data)
    # A row without a split takes its question's hash split (r3 and r7 hash to train), never
    # the split asked for; a row's own split wins (r8's question hashes to test); a test row never trains.
    assert [split_of(r["question"]) for r in arithmetic_rows() if r["id"] in ("r3", "r7", "r8")] == ["train", "train", "test"]
    assert [p.id for p in train] == ["r1", "r3", "r5", "r7", "r8"]
    assert {p.split for p in train} == {"train"}
    test = select_problems(["arithmetic"], split="test", subsets=("seen", "unseen"), n=100, data=data)
    assert [p.id for p in test] == ["r2", "r6"]
    # load_problems alone keeps every row: the filter is select_problems' job.
    assert len(load_problems(data, "arithmetic")) == 8


def test_data_rows_are_filtered_by_subset_and_capped_per_family(tmp_path):
    data = write_jsonl(tmp_path / "p.jsonl", arithmetic_rows())
    seen = select_problems(["arithmetic"], split="train", subsets=("seen",), n=100, data=data)
    assert [p.id for p in seen] == ["r1", "r3", "r8"]
    assert [p.id for p in select_problems(["arithmetic"], split="train", subsets=("seen", "unseen"), n=2, data=data)] == ["r1", "r3"]
    marked = write_jsonl(tmp_path / "marked.jsonl", arithmetic_rows()[:2])  # a train row and a test row
    with pytest.raises(TripostError, match="no val problems of subset seen"):
        select_problems(["arithmetic"], split="val", subsets=("seen",), n=5, data=marked)


def test_collect_with_data_takes_no_test_rows(tmp_path, monkeypatch):
    import tripost.cli as cli
    import tripost.cli._io as cli_io

    data = write_jsonl(tmp_path / "p.jsonl", arithmetic_rows())
    taken: list = []

    def spy(*args, **kwargs):
        taken.extend(select_problems(*args, **kwargs))
        return list(taken)

    class NoModel(Exception):
        pass

    def no_model(*args, **kwargs):
        raise NoModel

    # The verbs choose problems and open the student through tripost/cli/_io.py.
    monkeypatch.setattr(cli_io, "select_problems", spy)
    monkeypatch.setattr(cli_io, "load_student", no_model)
    with pytest.raises(NoModel):  # the problems are chosen before the model loads
        cli.main(["collect", "--task", "arithmetic", "--data", str(data), "--n", "50", "--out", str(tmp_path / "run")])
    assert taken and all(p.split == "train" for p in taken)
    assert [p.id for p in taken] == ["r1", "r3", "r8"]  # --subset seen (the default): no test row, no unseen one


def test_generated_selection_is_family_by_family_then_the_salted_shuffle():
    families = ["arithmetic", "word_sorting"]
    plain = select_problems(families, split="train", subsets=("seen", "unseen"), n=2, seed=4)
    expected = [p for f in families for s in ("seen", "unseen") for p in sample_problems(get_task(f), split="train", subset=s, n=2, seed=4)]
    assert plain == expected
    shuffled = select_problems(families, split="train", subsets=("seen", "unseen"), n=2, seed=4, shuffle_salt="train")
    random.Random("train|4").shuffle(expected)
    assert shuffled == expected


def test_family_without_a_generator_needs_data():
    with pytest.raises(TripostError, match="no problem generator: pass its problems with --data"):
        select_problems(["qa"], split="test", n=3)
    with pytest.raises(TripostError, match="unknown task family"):
        select_problems(["nosuch"], split="test", n=3)


# --------------------------------------------------------------- held out ---


def test_held_out_selection_refuses_the_train_split_unless_allowed(tmp_path):
    with pytest.raises(TripostError, match="refusing to evaluate on the train split"):
        select_problems(["arithmetic"], split="train", n=2, held_out=True)
    assert {p.split for p in select_problems(["arithmetic"], split="train", n=2, held_out=True, allow_train=True)} == {"train"}
    assert {p.split for p in select_problems(["arithmetic"], split="test", n=2, held_out=True)} == {"test"}


def test_check_held_out_refuses_training_problems_and_is_the_evaluate_one():
    import tripost.evaluate
    import tripost.gap
    import tripost.sharpen

    train = sample_problems(get_task("arithmetic"), split="train", n=2, seed=1)
    test = sample_problems(get_task("arithmetic"), split="test", n=2, seed=1)
    with pytest.raises(TripostError, match=r"refusing to evaluate on 1 problem\(s\) of the train split"):
        check_held_out([*test, train[0]])
    check_held_out(test)
    check_held_out(train, allow_train=True)
    assert tripost.evaluate.check_held_out is check_held_out
    for module in (tripost.gap, tripost.sharpen):
        assert "from tripost.tasks import check_held_out" in Path(module.__file__).read_text()


# ---------------------------------------------------------------- the ids ---


@pytest.mark.parametrize("family", GENERATED + ["qa"])
def test_from_record_ids_follow_one_rule(family, tmp_path):
    task = get_task(family)
    if family == "qa":
        record = {"question": "What colour is the sky?", "answer": "blue"}
    else:
        p = sample_problems(task, split="test", n=1, seed=3)[0]
        record = {"question": p.question, "answer": p.answer}
    question = task.from_record(record).question
    assert task.from_record(record).id == problem_id(family, question)
    assert task.from_record({**record, "id": ""}).id == problem_id(family, question)
    assert task.from_record({**record, "id": "x1"}).id == "x1"
    assert task.from_record({**record, "id": 7}).id == "7"
    # A file, `tasks check` and `teach` give a record the same id.
    data = write_jsonl(tmp_path / "one.jsonl", [record])
    assert load_problems(data, family)[0].id == problem_id(family, question)
    assert problem_from_record(family, record, "x.jsonl", 1).id == problem_id(family, question)


@pytest.mark.parametrize("family", GENERATED)
def test_from_record_split_and_subset_follow_one_rule(family):
    task = get_task(family)
    p = sample_problems(task, split="val", subset="unseen", n=1, seed=2)[0]
    record = {"question": p.question, "answer": p.answer}
    q = task.from_record(record)
    assert (q.split, q.subset) == ("val", "seen")  # the question's own split; seen by default
    q = task.from_record({**record, "split": "test", "subset": "unseen"})
    assert (q.split, q.subset) == ("test", "unseen")


# ------------------------------------------------------- the shared base ---


@pytest.mark.parametrize("family", GENERATED)
def test_each_generated_family_is_on_the_shared_base(family):
    task = get_task(family)
    assert isinstance(task, GeneratedFamily)
    cls = type(task)
    assert cls.levels is GeneratedFamily.levels and cls.from_record is GeneratedFamily.from_record


@pytest.mark.parametrize("family", GENERATED)
def test_corrupt_comes_from_the_base(family, monkeypatch):
    task = get_task(family)
    p = sample_problems(task, split="train", n=1, seed=5)[0]
    calls: list[int] = []
    base = GeneratedFamily.corrupt

    def counted(self, problem, step, rng):
        calls.append(step)
        return base(self, problem, step, rng)

    monkeypatch.setattr(GeneratedFamily, "corrupt", counted)
    bad = task.corrupt(p, 1, random.Random(0))
    assert calls == [1] and task.check_steps(p, bad).first_error_step == 1
    with pytest.raises(TripostError, match=f"{family}: step 99 is out of range"):
        task.corrupt(p, 99, random.Random(0))


@pytest.mark.parametrize("family", GENERATED)
def test_the_crash_guard_is_the_base_one(family, monkeypatch):
    task = get_task(family)
    p = sample_problems(task, split="train", n=1, seed=6)[0]

    def crash(self, problem, rationale):
        raise RuntimeError("a checker bug")

    monkeypatch.setattr(type(task), "_check_steps", crash)
    assert task.check_steps(p, p.rationale) == StepCheck(False, 1, "", FORM_REASON, 0, None)


def test_the_form_reason_is_written_once():
    root = Path(GeneratedFamily.__module__.replace(".", "/")).parent
    package = Path(__file__).resolve().parent.parent / root
    holders = [f.relative_to(package).as_posix() for f in package.rglob("*.py") if FORM_REASON in f.read_text()]
    assert holders == ["family.py"]


def test_every_family_is_listed():
    assert set(GENERATED) | {"qa"} == set(FAMILIES)
