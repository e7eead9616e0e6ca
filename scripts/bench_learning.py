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
                the correct samples, train on them" — no teacher
  tripost-tK    TriPosT iterations with the scripted teacher (K = 1..T)

All of it runs through the library: `tripost.loop.Run` for base, sft-gold,
tripost-tK (one run folder) and rejection (a second folder that shares the
first one's iteration 0, `collect.source=rejection`); sft-gold+ is
`tripost.train.train_sft` from the iteration-0 adapter plus `Run.stage_eval`.
Re-running resumes: finished stages are skipped.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_learning.py          # default: <= 2 h on 2 CPU cores
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_learning.py --quick  # smoke check, <= 20 min; not the result

Writes docs/benchmarks/learning{,-quick}.{json,md,png} (change with --name).
The target (issue 7): TriPosT's final accuracy beats sft-gold+ on the total of
both tasks, and its self-improvement fix rate is above its break rate. The
script prints whether it was met; it does not tune anything to meet it.
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
SIZES: dict[str, dict[str, Any]] = {
    "default": {"n_train": 48, "n_eval": 16, "iterations": 2, "samples": 1, "epochs0": 3.0, "epochs": 2.0, "max_turns": 1, "max_new_tokens": 160},
    "quick": {"n_train": 8, "n_eval": 4, "iterations": 2, "samples": 1, "epochs0": 1.0, "epochs": 1.0, "max_turns": 1, "max_new_tokens": 128},
    "full": {"n_train": 96, "n_eval": 32, "iterations": 3, "samples": 2, "epochs0": 3.0, "epochs": 2.0, "max_turns": 3, "max_new_tokens": 192},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smoke-check sizes (<= 20 min on 2 CPU cores); not the result")
    g.add_argument("--full", action="store_true", help="larger sizes and a third TriPosT iteration (for a GPU)")
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folders go here (default: runs/bench-learning[-quick|-full])")
    p.add_argument("--name", default=None, help="output name under docs/benchmarks/ (default: learning[-quick|-full])")
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


def base_overrides(size: dict[str, Any], precision: str, seed: int, student: str) -> list[str]:
    """The run config every method shares (tripost.loop.default_config + these)."""
    return [
        f"seed={seed}", f"student.spec={student}", "student.eval_base=true",
        f'tasks.families={json.dumps(TASKS)}', "tasks.preset=small",
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


def _link(src: Path, dst: Path) -> None:
    """Share a finished stage folder between run folders (iteration 0, base)."""
    if dst.exists() or dst.is_symlink():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(os.path.relpath(src, dst.parent), target_is_directory=True)


def reuse_finished(src: Path, out: Path, tri_cfg: dict[str, Any], rej_cfg: dict[str, Any], say) -> list[str]:
    """Link what an earlier benchmark folder `src` finished and this one would
    repeat exactly: the base evaluation and iteration 0 (no key that
    --tripost-set takes reaches them) and the whole rejection run when its config is
    the same. Their stage records (wall seconds) are copied into this run's
    state.json so the table's wall-time column stays whole."""
    from tripost.errors import TripostError
    from tripost.loop import _added_defaults, default_config

    old = _load(src / "tripost" / "config.json")
    if old is None:
        raise TripostError(f"--reuse {src}: no tripost/config.json there")

    def same(a: dict[str, Any], b: dict[str, Any], keep) -> bool:
        """The same run once `keep` has set aside what may differ, or one made
        before keys that are now at their defaults existed."""
        return _added_defaults(keep(a), keep(b), keep(default_config())) is not None

    if not same(old, tri_cfg, without_tripost_only):
        raise TripostError(f"--reuse {src}: its run differs from this one beyond what --tripost-set may change (sizes, seed or --set); nothing reused")
    linked = []
    for name in ("base", "it0"):
        if (src / "tripost" / name).is_dir():
            _link((src / "tripost" / name).resolve(), out / "tripost" / name)
            linked.append(f"tripost/{name}")
    state_path = out / "tripost" / "state.json"
    state = _load(state_path) or {"stages": {}}
    for stage, info in ((_load(src / "tripost" / "state.json") or {}).get("stages", {})).items():
        if stage.split("/")[0] in ("base", "it0"):
            state["stages"].setdefault(stage, info)
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    old_rej = _load(src / "rejection" / "config.json")
    if old_rej is not None and same(old_rej, rej_cfg, lambda c: {k: v for k, v in c.items() if k != "gap"}):
        _link((src / "rejection").resolve(), out / "rejection")
        linked.append("rejection")
    say(f"reused from {src}: {', '.join(linked) or 'nothing'}")
    return linked


# ------------------------------------------------------------ sft-gold+ ---


def gold_plus(run, out: Path, target_tokens: int, say) -> dict[str, Any]:
    """Train the iteration-0 adapter further on gold rationales of train
    problems the run never used, until the training tokens match
    `target_tokens` (TriPosT's iterations 1..T together), then evaluate."""
    from tripost.buffer import Example, to_dataset, trajectory_text
    from tripost.errors import TripostError
    from tripost.student import load_student
    from tripost.tasks import get_task, sample_problems
    from tripost.train import is_trained, prepare_dataset, train_sft

    train_dir, eval_dir = out / "train", out / "eval"
    info: dict[str, Any] = _load(out / "gold_plus.json") or {}
    if not is_trained(train_dir):
        t0 = time.perf_counter()
        cfg = run.cfg
        n_train = cfg["tasks"]["n_train"]
        fresh = []
        for fam in cfg["tasks"]["families"]:
            # sample_problems is deterministic and prefix-stable: the first
            # n_train problems are the run's own; everything after is fresh.
            for n in (n_train * 8, n_train * 4, n_train * 2):
                try:
                    pool = sample_problems(get_task(fam), split="train", subset="seen", preset=cfg["tasks"]["preset"], n=n, seed=cfg["seed"])
                    break
                except Exception:  # the level's problem space is smaller than n
                    continue
            fresh += pool[n_train:]
        examples = [Example(prompt=p.question, completion=trajectory_text([{"rationale": p.rationale}]), kind="gold", family=p.family,
                            difficulty=p.difficulty, subset=p.subset, problem_id=p.id, iteration=0, n_edits=0) for p in fresh]
        tconf = run.train_config(run.adapter(0))
        tok = load_student(cfg["student"]["spec"], precision="fp32").tokenizer
        tokenized, _ = prepare_dataset(to_dataset(examples), tok, tconf)
        lengths = list(tokenized["length"])
        if len(lengths) != len(examples):  # an over-long gold rationale was dropped: cannot happen at these sizes
            raise TripostError(f"sft-gold+: {len(examples) - len(lengths)} gold examples exceed max_length")
        # Take fresh examples in order (cycling when they run out) until the
        # token count reaches the target; one pass over that list.
        chosen, total, i = [], 0, 0
        order = list(range(len(examples)))
        import random

        random.Random(f"gold+|{cfg['seed']}").shuffle(order)
        while total < target_tokens and order:
            j = order[i % len(order)]
            chosen.append(examples[j])
            total += lengths[j]
            i += 1
        say(f"[sft-gold+] {len(chosen)} gold examples ({len(set(e.problem_id for e in chosen))} fresh problems), {total} tokens (target {target_tokens})")
        from dataclasses import replace

        res = train_sft(replace(tconf, epochs=1.0), to_dataset(chosen), train_dir)
        info = {"examples": len(chosen), "distinct_problems": len(set(e.problem_id for e in chosen)), "target_tokens": target_tokens,
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


def _stage_seconds(state: dict[str, Any] | None, names: list[str]) -> float:
    stages = (state or {}).get("stages", {})
    return round(sum(stages.get(n, {}).get("seconds", 0.0) for n in names), 1)


def _tokens(folder: Path) -> int:
    m = _load(folder / "train" / "train_metrics.json")
    return int(m["tokens"]) if m else 0


def methods(tri: Path, rej: Path, gp: Path, T: int) -> list[dict[str, Any]]:
    """Each method: its eval.json, its training tokens (incl. iteration 0)
    and its wall time (every stage it depends on)."""
    st_tri, st_rej = _load(tri / "state.json"), _load(rej / "state.json")
    gpi = _load(gp / "gold_plus.json") or {}
    it0_tokens = _tokens(tri / "it0")
    it0_s = _stage_seconds(st_tri, ["it0/train"])
    out = [
        {"method": "base", "eval": tri / "base" / "eval" / "eval.json", "train_tokens": 0, "seconds": _stage_seconds(st_tri, ["base/eval"])},
        {"method": "sft-gold", "eval": tri / "it0" / "eval" / "eval.json", "train_tokens": it0_tokens, "seconds": _stage_seconds(st_tri, ["it0/train", "it0/eval"])},
        {"method": "sft-gold+", "eval": gp / "eval" / "eval.json", "train_tokens": it0_tokens + int(gpi.get("tokens", 0)),
         "seconds": round(it0_s + gpi.get("train_seconds", 0.0) + gpi.get("eval_seconds", 0.0), 1)},
        {"method": "rejection", "eval": rej / f"it{T}" / "eval" / "eval.json", "train_tokens": it0_tokens + sum(_tokens(rej / f"it{t}") for t in range(1, T + 1)),
         "seconds": round(it0_s + _stage_seconds(st_rej, [f"it{t}/{s}" for t in range(1, T + 1) for s in ("collect", "buffer", "train")] + [f"it{T}/eval"]), 1)},
    ]
    for k in range(1, T + 1):
        out.append({"method": f"tripost-t{k}", "eval": tri / f"it{k}" / "eval" / "eval.json",
                    "train_tokens": it0_tokens + sum(_tokens(tri / f"it{t}") for t in range(1, k + 1)),
                    "seconds": round(it0_s + _stage_seconds(st_tri, [f"it{t}/{s}" for t in range(1, k + 1) for s in ("collect", "buffer", "train")] + [f"it{k}/eval"]), 1)})
    return out


def rows_of(ms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for m in ms:
        ev = _load(m["eval"])
        if ev is None:
            continue
        metrics = ev["metrics"]
        for task in TASKS + ["total"]:
            block = metrics if task == "total" else (metrics.get("by_task") or {}).get(task, {})
            for subset in SUBSETS:
                g = block.get(subset)
                if not g:
                    continue
                ci = g.get("ci") or {}
                rows.append({
                    "method": m["method"], "task": task, "subset": subset, "n": g["n"],
                    "first_acc": g["first_accuracy"], "first_ci": ci.get("first_accuracy"),
                    "final_acc": g["final_accuracy"], "final_ci": ci.get("final_accuracy"),
                    "revised_rate": g.get("revised_rate"), "fix_rate": g.get("fix_rate"), "break_rate": g.get("break_rate"),
                    "counts": g.get("counts"), "train_tokens": m["train_tokens"], "wall_s": m["seconds"],
                })
    return rows


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _ci(c: list[float] | None) -> str:
    return "" if not c else f" [{100 * c[0]:.0f}, {100 * c[1]:.0f}]"


def verdict(rows: list[dict[str, Any]], T: int) -> dict[str, Any]:
    get = {(r["method"], r["task"], r["subset"]): r for r in rows}
    tri, gp = get.get((f"tripost-t{T}", "total", "total")), get.get(("sft-gold+", "total", "total"))
    if not tri or not gp:
        return {"met": None, "why": "missing rows"}
    beats = tri["final_acc"] > gp["final_acc"]
    fix, brk = tri["fix_rate"], tri["break_rate"]
    # No right first attempt to break: the fix rate must still be above zero.
    si = fix is not None and fix > (brk if brk is not None else 0.0)
    return {
        "met": bool(beats and si),
        "tripost_final_acc": tri["final_acc"], "sft_gold_plus_final_acc": gp["final_acc"], "beats_sft_gold_plus": beats,
        "tripost_fix_rate": fix, "tripost_break_rate": brk, "fix_above_break": si,
        "tripost_first_counts": tri["counts"],
    }


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], v: dict[str, Any]) -> str:
    out = [f"# Learning benchmark{' (quick: smoke sizes, not the result)' if meta['size_name'] == 'quick' else ''}", "",
           f"Command: `{meta['command']}`", "",
           f"Device: {meta['device']}; {meta['when']}; total wall time {meta['total_seconds'] / 60:.1f} min.", "",
           f"Sizes: {json.dumps(meta['size'])}; student {meta['student']}, training precision {meta['precision']}, seed {meta['seed']}.", "",
           *([f"TriPosT run only: `{' '.join(meta['tripost_overrides'])}` (base, sft-gold, sft-gold+ and rejection as without it).", ""]
             if meta.get("tripost_overrides") else []),
           *([f"Reused from `{meta['reused']['from']}` (same config, so the same result): {', '.join(meta['reused']['what'])}; "
              "their wall seconds in the table are from that run, the total above is this invocation's.", ""] if meta.get("reused") else []),
           "Accuracy in % with 95% bootstrap intervals over problems; fix = wrong first attempt fixed by the student's own revision "
           "(share of wrong first attempts), break = right first attempt revised into a wrong one (share of right first attempts).", ""]
    for task in ["total"] + TASKS:
        out += [f"## {task}", "", "| method | subset | n | first | final | revised | fix | break | train tokens | wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if r["task"] != task:
                continue
            out.append(f"| {r['method']} | {r['subset']} | {r['n']} | {_pct(r['first_acc'])}{_ci(r['first_ci'])} | {_pct(r['final_acc'])}{_ci(r['final_ci'])} | "
                       f"{_pct(r['revised_rate'])} | {_pct(r['fix_rate'])} | {_pct(r['break_rate'])} | {r['train_tokens']} | {r['wall_s']} |")
        out.append("")
    T = meta["size"]["iterations"]
    if v.get("met") is None:
        out += ["## Target", "", f"Not decided: {v.get('why')}.", ""]
    else:
        out += ["## Target", "",
                f"TriPosT (t{T}) final accuracy on both tasks' total: {_pct(v['tripost_final_acc'])}% vs sft-gold+ {_pct(v['sft_gold_plus_final_acc'])}% "
                f"-> {'beats' if v['beats_sft_gold_plus'] else 'does NOT beat'} the compute-matched baseline; "
                f"self-improvement fix rate {_pct(v['tripost_fix_rate'])}% vs break rate {_pct(v['tripost_break_rate'])}% -> "
                f"{'above' if v['fix_above_break'] else 'NOT above'}. Target {'MET' if v['met'] else 'NOT MET'}.", ""]
    return "\n".join(out)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, len(TASKS) + 1, figsize=(5 * (len(TASKS) + 1), 4), sharey=True)
    for ax, task in zip(axes, ["total"] + TASKS):
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from tripost.errors import TripostError
    from tripost.loop import Run, resolve_config

    size_name = "quick" if args.quick else "full" if args.full else "default"
    size = SIZES[size_name]
    suffix = "" if size_name == "default" else f"-{size_name}"
    out = Path(args.out or ROOT / "runs" / f"bench-learning{suffix}")
    name = args.name or f"learning{suffix}"
    precision = args.precision
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    T = size["iterations"]
    common = base_overrides(size, precision, args.seed, args.student) + list(args.set)
    progress = not args.no_progress
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    t_start = time.perf_counter()
    reused: list[str] = []
    try:
        check_tripost_set(args.tripost_set)
        tri_dir, rej_dir, gp_dir = out / "tripost", out / "rejection", out / "sft-gold-plus"
        tri_cfg = resolve_config(None, common + list(args.tripost_set))
        rej_cfg = resolve_config(None, common + ["student.eval_base=false", "collect.source=rejection", "buffer.include_gold=false",
                                                  "eval.every_iteration=false"])
        if args.reuse:
            reused = reuse_finished(Path(args.reuse), out, tri_cfg, rej_cfg, say)
        # 1) base, sft-gold and the TriPosT iterations: one `tripost run`.
        say(f"== tripost run -> {tri_dir}")
        tri = Run(tri_dir, tri_cfg, progress=progress, log=say)
        tri.run()
        # 2) rejection sampling from the same iteration 0, no teacher.
        say(f"== rejection run -> {rej_dir}")
        _link(tri_dir / "it0", rej_dir / "it0")
        Run(rej_dir, rej_cfg, progress=progress, log=say).run()
        # 3) sft-gold+: the same iteration 0 trained on more gold, token-matched.
        target = sum(_tokens(tri_dir / f"it{t}") for t in range(1, T + 1))
        say(f"== sft-gold+ -> {gp_dir} (token target {target})")
        gold_plus(tri, gp_dir, target, say)
    except TripostError as e:
        print(f"bench_learning: error: {e}", file=sys.stderr)
        return 2

    ms = methods(tri_dir, rej_dir, gp_dir, T)
    rows = rows_of(ms)
    v = verdict(rows, T)
    meta = {
        "command": "HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_learning.py" + "".join(f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])),
        "size_name": size_name, "size": size, "student": args.student, "precision": precision, "seed": args.seed,
        "device": device, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "total_seconds": round(time.perf_counter() - t_start, 1),  # this invocation (a resumed or reusing one is shorter)
        "overrides": common, "tripost_overrides": list(args.tripost_set), "reused": {"from": args.reuse, "what": reused} if args.reuse else None,
        "runs": {"tripost": str(tri_dir), "rejection": str(rej_dir), "sft-gold+": str(gp_dir)},
    }
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    (docs / f"{name}.json").write_text(json.dumps({"meta": meta, "target": v, "rows": rows}, indent=2) + "\n")
    md = markdown(rows, meta, v)
    (docs / f"{name}.md").write_text(md + f"\n![accuracy per method]({name}.png)\n")
    plot(rows, docs / f"{name}.png")
    print(md)
    print(f"\nwrote {docs / (name + '.json')}, {docs / (name + '.md')}, {docs / (name + '.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
