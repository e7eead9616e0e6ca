#!/usr/bin/env python
"""Learning benchmark: does the student learn to self-improve? TriPosT against its baselines.

Every method starts from the same student and is evaluated on the same
held-out problems (test split; `seen` and `unseen` difficulty levels) of
`arithmetic` and `word_sorting` — the two tasks where TriPosT's teacher is a
script (Yu et al. 2024, Section 3) — with the same greedy attempt + test-time
self-improvement (tripost.evaluate), seed and settings:

  base          the untrained student with the format instruction
  sft-gold      iteration 0: LoRA SFT on gold rationales (the format)
  sft-gold+     sft-gold trained further on MORE gold rationales (fresh train
                problems), matched in training tokens to TriPosT's iterations
                1..T together: the compute-matched baseline
  rejection     STaR/LMSI-style: from sft-gold, T iterations of "sample, keep
                the correct samples, train on them" — no teacher; its buffer
                gets gold rationales at TriPosT's ratio (`buffer.include_gold=
                true`, as many gold examples as non-improvement examples, the
                setting TriPosT's own iterations run with)
  tripost-demo  TriPosT's learn-from-demonstrations ablation: one iteration
                from sft-gold on the teacher's attempts (with this benchmark's
                scripted teacher: wrong attempts the task family makes from
                the gold rationales), with the teacher's feedback and fix, no
                student attempt (`collect.source=demo`, tripost.sources.demo);
                otherwise as tripost-t1, except that its feedback is trained at
                weight 1.0 (`train.feedback_weight=1.0`), as the authors'
                train_self_improve_from_demo.py does. Not cut to TriPosT's
                tokens; how many improvement examples each of the two trained
                on is measured (its buffer's stats), not assumed, and the
                Reading prints it beside both runs' training tokens.
  tripost-tK    TriPosT iterations with the scripted teacher (K = 1..T)

Which iteration a method is reported at is chosen by one rule for every
method (`--select`): `val` (default) evaluates each of its iterations 1..T on
problems of the `val` split (never test: tripost.tasks SPLITS; `--n-val` per
task and subset, by default the size's own n_eval whatever --n-eval says) the
way the test evaluation runs, and takes the highest total final accuracy there (the earlier on a
tie); `last` takes iteration T. It picks the TriPosT iteration the targets
are read on and the rejection iteration its row reports (that iteration is
then evaluated on test); tripost-demo has one iteration. Every tripost-tK row
is still shown; the chosen one is marked, and the rule, the validation
accuracies and the choice are in the JSON (`selection`) and the markdown
("Iteration choice"). Every row carries `train_tokens`: the training tokens
of its model (iteration 0 included, each training stage's
train_metrics.json), printed beside its accuracy.

All of it runs through the library: `tripost.loop.Run` for base, sft-gold,
tripost-tK (one run folder), rejection and tripost-demo (folders of their own
that share the first one's iteration 0); sft-gold+ is
`tripost.train.train_sft` from the iteration-0 adapter plus `Run.stage_eval`.
Re-running resumes: finished stages are skipped.

First and final accuracy carry 95% Wilson score intervals (single
proportions: tripost.stats.proportion_interval, from each eval's counts).
Every row also carries `si_contribution` (the share of right final answers
that the student's own revision fixed) and `paired_ci_vs_sft_gold_plus`: the
95% paired-bootstrap interval of (final accuracy of the method - that of
sft-gold+) over the same problems (tripost.stats.paired_bootstrap_interval,
from the per-problem records beside each eval.json). `--seeds 0,1` runs the
whole comparison once per seed (rows carry their seed; nothing is pooled);
`--curve 48,96,192` adds `sft_gold_curve`: sft-gold trained on that many gold
examples per task, first-attempt accuracy on the held-out seen problems (how
much gold data alone buys); `--n-eval N` evaluates N problems per task and
subset.

The learning campaign (scripts/campaign.py) runs it one task at a time from
a competent iteration 0 trained outside the run: `--size campaign --tasks
arithmetic --iteration0 DIR --iteration0-tokens N --iteration0-problems N`
(DIR is linked as the run's it0/train; every row counts its N tokens; sft-gold+
takes fresh gold after its N problems). A long comparison writes its JSON and
markdown as each run finishes (`meta.partial` says what is still running).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_learning.py          # default: <= 2 h on 2 CPU cores
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_learning.py --quick  # smoke check, ~20 min (+ the val evaluations); not the result
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_learning.py --quick --curve 8,16  # + the gold curve, a few minutes more

Writes docs/benchmarks/learning{,-quick}.{json,md,png} (change with --name).
The targets (issue 16), on the total of both tasks, for each seed: the chosen
TriPosT iteration's final accuracy is above sft-gold+ with the paired 95%
interval entirely above 0; its fix rate is at least 10% of the wrong first
attempts and above its break rate; it beats tripost-demo. The script says
plainly which are met ("Reading"); it does not tune anything to meet them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tripost.layout import RunLayout, StageFolder  # noqa: E402
from tripost.student.hardware import machine_card  # noqa: E402

TASKS = ["arithmetic", "word_sorting"]
SUBSETS = ["seen", "unseen", "total"]

# Sizes. Arithmetic on 2 CPU cores (docs/benchmarks/): one fp32 LoRA step of
# 8 short examples ~8 s, greedy decoding ~140 tokens/s at batch 16-32.
#   default: 2 tasks x 48 train problems, iteration 0 for 3 epochs (36 steps),
#            later iterations 2 epochs; eval 2 tasks x 2 subsets x 16 = 64
#            problems, attempt + 1 self-improvement turn; T = 2 (measured: 75.4 min).
#            (A first default, 32 train problems and 2 epochs everywhere, left
#            the student off-format on word sorting: 0% for sft-gold.)
#   quick:   2 x 8 train problems, eval 2 x 2 x 4 = 16 problems, 1 turn.
# n_val: validation problems per task and subset for the iteration choice
# (--select val), as many as the test evaluation's: 2T more evaluations (the
# TriPosT and rejection iterations; measured at the sizes above before they
# existed, so the times above do not include them).
SIZES: dict[str, dict[str, Any]] = {
    "default": {"n_train": 48, "n_eval": 16, "iterations": 2, "samples": 1, "epochs0": 3.0, "epochs": 2.0, "max_turns": 1, "max_new_tokens": 160, "n_val": 16},
    "quick": {"n_train": 8, "n_eval": 4, "iterations": 2, "samples": 1, "epochs0": 1.0, "epochs": 1.0, "max_turns": 1, "max_new_tokens": 128, "n_val": 4},
    "full": {"n_train": 96, "n_eval": 32, "iterations": 3, "samples": 2, "epochs0": 3.0, "epochs": 2.0, "max_turns": 3, "max_new_tokens": 192, "n_val": 32},
    # The learning campaign's comparison (scripts/campaign.py, issue 28), one
    # task at a time from a competent iteration 0 (--iteration0): 400 train
    # problems, 200 held-out problems per subset (the issue's >= 200 per
    # cell), attempt + 2 self-improvement turns; ~4 h per task on an
    # AVX512-BF16 machine (2 cores). epochs0 is unused with --iteration0.
    "campaign": {"n_train": 400, "n_eval": 200, "iterations": 2, "samples": 1, "epochs0": 1.0, "epochs": 2.0, "max_turns": 2, "max_new_tokens": 192,
                 "n_val": 100},
}


# How a method's reported iteration is chosen, the same rule for every method
# (`choose_iteration`): on validation problems, or the last one.
SELECT_RULES = ("val", "last")
SELECT_WHY = {
    "val": "the highest final accuracy (total of both tasks) on problems of the val split, never test; the earlier iteration on a tie",
    "last": "the last iteration, whatever its accuracy",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smoke-check sizes (<= 20 min on 2 CPU cores); not the result")
    g.add_argument("--full", action="store_true", help="larger sizes and a third TriPosT iteration (for a GPU)")
    g.add_argument("--size", choices=list(SIZES), default=None, help="a size by name (--quick and --full are two of them; "
                   "campaign: the learning campaign's, with --iteration0)")
    p.add_argument("--tasks", default=",".join(TASKS), metavar="FAMILY,...",
                   help=f"task families compared, trained together (default {','.join(TASKS)}); the targets are read on their total")
    p.add_argument("--iteration0", default=None, metavar="DIR",
                   help="a trained student folder (`tripost train` output) that is every method's iteration 0 instead of the run's own "
                        "sft-gold: linked as tripost/it0/train (the campaign's competence checkpoint)")
    p.add_argument("--iteration0-tokens", type=int, default=None, metavar="N",
                   help="training tokens that made --iteration0 (default: its train_metrics.json's; a chain of continued trainings "
                        "gives their sum): counted in every row's train_tokens")
    p.add_argument("--iteration0-problems", type=int, default=0, metavar="N",
                   help="train problems per task --iteration0 learned from, the first N of tripost.tasks.sample_problems' order at "
                        "this seed: sft-gold+ takes its fresh gold after them")
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default=None, metavar="S,S,...",
                   help="run the whole comparison once per seed (rows carry their seed; nothing is pooled); overrides --seed")
    p.add_argument("--n-eval", type=int, default=None, metavar="N",
                   help="held-out problems per task and subset (default: the size's; >= 200 for intervals that can decide the target)")
    p.add_argument("--select", choices=SELECT_RULES, default="val",
                   help="how every method's reported iteration is chosen: val (default): the highest final accuracy on problems of "
                        "the val split (never test); last: the last iteration")
    p.add_argument("--n-val", type=int, default=None, metavar="N",
                   help="validation problems per task and subset for --select val (default: the size's, as many as --n-eval's default)")
    p.add_argument("--curve", default=None, metavar="N,N,...",
                   help="also train sft-gold on N gold examples per task for each N and measure first-attempt accuracy on the "
                        "held-out seen problems (sft_gold_curve)")
    p.add_argument("--out", default=None, help="run folders go here (default: runs/bench-learning[-quick|-full])")
    p.add_argument("--name", default=None, help="output name under docs/benchmarks/ (default: learning-default, -quick or -full; learning.* is the campaign's)")
    p.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks"))
    p.add_argument("--precision", default="auto", help="training precision (default auto: what tripost picks for the device, tripost.train.resolve_setup)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra run config override, for every method (repeatable)")
    p.add_argument("--tripost-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override for the TriPosT run only; buffer.* and collect.* keys and train.revised_attempt_weight (they act "
                        "from iteration 1 on, so base, sft-gold and the baselines stay as they are) (repeatable)")
    p.add_argument("--reuse", default=None, metavar="DIR",
                   help="an earlier benchmark folder run with the same sizes and --set: link its base evaluation, "
                        "iteration 0 and rejection run instead of computing them again (a cache: same config, same result)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


# What acts from iteration 1 on only, so base, iteration 0 and the baselines
# stay as they are: the buffer.* and collect.* sections, and the weight of a
# revised first attempt (iteration 0's gold SFT has no revisions).
TRIPOST_ONLY = ("buffer.", "collect.", "train.revised_attempt_weight=")


def check_tripost_set(items: list[str]) -> None:
    from tripost.errors import TripostError

    for item in items:
        if not item.startswith(TRIPOST_ONLY):
            raise TripostError(f"--tripost-set {item!r}: only buffer.* / collect.* keys and train.revised_attempt_weight act on the "
                               "TriPosT iterations alone; use --set for the whole benchmark")


def without_tripost_only(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run config less what --tripost-set may change (and gap.*, which only
    adds its own stage, off in this benchmark): equal for two runs whose base
    evaluation and iteration 0 are the same."""
    out = {k: v for k, v in cfg.items() if k not in ("buffer", "collect", "gap")}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k != "revised_attempt_weight"}
    return out


def parse_ints(text: str, flag: str, minimum: int) -> list[int]:
    """`0,1` -> [0, 1], distinct, in order; anything else one line naming the flag."""
    from tripost.errors import TripostError

    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise TripostError(f"{flag} takes whole numbers separated by commas, not {text!r}") from None
    if not out or any(x < minimum for x in out):
        raise TripostError(f"{flag} needs one or more numbers of at least {minimum}, not {text!r}")
    return list(dict.fromkeys(out))


# What the rejection and demo runs set on top of the shared config. rejection
# trains with gold at TriPosT's ratio: the buffer setting TriPosT's own
# iterations run with (tripost.buffer: as many gold examples as non-improvement
# examples); an earlier version ran it without gold and so with about a third
# of TriPosT's tokens. tripost-demo trains its feedback at weight 1.0, as the
# authors' train_self_improve_from_demo.py does (TriPosT's own iterations: 1.5,
# tripost.train); iteration 0 is TriPosT's, linked, so it does not retrain.
REJECTION_OVERRIDES = ["student.eval_base=false", "collect.source=rejection", "buffer.include_gold=true", "eval.every_iteration=false"]
DEMO_FEEDBACK_WEIGHT = 1.0
DEMO_OVERRIDES = ["student.eval_base=false", "collect.source=demo", "loop.iterations=1", "eval.every_iteration=false",
                  f"train.feedback_weight={DEMO_FEEDBACK_WEIGHT}"]


def run_configs(common: list[str], tripost_set: list[str]) -> dict[str, dict[str, Any]]:
    """The run config of each run folder. rejection and tripost-demo share
    TriPosT's iteration 0 (linked) and evaluate on test only the iteration
    they report (the run itself its last; `ensure_test_eval` another one the
    rule chose); tripost-demo is one iteration like tripost-t1, with TriPosT's
    --tripost-set (it is TriPosT's ablation) but its own data source and the
    authors' feedback weight for it (DEMO_OVERRIDES, after --set)."""
    from tripost.runconfig import RunConfig

    return {
        "tripost": RunConfig.load(None, common + list(tripost_set)).to_dict(),
        "rejection": RunConfig.load(None, common + REJECTION_OVERRIDES).to_dict(),
        "demo": RunConfig.load(None, common + list(tripost_set) + DEMO_OVERRIDES).to_dict(),
    }


def curve_overrides(common: list[str], n_gold: int) -> list[str]:
    """sft-gold on `n_gold` gold examples per task, first attempt only, on the
    held-out seen problems: iteration 0 of a run with no later iteration."""
    return common + [f"tasks.n_train={n_gold}", "loop.iterations=0", "student.eval_base=false", 'tasks.eval_subsets=["seen"]',
                     "eval.max_turns=0"]


def base_overrides(size: dict[str, Any], precision: str, seed: int, student: str, tasks: list[str] = TASKS) -> list[str]:
    """The run config every method shares (tripost.runconfig.RunConfig's defaults + these)."""
    return [
        f"seed={seed}", f"student.spec={student}", "student.eval_base=true",
        f'tasks.families={json.dumps(list(tasks))}', "tasks.preset=small",
        f"tasks.n_train={size['n_train']}", f"tasks.n_eval={size['n_eval']}",
        f"loop.iterations={size['iterations']}", f"loop.iteration0_epochs={size['epochs0']}",
        f"collect.samples_per_problem={size['samples']}", f"collect.max_new_tokens={size['max_new_tokens']}",
        f"train.precision={precision}", f"train.epochs={size['epochs']}", "train.batch_size=8",
        "train.logging_steps=5",
        f"eval.max_turns={size['max_turns']}", f"eval.max_new_tokens={size['max_new_tokens']}",
        # The per-iteration gap stage is measured separately (learning.md's gap table), not on every method's time.
        "gap.enabled=false",
    ]


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# Each method's run folder inside a comparison's --out folder.
RUN_FOLDERS = {"tripost": "tripost", "rejection": "rejection", "tripost-demo": "demo", "sft-gold+": "sft-gold-plus"}


def run_folders(out: Path) -> dict[str, Path]:
    """Each method's run folder in the comparison folder `out` (RUN_FOLDERS)."""
    return {m: out / name for m, name in RUN_FOLDERS.items()}


def link_folder(src: Path, dst: Path) -> None:
    """Share a finished stage folder between run folders (iteration 0, base)."""
    if dst.exists() or dst.is_symlink():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(os.path.relpath(src, dst.parent), target_is_directory=True)


def reuse_finished(src: Path, out: Path, tri_cfg: dict[str, Any], rej_cfg: dict[str, Any], say,
                   demo_cfg: dict[str, Any] | None = None) -> list[str]:
    """Link what an earlier benchmark folder `src` finished and this one would
    repeat exactly: the base evaluation and iteration 0 (no key that
    --tripost-set takes reaches them) and the whole rejection and tripost-demo
    runs when their configs are the same. Their stage records (wall seconds) are copied into this run's
    state.json so the table's wall-time column stays whole. A linked rejection
    run is the earlier folder itself: its validation evaluations (and a test
    evaluation of the iteration chosen) are written there, once."""
    from tripost.errors import TripostError
    from tripost.loop import added_defaults
    from tripost.runconfig import LEGACY_VALUES, RunConfig

    old = _load(RunLayout(src / "tripost").config)
    if old is None:
        raise TripostError(f"--reuse {src}: no tripost/config.json there")

    def same(a: dict[str, Any], b: dict[str, Any], keep) -> bool:
        """The same run once `keep` has set aside what may differ, or one made
        before keys that are now at their defaults existed, where those
        defaults run as it ran (loop.Run.prepare's rule: not a key of
        LEGACY_VALUES that resolves otherwise here)."""
        added = added_defaults(keep(a), keep(b), keep(RunConfig.defaults()), LEGACY_VALUES)
        return added is not None and not RunConfig.from_dict(b).legacy_overrides(added)

    if not same(old, tri_cfg, without_tripost_only):
        raise TripostError(f"--reuse {src}: its run differs from this one beyond what --tripost-set may change (sizes, seed or --set); nothing reused")
    linked = []
    for name in ("base", "it0"):
        if (src / "tripost" / name).is_dir():
            link_folder((src / "tripost" / name).resolve(), out / "tripost" / name)
            linked.append(f"tripost/{name}")
    state_path = RunLayout(out / "tripost").state
    state = _load(state_path) or {"stages": {}}
    for stage, info in ((_load(RunLayout(src / "tripost").state) or {}).get("stages", {})).items():
        if stage.split("/")[0] in ("base", "it0"):
            state["stages"].setdefault(stage, info)
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    for name, cfg in (("rejection", rej_cfg), ("demo", demo_cfg)):
        old_run = _load(RunLayout(src / name).config)
        if cfg is not None and old_run is not None and same(old_run, cfg, lambda c: {k: v for k, v in c.items() if k != "gap"}):
            link_folder((src / name).resolve(), out / name)
            linked.append(name)
    say(f"reused from {src}: {', '.join(linked) or 'nothing'}")
    return linked


# ------------------------------------------------------------ sft-gold+ ---


def gold_plus(run, out: Path, target_tokens: int, say, skip: int = 0) -> dict[str, Any]:
    """Train the iteration-0 adapter further on gold rationales of train
    problems the run never used, until the training tokens match
    `target_tokens` (TriPosT's iterations 1..T together), then evaluate.
    `skip`: train problems per task iteration 0 learned from beyond the
    run's own (an external iteration 0, --iteration0-problems): not fresh."""
    from tripost.buffer import rationale_examples, to_dataset
    from tripost.errors import TripostError
    from tripost.student import load_student
    from tripost.tasks import get_task, sample_problems
    from tripost.train import is_trained, prepare_dataset, train_sft

    train_dir, eval_dir = out / "train", out / "eval"
    info: dict[str, Any] = _load(out / "gold_plus.json") or {}
    if not is_trained(train_dir):
        t0 = time.perf_counter()
        cfg = run.cfg
        n_train = cfg.tasks.n_train
        used = max(n_train, skip)
        fresh = []
        for fam in cfg.tasks.families:
            # sample_problems is deterministic and prefix-stable: the first
            # `used` problems are the run's own (and iteration 0's); everything after is fresh.
            pool: list[Any] = []
            for n in (used + n_train * 7, used + n_train * 3, used + n_train):
                try:
                    pool = sample_problems(get_task(fam), split="train", subset="seen", preset=cfg.tasks.preset, n=n, seed=cfg.seed)
                    break
                except Exception:  # the level's problem space is smaller than n
                    continue
            fresh += pool[used:]
        if not fresh:
            raise TripostError(f"sft-gold+: no fresh train problems after the first {used} per task")
        # More of iteration 0's own training: gold rationales alone (tripost.buffer.rationale_examples).
        examples = rationale_examples(fresh)
        tconf = run.train_config(run.adapter(0))
        tok = load_student(cfg.student.spec, precision="fp32").tokenizer
        tokenized, _ = prepare_dataset(to_dataset(examples), tok, tconf)
        lengths = list(tokenized["length"])
        if len(lengths) != len(examples):  # an over-long gold rationale was dropped: cannot happen at these sizes
            raise TripostError(f"sft-gold+: {len(examples) - len(lengths)} gold examples exceed max_length")
        # Take fresh examples in order (cycling when they run out) until the
        # token count reaches the target; one pass over that list.
        chosen, total, i = [], 0, 0
        order = list(range(len(examples)))
        import random

        random.Random(f"gold+|{cfg.seed}").shuffle(order)
        while total < target_tokens and order:
            j = order[i % len(order)]
            chosen.append(examples[j])
            total += lengths[j]
            i += 1
        say(f"[sft-gold+] {len(chosen)} gold examples ({len(set(e.problem_id for e in chosen))} fresh problems), {total} tokens (target {target_tokens})")
        from dataclasses import replace

        res = train_sft(replace(tconf, epochs=1.0), to_dataset(chosen), train_dir)
        info = {"examples": len(chosen), "distinct_problems": len(set(e.problem_id for e in chosen)), "target_tokens": target_tokens,
                "skipped_problems": used, "problem_ids": sorted(set(e.problem_id for e in chosen)),
                "tokens": res.tokens, "train_seconds": round(time.perf_counter() - t0, 1), "final_loss": res.final_loss}
        out.mkdir(parents=True, exist_ok=True)
        (out / "gold_plus.json").write_text(json.dumps(info, indent=2) + "\n")
    if not (eval_dir / "eval.json").exists():
        t0 = time.perf_counter()
        run.stage_eval(eval_dir, str(train_dir))
        info["eval_seconds"] = round(time.perf_counter() - t0, 1)
        (out / "gold_plus.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


# --------------------------------------------------------------- tables ---


def stage_seconds(folders: list[Path]) -> float:
    """The time every stage of a comparison took, whichever invocation ran
    it: each run's recorded stage times (state.json) and sft-gold+'s
    training and evaluation, in every comparison folder."""
    total = 0.0
    for out in folders:
        for run in ("tripost", "rejection", "demo"):
            total += sum(st.get("seconds", 0.0) for st in ((_load(RunLayout(out / run).state) or {}).get("stages") or {}).values())
        gp = _load(out / "sft-gold-plus" / "gold_plus.json") or {}
        total += gp.get("train_seconds", 0.0) + gp.get("eval_seconds", 0.0)
    return round(total, 1)


def _stage_seconds(state: dict[str, Any] | None, names: list[str]) -> float:
    stages = (state or {}).get("stages", {})
    return round(sum(stages.get(n, {}).get("seconds", 0.0) for n in names), 1)


def iteration_tokens(stage: StageFolder, state: dict[str, Any] | None = None) -> int:
    """Training tokens of one iteration folder: its train_metrics.json, else
    the `tokens` its train stage recorded in the run's state.json (`state`),
    else 0 (an iteration with nothing to train on)."""
    m = _load(stage.train_metrics)
    if m and m.get("tokens") is not None:
        return int(m["tokens"])
    rec = ((state or {}).get("stages") or {}).get(f"{stage.root.name}/train") or {}
    return int(rec.get("tokens") or 0)


def buffer_by_kind(run: Path, iterations: range) -> dict[str, int] | None:
    """Examples of each kind the buffers of `iterations` held (their
    stats.json `by_kind_after`, summed): what the model trained on after
    iteration 0; None when no buffer stats are there."""
    out: dict[str, int] = {}
    found = False
    for t in iterations:
        st = _load(RunLayout(run).it(t).buffer_stats)
        if st is None:
            continue
        found = True
        for k, v in (st.get("by_kind_after") or {}).items():
            out[k] = out.get(k, 0) + int(v)
    return out if found else None


# ------------------------------------------------------ iteration choice ---


def val_eval_json(run: Path, t: int) -> Path:
    """Where iteration t's validation evaluation is (beside its test eval)."""
    return run / f"it{t}" / "val" / "eval.json"


def val_problems(run, n_val: int) -> list[Any]:
    """The validation problems of a run: `n_val` per task and subset of the
    `val` split, the run's evaluation subsets, shuffled like its test problems
    (tripost.tasks.select). Never a test or train problem."""
    from tripost.errors import TripostError

    out = []
    for subset in run.cfg.tasks.eval_subsets:
        out += run.problems("val", subset, n_val, f"val-{subset}")
    if any(p.split != "val" for p in out):  # the split rule says it cannot happen; the choice must never see test
        raise TripostError("validation problems: a problem outside the val split was selected")
    return out


def ensure_val_eval(run, t: int, n_val: int) -> None:
    """Evaluate iteration t's student on the validation problems (the run's
    eval settings; `Run.stage_eval` with val problems), recorded in the run's
    state.json as `it{t}/val`; skipped when done with the same problems."""
    from tripost.evaluate import evaluate
    from tripost.student.hardware import pinned

    path = val_eval_json(run.out, t)
    problems = val_problems(run, n_val)
    done = ((_load(path) or {}).get("metrics") or {}).get("total", {}).get("n") == len(problems)

    def stage() -> dict[str, Any]:
        res = evaluate(run.open_student(run.adapter(t)), problems, run.cfg.eval_config(run.progress))
        res.save(path)
        m = res.metrics["total"]
        return {"n": m["n"], "first_accuracy": m["first_accuracy"], "final_accuracy": m["final_accuracy"]}

    with pinned(run.machine_profile()):
        run._stage(f"it{t}/val", done, stage)


def ensure_test_eval(run, t: int) -> None:
    """The test evaluation of iteration t (a run that evaluates only its last
    iteration, when the rule chose another): the stage the run itself would
    have run with `eval.every_iteration=true`."""
    from tripost.student.hardware import pinned

    folder = run.it(t) / "eval"
    with pinned(run.machine_profile()):
        run._stage(f"it{t}/eval", (folder / "eval.json").exists(), lambda: run.stage_eval(folder, run.adapter(t)))


def read_val(run: Path, T: int) -> list[dict[str, Any]]:
    """Iterations 1..T's validation results: iteration, n, first and final
    accuracy (None where there is no validation evaluation)."""
    out = []
    for t in range(1, T + 1):
        m = ((_load(val_eval_json(run, t)) or {}).get("metrics") or {}).get("total") or {}
        out.append({"iteration": t, "n": m.get("n"), "first_acc": m.get("first_accuracy"), "final_acc": m.get("final_accuracy")})
    return out


def choose_iteration(val: list[dict[str, Any]], T: int, rule: str) -> dict[str, Any]:
    """The iteration (1..T) a method is reported at, by `rule`, the same for
    every method: `val` the highest validation final accuracy (`read_val`;
    the earlier iteration on a tie: fewer training tokens), `last` T. Test
    accuracy is never an input. With one iteration there is nothing to
    choose."""
    from tripost.errors import TripostError

    if rule not in SELECT_RULES:
        raise TripostError(f"unknown selection rule {rule!r}; choose from {', '.join(SELECT_RULES)}")
    out = {"rule": rule, "why": SELECT_WHY[rule], "candidates": list(range(1, T + 1)), "val": val}
    if T == 1:
        return {**out, "iteration": 1, "why": "the only iteration"}
    if rule == "last":
        return {**out, "iteration": T}
    acc = {v["iteration"]: v.get("final_acc") for v in val}
    missing = [t for t in range(1, T + 1) if acc.get(t) is None]
    if missing:
        raise TripostError(f"--select val: no validation evaluation of iteration(s) {', '.join(map(str, missing))}")
    return {**out, "iteration": max(range(1, T + 1), key=lambda t: (acc[t], -t))}


def selection(tri: Path, rej: Path, T: int, rule: str) -> dict[str, dict[str, Any]]:
    """Each iterated method's choice (`choose_iteration`) from its run folder's
    validation evaluations; tripost-demo is one iteration."""
    return {"tripost": choose_iteration(read_val(tri, T) if rule == "val" else [], T, rule),
            "rejection": choose_iteration(read_val(rej, T) if rule == "val" else [], T, rule),
            "tripost-demo": choose_iteration([], 1, rule)}


def methods(tri: Path, rej: Path, gp: Path, T: int, demo: Path | None = None,
            chosen: dict[str, dict[str, Any]] | None = None, it0_tokens: int | None = None) -> list[dict[str, Any]]:
    """Each method: its eval.json, the iteration it is reported at, its
    training tokens (incl. iteration 0) and its wall time (every stage its
    model depends on, its validation evaluations included). `chosen`: the
    `selection`; without it, the last iteration (rule `last`)."""
    chosen = chosen or selection(tri, rej, T, "last")
    k_tri, k_rej = chosen["tripost"]["iteration"], chosen["rejection"]["iteration"]
    st_tri, st_rej = _load(RunLayout(tri).state), _load(RunLayout(rej).state)
    st_demo = _load(RunLayout(demo).state) if demo is not None else None
    gpi = _load(gp / "gold_plus.json") or {}
    it0_tokens = iteration_tokens(RunLayout(tri).it(0), st_tri) if it0_tokens is None else it0_tokens
    it0_s = _stage_seconds(st_tri, ["it0/train"])

    def upto(state: dict[str, Any] | None, k: int) -> float:
        return _stage_seconds(state, [f"it{t}/{s}" for t in range(1, k + 1) for s in ("collect", "buffer", "train", "val")] + [f"it{k}/eval"])

    out = [
        {"method": "base", "iteration": None, "eval": RunLayout(tri).base.eval_json, "train_tokens": 0,
         "seconds": _stage_seconds(st_tri, ["base/eval"])},
        {"method": "sft-gold", "iteration": 0, "eval": RunLayout(tri).it(0).eval_json, "train_tokens": it0_tokens,
         "seconds": _stage_seconds(st_tri, ["it0/train", "it0/eval"])},
        {"method": "sft-gold+", "iteration": None, "eval": gp / "eval" / "eval.json", "train_tokens": it0_tokens + int(gpi.get("tokens", 0)),
         "seconds": round(it0_s + gpi.get("train_seconds", 0.0) + gpi.get("eval_seconds", 0.0), 1)},
        {"method": "rejection", "iteration": k_rej, "chosen": True, "eval": RunLayout(rej).it(k_rej).eval_json,
         "train_tokens": it0_tokens + sum(iteration_tokens(RunLayout(rej).it(t), st_rej) for t in range(1, k_rej + 1)),
         "buffer_by_kind": buffer_by_kind(rej, range(1, k_rej + 1)), "seconds": round(it0_s + upto(st_rej, k_rej), 1)},
    ]
    if demo is not None:
        out.append({"method": "tripost-demo", "iteration": 1, "chosen": True, "eval": RunLayout(demo).it(1).eval_json,
                    "train_tokens": it0_tokens + iteration_tokens(RunLayout(demo).it(1), st_demo), "buffer_by_kind": buffer_by_kind(demo, range(1, 2)),
                    "seconds": round(it0_s + upto(st_demo, 1), 1)})
    for k in range(1, T + 1):
        out.append({"method": f"tripost-t{k}", "iteration": k, "chosen": k == k_tri, "eval": RunLayout(tri).it(k).eval_json,
                    "train_tokens": it0_tokens + sum(iteration_tokens(RunLayout(tri).it(t), st_tri) for t in range(1, k + 1)),
                    "buffer_by_kind": buffer_by_kind(tri, range(1, k + 1)), "seconds": round(it0_s + upto(st_tri, k), 1)})
    return out


def eval_records(eval_json: Path) -> list[dict[str, Any]] | None:
    """The per-problem records of an evaluation: the transcripts file its
    eval.json names (tripost.evaluate.EvalResult.save), None when missing."""
    summary = _load(eval_json)
    if summary is None:
        return None
    path = Path(eval_json).with_name(summary.get("transcripts") or Path(eval_json).name.removesuffix(".json") + ".transcripts.jsonl")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return None


def method_records(ms: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]] | None]:
    return {m["method"]: eval_records(m["eval"]) for m in ms}


def _group(records: list[dict[str, Any]], task: str, subset: str) -> list[dict[str, Any]]:
    return [r for r in records if task in ("total", r["family"]) and subset in ("total", r["subset"])]


# Bootstrap of the paired intervals: as many resamples as an evaluation's own
# intervals (tripost.evaluate.EvalConfig.n_bootstrap), one fixed seed.
PAIRED_BOOT = 1000


def paired_ci(a: list[dict[str, Any]] | None, b: list[dict[str, Any]] | None, who: str = "the two methods") -> list[float] | None:
    """95% paired-bootstrap interval of final accuracy (a - b) over the same
    problems (per-problem records of one task/subset group); None when either
    side has no records. Problems that differ are an error: the pairing would
    be wrong (both sides of a comparison are evaluated on one problem set)."""
    from tripost.errors import TripostError
    from tripost.stats import paired_bootstrap_interval

    if not a or not b:
        return None
    fa = {(r["problem_id"], r["subset"]): float(r["final_correct"]) for r in a}
    fb = {(r["problem_id"], r["subset"]): float(r["final_correct"]) for r in b}
    if set(fa) != set(fb) or len(fa) != len(a) or len(fb) != len(b):
        raise TripostError(f"paired interval: {who} were not evaluated on the same problems ({len(a)} and {len(b)} records)")
    keys = list(fb)
    ci = paired_bootstrap_interval([fa[k] for k in keys], [fb[k] for k in keys], n_boot=PAIRED_BOOT, seed=0)
    return list(ci) if ci is not None else None


def proportion_ci(g: dict[str, Any], key: str) -> list[float] | None:
    """95% Wilson score interval (tripost.stats.proportion_interval) of first
    or final accuracy, a single proportion, from the group's counts: also for
    an eval.json written before evaluation used Wilson (it stored a
    percentile bootstrap, which is [0, 0] at 0/n); the stored interval only
    where there are no counts."""
    from tripost.stats import proportion_interval

    c = g.get("counts") or {}
    x = c.get({"first_accuracy": "first_correct", "final_accuracy": "final_correct"}[key])
    if x is None or g.get("n") is None:
        return (g.get("ci") or {}).get(key)
    ci = proportion_interval(x, g["n"], 0.95)
    return list(ci) if ci is not None else None


def _si_contribution(g: dict[str, Any]) -> float | None:
    """The metric, or from the counts of an evaluation made before it was
    measured (fixed / final correct)."""
    if "si_contribution" in g:
        return g["si_contribution"]
    c = g.get("counts") or {}
    return c["fixed"] / c["final_correct"] if c.get("final_correct") else None


BASELINE = "sft-gold+"


def paired_key(method: str) -> str:
    """A row's field for its paired interval against `method` (sft-gold+: paired_ci_vs_sft_gold_plus)."""
    return "paired_ci_vs_" + method.replace("+", "_plus").replace("-", "_")


def rows_of(ms: list[dict[str, Any]], seed: int = 0, records: dict[str, list[dict[str, Any]] | None] | None = None,
            also_vs: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One row per (method, task, subset) of one seed's comparison; each with
    its paired interval against sft-gold+, and against each method of `also_vs`."""
    records = method_records(ms) if records is None else records
    rows = []
    for m in ms:
        ev = _load(m["eval"])
        if ev is None:
            continue
        metrics = ev["metrics"]
        own = records.get(m["method"])
        for task in list(metrics.get("by_task") or {}) + ["total"]:
            block = metrics if task == "total" else (metrics.get("by_task") or {}).get(task, {})
            for subset in SUBSETS:
                g = block.get(subset)
                if not g:
                    continue
                paired = {paired_key(o): paired_ci(_group(own, task, subset), _group(records[o], task, subset), f"{m['method']} and {o} ({task}/{subset})")
                          if own and records.get(o) else None for o in (BASELINE, *also_vs)}
                rows.append({
                    "seed": seed, "method": m["method"], "iteration": m.get("iteration"), "chosen": m.get("chosen"),
                    "task": task, "subset": subset, "n": g["n"],
                    "first_acc": g["first_accuracy"], "first_ci": proportion_ci(g, "first_accuracy"),
                    "final_acc": g["final_accuracy"], "final_ci": proportion_ci(g, "final_accuracy"),
                    **paired,
                    "revised_rate": g.get("revised_rate"), "fix_rate": g.get("fix_rate"), "break_rate": g.get("break_rate"),
                    "si_contribution": _si_contribution(g),
                    "counts": g.get("counts"), "train_tokens": m["train_tokens"], "buffer_by_kind": m.get("buffer_by_kind"),
                    "wall_s": m["seconds"],
                })
    return rows


def tasks_of(rows: list[dict[str, Any]]) -> list[str]:
    """The task families the rows hold, in their order ("total" aside)."""
    return list(dict.fromkeys(r["task"] for r in rows if r["task"] != "total"))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _ci(c: list[float] | None) -> str:
    return "" if not c else f" [{100 * c[0]:.0f}, {100 * c[1]:.0f}]"


def _pct_sign(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _diff(x: float | None, c: list[float] | None) -> str:
    """A difference in points with its paired interval: +4.2 [+1.0, +7.5]."""
    if x is None:
        return "—"
    return f"{100 * x:+.1f}" + ("" if not c else f" [{100 * c[0]:+.1f}, {100 * c[1]:+.1f}]")


# Issue 16's bar for self-improvement: the student's own revision fixes at
# least this share of its wrong first attempts (and more than it breaks).
FIX_MIN = 0.10


def _all(values: list[bool | None]) -> bool | None:
    """False if any is False, else None if any is undecided, else True."""
    return False if any(v is False for v in values) else None if any(v is None for v in values) else True


def verdict(rows: list[dict[str, Any]], T: int, seed: int | None = None,
            records: dict[str, list[dict[str, Any]] | None] | None = None) -> dict[str, Any]:
    """Issue 16's targets for one seed's rows, on the total of both tasks, for
    the chosen TriPosT iteration (the row marked `chosen`, by the selection
    rule: validation accuracy or the last iteration; never test accuracy; a
    row without the mark: the last iteration evaluated):
    1. final accuracy above sft-gold+, the paired 95% interval entirely above 0;
    2. fix rate >= FIX_MIN of the wrong first attempts, and above the break rate;
    3. final accuracy above tripost-demo's (None when there is no demo row)."""
    get = {(r["method"], r["task"], r["subset"]): r for r in rows if seed is None or r.get("seed") == seed}
    tri = [get[k] for k in ((f"tripost-t{t}", "total", "total") for t in range(1, T + 1)) if k in get]
    gp, demo = get.get((BASELINE, "total", "total")), get.get(("tripost-demo", "total", "total"))
    if not tri or gp is None:
        return {"seed": seed, "met": None, "why": "missing rows (no TriPosT iteration or no sft-gold+ evaluated)"}
    best = next((r for r in tri if r.get("chosen")), tri[-1])
    ci = best.get("paired_ci_vs_sft_gold_plus")
    beats_gp = None if ci is None else bool(ci[0] > 0)
    fix, brk = best["fix_rate"], best["break_rate"]
    # No right first attempt to break: the fix rate alone decides.
    fix_ok = fix is not None and fix >= FIX_MIN and fix > (brk if brk is not None else 0.0)
    beats_demo = None if demo is None else bool(best["final_acc"] > demo["final_acc"])
    demo_ci = None
    if demo is not None and records:
        demo_ci = paired_ci(records.get(best["method"]), records.get("tripost-demo"), f"{best['method']} and tripost-demo")
    return {
        "seed": seed, "met": _all([beats_gp, fix_ok, beats_demo]),
        "best": best["method"], "chosen_by": "the selection rule" if best.get("chosen") else "the last iteration evaluated",
        "tripost_final_acc": best["final_acc"], "sft_gold_plus_final_acc": gp["final_acc"],
        "tripost_train_tokens": best.get("train_tokens"), "sft_gold_plus_train_tokens": gp.get("train_tokens"),
        "tripost_demo_train_tokens": None if demo is None else demo.get("train_tokens"),
        "tripost_improvement_examples": _improvements(best), "tripost_demo_improvement_examples": None if demo is None else _improvements(demo),
        "diff_vs_sft_gold_plus": best["final_acc"] - gp["final_acc"], "paired_ci_vs_sft_gold_plus": ci,
        "beats_sft_gold_plus": beats_gp,
        "tripost_fix_rate": fix, "tripost_break_rate": brk, "fix_min": FIX_MIN, "fix_target": fix_ok,
        "tripost_si_contribution": best.get("si_contribution"), "tripost_counts": best["counts"],
        "tripost_demo_final_acc": None if demo is None else demo["final_acc"], "paired_ci_vs_tripost_demo": demo_ci,
        "beats_tripost_demo": beats_demo,
    }


def _improvements(row: dict[str, Any]) -> int | None:
    """Improvement examples the row's model trained on after iteration 0 (its buffers' stats)."""
    return None if row.get("buffer_by_kind") is None else int(row["buffer_by_kind"].get("improvement", 0))


def _n(x: int | None) -> str:
    return "—" if x is None else f"{x:,}"


def _met(x: bool | None) -> str:
    return "not decided" if x is None else "MET" if x else "NOT MET"


def reading(v: dict[str, Any]) -> list[str]:
    """Issue 16's targets for one seed, said plainly (markdown lines)."""
    head = f"Seed {v['seed']}: " if v.get("seed") is not None else ""
    if v.get("best") is None:
        return [f"- {head}not decided: {v.get('why')}."]
    ci = v["paired_ci_vs_sft_gold_plus"]
    out = [f"- {head}chosen TriPosT iteration `{v['best']}` (by {v.get('chosen_by', 'the selection rule')}; total of the tasks compared). "
           f"All targets: **{_met(v['met'])}**."]
    out.append(f"  1. Above sft-gold+ with the paired 95% interval entirely above 0: **{_met(v['beats_sft_gold_plus'])}** — final "
               f"{_pct_sign(v['tripost_final_acc'])} vs {_pct_sign(v['sft_gold_plus_final_acc'])}, difference {_diff(v['diff_vs_sft_gold_plus'], ci)} points"
               + ("" if ci is not None else " (no per-problem records to pair)")
               + f"; training tokens {_n(v.get('tripost_train_tokens'))} vs {_n(v.get('sft_gold_plus_train_tokens'))}.")
    brk = v["tripost_break_rate"]
    out.append(f"  2. Fix rate at least {100 * v['fix_min']:.0f}% of wrong first attempts and above the break rate: "
               f"**{_met(v['fix_target'])}** — fix {_pct_sign(v['tripost_fix_rate'])}, break {_pct_sign(brk)}"
               f"{' (no right first attempt to break)' if brk is None else ''}; SI contribution {_pct_sign(v['tripost_si_contribution'])}.")
    if v["beats_tripost_demo"] is None:
        out.append("  3. Beats tripost-demo: **not decided** — no tripost-demo row.")
    else:
        dci = v.get("paired_ci_vs_tripost_demo")
        out.append(f"  3. Beats tripost-demo: **{_met(v['beats_tripost_demo'])}** — final {_pct_sign(v['tripost_final_acc'])} vs "
                   f"{_pct_sign(v['tripost_demo_final_acc'])}, difference {_diff(v['tripost_final_acc'] - v['tripost_demo_final_acc'], dci)} points; "
                   f"training tokens {_n(v.get('tripost_train_tokens'))} vs {_n(v.get('tripost_demo_train_tokens'))}, improvement examples "
                   f"{_n(v.get('tripost_improvement_examples'))} vs {_n(v.get('tripost_demo_improvement_examples'))} (after iteration 0, "
                   "from the buffers' stats).")
    return out


def _iteration_cell(r: dict[str, Any]) -> str:
    it = r.get("iteration")
    return "—" if it is None else f"{it}{' (chosen)' if r.get('chosen') else ''}"


def selection_lines(selections: list[dict[str, Any]], many: bool) -> list[str]:
    """The "Iteration choice" section: each iterated method's candidates,
    their validation accuracy and the one chosen, per seed."""
    cols = (["seed"] if many else []) + ["method", "iteration", "val n", "val first", "val final", "chosen"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for sel in selections:
        for method in ("tripost", "rejection", "tripost-demo"):
            c = sel.get(method)
            if not c:
                continue
            by_it = {v["iteration"]: v for v in c.get("val") or []}
            for t in c["candidates"]:
                v = by_it.get(t, {})
                name = f"tripost-t{t}" if method == "tripost" else method
                out.append("| " + " | ".join(([str(sel.get("seed"))] if many else []) + [
                    name, str(t), "—" if v.get("n") is None else str(v["n"]), _pct(v.get("first_acc")), _pct(v.get("final_acc")),
                    "yes" if t == c["iteration"] else ""]) + " |")
    return out


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], verdicts: dict[str, Any] | list[dict[str, Any]],
             curve: list[dict[str, Any]] | None = None, selections: list[dict[str, Any]] | None = None) -> str:
    verdicts = [verdicts] if isinstance(verdicts, dict) else list(verdicts)
    sel = meta.get("selection") or {"rule": "last", "why": SELECT_WHY["last"]}
    seeds = meta.get("seeds") or [meta.get("seed", 0)]
    many = len(seeds) > 1
    it0 = meta.get("iteration0")
    out = [f"# Learning benchmark{' (quick: smoke sizes, not the result)' if meta['size_name'] == 'quick' else ''}", "",
           *([f"**Partial:** {meta['partial']}.", ""] if meta.get("partial") else []),
           f"Command: `{meta['command']}`", "",
           *([f"Iteration 0 of every method: `{it0['folder']}` (trained outside this run on the gold rationales of the first "
              f"{it0['problems'] or 'n_train'} train problems per task; {_n(it0['tokens'])} training tokens counted in every row), not the run's own sft-gold.", ""]
             if it0 else []),
           f"Device: {meta['device']}; {meta['when']}; "
           + (f"stages' own time {meta['stage_seconds'] / 60:.1f} min (every run's stages and sft-gold+, summed over resumes); "
              if meta.get("stage_seconds") is not None else "")
           + f"this invocation {meta['total_seconds'] / 60:.1f} min.", "",
           f"Sizes: {json.dumps(meta['size'])}; student {meta['student']}, training precision {meta['precision']}, "
           f"seed{'s' if many else ''} {', '.join(map(str, seeds))}{' (one whole comparison per seed; nothing pooled)' if many else ''}.", "",
           *([f"TriPosT run only: `{' '.join(meta['tripost_overrides'])}` (base, sft-gold, sft-gold+ and rejection as without it; "
              "tripost-demo with it).", ""] if meta.get("tripost_overrides") else []),
           *([f"Reused from `{meta['reused']['from']}` (same config, so the same result): {', '.join(meta['reused']['what'])}; "
              "their wall seconds in the table are from that run, the total above is this invocation's.", ""] if meta.get("reused") else []),
           "Accuracy in % with 95% Wilson score intervals (a single proportion over problems); *vs sft-gold+*: final accuracy minus sft-gold+'s in points, with "
           "the 95% paired-bootstrap interval over the same problems; fix = wrong first attempt fixed by the student's own revision "
           "(share of wrong first attempts), break = right first attempt revised into a wrong one (share of right first attempts), "
           "SI = share of right final answers that the student's own revision fixed (TriPosT's SI contribution); *train tokens*: "
           "the training tokens of the row's model, iteration 0 included.", "",
           f"Iteration reported, the same rule for every method (`--select {sel['rule']}`): {sel['why']}"
           + (f" ({sel['n_val']} val problems per task and subset)" if sel.get("n_val") else "")
           + ". It picks the TriPosT iteration the targets are read on (marked *chosen*; every iteration's row is shown) and the "
           "iteration rejection is reported at; tripost-demo has one.", ""]
    gp = {(r.get("seed"), r["task"], r["subset"]): r for r in rows if r["method"] == BASELINE}
    for task in ["total"] + tasks_of(rows):
        cols = (["seed"] if many else []) + ["method", "iteration", "subset", "n", "first", "final", "vs sft-gold+", "train tokens",
                                             "revised", "fix", "break", "SI", "wall s"]
        out += [f"## {task}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            if r["task"] != task:
                continue
            base = gp.get((r.get("seed"), r["task"], r["subset"]))
            diff = None if base is None else r["final_acc"] - base["final_acc"]
            cells = ([str(r.get("seed"))] if many else []) + [
                r["method"], _iteration_cell(r), r["subset"], str(r["n"]), f"{_pct(r['first_acc'])}{_ci(r['first_ci'])}",
                f"{_pct(r['final_acc'])}{_ci(r['final_ci'])}", _diff(diff, r.get("paired_ci_vs_sft_gold_plus")), str(r["train_tokens"]),
                _pct(r["revised_rate"]), _pct(r["fix_rate"]), _pct(r["break_rate"]), _pct(r.get("si_contribution")), str(r["wall_s"])]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    if selections:
        out += ["## Iteration choice", "", f"Rule `{sel['rule']}`: {sel['why']}. "
                + ("Accuracy in % on the validation problems." if sel["rule"] == "val" else "No validation evaluation."), "",
                *selection_lines(selections, many), ""]
    out += ["## Reading", "",
            f"Issue 16's targets, on the total of {'both tasks' if len(tasks_of(rows)) == 2 else 'its tasks (' + ', '.join(tasks_of(rows)) + ')'}, for the chosen TriPosT iteration: (1) final accuracy above sft-gold+ with the "
            f"paired 95% interval entirely above 0; (2) fix rate at least {100 * FIX_MIN:.0f}% of wrong first attempts and above the break "
            "rate; (3) final accuracy above tripost-demo (learning from its own mistakes beats learning from demonstrations).", ""]
    for v in verdicts:
        out += reading(v)
    if many:
        met = _all([v.get("met") for v in verdicts])
        out += ["", f"Over the seeds: {_met(met)} ({sum(v.get('met') is True for v in verdicts)} of {len(verdicts)} seeds meet every target)."]
    out.append("")
    if curve:
        out += ["## sft-gold curve", "",
                "sft-gold trained on N gold examples per task (iteration 0 alone), first-attempt accuracy in % on the held-out seen "
                "problems: what more gold data buys without any self-improvement.", "",
                "| " + " | ".join((["seed"] if many else []) + ["gold examples per task", "task", "n", "first"]) + " |",
                "|" + "---|" * (5 if many else 4)]
        for c in curve:
            out.append("| " + " | ".join(([str(c.get("seed"))] if many else []) + [str(c["gold_examples"]), c["task"], str(c["n"]),
                                                                                  f"{_pct(c['first_acc'])}{_ci(c.get('first_ci'))}"]) + " |")
        out.append("")
    return "\n".join(out)


def curve_rows(eval_json: Path, n_gold: int, seed: int) -> list[dict[str, Any]]:
    """The curve's points of one sft-gold run: first-attempt accuracy on the
    seen problems, per task and for both together."""
    ev = _load(eval_json)
    if ev is None:
        return []
    m = ev["metrics"]
    out = []
    for task in list(m.get("by_task") or {}) + ["total"]:
        g = (m if task == "total" else (m.get("by_task") or {}).get(task, {})).get("seen")
        if g:
            out.append({"seed": seed, "gold_examples": n_gold, "task": task, "n": g["n"], "first_acc": g["first_accuracy"],
                        "first_ci": proportion_ci(g, "first_accuracy")})
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["method"] for r in rows))
    tasks = ["total"] + tasks_of(rows)
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), sharey=True, squeeze=False)
    axes = list(axes[0])
    for ax, task in zip(axes, tasks):
        for k, subset in enumerate(["seen", "unseen"]):
            xs, ys, lo, hi, first = [], [], [], [], []
            for i, m in enumerate(names):
                r = next((r for r in rows if r["method"] == m and r["task"] == task and r["subset"] == subset), None)
                if r is None:
                    continue
                x = i + (k - 0.5) * 0.38
                xs.append(x)
                ys.append(100 * r["final_acc"])
                c = r["final_ci"] or [r["final_acc"], r["final_acc"]]
                lo.append(100 * (r["final_acc"] - c[0]))
                hi.append(100 * (c[1] - r["final_acc"]))
                first.append(100 * r["first_acc"])
            ax.bar(xs, ys, width=0.36, yerr=[lo, hi], capsize=3, label=f"{subset} final", alpha=0.8)
            ax.scatter(xs, first, marker="_", s=200, color="black", zorder=3, label="first attempt" if k == 0 else None)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right")
        ax.set_title(task)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ main ---


def compare(seed: int, out: Path, size: dict[str, Any], args: argparse.Namespace, say,
            progress: bool, on_progress=None) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """One seed's whole comparison in `out` (resumed where it stopped): the
    TriPosT run, rejection, tripost-demo, the iteration choice (`--select`),
    sft-gold+. The methods, what --reuse linked and the choice.
    `on_progress(methods)` is called as each run finishes, with the methods
    evaluated so far (each at its last iteration until the choice is made),
    so a long comparison publishes what it has."""
    from tripost.loop import Run

    T = size["iterations"]
    cfgs = method_configs(args, size, seed)
    tri_dir, rej_dir, demo_dir, gp_dir = run_folders(out).values()

    def so_far(sel: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        return methods(tri_dir, rej_dir, gp_dir, T, demo=demo_dir, chosen=sel, it0_tokens=args.iteration0_tokens)

    reused: list[str] = []
    if args.iteration0:
        # An external iteration 0 (the campaign's competence checkpoint): the
        # run finds it0/train trained and goes on from it; rejection and
        # tripost-demo link this it0 folder as they link a trained one.
        link_folder(Path(args.iteration0).resolve(), RunLayout(tri_dir).it(0).train)
    if args.reuse:
        src = Path(args.reuse) if args.seeds is None else Path(args.reuse) / f"seed{seed}"
        reused = reuse_finished(src, out, cfgs["tripost"], cfgs["rejection"], say, demo_cfg=cfgs["demo"])
    # 1) base, sft-gold and the TriPosT iterations: one `tripost run`.
    say(f"== seed {seed}: tripost run -> {tri_dir}")
    tri = Run(tri_dir, cfgs["tripost"], progress=progress, log=say)
    if args.select == "val":
        val_problems(tri, size["n_val"])  # the val split has problems (a --data file may lack them): known before anything trains
    tri.run()
    if on_progress:
        on_progress(so_far())
    runs = {"tripost": tri}
    # 2) rejection sampling and 3) learning from demonstrations, from the same iteration 0.
    for name, folder in (("rejection", rej_dir), ("demo", demo_dir)):
        say(f"== seed {seed}: {name} run -> {folder}")
        link_folder(tri_dir / "it0", folder / "it0")
        runs[name] = Run(folder, cfgs[name], progress=progress, log=say)
        runs[name].run()
        if on_progress:
            on_progress(so_far())
    # 4) the iteration each method is reported at, by one rule: validation problems (or the last iteration).
    if args.select == "val" and T > 1:
        for name in ("tripost", "rejection"):
            say(f"== seed {seed}: {name} iterations 1..{T} on {size['n_val']} val problems per task and subset")
            for t in range(1, T + 1):
                ensure_val_eval(runs[name], t, size["n_val"])
    sel = selection(tri_dir, rej_dir, T, args.select)
    say(f"== seed {seed}: chosen ({args.select}): tripost-t{sel['tripost']['iteration']}, rejection iteration {sel['rejection']['iteration']}")
    if sel["rejection"]["iteration"] != T:  # the run evaluated its last iteration on test; the chosen one now
        ensure_test_eval(runs["rejection"], sel["rejection"]["iteration"])
    # 5) sft-gold+: the same iteration 0 trained on more gold, token-matched to all T TriPosT iterations.
    target = sum(iteration_tokens(RunLayout(tri_dir).it(t), tri.state()) for t in range(1, T + 1))
    say(f"== seed {seed}: sft-gold+ -> {gp_dir} (token target {target})")
    gold_plus(tri, gp_dir, target, say, skip=args.iteration0_problems)
    return so_far(sel), reused, {"seed": seed, **sel}


def gold_curve(seed: int, out: Path, size: dict[str, Any], args: argparse.Namespace, points: list[int], say, progress: bool) -> list[dict[str, Any]]:
    """sft-gold on each number of gold examples per task, evaluated on its
    first attempt (`curve_overrides`); a point of the comparison's own size
    links its iteration-0 training (the same run, so the same weights)."""
    from tripost.loop import Run
    from tripost.runconfig import RunConfig

    common = base_overrides(size, args.precision, seed, args.student, args.task_list) + list(args.set)
    rows: list[dict[str, Any]] = []
    for n in points:
        folder = out / "curve" / f"gold{n}"
        if n == size["n_train"] and RunLayout(out / "tripost").it(0).train.is_dir():
            link_folder(RunLayout(out / "tripost").it(0).train.resolve(), RunLayout(folder).it(0).train)
        say(f"== seed {seed}: sft-gold on {n} gold examples per task -> {folder}")
        Run(folder, RunConfig.load(None, curve_overrides(common, n)), progress=progress, log=say).run()
        rows += curve_rows(RunLayout(folder).it(0).eval_json, n, seed)
    return rows


def check_args(args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """(seeds, curve points), every flag checked before anything loads."""
    from tripost.errors import TripostError

    from tripost.tasks import FAMILIES

    check_tripost_set(args.tripost_set)
    args.task_list = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in args.task_list if t not in FAMILIES]
    if not args.task_list or unknown:
        raise TripostError(f"--tasks {args.tasks!r}: choose from {', '.join(FAMILIES)}")
    if args.iteration0 is not None and not Path(args.iteration0).is_dir():
        raise TripostError(f"--iteration0 {args.iteration0}: no such folder")
    if args.iteration0 is None and (args.iteration0_tokens is not None or args.iteration0_problems):
        raise TripostError("--iteration0-tokens and --iteration0-problems describe --iteration0; give it too")
    seeds = parse_ints(args.seeds, "--seeds", 0) if args.seeds is not None else [args.seed]
    points = parse_ints(args.curve, "--curve", 1) if args.curve is not None else []
    if args.n_eval is not None and args.n_eval < 1:
        raise TripostError(f"--n-eval must be at least 1, not {args.n_eval}")
    if args.n_val is not None and args.n_val < 1:
        raise TripostError(f"--n-val must be at least 1, not {args.n_val}")
    if args.n_val is not None and args.select != "val":
        raise TripostError("--n-val sizes the validation evaluations of --select val; with --select last there are none")
    return seeds, points


def run_size(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The size the arguments name, with --n-eval and --n-val applied."""
    size_name = args.size or ("quick" if args.quick else "full" if args.full else "default")
    size = dict(SIZES[size_name])
    if args.n_eval is not None:
        size["n_eval"] = args.n_eval
    if args.select != "val":
        size.pop("n_val")
    elif args.n_val is not None:
        size["n_val"] = args.n_val
    return size_name, size


def method_configs(args: argparse.Namespace, size: dict[str, Any], seed: int) -> dict[str, dict[str, Any]]:
    """Every method's run config for one seed (`check_args` has run)."""
    return run_configs(base_overrides(size, args.precision, seed, args.student, args.task_list) + list(args.set), args.tripost_set)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tripost.errors import TripostError

    try:
        seeds, points = check_args(args)
    except TripostError as e:
        print(f"bench_learning: error: {e}", file=sys.stderr)
        return 2
    import torch

    size_name, size = run_size(args)
    suffix = "" if size_name == "default" else f"-{size_name}"
    out = Path(args.out or ROOT / "runs" / f"bench-learning{suffix}")
    # learning.json / learning.md are the campaign's (scripts/campaign.py): this
    # benchmark's default size writes learning-default.*.
    name = args.name or f"learning-{size_name}"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    T = size["iterations"]
    progress = not args.no_progress
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    curve: list[dict[str, Any]] = []
    reused: list[str] = []
    selections: list[dict[str, Any]] = []
    docs = Path(args.docs)

    def meta_now(partial: str | None = None) -> dict[str, Any]:
        return {
            "command": "HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_learning.py" + "".join(f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])),
            "size_name": size_name, "size": size, "student": args.student, "precision": args.precision, "seeds": seeds, "tasks": args.task_list,
            "iteration0": None if args.iteration0 is None else {"folder": str(Path(args.iteration0).resolve()), "tokens": args.iteration0_tokens,
                                                                "problems": args.iteration0_problems},
            "device": device, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "total_seconds": round(time.perf_counter() - t_start, 1),  # this invocation (a resumed or reusing one is shorter)
            "stage_seconds": stage_seconds([(out if args.seeds is None else out / f"seed{seed}") for seed in seeds]),  # across resumes
            "overrides": base_overrides(size, args.precision, seeds[0], args.student, args.task_list) + list(args.set),
            "tripost_overrides": list(args.tripost_set), "reused": {"from": args.reuse, "what": reused} if args.reuse else None,
            "runs": {str(seed): {m: str(f) for m, f in run_folders(out if args.seeds is None else out / f"seed{seed}").items()} for seed in seeds},
            "curve": points,
            "selection": {"rule": args.select, "why": SELECT_WHY[args.select], "n_val": size.get("n_val")},
            "machine": machine_card(),  # tripost machine: CPU, flags, matmul GFLOP/s, the number-format decision
            **({"partial": partial} if partial else {}),
        }

    def on_progress(seed: int):
        def write_partial(ms: list[dict[str, Any]]) -> None:
            # What has finished so far, each method at its last iteration
            # (the choice and sft-gold+ come at the end): a long comparison's
            # results land as they finish.
            part = [{**r, "chosen": None} for r in rows_of(ms, seed=seed)]  # nothing is chosen before the validation evaluations
            note = (f"seed {seed} still running: rows are the methods evaluated so far, each at its last iteration; the iteration "
                    "choice, sft-gold+ and the paired intervals against it come when the comparison finishes")
            write_outputs(docs, name, rows + part, meta_now(note), verdicts, curve, selections, seeds[0])
            say(f"== seed {seed}: wrote what has finished so far to {docs / (name + '.json')}")
        return write_partial

    try:
        for seed in seeds:
            # One seed: the folders as before; several: one folder each.
            sdir = out if args.seeds is None else out / f"seed{seed}"
            ms, linked, sel = compare(seed, sdir, size, args, say, progress, on_progress=on_progress(seed))
            selections.append(sel)
            reused += [f"seed{seed}/{x}" if args.seeds is not None else x for x in linked]
            records = method_records(ms)
            seed_rows = rows_of(ms, seed=seed, records=records)
            rows += seed_rows
            verdicts.append(verdict(seed_rows, T, seed=seed, records=records))
            if points:
                curve += gold_curve(seed, sdir, size, args, points, say, progress)
    except TripostError as e:
        print(f"bench_learning: error: {e}", file=sys.stderr)
        return 2

    md = write_outputs(docs, name, rows, meta_now(), verdicts, curve, selections, seeds[0])
    print(md)
    print(f"\nwrote {docs / (name + '.json')}, {docs / (name + '.md')}, {docs / (name + '.png')}")
    return 0


def write_outputs(docs: Path, name: str, rows: list[dict[str, Any]], meta: dict[str, Any], verdicts: list[dict[str, Any]],
                  curve: list[dict[str, Any]], selections: list[dict[str, Any]], first_seed: int) -> str:
    """docs/NAME.json, .md and .png (the plot of the first seed's rows); the markdown."""
    from tripost.fileio import atomic_write_json

    docs.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"meta": meta, "selection": selections,
                              "target": {"met": _all([v.get("met") for v in verdicts]), "per_seed": verdicts}, "rows": rows}
    if curve:
        result["sft_gold_curve"] = curve
    atomic_write_json(docs / f"{name}.json", result, indent=2)
    md = markdown(rows, meta, verdicts, curve, selections)
    (docs / f"{name}.md").write_text(md + f"\n![accuracy per method, seed {first_seed}]({name}.png)\n")
    plot([r for r in rows if r["seed"] == first_seed], docs / f"{name}.png")
    return md


if __name__ == "__main__":
    raise SystemExit(main())
