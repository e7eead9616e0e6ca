"""A `--data` file's rows without a `split` field are split by a hash of their
question, like generated problems (issue 32, "test problems reach training"):
they used to take whatever split a command asked for, so `tasks sample
--split train` and `--split test` gave the same rows and `tripost run
tasks.data=FILE` trained on the problems it then evaluated."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tripost.errors import InputError
from tripost.tasks import select_problems
from tripost.tasks.base import SPLITS, split_of
from tripost.tasks.external import load_problems


def qa_rows(n: int = 16) -> list[dict]:
    """`n` qa rows with no `split` field; each carries a gold rationale, so
    even a student that never answers right leaves training data in the buffer.
    Of the first 16 questions, 11 hash to train, 3 to val and 2 to test."""
    return [{"question": f"What is {i} + {i + 3}?", "answer": str(2 * i + 3),
             "rationale": f"(1) {i} + {i + 3} = {2 * i + 3}.\n(Final response) So the answer is {2 * i + 3}."}
            for i in range(1, n + 1)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tasks_sample(capsys, data: Path, split: str, n: int) -> list[dict]:
    import tripost.cli as cli

    rc = cli.main(["tasks", "sample", "qa", "--data", str(data), "--split", split, "--n", str(n), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    return [json.loads(line) for line in out.splitlines()]


def test_tasks_sample_splits_of_a_split_less_file_are_disjoint_and_cover_it(tmp_path, capsys):
    rows = qa_rows()
    data = write_jsonl(tmp_path / "good.jsonl", rows)
    by_split = {s: tasks_sample(capsys, data, s, 100) for s in SPLITS}
    assert all(by_split.values()), {s: len(v) for s, v in by_split.items()}  # the file has rows of every split
    ids = {s: [p["id"] for p in ps] for s, ps in by_split.items()}
    # Pairwise disjoint, and together every row of the file exactly once.
    assert not set(ids["train"]) & set(ids["test"])
    assert not set(ids["train"]) & set(ids["val"]) and not set(ids["val"]) & set(ids["test"])
    assert sorted(i for s in SPLITS for i in ids[s]) == sorted(p.id for p in load_problems(data, "qa"))
    # Each row's split is its question's, as for a generated problem.
    for s, ps in by_split.items():
        assert all(p["split"] == s == split_of(p["question"]) for p in ps)
    # The reproduction: --split train --n 3 and --split test --n 3 share no id.
    train3, test3 = tasks_sample(capsys, data, "train", 3), tasks_sample(capsys, data, "test", 3)
    assert len(train3) == 3 and test3 and not {p["id"] for p in train3} & {p["id"] for p in test3}
    # What `tripost eval --data` measures (held out, --split test): the file's test rows only.
    held_out = select_problems(["qa"], split="test", n=100, data=data, held_out=True)
    assert [p.id for p in held_out] == ids["test"]


def test_a_rows_own_split_wins_and_a_bad_one_is_one_line(tmp_path):
    rows = qa_rows(4)
    assert split_of(rows[0]["question"]) == "train"
    data = write_jsonl(tmp_path / "marked.jsonl", [{**rows[0], "split": "test"}, *rows[1:]])
    assert [p.split for p in load_problems(data, "qa")] == ["test"] + [split_of(r["question"]) for r in rows[1:]]
    bad = write_jsonl(tmp_path / "bad.jsonl", [rows[0], {**rows[1], "split": "dev"}])
    with pytest.raises(InputError) as e:
        load_problems(bad, "qa")
    assert str(e.value) == f"{bad}:2: split must be one of train, val, test, got 'dev'"


def test_run_on_a_data_file_never_trains_on_its_evaluation_problems(tmp_path, tiny_model_dir):
    """The issue's reproduction: `tripost run --out leak 'tasks.families=["qa"]'
    'tasks.eval_subsets=["seen"]' tasks.data=good.jsonl collect.source=rejection`,
    sized down (tiny student, 4 training problems, 2 evaluated, no gap probe)."""
    write_jsonl(tmp_path / "good.jsonl", qa_rows())
    out = tmp_path / "leak"
    cmd = [sys.executable, "-m", "tripost", "run", "--out", str(out), "--no-progress", f"student.spec=hf:{tiny_model_dir}",
           'tasks.families=["qa"]', 'tasks.eval_subsets=["seen"]', "tasks.data=good.jsonl", "collect.source=rejection",
           "tasks.n_train=4", "tasks.n_eval=2", "loop.iteration0=false", "gap.enabled=false", "collect.samples_per_problem=1",
           "collect.max_new_tokens=8", "eval.max_new_tokens=8", "eval.max_turns=0", "eval.n_bootstrap=20", "train.epochs=1",
           "train.precision=fp32",
           # Gold examples only: the tiny student is never right, and gold comes as
           # many as the right answers (tripost.buffer.rebalance), so without this
           # the buffer would be empty and the leak check below would see nothing.
           "buffer.ratio=[0.0, 0.0, 1.0]"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRIPOST_HOME": str(tmp_path / "home")}
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]

    evaluated = [json.loads(line)["question"] for f in out.glob("it*/eval/eval.transcripts.jsonl") for line in f.read_text().splitlines()]
    trained = [json.loads(line)["problem"]["question"] for log in out.glob("it*/collect/log.jsonl") for line in log.read_text().splitlines()]
    assert evaluated and trained
    assert not set(evaluated) & set(trained)
    # No evaluated question anywhere in what training reads: the logs, the buffer and its dataset.
    files = [f for d in ("collect", "buffer") for f in out.glob(f"it*/{d}/**/*") if f.is_file()]
    assert any(f.parent.name == "dataset" for f in files), files
    blobs = {f: f.read_bytes() for f in files}
    for q in evaluated:
        assert not [f for f, b in blobs.items() if q.encode() in b], q
    # The search would see a leak: the training questions are in the buffer's dataset.
    dataset = b"".join(b for f, b in blobs.items() if f.parent.name == "dataset")
    assert all(q.encode() in dataset for q in trained)
    # Each side is its questions' hash split, as for generated problems.
    assert {split_of(q) for q in evaluated} == {"test"} and {split_of(q) for q in trained} == {"train"}
