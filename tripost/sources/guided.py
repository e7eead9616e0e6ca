"""Guided sampling for the long tail of hard problems (Guided Self-Improvement).

Self-improvement that trains on the student's own correct samples
over-samples the problems it already solves and under-samples the rest; over
iterations the hard problems' share of the training data shrinks ("tail
narrowing", Ding et al. 2024, "Mitigating Tail Narrowing in LLM
Self-Improvement via Socratic-Guided Sampling", arXiv:2411.00750, NAACL 2025).
Guided Self-Improvement (GSI) spends extra samples only on the problems the
student keeps failing, and makes those samples likelier to be right by
showing the student a guidance signal:

    round 0      plain sampling: N samples per problem, the training prompt
    round r>=1   for every problem with fewer than `min_correct` correct
                 samples so far, N more samples with guidance (min_correct
                 <= N, so a problem round 0 solves often enough is never
                 guided: the guidance goes to the tail only):
      answer       the gold answer as a hint in the prompt (STaR's
                   "rationalization", Zelikman et al. 2022)
      rationale    the gold rationale as a reference to write one's own from
      state_reset  the student's answer starts with the first k steps of the
                   gold rationale and the student continues from there;
                   k = clamp(round(f * n), 1, max(1, n - 1)) of the gold's n
                   steps, f cycling over `fractions` (0.2, 0.4, 0.6, 0.8)
                   round by round; the trajectory is prefix + continuation
      interactive  the teacher's feedback on the problem's last wrong attempt
                   (and that attempt), then the student writes a full new
                   solution
      resample     no guidance: more plain rounds (the brute-force baseline
                   GSI is compared against)

Every sample is checked against the gold answer (`task.check_answer` on the
answer parsed from its first rationale). A right answer can come from a wrong
rationale — with the answer in the prompt a weak student often just states it
— so for families with a step checker (`task.scripted`) the record also
carries the checker's verdict, `turns[0]["error_step"]` (None: every step
right), the result counts step-checked trajectories and coverage separately,
and `check="steps"` makes the step check the filter (a sample is correct only
if its answer is right and no step is wrong). What is logged is what would be
trained on, and the guidance never is:

- `problem` is the original problem, so the buffer's prompt is the plain
  question (tripost.buffer uses `problem["question"]`);
- `turns` holds only the student's first rationale (for state reset: the gold
  prefix plus the student's continuation); anything the student wrote after a
  `Feedback:` line is dropped, since nothing checked it;
- the hint lives in `guide` ({"strategy", "round", "hint", "fraction", ...}),
  which the buffer never reads.

A guided sample that *mentions* its guidance ("as the hint says ...") would
teach the student to talk about a hint it will not have: a correct guided
sample whose generated text contains one of `leak_markers` (word match,
case-insensitive) is logged as `failed` with stop reason "mentions the
guidance". Text that merely *equals* the hint is not stripped: an answer hint
is the answer itself, which a correct rationale must state; a rationale that
copies the reference solution verbatim is a correct rationale (it is flagged
`guide["copied"]` and counted in `GuidedResult.copied`, so its share is
visible).

Records: plain rounds (and `resample` rounds) are teacher-free, `source`
"rejection", exactly like tripost.sources.rejection's: kind `direct` when right,
`failed` when wrong. Guided rounds are `source` "guided": `direct` or
`failed`. With `teacher_edits`, round 0's wrong samples instead go through
TriPosT's editing (`tripost.sources.teacher.edit_trajectory`, `source` "teacher"), so
one log holds TriPosT's improvements and the guided tail data; the editing is
sequential here (tripost.sources.teacher.collect is the concurrent path).

Resumable like every source: a record's key names problem, round, strategy,
sample and iteration; keys already in the log are skipped, and which problems
a round guides is recomputed from the log, so a resumed run makes the same
decisions. Round 0's keys do not name the strategy: runs of different
strategies over one log share their plain round.

The loop is its own, not the collection template's (tripost/sources/template.py):
which problems round r samples depends on every record of the rounds before
it, so the log's records are read round by round as the loop reaches them
(`account`), not counted up front. It shares the template's `Tally` (kinds,
stop reasons, this run's teacher calls and their cost), the batch seed rule
(`batch_seed`) and the progress bar.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.log import LogRecord, LogWriter, read_log
from tripost.settings import view
from tripost.sources.base import Job, SamplingSource, SourceResult, batch_seed, judge, progress_bar
from tripost.sources.guidance import (
    DEFAULT_FRACTIONS,
    DEFAULT_LEAK_MARKERS,
    NO_ATTEMPT,
    REJECTED_FEEDBACK,
    TEMPLATES,
    GuidedPrompt,
    PromptSampler,
    fill_template,
    first_wrong_step,
    guidable,
    guided_student_sampler,
    mentions_guidance,
    normalise,
    plain_instruction,
    reset_prefix,
)
from tripost.sources.settings import CHECKS, STRATEGIES, CollectSettings
from tripost.sources.editing import edit_trajectory, trajectory_record
from tripost.sources.template import Tally
from tripost.tasks import get_task
from tripost.tasks.base import Problem
from tripost.teachers.base import Teacher, TeacherCall
from tripost.student.base import StudentLike

@dataclass
class GuidedConfig:
    # Defaults: the [collect] keys these hold (tripost/sources/settings.py, `view`).
    strategy: str = view(CollectSettings, "guided_strategy")  # answer | rationale | state_reset | interactive | resample
    samples_per_round: int = view(CollectSettings, "samples_per_problem")  # N: samples per problem per round
    # A problem with fewer correct samples than this gets the next guided round (<= samples_per_round).
    min_correct: int = view(CollectSettings, "guided_min_correct")
    max_rounds: int = view(CollectSettings, "guided_rounds")  # guided rounds after the plain round 0
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS  # state reset: gold prefix shares, cycled over rounds
    # Most sampled sequences in all (round 0 included); 0 or None: no cap (read as None).
    budget: int | None = view(CollectSettings, "guided_budget")
    batch_size: int = view(CollectSettings, "batch_size")  # problems per sampler call (tripost.student.generate)
    leak_markers: tuple[str, ...] = DEFAULT_LEAK_MARKERS
    check: str = view(CollectSettings, "guided_check")  # answer: the final answer decides; steps: also no wrong step (scripted families)
    teacher_edits: bool = view(CollectSettings, "guided_teacher_edits")  # round 0's wrong samples go through TriPosT's editing
    max_edits: int = view(CollectSettings, "max_edits")
    iteration: int = 0
    seed: int = 0
    config_hash: str = ""

    def __post_init__(self) -> None:
        self.budget = self.budget or None  # the settings' 0 (TOML has no null) is no cap
        if self.strategy not in STRATEGIES:
            raise TripostError(f"unknown guided strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}")
        for name in ("samples_per_round", "min_correct", "batch_size"):
            if getattr(self, name) < 1:
                raise TripostError(f"guided: {name} must be at least 1")
        if self.min_correct > self.samples_per_round:
            # GSI guides only the tail (Ding et al. 2024): the plain round must
            # be able to lift an easy problem to min_correct, or every problem
            # is guided.
            raise TripostError(f"guided: samples_per_round ({self.samples_per_round}) is below min_correct ({self.min_correct}): "
                               "no problem could reach it in the plain round, so every problem would be guided")
        if self.max_rounds < 0 or self.max_edits < 0:
            raise TripostError("guided: max_rounds and max_edits must be >= 0")
        self.fractions = tuple(float(f) for f in self.fractions)
        if not self.fractions or any(not 0 < f < 1 for f in self.fractions):
            raise TripostError("guided: state reset fractions must be numbers in (0, 1)")
        if self.budget is not None and self.budget < self.samples_per_round:
            raise TripostError(f"guided: budget {self.budget} is below one problem's round ({self.samples_per_round} samples)")
        self.leak_markers = tuple(m for m in self.leak_markers if m.strip())
        if self.check not in CHECKS:
            raise TripostError(f"guided: check must be one of {', '.join(CHECKS)}, not {self.check!r}")


@dataclass
class GuidedResult(SourceResult):
    """What a guided collection did and what it bought (the common summary,
    tripost.sources.base, plus the fields below).

    usable: correct trajectories, the student's own + teacher improvements.
    coverage: share of problems with at least one correct trajectory of the
    student's own (plain or guided; teacher improvements do not count).
    difficulty: histograms by difficulty label of the problem pool, of the
    correct trajectories (`collected`, what the buffer is built from) and of
    the covered problems, after round 0 and at the end. tail: total variation
    distance between the pool's and the collected trajectories' difficulty
    distributions, 1/2 * sum_d |pool(d) - collected(d)| (0: the data is spread
    like the pool; 1: disjoint), None when nothing is collected.
    generation_calls: sampled sequences (one per record, resumed ones included).
    """

    strategy: str = "answer"
    problems: int = 0
    rounds: int = 0  # rounds run, round 0 included
    by_source: dict[str, int] = field(default_factory=dict)
    generation_calls: int = 0
    generation_calls_by_round: list[int] = field(default_factory=list)
    generated_chars: int = 0  # characters the student generated (a state reset's gold prefix excluded)
    coverage_round0: float = 0.0
    coverage_final: float = 0.0
    coverage_by_round: list[float] = field(default_factory=list)
    correct_round0: int = 0  # the student's correct trajectories
    correct_final: int = 0
    # Of those, the ones whose every step the family's step checker accepts,
    # and the coverage they give (None for families without a step checker).
    steps_ok_round0: int | None = None
    steps_ok_final: int | None = None
    coverage_steps_round0: float | None = None
    coverage_steps_final: float | None = None
    guided_problems: int = 0  # problems that got at least one guided round
    solved_by_guidance: int = 0  # no correct sample in round 0, at least one at the end
    unguidable: int = 0  # below min_correct, but the strategy has nothing to show (no gold rationale ...)
    leaked: int = 0  # correct guided samples dropped for mentioning their guidance
    copied: int = 0  # correct rationale-guided samples that equal the gold rationale
    teacher_improvements: int = 0
    difficulty: dict[str, dict[str, int]] = field(default_factory=dict)
    tail: dict[str, float | None] = field(default_factory=dict)
    budget: int | None = None
    budget_hit: bool = False


# ------------------------------------------------------------------ pieces ---


def guided_key(problem: Problem, round_index: int, sample_index: int, iteration: int, strategy: str) -> str:
    """Round 0 is plain sampling whatever the strategy, so its key does not name one."""
    tag = "" if round_index == 0 else f"-{strategy}"
    return f"{problem.id}#g{round_index}{tag}s{sample_index}@it{iteration}"


def key_round(key: str) -> int | None:
    """The round a guided_key names (0: the plain round); None for a key of another source."""
    m = re.search(r"#g(\d+)(?:-[a-z_]+)?s\d+@it\d+$", key)
    return int(m.group(1)) if m else None


def round_seed(seed: int, iteration: int, round_index: int, problem_ids: Sequence[str]) -> int:
    """The seed of one sampler call over a round's batch: `problem_ids` are the
    whole batch's, not only those still to do (tripost.sources.base.batch_seed
    says why)."""
    return batch_seed(problem_ids, "guided", seed, iteration, round_index)


def _steps_ok(rec: LogRecord) -> bool | None:
    t = rec.turns[0] if rec.turns else {}
    return None if "error_step" not in t else t["error_step"] is None


def tv_distance(p: dict[str, int], q: dict[str, int]) -> float | None:
    """Total variation distance between two histograms (None if either is empty)."""
    sp, sq = sum(p.values()), sum(q.values())
    if not sp or not sq:
        return None
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0) / sp - q.get(k, 0) / sq) for k in keys)


@dataclass
class _State:
    """One problem's history, rebuilt from the log on resume."""

    index: int
    sampled0: bool = False
    correct: int = 0
    correct_by_round: dict[int, int] = field(default_factory=dict)
    steps_ok_by_round: dict[int, int] = field(default_factory=dict)
    guided_rounds: int = 0
    last_wrong: tuple[int, str] | None = None  # (round, rationale) of the latest round's first wrong sample
    last_any: str | None = None


def _student_correct(rec: LogRecord) -> bool:
    return rec.kind == "direct" and rec.source != "teacher"


def _wrong_attempt(rec: LogRecord) -> bool:
    return rec.stop_reason in ("wrong answer", "no answer", "wrong step") or rec.source == "teacher"


# -------------------------------------------------------------- collection ---


def guided_collect(
    problems: Sequence[Problem],
    sampler: PromptSampler,
    teacher: Teacher | None,
    log_path: str | Path,
    cfg: GuidedConfig | None = None,
    *,
    student_info: dict[str, Any] | None = None,
    progress: bool = True,
    on_record: Callable[[LogRecord], None] | None = None,
) -> GuidedResult:
    """Round 0 (plain) plus up to `cfg.max_rounds` guided rounds over the
    problems below `cfg.min_correct` correct samples, into the log at
    `log_path` (resuming whatever is already there). `teacher` is needed for
    `interactive` and `teacher_edits` only (None otherwise is fine)."""
    cfg = cfg or GuidedConfig()
    if not problems:
        raise TripostError("guided: no problems")
    if teacher is None and (cfg.strategy == "interactive" or cfg.teacher_edits):
        raise TripostError(f"guided: {'the interactive strategy' if cfg.strategy == 'interactive' else 'teacher_edits'} needs a teacher")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise TripostError("guided: problem ids must be distinct (they name the log records)")
    t0 = time.perf_counter()
    n = cfg.samples_per_round
    result = GuidedResult(log_path=str(log_path), strategy=cfg.strategy, problems=len(problems), budget=cfg.budget)
    writer = LogWriter(log_path)  # first: it repairs a torn last line
    existing = {r.key: r for r in read_log(log_path)}
    state = {p.id: _State(index=i) for i, p in enumerate(problems)}
    # Kinds, stop reasons, and this run's teacher calls and their cost: the tally every source keeps (tripost.sources.template).
    tally = Tally(ledger=getattr(teacher, "ledger", None))
    sources: Counter = Counter()
    collected0: Counter = Counter()
    collected: Counter = Counter()
    spent = 0

    def account(p: Problem, r: int, rec: LogRecord, generated: int) -> None:
        nonlocal spent
        st = state[p.id]
        spent += 1
        while len(result.generation_calls_by_round) <= r:
            result.generation_calls_by_round.append(0)
        result.generation_calls_by_round[r] += 1
        result.generated_chars += generated
        sources[rec.source] += 1
        if r == 0:
            st.sampled0 = True
        g = rec.guide or {}
        result.leaked += rec.stop_reason == "mentions the guidance"
        result.copied += bool(g.get("copied")) and rec.kind == "direct"
        if rec.source == "teacher" and rec.final_correct:
            result.teacher_improvements += 1
        if _student_correct(rec):
            st.correct += 1
            st.correct_by_round[r] = st.correct_by_round.get(r, 0) + 1
            collected[p.difficulty] += 1
            if r == 0:
                collected0[p.difficulty] += 1
            if _steps_ok(rec):
                st.steps_ok_by_round[r] = st.steps_ok_by_round.get(r, 0) + 1
        elif rec.turns:
            if _wrong_attempt(rec) and (st.last_wrong is None or st.last_wrong[0] < r):
                st.last_wrong = (r, rec.turns[0]["rationale"])
        if rec.turns:
            st.last_any = rec.turns[0]["rationale"]

    def build_prompt(p: Problem, r: int) -> tuple[GuidedPrompt, dict[str, Any] | None, list[TeacherCall]]:
        if r == 0 or cfg.strategy == "resample":
            return GuidedPrompt(p, plain_instruction(p)), None, []
        s = cfg.strategy
        guide: dict[str, Any] = {"strategy": s, "round": r, "hint": None, "fraction": None}
        calls: list[TeacherCall] = []
        if s == "answer":
            guide["hint"] = str(p.answer)
            return GuidedPrompt(p, fill_template(TEMPLATES[s], question=p.question, hint=guide["hint"])), guide, calls
        if s == "rationale":
            guide["hint"] = p.rationale.strip()
            return GuidedPrompt(p, fill_template(TEMPLATES[s], question=p.question, hint=guide["hint"])), guide, calls
        if s == "state_reset":
            f = cfg.fractions[(r - 1) % len(cfg.fractions)]
            prefix, k = reset_prefix(p.rationale, f)
            guide.update(fraction=f, kept_steps=k, prefix_chars=len(prefix))
            return GuidedPrompt(p, plain_instruction(p), prefix), guide, calls
        # interactive: the teacher's feedback on the latest wrong attempt.
        st = state[p.id]
        attempt = st.last_wrong[1] if st.last_wrong else (st.last_any or "")
        assert teacher is not None
        reply = teacher.feedback(p, attempt)
        calls = list(reply.calls)
        hint = reply.text.strip() if reply.feedback is not None and reply.text.strip() else REJECTED_FEEDBACK
        guide.update(hint=hint, attempt=attempt)
        instruction = fill_template(TEMPLATES[s], question=p.question, hint=hint, attempt=attempt.strip() or NO_ATTEMPT)
        return GuidedPrompt(p, instruction), guide, calls

    def make_record(p: Problem, r: int, s: int, key: str, prompt: GuidedPrompt, guide: dict[str, Any] | None,
                    text: str, calls: list[TeacherCall]) -> LogRecord:
        rationale, answer, right = judge(p, prompt.prefix + text)
        source = "rejection" if guide is None else "guided"
        kind, stop = ("direct", "correct") if right else ("failed", "no answer" if answer is None else "wrong answer")
        turns: list[dict[str, Any]] = [{"rationale": rationale, "feedback": None, "source": "student", "answer": answer}]
        if get_task(p.family).scripted:
            try:
                turns[0]["error_step"] = first_wrong_step(p, rationale)
            except TripostError:  # a problem the checker cannot read (an external record): no verdict
                pass
        if "error_step" in turns[0]:
            if right and cfg.check == "steps" and turns[0]["error_step"] is not None:
                kind, stop = "failed", "wrong step"
        teacher_calls = [c.to_dict() for c in calls]
        if guide is not None:
            guide = dict(guide)
            own = rationale[len(prompt.prefix):] if rationale.startswith(prompt.prefix) else rationale
            marker = mentions_guidance(own, cfg.leak_markers)
            if kind == "direct" and marker is not None:
                kind, stop = "failed", "mentions the guidance"
                guide["marker"] = marker
            if guide["strategy"] == "rationale":
                guide["copied"] = normalise(rationale) == normalise(p.rationale)
        elif r == 0 and kind == "failed" and cfg.teacher_edits:
            assert teacher is not None
            turns, kind, stop, edit_calls = edit_trajectory(p, text, teacher, cfg.max_edits)
            source = "teacher"
            teacher_calls += [c.to_dict() for c in edit_calls]
        return trajectory_record(p, key, s, turns, kind, stop, teacher_calls, cfg, student_info, source=source, guide=guide)

    bar = progress_bar(f"guided {cfg.strategy} it{cfg.iteration}", cfg.max_rounds + 1, progress, unit="round")
    try:
        for r in range(cfg.max_rounds + 1):
            if r == 0:
                todo = list(problems)
            else:
                below = [p for p in problems if state[p.id].sampled0 and state[p.id].correct < cfg.min_correct]
                todo = [p for p in below if guidable(p, cfg.strategy)]
                if r == 1:
                    result.unguidable = len(below) - len(todo)
            if cfg.budget is not None:
                room = max(0, (cfg.budget - spent) // n)
                if room < len(todo):
                    # The budget goes to the problems with the fewest correct samples first.
                    keep = sorted(range(len(todo)), key=lambda i: (state[todo[i].id].correct, i))[:room]
                    todo = [todo[i] for i in sorted(keep)]
                    result.budget_hit = True
            if not todo:
                break
            result.rounds = r + 1
            for start in range(0, len(todo), cfg.batch_size):
                batch = todo[start : start + cfg.batch_size]
                keys = {p.id: [guided_key(p, r, s, cfg.iteration, cfg.strategy) for s in range(n)] for p in batch}
                missing = [p for p in batch if not all(k in existing for k in keys[p.id])]
                built: dict[str, tuple[GuidedPrompt, dict[str, Any] | None, list[TeacherCall]]] = {}
                texts: dict[str, list[str]] = {}
                if missing:
                    # The whole batch, even when a killed run logged part of
                    # it: the same call gives the same samples (round_seed). A
                    # logged problem's prompt is rebuilt from the same state,
                    # and its teacher calls (interactive) are not booked again.
                    built = {p.id: build_prompt(p, r) for p in batch}
                    rows = sampler([built[p.id][0] for p in batch], n, round_seed(cfg.seed, cfg.iteration, r, [p.id for p in batch]))
                    if len(rows) != len(batch) or any(len(row) != n for row in rows):
                        raise TripostError(f"guided: the sampler returned {[len(x) for x in rows]} samples for {len(batch)} prompts; expected {n} each")
                    texts = {p.id: row for p, row in zip(batch, rows)}
                for p in batch:
                    if r > 0:
                        state[p.id].guided_rounds += 1
                    calls_left = list(built[p.id][2]) if p.id in built else []
                    for s, key in enumerate(keys[p.id]):
                        rec = existing.get(key)
                        if rec is not None:
                            tally.existing(rec, result)
                            prefix = (rec.guide or {}).get("prefix_chars") or 0
                        else:
                            prompt, guide, _ = built[p.id]
                            rec = make_record(p, r, s, key, prompt, guide, texts[p.id][s], calls_left)
                            calls_left = []  # a problem-round's teacher calls are booked once
                            writer.write(rec)
                            existing[key] = rec
                            tally.add(rec, result)
                            if on_record:
                                on_record(rec)
                            prefix = len(prompt.prefix)
                        generated = max(0, len(rec.turns[0]["rationale"]) - prefix) if rec.turns else 0
                        account(p, r, rec, generated)
            covered = sum(st.correct > 0 for st in state.values())
            result.coverage_by_round.append(covered / len(problems))
            bar.update(1)
            bar.set_postfix(coverage=f"{covered}/{len(problems)}", calls=spent)
    finally:
        writer.close()
        bar.close()

    result.generation_calls = spent
    tally.close(result)
    result.by_source = dict(sources)
    result.correct_final = sum(collected.values())
    result.correct_round0 = sum(collected0.values())
    result.usable = result.correct_final + result.teacher_improvements
    result.coverage_round0 = result.coverage_by_round[0] if result.coverage_by_round else 0.0
    result.coverage_final = result.coverage_by_round[-1] if result.coverage_by_round else 0.0
    result.guided_problems = sum(st.guided_rounds > 0 for st in state.values())
    result.solved_by_guidance = sum(st.correct_by_round.get(0, 0) == 0 and st.correct > 0 for st in state.values())
    checked = [state[p.id] for p in problems if get_task(p.family).scripted]
    if checked:
        result.steps_ok_round0 = sum(st.steps_ok_by_round.get(0, 0) for st in checked)
        result.steps_ok_final = sum(sum(st.steps_ok_by_round.values()) for st in checked)
        result.coverage_steps_round0 = sum(st.steps_ok_by_round.get(0, 0) > 0 for st in checked) / len(checked)
        result.coverage_steps_final = sum(sum(st.steps_ok_by_round.values()) > 0 for st in checked) / len(checked)
    pool = Counter(p.difficulty for p in problems)
    result.difficulty = {
        "pool": dict(pool),
        "collected_round0": dict(collected0),
        "collected": dict(collected),
        "covered_round0": dict(Counter(p.difficulty for p in problems if state[p.id].correct_by_round.get(0, 0) > 0)),
        "covered": dict(Counter(p.difficulty for p in problems if state[p.id].correct > 0)),
    }
    result.tail = {"tv_round0": tv_distance(pool, collected0), "tv_final": tv_distance(pool, collected)}
    if result.usable == 0:
        result.stopped_early = f"no correct trajectory after {result.rounds} round(s) and {spent} samples"
    result.seconds = time.perf_counter() - t0
    return result


class GuidedSource(SamplingSource):
    """Guided Self-Improvement as a registered source (`guided_collect`)."""

    name = "guided"

    @property
    def needs_teacher(self) -> bool:
        return self.config.strategy == "interactive" or self.config.teacher_edits

    @classmethod
    def from_settings(cls, s: Any, teacher_concurrency: int) -> "GuidedSource":
        return cls(GuidedConfig(strategy=s.guided_strategy, samples_per_round=s.samples_per_problem, min_correct=s.guided_min_correct,
                                max_rounds=s.guided_rounds, check=s.guided_check, budget=s.guided_budget,
                                teacher_edits=s.guided_teacher_edits, batch_size=s.batch_size, max_edits=s.max_edits),
                   s.sampling_params())

    def collect(self, job: Job, student: StudentLike, teacher: Teacher | None) -> SourceResult:
        return guided_collect(job.problems, guided_student_sampler(student, self.job_params(job)), teacher, job.log_path,
                              self.job_config(job), student_info=job.student_info, progress=job.progress, on_record=job.on_record)


__all__ = [
    "DEFAULT_FRACTIONS",
    "GuidedSource",
    "CHECKS",
    "DEFAULT_LEAK_MARKERS",
    "STRATEGIES",
    "GuidedConfig",
    "GuidedPrompt",
    "GuidedResult",
    "PromptSampler",
    "fill_template",
    "guidable",
    "guided_collect",
    "guided_key",
    "guided_student_sampler",
    "first_wrong_step",
    "judge",
    "mentions_guidance",
    "plain_instruction",
    "reset_prefix",
    "tv_distance",
]
