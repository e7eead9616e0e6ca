"""Interactive trajectory editing and crash-safe collection."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tripost.sources.teacher import CollectConfig, collect, edit_trajectory
from tripost.format import Feedback
from tripost.log import read_log
from tripost.tasks import get_task, sample_problems
from tripost.teachers.base import FeedbackReply, ImproveReply
from tripost.teachers.scripted import ScriptedTeacher

TASK = get_task("arithmetic")


@pytest.fixture(scope="module")
def problems():
    return sample_problems(TASK, split="train", n=12, seed=5)


def n_steps(p):
    return TASK.check_steps(p, p.rationale).n_steps


def test_correct_attempt_is_direct(problems):
    p = problems[0]
    turns, kind, stop, calls = edit_trajectory(p, p.rationale, ScriptedTeacher(), max_edits=5)
    assert kind == "direct" and stop == "correct" and len(turns) == 1
    assert "also correct" in turns[0]["feedback"] and len(calls) == 1


def test_wrong_attempt_is_improved_keeping_earlier_steps(problems):
    for p in problems:
        k = n_steps(p)  # the last numbered step
        bad = TASK.corrupt(p, k, random.Random(0))
        turns, kind, stop, _ = edit_trajectory(p, bad, ScriptedTeacher(), max_edits=5)
        assert kind == "improvement" and stop == "correct"
        assert turns[0]["error_step"] == k and turns[-1]["error_step"] is None
        assert turns[1]["rationale"].startswith(bad[: bad.index(f"({k}) ")])


def test_student_feedback_is_kept_while_it_agrees(problems):
    p = problems[1]
    k = n_steps(p)
    bad = TASK.corrupt(p, k, random.Random(1))
    teacher = ScriptedTeacher()
    right_fb = teacher.feedback(p, bad).text
    # The student's own feedback is right and its own update is right: all kept.
    own = f"{bad}\nFeedback: {right_fb}\nUpdated Answer: {p.rationale}\nFeedback: {teacher.feedback(p, p.rationale).text}"
    turns, kind, stop, _ = edit_trajectory(p, own, teacher, max_edits=5)
    assert kind == "improvement" and [t["source"] for t in turns] == ["student", "student"]
    assert turns[0]["feedback"] == right_fb
    # The student's own feedback is wrong ("all correct" on a wrong attempt):
    # editing starts there, with the teacher's feedback in its place.
    wrong = f"{bad}\nFeedback: Step (1) to step ({k}) are correct. The final response is also correct."
    turns, kind, _, _ = edit_trajectory(p, wrong, teacher, max_edits=5)
    assert kind == "improvement" and turns[0]["feedback"] == right_fb and turns[1]["source"] == "teacher"


class StuckTeacher(ScriptedTeacher):
    """A teacher whose improvement changes nothing: no progress."""

    def improve(self, problem, attempt, feedback: Feedback) -> ImproveReply:
        return ImproveReply(rationale=attempt)


class RejectingTeacher(ScriptedTeacher):
    def feedback(self, problem, attempt) -> FeedbackReply:
        return FeedbackReply(feedback=None, text="garbage", rejected="unparseable feedback")


def test_no_progress_and_rejection_end_as_failed(problems):
    p = problems[2]
    bad = TASK.corrupt(p, 1, random.Random(2))
    _, kind, stop, _ = edit_trajectory(p, bad, StuckTeacher(), max_edits=5)
    assert (kind, stop) == ("failed", "no progress")
    _, kind, stop, _ = edit_trajectory(p, bad, RejectingTeacher(), max_edits=5)
    assert kind == "failed" and "unparseable feedback" in stop
    _, kind, stop, _ = edit_trajectory(p, bad, ScriptedTeacher(), max_edits=0)
    assert (kind, stop) == ("failed", "max edits")


def corrupting_sampler(problems_by_id):
    """An attempt source built from the task itself: every other attempt wrong."""

    def sampler(batch, n, seed):
        out = []
        for p in batch:
            rng = random.Random(f"{p.id}|{seed}")
            row = []
            for s in range(n):
                if rng.random() < 0.5:
                    row.append(p.rationale)
                else:
                    row.append(TASK.corrupt(p, rng.randint(1, n_steps(p) + 1), rng))
            out.append(row)
        return out

    return sampler


def test_collect_resumes_without_duplicates(tmp_path, problems):
    log = tmp_path / "log.jsonl"
    cfg = CollectConfig(samples_per_problem=2, batch_size=5, seed=3)
    full = collect(problems, corrupting_sampler(problems), ScriptedTeacher(), tmp_path / "full.jsonl", cfg, progress=False)
    assert full.records_written == 24 and full.usable == 24
    # First half, then a resumed run over everything.
    collect(problems[:6], corrupting_sampler(problems), ScriptedTeacher(), log, cfg, progress=False)
    before = log.read_text()
    again = collect(problems, corrupting_sampler(problems), ScriptedTeacher(), log, cfg, progress=False)
    assert log.read_text().startswith(before)
    assert again.records_skipped == 12 and again.records_written == 12
    keys = [r.key for r in read_log(log)]
    assert len(keys) == len(set(keys)) == 24
    assert sorted(keys) == sorted(r.key for r in read_log(tmp_path / "full.jsonl"))


def test_target_usable_stops_early_and_says_so(tmp_path, problems):
    res = collect(problems, corrupting_sampler(problems), StuckTeacher(), tmp_path / "l.jsonl",
                  CollectConfig(batch_size=4, target_usable=100, max_passes=2), progress=False)
    assert res.passes == 2 and res.stopped_early and "target was 100" in res.stopped_early


# ------------------------------------------------------- real student, SIGKILL ---


def collect_cmd(model_dir, out, n=40):
    return [sys.executable, "-m", "tripost", "collect", "--student", f"hf:{model_dir}", "--task", "arithmetic",
            "--n", str(n), "--samples", "1", "--problems-per-call", "2", "--max-new-tokens", "32", "--teacher-concurrency", "2", "--out", str(out)]


def test_sigkill_mid_collection_then_resume(tmp_path, tiny_model_dir):
    tiny_student = tiny_model_dir
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRIPOST_HOME": str(tmp_path / "home")}
    ref = subprocess.run(collect_cmd(tiny_student, tmp_path / "ref"), env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    ref_keys = sorted(r.key for r in read_log(tmp_path / "ref" / "log.jsonl"))
    assert len(ref_keys) == 40

    run = tmp_path / "run"
    log = run / "log.jsonl"
    proc = subprocess.Popen(collect_cmd(tiny_student, run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "collection finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = log.read_bytes()
    complete = written[: written.rfind(b"\n") + 1]
    n_before = complete.count(b"\n")
    assert 4 <= n_before < 40

    again = subprocess.run(collect_cmd(tiny_student, run), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert log.read_bytes().startswith(complete)  # everything written before the kill is intact
    records = list(read_log(log))
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)) == 40  # none duplicated, none missing
    assert sorted(keys) == ref_keys  # the same total as an uninterrupted run
    summary = json.loads((run / "collect.json").read_text())
    assert summary["records_skipped"] >= n_before  # finished problems were not redone


def test_cli_json_stdout_stays_json_when_stopping_early(tmp_path, tiny_model_dir, capsys):
    # --json promises machine-readable stdout; the "stopped early" note goes to stderr.
    import argparse

    from tripost.cli import collect_cmd

    parser = argparse.ArgumentParser()
    collect_cmd.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["collect", "--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "2",
                              "--max-new-tokens", "8", "--target-usable", "1000", "--passes", "1",
                              "--out", str(tmp_path / "run"), "--json"])
    assert args.handler(args) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["stopped_early"] and "note: " + summary["stopped_early"] in err
