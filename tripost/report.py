"""`tripost report RUN`: report.md and PNG plots of a run folder.

Reads only what the stages wrote (config.json, state.json, itT/collect/
collect.json, itT/buffer/stats.json, itT/train/train_metrics.json,
itT/eval/eval.json), so it can be re-run at any time, also on a run that is
still going or was interrupted: missing pieces are reported as missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tripost.config import flatten
from tripost.errors import TripostError
from tripost.layout import RunLayout, StageFolder
from tripost.stats import proportion_interval
from tripost.student.hardware import describe_card
from tripost.teachers.usage import format_cost
from tripost.train import report_targets


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def percent(x: float | None) -> str:
    """A proportion as the result pages print it: 12.3%, or — when unknown."""
    return "—" if x is None else f"{100 * x:.1f}%"


# A single proportion of the eval metrics as (successes, out of) in its
# `counts`: the report's interval of it is Wilson's, recomputed here so that an
# eval.json written before evaluation used Wilson (it stored a percentile
# bootstrap, [0, 0] at 0/n) is shown the same way.
_COUNTS = {"first_accuracy": ("first_correct", "n"), "final_accuracy": ("final_correct", "n"), "si_contribution": ("fixed", "final_correct")}


def _interval(m: dict[str, Any], key: str) -> Any:
    """The 95% interval of eval metric `key` (Wilson's from the counts where they are there), or None."""
    counts = {**(m.get("counts") or {}), "n": m.get("n")}
    num, den = _COUNTS.get(key, (None, None))
    if counts.get(num) is not None and counts.get(den) is not None:
        return proportion_interval(counts[num], counts[den], 0.95)
    return (m.get("ci") or {}).get(key)


def _ci(m: dict[str, Any], key: str) -> str:
    ci = _interval(m, key)
    return "" if not ci or ci[0] is None else f" [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]"


def collect_run(run: Path) -> dict[str, Any]:
    """Everything the report shows, as one dict (also written as report.json)."""
    layout = RunLayout(run)
    if not layout.config.exists():
        raise TripostError(f"{run} is not a run folder (no config.json)")
    stages = [("base", layout.base)] if layout.base.root.exists() else []
    stages += [(f"it{t}", layout.it(t)) for t in layout.iterations()]
    rows = [iteration_row(name, folder) for name, folder in stages]
    return {"config": _load(layout.config), "state": _load(layout.state), "machine": _load(layout.machine), "iterations": rows}


def iteration_row(name: str, f: StageFolder) -> dict[str, Any]:
    """What the stages of one iteration (or `base`) wrote in `f`; None for a stage that has not."""
    return {
        "iteration": name,
        "eval": _load(f.eval_json),
        "collect": _load(f.collect_json),
        "buffer": _load(f.buffer_stats),
        "train": _load(f.train_metrics),
        "gap": _load(f.gap_json),
    }


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


ACCURACY_NOTE = ("Intervals are 95% Wilson score intervals (percent) of the proportion, from the counts. *fixed wrong*: share of wrong first attempts the student's own revision made right; *broke right*: share of right first attempts it made wrong; "
                 "*SI contribution*: share of right final answers that were wrong at first and fixed by the student's own revision "
                 "(TriPosT's \"SI. Contrib.\"; — where no final answer is right, or in an evaluation made before it was measured).")


def accuracy_table(data: dict[str, Any]) -> list[str]:
    """The Markdown table of each evaluated iteration's accuracy (report.md's, and an exported model card's)."""
    lines = ["| iteration | subset | n | first attempt | final (after self-improvement) | revised | fixed wrong | broke right | SI contribution |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["iterations"]:
        if not r["eval"]:
            continue
        for subset in ("seen", "unseen", "total"):
            m = r["eval"]["metrics"].get(subset)
            if not m:
                continue
            lines.append(f"| {r['iteration']} | {subset} | {m['n']} | {percent(m['first_accuracy'])}{_ci(m, 'first_accuracy')} | "
                         f"{percent(m['final_accuracy'])}{_ci(m, 'final_accuracy')} | {percent(m.get('revised_rate'))} | {percent(m.get('fix_rate'))} | {percent(m.get('break_rate'))} | "
                         f"{percent(m.get('si_contribution'))}{_ci(m, 'si_contribution')} |")
    return lines


def collection_table(data: dict[str, Any]) -> list[str]:
    """The Markdown table of what each iteration collected and kept (report.md's, and an exported model card's)."""
    lines = ["| iteration | usable | improvement | direct | critique | failed | teacher calls | cost (USD) | buffer: improvement / direct / gold |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
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
    return lines


def render_markdown(data: dict[str, Any], plots: list[str]) -> str:
    cfg = data["config"] or {}
    lines = ["# tripost run report", ""]
    st = cfg.get("student", {})
    lines += [f"Student `{st.get('spec')}`, teacher `{cfg.get('teacher', {}).get('spec')}`, tasks "
              f"{', '.join(cfg.get('tasks', {}).get('families', []))} (preset `{cfg.get('tasks', {}).get('preset')}`), seed {cfg.get('seed')}. "
              "Evaluation is on held-out test problems; the gold answer is only used for scoring.", ""]
    if data.get("machine"):
        # The machine the run started on, and the number format every stage used (machine.json).
        lines += [f"{line}  " for line in describe_card(data["machine"]).splitlines()] + [""]
    lines += ["## Accuracy", "", *accuracy_table(data), "", ACCURACY_NOTE, ""]
    lines += ["## Collection and buffer", "", *collection_table(data)]
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

            lines.append(f"| {it} | {c.get('verifier')} / {c.get('filter')} | {m['problems']} x {c.get('samples')} | {percent(m['acc_all']['mean'])} | "
                         f"{percent((m.get('acc_kept') or {}).get('mean'))} | {mci(m.get('gap'))} | {mci(m.get('relative_gap'))} | "
                         f"{m['excluded']['none_kept']['n']} / {m['excluded']['all_right']['n']} |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    stages = (data["state"] or {}).get("stages", {})
    if stages:
        lines += ["", "## Stages", "", "| stage | seconds |", "|---|---:|"] + [f"| {k} | {v.get('seconds', '—')} |" for k, v in stages.items()]
    return "\n".join(lines) + "\n"


def write_report(run: str | Path) -> Path:
    layout = RunLayout(run)
    data = collect_run(layout.root)
    plots = _plot(data, layout.plots)
    layout.report_json.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    layout.report_md.write_text(render_markdown(data, plots))
    return layout.report_md


# ---------------------------------------------------------------- trackers ---
# `train.report_to` gets the loop's own numbers too: the trainer sends each
# training's loss curve, and `tripost run` opens one tracker run of its own
# (one per invocation; a resumed run sends the finished iterations again, from
# their files, so every tracker run is the whole run) in which iteration t is
# step t. LOOP_TRACKERS take them; the others named get the loss curves only.
_SUBSETS = ("total", "seen", "unseen")


def iteration_metrics(row: dict[str, Any]) -> dict[str, float]:
    """One iteration's numbers as flat "group/name" scalars (`iteration_row`):
    accuracy with its 95% interval (`_low`, `_high`) and the self-improvement
    rates per eval subset, the teacher's calls and cost, what was collected
    and what the buffer kept (counts and shares), the training, and the
    generation-verification gap. An unpriced cost is unknown, not 0: left out."""
    out: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)

    ev = (row.get("eval") or {}).get("metrics") or {}
    for subset in _SUBSETS:
        m = ev.get(subset)
        if not m:
            continue
        put(f"eval/{subset}/n", m.get("n"))
        for key in ("first_accuracy", "final_accuracy", "si_contribution", "revised_rate", "fix_rate", "break_rate", "improvement"):
            put(f"eval/{subset}/{key}", m.get(key))
            ci = _interval(m, key) if m.get(key) is not None else None
            if ci and ci[0] is not None:
                put(f"eval/{subset}/{key}_low", ci[0])
                put(f"eval/{subset}/{key}_high", ci[1])
    c = row.get("collect") or {}
    put("teacher/calls", c.get("teacher_calls"))
    if not c.get("unpriced"):
        put("teacher/cost_usd", c.get("cost_usd"))
    put("collect/usable", c.get("usable"))
    for kind, n in (c.get("by_kind") or {}).items():
        put(f"collect/{kind}", n)
    kinds = (row.get("buffer") or {}).get("by_kind_after") or {}
    total = sum(v for v in kinds.values() if isinstance(v, (int, float)))
    if kinds:
        put("buffer/examples", total)
    for kind, n in kinds.items():
        put(f"buffer/{kind}", n)
        if total:
            put(f"buffer/{kind}_share", n / total)
    t = row.get("train") or {}
    for key in ("steps", "final_loss", "tokens", "examples", "seconds"):
        put(f"train/{key}", t.get(key))
    g = (row.get("gap") or {}).get("metrics") or {}
    for key in ("gap", "relative_gap", "acc_all", "acc_kept"):
        x = g.get(key) or {}
        put(f"gap/{key}", x.get("mean"))
        ci = x.get("ci")
        if ci and ci[0] is not None:
            put(f"gap/{key}_low", ci[0])
            put(f"gap/{key}_high", ci[1])
    return out


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    """A config as a tracker takes it: dotted keys, lists as JSON text."""
    return {k: v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v) for k, v in flatten(d).items()}


class _TensorBoard:
    def __init__(self, run: Path, config: dict[str, Any]) -> None:
        try:  # torch's writer needs the tensorboard package; transformers falls back the same way
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from tensorboardX import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(RunLayout(run).tracker_logs))
        self.writer.add_text("config", "```json\n" + json.dumps(config, indent=2, sort_keys=True) + "\n```", 0)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


# wandb, trackio and mlflow keep a current run per process, which the
# trainer's callbacks use too (and trackio's init replaces): the loop's run is
# opened for each iteration's numbers and closed again, resumed by its id, so
# that the trainer's runs in between never write into it, nor it into theirs.


class _Wandb:
    """WANDB_PROJECT as for the trainer (else "tripost"); WANDB_MODE=offline
    works offline. The iteration is the x-axis of every chart (the run's own
    step counter goes on across resumes)."""

    def __init__(self, run: Path, config: dict[str, Any]) -> None:
        import wandb

        self.wandb = wandb
        self.kwargs = {"project": os.environ.get("WANDB_PROJECT") or "tripost", "name": run.resolve().name,
                       "id": wandb.util.generate_id(), "job_type": "tripost-run"}
        self._open(config=_flat(config)).finish()  # a login or project problem shows now, before the first stage

    def _open(self, **extra: Any) -> Any:
        # reinit="create_new" (wandb >= 0.19.10): a run of its own beside the trainer's global one.
        return self.wandb.init(**self.kwargs, resume="allow", reinit="create_new", **extra)

    def log(self, metrics: dict[str, float], step: int) -> None:
        run = self._open()
        try:
            run.define_metric("iteration")
            run.define_metric("*", step_metric="iteration")
            run.log({**metrics, "iteration": step})
        finally:
            run.finish()

    def close(self) -> None:
        pass


class _Trackio:
    """Hugging Face's local-first tracker (wandb's API); TRACKIO_PROJECT, else "tripost"."""

    def __init__(self, run: Path, config: dict[str, Any]) -> None:
        import trackio

        self.trackio = trackio
        self.kwargs = {"project": os.environ.get("TRACKIO_PROJECT") or "tripost", "name": run.resolve().name}
        trackio.init(**self.kwargs, config=_flat(config))
        trackio.finish()

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.trackio.init(**self.kwargs, resume="must")
        try:
            self.trackio.log(metrics, step=step)
        finally:
            self.trackio.finish()

    def close(self) -> None:
        pass


class _MLflow:
    """Through MlflowClient, which leaves mlflow's active run (the trainer's) alone;
    MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME as for the trainer."""

    def __init__(self, run: Path, config: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        experiment = self.client.get_experiment_by_name(name) if name else None
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name) if name else "0"
        self.run_id = self.client.create_run(experiment_id, run_name=run.resolve().name).info.run_id
        params = [Param(k, str(v)[:500]) for k, v in _flat(config).items()]
        for i in range(0, len(params), 100):  # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def log(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


_SINKS = {"tensorboard": _TensorBoard, "wandb": _Wandb, "trackio": _Trackio, "mlflow": _MLflow}
LOOP_TRACKERS = tuple(_SINKS)  # the names of `train.report_to` that get the loop's numbers


class LoopTracker:
    """The loop's numbers to the trackers `train.report_to` names (see
    LOOP_TRACKERS): `log(name)` after each iteration (or `base`), `close()`
    at the end. A tracker that fails to start is a one-line error before the
    run's first stage; one that fails later is dropped with one line, so a
    long run does not die of its dashboard."""

    def __init__(self, run: str | Path, config: dict[str, Any], say: Any = print) -> None:
        self.run = Path(run)
        self.say = say
        names = report_targets(config["train"]["report_to"])
        self.sinks: dict[str, Any] = {}
        for name in names:
            if name not in LOOP_TRACKERS:
                say(f"note: train.report_to={name} receives the training loss only; the loop's numbers go to {', '.join(LOOP_TRACKERS)}")
                continue
            try:
                self.sinks[name] = _SINKS[name](self.run, config)
            except Exception as e:  # each tracker raises its own types (no login, no server); the user needs one line
                self.close()
                raise TripostError(f"train.report_to={name}: cannot start the tracker: {_first_line(e)}") from None

    def log(self, name: str) -> None:
        """Send iteration `name` ("base", "itT": step T; base at step 0 under base/)."""
        if not self.sinks:
            return
        row = iteration_row(name, StageFolder(self.run / name))
        metrics = iteration_metrics(row)
        if name == "base":
            metrics, step = {f"base/{k}": v for k, v in metrics.items()}, 0
        else:
            step = int(name[2:])
        if not metrics:
            return
        for tracker, sink in list(self.sinks.items()):
            try:
                sink.log(metrics, step)
            except Exception as e:  # noqa: BLE001 - see the class docstring
                self.say(f"warning: train.report_to={tracker}: logging failed ({_first_line(e)}); the loop goes on without it")
                self.sinks.pop(tracker)

    def close(self) -> None:
        for sink in self.sinks.values():
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - closing a tracker must not hide the run's own outcome
                pass
        self.sinks = {}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__

