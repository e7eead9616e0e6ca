"""The replay buffer: interaction-log records -> a balanced training set.

Steps, in order (TriPosT, Yu et al. 2024, Section 2.2 "Learning"):

1. retention: which iterations' records stay (the last K, or an exponential
   decay of older ones), deterministic given the seed;
2. examples: an `improvement` record becomes its whole trajectory (attempt,
   feedback, updated answer, ..., "The final response is also correct."); a
   `direct` record its attempt and the closing feedback; each distinct problem
   also gives a `gold` example from its gold rationale; `failed` records are
   dropped (final answer not correct), except that an unchecked `direct`
   record (`checked` false: e.g. SFT-sharpening's pick,
   tripost/sources/sharpen.py) is kept whether or not it is right: its source
   chose it without checking it (Huang et al. 2024), so correctness is not its
   filter. For the same reason an unchecked example is the attempt alone
   (`attempt_text`), whatever feedback its record carries: the closing "also
   correct" is a verdict, written only where a check stands behind it (the
   gold answer, the teacher), and it would be trained at TriPosT's 1.5
   feedback weight (tripost.train);
3. filters: final answer correct, length limit, dedupe on normalised text;
4. rebalancing to improvement : direct : gold = 1.5 : 1 : 1 by default
   (TriPosT keeps ~43% improvement data: p = 1.5 / 3.5); direct and gold
   (both "right at first") fill in for each other (`rebalance`);
5. difficulty-aware sampling: within a kind, examples are drawn with weight
   1 / (size of their difficulty bucket) (`inverse`) or with each bucket
   capped (`cap`), so easy problems do not drown the hard ones — the tail
   narrowing that Guided Self-Improvement describes (Ding et al. 2024).

The result is a `datasets.Dataset` with columns prompt, completion, kind,
family, difficulty, subset, problem_id, iteration, n_edits, weight (the
record's own `weight`, times the difficulty weight of step 5).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.fileio import atomic_write_json
from tripost.format import ALL_CORRECT_TAIL, Feedback, Trajectory, Turn, parse_rationale
from tripost.log import LogRecord

KIND_ORDER = ("improvement", "direct", "gold")


@dataclass
class BufferConfig:
    ratio: tuple[float, float, float] = (1.5, 1.0, 1.0)  # improvement : direct : gold
    max_chars: int = 4000  # length limit on prompt + completion
    dedupe: bool = True
    difficulty_mode: str = "plain"  # plain | inverse | cap
    bucket_cap: float = 0.5  # cap mode: no bucket above this share of a kind
    keep_last: int | None = None  # retention: keep the last K iterations (None: all)
    decay: float | None = None  # retention: keep iteration i with prob decay ** (current - i)
    include_gold: bool = True
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


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


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


def examples_from_records(records: Sequence[LogRecord], include_gold: bool = True) -> tuple[list[Example], Counter]:
    """Examples of every kind, before filtering; also the count of records dropped and why."""
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
        # score) goes with its example; the gold example is the task's, weight 1.
        if not r.checked and r.kind == "direct":
            # Trained as the attempt alone, even where an old log carries a closing feedback.
            examples.append(Example(completion=attempt_text(r.turns[0]["rationale"]), kind="direct", n_edits=0, weight=r.weight, **base))
        elif r.kind == "failed" and not r.checked:
            dropped["not kept"] += 1  # its source left it out (a verifier's drop, an empty pick): no check said "wrong"
        elif r.kind == "failed" or not r.final_correct:
            dropped["not correct"] += 1
        elif r.kind == "direct":
            examples.append(Example(completion=trajectory_text(r.turns[:1]), kind="direct", n_edits=0, weight=r.weight, **base))
        else:
            examples.append(Example(completion=trajectory_text(r.turns), kind="improvement", n_edits=len(r.turns) - 1, weight=r.weight, **base))
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
    """How many examples of each kind to draw: the largest buffer that keeps
    improvement : (direct + gold) at the ratio without repeating an example.

    TriPosT's ratio is about the share of improvement data (Yu et al. 2024,
    Section 2.2: p = 1.5 / 3.5 ~ 43%; more and the student learns to find
    errors everywhere, less and it never revises). `direct` and `gold` both
    teach "this attempt is right, say so", so they stand in for each other:
    each gets its share of the right-at-first part when it can, and the other
    fills what it lacks. (Early on, a student that is never right has no
    `direct` examples at all, or one: a rule that scales every kind by the
    scarcest would shrink the buffer to a handful of examples.)"""
    r_imp, r_dir, r_gold = (float(r) for r in ratio)
    n_imp, n_dir, n_gold = (available.get(k, 0) for k in KIND_ORDER)
    r_ok, n_ok = r_dir + r_gold, (n_dir if r_dir > 0 else 0) + (n_gold if r_gold > 0 else 0)
    limits = [n / r for n, r in ((n_imp, r_imp), (n_ok, r_ok)) if r > 0 and n > 0]
    out = dict.fromkeys(KIND_ORDER, 0)
    if not limits:
        return out
    scale = min(limits)
    if r_imp > 0:
        out["improvement"] = min(n_imp, round(scale * r_imp))
    if r_ok > 0 and n_ok > 0:
        want = min(n_ok, round(scale * r_ok))
        share_d = round(want * r_dir / r_ok)
        d = min(n_dir, share_d)
        g = min(n_gold, want - d) if r_gold > 0 else 0
        if r_dir > 0:
            d = min(n_dir, want - g)  # direct fills what gold lacks
        out["direct"], out["gold"] = d, g
        if notes is not None and r_gold > 0 and 0 < d < share_d:
            notes.append(f"only {d} direct examples: gold examples fill the right-at-first share")
    if notes is not None:
        for k, r in zip(KIND_ORDER, (r_imp, r_dir, r_gold)):
            if r > 0 and not available.get(k, 0):
                notes.append(f"no {k} examples: the ratio is kept among the other kinds")
    return out


def build_buffer(records: Sequence[LogRecord], cfg: BufferConfig | None = None, pool: Sequence[dict] | None = None) -> tuple[list[Example], BufferStats]:
    """Records -> (balanced examples, stats). `pool` (problem dicts) is only used
    for the difficulty histogram; without it the records' problems stand in."""
    cfg = cfg or BufferConfig()
    rng = random.Random(f"buffer|{cfg.seed}")
    stats = BufferStats(records=len(records))
    kept = retain(records, cfg)
    stats.retained = len(kept)
    examples, dropped = examples_from_records(kept, cfg.include_gold)
    stats.by_kind_before = {k: sum(e.kind == k for e in examples) for k in KIND_ORDER}
    stats.by_task_before = dict(Counter(e.family for e in examples))

    filtered, seen = [], set()
    for e in examples:
        if len(e.prompt) + len(e.completion) > cfg.max_chars:
            dropped["too long"] += 1
            continue
        key = _normalise(e.prompt + "\n" + e.completion)
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
    (tripost.train_dpo): the problem's question and two attempts, each as its
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
        key = (_normalise(pair.prompt), _normalise(pair.chosen), _normalise(pair.rejected))
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
    datasets.Dataset.from_dict({c: [getattr(x, c) for x in pairs] for c in cols}).save_to_disk(str(out / "dataset"))
    atomic_write_json(out / "stats.json", stats.to_dict(), sort_keys=True, ensure_ascii=True)
    return out


def to_dataset(examples: Sequence[Example]):
    """The buffer as a `datasets.Dataset` (Arrow)."""
    import datasets

    cols = list(Example.__dataclass_fields__)
    return datasets.Dataset.from_dict({c: [getattr(e, c) for e in examples] for c in cols})


def save_buffer(examples: Sequence[Example], stats: BufferStats, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    to_dataset(examples).save_to_disk(str(out / "dataset"))
    atomic_write_json(out / "stats.json", stats.to_dict(), sort_keys=True, ensure_ascii=True)
    return out


