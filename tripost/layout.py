"""Every path of a run folder, named once.

    RUN/config.json              the resolved config (tripost.runconfig)
    RUN/machine.json             the machine card and the number format the run chose when it started
    RUN/state.json               stages finished, with their seconds
    RUN/base/eval/eval.json      the untrained student (student.eval_base)
    RUN/it0/train/               SFT on gold rationales: the student learns the format
    RUN/itT/collect/log.jsonl    trajectories collected with the iteration T-1 student
    RUN/itT/collect/collect.json what the collection did (the source's summary)
    RUN/itT/buffer/              the replay buffer (stats.json, dataset/)
    RUN/itT/train/               the trained student (skipped.json when there was nothing to train on)
    RUN/itT/eval/eval.json       test-time self-improvement on held-out test problems
    RUN/itT/gap/gap.json         the generation-verification gap (gap.enabled)
    RUN/report.md, report.json, plots/   tripost.report
    RUN/logs/                    the loop's numbers for train.report_to trackers
    RUN/teacher-batches.json     the provider batches sent (teacher.batch), so a rerun resumes them

The loop writes these, the report and `tripost export` read them, and the
benchmark scripts find a run's results through the same names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.json"
MACHINE = "machine.json"
STATE = "state.json"
SKIPPED = "skipped.json"  # in itT/train when there was nothing to train on
TRACKER_LOGS = "logs"  # the loop's tensorboard event files (each training's are in itT/train/logs)
BATCH_LOG = "teacher-batches.json"
_ITERATION = re.compile(r"it(\d+)")


@dataclass(frozen=True)
class StageFolder:
    """One evaluated student's folder: `base`, or iteration `itT`."""

    root: Path

    @property
    def collect(self) -> Path:
        return self.root / "collect"

    @property
    def log(self) -> Path:
        return self.root / "collect" / "log.jsonl"

    @property
    def collect_json(self) -> Path:
        return self.root / "collect" / "collect.json"

    @property
    def buffer(self) -> Path:
        return self.root / "buffer"

    @property
    def buffer_stats(self) -> Path:
        return self.root / "buffer" / "stats.json"

    @property
    def buffer_dataset(self) -> Path:
        return self.root / "buffer" / "dataset"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def train_skipped(self) -> Path:
        return self.root / "train" / SKIPPED

    @property
    def train_metrics(self) -> Path:
        return self.root / "train" / "train_metrics.json"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def eval_json(self) -> Path:
        return self.root / "eval" / "eval.json"

    @property
    def gap(self) -> Path:
        return self.root / "gap"

    @property
    def gap_json(self) -> Path:
        return self.root / "gap" / "gap.json"


@dataclass(frozen=True)
class RunLayout:
    """The paths of the run folder `root`."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def machine(self) -> Path:
        return self.root / MACHINE

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def tracker_logs(self) -> Path:
        return self.root / TRACKER_LOGS

    @property
    def batch_log(self) -> Path:
        return self.root / BATCH_LOG

    @property
    def base(self) -> StageFolder:
        return StageFolder(self.root / "base")

    def it(self, t: int) -> StageFolder:
        return StageFolder(self.root / f"it{t}")

    def iterations(self) -> list[int]:
        """The iterations with a folder here, in order."""
        return sorted(int(m.group(1)) for p in self.root.glob("it*") if (m := _ITERATION.fullmatch(p.name)) and p.is_dir())


__all__ = ["BATCH_LOG", "CONFIG", "MACHINE", "SKIPPED", "STATE", "TRACKER_LOGS", "RunLayout", "StageFolder"]
