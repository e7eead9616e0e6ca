"""Learning from demonstrations: TriPosT's non-interactive ablation.

TriPosT's claim is that a small model learns to self-improve better from
corrections of *its own* mistakes than from demonstrations of mistakes it did
not make (Yu et al. 2024 compare against fine-tuning on self-improvement
demonstrations made without the student in the loop). This
source makes that baseline from the same parts TriPosT's source uses, so the
two differ only in whose mistakes are corrected. No student attempt is
sampled (`collect` takes `student=None`). Whose attempts, then, depends on
the teacher:

- **an LLM teacher** (`openai:`, `anthropic:`, `hf:`; a `replay:` log that
  recorded such attempts) writes them, as in the authors' script
  (jasonyux/TriPosT runners/trainer/train_self_improve_from_demo.py): for
  each training problem, `samples_per_problem` attempts sampled at
  temperature 1.0 (`ATTEMPT_TEMPERATURE`, :256, :283, :310, :336; the
  feedback and fixes at the teacher's own temperature, the authors' 0.0,
  :262-269), each a call of its own: its sample number, drawn from (run
  seed, iteration, pass, sample), is in the request's cache key, so a
  rerun replays the same attempts and n samples are n calls. Then the
  teacher's feedback and fixes, as for a student's attempt
  (`edit_trajectory`). Its right attempts become non-improvement data, kind
  `direct` (the authors convert a trajectory without an update into a
  non-improvement example, :440-441), its wrong ones `improvement` when
  fixed, `failed` or `critique` as in the teacher source. The first turn's
  source is `teacher-attempt`, and `guide` holds the sample number and the
  temperature. The attempt prompt shows the question and a few gold
  rationales, not the gold answer (tripost.teachers.templates,
  `attempt_template`);
- **the scripted teacher** has no attempt call, so the task family makes
  them: `samples_per_problem` wrong attempts by the family's
  `wrong_attempt()`: the gold steps before a drawn step kept verbatim, that
  step made wrong, and every later step worked on from the wrong result, so
  the final answer is wrong too, as a student's slip carries through (the
  step, and the mistake's own choices, drawn by an RNG seeded from (run
  seed, iteration, pass, problem id, sample)). Over 500 drawn problems of
  each family, preset and subset, 98.6 to 100% of them end in a wrong final
  answer (a one-step corruption that left the later steps gold ended right
  in 50 to 87% of them). Each goes to `edit_trajectory` as if the student
  had written it (the scripted feedback names the mistaken step, and its
  fix keeps the steps before it and writes the gold continuation from
  there). Kind `improvement` when fixed, `failed` when not, `direct` when
  the teacher finds nothing wrong (the family's last resort, when no wrong
  run of a step ends wrong, e.g. a slip multiplied by 0, may end right).
  The first turn's source is `corrupted-gold`, `guide` the wrong step.
  Problems whose family has no corruptor (`qa`: no structured rationale) or
  no gold rationale are skipped and counted (`DemoResult.skipped`); an LLM
  teacher attempts them like any other.

Every record is logged with `source="demo"`.

Size: one trajectory per (problem, pass, sample), `samples_per_problem` x
problems x `max_passes` in all (defaults: 2 per problem, 1 pass): the number
of attempts one TriPosT iteration (the `teacher` source) samples from the
student on the same problems under the same settings (tripost.sources.template
`CollectionLoop`), so the two are matched in trajectories, not in what the
buffer keeps of them. The summary (`collect.json`) says so: `size` holds the
problems, samples, passes, the trajectories planned and in the log, and
`matched_to`, that iteration's attempt count. (The authors' script collects
passes over the problems, up to 3, until it has 120 examples,
`max_data_itr`/`max_data_length`, :99-106, :511: about one iteration's worth;
here exactly one iteration's attempts.) With family-made attempts nearly all
records are `improvement`; with an LLM teacher the share right at first is
the teacher's, as the share of right attempts is the student's in TriPosT.
The buffer's rules (tripost.buffer) then decide what is trained on, as for
TriPosT's own records.

Resumable like every source: one key per (problem, pass, sample, iteration),
and keys already in the log are skipped. `DemoLoop` runs on the collection
template (tripost/sources/template.py) with a loop of its own, since no
student is sampled: its units are trajectories, a chunk of them (four per
teacher thread) in the pool at a time, logged in order; the log, the tally,
the pool, the usable target, the unavailable stop (`TeacherUnavailable`)
and the summary are the template's.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.format import parse_rationale
from tripost.log import LogRecord
from tripost.sources.base import Job, SourceResult
from tripost.sources.editing import CollectConfig, TeacherUnavailable, edit_trajectory, trajectory_record
from tripost.sources.template import CollectionLoop, shortfall
from tripost.tasks import get_task
from tripost.tasks.base import Problem
from tripost.teachers.base import ATTEMPT_TEMPERATURE, ATTEMPT_TURN_SOURCE, AttemptingTeacher, Teacher, TeacherCall, attempting
from tripost.student.base import StudentLike

# The turn source of the family-made wrong attempt: not the student's, so a
# reader of the log never takes it for a student attempt (the name predates
# attempts whose mistake carries on to the answer; kept for existing logs).
CORRUPTED = "corrupted-gold"
NO_CORRUPTOR = "no corruptor"
NO_RATIONALE = "no gold rationale"
# Who wrote the attempts (`DemoResult.attempts_by`).
BY_TEACHER = "teacher"
BY_FAMILY = "family"


@dataclass(frozen=True)
class DemoSize:
    """How much the demo collected, and what that is matched to: one TriPosT
    iteration on the same problems samples `samples_per_problem` attempts
    per problem per pass (`matched_to`), and the demo plans one trajectory
    for each of them on the problems it does not skip (`planned`). `in_log`:
    the trajectories of this iteration in the log at the end (resumed ones
    included); fewer than `planned` when a target stopped it early or the
    teacher could not be reached for some."""

    problems: int
    problems_skipped: int
    samples_per_problem: int
    passes: int
    planned: int
    in_log: int
    matched_to: int
    matched_to_what: str = "attempts of one TriPosT iteration (teacher source) on the same problems: samples_per_problem x problems x passes"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DemoResult(SourceResult):
    """The common summary, plus who wrote the attempts (`attempts_by`:
    `teacher`, sampled at `attempt_temperature`, or `family`), the size and
    what it is matched to (`size`, a `DemoSize`), and the problems left out
    and why (`no corruptor`: the family cannot make a wrong attempt, e.g. qa;
    `no gold rationale`; family-made attempts only)."""

    attempts_by: str = BY_FAMILY
    attempt_temperature: float | None = None
    size: dict[str, Any] = field(default_factory=dict)
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


def attempt_sample(seed: int, iteration: int, pass_index: int, sample: int) -> int:
    """The sample number of a teacher attempt: distinct for each (run seed,
    iteration, pass, sample), so each is a call (and a cache entry) of its own,
    and fixed by them, so a rerun asks (and the cache answers) the same."""
    digest = hashlib.sha256(f"demo-attempt|{seed}|{iteration}|{pass_index}|{sample}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


class DemoLoop(CollectionLoop):
    """The demo source on the collection template (tripost.sources.template)
    with a loop of its own (`loop`): its units are trajectories, not batches
    of sampled problems, a chunk of them at a time in the pool (bounded by
    `teacher_concurrency`), logged in order before the next chunk. The log,
    the tally, the bar, the pool and the summary are the template's."""

    result: DemoResult  # the summary this source fills
    name = "demo"
    unit = "trajectory"

    def __init__(self, problems: Sequence[Problem], teacher: Teacher, log_path: str | Path, cfg: CollectConfig,
                 student_info: dict[str, Any] | None, progress: bool, on_record: Callable[[LogRecord], None] | None) -> None:
        self.attempter = attempting(teacher)
        by_teacher = self.attempter is not None
        result = DemoResult(log_path=str(log_path), attempts_by=BY_TEACHER if by_teacher else BY_FAMILY,
                            attempt_temperature=ATTEMPT_TEMPERATURE if by_teacher else None)
        super().__init__(problems, log_path, result, iteration=cfg.iteration, seed=cfg.seed, samples=cfg.samples_per_problem,
                         passes=cfg.max_passes, min_usable=cfg.min_usable, target=cfg.target_usable, ledger=getattr(teacher, "ledger", None),
                         progress=progress, on_record=on_record)
        self.teacher, self.cfg, self.student_info = teacher, cfg, dict(student_info or {})
        self.workers = cfg.teacher_concurrency
        self.skipped: dict[str, str] = {}  # problem id -> why
        if self.attempter is None:
            # Family-made attempts need a family that can make a wrong one and the gold rationale to make it from.
            for p in problems:
                if not get_task(p.family).scripted:
                    self.skipped[p.id] = NO_CORRUPTOR
                elif not p.rationale.strip():
                    self.skipped[p.id] = NO_RATIONALE
        self.units = [(p, k, s) for k in range(cfg.max_passes) for p in problems if p.id not in self.skipped
                      for s in range(cfg.samples_per_problem)]

    def progress_total(self) -> int:
        return len(self.units)

    def record(self, p: Problem, key: str, s: int, turns: list[dict[str, Any]], kind: str, stop: str, calls: list[TeacherCall],
               guide: dict[str, Any]) -> LogRecord:
        return trajectory_record(p, key, s, turns, kind, stop, [c.to_dict() for c in calls], self.cfg, self.student_info, source="demo",
                                 guide=guide)

    def fix_corrupted(self, p: Problem, key: str, s: int, step: int, text: str) -> LogRecord:
        turns, kind, stop, calls = edit_trajectory(p, text, self.teacher, self.cfg.max_edits)
        if turns:
            turns[0] = {**turns[0], "source": CORRUPTED}
        return self.record(p, key, s, turns, kind, stop, calls, {"corrupted_step": step})

    def fix_attempted(self, p: Problem, key: str, k: int, s: int, who: AttemptingTeacher) -> LogRecord:
        draw = attempt_sample(self.cfg.seed, self.cfg.iteration, k, s)
        guide = {"attempt_sample": draw, "temperature": ATTEMPT_TEMPERATURE}
        try:
            reply = who.attempt(p, sample=draw, temperature=ATTEMPT_TEMPERATURE)
        except TripostError as e:  # a configuration that cannot work (a refused request, a replay log without it): one line
            raise TripostError(f"demo: the teacher {getattr(self.teacher, 'name', 'teacher')} could not write an attempt at "
                               f"temperature {ATTEMPT_TEMPERATURE:g} for problem {p.id}: {e}") from None
        if reply.rationale is None:
            return self.record(p, key, s, [], "failed", f"teacher attempt rejected: {reply.rejected}", list(reply.calls), guide)
        turns, kind, stop, calls = edit_trajectory(p, reply.rationale, self.teacher, self.cfg.max_edits)
        if turns:
            turns[0] = {**turns[0], "source": ATTEMPT_TURN_SOURCE}
        return self.record(p, key, s, turns, kind, stop, [*reply.calls, *calls], guide)

    def loop(self) -> None:
        # A chunk of trajectories goes to the teacher at once (bounded by
        # `teacher_concurrency`) and is logged in order before the next one.
        cfg, pool = self.cfg, self.pool
        assert pool is not None
        chunk = cfg.teacher_concurrency * 4
        for start in range(0, len(self.units), chunk):
            if self.stop():
                break
            todo = []
            for p, k, s in self.units[start : start + chunk]:
                key = self.key(p, k, s)
                if p.id in self.skipped or self.writer.done(key):
                    continue  # found uncorruptible earlier in this chunk, or logged (counted when the log was opened)
                if self.attempter is not None:
                    todo.append(pool.submit(self.fix_attempted, p, key, k, s, self.attempter))
                    continue
                try:
                    step, text = corrupted_gold(p, seed=cfg.seed, iteration=cfg.iteration, pass_index=k, sample=s)
                except TripostError:  # e.g. a logical-deduction record without a parsed puzzle
                    self.skipped[p.id] = NO_CORRUPTOR
                    continue
                todo.append(pool.submit(self.fix_corrupted, p, key, s, step, text))
            self.bar.update(min(chunk, len(self.units) - start))
            for fut in todo:
                # An unavailable trajectory is left out of the log, so a rerun (the teacher back) does it.
                self.log(fut.result())
            if cfg.max_unavailable and self.tally.streak >= cfg.max_unavailable:
                raise TeacherUnavailable.stopped(self.teacher, self.tally.streak, self.writer, self.result)
            self.bar.set_postfix(usable=self.result.usable, calls=self.result.teacher_calls)

    def finish(self) -> None:
        cfg, result = self.cfg, self.result
        result.passes = cfg.max_passes
        result.skipped = dict(Counter(self.skipped.values()))
        used = len(self.problems) - len(self.skipped)
        result.size = DemoSize(
            problems=len(self.problems), problems_skipped=len(self.skipped), samples_per_problem=cfg.samples_per_problem,
            passes=cfg.max_passes, planned=used * cfg.samples_per_problem * cfg.max_passes, in_log=sum(self.tally.kinds.values()),
            matched_to=len(self.problems) * cfg.samples_per_problem * cfg.max_passes,
        ).to_dict()
        super().finish()

    def note(self) -> str | None:
        skipped = self.result.skipped
        why = f" ({', '.join(f'{n} {k}' for k, n in sorted(skipped.items()))} skipped)" if skipped else ""
        return shortfall(self.result.usable, minimum=self.min_usable, target=self.target, passes=self.result.passes, why=why)


def demo_collect(
    problems: Sequence[Problem],
    teacher: Teacher,
    log_path: str | Path,
    cfg: CollectConfig | None = None,
    student_info: dict[str, Any] | None = None,
    progress: bool = True,
    on_record: Callable[[LogRecord], None] | None = None,
) -> DemoResult:
    """`cfg.samples_per_problem` attempts at each problem (for `cfg.max_passes`
    passes), the teacher's own when it can attempt (sampled at
    `ATTEMPT_TEMPERATURE`), else the family's wrong ones from the gold
    rationale, and the teacher's correction of each, logged (`DemoLoop`)."""
    return DemoLoop(problems, teacher, log_path, cfg or CollectConfig(), student_info, progress, on_record).run()


@dataclass
class DemoSource:
    """Learning from demonstrations as a registered source: the LLM teacher's
    own attempts at temperature 1.0 (or, with the scripted teacher, the
    family's wrong attempts, a mistake carried to a wrong answer), corrected
    by the teacher, no student attempt (`demo_collect`)."""

    config: CollectConfig
    name: str = "demo"
    needs_teacher: bool = True
    needs_student: bool = False  # no attempt is sampled: the run need not load the student

    @classmethod
    def from_settings(cls, s: Any, teacher_concurrency: int) -> "DemoSource":
        return cls(CollectConfig(samples_per_problem=s.samples_per_problem, max_edits=s.max_edits, max_passes=s.max_passes,
                                 target_usable=s.target_usable, batch_size=s.batch_size, max_unavailable=s.max_unavailable,
                                 teacher_concurrency=teacher_concurrency))

    def collect(self, job: Job, student: StudentLike | None = None, teacher: Teacher | None = None) -> DemoResult:
        if teacher is None:
            raise TripostError("the demo source needs a teacher")
        cfg = replace(self.config, iteration=job.iteration, seed=job.seed, config_hash=job.config_hash)
        return demo_collect(job.problems, teacher, job.log_path, cfg, student_info=job.student_info, progress=job.progress,
                            on_record=job.on_record)


__all__ = ["BY_FAMILY", "BY_TEACHER", "CORRUPTED", "DemoLoop", "DemoResult", "DemoSize", "DemoSource", "attempt_sample", "corrupted_gold", "demo_collect"]
