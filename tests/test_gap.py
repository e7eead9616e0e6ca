"""The generation-verification gap (tripost/gap.py, `tripost gap`)."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from tripost import cli
from tripost.errors import TripostError
from tripost.format import Feedback, Trajectory, Turn, parse_rationale
from tripost.gap import (
    GapConfig,
    auroc,
    gap_for_run,
    gap_metrics,
    keep_quantile,
    keep_threshold,
    mc_logprobs,
    mc_scores,
    measure_gap,
    problem_gap,
    self_score,
    verify_prompt,
)
from tripost.student.generate import Generation
from tripost.tasks import get_task, sample_problems

# ------------------------------------------------------- metric arithmetic ---

IDS = ["p1", "p2", "p3", "p4"]
CORRECT = [[1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 0, 1]]
SCORES = [[0.9, 0.2, 0.1, 0.3], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.8, 0.1, 0.7, 0.2]]


def test_gap_and_relative_gap_by_hand_with_the_quantile_filter():
    m, rows, kept = gap_metrics(IDS, SCORES, CORRECT, filter="quantile", quantile=0.5, n_bootstrap=200)
    assert kept == [[True, False, False, True], [False, False, True, True], [True, True, False, False], [True, False, True, False]]
    # p1: all 1/4, kept {0.9 right, 0.3 wrong} 1/2 -> gap 1/4, relative (1/4)/(3/4) = 1/3
    # p2: every sample right -> gap 0, relative gap 0/0: left out of both means
    # p3: every sample wrong -> gap 0, relative 0: in both
    # p4: all 1/2, kept {0.8, 0.7} both wrong -> gap -1/2, relative -1
    assert [r.gap for r in rows] == pytest.approx([0.25, 0.0, 0.0, -0.5])
    assert rows[1].relative_gap is None and rows[1].all_right and rows[2].all_wrong
    assert [r.measured for r in rows] == [True, False, True, True]
    # Issue 18: both means over the same 3 problems (the gap used to average p2's 0 in too: -0.0625 over 4).
    assert m["gap"]["mean"] == pytest.approx((0.25 + 0 - 0.5) / 3) and m["gap"]["n"] == 3
    assert m["relative_gap"]["mean"] == pytest.approx((1 / 3 + 0 - 1) / 3) and m["relative_gap"]["n"] == 3
    assert m["relative_gap_pooled"] == pytest.approx(((0.25 + 0 - 0.5) / 3) / (1 - (0.25 + 0 + 0.5) / 3))
    assert m["excluded"] == {"n": 1, "none_kept": {"n": 0, "problems": []}, "all_right": {"n": 1, "problems": ["p2"]}}
    assert m["all_wrong"] == {"n": 1, "problems": ["p3"]}
    assert m["acc_all"]["mean"] == pytest.approx((0.25 + 1 + 0 + 0.5) / 4) and m["acc_all"]["n"] == 4
    assert m["acc_kept"]["mean"] == pytest.approx((0.5 + 0 + 0) / 3) and m["acc_kept"]["n"] == 3
    assert m["acc_kept"]["mean"] - m["acc_all_where_kept"]["mean"] == pytest.approx(m["gap"]["mean"])
    assert m["kept_samples"] == 8 and m["kept_fraction"] == 0.5 and m["samples"] == 16
    for name in ("gap", "relative_gap", "acc_all", "acc_kept"):
        lo, hi = m[name]["ci"]
        assert lo <= m[name]["mean"] <= hi


def test_gap_and_relative_gap_are_over_the_same_prompts_with_known_numbers():
    """Issue 18: known per-prompt numbers, eight samples each, a perfect
    verifier (it scores the right samples 1), threshold 0.5.

    prompt  right  kept        acc_all  acc_kept  gap     relative
    a       2/8    the 2 right 0.25     1         0.75    1
    b       4/8    the 4 right 0.5      1         0.5     1
    c       8/8    all 8       1        1         0       0/0   -> left out (every sample right)
    d       0/8    none        0        -         -       -     -> left out (nothing kept)
    e       6/8    the 6 right 0.75     1         0.25    1

    A perfect verifier recovers all the headroom: the relative gap is exactly
    1, and the gap is the mean headroom of a, b, e. Counting c as 0 would have
    given 3/4 and 3 problems against the gap's 4."""
    right = {"a": 2, "b": 4, "c": 8, "d": 0, "e": 6}
    correct = [[j < k for j in range(8)] for k in right.values()]
    scores = [[1.0 if c else 0.0 for c in row] for row in correct]
    m, rows, _ = gap_metrics(list(right), scores, correct, filter="threshold", threshold=0.5, n_bootstrap=100)
    assert [(r.acc_all, r.acc_kept) for r in rows] == [(0.25, 1.0), (0.5, 1.0), (1.0, 1.0), (0.0, None), (0.75, 1.0)]
    assert m["gap"]["n"] == m["relative_gap"]["n"] == m["acc_kept"]["n"] == 3
    assert m["gap"]["mean"] == pytest.approx((0.75 + 0.5 + 0.25) / 3)
    assert m["relative_gap"]["mean"] == pytest.approx(1.0) and m["relative_gap"]["ci"] == pytest.approx([1.0, 1.0])
    assert m["relative_gap_pooled"] == pytest.approx(1.0)
    assert m["excluded"] == {"n": 2, "none_kept": {"n": 1, "problems": ["d"]}, "all_right": {"n": 1, "problems": ["c"]}}
    assert m["all_wrong"] == {"n": 1, "problems": ["d"]}
    # A problem both all-right and with nothing kept is left out once, for nothing kept.
    m, _, _ = gap_metrics(["x", "y"], [[0.1, 0.1], [0.9, 0.1]], [[True, True], [True, False]], filter="threshold", threshold=0.5, n_bootstrap=50)
    assert m["excluded"] == {"n": 1, "none_kept": {"n": 1, "problems": ["x"]}, "all_right": {"n": 0, "problems": []}}
    assert m["gap"]["n"] == m["relative_gap"]["n"] == 1 and m["gap"]["mean"] == pytest.approx(0.5)


def test_threshold_filter_reports_problems_where_nothing_is_kept():
    m, rows, _ = gap_metrics(IDS, SCORES, CORRECT, filter="threshold", threshold=0.5, n_bootstrap=200)
    # Kept: p1 {0.9 right}, p2 nothing, p3 nothing, p4 {0.8, 0.7} both wrong.
    assert [r.n_kept for r in rows] == [1, 0, 0, 2]
    assert rows[1].acc_kept is None and rows[1].gap is None and rows[2].gap is None
    assert m["excluded"]["none_kept"] == {"n": 2, "problems": ["p2", "p3"]}
    assert m["excluded"]["all_right"] == {"n": 0, "problems": []} and m["excluded"]["n"] == 2  # p2 is counted once
    assert m["gap"]["n"] == 2 and m["gap"]["mean"] == pytest.approx((0.75 - 0.5) / 2)
    assert m["relative_gap"]["n"] == 2 and m["relative_gap"]["mean"] == pytest.approx((1.0 - 1.0) / 2)
    # acc_kept and the matching acc_all are over the same 2 problems, so they differ by the gap.
    assert m["acc_kept"]["n"] == m["acc_all_where_kept"]["n"] == 2
    assert m["acc_kept"]["mean"] - m["acc_all_where_kept"]["mean"] == pytest.approx(m["gap"]["mean"])
    assert m["acc_all"]["n"] == 4
    v = m["verifier"]
    assert v["precision"] == pytest.approx(1 / 3) and v["recall"] == pytest.approx(1 / 7)


def test_nothing_kept_anywhere_gives_no_gap_not_zero():
    m, _, _ = gap_metrics(["a"], [[0.1, 0.2]], [[1, 0]], filter="threshold", threshold=0.9, n_bootstrap=50)
    assert m["gap"] == {"mean": None, "n": 0, "ci": None} and m["excluded"]["none_kept"]["n"] == 1
    assert m["relative_gap"]["mean"] is None and m["relative_gap_pooled"] is None


def test_problem_gap_single_problem():
    r = problem_gap("x", [True, False, False, False, True], [True, True, False, False, False])
    assert (r.acc_all, r.acc_kept, r.n_kept_correct) == (0.4, 0.5, 1)
    assert r.gap == pytest.approx(0.1) and r.relative_gap == pytest.approx(0.1 / 0.6)
    with pytest.raises(TripostError):
        problem_gap("x", [True], [True, False])


def test_quantile_filter_keeps_the_top_share_and_all_ties():
    assert keep_quantile([0.1, 0.9, 0.5, 0.7], 0.5) == [False, True, False, True]
    assert keep_quantile([0.3] * 5, 0.2) == [True] * 5  # a verifier that cannot tell samples apart keeps all
    assert keep_quantile([0.1, 0.9, 0.5], 1.0) == [True] * 3
    assert sum(keep_quantile(list(range(10)), 0.3)) == 3  # 0.3 * 10 rounds up to 3, not 4
    assert sum(keep_quantile(list(range(10)), 0.25)) == 3  # ceil(2.5)
    assert keep_quantile([0.2, 0.6, 0.6, 0.1], 0.25) == [False, True, True, False]  # the tie at the cut
    with pytest.raises(TripostError):
        keep_quantile([0.1], 0.0)


def test_threshold_filter_is_inclusive():
    assert keep_threshold([0.49, 0.5, 0.51], 0.5) == [False, True, True]


def test_auroc_matches_pairwise_counting():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, size=40) / 4  # many ties
    y = rng.random(40) < 0.4
    pos, neg = s[y], s[~y]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert auroc(s, y) == pytest.approx(brute)
    assert auroc([0.9, 0.1], [True, False]) == 1.0 and auroc([0.1, 0.9], [True, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5 and auroc([0.1, 0.2], [True, True]) is None


def test_config_checks():
    for bad in ({"samples": 0}, {"quantile": 0.0}, {"quantile": 1.5}, {"threshold": 1.2}, {"verifier": "oracle"},
                {"filter": "topk"}, {"temperature": 0.0}, {"mc_words": ("a", "a")}):
        with pytest.raises(TripostError):
            GapConfig(**bad)
    with pytest.raises(TripostError, match="unknown gap setting"):
        GapConfig.from_dict({"sample": 4})
    cfg = GapConfig.from_dict({"samples": 4, "mc_words": [" Yes", " No"]})
    assert cfg.mc_words == (" Yes", " No") and GapConfig.from_dict(cfg.to_dict()) == cfg


# --------------------------------------------------------------- verifiers ---

ATTEMPT = "(1) 2 + 3 = 5.\n(Final response) So the answer is 5."
WRONG = "(1) 2 + 3 = 6.\n(Final response) So the answer is 6."


def test_self_score_reads_the_students_own_closing_feedback():
    ok = Feedback(n_steps=1, error_step=None).render()
    blame = Feedback(n_steps=1, error_step=1, segment="2 + 3 = 6", reason="2 + 3 is 5").render()
    assert self_score(Trajectory((Turn(ATTEMPT, ok),)).render()) == 1.0
    assert self_score(Trajectory((Turn(WRONG, blame),)).render()) == 0.0
    assert self_score(Trajectory((Turn(WRONG, blame), Turn(ATTEMPT, ok))).render()) == 1.0
    assert self_score(ATTEMPT) == 0.0  # no feedback at all
    # It said "correct", then wrote an update it never judged: the last answer is unjudged.
    assert self_score(Trajectory((Turn(ATTEMPT, ok), Turn(WRONG))).render()) == 0.0
    assert self_score(ATTEMPT + "\nFeedback: looks fine to me") == 0.0  # not in the feedback form


@pytest.fixture(scope="module")
def tiny_student(tiny_model_dir):
    from tripost.student import load_student

    return load_student(f"hf:{tiny_model_dir}")


def _direct_logprob(student, prompt: str, word: str) -> float:
    """log p(word | prompt) from one unpadded forward pass of the model."""
    import torch

    from tripost.student.generate import encode_prompt

    tok = student.tokenizer
    pid = encode_prompt(tok, prompt)
    wid = tok(word, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = student.model(input_ids=torch.tensor([pid + wid])).logits[0].float()
    logp = logits.log_softmax(-1)
    return float(sum(logp[len(pid) - 1 + k, t] for k, t in enumerate(wid)))


@pytest.mark.parametrize("words", [(" Correct", " Incorrect"), (" Right answer", " Wrong answer")])
def test_mc_score_equals_a_direct_computation_from_the_logits(tiny_student, words):
    tok = tiny_student.tokenizer
    if words[1] == " Incorrect":  # the one-pass path: " Incorrect" is two tokens, " Correct" one
        assert len(tok(" Incorrect", add_special_tokens=False)["input_ids"]) == 2
    cfg = GapConfig(mc_words=words)
    prompts = [verify_prompt(tok, q, a, cfg) for q, a in (("2 + 3 =", ATTEMPT), ("(1 + 2) * 3 - 4 * 5 =", WRONG), ("7 =", ""))]
    got = mc_logprobs(tiny_student, prompts, words, batch_size=2)  # two batches, left padding in the first
    scores = mc_scores(tiny_student, prompts, words, batch_size=3)
    for p, (a, b), s in zip(prompts, got, scores):
        da, db = _direct_logprob(tiny_student, p, words[0]), _direct_logprob(tiny_student, p, words[1])
        assert a == pytest.approx(da, abs=1e-4) and b == pytest.approx(db, abs=1e-4)
        assert s == pytest.approx(math.exp(da) / (math.exp(da) + math.exp(db)), abs=1e-5)


def test_verify_prompt_puts_the_attempt_before_the_question_and_ends_with_the_prefix(tiny_student):
    p = verify_prompt(tiny_student.tokenizer, "What is 2 + 3?", ATTEMPT)
    assert p.endswith("Verdict:") and p.index("What is 2 + 3?") < p.index(ATTEMPT) < p.index("Correct or Incorrect")
    plain = verify_prompt(None, "What is 2 + 3?", ATTEMPT)
    assert "<|im_start|>" not in plain and plain.endswith("Correct or Incorrect.\nVerdict:")


# --------------------------------------------------------- measure_gap flow ---


class CannedStudent:
    """A stand-in for `Student`: returns fixed texts per problem (no model)."""

    def __init__(self, tokenizer, texts):
        self.tokenizer, self.texts = tokenizer, texts

    def sample(self, prompts, params, **kw):
        assert len(prompts) == len(self.texts) and all(len(t) == params.n for t in self.texts)
        return [[Generation(i, j, t, 10, "eos") for j, t in enumerate(row)] for i, row in enumerate(self.texts)]

    def describe(self):
        return {"student": "canned"}


@pytest.fixture(scope="module")
def arithmetic_problems():
    task = get_task("arithmetic")
    return task, sample_problems(task, split="test", subset="seen", n=3, seed=1)


def test_measure_gap_with_the_self_and_teacher_verifiers(tiny_student, arithmetic_problems, tmp_path):
    task, probs = arithmetic_problems
    rng = random.Random(0)
    ok = lambda r: Trajectory((Turn(r, Feedback(n_steps=parse_rationale(r).n_steps, error_step=None).render()),)).render()  # noqa: E731
    right = [p.rationale for p in probs]
    # A wrong final response: the answer is wrong, not just a step.
    wrong = [task.corrupt(p, parse_rationale(p.rationale).n_steps + 1, rng) for p in probs]
    assert not any(task.check_answer(p, task.parse_answer(w)) for p, w in zip(probs, wrong))
    # p0: right+claims right, wrong+claims right, wrong, wrong   p1: all wrong, one claims right
    # p2: right, right (no feedback), right, wrong+claims right
    texts = [
        [ok(right[0]), ok(wrong[0]), wrong[0], wrong[0]],
        [wrong[1], ok(wrong[1]), wrong[1], wrong[1]],
        [right[2], right[2], right[2], ok(wrong[2])],
    ]
    student = CannedStudent(tiny_student.tokenizer, texts)
    cfg = GapConfig(samples=4, verifier="self", filter="threshold", n_bootstrap=100, progress=False)
    res = measure_gap(student, probs, cfg)
    rows = res.problems
    assert [r["n_correct"] for r in rows] == [1, 0, 3]
    assert [s["score"] for s in rows[0]["samples"]] == [1.0, 1.0, 0.0, 0.0]
    assert [r["acc_kept"] for r in rows] == [0.5, 0.0, 0.0]
    assert res.metrics["gap"]["mean"] == pytest.approx(((0.5 - 0.25) + 0 + (0 - 0.75)) / 3)
    # The scripted teacher is an oracle: it keeps exactly the right samples.
    res_t = measure_gap(student, probs, GapConfig(samples=4, verifier="teacher", filter="threshold", n_bootstrap=100, progress=False))
    assert [r["acc_kept"] for r in res_t.problems] == [1.0, None, 1.0]
    assert res_t.metrics["excluded"]["none_kept"]["problems"] == [probs[1].id]
    assert res_t.metrics["verifier"]["auroc"] == 1.0 and res_t.teacher == "scripted"
    # The loop's entry point: a dict config, the file written, a summary without samples back.
    summary = gap_for_run(student, probs, {"samples": 4, "verifier": "self", "filter": "threshold", "progress": False}, out=tmp_path / "it1" / "gap" / "gap.json")
    saved = json.loads((tmp_path / "it1" / "gap" / "gap.json").read_text())
    assert summary["metrics"] == saved["metrics"] == json.loads(json.dumps(res.metrics))
    assert "problems" not in summary and len(saved["problems"][0]["samples"]) == 4 and saved["schema"] == "tripost.gap/1"


def test_measure_gap_refuses_training_problems(tiny_student):
    probs = sample_problems(get_task("arithmetic"), split="train", n=1)
    with pytest.raises(TripostError, match="train split"):
        measure_gap(tiny_student, probs, GapConfig(samples=2, max_new_tokens=4, progress=False))


# --------------------------------------------------------------------- CLI ---


@pytest.fixture
def run_cli(monkeypatch):
    if "tripost.cli.gap_cmd" not in cli.VERB_MODULES:
        monkeypatch.setattr(cli, "VERB_MODULES", [*cli.VERB_MODULES, "tripost.cli.gap_cmd"])
    return lambda *argv: cli.main(["gap", *argv])


@pytest.mark.parametrize("argv, needle", [
    (("--task", "nosuch"), "unknown task family 'nosuch'"),
    (("--task", "arithmetic", "--samples", "0"), "samples per problem must be at least 1"),
    (("--task", "arithmetic", "--quantile", "0"), "quantile (the share of samples kept per problem) must be in (0, 1]"),
    (("--task", "arithmetic", "--quantile", "1.5"), "must be in (0, 1]"),
    (("--task", "arithmetic", "--filter", "threshold", "--threshold", "2"), "threshold must be in [0, 1]"),
    (("--task", "arithmetic", "--threshold", "0.3"), "--threshold applies to --filter threshold only"),
    (("--task", "arithmetic", "--filter", "threshold", "--quantile", "0.3"), "--quantile applies to --filter quantile only"),
    (("--task", "arithmetic", "--teacher", "scripted"), "--teacher applies to --verifier teacher only"),
    (("--task", "arithmetic", "--verifier", "teacher", "--teacher", "nosuch:x"), "unknown teacher spec"),
    (("--task", "arithmetic", "--split", "train"), "refusing to evaluate on the train split"),
    (("--task", "arithmetic", "--n", "0"), "--n must be at least 1"),
    (("--task", "arithmetic", "--temperature", "0"), "temperature must be > 0"),
    (("--task", "arithmetic", "--student", "bogus:spec"), "bad student spec"),
    (("--task", "arithmetic", "--adapter", "/nonexistent/adapter"), "does not exist"),
    (("--task", "arithmetic", "--out", "{tmp}"), "is a folder"),
])
def test_cli_bad_input_is_one_line_before_the_model_loads(argv, needle, run_cli, capsys, tmp_path, monkeypatch):
    import tripost.student.load as load

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(load, "load_student", no_load)
    rc = run_cli(*(a.replace("{tmp}", str(tmp_path)) for a in argv))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("tripost gap: error:") and needle in err, err


def test_cli_end_to_end_json_on_the_tiny_model(tiny_model_dir, tmp_path, run_cli, capsys):
    out = tmp_path / "gap.json"
    rc = run_cli("--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "2", "--samples", "3",
                 "--max-new-tokens", "6", "--quantile", "0.34", "--bootstrap", "50", "--json", "--out", str(out), "--no-progress")
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert printed["metrics"] == saved["metrics"] and printed["file"] == str(out)
    m = printed["metrics"]
    assert m["problems"] == 2 and m["samples"] == 6 and printed["config"]["verifier"] == "mc"
    assert printed["student"]["student"] == f"hf:{tiny_model_dir}"
    assert {p["split"] for p in saved["problems"]} == {"test"}
    for p in saved["problems"]:
        scores = [s["score"] for s in p["samples"]]
        assert len(scores) == 3 and all(0 < s < 1 for s in scores)
        # ceil(0.34 * 3) = 2: the two best are kept (more only on a tie at the cut).
        cut = sorted(scores, reverse=True)[1]
        assert [s["kept"] for s in p["samples"]] == [s >= cut for s in scores] and p["n_kept"] >= 2
        assert all(set(s["detail"]) == {"logp_correct", "logp_incorrect"} for s in p["samples"])
    assert m["gap"]["n"] + m["excluded"]["n"] == 2 and m["relative_gap"]["n"] == m["gap"]["n"]
    # The table form runs on the same result.
    rc = run_cli("--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "1", "--samples", "2",
                 "--max-new-tokens", "4", "--verifier", "self", "--filter", "threshold", "--bootstrap", "20", "--no-progress")
    table = capsys.readouterr().out
    assert rc == 0 and "relative gap" in table and "verifier self, filter threshold" in table
    assert "problems left out of gap and relative gap: " in table
