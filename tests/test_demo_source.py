"""The demo source (tripost.sources.demo): TriPosT's learn-from-demonstrations
ablation, no student attempt: with the scripted teacher the family's wrong
attempts, corrected by the teacher; with an LLM teacher (here the real
`openai` and `anthropic` SDKs over HTTP to `tripost serve-teacher` on
loopback) the teacher's own attempts at temperature 1.0, as the authors'
train_self_improve_from_demo.py, its right ones kept as non-improvement data.
Its size is one TriPosT iteration's attempts, stated in the summary."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tripost.buffer import BufferConfig, build_buffer
from tripost.errors import TripostError
from tripost.format import parse_feedback, parse_rationale
from tripost.log import read_log
from tripost.sources import Job, make_source
from tripost.sources.demo import CORRUPTED, DemoSource, attempt_sample, corrupted_gold, demo_collect
from tripost.sources.settings import CollectSettings
from tripost.sources.teacher import CollectConfig
from tripost.tasks import get_task, sample_problems
from tripost.tasks.base import Problem
from tripost.teachers import make_teacher
from tripost.teachers.base import ATTEMPT_TURN_SOURCE
from tripost.teachers.prompted import PromptedTeacher
from tripost.teachers.retry import RetryPolicy
from tripost.teachers.scripted import ScriptedTeacher

TOKEN = "tpst-test-DO-NOT-LEAK-demo-token-97531"


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
    assert summary["attempts_by"] == "family" and summary["attempt_temperature"] is None
    assert json.loads((out / "collect.json").read_text())["size"] == summary["size"]
    recs = list(read_log(out / "log.jsonl"))
    assert [r.source for r in recs] == ["demo", "demo"] and all(r.turns[0]["source"] == CORRUPTED for r in recs)


def test_the_demo_collects_as_many_trajectories_as_one_tripost_iteration_and_says_so(tmp_path, tiny_model_dir, capsys):
    """Issue 27: the demo's data size is matched to one TriPosT iteration on
    the same problems, and stated: `tripost collect --source teacher` (the
    student samples, the teacher edits) and `--source demo` under the same
    settings write as many trajectories, and the demo's collect.json says what
    it collected and what that is matched to."""
    from tripost.cli import main

    common = ["--task", "arithmetic", "--n", "3", "--samples", "2", "--student", f"hf:{tiny_model_dir}", "--json", "--max-new-tokens", "8"]
    assert main(["collect", "--source", "teacher", *common, "--out", str(tmp_path / "t")]) == 0
    tripost = json.loads(capsys.readouterr().out)
    assert main(["collect", "--source", "demo", *common, "--out", str(tmp_path / "d")]) == 0
    demo = json.loads((tmp_path / "d" / "collect.json").read_text())
    assert tripost["records_written"] == demo["records_written"] == 6
    assert demo["size"] == {"problems": 3, "problems_skipped": 0, "samples_per_problem": 2, "passes": 1, "planned": 6, "in_log": 6,
                            "matched_to": 6, "matched_to_what": "attempts of one TriPosT iteration (teacher source) on the same problems: "
                                                                 "samples_per_problem x problems x passes"}
    assert {json.loads(line)["problem"]["id"] for line in (tmp_path / "t" / "log.jsonl").read_text().splitlines()} == \
        {json.loads(line)["problem"]["id"] for line in (tmp_path / "d" / "log.jsonl").read_text().splitlines()}


def test_skipped_problems_are_out_of_the_plan_but_not_of_what_it_is_matched_to(tmp_path, problems):
    mixed = [qa_problem("q1"), *problems]
    res = demo_collect(mixed, make_teacher("scripted"), tmp_path / "log.jsonl", CollectConfig(samples_per_problem=2, max_passes=2), progress=False)
    assert res.size["matched_to"] == 2 * 2 * len(mixed) and res.size["planned"] == res.size["in_log"] == 2 * 2 * len(problems)
    assert res.size["problems_skipped"] == 1 and res.records_written == res.size["in_log"]
    # A rerun: nothing new, the log's trajectories still counted.
    again = demo_collect(mixed, make_teacher("scripted"), tmp_path / "log.jsonl", CollectConfig(samples_per_problem=2, max_passes=2),
                         progress=False)
    assert again.records_written == 0 and again.size["in_log"] == res.size["in_log"]


# ------------------------------------------------ with an LLM teacher (issue 27) ---

FAST = RetryPolicy(max_attempts=3, initial=0.005, jitter=0.005, max_wait=0.05)


@pytest.fixture
def served(monkeypatch, tmp_path):
    """`tripost serve-teacher` (the scripted teacher) on loopback, and the SDKs pointed at it."""
    from tripost.serve import start_server

    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path / "home"))
    for var in ("ANTHROPIC_AUTH_TOKEN", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    with start_server(ScriptedTeacher(), token=TOKEN) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", TOKEN)
        monkeypatch.setenv("ANTHROPIC_API_KEY", TOKEN)
        yield srv


def server_stats(srv) -> dict:
    with urllib.request.urlopen(srv.url + "/stats") as r:
        return json.loads(r.read())


def llm_teacher(spec: str, gold: bool = True, **kw) -> PromptedTeacher:
    """An LLM teacher; `gold`: its attempt requests carry the gold, which the
    scripted server needs to play a sampler (an LLM gets none: the default)."""
    t = make_teacher(spec, cache=kw.pop("cache", False), policy=FAST, **kw)
    assert isinstance(t, PromptedTeacher)
    t.attempt_gold = gold
    return t


@pytest.mark.parametrize("spec", ["openai:scripted", "anthropic:scripted"])
def test_with_an_llm_teacher_the_teacher_attempts_at_temperature_1_and_its_right_attempts_are_non_improvement(served, tmp_path, spec):
    """As train_self_improve_from_demo.py: the LLM makes the attempts
    (temperature 1.0), then the feedback and fixes (the teacher's own 0.0);
    a right attempt is non-improvement data (`direct`), a wrong one is fixed."""
    task_problems = sample_problems(get_task("arithmetic"), n=4, seed=5) + sample_problems(get_task("date_understanding"), n=2, seed=5)
    by_id = {p.id: p for p in task_problems}
    t = llm_teacher(spec)
    try:
        src = make_source(CollectSettings(source="demo", samples_per_problem=3), teacher_concurrency=3)
        res = src.collect(job(tmp_path, task_problems, seed=9), None, t)  # student=None: never sampled
    finally:
        t.close()
    recs = list(read_log(tmp_path / "log.jsonl"))
    assert res.attempts_by == "teacher" and res.attempt_temperature == 1.0 and res.skipped == {}
    assert res.records_written == len(recs) == res.size["matched_to"] == res.size["in_log"] == 3 * len(task_problems)
    assert res.by_kind.get("direct", 0) > 0 and res.by_kind.get("improvement", 0) > 0, res.by_kind
    assert res.by_kind["direct"] + res.by_kind["improvement"] == len(recs)
    for r in recs:
        p = by_id[r.problem["id"]]
        task = get_task(p.family)
        attempt = r.turns[0]["rationale"]
        assert r.source == "demo" and r.turns[0]["source"] == ATTEMPT_TURN_SOURCE and r.final_correct
        assert r.guide == {"attempt_sample": attempt_sample(9, 1, 0, r.sample_index), "temperature": 1.0}
        assert [c["kind"] for c in r.teacher_calls][:2] == ["attempt", "feedback"]
        if r.kind == "direct":  # right at first: one turn, the teacher's verdict "correct"
            assert len(r.turns) == 1 and task.check_steps(p, attempt).correct
            assert parse_feedback(r.turns[0]["feedback"], parse_rationale(attempt).n_steps).is_correct
        else:  # wrong, then fixed by the teacher
            assert not task.check_steps(p, attempt).correct and len(r.turns) >= 2
            assert r.turns[-1]["source"] == "teacher" and task.check_steps(p, r.turns[-1]["rationale"]).all_correct
    n_attempts = sum(c["kind"] == "attempt" for r in recs for c in r.teacher_calls)
    served_stats = server_stats(served)
    params = served_stats["params"]
    assert n_attempts == len(recs)
    if spec.startswith("anthropic"):
        # Under the pinned SDK's API version no request carries a temperature: the attempts sample at
        # Anthropic's default, 1.0, and feedback and fixes too (tripost.teachers.sampling).
        assert {k: v for k, v in params.items() if k.startswith("temperature")} == {"temperature=absent": served_stats["requests"]}, params
    else:
        assert params["temperature=1.0"] == n_attempts, params  # every attempt, and only they
        # The rest (feedback, fixes; identical ones in flight at once share a request) at the teacher's own 0.0 (auto).
        assert {k for k in params if k.startswith("temperature=")} == {"temperature=1.0", "temperature=0.0"}
        assert params["temperature=0.0"] == served_stats["requests"] - n_attempts
    # The buffer trains the right attempts as non-improvement examples, the fixed ones as improvements
    # (and, single-turn, their last answer as non-improvement too: tripost.buffer).
    examples, stats = build_buffer(recs, BufferConfig(include_gold=False))
    assert stats.by_kind_before["improvement"] >= res.by_kind["improvement"]
    assert stats.by_kind_before["direct"] >= res.by_kind["direct"]


def test_an_llm_demo_resumes_and_its_attempts_come_back_from_the_cache(served, tmp_path):
    task_problems = sample_problems(get_task("arithmetic"), n=3, seed=6)
    cfg = CollectConfig(samples_per_problem=2, seed=1, iteration=1)
    cache = tmp_path / "cache.sqlite"
    t = llm_teacher("openai:scripted", cache=cache)
    try:
        first = demo_collect(task_problems, t, tmp_path / "a.jsonl", cfg, progress=False)
        asked = server_stats(served)["requests"]
        again = demo_collect(task_problems, t, tmp_path / "a.jsonl", cfg, progress=False)
        assert again.records_written == 0 and again.records_skipped == 6 and again.size["in_log"] == 6
        other = demo_collect(task_problems, t, tmp_path / "b.jsonl", cfg, progress=False)  # a fresh log, the same cache
    finally:
        t.close()
    assert server_stats(served)["requests"] == asked  # nothing asked again
    assert first.records_written == other.records_written == 6 and first.by_kind == other.by_kind
    a, b = list(read_log(tmp_path / "a.jsonl")), list(read_log(tmp_path / "b.jsonl"))
    assert [r.turns for r in a] == [r.turns for r in b] and all(c["cached"] for r in b for c in r.teacher_calls)
    # n samples of a problem were n calls: not one answer served n times.
    per_problem = {}
    for r in a:
        per_problem.setdefault(r.problem["id"], set()).add(r.guide["attempt_sample"])
    assert all(len(samples) == 2 for samples in per_problem.values())


def test_an_llm_teacher_whose_server_cannot_attempt_is_one_error_line(served, tmp_path, problems):
    """An LLM teacher's attempt prompt holds no gold (the authors' attempt
    model sees the question only); the scripted server needs it, and says so."""
    t = llm_teacher("openai:scripted", gold=False)
    try:
        with pytest.raises(TripostError) as err:
            demo_collect(problems, t, tmp_path / "log.jsonl", CollectConfig(samples_per_problem=1), progress=False)
    finally:
        t.close()
    msg = str(err.value)
    assert msg.startswith("demo: the teacher openai:scripted could not write an attempt at temperature 1 for problem ")
    assert "attempt_gold" in msg and "\n" not in msg and TOKEN not in msg
    assert not list(read_log(tmp_path / "log.jsonl"))


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
