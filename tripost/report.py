"""`tripost report RUN`: report.md and PNG plots of a run folder.

Reads only what the stages wrote (config.json, state.json, itT/collect/
collect.json, itT/buffer/stats.json, itT/train/train_metrics.json,
itT/eval/eval.json), so it can be re-run at any time, also on a run that is
still going or was interrupted: missing pieces are reported as missing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.stats import proportion_interval
from tripost.teachers.usage import format_cost


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


# A single proportion of the eval metrics as (successes, out of) in its
# `counts`: the report's interval of it is Wilson's, recomputed here so that an
# eval.json written before evaluation used Wilson (it stored a percentile
# bootstrap, [0, 0] at 0/n) is shown the same way.
_COUNTS = {"first_accuracy": ("first_correct", "n"), "final_accuracy": ("final_correct", "n"), "si_contribution": ("fixed", "final_correct")}


def _ci(m: dict[str, Any], key: str) -> str:
    counts = {**(m.get("counts") or {}), "n": m.get("n")}
    num, den = _COUNTS.get(key, (None, None))
    if counts.get(num) is not None and counts.get(den) is not None:
        ci = proportion_interval(counts[num], counts[den], 0.95)
    else:
        ci = (m.get("ci") or {}).get(key)
    return "" if not ci or ci[0] is None else f" [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]"


def collect_run(run: Path) -> dict[str, Any]:
    """Everything the report shows, as one dict (also written as report.json)."""
    if not (run / "config.json").exists():
        raise TripostError(f"{run} is not a run folder (no config.json)")
    iters = sorted((int(m.group(1)), p) for p in run.glob("it*") if (m := re.fullmatch(r"it(\d+)", p.name)))
    rows = []
    stages = [("base", run / "base")] if (run / "base").exists() else []
    stages += [(f"it{t}", p) for t, p in iters]
    for name, p in stages:
        rows.append({
            "iteration": name,
            "eval": _load(p / "eval" / "eval.json"),
            "collect": _load(p / "collect" / "collect.json"),
            "buffer": _load(p / "buffer" / "stats.json"),
            "train": _load(p / "train" / "train_metrics.json"),
            "gap": _load(p / "gap" / "gap.json"),
        })
    return {"config": _load(run / "config.json"), "state": _load(run / "state.json"), "machine": _load(run / "machine.json"), "iterations": rows}


def _plot(data: dict[str, Any], plots: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots.mkdir(parents=True, exist_ok=True)
    made = []
    ev = [(r["iteration"], r["eval"]["metrics"]) for r in data["iterations"] if r["eval"]]
    if ev:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        names = [n for n, _ in ev]
        for subset, style in (("seen", "-"), ("unseen", "--"), ("total", ":")):
            for key, marker in (("first_accuracy", "o"), ("final_accuracy", "s")):
                ys = [(m.get(subset) or {}).get(key) for _, m in ev]
                if any(y is not None for y in ys):
                    ax.plot(names, [y if y is not None else float("nan") for y in ys], style, marker=marker, label=f"{subset} {key.split('_')[0]}")
        ax.set_ylabel("accuracy"), ax.set_ylim(0, 1), ax.set_title("Accuracy per iteration (first attempt vs final)")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout(), fig.savefig(plots / "accuracy.png", dpi=110), plt.close(fig)
        made.append("plots/accuracy.png")

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key in ("revised_rate", "fix_rate", "break_rate", "si_contribution"):
            ys = [(m.get("total") or {}).get(key) for _, m in ev]
            ax.plot(names, [y if y is not None else float("nan") for y in ys], marker="o", label=key.replace("_", " "))
        ax.set_ylim(0, 1), ax.set_title("Self-improvement rates (total)"), ax.legend(fontsize=8)
        fig.tight_layout(), fig.savefig(plots / "self_improvement.png", dpi=110), plt.close(fig)
        made.append("plots/self_improvement.png")

    bufs = [(r["iteration"], r["buffer"]) for r in data["iterations"] if r["buffer"]]
    if bufs:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        names = [n for n, _ in bufs]
        bottom = [0] * len(bufs)
        for kind in ("improvement", "direct", "gold", "pair"):  # pair: a DPO round's preference pairs
            ys = [b["by_kind_after"].get(kind, 0) for _, b in bufs]
            axes[0].bar(names, ys, bottom=bottom, label=kind)
            bottom = [a + b for a, b in zip(bottom, ys)]
        axes[0].set_title("Buffer by kind"), axes[0].legend(fontsize=8)
        _, last = bufs[-1]
        diffs = sorted(set().union(*[set(v) for v in last["difficulty"].values()]))
        width = 0.27
        for i, src in enumerate(("pool", "collected", "buffer")):
            total = sum(last["difficulty"][src].values()) or 1
            axes[1].bar([j + (i - 1) * width for j in range(len(diffs))], [last["difficulty"][src].get(d, 0) / total for d in diffs], width, label=src)
        axes[1].set_xticks(range(len(diffs)), diffs, rotation=30, fontsize=7)
        axes[1].set_title(f"Difficulty share ({names[-1]})"), axes[1].legend(fontsize=8)
        fig.tight_layout(), fig.savefig(plots / "buffer.png", dpi=110), plt.close(fig)
        made.append("plots/buffer.png")

    cols = [(r["iteration"], r["collect"]) for r in data["iterations"] if r["collect"]]
    if cols:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        names = [n for n, _ in cols]
        ax.bar(names, [c["teacher_calls"] for _, c in cols], color="tab:purple")
        ax.set_ylabel("teacher calls")
        ax2 = ax.twinx()
        # An unpriced cost is unknown, not 0: left out of the line.
        ax2.plot(names, [float("nan") if c.get("unpriced") else c["cost_usd"] for _, c in cols], "k-o")
        ax2.set_ylabel("cost (USD)")
        ax.set_title("Teacher usage per iteration")
        fig.tight_layout(), fig.savefig(plots / "teacher.png", dpi=110), plt.close(fig)
        made.append("plots/teacher.png")
    return made


def render_markdown(data: dict[str, Any], plots: list[str]) -> str:
    cfg = data["config"] or {}
    lines = ["# tripost run report", ""]
    st = cfg.get("student", {})
    lines += [f"Student `{st.get('spec')}`, teacher `{cfg.get('teacher', {}).get('spec')}`, tasks "
              f"{', '.join(cfg.get('tasks', {}).get('families', []))} (preset `{cfg.get('tasks', {}).get('preset')}`), seed {cfg.get('seed')}. "
              "Evaluation is on held-out test problems; the gold answer is only used for scoring.", ""]
    if data.get("machine"):
        from tripost.student.hardware import describe_card

        # The machine the run started on, and the number format every stage used (machine.json).
        lines += [f"{line}  " for line in describe_card(data["machine"]).splitlines()] + [""]
    lines += ["## Accuracy", "", "| iteration | subset | n | first attempt | final (after self-improvement) | revised | fixed wrong | broke right | SI contribution |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["iterations"]:
        if not r["eval"]:
            continue
        for subset in ("seen", "unseen", "total"):
            m = r["eval"]["metrics"].get(subset)
            if not m:
                continue
            lines.append(f"| {r['iteration']} | {subset} | {m['n']} | {_pct(m['first_accuracy'])}{_ci(m, 'first_accuracy')} | "
                         f"{_pct(m['final_accuracy'])}{_ci(m, 'final_accuracy')} | {_pct(m.get('revised_rate'))} | {_pct(m.get('fix_rate'))} | {_pct(m.get('break_rate'))} | "
                         f"{_pct(m.get('si_contribution'))}{_ci(m, 'si_contribution')} |")
    lines += ["", "Intervals are 95% Wilson score intervals (percent) of the proportion, from the counts. *fixed wrong*: share of wrong first attempts the student's own revision made right; *broke right*: share of right first attempts it made wrong; "
              "*SI contribution*: share of right final answers that were wrong at first and fixed by the student's own revision "
              "(TriPosT's \"SI. Contrib.\"; — where no final answer is right, or in an evaluation made before it was measured).", ""]

    lines += ["## Collection and buffer", "", "| iteration | usable | improvement | direct | critique | failed | teacher calls | cost (USD) | buffer: improvement / direct / gold |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in data["iterations"]:
        c, b = r["collect"], r["buffer"]
        if not c and not b:
            continue
        k = (c or {}).get("by_kind", {})
        bk = (b or {}).get("by_kind_after", {})
        lines.append(f"| {r['iteration']} | {(c or {}).get('usable', '—')} | {k.get('improvement', 0)} | {k.get('direct', 0)} | {k.get('critique', 0)} | {k.get('failed', 0)} | "
                     f"{(c or {}).get('teacher_calls', '—')} | {format_cost((c or {}).get('cost_usd', 0), (c or {}).get('unpriced'), dollar='')} | "
                     f"{bk.get('improvement', 0)} / {bk.get('direct', 0)} / {bk.get('gold', 0)} |")
    unpriced = sorted({m for r in data["iterations"] for m in (r["collect"] or {}).get("unpriced") or ()})
    if unpriced:
        lines += ["", f"*unpriced*: {', '.join(f'`{m}`' for m in unpriced)} answered with no price in the built-in table or "
                      "`teacher.prices`, so the cost of those requests is unknown, not zero."]
    lines += ["", "## Training", "", "| iteration | steps | tokens | final loss | seconds |", "|---|---:|---:|---:|---:|"]
    for r in data["iterations"]:
        t = r["train"]
        if t:
            loss = "—" if t.get("final_loss") is None else f"{t['final_loss']:.3f}"
            lines.append(f"| {r['iteration']} | {t['steps']} | {t['tokens']} | {loss} | {t['seconds']:.0f} |")
    gaps = [(r["iteration"], r["gap"]) for r in data["iterations"] if r.get("gap")]
    if gaps:
        lines += ["", "## Generation-verification gap", "",
                  "The student's own verifier on its own samples (Song et al. 2024; tripost.gap): gap = mean over problems of "
                  "(accuracy of the kept samples - accuracy of all samples); relative gap divides by (1 - accuracy of all); both over the "
                  "problems where something was kept and not every sample was right (the last column: problems left out, nothing kept / all right).", "",
                  "| iteration | verifier / filter | problems x samples | accuracy, all | accuracy, kept | gap | relative gap | none kept / all right |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for it, g in gaps:
            m, c = g["metrics"], g.get("config", {})

            def mci(x: dict[str, Any] | None) -> str:
                if not x or x.get("mean") is None:
                    return "—"
                ci = x.get("ci")
                return f"{100 * x['mean']:+.1f}" + (f" [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if ci else "")

            lines.append(f"| {it} | {c.get('verifier')} / {c.get('filter')} | {m['problems']} x {c.get('samples')} | {_pct(m['acc_all']['mean'])} | "
                         f"{_pct((m.get('acc_kept') or {}).get('mean'))} | {mci(m.get('gap'))} | {mci(m.get('relative_gap'))} | "
                         f"{m['excluded']['none_kept']['n']} / {m['excluded']['all_right']['n']} |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    stages = (data["state"] or {}).get("stages", {})
    if stages:
        lines += ["", "## Stages", "", "| stage | seconds |", "|---|---:|"] + [f"| {k} | {v.get('seconds', '—')} |" for k, v in stages.items()]
    return "\n".join(lines) + "\n"


def write_report(run: str | Path) -> Path:
    run = Path(run)
    data = collect_run(run)
    plots = _plot(data, run / "plots")
    (run / "report.json").write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    path = run / "report.md"
    path.write_text(render_markdown(data, plots))
    return path
