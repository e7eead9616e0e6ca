"""scripts/campaign.py's bookkeeping, on hand-written files (no model runs):
the curve read from the evaluations, the iteration-0 rule, what is published."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("campaign", ROOT / "scripts" / "campaign.py")
campaign = importlib.util.module_from_spec(spec)
spec.loader.exec_module(campaign)


def _eval(path: Path, acc: float, n: int = 300) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = {"n": n, "first_accuracy": acc, "ci": {"first_accuracy": [max(0.0, acc - 0.05), min(1.0, acc + 0.05)]}}
    path.write_text(json.dumps({"metrics": {"total": m, "seen": {**m, "first_accuracy": acc + 0.1}, "unseen": {**m, "first_accuracy": acc - 0.1}},
                                "student": {"precision": "bf16"}, "config": {"batch_size": 64}}))


def test_the_curve_the_iteration0_rule_and_the_published_files(tmp_path):
    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "abc123" * 6, "started": "now", "docs": str(docs)})
    campaign.write_json(d / "measure.json", {"machine": {"cpu": "X", "flags": ["avx2"]}, "train_tokens_per_s": 100.0,
                                             "sample_tokens_per_s": 200.0, "train_tokens_per_example": 170.0})
    assert [s["done"] for s in campaign.competence_stages(d)][:2] == [False, False]
    for n, acc in ((400, 0.12), (800, 0.31), (1600, 0.38)):
        _eval(campaign.chunk_dir(d, n // campaign.CHUNK) / "eval.json", acc)
    rows = campaign.curve(d)
    assert [r["gold_examples"] for r in rows] == [400, 800, 1600] and rows[1]["ci"] == [0.26, 0.36]
    assert campaign.iteration0(rows)["gold_examples"] == 800  # the smallest at >= 30%
    assert campaign.iteration0(rows[:1])["gold_examples"] == 400  # none reached it: the best
    campaign.publish(d, docs)
    data = json.loads((docs / "learning.json").read_text())
    assert data["sft_gold_curve"][2]["first_acc"] == 0.38 and data["meta"]["machine"]["cpu"] == "X" and data["iteration0"]["arithmetic"]["gold_examples"] == 800
    md = (docs / "learning.md").read_text()
    assert "| arithmetic | 800 | 31.0% | [26.0, 36.0] |" in md and "the smallest at >= 30%" in md
    stages = campaign.plan(d, json.loads((d / "measure.json").read_text()))
    # Per task: 8 chunks, 4 evaluations, the comparison, the BIG-bench transfer; arithmetic's first.
    # ... then the label-free methods of each task.
    repeats = sum(len(ms) for ms in campaign.LABEL_FREE_REPEATS.values())
    assert len(stages) == 2 * (8 + 4 + 1 + 1) + 2 * len(campaign.LABEL_FREE) + repeats and all(s["projected_s"] > 0 for s in stages)
    assert [s["name"] for s in stages if s["kind"] == "comparison"] == ["comparison/arithmetic", "comparison/word_sorting"]
    assert stages[12]["name"] == "comparison/arithmetic" and stages[13]["name"] == "transfer/arithmetic BIG-bench"
    assert stages[14]["name"] == "competence/word_sorting train 400 gold"
    assert sum(s["kind"] == "eval" for s in stages) == 2 * len(campaign.CURVE)


def test_a_curve_still_running_says_so(tmp_path):
    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "0" * 40, "started": "now", "docs": str(docs)})
    _eval(campaign.chunk_dir(d, 1) / "eval.json", 0.107)
    campaign.publish(d, docs)
    assert "the best so far: none of the 1 of 4 checkpoints evaluated reached 30%" in (docs / "learning.md").read_text()


def test_the_comparison_follows_the_curve_and_is_published_as_it_goes(tmp_path):
    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "1" * 40, "started": "now", "docs": str(docs)})
    m = {"train_tokens_per_s": 180.0, "sample_tokens_per_s": 230.0, "train_tokens_per_example": 175.0}
    stages = [s for s in campaign.plan(d, m) if s["kind"] == "comparison"]
    assert stages[0]["name"] == f"comparison/{campaign.TASKS[0]}" and not stages[0]["done"]
    assert 3600 < stages[0]["projected_s"] < 12 * 3600  # hours, said before it starts
    for k in range(1, 5):  # the chunk chain: each chunk's own tokens
        campaign.write_json(campaign.chunk_dir(d, k) / "train" / "train_metrics.json", {"tokens": 1000 * k})
    assert campaign.chain_tokens(d, 1200) == 6000 and campaign.chain_tokens(d, 1600) == 10000
    # bench_learning's partial file: its rows land in learning.json and the markdown says it is still running.
    row = {"method": "tripost-t1", "iteration": 1, "chosen": None, "task": "total", "subset": "total", "n": 400, "first_acc": 0.3,
           "final_acc": 0.35, "paired_ci_vs_sft_gold_plus": None, "fix_rate": 0.1, "break_rate": 0.02, "revised_rate": 0.2, "train_tokens": 9}
    campaign.write_json(docs / f"learning-{campaign.TASKS[0]}.json", {"meta": {"command": "bench", "partial": "seed 0 still running"}, "rows": [row]})
    campaign.publish(d, docs)
    data = json.loads((docs / "learning.json").read_text())
    assert data["rows"] == [row] and data["comparison"][campaign.TASKS[0]]["partial"] == "seed 0 still running"
    assert data["meta"]["steps_running"] == [f"comparison on {campaign.TASKS[0]} (partial)"]
    assert campaign.chunk_dir(d, 2, "word_sorting") == d / "competence" / "word_sorting" / "gold800"  # the first task keeps its layout
    assert campaign.chunk_dir(d, 2) == d / "competence" / "gold800"
    md = (docs / "learning.md").read_text()
    assert "**Still running:** seed 0 still running." in md and "| tripost-t1 | 1 | 400 | 30.0% | 35.0% | — | 10.0% | 2.0% | 20.0% | 9 |" in md
    assert "Not run yet: 3 comparison on word_sorting; 4 label-free methods" in md
    # Finished: done.json marks the stage, the verdict line appears.
    campaign.write_json(docs / f"learning-{campaign.TASKS[0]}.json",
                        {"meta": {"command": "bench"}, "rows": [row], "target": {"per_seed": [{"best": "tripost-t1", "met": False}]}})
    campaign.write_json(campaign.comparison_dir(d, campaign.TASKS[0]) / "done.json", {"finished": "now"})
    campaign.publish(d, docs)
    assert "all **NOT MET**" in (docs / "learning.md").read_text()
    assert next(s for s in campaign.plan(d, m) if s["kind"] == "comparison")["done"]


def test_advance_moves_a_stopped_campaign_along_its_history_only(tmp_path):
    import os
    import subprocess

    import pytest

    def rev(x):
        done = subprocess.run(["git", "-C", str(campaign.ROOT), "rev-parse", x], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    head, parent = rev("HEAD"), rev("HEAD~1")
    if not head or not parent:
        pytest.skip("needs a checkout with at least two commits")
    d = tmp_path / "c"
    state = {"commit": parent, "started": "then", "docs": str(tmp_path / "docs")}
    campaign.write_json(d / "campaign.json", state)
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(campaign.ROOT), str(d / "src")], check=True)
    subprocess.run(["git", "-C", str(d / "src"), "checkout", "--quiet", parent], check=True)
    (d / "worker.pid").write_text(f"{os.getpid()}\n")  # a live worker: refused
    assert campaign.advance(d, state, head) == 2
    (d / "worker.pid").write_text("999999999\n")
    assert campaign.advance(d, {**state, "commit": head}, parent) == 2  # backwards is not along its history
    assert campaign.advance(d, state, head) == 0
    new = json.loads((d / "campaign.json").read_text())
    assert new["commit"] == head and [h["commit"] for h in new["history"]] == [parent, head]
    got = subprocess.run(["git", "-C", str(d / "src"), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert got == head


def _save_eval(path: Path, family: str, outcome, split: str = "test", n: int = 10) -> None:
    """An eval.json + transcripts as tripost.evaluate writes them: n seen + n
    unseen problems of one family; outcome(i) -> (first, final)."""
    from tripost.evaluate import EvalConfig, EvalRecord, EvalResult, compute_metrics

    recs = []
    for j, subset in enumerate(("seen", "unseen")):
        for k in range(n):
            first, final = outcome(j * n + k)
            correct = [first] if first == final else [first, final]
            recs.append(EvalRecord(problem_id=f"{family}-{split}-{subset}-{k}", family=family, subset=subset, split=split, difficulty="d",
                                   question="q", gold="1", text="", stop_reason="correct", stop_detail="", n_updates=len(correct) - 1,
                                   answers=[None] * len(correct), correct=correct))
    EvalResult(records=recs, metrics=compute_metrics(recs, n_boot=50), config=EvalConfig(progress=False)).save(path)


def test_the_targets_are_read_on_the_pool_of_both_tasks(tmp_path):
    """Both comparisons finished: every method's records of the two tasks are
    pooled and bench_learning's verdict is read on the pool; TriPosT's
    iteration is chosen on the pooled validation accuracy."""
    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "2" * 40, "started": "now", "docs": str(docs)})
    half = lambda i: (i % 2 == 0, i % 2 == 0)  # noqa: E731
    fixes = lambda i: (i % 2 == 0, i % 2 == 0 or i % 4 == 1)  # noqa: E731  half right, then a quarter fixed by revision
    for task in campaign.TASKS:
        root = tmp_path / "runs" / task
        for where, outcome in (("tripost/it0/eval", half), ("sft-gold-plus/eval", half), ("rejection/it2/eval", half),
                               ("demo/it1/eval", half), ("tripost/it1/eval", half), ("tripost/it2/eval", fixes)):
            _save_eval(root / where / "eval.json", task, outcome)
        # Validation: iteration 2 better on arithmetic, iteration 1 by a little on word_sorting: pooled, 2 wins.
        _save_eval(root / "tripost/it1/val/eval.json", task, half, split="val")
        _save_eval(root / "tripost/it2/val/eval.json", task, fixes if task == "arithmetic" else (lambda i: (i % 2 == 0 and i != 0,) * 2), split="val")
        runs = {"tripost": str(root / "tripost"), "rejection": str(root / "rejection"), "tripost-demo": str(root / "demo"),
                "sft-gold+": str(root / "sft-gold-plus")}
        sel = {"tripost": {"iteration": 2}, "rejection": {"iteration": 2}, "tripost-demo": {"iteration": 1}}
        campaign.write_json(docs / f"learning-{task}.json", {"meta": {"command": "bench", "runs": {"0": runs}, "size": {"iterations": 2},
                                                                       "iteration0": {"tokens": 100}}, "selection": [sel], "rows": []})
        campaign.write_json(campaign.comparison_dir(d, task) / "done.json", {"finished": "now"})
    campaign.publish(d, docs)
    data = json.loads((docs / "learning.json").read_text())
    pool = data["pooled"]
    assert pool["choice"]["iteration"] == 2 and [v["n"] for v in pool["choice"]["val"]] == [40, 40]
    get = {(r["method"], r["subset"]): r for r in pool["rows"]}
    t2 = get[("tripost-t2", "total")]
    assert t2["n"] == 40 and t2["chosen"] and t2["final_acc"] == 0.75 and t2["train_tokens"] == 200
    assert get[("sft-gold+", "total")]["final_acc"] == 0.5 and t2["paired_ci_vs_sft_gold_plus"][0] > 0
    assert pool["target"]["best"] == "tripost-t2" and pool["target"]["beats_sft_gold_plus"] is True
    md = (docs / "learning.md").read_text()
    assert "## The total of both tasks: the targets" in md and "the total of both tasks (pooled verdict)" not in md


def test_the_label_free_methods_follow_both_comparisons_at_tripost_s_tokens(tmp_path):
    """Step 4: one stage per task and method after both comparisons; each
    method's run config resolves (every override a real key and value) with
    TriPosT's mean tokens per iteration as its budget; finished methods are
    published beside sft-gold and sft-gold+ with paired intervals."""
    from tripost.runconfig import RunConfig

    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "3" * 40, "started": "now", "docs": str(docs)})
    names = [s["name"] for s in campaign.stages(d)]
    assert names.index("comparison/word_sorting") < names.index("label-free/arithmetic sharpen")
    assert len([n for n in names if n.startswith("label-free/")]) == 2 * len(campaign.LABEL_FREE) + 5 == 19
    # A second training seed of some methods comes after every task's methods, each in a folder of its own:
    # word_sorting's two, then arithmetic's three.
    assert names[-5:] == ["label-free/word_sorting self-verified-reweight seed 1", "label-free/word_sorting guided seed 1",
                          "label-free/arithmetic sharpen seed 1", "label-free/arithmetic self-verified-reweight seed 1",
                          "label-free/arithmetic guided seed 1"]
    assert campaign.label_free_dir(d, "arithmetic", "guided", 1).name == "guided-seed1"
    assert RunConfig.load(None, campaign.label_free_overrides("arithmetic", "guided", 1, seed=1)).to_dict()["seed"] == 1
    for method, extra in campaign.LABEL_FREE.items():
        cfg = RunConfig.load(None, campaign.label_free_overrides("arithmetic", method, 12345)).to_dict()
        assert cfg["train"]["token_budget"] == 12345 and cfg["tasks"]["families"] == ["arithmetic"] and cfg["tasks"]["n_eval"] == 200
        assert cfg["collect"]["samples_per_problem"] == campaign.LABEL_FREE_SAMPLES and not cfg["student"]["eval_base"]
    assert RunConfig.load(None, campaign.label_free_overrides("arithmetic", "sharpen-dpo", 1)).to_dict()["train"]["objective"] == "dpo"
    half = lambda i: (i % 2 == 0, i % 2 == 0)  # noqa: E731
    better = lambda i: (i % 2 == 0 or i % 4 == 1,) * 2  # noqa: E731
    root = tmp_path / "runs" / "arithmetic"
    for where in ("tripost/it0/eval", "sft-gold-plus/eval"):
        _save_eval(root / where / "eval.json", "arithmetic", half)
    for t, tokens in ((1, 1000), (2, 3000)):
        campaign.write_json(root / "tripost" / f"it{t}" / "train" / "train_metrics.json", {"tokens": tokens})
    assert campaign.tripost_tokens_per_iteration(root / "tripost", 2) == 2000
    _save_eval(campaign.label_free_dir(d, "arithmetic", "sharpen") / "it2" / "eval" / "eval.json", "arithmetic", better)
    runs = {"tripost": str(root / "tripost"), "rejection": str(root / "rejection"), "tripost-demo": str(root / "demo"),
            "sft-gold+": str(root / "sft-gold-plus")}
    campaign.write_json(docs / "learning-arithmetic.json", {"meta": {"command": "bench", "runs": {"0": runs}, "size": {"iterations": 2},
                                                                    "iteration0": {"tokens": 100}}, "selection": [{}], "rows": []})
    campaign.publish_label_free(d, docs)
    data = json.loads((docs / "self-improve.json").read_text())
    get = {(r["method"], r["subset"]): r for r in data["rows"]}
    assert {m for m, _ in get} == {"sft-gold", "sft-gold+", "sharpen"}
    assert get[("sharpen", "total")]["final_acc"] == 0.75 and get[("sharpen", "total")]["paired_ci_vs_sft_gold_plus"][0] > 0
    assert get[("sharpen", "total")]["paired_ci_vs_sft_gold"][0] > 0 and get[("sft-gold", "total")]["paired_ci_vs_sft_gold"] == [0.0, 0.0]
    assert "| arithmetic | sharpen | total | 20 |" in (docs / "self-improve.md").read_text()
    assert data["meta"]["seeds"] == [0] and data["seed_pairs"] == []
    # sharpen at seed 1 (10 of 20 right) beside its seed-0 run (15 of 20): a row of its own, and the difference.
    _save_eval(campaign.label_free_dir(d, "arithmetic", "sharpen", 1) / "it2" / "eval" / "eval.json", "arithmetic", half)
    campaign.publish_label_free(d, docs)
    data = json.loads((docs / "self-improve.json").read_text())
    again = {(r["method"], r["subset"]): r for r in data["rows"] if r["seed"] == 1}
    assert set(again) == {("sharpen", s) for s in ("seen", "unseen", "total")} and again[("sharpen", "total")]["final_acc"] == 0.5
    assert data["meta"]["seeds"] == [0, 1] and len([r for r in data["rows"] if r["method"] == "sft-gold"]) == 3
    (p,) = data["seed_pairs"]
    assert (p["method"], p["seed"], p["minus_seed"], p["n"]) == ("sharpen", 1, 0, 20) and p["diff"] == pytest.approx(-0.25)
    md = (docs / "self-improve.md").read_text()
    assert "| arithmetic | sharpen (seed 1) | total | 20 |" in md and "| arithmetic | sharpen | 75.0% | 50.0% | -25.0 [" in md


def test_the_bigbench_transfer_waits_for_its_file_then_scores_each_student(tmp_path):
    """Step 5: a task's transfer stage waits (the rest of the campaign goes
    on) until BBH's file is in DIR/bigbench; its students are the finished
    comparison's models at the chosen iterations; what has been evaluated is
    published with paired intervals against sft-gold+ and by difficulty."""
    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "4" * 40, "started": "now", "docs": str(docs)})
    stage = next(s for s in campaign.stages(d) if s["name"] == "transfer/arithmetic BIG-bench")
    assert stage["blocked"] == f"needs {d / 'bigbench' / 'multistep_arithmetic_two.json'} (BIG-Bench-Hard's bbh/multistep_arithmetic_two.json)"
    campaign.bigbench_file(d, "arithmetic").parent.mkdir(parents=True)
    campaign.bigbench_file(d, "arithmetic").write_text("{}")
    assert next(s for s in campaign.stages(d) if s["name"] == "transfer/arithmetic BIG-bench")["blocked"] is None
    root = tmp_path / "runs" / "arithmetic"
    runs = {"tripost": str(root / "tripost"), "rejection": str(root / "rejection"), "tripost-demo": str(root / "demo"),
            "sft-gold+": str(root / "sft-gold-plus")}
    sel = {"tripost": {"iteration": 2}, "rejection": {"iteration": 1}, "tripost-demo": {"iteration": 1}}
    campaign.write_json(docs / "learning-arithmetic.json", {"meta": {"command": "bench", "runs": {"0": runs}, "size": {"iterations": 2},
                                                                    "iteration0": {"tokens": 100}}, "selection": [sel], "rows": []})
    students = {m["method"]: m["model"] for m in campaign.transfer_students(docs, "arithmetic")}
    assert students == {"base": None, "sft-gold": root / "tripost" / "it0" / "train", "sft-gold+": root / "sft-gold-plus" / "train",
                        "rejection": root / "rejection" / "it1" / "train", "tripost-demo": root / "demo" / "it1" / "train",
                        "tripost-t2": root / "tripost" / "it2" / "train"}
    folder = campaign.transfer_dir(d, "arithmetic")
    (folder / "multistep_arithmetic_two.jsonl").parent.mkdir(parents=True)
    (folder / "multistep_arithmetic_two.jsonl").write_text("")
    _save_eval(folder / "sft-gold+" / "eval.json", "arithmetic", lambda i: (False, False))
    _save_eval(folder / "tripost-t2" / "eval.json", "arithmetic", lambda i: (i % 2 == 0, i % 2 == 0 or i % 4 == 1))
    campaign.publish_transfer(d, docs)
    data = json.loads((docs / "bigbench.json").read_text())
    get = {(r["method"], r["subset"]): r for r in data["rows"]}
    assert set(get) == {("sft-gold+", "seen"), ("sft-gold+", "unseen"), ("sft-gold+", "total"),
                        ("tripost-t2", "seen"), ("tripost-t2", "unseen"), ("tripost-t2", "total")}
    assert get[("tripost-t2", "total")]["final_acc"] == 0.75 and get[("tripost-t2", "total")]["paired_ci_vs_sft_gold_plus"][0] > 0
    assert get[("tripost-t2", "total")]["bigbench_task"] == "multistep_arithmetic_two"
    assert {g["method"] for g in data["by_difficulty"]} == {"sft-gold+", "tripost-t2"}
    md = (docs / "bigbench.md").read_text()
    assert "| arithmetic (multistep_arithmetic_two) | tripost-t2 | 20 | 50.0% | 75.0% |" in md
    (docs / "bigbench.md").write_text(md + "\n## Reading\n\nWhat it means.\n")
    campaign.publish_transfer(d, docs)  # written again: the tables anew, the reading kept
    assert (docs / "bigbench.md").read_text().endswith("\n## Reading\n\nWhat it means.\n")


def test_a_comparison_keeps_the_config_it_began_with_across_an_advance(tmp_path):
    """Defaults that changed after a comparison's TriPosT run began (here the
    evaluation's batch size) become --set overrides for every method, worked
    out once and kept in pins.json."""
    from tripost.runconfig import RunConfig

    d = tmp_path / "c"
    folder = campaign.comparison_dir(d, "word_sorting")
    args = ["--size", campaign.COMPARISON, "--tasks", "word_sorting", "--seed", "0", "--out", str(folder / "runs"), "--docs", str(tmp_path)]
    assert campaign.comparison_pins(folder, args) == [] and not (folder / "pins.json").exists()  # nothing began: today's defaults
    bl = campaign.bench_learning()
    now = bl.run_configs(bl.base_overrides(bl.SIZES[campaign.COMPARISON], "auto", 0, "smollm2-135m", ["word_sorting"]), [])["tripost"]
    recorded = json.loads(json.dumps(now))
    recorded["eval"]["batch_size"] = now["eval"]["batch_size"] // 2
    campaign.write_json(folder / "runs" / "tripost" / "config.json", recorded)
    pins = campaign.comparison_pins(folder, args)
    assert pins == [f"eval.batch_size={recorded['eval']['batch_size']}"]
    assert RunConfig.load(None, bl.base_overrides(bl.SIZES[campaign.COMPARISON], "auto", 0, "smollm2-135m", ["word_sorting"]) + pins).to_dict() == recorded
    campaign.write_json(folder / "runs" / "tripost" / "config.json", now)  # read once: pins.json decides from then on
    assert campaign.comparison_pins(folder, args) == pins


def test_a_label_free_run_goes_on_with_the_config_it_began_with(tmp_path):
    from tripost.runconfig import RunConfig

    folder = tmp_path / "lf"
    pins = ["eval.batch_size=64"]
    first = campaign.label_free_run_overrides(folder, "arithmetic", "sharpen", 1000, pins)
    assert first == campaign.label_free_overrides("arithmetic", "sharpen", 1000) + pins  # not begun: nothing recorded
    recorded = RunConfig.load(None, first).to_dict()
    recorded["collect"]["temperature"] = 0.5  # as if a later commit changed what the method sets
    campaign.write_json(folder / "config.json", recorded)
    again = campaign.label_free_run_overrides(folder, "arithmetic", "sharpen", 1000, pins)
    assert again[-1] == "collect.temperature=0.5" and RunConfig.load(None, again).to_dict() == recorded


def test_rlhf_sharpening_links_sft_sharpening_s_first_collection_and_nothing_else_does(tmp_path):
    """sharpen-dpo draws, scores and picks what sharpen does at iteration 1;
    it takes sharpen's finished collection where the configs differ only in
    training, and never where they differ in what is collected."""
    from tripost.runconfig import RunConfig

    d, pins = tmp_path / "c", ["eval.batch_size=64"]
    over = {m: campaign.label_free_run_overrides(campaign.label_free_dir(d, "arithmetic", m), "arithmetic", m, 1000, pins)
            for m in campaign.LABEL_FREE}
    sharpen = campaign.RunLayout(campaign.label_free_dir(d, "arithmetic", "sharpen"))
    assert campaign.shared_collection(d, "arithmetic", "sharpen-dpo", over["sharpen-dpo"]) is None  # sharpen has not run
    campaign.write_json(sharpen.config, RunConfig.load(None, over["sharpen"]).to_dict())
    assert campaign.shared_collection(d, "arithmetic", "sharpen-dpo", over["sharpen-dpo"]) is None  # nor finished collecting
    campaign.write_json(sharpen.it(1).collect_json, {"records_written": 400})
    assert campaign.shared_collection(d, "arithmetic", "sharpen-dpo", over["sharpen-dpo"]) == sharpen.it(1).collect
    assert campaign.shared_collection(d, "arithmetic", "self-verified-filter", over["self-verified-filter"]) is None
    assert campaign.shared_collection(d, "arithmetic", "sharpen", over["sharpen"]) is None  # only the stages before it
    assert campaign.shared_collection(d, "arithmetic", "sharpen-dpo", over["sharpen-dpo"] + ["collect.temperature=0.5"]) is None
    dpo = campaign.RunLayout(campaign.label_free_dir(d, "arithmetic", "sharpen-dpo"))
    dpo.it(1).collect.mkdir(parents=True)  # begun with its own collection: it goes on with it
    assert campaign.shared_collection(d, "arithmetic", "sharpen-dpo", over["sharpen-dpo"]) is None


def test_a_lost_campaign_folder_runs_step_4_alone_on_rebuilt_prerequisites(tmp_path):
    """--from-docs: per task the competence chain up to the committed iteration
    0 (and its evaluation), its controls, its label-free methods; nothing of
    steps 1-3 and 5 again. The methods train at the committed TriPosT tokens
    per iteration and are read against the rebuilt controls; learning.* stays
    as committed."""
    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "5" * 40, "started": "now", "docs": str(docs), "from_docs": True})
    rows = [{"seed": 0, "method": m, "iteration": it, "task": "arithmetic", "subset": "total", "train_tokens": tok}
            for m, it, tok in (("sft-gold", 0, 500), ("tripost-t1", 1, 600), ("tripost-t2", 2, 900))]
    for task, gold in (("arithmetic", 1600), ("word_sorting", 800)):
        campaign.write_json(docs / f"learning-{task}.json", {"meta": {"size": {"iterations": 2}, "runs": {"0": {}},
                                                                      "iteration0": {"tokens": 500, "problems": gold}}, "rows": rows})
    names = [s["name"] for s in campaign.stages(d)]
    assert names[:6] == ["competence/arithmetic train 400 gold", "competence/arithmetic train 800 gold", "competence/arithmetic train 1200 gold",
                         "competence/arithmetic train 1600 gold", "competence/arithmetic eval at 1600 gold", "controls/arithmetic sft-gold, sft-gold+"]
    assert "competence/arithmetic eval at 400 gold" not in names and "competence/word_sorting eval at 800 gold" in names
    assert not any(n.startswith(("comparison/", "transfer/")) for n in names)
    assert names.index("label-free/arithmetic guided") < names.index("competence/word_sorting train 400 gold")
    assert len([n for n in names if n.startswith("label-free/")]) == 2 * len(campaign.LABEL_FREE) + sum(map(len, campaign.LABEL_FREE_REPEATS.values()))
    comp = json.loads((docs / "learning-arithmetic.json").read_text())
    assert campaign.committed_tripost_tokens(comp) == [100, 300]
    # The controls as the stage leaves them, and a finished method.
    half = lambda i: (i % 2 == 0, i % 2 == 0)  # noqa: E731
    runs = campaign.restored_runs(d, "arithmetic")
    _save_eval(runs["tripost"] / "it0" / "eval" / "eval.json", "arithmetic", half)
    _save_eval(runs["sft-gold+"] / "eval" / "eval.json", "arithmetic", half)
    campaign.write_json(runs["sft-gold+"] / "gold_plus.json", {"tokens": 400})
    i0 = {"gold_examples": 1600, "tokens": 510, "committed_tokens": 500, "first_acc": 0.3, "committed_first_acc": 0.28, "seen": 0.5,
          "committed_seen": 0.54, "unseen": 0.1, "committed_unseen": 0.02}
    campaign.write_json(campaign.comparison_dir(d, "arithmetic") / "restored.json", {"iteration0": i0, "sft_gold_plus_target_tokens": 400})
    _save_eval(campaign.label_free_dir(d, "arithmetic", "guided") / "it2" / "eval" / "eval.json", "arithmetic",
               lambda i: (i % 2 == 0 or i % 4 == 1,) * 2)
    _save_eval(campaign.label_free_dir(d, "arithmetic", "sharpen") / "it2" / "eval" / "eval.json", "arithmetic", half)
    campaign.publish(d, docs)
    assert not (docs / "learning.json").exists()  # steps 1-3 stay as committed
    campaign.publish_label_free(d, docs)
    data = json.loads((docs / "self-improve.json").read_text())
    get = {(r["method"], r["subset"]): r for r in data["rows"]}
    assert {m for m, _ in get} == {"sft-gold", "sft-gold+", "sharpen", "guided"}
    # Method against method on the same problems: guided (15 of 20) minus sharpen (10 of 20); no pooled
    # total while word_sorting has none.
    (pair,) = data["pairs"]
    assert (pair["task"], pair["method"], pair["minus"], pair["n"]) == ("arithmetic", "guided", "sharpen", 20)
    assert pair["diff"] == pytest.approx(0.25) and pair["paired_ci"][0] > 0
    assert "| guided | +25.0 [" in (docs / "self-improve.md").read_text()
    assert get[("sft-gold", "total")]["train_tokens"] == 510 and get[("sft-gold+", "total")]["train_tokens"] == 910
    assert get[("guided", "total")]["paired_ci_vs_sft_gold_plus"][0] > 0
    assert data["meta"]["restored"]["arithmetic"]["iteration0"]["committed_first_acc"] == 0.28 and "--from-docs" in data["meta"]["command"]
    md = (docs / "self-improve.md").read_text()
    assert "first attempt 30.0% (seen 50.0%, unseen 10.0%) where the committed curve has 28.0% (54.0%, 2.0%)" in md
    # A whole campaign's folder cannot be turned into a --from-docs one.
    import subprocess

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    campaign.write_json(tmp_path / "whole" / "campaign.json", {"commit": head, "started": "now", "docs": str(docs)})
    assert campaign.main(["start", "--dir", str(tmp_path / "whole"), "--from-docs"]) == 2
    assert not (tmp_path / "whole" / "src").exists()  # refused before anything was cloned


def test_rows_of_a_lost_folder_stay_published_until_the_new_one_has_them(tmp_path):
    """A campaign folder lost after some label-free methods finished: the new
    --from-docs folder's publish keeps those rows as committed (each names its
    commit) and replaces only what it has evaluated itself."""
    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "7" * 40, "started": "now", "docs": str(docs), "from_docs": True})
    rows = [{"seed": 0, "method": m, "iteration": it, "task": "arithmetic", "subset": "total", "train_tokens": tok}
            for m, it, tok in (("sft-gold", 0, 500), ("tripost-t1", 1, 600), ("tripost-t2", 2, 900))]
    campaign.write_json(docs / "learning-arithmetic.json", {"meta": {"size": {"iterations": 2}, "runs": {"0": {}},
                                                                    "iteration0": {"tokens": 500, "problems": 400}}, "rows": rows})
    old = [{"task": "arithmetic", "method": m, "subset": sub, "n": 20, "first_acc": 0.5, "final_acc": 0.5, "commit": "6" * 40}
           for m in ("sft-gold", "sft-gold+", "sharpen") for sub in ("seen", "unseen", "total")]
    campaign.write_json(docs / "self-improve.json", {"meta": {}, "rows": old})
    half = lambda i: (i % 2 == 0, i % 2 == 0)  # noqa: E731
    runs = campaign.restored_runs(d, "arithmetic")
    _save_eval(runs["tripost"] / "it0" / "eval" / "eval.json", "arithmetic", half)
    _save_eval(runs["sft-gold+"] / "eval" / "eval.json", "arithmetic", half)
    _save_eval(campaign.label_free_dir(d, "arithmetic", "guided") / "it2" / "eval" / "eval.json", "arithmetic", half)
    campaign.publish_label_free(d, docs)
    data = json.loads((docs / "self-improve.json").read_text())
    by = {(r["method"], r["subset"]): r for r in data["rows"]}
    assert [r["method"] for r in data["rows"] if r["subset"] == "total"] == ["sft-gold", "sft-gold+", "sharpen", "guided"]
    assert by[("sharpen", "total")]["commit"] == "6" * 40 and by[("guided", "total")]["commit"] == "7" * 40
    assert by[("sft-gold", "total")]["commit"] == "7" * 40  # the controls this folder rebuilt replace the earlier ones
    assert "arithmetic sharpen (commit 666666666666)" in (docs / "self-improve.md").read_text()
    (docs / "self-improve.md").write_text((docs / "self-improve.md").read_text() + "\n## Reading\n\nWhat it means.\n")
    campaign.publish_label_free(d, docs)  # written again: the table anew, the reading kept
    assert (docs / "self-improve.md").read_text().endswith("\n## Reading\n\nWhat it means.\n")
    # Advanced since (`start --advance`): the runs finished before name the pin they were made at, not the new one.
    campaign.write_json(d / "campaign.json", {"commit": "9" * 40, "started": "now", "docs": str(docs), "from_docs": True,
                                              "history": [{"commit": "7" * 40, "since": "now"}, {"commit": "9" * 40, "since": "later",
                                                          "stages_done_before": ["controls/arithmetic sft-gold, sft-gold+",
                                                                                 "label-free/arithmetic guided"]}]})
    campaign.publish_label_free(d, docs)
    data = json.loads((docs / "self-improve.json").read_text())
    assert {r["commit"] for r in data["rows"] if r["method"] in ("sft-gold", "sft-gold+", "guided")} == {"7" * 40}
    assert data["meta"]["commit"] == "9" * 40
    assert {o["commit"] for o in json.loads((docs / campaign.OUTCOMES).read_text())["runs"] if o["method"] == "guided"} == {"7" * 40}


def test_status_shows_each_finished_stage_s_minutes_and_what_is_left(tmp_path, capsys, monkeypatch):
    """`status` reads the worker's "finished in" lines: a finished stage shows its minutes, and what is left
    is each stage to do at the median of the finished stages of its kind (none while a kind has none)."""
    d = tmp_path / "c"
    campaign.write_json(d / "campaign.json", {"commit": "5" * 40, "started": "now", "docs": str(tmp_path / "docs")})
    plan = [{"name": n, "kind": k, "done": done} for n, k, done in
            [("a", "label-free", True), ("b", "label-free", True), ("c", "label-free", True), ("x", "eval", True),
             ("d", "label-free", False), ("e", "label-free", False), ("y", "eval", False)]]
    monkeypatch.setattr(campaign, "stages", lambda _: plan)
    (d / "campaign.log").write_text("[2026-12-07 09:00:00] [1/7] a finished in 10.0 min\nnoise\n"
                                    + "".join(f"[2026-12-07 10:00:00] [{i}/7] {n} finished in {m} min\n"
                                              for i, (n, m) in enumerate((("a", 40.0), ("b", 50.0), ("c", 90.0), ("x", 3.0)))))
    assert campaign.stage_minutes(d) == {"a": 40.0, "b": 50.0, "c": 90.0, "x": 3.0}  # a stage run twice: its last time
    capsys.readouterr()
    assert campaign.main(["status", "--dir", str(d)]) == 0
    out = capsys.readouterr().out
    assert "done   c  [90.0 min]" in out and "to do  d\n" in out
    assert "left: about 1.7 h on this machine" in out  # 50 + 50 + 3 minutes
    (d / "campaign.log").write_text("[2026-12-07 10:00:00] [1/7] a finished in 40.0 min\n")
    plan[3]["done"] = False  # no eval has finished: no estimate rather than a wrong one
    assert campaign.main(["status", "--dir", str(d)]) == 0
    assert "left:" not in capsys.readouterr().out
    # A new folder (the last one lost): a kind none of whose stages has finished here at the minutes published before.
    campaign.write_json(tmp_path / "docs" / "self-improve.json", {"meta": {"stage_minutes": {"x": 6.0, "y": 4.0, "a": 99.0}}, "rows": []})
    assert campaign.main(["status", "--dir", str(d)]) == 0
    out = capsys.readouterr().out
    assert "left: about 1.5 h on this machine" in out and "published in self-improve.json" in out  # d, e at 40; x, y at 5 minutes


def test_start_and_status_run_on_a_python_without_tripost_s_dependencies(tmp_path):
    """`python3 scripts/campaign.py start` (README) runs on the system python, before any .venv
    exists: campaign.py and what its start and status import must not need torch, transformers,
    the SDKs, tenacity, datasets or matplotlib (a teacher option importing tenacity broke that once)."""
    import subprocess
    import sys

    d = tmp_path / "c"
    campaign.write_json(d / "campaign.json", {"commit": "5" * 40, "started": "now", "docs": str(tmp_path / "docs")})
    blocked = ["torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets", "tenacity", "openai", "anthropic",
               "matplotlib", "gguf", "httpx"]
    code = ("import sys\n"
            f"for name in {blocked!r}:\n    sys.modules[name] = None  # `import name` raises ImportError\n"
            f"sys.path.insert(0, {str(ROOT / 'scripts')!r})\n"
            "import campaign\n"
            f"raise SystemExit(campaign.main(['status', '--dir', {str(d)!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "campaign at 555555555555" in r.stdout, r.stderr[-2000:]


def test_keep_published_runs_only_the_step_4_runs_docs_has_no_rows_of(tmp_path):
    """--from-docs --keep-published (step 4's own folder lost part way): runs
    published already are kept, not run again; a task's iteration 0 and
    controls are rebuilt just before its first run left, and not at all for a
    task with none left. A lost folder's pairs stay where this one has not
    both sides."""
    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "5" * 40, "started": "now", "docs": str(docs), "from_docs": True,
                                              "keep_published": True})
    rows = [{"seed": 0, "method": m, "iteration": it, "task": "arithmetic", "subset": "total", "train_tokens": tok}
            for m, it, tok in (("sft-gold", 0, 500), ("tripost-t1", 1, 600), ("tripost-t2", 2, 900))]
    for task, gold in (("arithmetic", 800), ("word_sorting", 800)):
        campaign.write_json(docs / f"learning-{task}.json", {"meta": {"size": {"iterations": 2}, "runs": {"0": {}},
                                                                      "iteration0": {"tokens": 500, "problems": gold}}, "rows": rows})
    published = [("arithmetic", m) for m in campaign.LABEL_FREE] + [("word_sorting", "sharpen"), ("word_sorting", "sharpen-dpo")]
    old_pair = {"task": "word_sorting", "method": "sharpen-dpo", "minus": "sharpen", "n": 20, "diff": -0.05, "paired_ci": [-0.1, 0.0]}
    campaign.write_json(docs / "self-improve.json", {"meta": {}, "pairs": [old_pair], "rows": [
        {"task": t, "method": m, "subset": sub, "n": 20, "first_acc": 0.5, "final_acc": 0.5, "commit": "6" * 40, "seed": 0}
        for t, m in published for sub in ("seen", "unseen", "total")]})
    # sharpen's per-problem outcomes are committed; the other first seeds of the second-seed runs
    # were published before outcomes were, so they run again next to their second seed.
    campaign.write_json(docs / campaign.OUTCOMES, {"runs": [{"task": "arithmetic", "method": "sharpen", "seed": 0, "problems": [],
                                                              "first": "", "final": "", "commit": "6" * 40}]})
    again = [m for m in campaign.LABEL_FREE_REPEATS["arithmetic"] if m != "sharpen"]
    every = campaign.stages(d)
    kept = [s["name"] for s in every if s.get("kept")]
    # One task at a time, word_sorting first here (its first run left comes first); its kept runs with it.
    assert kept == [f"label-free/{t} {m}" for t, m in sorted(published, key=lambda tm: tm[0] == "arithmetic") if m not in again]
    todo = [s["name"] for s in every if not s["done"]]
    assert todo == ["competence/word_sorting train 400 gold", "competence/word_sorting train 800 gold",
                    "competence/word_sorting eval at 800 gold", "controls/word_sorting sft-gold, sft-gold+",
                    "label-free/word_sorting self-verified-filter", "label-free/word_sorting self-verified-reweight",
                    "label-free/word_sorting guided", "label-free/word_sorting guided-vanilla", "label-free/word_sorting guided-resample",
                    *[f"label-free/word_sorting {m} seed 1" for m in campaign.LABEL_FREE_REPEATS["word_sorting"]],
                    "competence/arithmetic train 400 gold", "competence/arithmetic train 800 gold",
                    "competence/arithmetic eval at 800 gold", "controls/arithmetic sft-gold, sft-gold+",
                    "label-free/arithmetic sharpen seed 1", *[f"label-free/arithmetic {m}{s}" for m in again for s in ("", " seed 1")]]
    (docs / campaign.OUTCOMES).unlink()
    # Once runs have finished here, the plan still lists the rebuild before them, as it ran.
    StageFolder = campaign.StageFolder
    for k in (1, 2):
        StageFolder(campaign.chunk_dir(d, k, "word_sorting")).train_metrics.parent.mkdir(parents=True, exist_ok=True)
        StageFolder(campaign.chunk_dir(d, k, "word_sorting")).train_metrics.write_text("{}")
    (campaign.chunk_dir(d, 2, "word_sorting") / "eval.json").write_text("{}")
    campaign.write_json(campaign.comparison_dir(d, "word_sorting") / "restored.json", {})
    campaign.write_json(campaign.label_free_dir(d, "word_sorting", "self-verified-filter") / "report.md", "")
    names = [s["name"] for s in campaign.stages(d)]
    assert names.index("controls/word_sorting sft-gold, sft-gold+") < names.index("label-free/word_sorting self-verified-filter")
    # A task whose rebuild this folder has begun goes on first, though another's run left (a method
    # added since: arithmetic's guided-resample) comes earlier in LABEL_FREE; a new folder starts with that one.
    text = (docs / "self-improve.json").read_text()
    data = json.loads(text)
    campaign.write_json(docs / "self-improve.json", {**data, "rows": [r for r in data["rows"] if r["method"] != "guided-resample"]})
    todo = [s["name"] for s in campaign.stages(d) if not s["done"]]
    assert todo.index("label-free/word_sorting guided") < todo.index("controls/arithmetic sft-gold, sft-gold+") \
        < todo.index("label-free/arithmetic guided-resample")
    campaign.write_json(tmp_path / "new" / "campaign.json", campaign.load(d / "campaign.json"))
    todo = [s["name"] for s in campaign.stages(tmp_path / "new") if not s["done"]]
    assert todo[:2] == ["competence/arithmetic train 400 gold", "competence/arithmetic train 800 gold"]
    (docs / "self-improve.json").write_text(text)
    (campaign.comparison_dir(d, "word_sorting") / "restored.json").unlink()
    # Publishing what this folder finished keeps the lost folder's rows and its pair.
    half = lambda i: (i % 2 == 0, i % 2 == 0)  # noqa: E731
    runs = campaign.restored_runs(d, "word_sorting")
    _save_eval(runs["tripost"] / "it0" / "eval" / "eval.json", "word_sorting", half)
    _save_eval(runs["sft-gold+"] / "eval" / "eval.json", "word_sorting", half)
    for m in ("self-verified-filter", "guided"):
        _save_eval(campaign.label_free_dir(d, "word_sorting", m) / "it2" / "eval" / "eval.json", "word_sorting", half)
    campaign.publish_label_free(d, docs)
    data = json.loads((docs / "self-improve.json").read_text())
    assert {(p["task"], p["method"], p["minus"]) for p in data["pairs"]} == {("word_sorting", "sharpen-dpo", "sharpen"),
                                                                            ("word_sorting", "guided", "self-verified-filter")}
    assert {(r["task"], r["method"]) for r in data["rows"]} >= set(published)
    # One table per task in the campaign's order, rows and columns in LABEL_FREE's, whichever folder a pair came from.
    md = (docs / "self-improve.md").read_text()
    assert "| minus → | sharpen | self-verified-filter |" in md
    assert md.index("| sharpen-dpo | -5.0 [") < md.index("| guided |  | +0.0 [")
    # The flag starts a new --from-docs campaign only.
    assert campaign.main(["start", "--dir", str(tmp_path / "other"), "--keep-published"]) == 2
    assert campaign.main(["start", "--dir", str(d), "--keep-published"]) == 2


def test_a_lost_folder_s_runs_are_paired_from_their_committed_outcomes(tmp_path):
    """publish_label_free commits each run's per-problem outcomes (OUTCOMES);
    a later folder that keeps those runs pairs its own with them (marked as
    across folders) and says whether its rebuilt iteration 0 answers as the
    published one did."""
    docs = tmp_path / "docs"
    rows = [{"seed": 0, "method": m, "iteration": it, "task": "arithmetic", "subset": "total", "train_tokens": tok}
            for m, it, tok in (("sft-gold", 0, 500), ("tripost-t1", 1, 600), ("tripost-t2", 2, 900))]
    campaign.write_json(docs / "learning-arithmetic.json", {"meta": {"size": {"iterations": 2}, "runs": {"0": {}},
                                                                    "iteration0": {"tokens": 500, "problems": 400}}, "rows": rows})
    half = lambda i: (i % 2 == 0, i % 2 == 0)  # noqa: E731
    i0 = {"gold_examples": 400, "tokens": 500, "committed_tokens": 500, "first_acc": 0.5, "committed_first_acc": 0.5, "seen": 0.5,
          "committed_seen": 0.5, "unseen": 0.5, "committed_unseen": 0.5}
    for name, commit, method, outcome, it0 in (("a", "6", "sharpen", half, half), ("b", "7", "guided", lambda i: (i % 4 != 3,) * 2,
                                                                                 lambda i: (i % 2 == 0 or i == 1, i % 2 == 0 or i == 1))):
        d = tmp_path / name
        campaign.write_json(d / "campaign.json", {"commit": commit * 40, "started": "now", "docs": str(docs), "from_docs": True,
                                                  "keep_published": True})
        runs = campaign.restored_runs(d, "arithmetic")
        _save_eval(runs["tripost"] / "it0" / "eval" / "eval.json", "arithmetic", it0)
        _save_eval(runs["sft-gold+"] / "eval" / "eval.json", "arithmetic", half)
        campaign.write_json(campaign.comparison_dir(d, "arithmetic") / "restored.json", {"iteration0": i0, "sft_gold_plus_target_tokens": 400})
        _save_eval(campaign.label_free_dir(d, "arithmetic", method) / "it2" / "eval" / "eval.json", "arithmetic", outcome)
        campaign.publish_label_free(d, docs)
    committed = json.loads((docs / campaign.OUTCOMES).read_text())
    by = {(o["method"], o["commit"][0]) for o in committed["runs"]}
    assert by == {("sft-gold", "7"), ("sft-gold+", "7"), ("guided", "7"), ("sharpen", "6")}  # the rebuilt controls replace the lost ones
    sharpen = next(o for o in committed["runs"] if o["method"] == "sharpen")
    assert sharpen["final"] == "10" * 10 and sharpen["problems"][0] == "arithmetic-test-seen-0/seen"
    (pair,) = json.loads((docs / "self-improve.json").read_text())["pairs"]
    assert (pair["method"], pair["minus"], pair["across_folders"]) == ("guided", "sharpen", True)
    assert pair["diff"] == pytest.approx(0.25)
    md = (docs / "self-improve.md").read_text()
    assert "| guided | +25.0 [" in md and " †" in md
    assert "answers the 20 test problems as the published one (commit 666666666666) did on all but 1." in md
    campaign.publish_label_free(tmp_path / "b", docs)  # again: the check made when the rebuilt outcomes replaced the lost ones is kept
    assert "did on all but 1." in (docs / "self-improve.md").read_text()
    # A folder's own outcomes, published at an earlier pin of the same campaign (start --advance), are no rebuild to check.
    (docs / "self-improve.json").write_text(json.dumps({**json.loads((docs / "self-improve.json").read_text()), "meta": {}}))
    campaign.write_json(tmp_path / "b" / "campaign.json", {**json.loads((tmp_path / "b" / "campaign.json").read_text()), "commit": "8" * 40})
    campaign.publish_label_free(tmp_path / "b", docs)
    assert "answers the 20 test problems" not in (docs / "self-improve.md").read_text()
