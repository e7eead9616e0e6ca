"""The demo source (tripost.sources.demo): TriPosT's learn-from-demonstrations
ablation, corrupted gold rationales corrected by the teacher, no student."""

from __future__ import annotations

import json

import pytest

from tripost.buffer import BufferConfig, build_buffer
from tripost.errors import TripostError
from tripost.format import parse_feedback, parse_rationale
from tripost.log import read_log
from tripost.sources import Job, make_source
from tripost.sources.demo import CORRUPTED, DemoSource, corrupted_gold, demo_collect
from tripost.sources.settings import CollectSettings
from tripost.sources.teacher import CollectConfig
from tripost.tasks import get_task, sample_problems
from tripost.tasks.base import Problem
from tripost.teachers import make_teacher


@pytest.fixture(scope="module")
def problems():
    return sample_problems(get_task("arithmetic"), n=3, seed=5) + sample_problems(get_task("word_sorting"), n=2, seed=5)


def qa_problem(pid: str) -> Problem:
    return Problem(id=pid, family="qa", question=f"Capital of France? [{pid}]", answer="Paris", rationale="It is Paris.", difficulty="d")


def job(tmp_path, problems, **kw):
    return Job(problems, tmp_path / "log.jsonl", iteration=kw.pop("iteration", 1), seed=kw.pop("seed", 7), config_hash="h", progress=False, **kw)


def test_registered_as_demo_and_needs_a_teacher():
    src = make_source(CollectSettings(source="demo", samples_per_problem=3, max_edits=2), teacher_concurrency=2)
    assert isinstance(src, DemoSource) and src.name == "demo" and src.needs_teacher
    assert src.config.samples_per_problem == 3 and src.config.max_edits == 2 and src.config.teacher_concurrency == 2
    with pytest.raises(TripostError, match="^the demo source needs a teacher$"):
        src.collect(Job([], "x.jsonl"), None, None)


def test_records_are_teacher_fixed_corruptions_of_the_gold_with_no_student(tmp_path, problems):
    src = make_source(CollectSettings(source="demo", samples_per_problem=2), teacher_concurrency=2)
    seen = []
    res = src.collect(job(tmp_path, problems, on_record=seen.append), None, make_teacher("scripted"))  # student=None: never sampled
    recs = list(read_log(tmp_path / "log.jsonl"))
    assert res.records_written == len(recs) == len(seen) == 2 * len(problems) and res.skipped == {}
    assert res.by_kind == {"improvement": len(recs)} and res.usable == len(recs) and res.teacher_calls > 0
    by_id = {p.id: p for p in problems}
    for r in recs:
        p = by_id[r.problem["id"]]
        task = get_task(p.family)
        step, text = corrupted_gold(p, seed=7, iteration=1, pass_index=0, sample=r.sample_index)
        assert r.source == "demo" and r.kind == "improvement" and r.final_correct and r.iteration == 1
        assert r.key == f"{p.id}#p0s{r.sample_index}@it1" and r.guide == {"corrupted_step": step}
        # The first turn is the corrupted gold, flagged at the corrupted step ...
        assert r.turns[0]["rationale"] == text and r.turns[0]["source"] == CORRUPTED and text != p.rationale
        assert task.check_steps(p, text).first_error_step == step == r.turns[0]["error_step"]
        # ... the last one the teacher's correct fix.
        assert r.turns[-1]["source"] == "teacher" and task.check_steps(p, r.turns[-1]["rationale"]).all_correct
        assert len(r.turns) >= 2
    # The buffer trains them as improvements, like TriPosT's own.
    examples, stats = build_buffer(recs, BufferConfig(include_gold=False))
    assert stats.by_kind_before["improvement"] == len(recs)


def test_the_corrupted_step_is_seeded_per_problem_and_sample(problems):
    p = problems[0]
    a = corrupted_gold(p, seed=7, iteration=1, pass_index=0, sample=0)
    assert a == corrupted_gold(p, seed=7, iteration=1, pass_index=0, sample=0)
    draws = {corrupted_gold(p, seed=s, iteration=1, pass_index=0, sample=k) for s in range(6) for k in range(3)}
    assert len({step for step, _ in draws}) > 1  # not always the same step


def test_a_rerun_skips_the_keys_already_logged(tmp_path, problems):
    teacher = make_teacher("scripted")
    cfg = CollectConfig(samples_per_problem=1, iteration=1, seed=7)
    first = demo_collect(problems[:2], teacher, tmp_path / "log.jsonl", cfg, progress=False)
    before = (tmp_path / "log.jsonl").read_text()
    second = demo_collect(problems, teacher, tmp_path / "log.jsonl", cfg, progress=False)
    assert first.records_written == 2 and second.records_skipped == 2 and second.records_written == len(problems) - 2
    after = (tmp_path / "log.jsonl").read_text()
    assert after.startswith(before)
    keys = [json.loads(line)["key"] for line in after.splitlines()]
    assert len(keys) == len(set(keys)) == len(problems)
    third = demo_collect(problems, teacher, tmp_path / "log.jsonl", cfg, progress=False)
    assert third.records_written == 0 and third.records_skipped == len(problems) and third.usable == len(problems)


def test_families_without_a_corruptor_are_skipped_and_counted(tmp_path, problems):
    mixed = [qa_problem("q1"), problems[0], qa_problem("q2")]
    res = demo_collect(mixed, make_teacher("scripted"), tmp_path / "log.jsonl", CollectConfig(samples_per_problem=2), progress=False)
    assert res.skipped == {"no corruptor": 2} and res.records_written == 2
    assert {r.problem["id"] for r in read_log(tmp_path / "log.jsonl")} == {problems[0].id}
    only_qa = demo_collect([qa_problem("q3")], make_teacher("scripted"), tmp_path / "qa.jsonl", CollectConfig(), progress=False)
    assert only_qa.records_written == 0 and only_qa.stopped_early == "only 0 usable trajectories (minimum 1) (1 no corruptor skipped)"
    with pytest.raises(TripostError, match="^demo: no problems$"):
        demo_collect([], make_teacher("scripted"), tmp_path / "none.jsonl", progress=False)


def test_tripost_collect_source_demo_writes_the_log(tmp_path, tiny_model_dir, capsys):
    from tripost.cli import main

    out = tmp_path / "c"
    assert main(["collect", "--source", "demo", "--task", "arithmetic", "--n", "2", "--samples", "1", "--student", f"hf:{tiny_model_dir}",
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records_written"] == 2 and summary["by_kind"] == {"improvement": 2} and summary["skipped"] == {}
    recs = list(read_log(out / "log.jsonl"))
    assert [r.source for r in recs] == ["demo", "demo"] and all(r.turns[0]["source"] == CORRUPTED for r in recs)


# The families with a corruptor (qa has none: it is skipped, see above).
CORRUPTIBLE = ("arithmetic", "word_sorting", "date_understanding", "logical_deduction")


@pytest.mark.parametrize("family", CORRUPTIBLE)
def test_demo_attempts_end_wrong_and_the_teacher_names_their_first_wrong_step(tmp_path, family):
    """Issue 27: a demo attempt is a mistake carried to a wrong final answer
    (a one-step corruption of the gold left 50-87% of them right), and the
    scripted teacher's feedback names the mistaken step and its fix is the
    gold continuation from there."""
    task = get_task(family)
    problems = sample_problems(task, n=100, seed=1, preset="small") + sample_problems(task, n=100, seed=1, preset="paper")
    res = demo_collect(problems, make_teacher("scripted"), tmp_path / "log.jsonl", CollectConfig(samples_per_problem=1, seed=3, iteration=1),
                       progress=False)
    recs = list(read_log(tmp_path / "log.jsonl"))
    assert res.records_written == len(recs) == 200 and res.skipped == {}
    by_id = {p.id: p for p in problems}
    wrong = 0
    for r in recs:
        p, step, attempt = by_id[r.problem["id"]], r.guide["corrupted_step"], r.turns[0]["rationale"]
        check = task.check_steps(p, attempt)  # the family's own checker
        wrong += not check.correct
        assert check.first_error_step == step == r.turns[0]["error_step"]
        # The steps before the mistake are the gold ones, verbatim.
        assert attempt[: parse_rationale(attempt).offset_of(step)] == p.rationale[: parse_rationale(p.rationale).offset_of(step)]
        # The feedback names that step; the fix keeps the gold steps before it and writes the gold continuation.
        assert parse_feedback(r.turns[0]["feedback"], check.n_steps).error_step == step
        assert r.kind == "improvement" and r.turns[-1]["source"] == "teacher" and r.turns[-1]["rationale"] == p.rationale
    assert wrong >= 0.95 * len(recs), f"{family}: only {wrong} of {len(recs)} demo attempts end in a wrong answer"


@pytest.mark.parametrize("family", CORRUPTIBLE)
def test_a_wrong_attempt_carries_its_mistake_to_the_answer_at_every_step(family):
    """`Task.wrong_attempt` at each step of a few problems, the final response
    included: flagged there, and the answer wrong (it falls back to `corrupt`
    only when no wrong run of the step ends wrong)."""
    import random

    task = get_task(family)
    n_wrong = n_all = 0
    for p in sample_problems(task, n=12, seed=4, preset="paper"):
        n = parse_rationale(p.rationale).n_steps
        for step in range(1, n + 2):
            text = task.wrong_attempt(p, step, random.Random(f"{p.id}|{step}"))
            check = task.check_steps(p, text)
            assert check.first_error_step == step, (step, text)
            n_wrong, n_all = n_wrong + (not check.correct), n_all + 1
        with pytest.raises(TripostError, match="out of range"):
            task.wrong_attempt(p, n + 2, random.Random(0))
    assert n_wrong >= 0.95 * n_all


def test_qa_has_no_wrong_attempts():
    import random

    with pytest.raises(TripostError, match="no structured rationale"):
        get_task("qa").wrong_attempt(qa_problem("q"), 1, random.Random(0))
