"""`tripost tasks import`: BIG-bench / BIG-Bench-Hard task files as --data files.

The examples here are written for the test in the benchmarks' file format
(the benchmark files themselves are not shipped and carry a canary asking
that they stay out of training corpora)."""

import json
import os
import subprocess
import sys

import pytest

from tripost.errors import InputError
from tripost.tasks import load_problems, select_problems
from tripost.tasks.bigbench import family_of, read_bigbench


def tripost(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "tripost", *args], capture_output=True, text=True, env=env, timeout=120)


def task_file(path, examples):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"canary": "not for training", "examples": examples}))
    return path


BBH_WORDS = [{"input": "Sort the following words alphabetically: List: pear apple fig", "target": "apple fig pear"},
             {"input": "Sort the following words alphabetically: List: zebra yak", "target": ["yak zebra"]}]
BBH_ARITH = [{"input": "((-1 + 2 * 3) - (4 - -5 * 2)) =", "target": "-9"}]


def test_bbh_file_round_trips_into_held_out_test_problems(tmp_path):
    src = task_file(tmp_path / "bbh" / "word_sorting.json", BBH_WORDS)
    out = tmp_path / "new" / "ws.jsonl"  # its folder is made
    r = tripost("tasks", "import", str(src), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "wrote 2 word_sorting problems" in r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["bigbench-word_sorting-1", "bigbench-word_sorting-2"]
    assert all(r["split"] == "test" and r["subset"] == "seen" for r in rows)
    assert rows[1]["answer"] == "yak zebra"  # the first of several targets
    # The file is what `--data` reads: every row a held-out test problem, none in train.
    test = select_problems(["word_sorting"], split="test", subsets=("seen",), n=10, preset="small", seed=0, data=str(out), held_out=True)
    assert sorted(p.id for p in test) == ["bigbench-word_sorting-1", "bigbench-word_sorting-2"]
    assert test[0].rationale  # the family reads the question fully: a gold rationale, a scripted teacher
    assert {p.split for p in load_problems(out, "word_sorting")} == {"test"}


def test_target_scores_become_bbh_options(tmp_path):
    src = task_file(tmp_path / "date_understanding" / "task.json", [
        {"input": "Today is 12/24/1937. What is the date tomorrow in MM/DD/YYYY?",
         "target_scores": {"12/11/1937": 0, "12/25/1937": 1, "01/04/1938": 0}}])
    assert family_of(src) == "date_understanding"  # BIG-bench's own layout: the folder names the task
    (row,) = read_bigbench(src)
    assert row["question"].endswith("\nOptions:\n(A) 12/11/1937\n(B) 12/25/1937\n(C) 01/04/1938")
    assert row["answer"] == "(B)"


def test_any_other_task_reads_as_qa(tmp_path):
    src = task_file(tmp_path / "boolean_expressions.json", [{"input": "not ( True ) and ( True ) is", "target": "False"}])
    (row,) = read_bigbench(src, "qa")
    assert row["answer"] == "False" and row["id"] == "bigbench-boolean_expressions-1"


def test_family_from_name_or_flag(tmp_path):
    src = task_file(tmp_path / "multistep_arithmetic_two.json", BBH_ARITH)
    assert family_of(src) == "arithmetic"
    other = task_file(tmp_path / "mine.json", BBH_ARITH)
    with pytest.raises(InputError, match="no task family reads BIG-bench task 'mine'; known: word_sorting"):
        family_of(other)
    assert read_bigbench(other, "arithmetic")[0]["answer"] == "-9"


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"examples": []}), "no 'examples' list"),
    (json.dumps([1, 2]), "no 'examples' list"),
    (json.dumps({"examples": [{"input": "x"}]}), "example 1: an example needs a string 'target'"),
    (json.dumps({"examples": BBH_ARITH + [{"input": "what is two plus two?", "target": "4"}]}), "example 2: "),
])
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    src = tmp_path / "multistep_arithmetic.json"
    src.write_text(content)
    out = tmp_path / "out.jsonl"
    r = tripost("tasks", "import", str(src), "--out", str(out))
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()  # nothing half written


def test_existing_out_needs_force(tmp_path):
    src = task_file(tmp_path / "word_sorting.json", BBH_WORDS)
    out = tmp_path / "ws.jsonl"
    out.write_text("keep me\n")
    r = tripost("tasks", "import", str(src), "--out", str(out))
    assert r.returncode == 2 and "exists; pass --force" in r.stderr
    assert out.read_text() == "keep me\n"
    assert tripost("tasks", "import", str(src), "--out", str(out), "--force").returncode == 0
    assert len(out.read_text().splitlines()) == 2
    missing = tripost("tasks", "import", str(tmp_path / "nope" / "word_sorting.json"), "--out", str(tmp_path / "x.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
