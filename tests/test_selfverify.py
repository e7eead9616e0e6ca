"""Self-verified data (Song et al. 2024, "Mind the Gap"): the student's own
verifiers (tripost/verify.py, the new ``cot`` among them), the
`self_verified` source (tripost/sources/selfverify.py), and its weights
through the log, the buffer and the loss."""

from __future__ import annotations

import json

import pytest

import tripost.gap as gap
import tripost.verify as verify
from tripost.buffer import BufferConfig, build_buffer, examples_from_records, to_dataset
from tripost.cli import build_parser
from tripost.cli import collect_cmd
from tripost.errors import TripostError
from tripost.format import Feedback, Trajectory, Turn, parse_rationale
from tripost.log import LogRecord, read_log
from tripost.runconfig import RunConfig
from tripost.sources import Job, make_source
from tripost.sources.selfverify import SelfVerifiedSource, SelfVerifyConfig, first_turn, self_verified_collect
from tripost.sources.settings import CollectSettings
from tripost.tasks import get_task, sample_problems
from tripost.tasks.base import Problem

# ------------------------------------------------------------ the verifiers ---


def test_the_verifiers_moved_to_verify_and_the_gap_still_names_them():
    """tripost.verify (layer 4) holds them; tripost.gap re-exports the same objects and adds the teacher."""
    for name in ("keep_mask", "keep_quantile", "keep_threshold", "verify_prompt", "mc_logprobs", "mc_scores", "self_score",
                 "final_rationale", "FILTERS"):
        assert getattr(gap, name) is getattr(verify, name), name
    assert verify.VERIFIERS == ("mc", "self", "cot")
    assert gap.VERIFIERS == ("mc", "self", "cot", "teacher")
    assert gap.GapConfig(verifier="cot").cot_max_new_tokens == 96
    with pytest.raises(TripostError, match="cot_max_new_tokens must be at least 1"):
        gap.GapConfig(cot_max_new_tokens=0)


def test_tripost_gap_takes_the_cot_verifier():
    from tripost.cli.gap_cmd import config_from_args

    args = build_parser().parse_args(["gap", "--task", "arithmetic", "--verifier", "cot"])
    assert config_from_args(args).verifier == "cot"


def test_verification_text_stops_where_the_student_starts_its_own_verdict():
    assert verify.verification_text("  Step 1 is right.\nverdict: Correct") == "Step 1 is right."
    assert verify.verification_text("All steps add up.") == "All steps add up."
    assert verify.verdict_prompt("P:", "It checks out.") == "P:It checks out.\nVerdict:"
    assert verify.verdict_prompt("P:", "") == "P:Verdict:"


@pytest.fixture(scope="module")
def tiny_student(tiny_model_dir, one_torch_thread):
    from tripost.student import load_student

    return load_student(f"hf:{tiny_model_dir}")


ATTEMPT = "(1) 2 + 3 = 5.\n(Final response) So the answer is 5."


class Spy:
    """The tiny student, recording how the verifier asks it to write; with
    `written`, what it writes is that text (the tiny random model writes only
    newlines), and everything else is still the tiny model's."""

    def __init__(self, student, written=None):
        self.student, self.tokenizer, self.calls, self.written = student, student.tokenizer, [], written

    def sample(self, prompts, params, **kw):
        from tripost.student.generate import Generation

        self.calls.append(params)
        if self.written is None:
            return self.student.sample(prompts, params, **kw)
        return [[Generation(i, 0, w, 12, "stop")] for i, w in enumerate(self.written)]

    def __getattr__(self, name):
        return getattr(self.student, name)


QUESTIONS = ["What is 2 + 3?", "What is 7 - 4?"]
ATTEMPTS = [ATTEMPT, "(1) 7 - 4 = 2.\n(Final response) So the answer is 2."]


def test_cot_asks_the_student_for_a_bounded_greedy_verification(tiny_student):
    spy = Spy(tiny_student)
    out = verify.cot_verify(spy, QUESTIONS, ATTEMPTS)
    (params,) = spy.calls
    assert params.greedy and params.max_new_tokens == 96  # bounded, and a function of the attempt
    own = tiny_student.greedy([verify.cot_prompt(tiny_student.tokenizer, q, a) for q, a in zip(QUESTIONS, ATTEMPTS)],
                              max_new_tokens=96, stop=["Verdict"])
    for q, a, v, g in zip(QUESTIONS, ATTEMPTS, out, own):
        assert 0.0 <= v.score <= 1.0
        assert v.verification == verify.verification_text(g.text)  # what the student wrote, greedily
        assert v.prompt == verify.verdict_prompt(verify.cot_prompt(tiny_student.tokenizer, q, a), v.verification)
        assert ATTEMPT in out[0].prompt and "Verdict: Correct" in v.prompt  # its attempt, the cot question (prompts/verify_cot.txt)


def test_cot_reads_the_verdict_after_the_verification_the_student_wrote(tiny_student):
    written = ["Step (1) adds 2 and 3 and gets 5, which is right.\nVerdict: Correct", "7 - 4 is 3, not 2."]
    out = verify.cot_verify(Spy(tiny_student, written), QUESTIONS, ATTEMPTS)
    assert [v.verification for v in out] == ["Step (1) adds 2 and 3 and gets 5, which is right.", "7 - 4 is 3, not 2."]
    for v in out:
        assert 0.0 <= v.score <= 1.0
        assert v.prompt.endswith(v.verification + "\nVerdict:")  # its own verification, its own verdict cut, then ours
        (lp,) = verify.mc_logprobs(tiny_student, [v.prompt])
        assert (v.logp_correct, v.logp_incorrect) == pytest.approx(lp, abs=1e-5)
        assert v.score == pytest.approx(verify.mc_scores(tiny_student, [v.prompt])[0], abs=1e-6)
    scores, details = verify.score_samples(Spy(tiny_student, written), QUESTIONS, ATTEMPTS, ATTEMPTS, verify.VerifyConfig(verifier="cot"))
    assert scores == pytest.approx([v.score for v in out], abs=1e-6) and details[1]["verification"] == out[1].verification


def test_the_gap_measures_the_cot_verifier(tiny_student):
    task = get_task("arithmetic")
    probs = sample_problems(task, split="test", subset="seen", n=2, seed=1)
    cfg = gap.GapConfig(samples=2, verifier="cot", max_new_tokens=8, cot_max_new_tokens=8, n_bootstrap=50, progress=False)
    res = gap.measure_gap(tiny_student, probs, cfg)
    samples = [s for p in res.problems for s in p["samples"]]
    assert len(samples) == 4 and all(0.0 <= s["score"] <= 1.0 and "verification" in s["detail"] for s in samples)


# --------------------------------------------------------------- the source ---


def _problem(answer: str = "5") -> Problem:
    return Problem(id="p0", family="arithmetic", question="2 + 3 =", answer=answer, rationale="(1) 2 + 3 = 5.\n(Final response) So the answer is 5.",
                   difficulty="1", subset="seen", split="train")


def _attempt(x: int) -> str:
    return f"(1) 2 + 3 = {x}.\n(Final response) So the answer is {x}."


ANSWERS = [5, 6, 5, 7]  # samples 0 and 2 right
SCORES = {5: 0.2, 6: 0.9, 7: 0.6}  # the verifier believes 6, then 7: the wrong ones


def canned_sampler(rows=None):
    def sampler(problems, n, seed):
        assert n == 4
        return [[_attempt(x) for x in (rows or ANSWERS)] for _ in problems]

    return sampler


def known_scorer(seen):
    """Scores by the attempt's answer; it is given no problem, so no gold answer."""

    def scorer(questions, attempts, texts):
        seen.append((list(questions), list(attempts)))
        return [SCORES[int(a.rsplit(" ", 1)[1].rstrip("."))] for a in attempts], [{"n": i} for i in range(len(attempts))]

    return scorer


def collect(tmp_path, name, problem, **kw):
    seen = []
    cfg = SelfVerifyConfig(samples=4, **kw)
    result = self_verified_collect([problem], canned_sampler(), known_scorer(seen), tmp_path / name, cfg, progress=False)
    return result, list(read_log(tmp_path / name)), seen


def test_the_quantile_filter_keeps_the_top_half_by_the_students_own_scores(tmp_path):
    result, recs, seen = collect(tmp_path, "a.jsonl", _problem(), mode="filter", filter="quantile", quantile=0.5)
    assert [r.kind for r in recs] == ["failed", "direct", "failed", "direct"]  # 0.9 and 0.6 are the top 2 of 4
    assert [r.turns[0]["verifier_score"] for r in recs] == [0.2, 0.9, 0.2, 0.6]
    assert [r.final_correct for r in recs] == [True, False, True, False]  # reported, and not what kept them
    assert all(r.source == "self_verified" and not r.checked and r.weight == 1.0 for r in recs)
    assert recs[1].stop_reason == "kept by mc (quantile)" and recs[0].stop_reason == "dropped by mc (quantile)"
    assert recs[1].student["self_verified"] == {"verifier": "mc", "mode": "filter", "samples": 4, "filter": "quantile", "quantile": 0.5,
                                                "pass": 0}
    assert seen == [(["2 + 3 ="] * 4, [_attempt(x) for x in ANSWERS])]
    assert (result.kept, result.dropped, result.kept_correct, result.correct, result.usable) == (2, 2, 0, 2, 2)
    # No gold answer keeps anything: with the gold flipped the same samples are kept.
    _, flipped, _ = collect(tmp_path, "b.jsonl", _problem(answer="6"))
    assert [r.kind for r in flipped] == [r.kind for r in recs]
    assert [r.final_correct for r in flipped] == [False, True, False, False]
    # The buffer trains the kept ones, right or wrong, as the attempt alone.
    examples, _ = examples_from_records(recs, include_gold=False)
    assert [e.completion for e in examples] == [Trajectory((Turn(_attempt(6)),)).render(), Trajectory((Turn(_attempt(7)),)).render()]


def test_the_threshold_filter_and_the_reweight_mode(tmp_path):
    _, recs, _ = collect(tmp_path, "t.jsonl", _problem(), filter="threshold", threshold=0.5)
    assert [r.kind for r in recs] == ["failed", "direct", "failed", "direct"]
    result, recs, _ = collect(tmp_path, "w.jsonl", _problem(), mode="reweight")
    # The scores 0.2, 0.9, 0.2, 0.6 normalised over the problem's four samples
    # (Mind the Gap's f[w], one distribution per prompt), scaled to sum to 4.
    want = [4 * s / 1.9 for s in (0.2, 0.9, 0.2, 0.6)]
    assert [r.kind for r in recs] == ["direct"] * 4 and [r.weight for r in recs] == pytest.approx(want)
    assert [r.turns[0]["verifier_score"] for r in recs] == [0.2, 0.9, 0.2, 0.6]  # the raw scores stay in the record
    assert result.weight_sum == pytest.approx(4.0) and result.score_sum == pytest.approx(1.9)
    assert recs[0].stop_reason == "weighed by mc" and "filter" not in recs[0].student["self_verified"]
    examples, _ = build_buffer(recs, BufferConfig(include_gold=False, dedupe=False))
    assert sorted(e.weight for e in examples) == pytest.approx(sorted(want))


def test_reweighting_normalises_each_problem_on_its_own():
    from tripost.sources.selfverify import problem_weights

    # A doubtful problem's attempts weigh, together, what a confident one's do;
    # within a problem each weighs in proportion to its score.
    low, high = problem_weights([0.1, 0.1, 0.2], [True] * 3), problem_weights([0.8, 0.8, 0.9], [True] * 3)
    assert sum(low) == pytest.approx(3.0) and sum(high) == pytest.approx(3.0)
    assert low == pytest.approx([0.75, 0.75, 1.5]) and high[2] / high[0] == pytest.approx(0.9 / 0.8)
    assert problem_weights([0.0, 0.5, 0.25], [False, True, True]) == pytest.approx([0.0, 4 / 3, 2 / 3])  # an empty sample: no share
    assert problem_weights([0.0, 0.0], [True, True]) == [0.0, 0.0]  # the verifier believes none: nothing to train
    assert problem_weights([0.3], [False]) == [0.0]


def test_each_problem_and_pass_is_reweighted_apart(tmp_path):
    two = [_problem(), Problem.from_dict({**_problem().to_dict(), "id": "p1"})]
    rows = iter([[_attempt(x) for x in ANSWERS], [_attempt(x) for x in (6, 6, 6, 6)]] * 2)
    sampler = lambda problems, n, seed: [next(rows) for _ in problems]  # noqa: E731
    self_verified_collect(two, sampler, known_scorer([]), tmp_path / "p.jsonl", SelfVerifyConfig(samples=4, mode="reweight", passes=2),
                          progress=False)
    recs = list(read_log(tmp_path / "p.jsonl"))
    assert len(recs) == 16
    for pid in ("p0", "p1"):
        for pass_index in (0, 1):
            mine = [r for r in recs if r.problem["id"] == pid and r.student["self_verified"]["pass"] == pass_index]
            assert len(mine) == 4 and sum(r.weight for r in mine) == pytest.approx(4.0)
    assert all(r.weight == pytest.approx(1.0) for r in recs if r.problem["id"] == "p1")  # four equal scores: weight 1 each


def test_an_empty_attempt_is_never_verified_or_kept(tmp_path):
    seen = []
    sampler = lambda problems, n, seed: [["", _attempt(6), _attempt(5), _attempt(7)]]  # noqa: E731
    self_verified_collect([_problem()], sampler, known_scorer(seen), tmp_path / "e.jsonl", SelfVerifyConfig(samples=4, mode="reweight"),
                          progress=False)
    recs = list(read_log(tmp_path / "e.jsonl"))
    assert len(seen[0][1]) == 3 and recs[0].kind == "failed" and recs[0].stop_reason == "empty attempt" and recs[0].weight == 0.0
    assert sum(r.weight for r in recs[1:]) == pytest.approx(3.0)  # the three non-empty samples share the problem's weight


def test_self_judges_the_first_attempt_the_buffer_trains():
    n = parse_rationale(_attempt(6)).n_steps
    ok, blame = Feedback(n_steps=n, error_step=None).render(), Feedback(n_steps=n, error_step=1, segment="6", reason="2 + 3 is 5").render()
    text = Trajectory((Turn(_attempt(6), blame), Turn(_attempt(5), ok))).render()
    assert verify.self_score(text) == 1.0  # the last turn: what the gap judges
    assert verify.self_score(first_turn(text)) == 0.0  # the first attempt: what self_verified trains


def test_a_resumed_collection_writes_what_an_uninterrupted_one_would(tmp_path):
    log = tmp_path / "log.jsonl"
    cfg = SelfVerifyConfig(samples=4)
    first = self_verified_collect([_problem()], canned_sampler(), known_scorer([]), log, cfg, progress=False)
    whole = log.read_text().splitlines(keepends=True)
    log.write_text("".join(whole[:2]))  # killed after two of the problem's four samples
    seen = []
    again = self_verified_collect([_problem()], canned_sampler(), known_scorer(seen), log, cfg, progress=False)
    assert log.read_text().splitlines(keepends=True) == whole  # the filter saw all four scores again
    assert (again.records_written, again.records_skipped) == (2, 2) and len(seen[0][1]) == 4
    assert (again.kept, again.dropped, again.usable) == (first.kept, first.dropped, first.usable)
    done = self_verified_collect([_problem()], canned_sampler(), known_scorer(seen), log, cfg, progress=False)
    assert (done.records_written, done.records_skipped, done.kept) == (0, 4, 2) and len(seen) == 1


def test_the_source_runs_on_the_student_with_its_own_verifier(tmp_path, tiny_student):
    settings = CollectSettings(source="self_verified", samples_per_problem=2, max_new_tokens=8, verify_mode="reweight")
    src = make_source(settings, 1)
    assert isinstance(src, SelfVerifiedSource) and not src.needs_teacher
    probs = sample_problems(get_task("arithmetic"), n=2, seed=0)
    result = src.collect(Job(probs, tmp_path / "log.jsonl", seed=1, progress=False), tiny_student, None)
    recs = list(read_log(tmp_path / "log.jsonl"))
    assert len(recs) == 4 and result.records_written == 4
    for r in recs:
        assert 0.0 <= r.turns[0]["verifier_score"] <= 1.0 and set(r.turns[0]["verifier_detail"]) == {"logp_correct", "logp_incorrect"}
        if r.kind != "direct":
            assert r.weight == 0.0
    for p in probs:  # per problem: the scores normalised over its kept samples, summing to their number
        mine = [r for r in recs if r.problem["id"] == p.id and r.kind == "direct"]
        total = sum(r.turns[0]["verifier_score"] for r in mine)
        for r in mine:
            assert r.weight == pytest.approx(len(mine) * r.turns[0]["verifier_score"] / total if total > 0 else 0.0)
    assert json.loads(json.dumps(result.to_dict()))["kept_precision"] == result.kept_precision


# ------------------------------------------------- settings and the run ---


def test_the_settings_are_keys_and_flags_with_checks(tmp_path):
    cfg = RunConfig.load(None, ["collect.source=self_verified", "collect.verify_verifier=cot", "collect.verify_quantile=0.25"]).to_dict()
    src = make_source(CollectSettings(**{k: v for k, v in cfg["collect"].items()}), 1)
    assert (src.config.verifier, src.config.quantile) == ("cot", 0.25)
    with pytest.raises(TripostError, match=r"^collect.verify_quantile must be in \(0, 1\]"):
        RunConfig.load(None, ["collect.source=self_verified", "collect.verify_quantile=0.0"])
    with pytest.raises(TripostError, match=r"^collect.verify_threshold must be in \[0, 1\]"):
        RunConfig.load(None, ["collect.verify_threshold=1.5"])
    with pytest.raises(TripostError, match="unknown collect.verify_verifier 'teacher'"):
        RunConfig.load(None, ["collect.verify_verifier=teacher"])
    with pytest.raises(TripostError, match="self_verified needs different samples"):
        RunConfig.load(None, ["collect.source=self_verified", "collect.temperature=0.0"])
    parser = build_parser()
    base = ["collect", "--task", "arithmetic", "--out", str(tmp_path / "c")]
    s = collect_cmd.collect_settings(parser.parse_args([*base, "--source", "self_verified", "--verify-mode", "reweight",
                                                        "--verify-verifier", "self", "--verify-filter", "threshold",
                                                        "--verify-threshold", "0.7"]))
    assert (s.verify_mode, s.verify_verifier, s.verify_filter, s.verify_threshold) == ("reweight", "self", "threshold", 0.7)
    with pytest.raises(TripostError, match="--verify-mode goes with --source self_verified"):
        collect_cmd.collect_settings(parser.parse_args([*base, "--verify-mode", "reweight"]))


def test_a_reweighting_run_needs_example_weights_in_training():
    keys = ["collect.source=self_verified", "collect.verify_mode=reweight"]
    with pytest.raises(TripostError) as e:
        RunConfig.load(None, keys).check()
    assert "collect.verify_mode=reweight" in str(e.value) and "train.use_example_weight=true" in str(e.value)
    assert "\n" not in str(e.value)
    RunConfig.load(None, [*keys, "train.use_example_weight=true"]).check()
    RunConfig.load(None, ["collect.source=self_verified"]).check()  # filter mode: weights are all 1


# ------------------------------------------- weights: log, buffer, loss ---


def _weighted(weight: float, difficulty: str = "1", pid: str = "p0") -> LogRecord:
    p = {**_problem().to_dict(), "id": pid, "difficulty": difficulty}
    return LogRecord(key=f"{pid}#w", problem=p, kind="direct", turns=[{"rationale": _attempt(6), "feedback": None, "source": "student"}],
                     final_correct=False, stop_reason="weighed by mc", source="self_verified", checked=False, weight=weight)


def test_the_log_carries_a_weight_and_checks_it():
    rec = _weighted(0.3)
    d = json.loads(rec.to_json())
    assert d["weight"] == 0.3 and LogRecord.from_dict(d).weight == 0.3
    assert LogRecord.from_dict({k: v for k, v in d.items() if k != "weight"}).weight == 1.0  # logs written before the field
    for bad, msg in (("x", "'weight' must be a number"), (-0.5, "'weight' must be a finite number >= 0"),
                     (float("nan"), "'weight' must be a finite number >= 0"), (True, "'weight' must be a number")):
        with pytest.raises(ValueError, match=msg):
            LogRecord.from_dict({**d, "weight": bad})


def test_a_record_weight_becomes_the_examples_and_its_tokens_loss_weight(tiny_model_dir):
    from transformers import AutoTokenizer

    from tripost.train import TrainConfig, prepare_dataset, tokenize_example

    examples, _ = build_buffer([_weighted(0.3)], BufferConfig(include_gold=False))
    (ex,) = examples
    assert ex.weight == pytest.approx(0.3)
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    t = tokenize_example(tok, ex.prompt, ex.completion, attempt_weight=2.0, example_weight=ex.weight)
    assert t.weights[t.prompt_len:] == pytest.approx([2.0 * 0.3] * (len(t) - t.prompt_len))  # the attempt and its EOS
    # The same through training's own reading of the buffer, when it reads weights.
    data, _ = prepare_dataset(to_dataset(examples), tok, TrainConfig(attempt_weight=2.0, use_example_weight=True))
    w = data[0]["loss_weights"]
    assert [x for x in w if x > 0] == pytest.approx([0.6] * sum(x > 0 for x in w))
    data, _ = prepare_dataset(to_dataset(examples), tok, TrainConfig(attempt_weight=2.0))
    assert max(data[0]["loss_weights"]) == pytest.approx(2.0)  # off: every example counts once


def test_difficulty_weighting_multiplies_the_record_weight():
    recs = [_weighted(0.5, "1", "a"), _weighted(0.5, "1", "b"), _weighted(0.5, "2", "c")]
    recs[1].turns = [{"rationale": _attempt(7), "feedback": None, "source": "student"}]
    recs[2].turns = [{"rationale": _attempt(8), "feedback": None, "source": "student"}]
    plain, _ = build_buffer(recs, BufferConfig(include_gold=False))
    assert [e.weight for e in plain] == [0.5] * 3
    inverse, _ = build_buffer(recs, BufferConfig(include_gold=False, difficulty_mode="inverse"))
    # Without the record weight: 3 / (2 buckets * 2) = 0.75 for bucket "1", 3 / (2 * 1) = 1.5 for "2".
    assert sorted(e.weight for e in inverse) == pytest.approx([0.5 * 0.75, 0.5 * 0.75, 0.5 * 1.5])
