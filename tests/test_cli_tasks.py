"""`tripost tasks` and `tripost teach` through the real command line."""

import json
import os
import random
import subprocess
import sys

import pytest

from tripost.tasks import get_task, sample_problems

GENERATED = ["arithmetic", "word_sorting", "date_understanding", "logical_deduction"]


def tripost(*args, stdin=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "tripost", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)


def test_tasks_list():
    r = tripost("tasks", "list", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert {row["family"] for row in rows} == set(GENERATED) | {"qa"}
    for row in rows:
        if row["generated"]:
            for preset in ("small", "paper"):
                assert row["levels"][preset]["seen"] and row["levels"][preset]["unseen"]


@pytest.mark.parametrize("family", GENERATED)
def test_sample_then_check_round_trip(family):
    r = tripost("tasks", "sample", family, "--n", "6", "--split", "val", "--subset", "unseen", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(records) == 6
    for rec in records:
        assert {"id", "question", "answer", "rationale", "difficulty", "subset"} <= rec.keys()
        assert rec["subset"] == "unseen" and rec["split"] == "val"
    # Same seed, same problems.
    again = tripost("tasks", "sample", family, "--n", "6", "--split", "val", "--subset", "unseen", "--seed", "3", "--json")
    assert again.stdout == r.stdout
    checked = tripost("tasks", "check", family, stdin=r.stdout)
    assert checked.returncode == 0, checked.stderr
    for line in checked.stdout.splitlines():
        out = json.loads(line)
        assert out["correct"] is True and out["first_error_step"] is None


@pytest.mark.parametrize("family", GENERATED)
def test_check_and_teach_find_and_fix_a_corrupted_step(family):
    task = get_task(family)
    p = sample_problems(task, split="test", n=1, seed=11)[0]
    n = task.check_steps(p, p.rationale).n_steps
    k = random.Random(5).randint(1, n + 1)
    bad = task.corrupt(p, k, random.Random(5))
    rec = {**p.to_dict(), "rationale": bad, "attempt": bad}
    checked = tripost("tasks", "check", family, stdin=json.dumps(rec) + "\n")
    assert checked.returncode == 0, checked.stderr
    out = json.loads(checked.stdout)
    assert out["first_error_step"] == k and out["segment"] and out["reason"]
    taught = tripost("teach", "--teacher", "scripted", "--task", family, stdin=json.dumps(rec) + "\n")
    assert taught.returncode == 0, taught.stderr
    t = json.loads(taught.stdout)
    assert t["first_error_step"] == k and t["improved"]
    assert task.check_steps(p, t["improved"]).all_correct
    assert t["calls"][0]["backend"] == "scripted"


def test_teach_on_external_arithmetic_problem(tmp_path):
    src = tmp_path / "ext.jsonl"
    src.write_text(json.dumps({"question": "((1 + 2) * (3 - 5)) =", "answer": "-6", "attempt": "(1) I think it is 6.\n(Final response) So the answer is 6."}) + "\n")
    r = tripost("teach", "--teacher", "scripted", "--task", "arithmetic", str(src))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["correct"] is False and "-6" in out["improved"]


BAD_INPUTS = [
    ("tasks", "check", "arithmetic", "{oops\n", "<stdin>:1: not valid JSON"),
    ("tasks", "check", "arithmetic", '{"question": "(1 + 2) ="}\n', "<stdin>:1: missing field 'rationale'"),
    ("tasks", "check", "nosuchfamily", '{"question": "x", "rationale": "y"}\n', "unknown task family"),
    ("tasks", "check", "arithmetic", '{"question": "(1 + 2) =", "rationale": "(1) 3"}\n', "<stdin>:1: missing field 'answer'"),
    ("teach", "--teacher", "scripted", "--task", "arithmetic", '\n{"question": "(1 + 2) =", "answer": "3"}\n', "<stdin>:2: missing field 'attempt'"),
    ("teach", "--teacher", "nosuch:x", "--task", "arithmetic", "", "unknown teacher spec"),
    ("teach", "--teacher", "scripted", "--task", "arithmetic", '{"question": "hello", "answer": "3", "attempt": "x"}\n', "<stdin>:1:"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[-1][:30] for c in BAD_INPUTS])
def test_bad_input_is_one_clear_line(case):
    *args, stdin, needle = case
    r = tripost(*args, stdin=stdin)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr


def test_missing_file_and_bad_flags_are_one_line(tmp_path):
    for args in (("tasks", "check", "arithmetic", str(tmp_path / "nope.jsonl")), ("tasks", "sample", "arithmetic", "--n", "0"), ("tasks", "sample", "arithmetic", "--split", "dev")):
        r = tripost(*args)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
