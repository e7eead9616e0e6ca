"""Sharpening (tripost/sharpen.py): reward selection, the best-of-N
estimators against brute-force enumeration, sharpened records through the
replay buffer, and `tripost sharpen eval` and `tripost collect --source sharpen` on a scripted fake student and
on the tiny model."""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest

import tripost.cli as cli
from tripost.buffer import BufferConfig, build_buffer, examples_from_records
from tripost.errors import TripostError
from tripost.format import ALL_CORRECT_TAIL
from tripost.log import LogRecord, read_log
from tripost.sharpen import (
    Candidate,
    SharpenConfig,
    accuracy_vs_n,
    attempt_of,
    best_of_n,
    evaluate_candidates,
    expected_best_of_n,
    majority_choice,
    majority_over_subsets,
    oracle_at_n,
    parse_ns,
    parse_rewards,
    subsets,
)
from tripost.sources.sharpen import sharpen_key, sharpen_records, write_sharpen_log
from tripost.student.generate import Generation
from tripost.student.logprob import SequenceScore
from tripost.tasks import get_task, sample_problems


def cand(lp: float, n: int, answer: str | None = None, correct: bool = False, text: str = "x") -> Candidate:
    return Candidate(text=text, logprob=lp, mean_logprob=lp / n, n_tokens=n, answer=answer, correct=correct)


# ------------------------------------------------------------- selection ---


def test_logprob_and_mean_logprob_pick_different_samples():
    # A short answer is likelier in total; a long one likelier per token.
    short, long_ = cand(-5.0, 2), cand(-8.0, 16)  # means -2.5 and -0.5
    assert best_of_n([short, long_], "logprob") == 0
    assert best_of_n([short, long_], "mean_logprob") == 1
    assert best_of_n([long_, short], "logprob") == 1


def test_majority_tie_goes_to_the_answer_with_the_likelier_best_sample():
    answers = ["3", "5", "3", "5", None]
    means = [-1.0, -0.9, -0.2, -0.4, -0.01]
    # 3 and 5 tie with two votes; the best "3" (-0.2) beats the best "5" (-0.4);
    # the answerless sample is likeliest of all but has no vote.
    assert majority_choice(answers, means) == 2
    means_5 = [-1.0, -0.1, -0.2, -0.4, -0.01]
    assert majority_choice(answers, means_5) == 1
    # A clear majority wins over likelihood.
    assert majority_choice(["7", "7", "8"], [-3.0, -2.0, -0.1]) == 1
    # No answers at all: the likeliest sample.
    assert majority_choice([None, None], [-2.0, -1.0]) == 1
    cands = [cand(m, 1, a) for m, a in zip(means, answers)]
    assert best_of_n(cands, "majority") == 2


def test_ties_go_to_the_lower_index_and_empty_attempts_never_win():
    assert best_of_n([cand(-1, 1), cand(-1, 1)], "logprob") == 0
    empty = Candidate(text="", logprob=-math.inf, mean_logprob=-math.inf)
    assert best_of_n([empty, cand(-50, 10)], "mean_logprob") == 1


def test_bad_names_are_errors():
    with pytest.raises(TripostError, match="unknown reward 'best'"):
        best_of_n([cand(-1, 1)], "best")
    with pytest.raises(TripostError, match="unknown reward"):
        SharpenConfig(reward="nope")
    assert parse_rewards("all") == ["logprob", "mean_logprob", "majority"]
    assert parse_rewards("majority,logprob") == ["majority", "logprob"]
    assert parse_ns("16,1,4,4") == [1, 4, 16]
    for bad in ("0,2", "a", ""):
        with pytest.raises(TripostError, match="--ns"):
            parse_ns(bad)
    with pytest.raises(TripostError, match="greedy"):
        SharpenConfig(samples=4, temperature=0)


def test_attempt_is_cut_at_the_students_own_feedback():
    text = "(1) 2 + 2 = 4.\n(Final response) So the answer is 4.\nFeedback: The final response is also correct."
    assert attempt_of(text) == "(1) 2 + 2 = 4.\n(Final response) So the answer is 4."
    assert attempt_of("  ") == ""


# ---------------------------------------------------------- expectations ---


def brute_force(cands: list[Candidate], n: int, reward: str) -> float:
    picks = [cands[list(s)[best_of_n([cands[i] for i in s], reward)]].correct for s in itertools.combinations(range(len(cands)), n)]
    return sum(picks) / len(picks)


def test_expected_best_of_n_by_hand():
    # Scores 3, 1, 2; correct F, T, T. Pairs: {0,1} -> 0 (F), {0,2} -> 0 (F), {1,2} -> 2 (T).
    assert expected_best_of_n([3.0, 1.0, 2.0], [False, True, True], 2) == pytest.approx(1 / 3)
    assert expected_best_of_n([3.0, 1.0, 2.0], [False, True, True], 1) == pytest.approx(2 / 3)
    assert expected_best_of_n([3.0, 1.0, 2.0], [False, True, True], 3) == 0.0
    assert oracle_at_n([False, True, True], 1) == pytest.approx(2 / 3)
    assert oracle_at_n([False, False, True], 2) == pytest.approx(2 / 3)
    assert oracle_at_n([False, False, False], 3) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_closed_forms_equal_brute_force_enumeration(seed):
    rng = random.Random(seed)
    m = rng.randint(2, 8)
    # Few distinct values, so ties in score and in votes occur.
    cands = [
        Candidate(text="x", logprob=float(rng.randint(-4, 0)), mean_logprob=float(rng.randint(-3, 0)) / 2,
                  answer=rng.choice(["1", "2", "3", None]), correct=False)
        for _ in range(m)
    ]
    cands = [Candidate(**{**c.__dict__, "correct": c.answer == "2"}) for c in cands]
    correct = [c.correct for c in cands]
    for n in range(1, m + 1):
        for reward in ("logprob", "mean_logprob"):
            scores = [c.logprob if reward == "logprob" else c.mean_logprob for c in cands]
            assert expected_best_of_n(scores, correct, n) == pytest.approx(brute_force(cands, n, reward))
        idx, exact = subsets(m, n, 10_000, np.random.default_rng(0))
        assert exact and len(idx) == math.comb(m, n)
        got = majority_over_subsets([c.answer for c in cands], [c.mean_logprob for c in cands], correct, idx)
        assert got == pytest.approx(brute_force(cands, n, "majority"))
        any_ok = [any(correct[i] for i in s) for s in itertools.combinations(range(m), n)]
        assert oracle_at_n(correct, n) == pytest.approx(sum(any_ok) / len(any_ok))


def test_monte_carlo_subsets_approach_the_exact_value():
    rng = random.Random(7)
    answers = [rng.choice(["1", "2", "3"]) for _ in range(12)]
    means = [-rng.random() for _ in answers]
    correct = [a == "1" for a in answers]
    exact_idx, exact = subsets(12, 5, 10_000, np.random.default_rng(0))
    mc_idx, mc_exact = subsets(12, 5, 500, np.random.default_rng(0))  # C(12, 5) = 792 > 500
    assert exact and not mc_exact and mc_idx.shape == (500, 5)
    assert all(len(set(r)) == 5 and list(r) == sorted(r) for r in mc_idx[:50])
    want = majority_over_subsets(answers, means, correct, exact_idx)
    assert majority_over_subsets(answers, means, correct, mc_idx) == pytest.approx(want, abs=0.07)


def test_evaluate_candidates_rows():
    p1 = [cand(-1, 1, "4", True), cand(-9, 9, "5", False), cand(-2, 1, "4", True), cand(-3, 3, "6", False)]
    # p2: logprob ties at -1 (index 0, wrong); mean_logprob picks index 1 (-0.5, right);
    # majority: "1" has two votes, its samples tie at -1, index 0 (wrong).
    p2 = [cand(-1, 1, "1", False), cand(-1, 2, "2", True), cand(-3, 3, "1", False), cand(-4, 2, "3", False)]
    values, exact = evaluate_candidates([p1, p2], [1, 2, 4], "all", max_subsets=100)
    single = [0.5, 0.25]
    assert list(values["single"][0]) == single
    for r in ("logprob", "mean_logprob", "majority"):
        assert list(values[r][0]) == pytest.approx(single)  # best-of-1 is a random sample
    # N = 4 is the whole set: the reward's own pick.
    assert list(values["logprob"][2]) == [1.0, 0.0]
    assert list(values["mean_logprob"][2]) == [1.0, 1.0]
    assert list(values["majority"][2]) == [1.0, 0.0]
    assert list(values["oracle"][2]) == [1.0, 1.0]
    assert all(all(v) for v in exact.values())


# ------------------------------------------------------ a scripted student ---


class FakeTokenizer:
    chat_template = None
    eos_token = ""


class FakeStudent:
    """Returns scripted attempts per question and scores them from a table:
    the whole pipeline runs (prompts, sampling, cutting, scoring, parsing,
    checking) without a model."""

    def __init__(self, attempts: dict[str, list[tuple[str, float, int]]]):
        self.tokenizer = FakeTokenizer()
        self.attempts = attempts
        self.scores = {text: (lp, n) for rows in attempts.values() for text, lp, n in rows}
        self.sample_calls: list[tuple[int, int]] = []

    def _question(self, prompt: str) -> str:
        return next(q for q in self.attempts if q in prompt)

    def sample(self, prompts, params, **kw):
        self.sample_calls.append((len(prompts), params.n))
        out = []
        for i, p in enumerate(prompts):
            rows = self.attempts[self._question(p)]
            out.append([Generation(i, j, rows[j % len(rows)][0] + "\nFeedback: whatever", 5, "stop") for j in range(params.n)])
        return out

    def logprobs(self, prompts, texts, **kw):
        assert kw.get("append_eos") is True
        return [SequenceScore(self.scores[t][0], self.scores[t][0] / self.scores[t][1], self.scores[t][1]) for t in texts]

    def describe(self):
        return {"student": "fake", "precision": "fp32", "adapter": None}


def rationale(answer: str, steps: int = 1) -> str:
    body = "\n".join(f"({k + 1}) step {k + 1} of the sum." for k in range(steps))
    return f"{body}\n(Final response) So the answer is {answer}."


def scripted(problems):
    """Per problem: a right answer that is long and likely per token, a wrong
    one that is short and likelier in total (twice), one with no answer."""
    table = {}
    for p in problems:
        wrong = str(int(p.answer) + 1)
        table[p.question] = [
            (rationale(p.answer, steps=6), -12.0, 48),  # mean -0.25
            (rationale(wrong), -6.0, 12),  # mean -0.5
            (rationale(wrong, steps=2), -6.5, 13),  # mean -0.5
            ("I do not know", -20.0, 4),
        ]
    return table


def test_accuracy_vs_n_end_to_end_with_a_scripted_student():
    problems = sample_problems(get_task("arithmetic"), split="test", n=3, seed=0)
    student = FakeStudent(scripted(problems))
    res = accuracy_vs_n(student, problems, ns=(1, 2, 4), reward="all", n_boot=200)
    assert student.sample_calls == [(3, 4)]  # one batched call for max(ns) samples
    table = res.table()
    acc = {r: [c["accuracy"] for c in table[r]] for r in table}
    assert acc["single"] == [0.25, 0.25, 0.25]
    # logprob prefers the short wrong answer; mean_logprob the long right one; majority the wrong one (2 votes).
    assert acc["logprob"][-1] == 0.0 and acc["mean_logprob"][-1] == 1.0 and acc["majority"][-1] == 0.0
    # Best-of-2 by mean_logprob is right whenever the right sample is in the pair: 3 of 6 pairs.
    assert acc["mean_logprob"][1] == pytest.approx(0.5)
    assert acc["oracle"] == pytest.approx([0.25, 0.5, 1.0])
    assert table["mean_logprob"][-1]["gain"] == pytest.approx(0.75)
    assert table["mean_logprob"][-1]["ci"] == [1.0, 1.0]
    s = res.summary()
    assert s["samples_per_problem"] == 4 and s["problems"]["n"] == 3 and s["problems"]["splits"] == ["test"]
    assert s["per_problem"][0]["correct_samples"] == 1
    samples = [json.loads(x) for x in res.samples_jsonl().splitlines()]
    assert len(samples) == 12 and not any("Feedback" in x["text"] for x in samples)


def test_accuracy_vs_n_refuses_training_problems():
    problems = sample_problems(get_task("arithmetic"), split="train", n=1, seed=0)
    with pytest.raises(TripostError, match="train split"):
        accuracy_vs_n(FakeStudent(scripted(problems)), problems, ns=(1,))


def test_sharpen_records_are_kept_by_the_buffer_even_when_wrong(tmp_path):
    problems = sample_problems(get_task("arithmetic"), split="train", n=4, seed=0)
    student = FakeStudent(scripted(problems))
    cfg = SharpenConfig(samples=4, reward="logprob")
    recs = sharpen_records(problems, student, cfg, iteration=2, seed=5)
    assert [r.key for r in recs] == [sharpen_key(p, "logprob", 2) for p in problems]
    for r in recs:
        assert r.source == "sharpen" and r.kind == "direct" and len(r.turns) == 1 and r.iteration == 2
        assert r.final_correct is False  # logprob picked the short wrong answer
        assert r.turns[0]["feedback"] is None  # nothing checked the pick: no verdict on it
        assert "Feedback" not in r.turns[0]["rationale"] and r.sample_index == 1
        assert r.student["sharpen"]["correct_samples"] == 1 and r.student["sampling"]["n"] == 4
    # Round trip through the log format.
    rt = [LogRecord.from_dict(json.loads(r.to_json())) for r in recs]
    examples, dropped = examples_from_records(rt, include_gold=False)
    assert [e.kind for e in examples] == ["direct"] * 4 and not dropped
    # Trained as a plain attempt: exactly the picked text, no closing "also correct".
    assert [e.completion for e in examples] == [r.turns[0]["rationale"].strip() for r in rt]
    assert not any("Feedback" in e.completion or ALL_CORRECT_TAIL in e.completion for e in examples)
    # The same wrong record checked by a teacher is dropped: only an unchecked record skips the check.
    assert all(r.checked is False for r in rt)
    teacher = [LogRecord.from_dict({**json.loads(r.to_json()), "source": "teacher", "checked": True}) for r in recs]
    assert examples_from_records(teacher, include_gold=False)[1]["not correct"] == 4
    buf, stats = build_buffer(rt, BufferConfig(include_gold=False, ratio=(0, 1, 0)))
    assert len(buf) == 4 and stats.by_kind_after["direct"] == 4
    # mean_logprob picks the right answers.
    good = sharpen_records(problems, student, SharpenConfig(samples=4, reward="mean_logprob"))
    assert all(r.final_correct and r.sample_index == 0 for r in good)


def test_a_sharpen_pick_is_trained_as_a_plain_attempt_not_as_approved(tiny_model_dir):
    """Issue 18: SFT-sharpening must not teach the student to approve its own
    unchecked answer. Every completion token of a sharpen example, its EOS
    included, weighs the attempt weight; nothing weighs the feedback weight
    (1.5), and the text holds no verdict. A log written before the change
    (feedback "also correct" on the turn) trains the same way."""
    from transformers import AutoTokenizer

    from tripost.buffer import closing_feedback
    from tripost.student import build_prompt
    from tripost.train import TrainConfig, tokenize_example

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    problems = sample_problems(get_task("arithmetic"), split="train", n=2, seed=0)
    recs = sharpen_records(problems, FakeStudent(scripted(problems)), SharpenConfig(samples=4, reward="logprob"))
    old = [LogRecord.from_dict({**json.loads(r.to_json()), "turns": [{**r.turns[0], "feedback": closing_feedback(r.turns[0]["rationale"])}]}) for r in recs]
    cfg = TrainConfig()
    assert cfg.feedback_weight != cfg.attempt_weight
    for records in (recs, old):
        examples, _ = examples_from_records(records, include_gold=False)
        assert len(examples) == 2
        for e, r in zip(examples, records):
            assert e.completion == r.turns[0]["rationale"].strip()
            ex = tokenize_example(tok, build_prompt(tok, e.prompt), e.completion, attempt_weight=cfg.attempt_weight,
                                  feedback_weight=cfg.feedback_weight)
            assert ex.feedback_start is None
            completion = ex.weights[ex.prompt_len:]
            assert completion and set(completion) == {cfg.attempt_weight} and ex.input_ids[-1] == tok.eos_token_id
    # The same text from a correct rejection-sampling record still closes with the verdict, weighed as feedback.
    checked = [LogRecord.from_dict({**json.loads(r.to_json()), "source": "rejection", "final_correct": True, "checked": True}) for r in recs]
    e = examples_from_records(checked, include_gold=False)[0][0]
    assert e.completion.endswith(ALL_CORRECT_TAIL)
    ex = tokenize_example(tok, build_prompt(tok, e.prompt), e.completion, attempt_weight=cfg.attempt_weight, feedback_weight=cfg.feedback_weight)
    assert cfg.feedback_weight in ex.weights[ex.prompt_len:]


def test_write_sharpen_log_resumes_by_key(tmp_path):
    problems = sample_problems(get_task("arithmetic"), split="train", n=5, seed=0)
    student = FakeStudent(scripted(problems))
    log = tmp_path / "s.jsonl"
    cfg = SharpenConfig(samples=2, reward="majority")
    first = write_sharpen_log(problems[:3], student, log, cfg, chunk_size=2, progress=False)
    assert first.records_written == 3 and first.records_skipped == 0
    assert student.sample_calls == [(2, 2), (1, 2)]
    again = write_sharpen_log(problems, student, log, cfg, chunk_size=2, progress=False)
    assert again.records_written == 2 and again.records_skipped == 3
    keys = [r.key for r in read_log(log)]
    assert keys == [sharpen_key(p, "majority", 0) for p in problems]


# ----------------------------------------------------------- the tiny model ---


def test_candidates_on_the_tiny_model_carry_their_own_scores(tiny_model_dir):
    from tripost.sharpen import draw_candidates
    from tripost.student import build_prompts, load_student

    student = load_student(f"hf:{tiny_model_dir}")
    problems = sample_problems(get_task("arithmetic"), split="test", n=2, seed=0)
    cfg = SharpenConfig(max_new_tokens=6, batch_size=4, score_batch_size=3)
    cands = draw_candidates(student, problems, 3, cfg, seed=1)
    again = draw_candidates(student, problems, 3, cfg, seed=1)
    assert [[c.text for c in row] for row in cands] == [[c.text for c in row] for row in again]  # seeded
    prompts = build_prompts(student.tokenizer, [p.question for p in problems])
    for prompt, row in zip(prompts, cands):
        assert len(row) == 3
        for c in row:
            if not c.text:
                assert c.logprob == -math.inf
                continue
            one = student.logprobs([prompt], [c.text], append_eos=True)[0]
            assert c.logprob == pytest.approx(one.sum, abs=1e-3) and c.n_tokens == one.n_tokens


# ------------------------------------------------------------------- CLI ---


@pytest.fixture
def run_cli(monkeypatch):
    if "tripost.cli.sharpen_cmd" not in cli.VERB_MODULES:
        monkeypatch.setattr(cli, "VERB_MODULES", [*cli.VERB_MODULES, "tripost.cli.sharpen_cmd"])
    return lambda *argv: cli.main(["sharpen", *argv])


@pytest.fixture
def no_model(monkeypatch):
    """Bad input must be refused before the model loads."""
    import tripost.student

    def refuse(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(tripost.student, "load_student", refuse)


@pytest.mark.parametrize("argv, needle", [
    (("eval", "--task", "nosuch"), "unknown task family 'nosuch'"),
    (("eval", "--task", "arithmetic", "--ns", "0,2"), "--ns must be positive integers"),
    (("eval", "--task", "arithmetic", "--ns", "two"), "--ns must be positive integers"),
    (("eval", "--task", "arithmetic", "--split", "train"), "refusing to evaluate on the train split"),
    (("eval", "--task", "arithmetic", "--n", "0"), "--n must be at least 1"),
    (("eval", "--task", "arithmetic", "--temperature", "0"), "greedy"),
    (("eval", "--task", "arithmetic", "--student", "hf:/nonexistent"), "no such folder"),
    (("eval", "--task", "arithmetic", "--adapter", "/nonexistent/a"), "does not exist"),
    (("eval", "--task", "arithmetic", "--out", "{tmp}"), "is a folder"),
    # `sharpen data` is gone (issue 30): whatever its old flags, one line naming the command that replaces it.
    (("data",), "tripost collect --source sharpen"),
    (("data", "--task", "arithmetic", "--out", "{tmp}/l.jsonl", "--samples", "0"), "tripost collect --source sharpen"),
    (("data", "--nosuch-flag", "x"), "--samples 8 --reward logprob --temperature 0.7 --top-p 0.95 --max-new-tokens 256"),
])
def test_cli_bad_input_is_one_line_before_the_model_loads(argv, needle, run_cli, no_model, capsys, tmp_path):
    (tmp_path / "bad.jsonl").write_text("{broken\n")
    rc = run_cli(*(a.replace("{tmp}", str(tmp_path)) for a in argv))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("tripost sharpen: error:") and needle in err, err


def test_cli_unknown_reward_is_a_usage_error(run_cli, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli("eval", "--task", "arithmetic", "--reward", "best")
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_the_old_sharpen_data_defaults_are_best_of_n_s():
    """The command `sharpen data` names instead gives `collect --source sharpen`
    the settings it had: SharpenConfig's, as `sharpen eval` samples."""
    from tripost.cli import build_parser, collect_cmd
    from tripost.cli.sharpen_cmd import SHARPEN_DATA_INSTEAD

    argv = SHARPEN_DATA_INSTEAD.replace("FAMILY", "arithmetic").split()[1:]
    s = collect_cmd.collect_settings(build_parser().parse_args(argv))
    d = SharpenConfig()
    assert (s.source, s.samples_per_problem, s.sharpen_reward, s.temperature, s.top_p, s.max_new_tokens) == (
        "sharpen", d.samples, d.reward, d.temperature, d.top_p, d.max_new_tokens)


def test_cli_end_to_end_on_the_tiny_model(tiny_model_dir, run_cli, capsys, tmp_path):
    out = tmp_path / "res" / "sharpen.json"
    rc = run_cli("eval", "--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "2", "--ns", "1,3",
                 "--max-new-tokens", "6", "--bootstrap", "50", "--out", str(out), "--json")
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert printed["table"] == saved["table"] and saved["ns"] == [1, 3] and saved["samples_per_problem"] == 3
    assert set(saved["table"]) == {"logprob", "mean_logprob", "majority", "oracle", "single"}
    assert saved["problems"] == {"n": 2, "families": ["arithmetic"], "splits": ["test"], "subsets": ["seen"]}
    assert len((out.parent / "sharpen.samples.jsonl").read_text().splitlines()) == 6

    rc = run_cli("eval", "--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "1", "--ns", "2",
                 "--reward", "mean_logprob", "--max-new-tokens", "4", "--bootstrap", "20")
    table = capsys.readouterr().out
    assert rc == 0 and "mean_logprob" in table and "N=2" in table and "majority" not in table

    # SFT-sharpening data: the sharpen source of `tripost collect` (what `sharpen data` wrote).
    rc = cli.main(["collect", "--source", "sharpen", "--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "3", "--samples", "2",
                   "--reward", "mean_logprob", "--max-new-tokens", "6", "--out", str(tmp_path / "run"), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    log = tmp_path / "run" / "log.jsonl"
    recs = list(read_log(log))
    assert summary["records_written"] == 3 and len(recs) == 3
    assert all(r.source == "sharpen" and r.student["sharpen"]["samples"] == 2 for r in recs)
    # `tripost buffer` reads it like any log; the tiny model's picks are wrong and still kept.
    rc = cli.main(["buffer", str(log), "--out", str(tmp_path / "buf"), "--no-gold", "--ratio", "0:1:0", "--json"])
    stats = json.loads(capsys.readouterr().out)
    nonempty = sum(r.kind == "direct" for r in recs)
    assert rc == 0 and stats["by_kind_before"]["direct"] == nonempty and stats["dropped"].get("not kept", 0) == 3 - nonempty
