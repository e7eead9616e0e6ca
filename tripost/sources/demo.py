"""Learning from demonstrations: TriPosT's non-interactive ablation.

TriPosT's claim is that a small model learns to self-improve better from
corrections of *its own* mistakes than from demonstrations of mistakes it did
not make (Yu et al. 2024 compare against fine-tuning on self-improvement
demonstrations made without the student in the loop). This
source makes that baseline from the same parts TriPosT's source uses, so the
two differ only in whose mistakes are corrected:

- for each training problem with a gold rationale, `samples_per_problem`
  wrong attempts made by the family's `wrong_attempt()`: the gold steps
  before a drawn step kept verbatim, that step made wrong, and every later
  step worked on from the wrong result, so the final answer is wrong too, as
  a student's slip carries through (the step, and the mistake's own choices,
  drawn by an RNG seeded from (run seed, iteration, pass, problem id,
  sample)). Over 500 drawn problems of each family, preset and subset, 98.6
  to 100% of them end in a wrong final answer (a one-step corruption that
  left the later steps gold ended right in 50 to 87% of them);
- each attempt is handed to the teacher as if the student had written it:
  `edit_trajectory` (tripost.sources.teacher, TriPosT's own editing loop)
  asks for feedback and improvements until the teacher calls it correct
  (the scripted teacher's feedback names the mistaken step, and its fix keeps
  the steps before it and writes the gold continuation from there);
- the result is logged with `source="demo"`: kind `improvement` when the
  teacher fixed it, `failed` when it could not, `direct` when the teacher
  finds nothing wrong with it (the attempt is then trained as a right one,
  not as an improvement; the family's last resort, when no wrong run of a
  step ends wrong, e.g. a slip multiplied by 0, may end right).

No student attempt is sampled (`collect` takes `student=None`); an LLM
teacher (`openai:`, `anthropic:`, `hf:`) gets the same family-made attempts,
not attempts of its own: the authors' script (train_self_improve_from_demo.py)
has the LLM write the attempts at temperature 1.0, which the `Teacher`
interface cannot yet ask for (it has feedback and improve only). Problems
whose family has no corruptor (`qa`: no structured rationale) or no gold
rationale are skipped and counted (`DemoResult.skipped`).

Size: one record per (problem, pass, sample), as many trajectories as the
teacher source has attempts under the same settings (defaults: 2 per
problem, 1 pass), nearly all `improvement`, none `direct`. So the buffer
(tripost.buffer, improvement : direct : gold = 1.5 : 1 : 1) is bounded by the
N gold examples: 0.75 N improvements + N gold = 1.75 N examples. A TriPosT
iteration over the same N problems whose student is wrong on a share f of its
2 N attempts keeps 1.75 N (3 - 2 f) when f >= 0.64, else 4.67 N f: the same
size at f = 1 and f = 0.375, up to 3 N in between, less below.

Resumable like every source (tripost.sources.base): one key per (problem,
pass, sample, iteration), and keys already in the log are skipped.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tripost.errors import TripostError
from tripost.format import parse_rationale
from tripost.log import LogRecord
from tripost.sources.base import Job, SourceResult, record_key, resume_log
from tripost.log import CORRECT_KINDS
from tripost.sources.teacher import CollectConfig, TeacherTally, TeacherUnavailable, edit_trajectory, teacher_unavailable
from tripost.tasks import get_task
from tripost.tasks.base import Problem
from tripost.teachers.base import Teacher

# The turn source of the family-made wrong attempt: not the student's, so a
# reader of the log never takes it for a student attempt (the name predates
# attempts whose mistake carries on to the answer; kept for existing logs).
CORRUPTED = "corrupted-gold"
NO_CORRUPTOR = "no corruptor"
NO_RATIONALE = "no gold rationale"


@dataclass
class DemoResult(SourceResult):
    """The common summary, plus the problems left out and why (`no corruptor`:
    the family cannot corrupt a rationale, e.g. qa; `no gold rationale`)."""

    skipped: dict[str, int] = field(default_factory=dict)


def corrupted_gold(problem: Problem, *, seed: int, iteration: int, pass_index: int, sample: int) -> tuple[int, str]:
    """(the first wrong step, the family's wrong attempt from the gold
    rationale, `Task.wrong_attempt`: the steps before it gold, the mistake
    carried on to a wrong final answer): the step is drawn from 1..n+1
    (n + 1: the final response) by an RNG seeded from the run seed,
    iteration, pass, problem and sample, and the same RNG drives the family's
    choice of mistake, so a resumed run writes the same text. A family that
    cannot corrupt the problem raises `TripostError`."""
    task = get_task(problem.family)
    if not task.scripted:
        raise TripostError(f"{problem.family}: no corruptor")
    n = parse_rationale(problem.rationale).n_steps
    rng = random.Random(f"demo|{seed}|{iteration}|{pass_index}|{problem.id}|{sample}")
    step = rng.randint(1, n + 1)
    return step, task.wrong_attempt(problem, step, rng)


def demo_collect(
    problems: Sequence[Problem],
    teacher: Teacher,
    log_path: str | Path,
    cfg: CollectConfig | None = None,
    student_info: dict[str, Any] | None = None,
    progress: bool = True,
    on_record: Callable[[LogRecord], None] | None = None,
) -> DemoResult:
    """Make `cfg.samples_per_problem` wrong attempts from each problem's gold
    rationale (for `cfg.max_passes` passes) and log the teacher's correction
    of each."""
    cfg = cfg or CollectConfig()
    if not problems:
        raise TripostError("demo: no problems")
    t0 = time.perf_counter()
    result = DemoResult(log_path=str(log_path))
    writer, kinds = resume_log(log_path, cfg.iteration)
    result.usable = kinds["improvement"] + kinds["direct"]
    tally = TeacherTally(kinds, ledger=getattr(teacher, "ledger", None))
    skipped: dict[str, str] = {}  # problem id -> why
    for p in problems:
        if not get_task(p.family).scripted:
            skipped[p.id] = NO_CORRUPTOR
        elif not p.rationale.strip():
            skipped[p.id] = NO_RATIONALE
    units = [(p, k, s) for k in range(cfg.max_passes) for p in problems if p.id not in skipped for s in range(cfg.samples_per_problem)]
    streak = 0  # corrections in a row whose teacher could not be reached

    def finish(p: Problem, key: str, s: int, step: int, text: str) -> LogRecord:
        turns, kind, stop, calls = edit_trajectory(p, text, teacher, cfg.max_edits)
        if turns:
            turns[0] = {**turns[0], "source": CORRUPTED}
        return LogRecord(
            key=key, problem=p.to_dict(), kind=kind, turns=turns, final_correct=kind in CORRECT_KINDS, stop_reason=stop,
            sample_index=s, iteration=cfg.iteration, seed=cfg.seed, config_hash=cfg.config_hash,
            teacher_calls=[c.to_dict() for c in calls], student=dict(student_info or {}), source="demo",
            guide={"corrupted_step": step},
        )

    # A chunk of corrections goes to the teacher at once (bounded by
    # `teacher_concurrency`) and is logged in order before the next one.
    chunk = cfg.teacher_concurrency * 4
    bar = tqdm(total=len(units), desc=f"demo it{cfg.iteration}", unit="trajectory", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=cfg.teacher_concurrency, thread_name_prefix="teacher")
    try:
        for start in range(0, len(units), chunk):
            if cfg.target_usable is not None and result.usable >= cfg.target_usable:
                break
            todo = []
            for p, k, s in units[start : start + chunk]:
                key = record_key(p, k, s, cfg.iteration)
                if p.id in skipped:
                    continue  # found uncorruptible earlier in this chunk
                if writer.done(key):
                    result.records_skipped += 1
                    continue
                try:
                    step, text = corrupted_gold(p, seed=cfg.seed, iteration=cfg.iteration, pass_index=k, sample=s)
                except TripostError:  # e.g. a logical-deduction record without a parsed puzzle
                    skipped[p.id] = NO_CORRUPTOR
                    continue
                todo.append(pool.submit(finish, p, key, s, step, text))
            bar.update(min(chunk, len(units) - start))
            for fut in todo:
                rec = fut.result()
                if teacher_unavailable(rec):
                    # Left out of the log, so a rerun (the teacher back) does it.
                    result.unavailable += 1
                    streak += 1
                    continue
                streak = 0
                writer.write(rec)
                if on_record:
                    on_record(rec)
                tally.add(rec, result)
            if cfg.max_unavailable and streak >= cfg.max_unavailable:
                raise TeacherUnavailable(
                    f"the teacher {getattr(teacher, 'name', 'teacher')} did not answer for {streak} corrections in a row, so the demo "
                    f"collection stopped; {writer.n_records} trajectories are in {log_path} ({result.records_written} new). Check the "
                    "teacher's server and address, then rerun the same command to go on"
                )
            bar.set_postfix(usable=result.usable, calls=result.teacher_calls)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
        bar.close()

    result.passes = cfg.max_passes
    tally.close(result)
    result.skipped = dict(Counter(skipped.values()))
    result.seconds = time.perf_counter() - t0
    if cfg.target_usable is not None and result.usable < cfg.target_usable:
        result.stopped_early = f"only {result.usable} usable trajectories; target was {cfg.target_usable}"
    elif result.usable < cfg.min_usable:
        why = f" ({', '.join(f'{n} {k}' for k, n in sorted(result.skipped.items()))} skipped)" if result.skipped else ""
        result.stopped_early = f"only {result.usable} usable trajectories (minimum {cfg.min_usable}){why}"
    return result


@dataclass
class DemoSource:
    """Learning from demonstrations as a registered source: family-made wrong
    attempts (a mistake carried to a wrong answer) corrected by the teacher,
    no student attempt (`demo_collect`)."""

    config: CollectConfig
    name: str = "demo"
    needs_teacher: bool = True
    needs_student: bool = False  # no attempt is sampled: the run need not load the student

    @classmethod
    def from_settings(cls, s: Any, teacher_concurrency: int = CollectConfig.teacher_concurrency) -> "DemoSource":
        return cls(CollectConfig(samples_per_problem=s.samples_per_problem, max_edits=s.max_edits, max_passes=s.max_passes,
                                 target_usable=s.target_usable or None, batch_size=s.batch_size, max_unavailable=s.max_unavailable,
                                 teacher_concurrency=teacher_concurrency))

    def collect(self, job: Job, student: Any = None, teacher: Teacher | None = None) -> DemoResult:
        if teacher is None:
            raise TripostError("the demo source needs a teacher")
        cfg = replace(self.config, iteration=job.iteration, seed=job.seed, config_hash=job.config_hash)
        return demo_collect(job.problems, teacher, job.log_path, cfg, student_info=job.student_info, progress=job.progress,
                            on_record=job.on_record)


__all__ = ["CORRUPTED", "DemoResult", "DemoSource", "corrupted_gold", "demo_collect"]
