"""The replay buffer: interaction-log records -> a balanced training set.

Steps, in order (TriPosT, Yu et al. 2024, Section 2.2 "Learning", as the
authors ran it: jasonyux/TriPosT at c618e98,
runners/trainer/train_self_improve_rl_noeval.py; lines cited below):

1. retention: which iterations' records stay. By default the newest
   iteration's only (`keep_last=1`): the authors train each iteration on the
   data it collected (`collect_data` writes train_itr{itr}.jsonl afresh,
   :627-700); older iterations can be kept (`keep_last`, `decay`);
2. examples: an `improvement` record becomes, with `turns="single"` (the
   authors' `--convert_to_turns true`, in every published command,
   :567-611), one example per edit, (question, attempt i, feedback i, attempt
   i+1), plus (question, last attempt, its closing feedback) as a
   non-improvement example; with `turns="whole"` its whole trajectory
   (attempt, feedback, updated answer, ..., "The final response is also
   correct.") as one example. Both kinds built from an improvement train
   their feedback-and-update part at TriPosT's weight (1.5,
   `weighted_feedback`; the authors' text_att_start_text "\nFeedback:",
   :553-557, and utils/dataset.py:264-276); a `direct` record is its
   attempt and the closing feedback, and each distinct problem also gives a
   `gold` example from its gold rationale and the closing feedback, both at
   weight 1 throughout (text_att_start_text "Q:", :553-555, :670-683);
   a `critique` record (a wrong answer and the teacher's critique, whose fix
   made no progress: the authors keep (question, attempt, first feedback),
   models/rl/multistep_arithmetic.py:207-217) is a non-improvement example
   with its feedback at 1.5; `failed` records are
   dropped (final answer not correct), except that an unchecked `direct`
   record (`checked` false: e.g. SFT-sharpening's pick,
   tripost/sources/sharpen.py) is kept whether or not it is right: its source
   chose it without checking it (Huang et al. 2024), so correctness is not its
   filter. For the same reason an unchecked example is the attempt alone
   (`attempt_text`), whatever feedback its record carries: the closing "also
   correct" is a verdict, written only where a check stands behind it (the
   gold answer, the teacher), and it would be trained at TriPosT's 1.5
   feedback weight (tripost.train);
3. filters: final answer correct, length limit, dedupe on normalised text
   (`dedupe`; a run keeps a label-free source's repeats: RunConfig.dedupe);
4. rebalancing (`rebalance`), the authors' rule at ratio improvement :
   non-improvement : gold = 1.5 : 1 : 1: every improvement example is kept,
   non-improvement examples (`direct`) are drawn up to ceil(improvements /
   1.5) (:612-625; all of them when there is no improvement, as the authors'
   unbalanced ablation and the teacher-free sources need), and as many gold
   examples as non-improvement ones (:684-686);
5. difficulty-aware sampling: within a kind, examples are drawn with weight
   1 / (size of their difficulty bucket) (`inverse`) or with each bucket
   capped (`cap`), so easy problems do not drown the hard ones — the tail
   narrowing that Guided Self-Improvement describes (Ding et al. 2024).

The result is a `datasets.Dataset` with columns prompt, completion, kind,
family, difficulty, subset, problem_id, iteration, n_edits, weight (the
record's own `weight`, times the difficulty weight of step 5) and
weighted_feedback (whether `train.feedback_weight` applies: tripost.train).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.fileio import atomic_directory, atomic_write_json, atomic_write_text
from tripost.format import ALL_CORRECT_TAIL, Feedback, Trajectory, Turn, parse_rationale
from tripost.log import LogRecord
from tripost.student.embedded import embedded_tokenizer_dir
from tripost.student.load import resolve_model_dir
from tripost.student.prompt import PromptFormat, build_prompt
from tripost.student.spec import parse_spec
from tripost.student.tokens import adds_special_tokens

KIND_ORDER = ("improvement", "direct", "gold")
TURNS = ("single", "whole")


@dataclass
class BufferConfig:
    # improvement : non-improvement (direct) : gold. Every improvement is kept;
    # the others are capped relative to it (`rebalance`).
    ratio: tuple[float, float, float] = (1.5, 1.0, 1.0)
    max_chars: int = 4000  # length limit on prompt + completion
    dedupe: bool = True
    difficulty_mode: str = "plain"  # plain | inverse | cap
    bucket_cap: float = 0.5  # cap mode: no bucket above this share of a kind
    # retention: keep the last K iterations (None: all). 1: each iteration
    # trains on its own new data, as the authors' runs do.
    keep_last: int | None = 1
    decay: float | None = None  # retention: keep iteration i with prob decay ** (current - i)
    include_gold: bool = True
    # A checked right attempt trained as a direct example ends with its closing
    # "correct" feedback (TriPosT's non-improvement data, which teaches the
    # verdict); off, the attempt alone: what GSI trains (train.py:72-83 of
    # Yiwen-Ding/Guided-Self-Improvement: the question, then the sampled
    # rationale and EOS).
    verdict: bool = True
    # single: an improvement trajectory becomes one example per edit (the
    # authors' --convert_to_turns); whole: one example of the whole transcript.
    turns: str = "single"
    seed: int = 0

    def __post_init__(self) -> None:
        self.ratio = tuple(float(r) for r in self.ratio)  # type: ignore[assignment]
        if len(self.ratio) != 3 or any(r < 0 for r in self.ratio) or not any(self.ratio):
            raise TripostError("buffer ratio must be three non-negative numbers (improvement:direct:gold), not all zero")
        if self.difficulty_mode not in ("plain", "inverse", "cap"):
            raise TripostError(f"difficulty mode must be plain, inverse or cap, not {self.difficulty_mode!r}")
        if not 0 < self.bucket_cap <= 1:
            raise TripostError("bucket cap must be in (0, 1]")
        if self.keep_last is not None and self.keep_last < 1:
            raise TripostError("keep_last must be at least 1")
        if self.decay is not None and not 0 < self.decay <= 1:
            raise TripostError("decay must be in (0, 1]")
        if self.turns not in TURNS:
            raise TripostError(f"buffer turns must be one of {', '.join(TURNS)}, not {str(self.turns)[:40]!r}")


@dataclass
class Example:
    prompt: str
    completion: str
    kind: str
    family: str
    difficulty: str
    subset: str
    problem_id: str
    iteration: int
    n_edits: int
    weight: float = 1.0
    # Whether the feedback-and-update part trains at train.feedback_weight
    # (TriPosT's 1.5): only examples built from improvements do; direct and
    # gold examples train at weight 1 throughout, as in the authors' code.
    weighted_feedback: bool = False


@dataclass
class BufferStats:
    records: int = 0
    retained: int = 0
    by_kind_before: dict[str, int] = field(default_factory=dict)
    by_kind_after: dict[str, int] = field(default_factory=dict)
    by_task_before: dict[str, int] = field(default_factory=dict)
    by_task_after: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    difficulty: dict[str, dict[str, int]] = field(default_factory=dict)  # pool / collected / buffer
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def closing_feedback(rationale: str) -> str:
    n = parse_rationale(rationale).n_steps
    return Feedback(n_steps=n, error_step=None).render()


def attempt_text(rationale: str) -> str:
    """The training text of an attempt that nothing checked: the rationale
    alone, no feedback (trained at the attempt weight, EOS included)."""
    return Trajectory(turns=(Turn(rationale=rationale, feedback=None),)).render()


def trajectory_text(turns: Sequence[dict[str, Any]]) -> str:
    """The training text of a finished, correct trajectory: every turn with its
    feedback; the last turn's feedback is the closing "also correct" sentence
    (written if the log does not carry it)."""
    out = []
    for i, t in enumerate(turns):
        fb = t.get("feedback")
        if i == len(turns) - 1 and (not fb or ALL_CORRECT_TAIL not in fb):
            fb = closing_feedback(t["rationale"])
        out.append(Turn(rationale=t["rationale"], feedback=fb))
    return Trajectory(turns=tuple(out)).render()


def single_turn_texts(turns: Sequence[dict[str, Any]]) -> tuple[list[str], str]:
    """A finished, correct improvement trajectory as the authors' single-turn
    examples (train_self_improve_rl_noeval.py:573-605): one text per edit,
    "attempt i / Feedback: i / Updated Answer: attempt i+1" (the update closed
    by EOS at training time), and the last attempt with its closing feedback.
    Returns (the edit texts, the last attempt's text)."""
    edits = [Trajectory(turns=(Turn(rationale=a["rationale"], feedback=a.get("feedback") or ""), Turn(rationale=b["rationale"]))).render()
             for a, b in zip(turns, turns[1:])]
    return edits, trajectory_text(turns[-1:])


def rationale_examples(problems: Sequence[Any], iteration: int = 0) -> list[Example]:
    """Iteration 0's training set: each problem's gold rationale alone, no
    feedback line (the authors' *_baseline_rationale_*.jsonl files: question
    and rationale). Training the closing "The final response is also correct."
    on every gold example taught the student one verdict for everything."""
    return [Example(prompt=p.question, completion=attempt_text(p.rationale), kind="gold", family=p.family, difficulty=str(p.difficulty),
                    subset=p.subset, problem_id=p.id, iteration=iteration, n_edits=0) for p in problems if p.rationale]


def dedupe_key(text: str) -> str:
    """The text as the buffer's dedupe compares it: whitespace runs as one
    space, case folded."""
    return re.sub(r"\s+", " ", text).strip().lower()


def example_key(e: Example) -> str:
    """What `build_buffer` deduplicates an example by (scripts/self_improve_evidence.py counts with it too)."""
    return dedupe_key(e.prompt + "\n" + e.completion)


def _stable_unit(*parts: Any) -> float:
    """A number in [0, 1) from a hash: deterministic across runs and machines."""
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def retain(records: Sequence[LogRecord], cfg: BufferConfig) -> list[LogRecord]:
    if not records:
        return []
    current = max(r.iteration for r in records)
    out = []
    for r in records:
        age = current - r.iteration
        if cfg.keep_last is not None and age >= cfg.keep_last:
            continue
        if cfg.decay is not None and age > 0 and _stable_unit(cfg.seed, r.key) >= cfg.decay**age:
            continue
        out.append(r)
    return out


def examples_from_records(records: Sequence[LogRecord], include_gold: bool = True, turns: str = "single",
                          verdict: bool = True) -> tuple[list[Example], Counter]:
    """Examples of every kind, before filtering; also the count of records
    dropped and why. `turns`, `verdict`: BufferConfig's."""
    examples: list[Example] = []
    dropped: Counter = Counter()
    gold_seen: set[str] = set()
    for r in records:
        p = r.problem
        base = dict(
            prompt=p["question"], family=p.get("family", ""), difficulty=str(p.get("difficulty", "")),
            subset=p.get("subset", "seen"), problem_id=p.get("id", ""), iteration=r.iteration,
        )
        # The record's own weight (self_verified's reweight mode: its verifier
        # score normalised per problem) goes with its example; the gold example
        # is the task's, weight 1.
        if not r.checked and r.kind == "direct":
            # Trained as the attempt alone, even where an old log carries a closing feedback.
            examples.append(Example(completion=attempt_text(r.turns[0]["rationale"]), kind="direct", n_edits=0, weight=r.weight, **base))
        elif r.kind == "critique":
            # A wrong answer and the teacher's critique, its fix dropped (the
            # authors' partial-trajectory rule): non-improvement data whose
            # feedback trains at 1.5, as theirs does (text_att_start_text
            # "\nFeedback:"); student updates before it are edits as usual.
            edits, _ = single_turn_texts(r.turns) if turns == "single" else ([], "")
            examples += [Example(completion=text, kind="improvement", n_edits=1, weight=r.weight, weighted_feedback=True, **base) for text in edits]
            last = r.turns[-1:] if turns == "single" else r.turns
            text = Trajectory(turns=tuple(Turn(rationale=t["rationale"], feedback=t.get("feedback")) for t in last)).render()
            examples.append(Example(completion=text, kind="direct", n_edits=0, weight=r.weight, weighted_feedback=True, **base))
        elif r.kind == "failed" and not r.checked:
            dropped["not kept"] += 1  # its source left it out (a verifier's drop, an empty pick): no check said "wrong"
        elif r.kind == "failed" or not r.final_correct:
            dropped["not correct"] += 1
        elif r.kind == "direct":
            text = trajectory_text(r.turns[:1]) if verdict else attempt_text(r.turns[0]["rationale"])
            examples.append(Example(completion=text, kind="direct", n_edits=0, weight=r.weight, **base))
        elif turns == "whole":
            examples.append(Example(completion=trajectory_text(r.turns), kind="improvement", n_edits=len(r.turns) - 1, weight=r.weight,
                                    weighted_feedback=True, **base))
        else:
            edits, last = single_turn_texts(r.turns)
            examples += [Example(completion=text, kind="improvement", n_edits=1, weight=r.weight, weighted_feedback=True, **base) for text in edits]
            # The last attempt and its "correct" verdict: non-improvement data,
            # but built from an improvement, so its feedback weighs 1.5 (:597-605).
            examples.append(Example(completion=last, kind="direct", n_edits=0, weight=r.weight, weighted_feedback=True, **base))
        if include_gold and p.get("rationale") and p.get("id") not in gold_seen:
            gold_seen.add(p.get("id"))
            examples.append(Example(completion=trajectory_text([{"rationale": p["rationale"]}]), kind="gold", n_edits=0, **{**base, "iteration": r.iteration}))
    return examples, dropped


def _draw(pool: list[Example], k: int, cfg: BufferConfig, rng: random.Random) -> list[Example]:
    """k examples from one kind's pool, without replacement, by difficulty mode."""
    if k >= len(pool):
        chosen = list(pool)
    elif cfg.difficulty_mode == "plain":
        chosen = rng.sample(pool, k)
    else:
        sizes = Counter(e.difficulty for e in pool)
        if cfg.difficulty_mode == "inverse":
            # Efraimidis–Spirakis weighted sampling without replacement: key u^(1/w).
            keyed = sorted(pool, key=lambda e: rng.random() ** sizes[e.difficulty], reverse=True)
            chosen = keyed[:k]
        else:  # cap: round-robin over shuffled buckets, each bucket at most cap * k
            cap = max(1, int(cfg.bucket_cap * k))
            buckets: dict[str, list[Example]] = {}
            for e in rng.sample(pool, len(pool)):
                buckets.setdefault(e.difficulty, []).append(e)
            chosen, taken = [], Counter()
            while len(chosen) < k and any(buckets.values()):
                progressed = False
                for d in sorted(buckets):
                    if buckets[d] and taken[d] < cap and len(chosen) < k:
                        chosen.append(buckets[d].pop())
                        taken[d] += 1
                        progressed = True
                if not progressed:  # every bucket hit its cap: fill from the rest
                    rest = [e for b in buckets.values() for e in b]
                    chosen += rest[: k - len(chosen)]
                    break
    sizes = Counter(e.difficulty for e in chosen)
    if cfg.difficulty_mode != "plain":
        for e in chosen:  # times the record's own weight, which it must not overwrite
            e.weight *= len(chosen) / (len(sizes) * sizes[e.difficulty])
    return chosen


def rebalance(available: dict[str, int], ratio: Sequence[float], notes: list[str] | None = None) -> dict[str, int]:
    """How many examples of each kind to draw, the authors' rule
    (train_self_improve_rl_noeval.py:612-625, 684-686) at ratio
    improvement : non-improvement : gold (default 1.5 : 1 : 1):

    - every improvement example is kept (they are what the iteration teaches,
      and the scarcest: a rule that scaled them down to the right answers
      threw most of them away when the student was rarely right);
    - non-improvement (`direct`) examples: up to ceil(improvements x
      ratio[1] / ratio[0]); all of them when there is no improvement (the
      authors' `improve_data_ratio <= 0` ablation, and the teacher-free
      sources, which make none);
    - gold examples: as many as non-improvement ones (x ratio[2] / ratio[1]),
      or, with no non-improvement share, relative to the improvements.

    A ratio entry of 0 leaves that kind out."""
    r_imp, r_dir, r_gold = (float(r) for r in ratio)
    n_imp, n_dir, n_gold = (available.get(k, 0) for k in KIND_ORDER)
    out = dict.fromkeys(KIND_ORDER, 0)
    out["improvement"] = n_imp if r_imp > 0 else 0
    if r_dir > 0:
        out["direct"] = min(n_dir, math.ceil(out["improvement"] * r_dir / r_imp)) if out["improvement"] else n_dir
    if r_gold > 0:
        if r_dir > 0:
            out["gold"] = min(n_gold, math.ceil(out["direct"] * r_gold / r_dir))
        elif out["improvement"]:
            out["gold"] = min(n_gold, math.ceil(out["improvement"] * r_gold / r_imp))
        else:
            out["gold"] = n_gold
    if notes is not None:
        for k, r in zip(KIND_ORDER, (r_imp, r_dir, r_gold)):
            if r > 0 and not available.get(k, 0):
                notes.append(f"no {k} examples")
        if r_gold > 0 and r_dir > 0 and out["gold"] < n_gold and out["direct"] < math.ceil(out["improvement"] * r_dir / max(r_imp, 1e-9)):
            notes.append(f"only {out['direct']} non-improvement examples: as many gold ({out['gold']})")
    return out


def build_buffer(records: Sequence[LogRecord], cfg: BufferConfig | None = None, pool: Sequence[dict] | None = None) -> tuple[list[Example], BufferStats]:
    """Records -> (balanced examples, stats). `pool` (problem dicts) is only used
    for the difficulty histogram; without it the records' problems stand in."""
    cfg = cfg or BufferConfig()
    rng = random.Random(f"buffer|{cfg.seed}")
    stats = BufferStats(records=len(records))
    kept = retain(records, cfg)
    stats.retained = len(kept)
    examples, dropped = examples_from_records(kept, cfg.include_gold, cfg.turns, cfg.verdict)
    stats.by_kind_before = {k: sum(e.kind == k for e in examples) for k in KIND_ORDER}
    stats.by_task_before = dict(Counter(e.family for e in examples))

    filtered, seen = [], set()
    # Gold examples last, so that where a collected example and a gold one
    # are the same text, the collected one stays (the authors check only the
    # gold examples for duplicates: train_self_improve_rl_noeval.py:669-683).
    for e in sorted(examples, key=lambda e: e.kind == "gold"):
        if len(e.prompt) + len(e.completion) > cfg.max_chars:
            dropped["too long"] += 1
            continue
        key = example_key(e)
        if cfg.dedupe and key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        filtered.append(e)

    by_kind = {k: [e for e in filtered if e.kind == k] for k in KIND_ORDER}
    chosen: list[Example] = []
    for k, n in rebalance({k: len(v) for k, v in by_kind.items()}, cfg.ratio, stats.notes).items():
        if n:
            chosen += _draw(by_kind[k], n, cfg, rng)
    rng.shuffle(chosen)

    stats.by_kind_after = {k: sum(e.kind == k for e in chosen) for k in KIND_ORDER}
    stats.by_task_after = dict(Counter(e.family for e in chosen))
    stats.dropped = dict(dropped)
    pool_diffs = [str(p.get("difficulty", "")) for p in pool] if pool is not None else [str(r.problem.get("difficulty", "")) for r in {r.problem.get("id"): r for r in kept}.values()]
    stats.difficulty = {
        "pool": dict(Counter(pool_diffs)),
        "collected": dict(Counter(str(r.problem.get("difficulty", "")) for r in kept if r.final_correct)),
        "buffer": dict(Counter(e.difficulty for e in chosen)),
    }
    return chosen, stats


@dataclass
class PreferencePair:
    """One (chosen, rejected) pair for preference optimisation
    (tripost.train.objectives.dpo): the problem's question and two attempts, each as its
    training text (the attempt alone, `attempt_text`)."""

    prompt: str
    chosen: str
    rejected: str
    problem_id: str = ""
    family: str = ""
    iteration: int = 0


def preference_pairs(records: Sequence[LogRecord], cfg: BufferConfig | None = None) -> tuple[list[PreferencePair], BufferStats]:
    """The pairs of the records that carry one (`rejected`: RLHF-sharpening),
    after retention, the length limit and dedupe on (question, chosen,
    rejected); the same stats file as the SFT buffer, kinds counted as
    `pair`."""
    cfg = cfg or BufferConfig()
    stats = BufferStats(records=len(records))
    kept = retain(records, cfg)
    stats.retained = len(kept)
    pairs: list[PreferencePair] = []
    dropped: Counter = Counter()
    seen: set[tuple[str, str, str]] = set()
    for r in kept:
        if r.rejected is None or not r.turns:
            dropped["no pair"] += 1
            continue
        p = r.problem
        pair = PreferencePair(prompt=p["question"], chosen=attempt_text(r.turns[0]["rationale"]), rejected=attempt_text(r.rejected["rationale"]),
                              problem_id=p.get("id", ""), family=p.get("family", ""), iteration=r.iteration)
        if len(pair.prompt) + max(len(pair.chosen), len(pair.rejected)) > cfg.max_chars:
            dropped["too long"] += 1
            continue
        key = (dedupe_key(pair.prompt), dedupe_key(pair.chosen), dedupe_key(pair.rejected))
        if cfg.dedupe and key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        pairs.append(pair)
    stats.by_kind_before = stats.by_kind_after = {"pair": len(pairs)}
    stats.by_task_after = dict(Counter(pp.family for pp in pairs))
    difficulty = {r.problem.get("id", ""): str(r.problem.get("difficulty", "")) for r in kept}
    stats.difficulty = {
        "pool": dict(Counter(difficulty.values())),
        "collected": dict(Counter(str(r.problem.get("difficulty", "")) for r in kept if r.rejected is not None)),
        "buffer": dict(Counter(difficulty.get(pp.problem_id, "") for pp in pairs)),
    }
    stats.dropped = dict(dropped)
    return pairs, stats


def save_preference_buffer(pairs: Sequence[PreferencePair], stats: BufferStats, out: str | Path) -> Path:
    """The pairs as a `datasets.Dataset` (prompt, chosen, rejected, ...) in
    OUT/dataset and the stats in OUT/stats.json, like `save_buffer`."""
    import datasets

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cols = list(PreferencePair.__dataclass_fields__)
    _save_dataset(datasets.Dataset.from_dict({c: [getattr(x, c) for x in pairs] for c in cols}), out / "dataset")
    atomic_write_json(out / "stats.json", stats.to_dict(), sort_keys=True, ensure_ascii=True)
    return out


def _save_dataset(dataset: Any, folder: Path) -> None:
    """`dataset.save_to_disk(folder)`, built in a temporary sibling and renamed
    into place (replacing an older one): a full disk mid-save left a folder
    with a 0-byte state.json that `train` then failed to read; now it is
    `tripost.fileio.no_space` and no folder."""
    with atomic_directory(folder, keep_existing=lambda _: False) as tmp:
        dataset.save_to_disk(str(tmp))


def to_dataset(examples: Sequence[Example]):
    """The buffer as a `datasets.Dataset` (Arrow)."""
    import datasets

    cols = list(Example.__dataclass_fields__)
    return datasets.Dataset.from_dict({c: [getattr(e, c) for e in examples] for c in cols})


def save_buffer(examples: Sequence[Example], stats: BufferStats, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _save_dataset(to_dataset(examples), out / "dataset")
    atomic_write_json(out / "stats.json", stats.to_dict(), sort_keys=True, ensure_ascii=True)
    return out




# ------------------------------------------------------------ TRL export ---
# The buffer's `prompt` is the bare question: tripost's trainer renders the
# instruction and the chat template around it (tripost.train.prepare_dataset
# through tripost.student.prompt.build_prompt) and closes the completion with
# EOS. TRL's SFTTrainer given the buffer as it is would train other text. The
# export applies both, so that TRL's standard prompt-completion path (prompt
# ids, then prompt + completion ids, the loss on the completion's tokens)
# tokenises exactly what tripost trains (tests/test_export.py checks it with
# TRL's own code).
TRL_FOLDER = "trl"  # OUT/trl: the export and its dataset card
TRL_FILE = "train.jsonl"
# Kept beside prompt and completion (SFTTrainer drops columns its model does not take).
TRL_EXTRA_COLUMNS = ("kind", "family", "difficulty", "problem_id", "iteration", "weight", "weighted_feedback")


def trl_rows(dataset: Any, tokenizer: Any, fmt: Any = None) -> list[dict[str, Any]]:
    """The buffer's rows (a `datasets.Dataset` or dicts with prompt and
    completion) in TRL's standard prompt-completion format: the prompt as the
    student sees it (`build_prompt`: instruction and chat template), the
    completion closed by the EOS text (TRL then adds none). Where the
    tokenizer puts BOS in front by itself and the rendered prompt spells it
    out too, the prompt's own is dropped: TRL encodes with special tokens,
    tripost without them in that case (tripost.student.tokens.encode_prompt),
    and both then start with one BOS."""

    fmt = fmt or PromptFormat()
    eos = tokenizer.eos_token
    if not eos:
        raise TripostError("the student's tokenizer has no EOS token; a completion could not say where it ends")
    probe = tokenizer("a")["input_ids"]
    bos_added = bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id
    out = []
    for row in dataset:
        prompt = build_prompt(tokenizer, row["prompt"], fmt)
        if bos_added and not adds_special_tokens(tokenizer, prompt):
            prompt = prompt[len(tokenizer.bos_token):]
        out.append({"prompt": prompt, "completion": row["completion"] + eos, **{k: row[k] for k in TRL_EXTRA_COLUMNS if k in row}})
    return out


def save_trl_buffer(dataset: Any, tokenizer: Any, out: str | Path, *, student: str, fmt: Any = None, model: str | None = None,
                    stats: dict[str, Any] | None = None, sources: Sequence[str] = ()) -> Path:
    """OUT/trl/train.jsonl (`trl_rows`) and OUT/trl/README.md, its dataset
    card: what the rows are, for which tokenizer (`student`; `model`: its
    Hub id, for the card's example), how to train on them with TRL, and
    where TRL's loss differs from tripost's. Returns OUT/trl."""
    import json

    from huggingface_hub import DatasetCardData

    fmt = fmt or PromptFormat()
    rows = trl_rows(dataset, tokenizer, fmt)
    folder = Path(out) / TRL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / TRL_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    kinds = Counter(r.get("kind", "?") for r in rows)
    weighted = sum(1 for r in rows if r.get("weighted_feedback"))
    front = DatasetCardData(task_categories=["text-generation"], tags=["trl", "tripost", "self-improvement"],
                            configs=[{"config_name": "default", "data_files": [{"split": "train", "path": TRL_FILE}]}])
    card = [
        "---", front.to_yaml(), "---", "",
        "# tripost replay buffer, TRL prompt-completion format", "",
        f"{len(rows)} examples ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}) of a student answering step by step, "
        "checking its answer (`Feedback:`) and correcting it (`Updated Answer:`): tripost's replay buffer (TriPosT, Yu et al. 2024)"
        + (f", built from {', '.join(f'`{s}`' for s in sources)}" if sources else "") + ".", "",
        "## Format", "",
        "TRL's *standard prompt-completion* format. `prompt` is already the whole prompt the student sees: the instruction "
        f"(`{fmt.template}`) with the question, through the chat template of the tokenizer of `{student}` (chat: {fmt.chat}"
        + (f", system message {fmt.system!r}" if fmt.system is not None else "") + "), ending where the answer begins; "
        "`completion` is the answer, closed by the end-of-sequence text. Do not apply a chat template again.", "",
        "TRL's `SFTTrainer` (default `completion_only_loss`) tokenises these rows into the same token ids tripost's trainer "
        "trains on, with the loss on the completion's tokens, EOS included. What TRL does not do: tripost weighs the feedback-and-update "
        f"part of examples built from improvements 1.5 times (`weighted_feedback` true: {weighted} rows; TRL weighs every completion "
        "token 1), multiplies by `weight` only when asked (train.use_example_weight), and drops examples longer than its max_length.", "",
        "## Use", "",
        "```python",
        "from datasets import load_dataset",
        "from trl import SFTConfig, SFTTrainer",
        "",
        'data = load_dataset("THIS_FOLDER", split="train")',
        f'trainer = SFTTrainer(model="{model or "MODEL"}", train_dataset=data, args=SFTConfig(output_dir="out"))'
        + ("" if model else "  # the student the prompts were rendered for"),
        "trainer.train()",
        "```",
    ]
    if stats:
        card += ["", "## Buffer statistics", "", "```json", json.dumps(stats, indent=2, sort_keys=True), "```"]
    atomic_write_text(folder / "README.md", "\n".join(card) + "\n")
    return folder


def student_tokenizer(spec: str) -> Any:
    """The tokenizer (with its chat template) student `spec` trains with, loaded without the model's weights."""
    from transformers import AutoTokenizer

    parsed = parse_spec(spec)
    folder = embedded_tokenizer_dir() if parsed.kind == "embedded" else resolve_model_dir(parsed)
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError, TypeError) as e:
        text = str(e).strip()
        raise TripostError(f"student {spec}: cannot load the tokenizer from {folder}: {text.splitlines()[0] if text else type(e).__name__}") from None
