"""The collection loop, written once; a source fills in the steps that differ.

Every source that samples the student collects the same way around a step of
its own (lm-evaluation-harness's `TemplateLM` has this shape: the base class
writes the loop, a backend fills hooks). `CollectionLoop.run`:

1. opens the log (`open`): a `LogWriter` (a torn last line repaired, the keys
   already there loaded) and the records already there that belong to this
   collection (their key is one of its records' keys), counted into the
   summary like new ones, so a resumed run reports the whole collection;
2. for each pass, for each batch of `batch_size` problems (`loop`): stops
   first if `stop()` says so (the teacher's usable target); names the
   records the batch owes, `key(problem, pass, index)` each; skips the batch
   when the log holds them all; else samples it *whole* (`sample`, seeded by
   `seed(problem ids, pass)`, a seed of the whole batch: a resumed batch
   draws what the uninterrupted run drew, tripost.sources.base `batch_seed`)
   and hands it to `take`;
3. `take` builds the batch's records (`make_records`) and logs those the log
   does not hold yet (`log`: written, given to `on_record`, counted by the
   `Tally` and by the source's own `count`); `end_pass` after each pass;
4. closes the log and the bar (`close`) and fills the summary (`finish`):
   `by_kind`, `stop_reasons`, `usable`, `seconds`, and `stopped_early` when
   the usable records fall short of `min_usable` or the `target` (`shortfall`).

What a source fills in (tripost/sources/rejection.py is the shortest):

    make_records   the batch's records from what was drawn (required)
    key, seed      its record names and its batch-seed rule (default: `record_key`
                   and `sample_seed`, the rejection and teacher sources' rules)
    sample         what a batch draws (default: `samples` texts per problem from
                   the `sampler` attribute, an `AttemptSampler`)
    batches        which problems share a sampler call (default: `batch_size` in a row)
    count          the source's own summary fields, per record (`written` says
                   whether this run wrote it or found it in the log)
    stop, postfix  when to stop early (default: once `target` usable records
                   exist); the progress bar's numbers

Work that overlaps sampling (the async hook): a source with `workers` > 0
gets a thread pool (`self.pool`); its `take` may hand the batch to the pool
and return, so the loop samples the next batch while the pool works, and its
`end_pass` waits for what is left. The teacher source runs its edits so
(tripost/sources/teacher.py). A source whose units are not batches of
sampled problems overrides `loop` and keeps the rest (the log, the tally,
the bar, the pool, the summary): the demo source (no student: its units are
trajectories). The guided source keeps a loop of its own altogether: which
problems a round samples depends on the rounds before it, record by record,
so it cannot count the log's records up front (tripost/sources/guided.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.log import LogRecord, LogWriter, read_log, usable
from tripost.sources.base import SourceResult, progress_bar, record_key, sample_seed
from tripost.sources.editing import teacher_unavailable
from tripost.tasks.base import Problem


@dataclass
class Tally:
    """What a collection counts of its records: kinds and stop reasons of all
    of them (those already in the log too: the summary describes the
    collection), and of the ones this run wrote, the teacher's calls, their
    cost, its rejections and the models that answered without a price
    (their cost is unknown: "unpriced", not $0). Teacher-free records have no
    calls, so for them it counts kinds and reasons only."""

    ledger: Any = None  # an LLM teacher's usage ledger: it knows which models have a price
    kinds: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    rejections: Counter = field(default_factory=Counter)
    unpriced: set[str] = field(default_factory=set)
    streak: int = 0  # trajectories in a row whose teacher could not be reached (`log`)

    def existing(self, rec: LogRecord, result: SourceResult) -> None:
        """A record of the collection found in the log (a resumed run)."""
        result.records_skipped += 1
        self.kinds[rec.kind] += 1
        self.reasons[rec.stop_reason] += 1
        result.usable = usable(self.kinds)

    def add(self, rec: LogRecord, result: SourceResult) -> None:
        result.records_written += 1
        self.kinds[rec.kind] += 1
        self.reasons[rec.stop_reason] += 1
        result.teacher_calls += len(rec.teacher_calls)
        result.batched_calls += sum(1 for c in rec.teacher_calls if c.get("batch"))
        result.cost_usd += sum(c.get("cost_usd", 0.0) for c in rec.teacher_calls)
        for c in rec.teacher_calls:
            if c.get("rejected"):
                self.rejections[c["rejected"]] += 1
            # `usage` is empty for a cache hit and a failed request: nothing was billed.
            if self.ledger is not None and c.get("usage") and self.ledger.unpriced(c["backend"], c["model"]):
                self.unpriced.add(f"{c['backend']}:{c['model']}")
        result.usable = usable(self.kinds)
        result.unpriced = sorted(self.unpriced)

    def log(self, rec: LogRecord, result: SourceResult, writer: LogWriter, on_record: Callable[[LogRecord], None] | None = None) -> bool:
        """Write `rec` and count it (True), unless its teacher could not be
        reached (False): such a trajectory is left out of the log, so a rerun
        (the teacher back) does it, and counts toward `streak`, the
        unavailable trajectories in a row that `max_unavailable` bounds."""
        if teacher_unavailable(rec):
            result.unavailable += 1
            self.streak += 1
            return False
        self.streak = 0
        writer.write(rec)
        if on_record:
            on_record(rec)
        self.add(rec, result)  # keeps result.usable current
        return True

    def close(self, result: SourceResult) -> None:
        result.by_kind = dict(self.kinds)
        result.stop_reasons = dict(self.reasons)
        result.teacher_rejections = dict(self.rejections)
        result.unpriced = sorted(self.unpriced)


def shortfall(usable: int, *, what: str = "usable trajectories", minimum: int = 0, target: int | None = None, passes: int = 0,
              why: str = "") -> str | None:
    """The summary's `stopped_early`: why a collection has fewer usable records
    than asked (the `target`, or at least `minimum`), or None. `why` is what
    explains a shortfall below the minimum (the demo source's skipped problems)."""
    if target is not None and usable < target:
        return f"only {usable} {what} after {passes} pass(es); target was {target}"
    if usable < minimum:
        return f"only {usable} {what} (minimum {minimum}){why}"
    return None


@dataclass
class Batch:
    """One sampler call's worth of work: the whole batch (sampled whole even
    when a killed run logged part of it), the keys of the records it owes,
    `keys[i][j]` for problem i's record j, the ones the log did not hold when
    it was sampled (`todo`, as (i, j)), and what `sample` drew (None when the
    log held the batch in full: nothing was sampled)."""

    pass_index: int
    problems: list[Problem]
    keys: list[list[str]]
    seed: int
    todo: list[tuple[int, int]]
    drawn: Any = None

    def attempts(self) -> list[tuple[Problem, int, str, str]]:
        """The records still to log as (problem, index, key, sampled text), when `drawn` holds texts."""
        return [(self.problems[i], j, self.keys[i][j], self.drawn[i][j]) for i, j in self.todo]


class CollectionLoop:
    """The resumable collection loop (module docstring). A subclass sets the
    class attributes below and fills `make_records` (and whichever other
    hooks differ); `run()` collects and returns the summary."""

    name = "collect"  # in errors ("NAME: no problems")
    label = ""  # the progress bar's name, "LABEL itT" (default: `name`)
    unit = "problem"  # what the bar counts
    what = "usable trajectories"  # what `stopped_early` says there are too few of
    workers = 0  # threads of the pool `take` may hand work to (0: no pool)
    sampler: Callable[[Sequence[Problem], int, int], list[list[str]]]  # the default `sample`'s (an AttemptSampler)

    def __init__(self, problems: Sequence[Problem], log_path: str | Path, result: SourceResult, *, iteration: int = 0, seed: int = 0,
                 samples: int = 1, passes: int = 1, batch_size: int = 1, min_usable: int = 0, target: int | None = None,
                 ledger: Any = None, progress: bool = True, on_record: Callable[[LogRecord], None] | None = None) -> None:
        if not problems:
            raise TripostError(f"{self.name}: no problems")
        self.problems = list(problems)
        self.log_path = log_path
        self.result = result
        self.iteration, self.run_seed = iteration, seed
        self.samples, self.passes, self.batch_size = samples, passes, batch_size  # samples: records per problem and pass
        self.min_usable, self.target = min_usable, target
        self.tally = Tally(ledger=ledger)
        self.progress, self.on_record = progress, on_record
        self.pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------- hooks ---

    def key(self, problem: Problem, pass_index: int, index: int) -> str:
        return record_key(problem, pass_index, index, self.iteration)

    def seed(self, problem_ids: Sequence[str], pass_index: int) -> int:
        return sample_seed(self.run_seed, self.iteration, pass_index, problem_ids)

    def batches(self, pass_index: int) -> Iterable[list[Problem]]:
        return (self.problems[i : i + self.batch_size] for i in range(0, len(self.problems), self.batch_size))

    def sample(self, batch: Batch) -> Any:
        return self.sampler(batch.problems, self.samples, batch.seed)

    def make_records(self, batch: Batch) -> list[LogRecord]:
        """The batch's records (those the log holds already may be among them: they are not written again)."""
        raise NotImplementedError

    def count(self, rec: LogRecord, written: bool) -> None:
        """A source's own summary fields, for each record of the collection."""

    def stop(self) -> bool:
        # Usable records already in the log count toward the target.
        return self.target is not None and self.result.usable >= self.target

    def postfix(self) -> dict[str, Any]:
        return {"usable": self.result.usable}

    def progress_total(self) -> int:
        return len(self.problems) * self.passes

    # --------------------------------------------------------------- loop ---

    def run(self) -> SourceResult:
        t0 = time.perf_counter()
        self.open()
        try:
            self.loop()
        finally:
            self.close()
        self.finish()
        self.result.seconds = time.perf_counter() - t0
        return self.result

    def open(self) -> None:
        self.writer = LogWriter(self.log_path)  # first: it repairs a torn last line
        mine = {self.key(p, k, j) for k in range(self.passes) for p in self.problems for j in range(self.samples)}
        for rec in read_log(self.log_path):
            if rec.key in mine:
                self.tally.existing(rec, self.result)
                self.count(rec, written=False)
        self.bar = progress_bar(f"{self.label or self.name} it{self.iteration}", self.progress_total(), self.progress, unit=self.unit)
        if self.workers:
            self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="teacher")

    def loop(self) -> None:
        for k in range(self.passes):
            batches = list(self.batches(k))
            self.bar.update(len(self.problems) - sum(map(len, batches)))  # problems this pass leaves out (done before)
            for problems in batches:
                if self.stop():
                    return  # (a batch still with the pool is dropped: `close` cancels it)
                self.result.passes = k + 1
                keys = [[self.key(p, k, j) for j in range(self.samples)] for p in problems]
                todo = [(i, j) for i, row in enumerate(keys) for j, key in enumerate(row) if not self.writer.done(key)]
                batch = Batch(k, problems, keys, self.seed([p.id for p in problems], k), todo)
                if todo:
                    batch.drawn = self.sample(batch)
                self.take(batch)
            self.end_pass()

    def take(self, batch: Batch) -> None:
        """Log the batch's records (default: at once; the async hook: a source may hand it to the pool)."""
        if batch.todo:
            for rec in self.make_records(batch):
                if not self.writer.done(rec.key):
                    self.log(rec)
        self.bar.update(len(batch.problems))
        self.bar.set_postfix(**self.postfix())

    def end_pass(self) -> None:
        """After each pass (a source that overlaps its work waits for it here)."""

    def log(self, rec: LogRecord) -> bool:
        """Write and count one record (False: left out, its teacher unreachable; `Tally.log`)."""
        if not self.tally.log(rec, self.result, self.writer, self.on_record):
            return False
        self.count(rec, written=True)
        return True

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.writer.close()
        self.bar.close()

    def finish(self) -> None:
        self.tally.close(self.result)
        self.result.stopped_early = self.note()

    def note(self) -> str | None:
        return shortfall(self.result.usable, what=self.what, minimum=self.min_usable, target=self.target, passes=self.result.passes)


__all__ = ["Batch", "CollectionLoop", "Tally", "shortfall"]
