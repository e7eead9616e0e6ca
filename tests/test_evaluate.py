"""Evaluation: the test-time self-improvement stop parser, the batched runner,
exact metrics, bootstrap intervals, one end-to-end run on the tiny model, and
the `tripost eval` command's errors."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tripost.cli as cli
from tripost.errors import TripostError
from tripost.evaluate import (
    STOP_REASONS,
    EvalConfig,
    EvalRecord,
    bootstrap_interval,
    compute_metrics,
    decide_stop,
    evaluate,
    group_metrics,
    loops,
    plain_prompt,
    run_self_improvement,
    run_self_improvement_batch,
    score,
)
from tripost.format import Feedback, parse_rationale, render_rationale
from tripost.tasks import get_task, sample_problems
from tripost.tasks.base import Problem

WRONG = "(1) 2 + 2 = 5.\n(2) 5 is the sum.\n(Final response) So the answer is 5."
RIGHT = "(1) 2 + 2 = 4.\n(2) 4 is the sum.\n(Final response) So the answer is 4."
OTHER = "(1) 2 + 2 = 3.\n(2) 3 is the sum.\n(Final response) So the answer is 3."
FB_STEP1 = 'In step (1) the part "2 + 2 = 5" is incorrect. This is because 2 + 2 = 4.'
FB_OK = "Step (1) to step (2) are correct. The final response is also correct."


def transcript(*parts: str) -> str:
    """attempt, feedback, update, feedback, ... -> one transcript text."""
    out = [parts[0]]
    for i, p in enumerate(parts[1:]):
        out.append(("Feedback: " if i % 2 == 0 else "Updated Answer: ") + p)
    return "\n".join(out)


# ---------------------------------------------------------------- decide_stop ---


def test_correct_stop_on_the_students_own_feedback():
    assert decide_stop(transcript(RIGHT, FB_OK)) == (True, "correct", "the feedback on the attempt says the final response is correct")
    assert decide_stop(transcript(WRONG, FB_STEP1, RIGHT, FB_OK)).reason == "correct"
    # The stop is the student's claim, not the truth: a wrong answer it calls correct stops too.
    assert decide_stop(transcript(WRONG, FB_OK)).reason == "correct"


def test_no_progress_stops():
    # The update equals the rationale it updates (whitespace does not count).
    d = decide_stop(transcript(WRONG, FB_STEP1, WRONG.replace("\n", "\n  ") + "  "))
    assert d.stop and d.reason == "no progress" and "equals" in d.detail
    # Feedback that is not in TriPosT's form.
    assert decide_stop(transcript(WRONG, "I think something is off.")).reason == "no progress"
    assert decide_stop(transcript(WRONG, "")).reason == "no progress"
    # Feedback naming a step the rationale does not have (2 steps + final = 3).
    d = decide_stop(transcript(WRONG, 'In step (7) the part "x" is incorrect.'))
    assert d.reason == "no progress" and "step 7" in d.detail
    # An empty update.
    assert decide_stop(transcript(WRONG, FB_STEP1, "")).reason == "no progress"


def test_repetition_stops():
    # Cycling back to an earlier rationale (not the previous one).
    d = decide_stop(transcript(WRONG, FB_STEP1, OTHER, 'In step (1) the part "2 + 2 = 3" is incorrect.', WRONG), max_turns=5)
    assert d.reason == "repetition" and "repeats the attempt" in d.detail
    # A looping attempt: the same line again and again.
    assert decide_stop("(1) 2 + 2 = 5.\n(1) 2 + 2 = 5.\n(1) 2 + 2 = 5.").reason == "repetition"
    # A block repeated at the end of the feedback (a greedy loop hitting the token limit).
    d = decide_stop(transcript(WRONG, FB_STEP1 + " and so on" * 5))
    assert d.reason == "repetition" and "feedback" in d.detail


def test_turn_limit_and_unfinished_transcripts():
    two_updates = transcript(WRONG, FB_STEP1, OTHER, 'In step (1) the part "2 + 2 = 3" is incorrect.', RIGHT)
    assert decide_stop(two_updates, max_turns=2) == (True, "turn limit", "2 update(s) written, limit 2")
    assert decide_stop(two_updates, max_turns=3).stop is False  # feedback on update 2 comes next
    assert decide_stop(WRONG, max_turns=0).reason == "turn limit"  # first attempt only
    assert decide_stop(WRONG, max_turns=1).stop is False
    assert decide_stop(transcript(WRONG, FB_STEP1), max_turns=1).stop is False  # an update comes next
    assert decide_stop("").stop is False
    with pytest.raises(TripostError):
        decide_stop(WRONG, max_turns=-1)


def test_first_rule_wins_in_text_order():
    # The student said "correct" on update 1; whatever follows is not read.
    text = transcript(WRONG, FB_STEP1, RIGHT, FB_OK, WRONG, "garbage")
    assert decide_stop(text, max_turns=1).reason == "correct"


def test_loops_does_not_fire_on_real_rationales():
    long = render_rationale([f"Let's compute item {i}: {i} * 3 = {3 * i}." for i in range(1, 12)], "33")
    assert not loops(long) and not loops(WRONG) and not loops(FB_STEP1)
    assert loops("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") and loops("x" + ", 1" * 12)
    assert not loops("1111")  # too short to call a loop


@pytest.mark.parametrize("family", ["arithmetic", "word_sorting", "date_understanding", "logical_deduction"])
def test_gold_rationales_never_look_like_loops(family):
    task = get_task(family)
    for subset in ("seen", "unseen"):
        for p in sample_problems(task, split="test", subset=subset, preset="paper", n=8, seed=5):
            n = parse_rationale(p.rationale).n_steps
            assert not loops(p.rationale), p.rationale
            assert decide_stop(transcript(p.rationale, Feedback(n, None).render())).reason == "correct"


steps_st = st.lists(st.text(alphabet="abcdefgh +-=0123456789", min_size=1, max_size=20).map(str.strip).filter(bool), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(steps=steps_st, answer=st.integers(-99, 99), data=st.data())
def test_rendered_feedback_decides_as_it_says(steps, answer, data):
    rationale = render_rationale(steps, str(answer))
    n = len(steps)
    assert decide_stop(transcript(rationale, Feedback(n, None).render())).reason == "correct"
    k = data.draw(st.integers(1, n + 1))
    fb = Feedback(n, k, segment="x", reason="Because.").render()
    assert decide_stop(transcript(rationale, fb), max_turns=1).stop is False


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.integers(0, 4))
def test_decide_stop_is_total_and_pure(text, k):
    d = decide_stop(text, k)
    assert d == decide_stop(text, k)
    assert (d.reason in STOP_REASONS) if d.stop else d.reason is None


# ------------------------------------------------------------------- runner ---


def problem(pid: str, answer: str = "4", subset: str = "seen", difficulty: str = "d1", family: str = "qa", split: str = "test") -> Problem:
    return Problem(id=pid, family=family, question=f"What is 2 + 2? [id:{pid}]", answer=answer, rationale="", difficulty=difficulty, subset=subset, split=split)


@dataclass
class Scripted:
    """A fake student: per problem, the pieces it writes, in order (counted
    per problem, so it serves either re-prompting mode). Records every call."""

    pieces: dict[str, list[str]]
    calls: list[tuple[list[str], tuple[str, ...]]]
    done: dict[str, int] = field(default_factory=dict)

    def __call__(self, prefixes, stop):
        self.calls.append((list(prefixes), tuple(stop)))
        out = []
        for p in prefixes:
            pid = p.split("[id:")[1].split("]")[0]  # the id in the question
            k = self.done.get(pid, 0)
            self.done[pid] = k + 1
            out.append(self.pieces[pid][k])
        return out


def test_runner_full_cycle_and_prefixes():
    fake = Scripted({"a": [WRONG + "\n", " " + FB_STEP1 + "\n", " " + RIGHT + "\n", " " + FB_OK]}, [])
    t = run_self_improvement(problem("a"), fake, max_turns=3, turns="whole")
    assert t.stop_reason == "correct" and t.n_updates == 1 and t.revised
    assert t.text == transcript(WRONG, FB_STEP1, RIGHT, FB_OK)
    assert t.first_rationale == WRONG and t.final_rationale == RIGHT
    # The student continues after markers we wrote; it is told to stop at the next marker.
    assert [c[0][0][len(t.prompt):] for c in fake.calls] == ["", WRONG + "\nFeedback:", transcript(WRONG, FB_STEP1) + "\nUpdated Answer:", transcript(WRONG, FB_STEP1, RIGHT) + "\nFeedback:"]
    assert all(c[1] == ("Feedback:", "Updated Answer:") for c in fake.calls)


def test_runner_cuts_at_stop_strings_and_never_reads_the_gold_answer():
    # A generator that ignores stop strings and runs on: the runner cuts at the first marker.
    rambling = WRONG + "\nFeedback: " + FB_OK + "\nUpdated Answer: " + RIGHT
    fake = Scripted({"a": [rambling, " " + FB_OK + "\nUpdated Answer: junk"]}, [])
    t = run_self_improvement(problem("a"), fake)
    assert t.text == transcript(WRONG, FB_OK) and t.stop_reason == "correct"
    # No oracle: the gold answer changes nothing in what the student does.
    fake2 = Scripted({"a": [rambling, " " + FB_OK]}, [])
    assert run_self_improvement(problem("a", answer="5"), fake2).text == t.text


def test_turn_limit_in_the_runner():
    # A student that always blames step 1 and writes a new rationale each time.
    upd = [f"(1) 2 + 2 = {v}.\n(Final response) So the answer is {v}." for v in (6, 7, 8, 9)]
    fb = ' In step (1) the part "x" is incorrect.'
    fake = Scripted({"a": [WRONG, fb, upd[0], fb, upd[1], fb, upd[2], fb, upd[3]]}, [])
    t = run_self_improvement(problem("a"), fake, max_turns=2)
    assert t.stop_reason == "turn limit" and t.n_updates == 2 and len(fake.calls) == 5
    assert t.final_rationale == upd[1]
    fake0 = Scripted({"a": [WRONG]}, [])
    t0 = run_self_improvement(problem("a"), fake0, max_turns=0)
    assert t0.stop_reason == "turn limit" and t0.n_updates == 0 and len(fake0.calls) == 1


def test_batched_rounds_equal_one_by_one():
    fb2 = ' In step (1) the part "2 + 2 = 3" is incorrect.'
    script = {
        "a": [WRONG, " " + FB_STEP1, RIGHT, " " + FB_OK],  # fixes itself
        "b": [RIGHT, " " + FB_OK],  # right at once
        "c": [WRONG, " " + FB_STEP1, WRONG],  # no progress
        "d": [WRONG, " " + FB_STEP1, OTHER, fb2, WRONG],  # cycles back: repetition
        "e": [WRONG, " not feedback at all"],  # unparseable feedback
    }
    problems = [problem(k) for k in script]
    fake = Scripted(script, [])
    batched = run_self_improvement_batch(problems, fake, max_turns=3, batch_size=1)
    assert [t.stop_reason for t in batched] == ["correct", "correct", "no progress", "repetition", "no progress"]
    # Every round is batched in calls of <= batch_size x CALL_BATCHES = 4:
    # attempts (5 active), feedback (5), updates (a, c, d), feedback (a, d), update (d).
    assert [len(c[0]) for c in fake.calls] == [4, 1, 4, 1, 3, 2, 1]
    for p, t in zip(problems, batched):
        assert run_self_improvement(p, Scripted(script, []), max_turns=3) == t


@dataclass
class Gen:
    text: str
    finish_reason: str
    n_tokens: int = 3


def test_force_feedback_off_stops_a_student_that_ended():
    def gen(prefixes, stop):
        return [Gen(WRONG, "eos") for _ in prefixes]

    p = problem("a")
    ended = run_self_improvement(p, gen, force_feedback=False)
    assert ended.stop_reason == "ended" and ended.text == WRONG and ended.n_tokens == 3
    forced = run_self_improvement(p, gen)  # the default asks for feedback anyway
    assert forced.stop_reason != "ended" and "\nFeedback:" in forced.text


# ------------------------------------------------------------------ metrics ---


def rec(first: bool, final: bool, revised: bool, subset="seen", difficulty="d1", family="qa", reason="correct") -> EvalRecord:
    correct = [first, final] if revised else [first]
    return EvalRecord(problem_id="x", family=family, subset=subset, split="test", difficulty=difficulty, question="q", gold="4",
                      text="", stop_reason=reason, stop_detail="", n_updates=int(revised), answers=[None] * len(correct), correct=correct)


def test_metrics_are_exact_on_hand_made_records():
    records = [
        rec(False, True, True, difficulty="d1"),  # fixed
        rec(False, True, True, difficulty="d1"),  # fixed
        rec(False, False, True, difficulty="d2"),  # revised, still wrong
        rec(False, False, False, difficulty="d2", reason="no progress"),
        rec(True, False, True, subset="unseen", difficulty="d3"),  # broken
        rec(True, True, True, subset="unseen", difficulty="d3"),  # revised, still right
        rec(True, True, False, subset="unseen", difficulty="d4"),
        rec(True, True, False, subset="unseen", difficulty="d4", family="other"),
    ]
    m = compute_metrics(records, n_boot=200)
    t = m["total"]
    assert t["n"] == 8
    assert t["first_accuracy"] == 4 / 8 and t["final_accuracy"] == 5 / 8 and t["improvement"] == 1 / 8
    assert t["revised_rate"] == 5 / 8
    assert t["fix_rate"] == 2 / 4 and t["break_rate"] == 1 / 4
    assert t["counts"] == {"first_correct": 4, "final_correct": 5, "revised": 5, "first_wrong": 4, "fixed": 2, "first_right": 4, "broken": 1}
    assert t["stop_reasons"] == {"correct": 7, "no progress": 1}
    assert m["seen"]["n"] == 4 and m["seen"]["fix_rate"] == 0.5 and m["seen"]["break_rate"] is None  # no right first attempt
    assert m["unseen"]["break_rate"] == 1 / 4 and m["unseen"]["fix_rate"] is None
    assert m["seen"]["ci"]["break_rate"] is None
    rows = {(r["family"], r["difficulty"]): (r["n"], r["first_accuracy"], r["final_accuracy"]) for r in t["by_difficulty"]}
    assert rows == {("qa", "d1"): (2, 0.0, 1.0), ("qa", "d2"): (2, 0.0, 0.0), ("qa", "d3"): (2, 1.0, 0.5), ("qa", "d4"): (1, 1.0, 1.0), ("other", "d4"): (1, 1.0, 1.0)}
    assert list(rows) == [("other", "d4"), ("qa", "d1"), ("qa", "d2"), ("qa", "d3"), ("qa", "d4")]  # by family, then difficulty
    assert set(m["by_task"]) == {"qa", "other"}
    assert m["by_task"]["other"]["total"]["n"] == 1 and m["by_task"]["other"]["seen"] is None
    assert m["by_task"]["qa"]["total"]["fix_rate"] == 0.5
    for name, ci in t["ci"].items():
        assert ci[0] <= t[name] <= ci[1], name
    assert group_metrics([]) is None


def test_si_contribution_is_the_share_of_right_final_answers_the_revision_made():
    """TriPosT's SI contribution: #(wrong first & right final) / #(right final)."""
    records = [
        rec(False, True, True),  # fixed: counts
        rec(False, True, True),  # fixed: counts
        rec(True, True, False),  # right at first: not self-improvement's
        rec(True, True, True),  # revised but right all along: not self-improvement's
        rec(True, False, True),  # broken: not right at the end
        rec(False, False, False),
    ]
    t = compute_metrics(records, n_boot=300)["total"]
    assert t["si_contribution"] == 2 / 4
    assert t["counts"]["fixed"] / t["counts"]["final_correct"] == t["si_contribution"]
    lo, hi = t["ci"]["si_contribution"]
    assert 0 <= lo <= 0.5 <= hi <= 1
    # Nothing right at the end: undefined, not 0.
    none = group_metrics([rec(False, False, True), rec(True, False, True)], n_boot=50)
    assert none["si_contribution"] is None and none["ci"]["si_contribution"] is None
    # Every right answer right at first: 0, a measured value.
    assert group_metrics([rec(True, True, False), rec(False, False, False)], n_boot=50)["si_contribution"] == 0.0


def test_si_contribution_is_in_the_eval_json_and_the_printed_table(tmp_path, capsys):
    from tripost.cli.eval_cmd import print_table

    script = {
        "a": [WRONG, " " + FB_STEP1, RIGHT, " " + FB_OK],  # fixed by its own revision
        "b": [RIGHT, " " + FB_OK],  # right at once
        "c": [RIGHT, " " + FB_OK],
    }
    res = evaluate(Scripted(script, []), [problem(k) for k in script], EvalConfig(progress=False, n_bootstrap=100))
    path, _ = res.save(tmp_path / "eval.json")
    saved = json.loads(path.read_text())["metrics"]
    assert saved["total"]["si_contribution"] == 1 / 3 and saved["by_task"]["qa"]["seen"]["si_contribution"] == 1 / 3
    assert len(saved["total"]["ci"]["si_contribution"]) == 2
    print_table(res.summary())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["si", "share"]
    total = next(line for line in lines if line.startswith("total "))
    assert total.rstrip().endswith("33.3%")
    assert any("si share: of right final answers" in line for line in lines)


def test_the_run_report_shows_si_contribution(tmp_path):
    from tripost.runconfig import RunConfig
    from tripost.report import collect_run, render_markdown

    run = tmp_path / "run"
    (run / "it1" / "eval").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(RunConfig.load(None, []).to_dict()))
    records = [rec(False, True, True), rec(True, True, False), rec(True, True, False), rec(True, True, False)]
    (run / "it1" / "eval" / "eval.json").write_text(json.dumps({"metrics": compute_metrics(records, n_boot=50)}))
    report = render_markdown(collect_run(run), [])
    header = next(line for line in report.splitlines() if line.startswith("| iteration | subset |"))
    assert header.rstrip(" |").endswith("SI contribution")
    row = next(line for line in report.splitlines() if line.startswith("| it1 | total |"))
    assert row.split("|")[-2].strip().startswith("25.0%")
    assert "*SI contribution*" in report


def test_score_checks_every_rationale_against_the_gold_answer():
    p = problem("a")
    fake = Scripted({"a": [WRONG, " " + FB_STEP1, RIGHT, " " + FB_OK]}, [])
    r = score(p, run_self_improvement(p, fake), get_task("qa"))
    assert r.answers == ["5", "4"] and r.correct == [False, True] and r.verdicts == [False, True] and r.claimed_errors == [1, None]
    assert r.first_correct is False and r.final_correct is True and r.revised
    d = r.to_dict()
    assert d["first_answer"] == "5" and d["final_answer"] == "4"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.integers(0, 2**32 - 1))
def test_bootstrap_interval_contains_the_estimate_and_is_seeded(values, seed):
    ci = bootstrap_interval(values, n_boot=300, seed=seed)
    assert ci is not None and ci[0] <= np.mean(values) <= ci[1]
    assert bootstrap_interval(values, n_boot=300, seed=seed) == ci


def test_bootstrap_seed_matters_and_empty_is_none():
    values = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1] * 3
    assert bootstrap_interval(values, seed=1) == bootstrap_interval(values, seed=1)
    draws = {bootstrap_interval(values, n_boot=50, seed=s) for s in range(10)}
    assert len(draws) > 1
    assert bootstrap_interval([]) is None
    lo, hi = bootstrap_interval(values, confidence=0.5)
    lo95, hi95 = bootstrap_interval(values)
    assert lo95 <= lo <= hi <= hi95


def test_training_problems_are_refused():
    fake = Scripted({"a": [RIGHT, " " + FB_OK]}, [])
    with pytest.raises(TripostError, match="train split"):
        evaluate(fake, [problem("a", split="train")], EvalConfig(progress=False))
    assert evaluate(fake, [problem("a", split="train")], EvalConfig(progress=False, allow_train=True)).metrics["total"]["first_accuracy"] == 1.0


def test_generated_families_score_gold_and_fixed_rationales():
    """A fake student that writes a corrupted attempt, blames the corrupted step,
    then writes the gold rationale: every first attempt wrong, every final right."""
    task = get_task("arithmetic")
    problems = [p for s in ("seen", "unseen") for p in sample_problems(task, split="test", subset=s, n=3, seed=1)]
    by_prompt: dict[str, list[str]] = {}
    for p in problems:
        n = parse_rationale(p.rationale).n_steps
        bad = task.corrupt(p, n + 1, random.Random(0))
        by_prompt[plain_prompt(p)] = [bad, " " + Feedback(n, n + 1, segment="x", reason="It is wrong.").render(), p.rationale, " " + Feedback(n, None).render()]

    done: dict[str, int] = {}

    def fake(prefixes, stop):
        out = []
        for x in prefixes:
            prompt = next(k for k in by_prompt if x.startswith(k))
            done[prompt] = done.get(prompt, -1) + 1  # pieces written so far, whatever the re-prompting shows
            out.append(by_prompt[prompt][done[prompt]])
        return out

    res = evaluate(fake, problems, EvalConfig(progress=False, n_bootstrap=100))
    t = res.metrics["total"]
    assert t["first_accuracy"] == 0.0 and t["final_accuracy"] == 1.0 and t["fix_rate"] == 1.0 and t["break_rate"] is None
    assert t["stop_reasons"] == {"correct": 6} and res.metrics["seen"]["n"] == res.metrics["unseen"]["n"] == 3
    assert set(res.metrics["by_task"]) == {"arithmetic"}


def test_cli_problem_selection_for_generated_families():
    import argparse

    from tripost.cli._io import problems_from_args as load_eval_problems
    from tripost.cli.eval_cmd import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["eval", "--task", "arithmetic,word_sorting", "--n", "2"])
    problems = load_eval_problems(args)
    assert [(p.family, p.subset) for p in problems] == [(f, s) for f in ("arithmetic", "word_sorting") for s in ("seen", "seen", "unseen", "unseen")]
    assert all(p.split == "test" for p in problems)
    args = parser.parse_args(["eval", "--task", "arithmetic", "--n", "3", "--subset", "unseen", "--split", "val"])
    assert [(p.subset, p.split) for p in load_eval_problems(args)] == [("unseen", "val")] * 3


# ------------------------------------------------------------------ journal ---


def _hash_student(calls=None, fail_after=None):
    """A stateless scripted student: each piece depends on its prefix alone,
    so a replayed call and a generated one are interchangeable."""
    import hashlib

    def gen(prefixes, stop):
        if calls is not None:
            calls.append(len(prefixes))
            if fail_after is not None and len(calls) > fail_after:
                raise KeyboardInterrupt("killed")
        outs = []
        for x in prefixes:
            h = int(hashlib.sha256(x.encode()).hexdigest()[:6], 16)
            outs.append(f" So the answer is {h % 7}." if h % 3 else " " + Feedback(1, None).render())
        return outs

    return gen


def test_a_killed_evaluation_resumes_from_its_journal_with_the_same_result(tmp_path):
    problems = sample_problems(get_task("arithmetic"), split="test", subset="seen", n=6, seed=3)
    cfg = EvalConfig(progress=False, n_bootstrap=50, batch_size=1, max_turns=2)
    ref = evaluate(_hash_student(), problems, cfg)
    journal = tmp_path / "eval.journal.jsonl"
    done: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        evaluate(_hash_student(done, fail_after=2), problems, cfg, journal=journal)
    assert len(journal.read_text().splitlines()) == 3  # the header and the two calls that returned
    with open(journal, "a") as f:
        f.write('{"key": "cut off by the ki')  # a line the kill cut short
    again: list[int] = []
    res = evaluate(_hash_student(again), problems, cfg, journal=journal)
    assert [r.to_dict() for r in res.records] == [r.to_dict() for r in ref.records]
    assert res.metrics == ref.metrics and res.generation["replayed_calls"] == 2
    total_calls = len(journal.read_text().splitlines()) - 1
    assert total_calls > 3 and len(again) == total_calls - 2  # only the calls the journal did not hold were generated
    # Another evaluation does not replay it: one clear error, and nothing generated.
    with pytest.raises(TripostError, match="written by a different evaluation \\(generation differ\\)$"):
        evaluate(_hash_student(), problems, EvalConfig(progress=False, n_bootstrap=50, batch_size=1, max_turns=1), journal=journal)
    with pytest.raises(TripostError, match="written by a different evaluation \\(problems differ\\)"):
        evaluate(_hash_student(), problems[:5], cfg, journal=journal)


# --------------------------------------------------- tiny model, end to end ---


@pytest.fixture
def run_cli(monkeypatch):
    if "tripost.cli.eval_cmd" not in cli.VERB_MODULES:
        monkeypatch.setattr(cli, "VERB_MODULES", [*cli.VERB_MODULES, "tripost.cli.eval_cmd"])
    return lambda *argv: cli.main(["eval", *argv])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("machine, precision", [("avx2", "fp32"), ("avx512_bf16", "bf16")])
def test_end_to_end_on_the_tiny_model(tiny_model_dir, tmp_path, run_cli, capsys, simulate, machine, precision):
    from tripost.student import load_student

    simulate(machine)  # `auto` follows the simulated machine, whatever this one is

    tiny_dir = tiny_model_dir  # the shared session fixture (tests/conftest.py)
    # An evaluation file marks its rows test (rows without a split are split by a hash of their question).
    data = write_jsonl(tmp_path / "q.jsonl", [
        {"question": "What is 2 + 2?", "answer": "4", "difficulty": "easy", "split": "test"},
        {"question": "What is 13 + 29?", "answer": "42", "difficulty": "hard", "subset": "unseen", "split": "test"},
        {"question": "Name the capital of France.", "answer": "Paris", "difficulty": "easy", "split": "test"},
        {"question": "A training question.", "answer": "1", "split": "train"},
    ])
    out = tmp_path / "res" / "eval.json"
    rc = run_cli("--student", f"hf:{tiny_dir}", "--task", "qa", "--data", str(data), "--max-turns", "2",
                 "--max-new-tokens", "12", "--bootstrap", "100", "--out", str(out), "--json", "--no-progress")
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert saved["schema"] == "tripost.eval/1" and saved["problems"]["n"] == 3 and saved["problems"]["splits"] == {"test": 3}
    assert saved["metrics"] == printed["metrics"] and saved["student"]["student"] == f"hf:{tiny_dir}"
    assert saved["metrics"]["total"]["n"] == 3 and saved["metrics"]["unseen"]["n"] == 1
    lines = [json.loads(x) for x in (out.parent / saved["transcripts"]).read_text().splitlines()]
    assert [x["question"] for x in lines] == ["What is 2 + 2?", "What is 13 + 29?", "Name the capital of France."]
    assert all(x["stop_reason"] in STOP_REASONS and x["n_updates"] <= 2 for x in lines)

    # The same from Python, with the loaded student: its chat-template prompt, real batched generation.
    student = load_student(f"hf:{tiny_dir}")
    probs = [problem(k, subset=s) for k, s in (("a", "seen"), ("b", "unseen"))]
    res = evaluate(student, probs, EvalConfig(max_turns=1, max_new_tokens=8, n_bootstrap=50, progress=False))
    assert [r.problem_id for r in res.records] == ["a", "b"] and res.generation["tokens"] > 0
    assert res.student["precision"] == precision and saved["student"]["precision"] == precision
    p1, p2 = res.save(tmp_path / "py.json")
    assert p2.name == "py.transcripts.jsonl" and len(p2.read_text().splitlines()) == 2


def test_cli_eval_journal_goes_once_the_result_is_written_and_a_foreign_one_is_refused(tiny_model_dir, tmp_path, run_cli, capsys):
    data = write_jsonl(tmp_path / "q.jsonl", [{"question": "What is 2 + 2?", "answer": "4", "split": "test"}])
    out, journal = tmp_path / "eval.json", tmp_path / "eval.journal.jsonl"
    argv = ("--student", f"hf:{tiny_model_dir}", "--task", "qa", "--data", str(data), "--max-turns", "1", "--max-new-tokens", "6",
            "--bootstrap", "50", "--out", str(out), "--no-progress", "--json")
    journal.write_text(json.dumps({"schema": "tripost.eval-journal/1", "fingerprint": {"generation": {"max_turns": 9}}}) + "\n")
    rc = run_cli(*argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "was written by a different evaluation" in err and "pass --force" in err, err
    assert journal.exists() and not out.exists()  # the journal is kept for the evaluation that wrote it
    assert run_cli(*argv, "--force") == 0
    assert out.exists() and not journal.exists()
    capsys.readouterr()


# ----------------------------------------------------------------- CLI errors ---


@pytest.mark.parametrize("argv, needle", [
    (("--task", "nosuch"), "unknown task family 'nosuch'"),
    (("--task", "qa", "--data", "/nonexistent/q.jsonl"), "/nonexistent/q.jsonl: no such file"),
    (("--task", "qa", "--split", "train"), "refusing to evaluate on the train split"),
    (("--task", "qa", "--n", "0"), "--n must be at least 1"),
    (("--task", "qa", "--max-turns", "-1"), "max_turns must be >= 0"),
    (("--task", "qa"), "no problem generator: pass its problems with --data"),
    (("--task", "qa", "--data", "{data}", "--student", "hf:/nonexistent"), "no such folder"),
])
def test_cli_bad_input_is_one_clear_line(argv, needle, run_cli, capsys, tmp_path):
    data = write_jsonl(tmp_path / "q.jsonl", [{"question": "2+2?", "answer": "4", "split": "test"}])
    rc = run_cli(*(a.replace("{data}", str(data)) for a in argv))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("tripost eval: error:") and needle in err, err


def test_cli_refuses_train_records_of_a_data_file(run_cli, capsys, tmp_path):
    data = write_jsonl(tmp_path / "q.jsonl", [{"question": "2+2?", "answer": "4", "split": "train"}])
    rc = run_cli("--task", "qa", "--data", str(data))
    err = capsys.readouterr().err
    assert rc == 2 and "no test problems" in err


def test_difficulty_labels_sort_by_their_numbers():
    from tripost.tasks.base import difficulty_sort_key

    assert sorted(["20", "2", "10", "3"], key=difficulty_sort_key) == ["2", "3", "10", "20"]
    assert sorted(["len3-2", "len10-1", "len3-1", "len2-2"], key=difficulty_sort_key) == ["len2-2", "len3-1", "len3-2", "len10-1"]
    assert sorted(["easy", "len3", "2"], key=difficulty_sort_key) == ["2", "easy", "len3"]  # mixed forms still compare
