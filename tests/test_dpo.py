"""RLHF-sharpening (issue 18, item 1): preference pairs from the student's own
best and worst samples by its own likelihood, DPO through TRL, and the run
that does it online (sample -> pair -> train, one round per iteration)."""

from __future__ import annotations

import json

import datasets
import pytest

from tripost.buffer import BufferConfig, preference_pairs, save_preference_buffer
from tripost.errors import TripostError
from tripost.log import LogRecord
from tripost.loop import run_loop
from tripost.runconfig import RunConfig
from tripost.sharpen import Candidate, SharpenConfig, worst_of_n
from tripost.sources.sharpen import sharpen_records
from tripost.student import load_student
from tripost.tasks import get_task, sample_problems
from tripost.train import TrainConfig
from tripost.train.objectives.dpo import train_dpo

from test_sharpen import FakeStudent, scripted  # the scripted student of the sharpening tests


def cand(text, lp, n=4, answer=None):
    return Candidate(text=text, logprob=lp, mean_logprob=lp / n, n_tokens=n, answer=answer)


def test_the_rejected_side_is_the_lowest_rated_distinct_nonempty_sample():
    c = [cand("a", -1.0), cand("b", -9.0), cand("", -0.5), cand("a", -1.0), cand("c", -9.0)]
    assert worst_of_n(c, "logprob", 0) == 4  # -9 twice: the later one
    assert worst_of_n([cand("a", -1.0), cand("a", -2.0)], "logprob", 0) is None  # all alike: no pair
    m = [cand("x", -1.0, answer="3"), cand("y", -2.0, answer="3"), cand("z", -0.1, answer="4"), cand("w", -3.0, answer=None)]
    assert worst_of_n(m, "majority", 0) == 3  # no answer: no votes, the lowest


def test_a_sharpen_record_carries_its_pair_and_the_buffer_exports_it(tmp_path):
    problems = sample_problems(get_task("arithmetic"), split="train", n=3, seed=0)
    recs = sharpen_records(problems, FakeStudent(scripted(problems)), SharpenConfig(samples=4, reward="mean_logprob"), iteration=1)
    for p, r in zip(problems, recs):
        # mean_logprob: chosen = the long right answer (-0.25 a token), rejected = "I do not know" (-5 a token).
        assert r.turns[0]["rationale"].endswith(f"So the answer is {p.answer}.") and r.rejected["rationale"] == "I do not know"
        assert r.rejected["mean_logprob"] == pytest.approx(-5.0)
    rt = [LogRecord.from_dict(json.loads(r.to_json())) for r in recs]  # through the log format
    pairs, stats = preference_pairs(rt + [LogRecord.from_dict({**json.loads(rt[0].to_json()), "key": "x", "rejected": None})])
    assert len(pairs) == 3 and stats.dropped == {"no pair": 1}
    assert pairs[0].prompt == problems[0].question and "Feedback" not in pairs[0].chosen and pairs[0].rejected == "I do not know"
    out = save_preference_buffer(pairs, stats, tmp_path / "buf")
    ds = datasets.load_from_disk(str(out / "dataset"))
    assert ds.column_names[:3] == ["prompt", "chosen", "rejected"] and len(ds) == 3
    assert preference_pairs(rt, BufferConfig(max_chars=10))[1].dropped == {"too long": 3}
    with pytest.raises(ValueError, match="'rejected' must be an object with a 'rationale' string"):
        LogRecord.from_dict({**json.loads(rt[0].to_json()), "rejected": {"text": "x"}})


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_dpo_moves_the_student_toward_the_chosen_side(tiny_model_dir, tmp_path, mode):
    """A few steps on one repeated pair: the implicit reward margin grows, and
    the folder written loads as a student whose chosen/rejected log-ratio rose."""
    spec = f"hf:{tiny_model_dir}"
    chosen = "(1) 1 + 2 = 3.\n(Final response) So the answer is 3."
    rejected = "(1) 1 + 2 = 4.\n(Final response) So the answer is 4."
    pairs = datasets.Dataset.from_dict({"prompt": ["(1 + 2) ="] * 4, "chosen": [chosen] * 4, "rejected": [rejected] * 4})
    cfg = TrainConfig(student=spec, mode=mode, precision="fp32", objective="dpo", dpo_beta=0.1, max_steps=4, batch_size=2,
                      dpo_learning_rate=1e-3 if mode == "lora" else 1e-4, logging_steps=1, progress=False, warmup=0)
    m = train_dpo(cfg, pairs, tmp_path / "out")
    assert m["steps"] == 4 and m["pairs"] == 4 and (tmp_path / "out" / "train_metrics.json").is_file()
    assert m["learning_rate"] == cfg.dpo_learning_rate and m["reference"] == "start"  # DPO's own rate, not SFT's
    assert m["reference_model"].startswith("the base student")  # a round from the base starts there
    assert not (tmp_path / "out" / "ref").exists()  # no copy of TRL's reference adapter in the folder
    assert m["loss_curve"][0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy = reference at the start
    assert m["loss_curve"][-1]["loss"] < m["loss_curve"][0]["loss"] and m["loss_curve"][-1]["reward_margin"] > 0
    assert all(p["logp_chosen"] < 0 and p["logp_rejected"] < 0 for p in m["loss_curve"])  # each side's summed log-probability
    before, after = load_student(spec, precision="fp32"), load_student(spec, precision="fp32", adapter=tmp_path / "out")

    def ratio(s):
        from tripost.student import build_prompt

        prompt = build_prompt(s.tokenizer, "(1 + 2) =")
        a, b = s.logprobs([prompt, prompt], [chosen, rejected], append_eos=True)
        return a.sum - b.sum

    assert ratio(after) > ratio(before)


CHOSEN = "(1) 1 + 2 = 3.\n(Final response) So the answer is 3."
REJECTED = "(1) 1 + 2 = 4.\n(Final response) So the answer is 4."


def _pairs():
    return datasets.Dataset.from_dict({"prompt": ["(1 + 2) =", "(2 + 2) ="], "chosen": [CHOSEN] * 2, "rejected": [REJECTED] * 2})


def _logps(model, batch):
    """Summed completion log-probs of a DPO batch under `model` as it stands,
    computed as TRL computes the policy's (and, on the reference, the reference's)."""
    import torch

    kw = {k: v for k, v in batch.items() if k not in ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")}
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        lp = model(**kw, labels=labels, fused_lm_head=True, use_cache=False).log_probs
    return lp[:, -(batch["completion_mask"].shape[1] - 1):].sum(dim=1)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_the_reference_of_a_later_round_is_where_sharpening_started_the_base_or_its_starting_weights(tiny_model_dir, tmp_path, mode):
    """Round 1 moves the student away from the base, round 2 continues it, and
    round 3 continues round 2. Round 3's reference log-probs are round 1's with
    dpo_reference=start (start_adapter: where the run's sharpening began, as
    `tripost run` sets it to iteration 0), the base model's with base, and the
    weights it starts from (round 2's) with previous."""
    import torch

    from tripost.train.objectives.dpo import build_dpo

    spec = f"hf:{tiny_model_dir}"
    common = dict(student=spec, mode=mode, precision="fp32", objective="dpo", batch_size=2, logging_steps=1, progress=False,
                  warmup=0, mixed_precision="no", dpo_learning_rate=1e-2 if mode == "lora" else 1e-3)
    train_dpo(TrainConfig(**common, max_steps=2), _pairs(), tmp_path / "r1")
    train_dpo(TrainConfig(**common, max_steps=2, adapter=str(tmp_path / "r1"), dpo_reference="previous"), _pairs(), tmp_path / "r2")
    base = build_dpo(TrainConfig(**common, max_steps=1), _pairs(), tmp_path / "b")  # starts from the base
    batch = base.trainer.data_collator([base.trainer.train_dataset[i] for i in range(2)])
    lps = {"base": _logps(base.trainer.model, batch),
           "r1": _logps(build_dpo(TrainConfig(**common, max_steps=1, adapter=str(tmp_path / "r1")), _pairs(), tmp_path / "c").trainer.model, batch)}
    common["dpo_learning_rate"] = None
    for reference in ("start", "base", "previous"):
        run = build_dpo(TrainConfig(**common, max_steps=1, adapter=str(tmp_path / "r2"), start_adapter=str(tmp_path / "r1"),
                                    dpo_reference=reference), _pairs(), tmp_path / reference)
        t = run.trainer
        lps["r2"] = _logps(t.model, batch)  # the policy before its first step: round 2's weights
        ref_lp = torch.cat(t.compute_ref_log_probs(t.ref_model or t.model, batch))  # what TRL scores the reference with
        want = {"start": "r1", "base": "base", "previous": "r2"}[reference]
        torch.testing.assert_close(ref_lp, lps[want], rtol=1e-5, atol=1e-4)
        for other in {"r1", "base", "r2"} - {want}:
            assert (lps[want] - lps[other]).abs().max() > 1e-3  # the three are different weights
        assert run.learning_rate == (5e-6 if mode == "lora" else 1e-6)  # unset: TRL's rates, not SFT's 2e-4
        assert run.reference.startswith("the base student" if reference == "base" else
                                        f"the weights of {tmp_path / ('r1' if reference == 'start' else 'r2')}")
        if mode == "lora":
            assert ("ref" in t.model.peft_config) == (reference != "base")  # a frozen adapter copy, or the adapter off
            assert t.model.active_adapter == "default"
        else:
            assert t.ref_model is not None and not any(p.requires_grad for p in t.ref_model.parameters())


def test_dpo_reference_and_learning_rate_are_checked():
    with pytest.raises(TripostError, match="unknown dpo_reference 'initial'; choose from start, base, previous"):
        TrainConfig(dpo_reference="initial")
    for bad in (0, -1e-6, True, float("nan")):
        with pytest.raises(TripostError, match="dpo_learning_rate must be a number > 0"):
            TrainConfig(dpo_learning_rate=bad)
    cfg = RunConfig.load(None, ["train.objective=dpo", "collect.source=sharpen", "train.dpo_reference=previous",
                                "train.dpo_learning_rate=5e-7"]).to_dict()
    assert (cfg["train"]["dpo_reference"], cfg["train"]["dpo_learning_rate"]) == ("previous", 5e-7)


def test_the_run_checks_that_dpo_has_pairs_to_train_on():
    with pytest.raises(TripostError, match=r"train.objective=dpo trains on the sharpen source's \(best, worst\) pairs: set collect.source=sharpen"):
        RunConfig.load(None, ["train.objective=dpo"])
    with pytest.raises(TripostError, match=r"\(now sharpen, 1\)"):
        RunConfig.load(None, ["train.objective=dpo", "collect.source=sharpen", "collect.samples_per_problem=1"])
    with pytest.raises(TripostError, match="unknown train objective 'ppo'"):
        RunConfig.load(None, ["train.objective=ppo"])
    RunConfig.load(None, ["train.objective=dpo", "collect.source=sharpen"])


def test_online_rlhf_sharpening_runs_from_tripost_run(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIPOST_HOME", str(tmp_path / "home"))
    out = tmp_path / "run"
    state = run_loop(out, overrides=[
        f"student.spec=hf:{tiny_model_dir}", "tasks.n_train=3", "tasks.n_eval=2", "train.epochs=1", "train.precision=fp32",
        "collect.source=sharpen", "collect.samples_per_problem=3", "collect.max_new_tokens=12", "train.objective=dpo",
        "eval.max_new_tokens=8", "eval.max_turns=0", "eval.n_bootstrap=20", "loop.iterations=2", "gap.enabled=false",
        "train.logging_steps=1",
    ], progress=False)
    for t in (1, 2):
        assert f"it{t}/train" in state["stages"]
        m = json.loads((out / f"it{t}" / "train" / "train_metrics.json").read_text())
        assert m["objective"] == "dpo" and m["pairs"] >= 1
        # Both rounds are scored against iteration 0, where the run's sharpening started (dpo_reference=start).
        assert m["reference"] == "start" and m["reference_model"] == f"the weights of {out / 'it0' / 'train'} (a frozen copy)"
        ds = datasets.load_from_disk(str(out / f"it{t}" / "buffer" / "dataset"))
        recs = [json.loads(x) for x in (out / f"it{t}" / "collect" / "log.jsonl").read_text().splitlines()]
        assert len(ds) == sum(r["rejected"] is not None for r in recs)
    # Round 2 sampled with round 1's weights (online): its log names them.
    rec2 = json.loads((out / "it2" / "collect" / "log.jsonl").read_text().splitlines()[0])
    assert rec2["student"]["adapter"].endswith("it1/train")
    assert json.loads((out / "it0" / "train" / "train_metrics.json").read_text()).get("objective", "sft") != "dpo"


def test_its_own_verbs_buffer_pairs_then_train_dpo(tiny_model_dir, tmp_path, capsys):
    from tripost.cli import main
    from tripost.log import LogWriter

    problems = sample_problems(get_task("arithmetic"), split="train", n=2, seed=0)
    with LogWriter(tmp_path / "sharpen.jsonl") as w:
        for r in sharpen_records(problems, FakeStudent(scripted(problems)), SharpenConfig(samples=4, reward="mean_logprob")):
            w.write(r)
    assert main(["buffer", str(tmp_path / "sharpen.jsonl"), "--pairs", "--out", str(tmp_path / "pairs")]) == 0
    assert "wrote 2 pairs" in capsys.readouterr().out
    assert main(["train", "--buffer", str(tmp_path / "pairs"), "--student", f"hf:{tiny_model_dir}", "--precision", "fp32",
                 "--out", str(tmp_path / "rlhf"), "objective=dpo", "max_steps=2", "batch_size=2", "progress=false", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["objective"] == "dpo" and summary["steps"] == 2 and summary["pairs"] == 2
    # An SFT buffer has no pairs: one line, not a traceback.
    assert main(["buffer", str(tmp_path / "sharpen.jsonl"), "--out", str(tmp_path / "sft")]) == 0
    capsys.readouterr()
    assert main(["train", "--buffer", str(tmp_path / "sft"), "--student", f"hf:{tiny_model_dir}", "--out", str(tmp_path / "x"),
                 "objective=dpo", "max_steps=1"]) == 2
    assert "needs the columns prompt, chosen, rejected (tripost buffer --pairs)" in capsys.readouterr().err


def test_dpo_takes_a_token_budget_like_sft(tiny_model_dir, tmp_path):
    """train.token_budget on the DPO objective: twice the pairs at the same
    budget train about the same tokens (TRL's own count), in half the passes."""
    chosen = "(1) 1 + 2 = 3.\n(Final response) So the answer is 3."
    rejected = "(1) 1 + 2 = 4.\n(Final response) So the answer is 4."
    got = {}
    for n in (4, 8):
        pairs = datasets.Dataset.from_dict({"prompt": ["(1 + 2) ="] * n, "chosen": [chosen] * n, "rejected": [rejected] * n})
        cfg = TrainConfig(student=f"hf:{tiny_model_dir}", mode="lora", precision="fp32", objective="dpo", batch_size=2, token_budget=2000,
                          logging_steps=1, progress=False, warmup=0)
        m = train_dpo(cfg, pairs, tmp_path / f"out{n}")
        got[n] = (m["tokens"], m["epochs"])
    (t4, e4), (t8, e8) = got[4], got[8]
    assert e8 == pytest.approx(e4 / 2, rel=0.35) and t4 > 0 and abs(t8 - t4) <= 0.35 * t4, got
