"""Guided sampling for the long tail (tripost.sources.guided): which problems get
guided rounds, what each strategy shows the student, that the guidance never
reaches the logged/trained text, the coverage and difficulty measurements,
the budget, resuming, and one run on the tiny real model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from collections import Counter

import pytest

from tripost.buffer import build_buffer, examples_from_records
from tripost.errors import TripostError
from tripost.format import parse_rationale, render_rationale
from tripost.sources.guided import (
    GuidedConfig,
    GuidedPrompt,
    fill_template,
    guided_collect,
    guided_key,
    guided_student_sampler,
    key_round,
    mentions_guidance,
    plain_instruction,
    reset_prefix,
    tv_distance,
)
from tripost.log import read_log
from tripost.tasks import get_task, sample_problems
from tripost.teachers.scripted import ScriptedTeacher

TASK = get_task("arithmetic")
# Sentences of the guided templates: none may reach a logged rationale or a training example.
TEMPLATE_WORDS = ("Hint:", "reference solution", "A previous attempt", "Teacher's feedback", "Do not mention")


@pytest.fixture(scope="module")
def problems():
    # small preset, seen: levels alternate len3-1 (one step) and len2-2 (four steps)
    return sample_problems(TASK, split="train", n=6, seed=11)


def wrong_rationale(p):
    """The gold steps with a wrong final answer (same text up to the final line)."""
    parsed = parse_rationale(p.rationale)
    return render_rationale(list(parsed.steps), str(int(p.answer) + 1))


class FakeSampler:
    """A stand-in student. Plain prompts: the first `plain_right[id]` samples
    of a problem are right, the rest wrong. Guided prompts: right when
    `guided_right(prompt)` says so. A state reset's prefix is not repeated:
    the continuation is the rest of the chosen rationale."""

    def __init__(self, plain_right=None, guided_right=lambda gp: False, decorate=lambda text, gp: text):
        self.plain_right = plain_right or {}
        self.guided_right = guided_right
        self.decorate = decorate
        self.calls: list[tuple[list[GuidedPrompt], int, int]] = []

    def __call__(self, prompts, n, seed):
        self.calls.append((list(prompts), n, seed))
        out = []
        for gp in prompts:
            p = gp.problem
            guided = gp.instruction != plain_instruction(p) or bool(gp.prefix)
            row = []
            for s in range(n):
                right = self.guided_right(gp) if guided else s < self.plain_right.get(p.id, 0)
                full = p.rationale if right else wrong_rationale(p)
                assert full.startswith(gp.prefix)
                row.append(self.decorate(full[len(gp.prefix):], gp))
            out.append(row)
        return out

    def prompts_by_call(self):
        return [[gp.problem.id for gp in prompts] for prompts, _, _ in self.calls]


def always(gp):
    return True


def records(path):
    return list(read_log(path))


def test_config_is_validated():
    with pytest.raises(TripostError, match="unknown guided strategy"):
        GuidedConfig(strategy="socratic")
    with pytest.raises(TripostError, match="min_correct"):
        GuidedConfig(min_correct=0)
    with pytest.raises(TripostError, match="fractions"):
        GuidedConfig(fractions=(0.2, 1.0))
    with pytest.raises(TripostError, match="budget"):
        GuidedConfig(samples_per_round=4, budget=3)
    with pytest.raises(TripostError, match=r"samples_per_round \(2\) is below min_correct \(4\)"):
        GuidedConfig(samples_per_round=2, min_correct=4)
    cfg = GuidedConfig()  # the [collect] defaults (tests/test_defaults.py)
    assert (cfg.samples_per_round, cfg.min_correct, cfg.max_rounds, cfg.fractions) == (2, 1, 8, (0.2, 0.4, 0.6, 0.8))


def test_interactive_and_teacher_edits_need_a_teacher(problems, tmp_path):
    for cfg in (GuidedConfig(strategy="interactive"), GuidedConfig(strategy="answer", teacher_edits=True)):
        with pytest.raises(TripostError, match="needs a teacher"):
            guided_collect(problems, FakeSampler(), None, tmp_path / "log.jsonl", cfg, progress=False)


def test_only_problems_below_min_correct_get_guided_rounds(problems, tmp_path):
    ps = problems[:4]
    sampler = FakeSampler(plain_right={ps[0].id: 4, ps[1].id: 2, ps[2].id: 1, ps[3].id: 0})
    cfg = GuidedConfig(strategy="answer", samples_per_round=4, min_correct=2, max_rounds=2)
    res = guided_collect(ps, sampler, None, tmp_path / "log.jsonl", cfg, progress=False)
    below = [ps[2].id, ps[3].id]
    assert sampler.prompts_by_call() == [[p.id for p in ps], below, below]
    recs = records(tmp_path / "log.jsonl")
    guided = [r for r in recs if r.source == "guided"]
    assert {r.problem["id"] for r in guided} == set(below)
    assert sorted({r.guide["round"] for r in guided}) == [1, 2]
    assert all(r.source == "rejection" and r.guide is None for r in recs if r not in guided)
    assert res.rounds == 3 and res.guided_problems == 2 and res.generation_calls == 16 + 8 + 8

    # Guidance that works lifts the tail problems over the bar after one round: no second round.
    sampler = FakeSampler(plain_right={ps[0].id: 4, ps[1].id: 2, ps[2].id: 1, ps[3].id: 0}, guided_right=always)
    res = guided_collect(ps, sampler, None, tmp_path / "log2.jsonl", cfg, progress=False)
    assert sampler.prompts_by_call() == [[p.id for p in ps], below]
    assert res.rounds == 2 and res.coverage_round0 == 0.75 and res.coverage_final == 1.0 and res.solved_by_guidance == 1


def test_the_default_run_config_guides_only_the_tail(problems, tmp_path):
    """Issue 18: with the loop's defaults (`collect.source=guided` and nothing
    else), a problem the student gets right in round 0 gets no guided round;
    only the one it never gets right does. (Before, samples_per_problem 2 and
    guided_min_correct 4 left every problem below the bar, so all were guided.)"""
    from tripost.runconfig import RunConfig

    cfg = RunConfig.load(None, ["collect.source=guided"]).data_source().config
    n = cfg.samples_per_round
    easy, half, hard = problems[:3]
    sampler = FakeSampler(plain_right={easy.id: n, half.id: 1})
    res = guided_collect([easy, half, hard], sampler, None, tmp_path / "log.jsonl", cfg, progress=False)
    guided = [r for r in records(tmp_path / "log.jsonl") if r.source == "guided"]
    assert {r.problem["id"] for r in guided} == {hard.id}
    assert all(call == [hard.id] for call in sampler.prompts_by_call()[1:])
    assert res.guided_problems == 1 and res.rounds == cfg.max_rounds + 1


def test_a_guided_config_that_would_guide_every_problem_is_one_line(tmp_path, capsys):
    from tripost.cli import main
    from tripost.runconfig import RunConfig

    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "collect.source=guided", "collect.samples_per_problem=2", "collect.guided_min_correct=3"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1 and err[0].startswith("tripost run: error: collect.samples_per_problem (2) is below collect.guided_min_correct (3)")
    assert not out.exists()
    RunConfig.load(None, ["collect.samples_per_problem=2", "collect.guided_min_correct=3"])  # other sources do not read it
    RunConfig.load(None, ["collect.source=guided", "collect.samples_per_problem=3", "collect.guided_min_correct=3"])
    # `tripost collect --guided`: the same check, named by the flags, before any model loads.
    argv = ["collect", "--task", "arithmetic", "--n", "2", "--guided", "answer", "--out", str(tmp_path / "c")]
    assert main([*argv, "--samples", "2", "--min-correct", "3"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert err == ["tripost collect: error: --samples (2) is below --min-correct (3): no problem could "
                   "reach it in the plain round, so every problem would be guided; raise the first or lower the second"]
    assert main([*argv, "--samples", "8", "--min-correct", "9"]) == 2
    assert "--samples (8) is below --min-correct (9):" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("strategy", ["answer", "rationale", "state_reset", "interactive"])
def test_each_strategy_shows_its_hint_and_the_record_does_not(problems, tmp_path, strategy):
    teacher = ScriptedTeacher()
    sampler = FakeSampler(guided_right=always)  # plain samples all wrong, guided ones right
    cfg = GuidedConfig(strategy=strategy, samples_per_round=2, min_correct=1, max_rounds=1)
    log = tmp_path / "log.jsonl"
    res = guided_collect(problems, sampler, teacher, log, cfg, progress=False)
    assert res.coverage_round0 == 0.0 and res.coverage_final == 1.0

    plain_prompts, guided_prompts = sampler.calls[0][0], sampler.calls[1][0]
    assert all(gp.instruction == plain_instruction(gp.problem) and gp.prefix == "" for gp in plain_prompts)
    for gp in guided_prompts:
        p = gp.problem
        if strategy == "answer":
            assert f"the answer is {p.answer}." in gp.instruction and gp.prefix == ""
        elif strategy == "rationale":
            assert p.rationale.strip() in gp.instruction and gp.prefix == ""
        elif strategy == "state_reset":
            assert gp.instruction == plain_instruction(p)
            assert gp.prefix and p.rationale.startswith(gp.prefix)
        else:
            wrong = wrong_rationale(p)
            assert wrong in gp.instruction and teacher.feedback(p, wrong).text in gp.instruction
        assert p.question in gp.instruction

    recs = records(log)
    guided = [r for r in recs if r.source == "guided"]
    assert len(guided) == len(problems) * 2 and all(r.kind == "direct" and r.guide["strategy"] == strategy for r in guided)
    by_id = {p.id: p for p in problems}
    for r in guided:
        p = by_id[r.problem["id"]]
        assert r.problem == p.to_dict()  # the original problem: no hint in the question
        assert len(r.turns) == 1 and set(r.turns[0]) == {"rationale", "feedback", "source", "answer", "error_step"}
        assert r.turns[0]["rationale"] == p.rationale.strip() and r.turns[0]["error_step"] is None
        assert not any(w in r.turns[0]["rationale"] for w in TEMPLATE_WORDS)
        if strategy in ("answer", "rationale", "interactive"):
            assert r.guide["hint"] and r.guide["fraction"] is None
        else:
            assert r.guide["hint"] is None and r.guide["fraction"] == 0.2
    if strategy == "interactive":
        assert res.teacher_calls == len(problems)  # one feedback per problem-round, booked once
        assert sum(len(r.teacher_calls) for r in guided) == len(problems)

    # The buffer built from the log prompts with the plain question and trains on the rationale only.
    examples, dropped = examples_from_records(recs)
    assert dropped["not correct"] == len(problems) * 2  # the wrong plain samples
    for e in examples:
        assert e.prompt == by_id[e.problem_id].question
        assert not any(w in e.completion for w in TEMPLATE_WORDS)
    chosen, stats = build_buffer(recs)
    assert chosen and all(e.prompt == by_id[e.problem_id].question for e in chosen)


def test_state_reset_prefixes_cycle_and_trajectories_start_with_them(problems, tmp_path):
    sampler = FakeSampler()  # never right: every round runs
    cfg = GuidedConfig(strategy="state_reset", samples_per_round=1, min_correct=1, max_rounds=5)
    res = guided_collect(problems, sampler, None, tmp_path / "log.jsonl", cfg, progress=False)
    assert res.rounds == 6 and res.coverage_final == 0.0
    recs = [r for r in records(tmp_path / "log.jsonl") if r.source == "guided"]
    assert len(recs) == len(problems) * 5
    kept = Counter()
    for r in recs:
        g = r.guide
        assert g["fraction"] == (0.2, 0.4, 0.6, 0.8)[(g["round"] - 1) % 4]
        n = parse_rationale(r.problem["rationale"]).n_steps
        kept[(n, g["fraction"])] = g["kept_steps"]
        prefix, k = reset_prefix(r.problem["rationale"], g["fraction"])
        assert k == g["kept_steps"] and r.turns[0]["rationale"].startswith(prefix)
        assert parse_rationale(prefix).steps == parse_rationale(r.problem["rationale"]).steps[:k]
    # k = clamp(round(f * n), 1, max(1, n - 1)): four-step and one-step gold rationales.
    assert {f: kept[(4, f)] for f in (0.2, 0.4, 0.6, 0.8)} == {0.2: 1, 0.4: 2, 0.6: 2, 0.8: 3}
    assert {kept[(1, f)] for f in (0.2, 0.4, 0.6, 0.8)} == {1}
    # The student's own text is counted, the gold prefix is not.
    assert res.generated_chars == sum(len(r.turns[0]["rationale"]) for r in records(tmp_path / "log.jsonl")) - sum(
        r.guide["prefix_chars"] for r in recs)


def test_reset_prefix_cuts_at_a_step_boundary():
    gold = "(1) a = 1.\n(2) b = 2.\n(3) c = 3.\n(4) d = 4.\n(Final response) So the answer is 4."
    assert reset_prefix(gold, 0.2) == ("(1) a = 1.\n", 1)
    assert reset_prefix(gold, 0.8) == ("(1) a = 1.\n(2) b = 2.\n(3) c = 3.\n", 3)
    assert reset_prefix("(1) x = 3.\n(Final response) So the answer is 3.", 0.2) == ("(1) x = 3.\n", 1)
    with pytest.raises(TripostError):
        reset_prefix("So the answer is 3.", 0.5)


def test_coverage_and_difficulty_histograms(problems, tmp_path):
    ps = problems[:4]  # len3-1, len2-2, len3-1, len2-2
    assert [p.difficulty for p in ps] == ["len3-1", "len2-2", "len3-1", "len2-2"]
    sampler = FakeSampler(plain_right={ps[0].id: 4, ps[2].id: 1}, guided_right=lambda gp: gp.problem.id == ps[1].id)
    cfg = GuidedConfig(strategy="answer", samples_per_round=4, min_correct=2, max_rounds=1)
    res = guided_collect(ps, sampler, None, tmp_path / "log.jsonl", cfg, progress=False)
    assert res.generation_calls_by_round == [16, 12] and res.generation_calls == 28
    assert res.coverage_by_round == [0.5, 0.75] and (res.coverage_round0, res.coverage_final) == (0.5, 0.75)
    assert (res.correct_round0, res.correct_final) == (5, 9) and res.usable == 9
    assert (res.steps_ok_round0, res.steps_ok_final) == (5, 9)  # the fake's right samples are the gold rationale
    assert (res.coverage_steps_round0, res.coverage_steps_final) == (0.5, 0.75)
    assert res.difficulty == {
        "pool": {"len3-1": 2, "len2-2": 2},
        "collected_round0": {"len3-1": 5},
        "collected": {"len3-1": 5, "len2-2": 4},
        "covered_round0": {"len3-1": 2},
        "covered": {"len3-1": 2, "len2-2": 1},
    }
    assert res.tail["tv_round0"] == pytest.approx(0.5)
    assert res.tail["tv_final"] == pytest.approx(0.5 * (abs(0.5 - 5 / 9) + abs(0.5 - 4 / 9)))
    assert (res.guided_problems, res.solved_by_guidance) == (3, 1)
    assert res.by_kind == {"direct": 9, "failed": 19} and res.by_source == {"rejection": 16, "guided": 12}
    assert json.loads(json.dumps(res.to_dict()))["coverage_final"] == 0.75


@pytest.mark.parametrize("check", ["answer", "steps"])
def test_a_right_answer_from_a_wrong_step_is_measured_or_filtered(problems, tmp_path, check):
    def right_answer_wrong_step(text, gp):
        return TASK.corrupt(gp.problem, 1, random.Random(0))  # step (1) wrong, the final answer kept

    sampler = FakeSampler(decorate=right_answer_wrong_step)
    cfg = GuidedConfig(strategy="resample", samples_per_round=1, min_correct=1, max_rounds=0, check=check)
    res = guided_collect(problems, sampler, None, tmp_path / "log.jsonl", cfg, progress=False)
    recs = records(tmp_path / "log.jsonl")
    assert all(r.turns[0]["error_step"] == 1 for r in recs)
    assert (res.steps_ok_final, res.coverage_steps_final) == (0, 0.0)
    if check == "answer":
        assert res.coverage_final == 1.0 and all(r.kind == "direct" for r in recs)
    else:
        assert res.coverage_final == 0.0 and all(r.kind == "failed" and r.stop_reason == "wrong step" for r in recs)


def test_tv_distance():
    assert tv_distance({"a": 1, "b": 1}, {"a": 3, "b": 3}) == 0.0
    assert tv_distance({"a": 2}, {"b": 5}) == 1.0
    assert tv_distance({"a": 1, "b": 3}, {"a": 1, "b": 1}) == pytest.approx(0.25)
    assert tv_distance({}, {"a": 1}) is None


def test_a_sample_that_mentions_its_guidance_is_not_kept(problems, tmp_path):
    def chatty(text, gp):
        return ("As the hint says, we just check it.\n" + text) if gp.instruction != plain_instruction(gp.problem) else text

    sampler = FakeSampler(guided_right=always, decorate=chatty)
    cfg = GuidedConfig(strategy="answer", samples_per_round=2, min_correct=1, max_rounds=1)
    res = guided_collect(problems, sampler, None, tmp_path / "log.jsonl", cfg, progress=False)
    guided = [r for r in records(tmp_path / "log.jsonl") if r.source == "guided"]
    assert all(r.kind == "failed" and r.stop_reason == "mentions the guidance" and r.guide["marker"] == "hint" for r in guided)
    assert res.leaked == len(guided) and res.coverage_final == 0.0 and res.usable == 0
    assert mentions_guidance("(1) Let's calculate 3 = 3.", ("hint", "reference")) is None
    assert mentions_guidance("Using the Reference: 3", ("hint", "reference")) == "reference"
    assert mentions_guidance("thinking", ("hint",)) is None  # words, not substrings


def test_rationale_copies_are_counted(problems, tmp_path):
    sampler = FakeSampler(guided_right=always)
    cfg = GuidedConfig(strategy="rationale", samples_per_round=2, min_correct=1, max_rounds=1)
    res = guided_collect(problems, sampler, None, tmp_path / "log.jsonl", cfg, progress=False)
    assert res.copied == len(problems) * 2  # the fake copies the reference verbatim


def test_budget_caps_samples_and_goes_to_the_fewest_correct_first(problems, tmp_path):
    ps = problems[:4]
    sampler = FakeSampler(plain_right={ps[0].id: 1, ps[3].id: 1})
    cfg = GuidedConfig(strategy="resample", samples_per_round=2, min_correct=2, max_rounds=3, budget=8 + 4 + 1)
    res = guided_collect(ps, sampler, None, tmp_path / "log.jsonl", cfg, progress=False)
    assert sampler.prompts_by_call() == [[p.id for p in ps], [ps[1].id, ps[2].id]]
    assert res.generation_calls == 12 <= cfg.budget and res.budget_hit
    recs = records(tmp_path / "log.jsonl")
    assert all(r.source == "rejection" and r.guide is None for r in recs)  # resample rounds are plain sampling


def test_unguidable_problems_are_counted_not_sampled(problems, tmp_path):
    ps = [problems[0], dataclasses.replace(problems[1], rationale="")]
    sampler = FakeSampler()
    cfg = GuidedConfig(strategy="state_reset", samples_per_round=1, min_correct=1, max_rounds=1)
    res = guided_collect(ps, sampler, None, tmp_path / "log.jsonl", cfg, progress=False)
    assert sampler.prompts_by_call() == [[ps[0].id, ps[1].id], [ps[0].id]] and res.unguidable == 1


def test_teacher_edits_turn_plain_failures_into_improvements(problems, tmp_path):
    sampler = FakeSampler(plain_right={problems[0].id: 1})
    cfg = GuidedConfig(strategy="answer", samples_per_round=1, min_correct=1, max_rounds=0, teacher_edits=True)
    res = guided_collect(problems, sampler, ScriptedTeacher(), tmp_path / "log.jsonl", cfg, progress=False)
    recs = records(tmp_path / "log.jsonl")
    edited = [r for r in recs if r.source == "teacher"]
    assert len(edited) == len(problems) - 1 and all(r.kind == "improvement" and r.teacher_calls for r in edited)
    # Coverage counts the student's own correct samples only.
    assert res.coverage_final == pytest.approx(1 / len(problems)) and res.teacher_improvements == len(problems) - 1
    assert res.usable == len(problems)


class Interrupted(Exception):
    pass


def test_resume_after_interruption_writes_no_duplicates(problems, tmp_path):
    cfg = GuidedConfig(strategy="interactive", samples_per_round=2, min_correct=1, max_rounds=2, batch_size=2)
    teacher = ScriptedTeacher()
    plain = {problems[0].id: 2}

    # An uninterrupted reference run.
    ref = guided_collect(problems, FakeSampler(plain), teacher, tmp_path / "ref.jsonl", cfg, progress=False)
    ref_keys = [r.key for r in records(tmp_path / "ref.jsonl")]
    assert len(ref_keys) == ref.generation_calls == 6 * 2 + 5 * 2 * 2

    class Dying(FakeSampler):
        def __call__(self, prompts, n, seed):
            if len(self.calls) == 4:  # round 0 is 3 calls; die inside round 1
                raise Interrupted
            return super().__call__(prompts, n, seed)

    log = tmp_path / "log.jsonl"
    with pytest.raises(Interrupted):
        guided_collect(problems, Dying(plain), teacher, log, cfg, progress=False)
    before = len(records(log))
    assert before == 6 * 2 + 2 * 2
    with log.open("a") as f:
        f.write('{"key": "torn')  # what a crash mid-write leaves

    sampler = FakeSampler(plain)
    res = guided_collect(problems, sampler, teacher, log, cfg, progress=False)
    keys = [r.key for r in records(log)]
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(ref_keys)
    assert res.records_skipped == before and res.records_written == len(ref_keys) - before
    assert res.generation_calls == ref.generation_calls and res.coverage_final == ref.coverage_final
    assert sum(len(c[0]) for c in sampler.calls) == 3 + 5  # the unfinished part of round 1, then round 2

    # Once finished, a rerun samples nothing and writes nothing.
    again = FakeSampler(plain)
    res = guided_collect(problems, again, teacher, log, cfg, progress=False)
    assert again.calls == [] and res.records_written == 0 and res.records_skipped == len(ref_keys)


def test_round0_is_shared_between_strategies(problems, tmp_path):
    log = tmp_path / "log.jsonl"
    guided_collect(problems, FakeSampler(), None, log, GuidedConfig(strategy="answer", samples_per_round=1, min_correct=1, max_rounds=1), progress=False)
    sampler = FakeSampler()
    res = guided_collect(problems, sampler, None, log, GuidedConfig(strategy="rationale", samples_per_round=1, min_correct=1, max_rounds=1), progress=False)
    assert len(sampler.calls) == 1 and res.records_skipped == len(problems)  # only the rationale round was sampled
    assert guided_key(problems[0], 0, 0, 0, "answer") == guided_key(problems[0], 0, 0, 0, "rationale")
    assert guided_key(problems[0], 1, 0, 0, "answer") != guided_key(problems[0], 1, 0, 0, "rationale")
    assert [key_round(guided_key(problems[0], r, 3, 2, s)) for r, s in ((0, "answer"), (7, "state_reset"), (12, "resample"))] == [0, 7, 12]
    assert key_round(f"{problems[0].id}#sharpen@it1") is None


def test_templates_fill_in_one_pass():
    text = fill_template("guided/answer.txt", question="(1 + {hint}) =", hint="7")
    assert "Q: (1 + {hint}) =" in text and "the answer is 7." in text
    with pytest.raises(TripostError, match="placeholder"):
        fill_template("guided/answer.txt", question="q", attempt="a")


# ------------------------------------------------------------ tiny real model ---


@pytest.mark.parametrize("strategy", ["state_reset", "answer"])
def test_on_the_tiny_model(tiny_model_dir, tmp_path, strategy):
    from tripost.student import SamplingParams, build_prompt, load_student

    student = load_student(f"hf:{tiny_model_dir}")
    seen: list[list[str]] = []
    real_sample = student.sample

    def spy(prompts, params, **kw):
        seen.append(list(prompts))
        assert params.n == 2
        return real_sample(prompts, params, **kw)

    student.sample = spy
    ps = sample_problems(TASK, split="train", n=2, seed=3)
    sampler = guided_student_sampler(student, SamplingParams(temperature=1.0, max_new_tokens=6))
    cfg = GuidedConfig(strategy=strategy, samples_per_round=2, min_correct=1, max_rounds=1)
    res = guided_collect(ps, sampler, None, tmp_path / "log.jsonl", cfg, progress=False)
    assert res.coverage_round0 == 0.0  # a random tiny model is never right
    assert res.generation_calls == 8 and res.rounds == 2 and len(seen) == 2
    # Round 0 prompts are exactly the training prompts.
    assert seen[0] == [build_prompt(student.tokenizer, p.question) for p in ps]
    recs = [r for r in records(tmp_path / "log.jsonl") if r.source == "guided"]
    assert len(recs) == 4
    for p, prompt in zip(ps, seen[1]):
        if strategy == "state_reset":
            prefix, _ = reset_prefix(p.rationale, 0.2)
            assert prompt == build_prompt(student.tokenizer, p.question) + prefix
            assert all(r.turns[0]["rationale"].startswith(prefix.strip()) for r in recs if r.problem["id"] == p.id)
        else:
            assert prompt.startswith("<|im_start|>") and f"Hint: the answer is {p.answer}." in prompt
            assert prompt.endswith("<|im_start|>assistant\n")
    assert all(r.problem == next(p for p in ps if p.id == r.problem["id"]).to_dict() for r in recs)
    with pytest.raises(TripostError, match="temperature"):
        guided_student_sampler(student, SamplingParams(temperature=0.0))


def test_collect_cli_guided(tiny_model_dir, tmp_path, capsys):
    from tripost.cli import collect_cmd

    parser = argparse.ArgumentParser()
    collect_cmd.register(parser.add_subparsers(dest="verb"))
    out = tmp_path / "run"
    argv = ["collect", "--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "2", "--samples", "2",
            "--guided", "state_reset", "--min-correct", "1", "--guided-rounds", "1", "--max-new-tokens", "6",
            "--temperature", "1.0", "--guided-check", "steps", "--out", str(out), "--json"]
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["strategy"] == "state_reset" and summary["generation_calls"] == 8
    assert json.loads((out / "collect.json").read_text()) == summary
    recs = records(out / "log.jsonl")
    assert len(recs) == 8 and Counter(r.source for r in recs) == {"rejection": 4, "guided": 4}
    args = parser.parse_args(argv[:-3] + ["--out", str(tmp_path / "x"), "--budget", "4"])
    args.guided = None
    with pytest.raises(TripostError, match=r"--budget go with --source guided \(or --guided STRATEGY\)$"):
        args.handler(args)
