"""scripts/bench_learning.py's own logic: which overrides may act on the
TriPosT run alone, which finished stages --reuse may link, each method's run
config, the iteration choice (on validation problems, never test; the same
rule for every method) and the tables built from run folders (no model is
loaded: the evaluations here are written by hand)."""

import importlib.util
import json
from pathlib import Path

import pytest

from tripost.errors import TripostError
from tripost.runconfig import RunConfig
from tripost.stats import proportion_interval

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bl():
    spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "scripts" / "bench_learning.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def configs(bl, extra=()):
    common = bl.base_overrides(bl.SIZES["quick"], "fp32", 0, "smollm2-135m") + list(extra)
    tri = RunConfig.load(None, common).to_dict()
    rej = RunConfig.load(None, common + bl.REJECTION_OVERRIDES).to_dict()
    return tri, rej


def old_bench(bl, tmp_path, extra=()):
    """An earlier benchmark folder: finished base, it0 and rejection."""
    src = tmp_path / "old"
    tri, rej = configs(bl, extra)
    for folder, cfg in ((src / "tripost", tri), (src / "rejection", rej)):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(cfg))
    for name in ("base/eval", "it0/train", "it0/eval", "it1/eval"):
        (src / "tripost" / name).mkdir(parents=True)
    stages = {"base/eval": {"seconds": 5.0}, "it0/train": {"seconds": 7.0}, "it1/train": {"seconds": 9.0}}
    (src / "tripost" / "state.json").write_text(json.dumps({"stages": stages}))
    return src


def test_tripost_set_takes_only_keys_that_act_from_iteration_1(bl):
    bl.check_tripost_set(["buffer.ratio=[3,1,1]", "collect.temperature=0.5", "train.revised_attempt_weight=0"])
    with pytest.raises(TripostError, match="use --set"):
        bl.check_tripost_set(["train.feedback_weight=3"])  # iteration 0 trains with it too
    with pytest.raises(TripostError, match="use --set"):
        bl.check_tripost_set(["train.revised_attempt_weight_x=0"])


def test_reuse_links_base_it0_and_an_identical_rejection_run(bl, tmp_path):
    src = old_bench(bl, tmp_path)
    tri, rej = configs(bl)
    tri_variant = RunConfig.load(None, [*bl.base_overrides(bl.SIZES["quick"], "fp32", 0, "smollm2-135m"), "buffer.ratio=[3,1,1]"]).to_dict()
    out = tmp_path / "new"
    linked = bl.reuse_finished(src, out, tri_variant, rej, lambda m: None)
    assert linked == ["tripost/base", "tripost/it0", "rejection"]
    assert (out / "tripost" / "it0").is_symlink() and (out / "tripost" / "it0" / "train").is_dir()
    assert not (out / "tripost" / "it1").exists()  # the iterations the variant changes are its own
    stages = json.loads((out / "tripost" / "state.json").read_text())["stages"]
    assert stages == {"base/eval": {"seconds": 5.0}, "it0/train": {"seconds": 7.0}}


def test_reuse_takes_a_variant_that_masks_revised_attempts(bl, tmp_path):
    src = old_bench(bl, tmp_path)
    tri, rej = configs(bl)
    base = bl.base_overrides(bl.SIZES["quick"], "fp32", 0, "smollm2-135m")
    variant = RunConfig.load(None, [*base, "buffer.ratio=[3,1,1]", "train.revised_attempt_weight=0"]).to_dict()
    assert variant["train"]["revised_attempt_weight"] == 0
    linked = bl.reuse_finished(src, tmp_path / "new", variant, rej, lambda m: None)
    assert linked == ["tripost/base", "tripost/it0", "rejection"]


def test_reuse_refuses_a_run_that_differs_before_iteration_1(bl, tmp_path):
    src = old_bench(bl, tmp_path)
    tri, rej = configs(bl, ["train.feedback_weight=3"])
    with pytest.raises(TripostError, match="nothing reused"):
        bl.reuse_finished(src, tmp_path / "new", tri, rej, lambda m: None)
    assert not (tmp_path / "new").exists()


def test_reuse_keeps_rejection_when_its_config_differs(bl, tmp_path):
    src = old_bench(bl, tmp_path)
    tri, rej = configs(bl)
    rej["collect"]["temperature"] = 0.3
    assert bl.reuse_finished(src, tmp_path / "new", tri, rej, lambda m: None) == ["tripost/base", "tripost/it0"]
    assert not (tmp_path / "new" / "rejection").exists()


def test_reuse_links_an_identical_demo_run(bl, tmp_path):
    src = old_bench(bl, tmp_path)
    common = bl.base_overrides(bl.SIZES["quick"], "fp32", 0, "smollm2-135m")
    cfgs = bl.run_configs(common, [])
    (src / "demo").mkdir()
    (src / "demo" / "config.json").write_text(json.dumps(cfgs["demo"]))
    linked = bl.reuse_finished(src, tmp_path / "new", cfgs["tripost"], cfgs["rejection"], lambda m: None, demo_cfg=cfgs["demo"])
    assert linked == ["tripost/base", "tripost/it0", "rejection", "demo"]
    other = bl.run_configs(common, ["collect.max_edits=2"])  # the demo takes TriPosT's overrides: a different run
    assert bl.reuse_finished(src, tmp_path / "new2", other["tripost"], cfgs["rejection"], lambda m: None,
                             demo_cfg=other["demo"]) == ["tripost/base", "tripost/it0", "rejection"]


# ------------------------------------------------ issue 16's new pieces ---


def test_the_demo_run_is_tripost_t1_with_the_demo_source_and_the_authors_feedback_weight(bl):
    common = bl.base_overrides(bl.SIZES["quick"], "fp32", 0, "smollm2-135m")
    cfgs = bl.run_configs(common, ["buffer.ratio=[3,1,1]"])
    tri, demo = cfgs["tripost"], cfgs["demo"]
    assert tri["collect"]["source"] == "teacher" and tri["loop"]["iterations"] == 2
    assert demo["collect"]["source"] == "demo" and demo["loop"]["iterations"] == 1 and not demo["student"]["eval_base"]
    assert demo["buffer"]["ratio"] == [3, 1, 1] == tri["buffer"]["ratio"]  # TriPosT's own overrides apply to its ablation
    assert demo["tasks"] == tri["tasks"] and demo["teacher"] == tri["teacher"]
    # train_self_improve_from_demo.py trains the feedback at 1.0; TriPosT's own iterations at 1.5. Nothing else differs.
    assert tri["train"]["feedback_weight"] == 1.5 and demo["train"] == {**tri["train"], "feedback_weight": 1.0}
    # Also when --set changes the weight for every method: the demo keeps the authors' setting.
    other = bl.run_configs(common + ["train.feedback_weight=2.0"], [])
    assert other["tripost"]["train"]["feedback_weight"] == 2.0 and other["demo"]["train"]["feedback_weight"] == 1.0
    assert cfgs["rejection"]["collect"]["source"] == "rejection"


def test_rejection_gets_gold_at_tripost_s_setting(bl):
    """rejection's buffer is TriPosT's default buffer, gold included (as many
    gold examples as non-improvement examples), not the no-gold buffer it
    had; --tripost-set does not reach it."""
    from tripost.runconfig import RunConfig

    common = bl.base_overrides(bl.SIZES["default"], "fp32", 0, "smollm2-135m")
    plain = RunConfig.load(None, common).to_dict()
    assert RunConfig.from_dict(plain).buffer_config(1).include_gold is True  # TriPosT's own iterations train with gold
    for tripost_set in ([], ["buffer.ratio=[3,1,1]", "buffer.include_gold=false"]):
        rej = bl.run_configs(common, tripost_set)["rejection"]
        assert RunConfig.from_dict(rej).buffer_config(1).include_gold is True
        assert RunConfig.from_dict(rej).buffer_config(1).ratio == RunConfig.from_dict(plain).buffer_config(1).ratio  # gold at TriPosT's ratio to the non-improvement examples
        assert {k: v for k, v in rej["buffer"].items() if k != "include_gold"} == {k: v for k, v in plain["buffer"].items() if k != "include_gold"}
        assert rej["train"] == plain["train"] and rej["loop"] == plain["loop"]  # T iterations, TriPosT's feedback weight
        assert rej["eval"]["every_iteration"] is False and not rej["student"]["eval_base"]
    assert "buffer.include_gold=true" in bl.REJECTION_OVERRIDES and not any("include_gold=false" in o for o in bl.REJECTION_OVERRIDES)


def test_the_curve_trains_sft_gold_on_n_examples_and_measures_the_first_attempt_on_seen(bl):
    from tripost.runconfig import RunConfig

    common = bl.base_overrides(bl.SIZES["quick"], "fp32", 3, "smollm2-135m")
    cfg = RunConfig.load(None, bl.curve_overrides(common, 96)).to_dict()
    assert cfg["tasks"]["n_train"] == 96 and cfg["tasks"]["eval_subsets"] == ["seen"] and cfg["seed"] == 3
    assert cfg["loop"]["iterations"] == 0 and cfg["loop"]["iteration0"] and cfg["eval"]["max_turns"] == 0
    assert cfg["loop"]["iteration0_epochs"] == bl.SIZES["quick"]["epochs0"]  # trained as sft-gold is


def test_new_flags_and_their_errors(bl, capsys):
    a = bl.parse_args(["--quick", "--seeds", "0,1,1", "--curve", "48,96", "--n-eval", "200"])
    assert bl.check_args(a) == ([0, 1], [48, 96]) and a.n_eval == 200
    assert bl.check_args(bl.parse_args([])) == ([0], [])
    a = bl.parse_args([])
    assert a.select == "val" and a.n_val is None  # validation choice by default
    assert bl.parse_args(["--select", "last"]).select == "last"
    with pytest.raises(SystemExit):
        bl.parse_args(["--select", "test"])  # no rule reads the test set
    assert "invalid choice: 'test'" in capsys.readouterr().err
    # Validation as large as the test evaluation, except the campaign's: half of
    # its 200 per subset, to spend its hours on the test cells the issue sizes.
    assert all(size["n_val"] == size["n_eval"] for name, size in bl.SIZES.items() if name != "campaign")
    assert bl.SIZES["campaign"]["n_eval"] >= 200 and bl.SIZES["campaign"]["n_val"] >= 100
    for argv, needle in ((["--seeds", "0,x"], "--seeds takes whole numbers"), (["--curve", "0"], "--curve needs one or more numbers of at least 1"),
                         (["--n-eval", "0"], "--n-eval must be at least 1"), (["--seeds", ""], "--seeds needs one or more"),
                         (["--n-val", "0"], "--n-val must be at least 1"), (["--select", "last", "--n-val", "4"], "with --select last there are none"),
                         (["--tasks", "arithmetic,chess"], "choose from arithmetic"), (["--tasks", ","], "--tasks ','"),
                         (["--iteration0", "/no/such/folder"], "--iteration0 /no/such/folder: no such folder"),
                         (["--iteration0-tokens", "5"], "give it too")):
        assert bl.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("bench_learning: error: ") and needle in err[0], err


N_PER = 10  # problems per task and subset in the synthetic evaluations


def save_eval(path, outcome, split="test", families=("arithmetic", "word_sorting")):
    """An eval.json (+ transcripts) as tripost.evaluate writes it, for 2 tasks
    x 2 subsets x N_PER problems; `outcome(i)` -> (first, final) of problem i."""
    from tripost.evaluate import EvalConfig, EvalRecord, EvalResult, compute_metrics

    recs = []
    i = 0
    for fam in families:
        for subset in ("seen", "unseen"):
            for k in range(N_PER):
                first, final = outcome(i)
                correct = [first] if first == final else [first, final]
                recs.append(EvalRecord(problem_id=f"{fam}-{split}-{subset}-{k}", family=fam, subset=subset, split=split, difficulty="d", question="q",
                                       gold="1", text="", stop_reason="correct", stop_detail="", n_updates=len(correct) - 1,
                                       answers=[None] * len(correct), correct=correct))
                i += 1
    EvalResult(records=recs, metrics=compute_metrics(recs, n_boot=100), config=EvalConfig(progress=False)).save(path)


def fake_bench(bl, root, outcomes, val=None, rule=None):
    """Run folders with only what the tables read: each method's eval (keys
    as the methods, `rejection-r1` for rejection's iteration 1) and, with
    `val` (keys `tripost/1`, `rejection/2`, ...), the validation evaluations
    the iteration choice reads (rule `val`; without them `last`)."""
    where = {"base": "tripost/base/eval", "sft-gold": "tripost/it0/eval", "sft-gold+": "sft-gold-plus/eval", "rejection": "rejection/it2/eval",
             "rejection-r1": "rejection/it1/eval", "tripost-demo": "demo/it1/eval", "tripost-t1": "tripost/it1/eval", "tripost-t2": "tripost/it2/eval"}
    for method, outcome in outcomes.items():
        save_eval(root / where[method] / "eval.json", outcome)
    for key, outcome in (val or {}).items():
        run, t = key.split("/")
        save_eval(bl.val_eval_json(root / run, int(t)), outcome, split="val")
    chosen = bl.selection(root / "tripost", root / "rejection", 2, rule or ("val" if val else "last"))
    return bl.methods(root / "tripost", root / "rejection", root / "sft-gold-plus", 2, demo=root / "demo", chosen=chosen)


def half(i):
    return (i % 2 == 0, i % 2 == 0)


def fixes(i):
    """Right where sft-gold+ is right, and fixes half of the rest by its own revision."""
    return (i % 2 == 0, i % 2 == 0 or i % 4 == 1)


def wrong(i):
    return (False, False)


def test_rows_carry_seed_si_contribution_and_the_paired_interval(bl, tmp_path):
    ms = fake_bench(bl, tmp_path, {"base": wrong, "sft-gold": wrong, "sft-gold+": half, "rejection": wrong, "tripost-demo": half,
                               "tripost-t1": half, "tripost-t2": fixes})
    assert [m["method"] for m in ms] == ["base", "sft-gold", "sft-gold+", "rejection", "tripost-demo", "tripost-t1", "tripost-t2"]
    rows = bl.rows_of(ms, seed=4)
    get = {(r["method"], r["task"], r["subset"]): r for r in rows}
    assert len(rows) == 7 * 3 * 3 and all(r["seed"] == 4 for r in rows)
    assert get[("sft-gold+", "total", "total")]["paired_ci_vs_sft_gold_plus"] == [0.0, 0.0]
    assert get[("tripost-t1", "total", "total")]["paired_ci_vs_sft_gold_plus"] == [0.0, 0.0]  # the same answers
    t2 = get[("tripost-t2", "total", "total")]
    assert t2["final_acc"] == 0.75 and t2["fix_rate"] == 0.5 and t2["si_contribution"] == 10 / 30
    lo, hi = t2["paired_ci_vs_sft_gold_plus"]
    assert 0 < lo < 0.25 < hi
    assert get[("base", "arithmetic", "seen")]["paired_ci_vs_sft_gold_plus"][1] < 0  # worse on every pair it differs
    assert get[("base", "total", "total")]["si_contribution"] is None  # nothing right at the end
    # Accuracy intervals are Wilson's (issue 27): 0/40 is not [0, 0].
    z2 = 1.959963984540054 ** 2
    assert get[("base", "total", "total")]["final_ci"] == pytest.approx([0.0, z2 / (40 + z2)])
    assert get[("base", "arithmetic", "seen")]["first_ci"] == pytest.approx([0.0, z2 / (N_PER + z2)])
    lo, hi = t2["final_ci"]
    assert lo < 0.75 < hi and t2["final_ci"] == pytest.approx(list(proportion_interval(30, 40)))

    v = bl.verdict(rows, 2, seed=4, records=bl.method_records(ms))
    assert v["met"] is True and v["best"] == "tripost-t2" and v["beats_sft_gold_plus"] and v["fix_target"] and v["beats_tripost_demo"]
    assert v["paired_ci_vs_tripost_demo"][0] > 0 and v["diff_vs_sft_gold_plus"] == 0.25

    meta = {"size_name": "quick", "command": "x", "device": "cpu", "when": "now", "total_seconds": 60, "size": {"iterations": 2},
            "student": "s", "precision": "fp32", "seeds": [4]}
    md = bl.markdown(rows, meta, [v])
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    assert "| vs sft-gold+ |" in header and "| SI |" in header
    assert header.startswith("| method | iteration | subset | n | first | final | vs sft-gold+ | train tokens |")  # tokens beside accuracy
    t2_row = next(line for line in md.splitlines() if line.startswith("| tripost-t2 | 2 (chosen) | total |"))
    assert "+25.0 [+" in t2_row and "| 33.3 |" in t2_row
    assert "`--select last`" in md  # no validation evaluations here: the rule said is the last iteration
    reading = md.split("## Reading")[1]
    assert "All targets: **MET**" in reading and reading.count("**MET**") == 4
    assert "chosen TriPosT iteration `tripost-t2` (by the selection rule;" in reading


def test_the_reading_says_which_target_is_missed(bl, tmp_path):
    def one_fix(i):  # one wrong first attempt of 20 fixed: 5%, below the bar
        return (i % 2 == 0, i % 2 == 0 or i == 1)

    ms = fake_bench(bl, tmp_path, {"sft-gold+": half, "tripost-demo": fixes, "tripost-t1": one_fix, "tripost-t2": half},
                    val={"tripost/1": fixes, "tripost/2": half, "rejection/1": half, "rejection/2": half})
    rows = bl.rows_of(ms, seed=0)
    v = bl.verdict(rows, 2, seed=0, records=bl.method_records(ms))
    assert v["best"] == "tripost-t1" and v["tripost_fix_rate"] == 1 / 20
    assert v["met"] is False and v["fix_target"] is False and v["beats_tripost_demo"] is False
    assert v["beats_sft_gold_plus"] is False  # +2.5 points, the interval reaches 0
    lines = bl.reading(v)
    assert "All targets: **NOT MET**" in lines[0]
    assert lines[1].startswith("  1. Above sft-gold+") and "**NOT MET**" in lines[1]
    assert lines[2].startswith("  2. Fix rate at least 10%") and "**NOT MET**" in lines[2] and "fix 5.0%" in lines[2]
    assert lines[3].startswith("  3. Beats tripost-demo: **NOT MET**")
    # No demo row: the third target, and so the whole, is not decided.
    no_demo = [r for r in rows if r["method"] != "tripost-demo"]
    v2 = bl.verdict(no_demo, 2, seed=0)
    assert v2["beats_tripost_demo"] is None and v2["met"] is False  # one target already missed
    assert bl._all([True, None, True]) is None and bl._all([True, True]) is True
    assert bl.verdict([r for r in rows if r["method"] != "sft-gold+"], 2)["met"] is None


def test_several_seeds_are_rows_of_their_own(bl, tmp_path):
    rows = []
    verdicts = []
    for seed, t2 in ((0, fixes), (1, half)):
        ms = fake_bench(bl, tmp_path / f"seed{seed}", {"sft-gold+": half, "tripost-demo": half, "tripost-t1": half, "tripost-t2": t2})
        seed_rows = bl.rows_of(ms, seed=seed)
        rows += seed_rows
        verdicts.append(bl.verdict(seed_rows, 2, seed=seed))
    assert [v["met"] for v in verdicts] == [True, False]
    assert bl.verdict(rows, 2, seed=1)["met"] is False  # a seed's verdict reads its own rows only
    meta = {"size_name": "default", "command": "x", "device": "cpu", "when": "now", "total_seconds": 60, "size": {"iterations": 2},
            "student": "s", "precision": "fp32", "seeds": [0, 1]}
    md = bl.markdown(rows, meta, verdicts)
    assert "seeds 0, 1 (one whole comparison per seed; nothing pooled)" in md
    assert next(line for line in md.splitlines() if line.startswith("| seed |")).startswith("| seed | method |")
    assert "Seed 0: chosen TriPosT iteration" in md and "Seed 1: chosen TriPosT iteration" in md
    assert "Over the seeds: NOT MET (1 of 2 seeds meet every target)." in md


def test_paired_interval_refuses_different_problems_and_old_evals_still_read(bl, tmp_path):
    from tripost.errors import TripostError

    save_eval(tmp_path / "a" / "eval.json", half)
    a = bl.eval_records(tmp_path / "a" / "eval.json")
    assert len(a) == 4 * N_PER and {"problem_id", "family", "subset", "final_correct"} <= set(a[0])
    with pytest.raises(TripostError, match="^paired interval: x and y were not evaluated on the same problems"):
        bl.paired_ci(a, a[:-1], "x and y")
    assert bl.paired_ci(a, None) is None and bl.eval_records(tmp_path / "nowhere.json") is None
    # An evaluation made before si_contribution was measured: from its counts.
    assert bl._si_contribution({"counts": {"fixed": 2, "final_correct": 8}}) == 0.25
    assert bl._si_contribution({"counts": {"fixed": 0, "final_correct": 0}}) is None


def test_accuracy_intervals_are_wilson_from_the_counts_also_for_old_evals(bl):
    """An eval.json written before issue 27 stored a percentile bootstrap
    ([0, 0] at 0/n): the tables recompute Wilson's from the counts; without
    counts the stored interval is all there is."""
    old = {"n": 16, "first_accuracy": 0.0, "final_accuracy": 0.25, "counts": {"first_correct": 0, "final_correct": 4},
           "ci": {"first_accuracy": [0.0, 0.0], "final_accuracy": [0.0625, 0.4375]}}
    assert bl.proportion_ci(old, "first_accuracy") == list(proportion_interval(0, 16))
    assert bl.proportion_ci(old, "first_accuracy")[1] > 0
    assert bl.proportion_ci(old, "final_accuracy") == list(proportion_interval(4, 16))
    assert bl.proportion_ci({"n": 16, "ci": {"final_accuracy": [0.1, 0.4]}}, "final_accuracy") == [0.1, 0.4]
    assert bl.proportion_ci({"n": 16}, "final_accuracy") is None


def test_curve_rows_read_the_first_attempt_on_seen(bl, tmp_path):
    save_eval(tmp_path / "eval.json", lambda i: (i % 4 == 0, True))
    rows = bl.curve_rows(tmp_path / "eval.json", 48, seed=2)
    assert [(r["task"], r["gold_examples"], r["seed"], r["n"]) for r in rows] == [
        ("arithmetic", 48, 2, N_PER), ("word_sorting", 48, 2, N_PER), ("total", 48, 2, 2 * N_PER)]
    assert all(r["first_acc"] == (3 / N_PER if r["task"] != "total" else 6 / (2 * N_PER)) for r in rows)
    assert rows[0]["first_ci"] == list(proportion_interval(3, N_PER))  # Wilson's, a single proportion
    meta = {"size_name": "quick", "command": "x", "device": "cpu", "when": "now", "total_seconds": 1, "size": {"iterations": 2},
            "student": "s", "precision": "fp32", "seeds": [2]}
    md = bl.markdown([], meta, [{"seed": 2, "met": None, "why": "missing rows"}], rows)
    assert "## sft-gold curve" in md and "| 48 | arithmetic | 10 | 30.0 [" in md
    assert bl.curve_rows(tmp_path / "missing.json", 48, seed=2) == []


# ------------------------------------ issue 27: iteration choice, tokens ---


def test_the_iteration_is_chosen_on_validation_or_is_the_last_never_on_test(bl):
    val = [{"iteration": 1, "n": 40, "first_acc": 0.5, "final_acc": 0.6}, {"iteration": 2, "n": 40, "first_acc": 0.5, "final_acc": 0.55},
           {"iteration": 3, "n": 40, "first_acc": 0.7, "final_acc": 0.6}]
    c = bl.choose_iteration(val, 3, "val")
    assert c["iteration"] == 1 and c["rule"] == "val" and c["candidates"] == [1, 2, 3] and c["val"] == val  # a tie: the earlier
    assert "val split, never test" in c["why"]
    assert bl.choose_iteration(val, 3, "last")["iteration"] == 3
    assert bl.choose_iteration([], 3, "last")["iteration"] == 3  # needs no validation evaluation
    assert bl.choose_iteration([], 1, "val") == {"rule": "val", "why": "the only iteration", "candidates": [1], "val": [], "iteration": 1}
    with pytest.raises(TripostError, match="no validation evaluation of iteration"):
        bl.choose_iteration(val[:2] + [{"iteration": 3, "n": None, "first_acc": None, "final_acc": None}], 3, "val")
    with pytest.raises(TripostError, match="unknown selection rule 'test'"):
        bl.choose_iteration(val, 3, "test")
    assert set(bl.SELECT_RULES) == {"val", "last"}


def test_validation_choice_drives_the_rows_and_the_verdict_not_test_accuracy(bl, tmp_path):
    """tripost-t2 is better on test, tripost-t1 on validation: the targets are
    read on t1. rejection's iteration is chosen by the same rule (its
    iteration 1 here), and its row is that iteration's test evaluation."""
    ms = fake_bench(bl, tmp_path, {"sft-gold+": half, "tripost-demo": half, "tripost-t1": half, "tripost-t2": fixes, "rejection-r1": wrong,
                                   "rejection": fixes},
                    val={"tripost/1": fixes, "tripost/2": half, "rejection/1": fixes, "rejection/2": half})
    by = {m["method"]: m for m in ms}
    assert by["rejection"]["iteration"] == 1 and by["rejection"]["eval"] == tmp_path / "rejection" / "it1" / "eval" / "eval.json"
    assert by["tripost-t1"]["chosen"] is True and by["tripost-t2"]["chosen"] is False and by["tripost-demo"]["iteration"] == 1
    rows = bl.rows_of(ms, seed=0)
    get = {(r["method"], r["task"], r["subset"]): r for r in rows}
    assert get[("rejection", "total", "total")]["final_acc"] == 0.0  # iteration 1's test result, not iteration 2's 75%
    assert get[("tripost-t2", "total", "total")]["final_acc"] == 0.75 and get[("tripost-t1", "total", "total")]["chosen"] is True
    v = bl.verdict(rows, 2, seed=0, records=bl.method_records(ms))
    assert v["best"] == "tripost-t1" and v["chosen_by"] == "the selection rule" and v["tripost_final_acc"] == 0.5 and v["met"] is False
    # The same folders under --select last: t2 and rejection's iteration 2.
    last = bl.methods(tmp_path / "tripost", tmp_path / "rejection", tmp_path / "sft-gold-plus", 2, demo=tmp_path / "demo",
                      chosen=bl.selection(tmp_path / "tripost", tmp_path / "rejection", 2, "last"))
    assert {m["method"]: m.get("iteration") for m in last}["rejection"] == 2
    assert bl.verdict(bl.rows_of(last), 2)["best"] == "tripost-t2"

    sel = {"seed": 0, **bl.selection(tmp_path / "tripost", tmp_path / "rejection", 2, "val")}
    assert [x["final_acc"] for x in sel["tripost"]["val"]] == [0.75, 0.5] and sel["tripost"]["iteration"] == 1
    assert json.loads(json.dumps(sel))["rejection"]["iteration"] == 1  # goes into the JSON as it is
    meta = {"size_name": "quick", "command": "x", "device": "cpu", "when": "now", "total_seconds": 60, "size": {"iterations": 2, "n_val": N_PER},
            "student": "s", "precision": "fp32", "seeds": [0], "selection": {"rule": "val", "why": bl.SELECT_WHY["val"], "n_val": N_PER}}
    md = bl.markdown(rows, meta, [v], selections=[sel])
    assert f"Iteration reported, the same rule for every method (`--select val`): {bl.SELECT_WHY['val']} ({N_PER} val problems" in md
    choice = md.split("## Iteration choice")[1].split("## Reading")[0]
    assert "| tripost-t1 | 1 | 40 | 50.0 | 75.0 | yes |" in choice and "| tripost-t2 | 2 | 40 | 50.0 | 50.0 |  |" in choice
    assert "| rejection | 1 | 40 | 50.0 | 75.0 | yes |" in choice and "| tripost-demo | 1 | — | — | — | yes |" in choice
    assert any(line.startswith("| tripost-t1 | 1 (chosen) | total |") for line in md.splitlines())
    assert any(line.startswith("| tripost-t2 | 2 | total |") for line in md.splitlines())
    assert "chosen TriPosT iteration `tripost-t1` (by the selection rule;" in md.split("## Reading")[1]


def test_every_row_carries_the_training_tokens_of_its_model(bl, tmp_path):
    """train_tokens: iteration 0's plus each later training stage's up to the
    row's iteration (train_metrics.json; the state.json record where that is
    missing), sft-gold+'s own; the demo's and TriPosT's improvement examples
    come from their buffers' stats."""
    def tokens(folder, n):
        (folder / "train").mkdir(parents=True, exist_ok=True)
        (folder / "train" / "train_metrics.json").write_text(json.dumps({"tokens": n}))

    def buffer(folder, **by_kind):
        (folder / "buffer").mkdir(parents=True, exist_ok=True)
        (folder / "buffer" / "stats.json").write_text(json.dumps({"by_kind_after": by_kind}))

    tokens(tmp_path / "tripost" / "it0", 1000)
    tokens(tmp_path / "tripost" / "it1", 300)
    tokens(tmp_path / "tripost" / "it2", 500)
    tokens(tmp_path / "rejection" / "it1", 70)
    # rejection's iteration 2: no train_metrics.json, the run's state.json record
    (tmp_path / "rejection").mkdir(exist_ok=True)
    (tmp_path / "rejection" / "state.json").write_text(json.dumps({"stages": {"it2/train": {"seconds": 3.0, "tokens": 90},
                                                                               "it2/eval": {"seconds": 2.0}}}))
    tokens(tmp_path / "demo" / "it1", 400)
    (tmp_path / "sft-gold-plus").mkdir()
    (tmp_path / "sft-gold-plus" / "gold_plus.json").write_text(json.dumps({"tokens": 800, "train_seconds": 1.0, "eval_seconds": 1.0}))
    buffer(tmp_path / "tripost" / "it1", improvement=6, direct=4, gold=4)
    buffer(tmp_path / "tripost" / "it2", improvement=3, direct=2, gold=2)
    buffer(tmp_path / "demo" / "it1", improvement=16)
    ms = fake_bench(bl, tmp_path, {m: half for m in ("base", "sft-gold", "sft-gold+", "rejection", "tripost-demo", "tripost-t1", "tripost-t2")})
    rows = bl.rows_of(ms, seed=0)
    tok = {r["method"]: r["train_tokens"] for r in rows if r["task"] == "total" and r["subset"] == "total"}
    assert tok == {"base": 0, "sft-gold": 1000, "sft-gold+": 1800, "rejection": 1160, "tripost-demo": 1400, "tripost-t1": 1300, "tripost-t2": 1800}
    assert all("train_tokens" in r for r in rows)
    assert {m["method"]: m["seconds"] for m in ms}["rejection"] == 5.0
    v = bl.verdict(rows, 2)
    assert (v["tripost_train_tokens"], v["sft_gold_plus_train_tokens"], v["tripost_demo_train_tokens"]) == (1800, 1800, 1400)
    assert (v["tripost_improvement_examples"], v["tripost_demo_improvement_examples"]) == (9, 16)
    lines = bl.reading(v)
    assert "training tokens 1,800 vs 1,800" in lines[1]
    assert "training tokens 1,800 vs 1,400, improvement examples 9 vs 16" in lines[3]
    row = next(line for line in bl.markdown(rows, {"size_name": "quick", "command": "x", "device": "cpu", "when": "now", "total_seconds": 1,
                                                    "size": {}, "student": "s", "precision": "fp32", "seeds": [0]}, [v]).splitlines()
               if line.startswith("| rejection | 2 (chosen) | total |"))
    assert row.split(" | ")[7] == "1160"  # beside the accuracy and its difference to sft-gold+


def test_validation_problems_are_the_val_split_of_the_run_s_tasks(bl):
    """The choice is made on problems of the val split: none of them is a test
    (evaluation) or a train problem of the run; per task and evaluation subset."""
    from tripost.loop import Run

    common = bl.base_overrides(bl.SIZES["quick"], "fp32", 0, "smollm2-135m")
    run = Run("/nonexistent-bench-run", RunConfig.load(None, common).to_dict())
    val = bl.val_problems(run, 3)
    assert len(val) == 3 * len(bl.TASKS) * 2 and {p.split for p in val} == {"val"}
    assert {(p.family, p.subset) for p in val} == {(t, s) for t in bl.TASKS for s in ("seen", "unseen")}
    ids = {p.id for p in val}
    assert not ids & {p.id for p in run.eval_problems()} and not ids & {p.id for p in run.train_problems()}
    assert bl.val_eval_json(Path("r"), 2) == Path("r/it2/val/eval.json")


def test_one_task_from_an_external_iteration_0_and_partial_outputs(bl, tmp_path):
    """The campaign's shape (--tasks arithmetic --iteration0 DIR
    --iteration0-tokens N): rows and tables for that task alone, every row
    counting iteration 0's tokens, and a partial write that says so."""
    a = bl.parse_args(["--size", "campaign", "--tasks", "arithmetic", "--iteration0", str(tmp_path), "--iteration0-tokens", "700000",
                       "--iteration0-problems", "3200"])
    bl.check_args(a)
    assert a.task_list == ["arithmetic"] and a.size == "campaign"
    cfg = RunConfig.load(None, bl.base_overrides(bl.SIZES["campaign"], "fp32", 0, "smollm2-135m", a.task_list)).to_dict()
    assert cfg["tasks"]["families"] == ["arithmetic"] and cfg["tasks"]["n_eval"] == 200 and cfg["eval"]["max_turns"] == 2
    root = tmp_path / "bench"
    for method, where in (("sft-gold", "tripost/it0/eval"), ("sft-gold+", "sft-gold-plus/eval"), ("tripost-t1", "tripost/it1/eval")):
        save_eval(root / where / "eval.json", fixes if method == "tripost-t1" else half, families=("arithmetic",))
    ms = bl.methods(root / "tripost", root / "rejection", root / "sft-gold-plus", 2, demo=root / "demo", it0_tokens=700_000)
    assert all(m["train_tokens"] >= 700_000 for m in ms if m["method"] != "base")
    rows = bl.rows_of(ms, seed=0)
    assert {r["task"] for r in rows} == {"arithmetic", "total"} and {r["method"] for r in rows} == {"sft-gold", "sft-gold+", "tripost-t1"}
    assert bl.tasks_of(rows) == ["arithmetic"]
    meta = {"size_name": "campaign", "command": "x", "device": "cpu", "when": "now", "total_seconds": 60, "size": bl.SIZES["campaign"],
            "student": "s", "precision": "fp32", "seeds": [0], "partial": "seed 0 still running",
            "iteration0": {"folder": str(tmp_path), "tokens": 700_000, "problems": 3200}}
    md = bl.write_outputs(tmp_path / "docs", "learning-arithmetic", rows, meta, [bl.verdict(rows, 2, seed=0)], [], [], 0)
    assert "**Partial:** seed 0 still running." in md and "## word_sorting" not in md and "## arithmetic" in md
    assert "700,000 training tokens" in md and "first 3200 train problems" in md
    assert "on the total of its tasks (arithmetic)" in md
    saved = json.loads((tmp_path / "docs" / "learning-arithmetic.json").read_text())
    assert saved["meta"]["partial"] and len(saved["rows"]) == len(rows) and (tmp_path / "docs" / "learning-arithmetic.png").exists()


def test_the_campaign_shape_end_to_end_on_the_tiny_model(bl, tmp_path, tiny_model_dir, fp32_machine):
    """--tasks arithmetic --iteration0 CKPT on the tiny model, every method
    through the library: the checkpoint is linked as iteration 0 (not
    retrained), every row counts its tokens, sft-gold+ takes its gold after
    iteration 0's problems, and the outputs name one task."""
    from tripost.loop import Run

    it0 = tmp_path / "it0run"
    Run(it0, RunConfig.load(None, [f"student.spec=hf:{tiny_model_dir}", "tasks.n_train=4", "tasks.n_eval=1", "loop.iterations=0",
                                   "train.epochs=1", "train.precision=fp32", "eval.max_new_tokens=8", "eval.max_turns=0",
                                   "gap.enabled=false", 'tasks.eval_subsets=["seen"]']).to_dict(), progress=False).run()
    ckpt = it0 / "it0" / "train"
    small = ["--set", "tasks.n_train=3", "--set", "tasks.n_eval=2", "--set", "collect.max_new_tokens=12", "--set", "eval.max_new_tokens=12",
             "--set", "eval.n_bootstrap=20"]
    out, docs = tmp_path / "bench", tmp_path / "docs"
    code = bl.main(["--quick", "--student", f"hf:{tiny_model_dir}", "--precision", "fp32", "--tasks", "arithmetic", "--select", "last",
                    "--iteration0", str(ckpt), "--iteration0-tokens", "12345", "--iteration0-problems", "40", "--out", str(out),
                    "--docs", str(docs), "--name", "t", "--no-progress", *small])
    assert code == 0
    assert (out / "tripost" / "it0" / "train").is_symlink() and (out / "tripost" / "it0" / "train").resolve() == ckpt.resolve()
    assert "it0/train" not in json.loads((out / "tripost" / "state.json").read_text())["stages"]  # linked, not trained again
    data = json.loads((docs / "t.json").read_text())
    assert {r["task"] for r in data["rows"]} == {"arithmetic", "total"} and "partial" not in data["meta"]
    tok = {r["method"]: r["train_tokens"] for r in data["rows"] if r["task"] == "total" and r["subset"] == "total"}
    # base trains nothing; rejection may have had nothing right to train on (a random model).
    assert tok["base"] == 0 and tok["sft-gold"] == 12345 and tok["rejection"] >= 12345, tok
    assert all(v > 12345 for k, v in tok.items() if k.startswith(("tripost", "sft-gold+"))), tok
    gp = json.loads((out / "sft-gold-plus" / "gold_plus.json").read_text())
    assert gp["tokens"] > 0
    from tripost.tasks import get_task, sample_problems

    seen_by_it0 = {p.id for p in sample_problems(get_task("arithmetic"), split="train", subset="seen", preset="small", n=40, seed=0)}
    assert gp["skipped_problems"] == 40 and gp["problem_ids"] and not set(gp["problem_ids"]) & seen_by_it0
    assert "## word_sorting" not in (docs / "t.md").read_text()


def test_stage_seconds_add_up_every_invocation_of_a_comparison(bl, tmp_path):
    """A resumed comparison's own wall time is short; the stages' recorded
    times (every run's state.json and sft-gold+'s) say what the whole took."""
    for run, secs in (("tripost", (100.0, 50.5)), ("rejection", (20.0,)), ("demo", ())):
        (tmp_path / run).mkdir()
        (tmp_path / run / "state.json").write_text(json.dumps({"stages": {f"it{i}/train": {"seconds": s} for i, s in enumerate(secs)}}))
    (tmp_path / "sft-gold-plus").mkdir()
    (tmp_path / "sft-gold-plus" / "gold_plus.json").write_text(json.dumps({"train_seconds": 9.0, "eval_seconds": 0.5}))
    assert bl.stage_seconds([tmp_path]) == 180.0
    assert bl.stage_seconds([tmp_path / "nothing-here"]) == 0.0


def test_reuse_links_a_run_made_before_a_key_only_where_the_default_runs_as_it_ran(bl, tmp_path):
    """A rejection run recorded before buffer.verdict existed ran as verdict=on
    (LEGACY_VALUES). With a label-free source, whose auto resolves off, today's
    default would train otherwise: not the same run, not linked; with verdict=on
    it is."""
    src = old_bench(bl, tmp_path, ["collect.source=sharpen"])
    old_rej = json.loads((src / "rejection" / "config.json").read_text())
    old_rej["collect"]["source"] = "sharpen"
    del old_rej["buffer"]["verdict"]
    (src / "rejection" / "config.json").write_text(json.dumps(old_rej))
    tri, rej = configs(bl, ["collect.source=sharpen"])
    rej["collect"]["source"] = "sharpen"
    assert bl.reuse_finished(src, tmp_path / "new", tri, rej, lambda m: None) == ["tripost/base", "tripost/it0"]
    rej["buffer"]["verdict"] = "on"
    assert bl.reuse_finished(src, tmp_path / "again", tri, rej, lambda m: None) == ["tripost/base", "tripost/it0", "rejection"]
