"""Teacher-free data sources in the loop: rejection sampling (`collect.source=rejection`) and SFT-sharpening (`collect.source=sharpen`)."""

import json

from tripost.buffer import BufferConfig, build_buffer
from tripost.sources.teacher import CollectConfig
from tripost.log import read_log
from tripost.loop import Run
from tripost.runconfig import RunConfig
from tripost.sources.base import judge_attempt
from tripost.sources.rejection import rejection_collect
from tripost.tasks import get_task, sample_problems


def problems(n=4):
    return sample_problems(get_task("arithmetic"), split="train", n=n, seed=3)


def test_judge_attempt_uses_the_first_attempt_only():
    p = problems(1)[0]
    wrong = p.rationale.replace(f"So the answer is {p.answer}.", "So the answer is 99999.")
    assert judge_attempt(p, p.rationale) == (p.rationale, True)
    assert judge_attempt(p, wrong)[1] is False
    # Right only after the student's own (unchecked) revision: not kept.
    revised = f"{wrong}\nFeedback: Step (1) is wrong.\nUpdated Answer:\n{p.rationale}"
    attempt, right = judge_attempt(p, revised)
    assert not right and "99999" in attempt and "Feedback" not in attempt


def test_rejection_collect_keeps_right_samples_and_resumes(tmp_path):
    ps = problems(4)
    calls = []

    def sampler(batch, n, seed):
        calls.append([p.id for p in batch])
        # Sample 0 of even problems is right; everything else is wrong.
        return [[p.rationale if (i % 2 == 0 and s == 0) else p.rationale.replace(p.answer, p.answer + "1") for s in range(n)]
                for i, p in ((ps.index(p), p) for p in batch)]

    log = tmp_path / "log.jsonl"
    res = rejection_collect(ps, sampler, log, CollectConfig(samples_per_problem=2, iteration=1), progress=False)
    recs = list(read_log(log))
    assert len(recs) == 8 and res.usable == 2 and res.by_kind == {"direct": 2, "failed": 6}
    assert all(r.source == "rejection" and r.teacher_calls == [] for r in recs)
    direct = [r for r in recs if r.kind == "direct"]
    assert {r.problem["id"] for r in direct} == {ps[0].id, ps[2].id} and all(r.final_correct for r in direct)

    again = rejection_collect(ps, sampler, log, CollectConfig(samples_per_problem=2, iteration=1), progress=False)
    assert again.records_written == 0 and again.records_skipped == 8 and len(calls) == 1

    examples, stats = build_buffer(recs, BufferConfig(include_gold=False))
    assert [e.kind for e in examples] == ["direct", "direct"]
    assert stats.by_kind_after == {"improvement": 0, "direct": 2, "gold": 0}


def test_loop_with_rejection_source_keeps_the_last_adapter_when_nothing_is_right(tmp_path, tiny_model_dir):
    # The tiny random model is never right: every iteration's buffer is empty,
    # nothing is trained, and the last iteration is evaluated with iteration 0's adapter.
    cfg = RunConfig.load(None, [
        f"student.spec=hf:{tiny_model_dir}", "tasks.n_train=4", "tasks.n_eval=2", "train.epochs=1", "train.precision=fp32",
        "collect.source=rejection", "buffer.include_gold=false", "collect.max_new_tokens=16", "collect.samples_per_problem=1",
        "eval.max_new_tokens=16", "eval.max_turns=1", "eval.n_bootstrap=20", "loop.iterations=2", "eval.every_iteration=false",
    ]).to_dict()
    run = Run(tmp_path / "run", cfg, progress=False, log=lambda m: None)
    state = run.run()
    assert state["stages"]["it1/train"]["skipped"] and state["stages"]["it2/train"]["skipped"]
    assert "it1/eval" not in state["stages"] and (tmp_path / "run" / "it2" / "eval" / "eval.json").exists()
    assert run.adapter(2) == str(tmp_path / "run" / "it0" / "train")
    ev = json.loads((tmp_path / "run" / "it2" / "eval" / "eval.json").read_text())
    assert ev["student"]["adapter"] == str(tmp_path / "run" / "it0" / "train")
    recs = list(read_log(tmp_path / "run" / "it1" / "collect" / "log.jsonl"))
    assert len(recs) == 4 and all(r.source == "rejection" for r in recs)


def test_unknown_collect_source_is_refused():
    import pytest

    from tripost.errors import TripostError

    with pytest.raises(TripostError, match="collect.source"):
        RunConfig.load(None, ["collect.source=oracle"])


def test_loop_with_sharpen_source_trains_on_the_students_own_picks(tmp_path, tiny_model_dir):
    # Sharpening keeps the best-by-likelihood sample whether or not it is right,
    # so even the never-right tiny model has a buffer and a trained adapter.
    cfg = RunConfig.load(None, [
        f"student.spec=hf:{tiny_model_dir}", "tasks.n_train=3", "tasks.n_eval=2", "train.epochs=1", "train.precision=fp32",
        "collect.source=sharpen", "collect.sharpen_reward=logprob", "buffer.include_gold=false", "collect.max_new_tokens=12",
        "collect.samples_per_problem=2", "eval.max_new_tokens=12", "eval.max_turns=1", "eval.n_bootstrap=20", "loop.iterations=1",
        "loop.iteration0=false",
    ]).to_dict()
    run = Run(tmp_path / "run", cfg, progress=False, log=lambda m: None)
    state = run.run()
    assert state["stages"]["it1/collect"]["teacher_calls"] == 0
    recs = list(read_log(tmp_path / "run" / "it1" / "collect" / "log.jsonl"))
    assert len(recs) == 3 and all(r.source == "sharpen" for r in recs)
    assert state["stages"]["it1/buffer"]["by_kind"]["direct"] == 3
    from tripost.student.load import is_trained_weights

    assert is_trained_weights(tmp_path / "run" / "it1" / "train")
    assert run.adapter(1) == str(tmp_path / "run" / "it1" / "train")


def test_loop_with_guided_source_runs_guided_rounds_for_unsolved_problems(tmp_path, tiny_model_dir):
    cfg = RunConfig.load(None, [
        f"student.spec=hf:{tiny_model_dir}", "tasks.n_train=3", "tasks.n_eval=2", "train.epochs=1", "train.precision=fp32",
        "collect.source=guided", "collect.guided_strategy=answer", "collect.guided_rounds=1", "collect.guided_min_correct=1",
        "collect.samples_per_problem=2", "collect.max_new_tokens=12", "buffer.include_gold=false",
        "eval.max_new_tokens=12", "eval.max_turns=1", "eval.n_bootstrap=20", "loop.iterations=1", "loop.iteration0=false",
    ]).to_dict()
    state = Run(tmp_path / "run", cfg, progress=False, log=lambda m: None).run()
    recs = list(read_log(tmp_path / "run" / "it1" / "collect" / "log.jsonl"))
    # Round 0: 3 problems x 2 plain samples; the never-right tiny model leaves
    # every problem below min_correct, so each gets one guided round of 2.
    assert len(recs) == 12
    assert sum(r.source == "rejection" for r in recs) == 6 and sum(r.source == "guided" for r in recs) == 6
    assert all(r.guide["strategy"] == "answer" for r in recs if r.source == "guided")
    assert all("hint" not in r.problem["question"].lower() for r in recs)
    assert state["stages"]["it1/collect"]["teacher_calls"] == 0
