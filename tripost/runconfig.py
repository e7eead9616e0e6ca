"""`tripost run`'s configuration, typed: one frozen section per table.

    cfg = RunConfig.load("my.toml", ["train.epochs=2", "collect.source=rejection"])
    cfg.collect.samples_per_problem      # 2
    cfg.to_dict()                        # what RUN/config.json holds (and config_hash hashes)

Precedence: the sections' defaults < the TOML file < `key.sub=value`
overrides (tripost.config reads both, refuses unknown keys and checks each
value's type against its default). Then every section is built and checked
with the same code the stage that reads it uses (`RunConfig.check`), so a
value a stage would refuse stops the run before its folder is touched.

The sections and where their keys' defaults are written:

    seed       here
    [student]  StudentSection (here)
    [tasks]    TasksSection (here)
    [teacher]  TeacherSection: `spec` here, every option in tripost/teachers/options.py
    [loop]     LoopSection (here)
    [collect]  tripost/sources/settings.py (CollectSettings, also `tripost collect`'s flags)
    [buffer]   BufferSection (here), defaults shared with tripost.buffer.BufferConfig
    [train]    tripost.train.TrainConfig's fields, with RUN_TRAIN_DEFAULTS for a run
    [eval]     EvalSection (here), defaults shared with tripost.evaluate.EvalConfig
    [gap]      GapSection (here): the per-iteration probe, sized down from `tripost gap`'s

TOML has no null: 0 or "" mean "unset" where the library takes None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tripost.buffer import BufferConfig
from tripost.config import check_types, config_hash, load_config, switch
from tripost.errors import TripostError, clip
from tripost.evaluate import EvalConfig
from tripost.gap import GapConfig
from tripost.settings import described, from_section, option
from tripost.sources.registry import make_source
from tripost.sources.settings import CollectSettings
from tripost.student.load import PRECISIONS
from tripost.student.spec import parse_spec
from tripost.tasks import PRESETS, SUBSETS, get_task
from tripost.teachers import check_teacher_spec
from tripost.teachers.options import TeacherOptions
from tripost.train import TrainConfig


@dataclass(frozen=True)
class StudentSection:
    spec: str = option("smollm2-135m", "the student: smollm2-135m (embedded), hf:PATH or gguf:PATH")
    sample_precision: str = option("auto", "number format for sampling and scoring", choices=PRECISIONS)
    eval_base: bool = option(False, "also evaluate the untrained student (RUN/base/eval)")
    # "" samples in this process; a completions URL (vLLM with --enable-lora,
    # `tripost serve-student`) samples there, the base as engine_model and each
    # iteration's LoRA adapter loaded by path.
    engine: str = option("", "an OpenAI-compatible completions engine's base URL (\"\": sample in this process)")
    engine_model: str = option("", "the engine's name for the base model (\"\": the spec)")


@dataclass(frozen=True)
class TasksSection:
    families: tuple[str, ...] = option(("arithmetic",), "task families the problems come from")
    preset: str = option("small", "problem sizes", choices=PRESETS)
    n_train: int = option(48, "training problems per family (seen subset; the families mixed by a shuffle)")
    n_eval: int = option(24, "held-out test problems per family and evaluation subset")
    eval_subsets: tuple[str, ...] = option(("seen", "unseen"), "evaluation subsets", choices=SUBSETS)
    data: str = option("", "a JSONL file of problems instead of generated ones (\"\": generated)")


@dataclass(frozen=True)
class TeacherSection(TeacherOptions):
    """The teacher spec and its options (`make_teacher(spec, **options.teacher_kwargs())`)."""

    spec: str = option("scripted", "the teacher: scripted, openai:MODEL, anthropic:MODEL, hf:PATH or replay:LOG")


@dataclass(frozen=True)
class LoopSection:
    iterations: int = option(1, "TriPosT iterations after iteration 0")
    iteration0: bool = option(True, "iteration 0: SFT on the training problems' gold rationales")
    # Learning the format from gold rationales can need more passes than the
    # later iterations.
    iteration0_epochs: float = option(0.0, "iteration 0's epochs (0: train.epochs)")


@dataclass(frozen=True)
class BufferSection:
    ratio: tuple[float, ...] = option(tuple(BufferConfig.ratio), "weights of (improvement, non-improvement, gold) examples")
    difficulty_mode: str = option(BufferConfig.difficulty_mode, "plain, inverse or cap")
    bucket_cap: float = option(BufferConfig.bucket_cap, "cap mode: no bucket above this share of a kind")
    # 1: each iteration trains on its own new data (the authors'); 0 keeps every iteration's.
    keep_last: int = option(1, "iterations whose logs the buffer keeps (0: all)")
    decay: float = option(0.0, "retention: keep iteration i with probability decay ** (t - i) (0: no decay)")
    max_chars: int = option(BufferConfig.max_chars, "length limit on prompt + completion")
    # auto: on for the sources whose examples are edits and gold (TriPosT
    # drops a collected text it already has: __collect_data's unique_data,
    # runners/trainer/train_self_improve_rl_noeval.py:549-553), off for the label-free
    # ones (GOLD_FREE_SOURCES), whose repeated samples are their signal: GSI keeps
    # every correct prediction (generate_train_data.py:76-86), a self-verified
    # filter keeps the samples its verifier agrees on, and reweight's weights are
    # normalised over all of a problem's samples. Deduped, a problem whose 4
    # samples are one text (the student is sure, mostly right) trains once and one
    # with 4 different wrong answers 4 times (docs/benchmarks/self-improve-evidence.md).
    dedupe: str = option("auto", "drop duplicate examples: auto (on, off for the label-free sources), on or off")
    # auto: gold examples for the sources that use the gold answers anyway
    # (teacher, demo, rejection), none for the label-free ones (GOLD_FREE_SOURCES).
    include_gold: str = option("auto", "gold examples in the buffer: auto, on or off")
    # auto: on where the run teaches feedback (teacher, demo, rejection as
    # TriPosT's baseline, guided with teacher edits), off for the label-free
    # sources: GSI trains the sampled rationale alone (BufferConfig.verdict), and
    # a verdict line iteration 0 never wrote carried 98.5% of guided's first
    # campaign buffer's loss under iteration 0 (99,451 nats with it, 1,529
    # without; docs/benchmarks/trained-likelihood-guided.json).
    verdict: str = option("auto", "end a right attempt with its 'correct' feedback: auto (on, off for the label-free sources), on or off")
    # single: the authors' one example per edit; whole: one per transcript.
    turns: str = option(BufferConfig.turns, "single or whole")


@dataclass(frozen=True)
class EvalSection:
    every_iteration: bool = option(True, "evaluate after every iteration (else only the last)")
    max_turns: int = option(EvalConfig.max_turns, "updates the student may write after its attempt")
    turns: str = option(EvalConfig.turns, "single or whole")
    max_new_tokens: int = option(EvalConfig.max_new_tokens, "tokens per generated piece")
    batch_size: int = option(EvalConfig.batch_size, "sequences decoded together")
    n_bootstrap: int = option(EvalConfig.n_bootstrap, "bootstrap resamples of the paired intervals")


@dataclass(frozen=True)
class GapSection:
    # The generation-verification gap (Song et al. 2024, tripost.gap) of the
    # student after each evaluated iteration, on the first `n_problems`
    # held-out problems: does training widen the student's own gap? A probe,
    # sized down from `tripost gap`'s defaults (GapConfig): 8 problems x 4
    # samples, the student's own verdict, the run's token budget.
    enabled: bool = option(True, "measure the gap after each evaluated iteration")
    n_problems: int = option(8, "held-out problems the probe uses")
    samples: int = option(4, "samples per problem")
    verifier: str = option("self", "the student's verifier (tripost.verify)")
    filter: str = option(GapConfig.filter, "quantile or threshold")
    quantile: float = option(GapConfig.quantile, "quantile filter: the share kept")
    threshold: float = option(GapConfig.threshold, "threshold filter: keep scores >= T")
    max_new_tokens: int = option(EvalConfig.max_new_tokens, "tokens per sample")


# TrainConfig's fields a run sets itself: the student is student.spec, the
# adapter the previous iteration's, the start adapter iteration 0's, the seed the run's.
TRAIN_SET_BY_RUN = ("student", "adapter", "start_adapter", "progress", "system", "seed")
# A run's training, sized for a 2-core CPU: more epochs on the small buffers
# of one iteration, saves and logs more often than `tripost train`'s.
RUN_TRAIN_DEFAULTS = {"epochs": 3.0, "batch_size": 8, "save_steps": 50, "logging_steps": 2}


def _run_train() -> TrainConfig:
    return replace(TrainConfig(progress=False), **RUN_TRAIN_DEFAULTS)


# Sources that learn without labels: their buffers hold no gold example unless
# buffer.include_gold says so (the GSI authors train without the original data,
# include_original_data=false; sharpening and self-verification are label-free
# by definition). The teacher, demo and rejection sources use the gold answers.
GOLD_FREE_SOURCES = ("sharpen", "self_verified", "guided")

# Keys added after runs had been made with a default under which such a run,
# resumed, would train otherwise than it began: the value it ran with. Run.prepare
# asks for it where this run's default resolves otherwise (tripost.loop).
# buffer.verdict (5317f24): before it, every checked right attempt ended with its
# verdict, which auto now leaves off for guided.
LEGACY_VALUES = {"buffer.verdict": "on"}

_SECTIONS = {"student": StudentSection, "tasks": TasksSection, "teacher": TeacherSection, "loop": LoopSection,
             "collect": CollectSettings, "buffer": BufferSection, "eval": EvalSection, "gap": GapSection}


def _plain(value: Any) -> Any:
    """A section value as the config dict holds it (TOML has lists, not tuples)."""
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class RunConfig:
    """A run's whole configuration. Build it with `load` (defaults < TOML <
    overrides) or `from_dict` (a config.json read back); either checks it."""

    seed: int = 0
    student: StudentSection = field(default_factory=StudentSection)
    tasks: TasksSection = field(default_factory=TasksSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    loop: LoopSection = field(default_factory=LoopSection)
    collect: CollectSettings = field(default_factory=CollectSettings)
    buffer: BufferSection = field(default_factory=BufferSection)
    train: TrainConfig = field(default_factory=_run_train)
    eval: EvalSection = field(default_factory=EvalSection)
    gap: GapSection = field(default_factory=GapSection)

    # ------------------------------------------------------------ building ---
    @staticmethod
    def defaults() -> dict[str, Any]:
        """Every key at its default, as config.json spells it."""
        return RunConfig().to_dict()

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> "RunConfig":
        """Defaults < the TOML file at `path` < `overrides` (`key.sub=value`),
        checked; a wrong key, type or value is one `TripostError` naming it."""
        return cls.from_dict(load_config(cls.defaults(), path, overrides))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """From a nested dict with every key (`load`'s, or a run folder's
        config.json), type-checked against the defaults and value-checked."""
        defaults = cls.defaults()
        check_types(data, defaults)
        missing = sorted(f"{s}.{k}" for s, table in defaults.items() if isinstance(table, dict) for k in table
                         if k not in data.get(s, {})) + (["seed"] if "seed" not in data else [])
        if missing:
            raise TripostError(f"config lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        sections = {name: from_section(cls_, data[name]) for name, cls_ in _SECTIONS.items()}
        t = data["train"]
        train = TrainConfig.from_dict({**{k: (None if v == "" else v) for k, v in t.items()}, "student": data["student"]["spec"],
                                       "progress": False, "seed": data["seed"]})
        cfg = cls(seed=data["seed"], train=train, **sections)
        cfg.check()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed}
        for name in _SECTIONS:
            section = getattr(self, name)
            out[name] = {f.name: _plain(getattr(section, f.name)) for f in fields(section)}
        out["train"] = {f.name: ("" if getattr(self.train, f.name) is None else getattr(self.train, f.name))
                        for f in fields(self.train) if f.name not in TRAIN_SET_BY_RUN}
        return out

    @property
    def hash(self) -> str:
        """The hash every log record carries (tripost.config.config_hash)."""
        return config_hash(self.to_dict())

    # ------------------------------------------------------------ checking ---
    def check(self) -> None:
        """Every value a stage will read: each stage's config object is built
        here with the function the stage uses, so its own checks run before
        the first stage. Section values were type-checked by `from_dict`."""
        if self.loop.iterations < 0:
            raise TripostError("loop.iterations must be >= 0")
        if self.loop.iteration0_epochs < 0:
            raise TripostError("loop.iteration0_epochs must be >= 0 (0: train.epochs)")
        tc = self.tasks
        if not tc.families:
            raise TripostError("tasks.families is empty")
        for fam in tc.families:
            get_task(fam)
        if tc.preset not in PRESETS:
            raise TripostError(f"unknown tasks.preset {clip(tc.preset)}; choose from {', '.join(PRESETS)}")
        for name in ("n_train", "n_eval"):
            if getattr(tc, name) < 1:
                raise TripostError(f"tasks.{name} must be at least 1")
        if not tc.eval_subsets or any(s not in SUBSETS for s in tc.eval_subsets):
            raise TripostError(f"tasks.eval_subsets must name one or more of {', '.join(SUBSETS)}")
        if not isinstance(tc.data, str):
            raise TripostError("tasks.data must be a file name (a string), or \"\" for generated problems")
        parse_spec(self.student.spec)
        if self.student.sample_precision not in PRECISIONS:
            raise TripostError(f"unknown student.sample_precision {clip(self.student.sample_precision)}; choose from {', '.join(PRECISIONS)}")
        self._check_engine()
        self.teacher_options()
        self.data_source()  # checks the [collect] settings, then the source's own config
        self._check_teaching()
        c = self.collect
        if c.source == "self_verified" and c.verify_mode == "reweight" and not self.train.use_example_weight:
            # The verifier's score is the records' weight, and training reads weights only under this key:
            # without it the reweight mode would train every sample at weight 1, unfiltered.
            raise TripostError("collect.source=self_verified with collect.verify_mode=reweight needs train.use_example_weight=true "
                               "(the verifier's score is the example weight)")
        self.buffer_config(1)
        if self.loop.iteration0_epochs:
            replace(self.train, epochs=float(self.loop.iteration0_epochs))  # its checks
        if self.train.objective == "dpo" and (c.source != "sharpen" or c.samples_per_problem < 2):
            # RLHF-sharpening's pairs are the sharpen source's best and worst samples.
            raise TripostError(f"train.objective=dpo trains on the sharpen source's (best, worst) pairs: set collect.source=sharpen and "
                               f"collect.samples_per_problem of 2 or more (now {c.source}, {c.samples_per_problem})")
        self.eval_config(progress=False)
        if self.gap.enabled:
            GapConfig.from_dict(self.gap_config(progress=False))

    def _check_engine(self) -> None:
        """`student.engine`: a URL, and a run whose students an engine can
        serve: the base, and LoRA adapters it loads by path (full trained
        weights would need a new server every iteration)."""
        engine = self.student.engine
        if not engine:
            return
        if not isinstance(engine, str) or not engine.startswith(("http://", "https://")):
            raise TripostError(f"student.engine must be the engine's base URL, e.g. http://127.0.0.1:8000/v1, not {clip(engine)}")
        trains = self.loop.iteration0 or self.loop.iterations > 0
        if trains and self.train.mode != "lora":
            raise TripostError(f"student.engine serves each iteration's student as a LoRA adapter it loads by name, so it needs "
                               f"train.mode=\"lora\" (not {self.train.mode!r}): full trained weights cannot be loaded into a running engine")

    def _check_teaching(self) -> None:
        """`teacher.spec` parses (no client is built, no key read: a spec typo
        was found when iteration 1's collect began, after iteration 0 had
        trained and evaluated), and the teacher can do what `collect.source`
        asks of it for every family of `tasks.families`. The scripted teacher
        improves an attempt by continuing the family's own step-checked
        rationale (`Task.continue_rationale`); a family without a step
        checker (`scripted = False`: qa) has none. The sources that ask for
        improvements: teacher, and guided with teacher edits (guided's
        interactive strategy asks for feedback only, and demo skips such
        families with a note)."""
        kind, _ = check_teacher_spec(self.teacher.spec, batch=self.teacher.batch)
        c = self.collect
        improves = c.source == "teacher" or (c.source == "guided" and c.guided_teacher_edits)
        if kind != "scripted" or not improves or self.loop.iterations < 1:
            return
        unchecked = [f for f in self.tasks.families if not get_task(f).scripted]
        if unchecked:
            raise TripostError(f"the scripted teacher cannot improve {', '.join(unchecked)} problems (no step checker to continue a rationale "
                               f"from): set teacher.spec to an LLM teacher (e.g. openai:gpt-6-luna), or collect.source to one that needs "
                               f"no teacher (rejection, sharpen, self_verified)")

    # ------------------------------------------- each stage's config object ---
    def teacher_options(self) -> TeacherOptions:
        """The teacher's options, checked (errors name teacher.KEY)."""
        return TeacherOptions.from_config({f.name: getattr(self.teacher, f.name) for f in fields(self.teacher)})

    def collect_settings(self) -> CollectSettings:
        return self.collect.check(lambda key: f"collect.{key}")

    def data_source(self) -> Any:
        """The registered source `collect.source` names (tripost.sources), built from `[collect]`."""
        return make_source(self.collect_settings(), teacher_concurrency=self.teacher.concurrency)

    def include_gold(self) -> bool:
        """buffer.include_gold resolved: auto means gold unless the source is label-free."""
        return self._buffer_switch("include_gold", self.collect.source not in GOLD_FREE_SOURCES)

    def dedupe(self) -> bool:
        """buffer.dedupe resolved: auto means on unless the source is label-free."""
        return self._buffer_switch("dedupe", self.collect.source not in GOLD_FREE_SOURCES)

    def verdict(self) -> bool:
        """buffer.verdict resolved: auto means on unless the source is label-free
        (guided with TriPosT's teacher edits teaches feedback, so it keeps it)."""
        c = self.collect
        return self._buffer_switch("verdict", c.source not in GOLD_FREE_SOURCES or (c.source == "guided" and c.guided_teacher_edits))

    def _buffer_switch(self, key: str, auto: bool) -> bool:
        """A [buffer] switch (auto, on or off, or a bool) resolved; `auto` is what auto means for this run."""
        v = switch(f"buffer.{key}", getattr(self.buffer, key))
        return v == "on" or (v == "auto" and auto)

    def legacy_overrides(self, missing: list[str]) -> list[str]:
        """Of the dotted keys a run's recorded config lacks (`missing`), the
        `KEY=VALUE` overrides that make this config run as that run began: one
        per key of LEGACY_VALUES whose value here resolves otherwise."""
        out = []
        for key, value in LEGACY_VALUES.items():
            if key in missing:
                section, name = key.split(".")
                then = replace(self, **{section: replace(getattr(self, section), **{name: value})})
                if then.stage_configs() != self.stage_configs():
                    out.append(f"{key}={json.dumps(value)}")
        return out

    def stage_configs(self) -> tuple[Any, ...]:
        """What the stages are built from, every auto resolved: two configs
        equal here run alike (a key's raw value aside)."""
        return (self.collect_settings(), self.buffer_config(0), self.train_config(None, False), self.eval_config(False),
                self.gap_config(False), self.teacher_options())

    def buffer_config(self, t: int) -> BufferConfig:
        b = self.buffer
        return BufferConfig(ratio=tuple(b.ratio), max_chars=b.max_chars, dedupe=self.dedupe(), difficulty_mode=b.difficulty_mode,
                            bucket_cap=b.bucket_cap, keep_last=b.keep_last or None, decay=b.decay or None,
                            include_gold=self.include_gold(), verdict=self.verdict(), turns=b.turns, seed=self.seed + t)

    def train_config(self, adapter: str | None, progress: bool, start_adapter: str | None = None) -> TrainConfig:
        return replace(self.train, adapter=adapter, start_adapter=start_adapter, progress=progress)

    def eval_config(self, progress: bool) -> EvalConfig:
        e = self.eval
        return EvalConfig(max_turns=e.max_turns, turns=e.turns, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size,
                          n_bootstrap=e.n_bootstrap, seed=self.seed, progress=progress)

    def gap_config(self, progress: bool) -> dict[str, Any]:
        g = self.gap
        out = {k: getattr(g, k) for k in ("samples", "verifier", "filter", "quantile", "threshold", "max_new_tokens")}
        out.update(seed=self.seed, teacher=self.teacher.spec, n_bootstrap=self.eval.n_bootstrap, batch_size=self.eval.batch_size,
                   progress=progress)
        return out


def key_help() -> str:
    """Every config key, its default as TOML spells it, and its help
    (`tripost run --keys`); [train]'s keys are tripost.train.TrainConfig's."""
    def line(f: Any, value: Any) -> str:
        return f"{f.name} = {json.dumps(value)}  # {described(f)}"

    defaults = RunConfig.defaults()
    lines = [f"seed = {json.dumps(defaults['seed'])}"]
    for name, cls in _SECTIONS.items():
        lines += ["", f"[{name}]"] + [line(f, defaults[name][f.name]) for f in fields(cls)]
    train_fields = {f.name: f for f in fields(TrainConfig)}
    lines += ["", "[train]"] + [line(train_fields[k], v) for k, v in defaults["train"].items()]
    return "\n".join(lines)


__all__ = ["GOLD_FREE_SOURCES", "RUN_TRAIN_DEFAULTS", "TRAIN_SET_BY_RUN", "BufferSection", "EvalSection", "GapSection", "LoopSection",
           "RunConfig", "StudentSection", "TasksSection", "TeacherSection", "key_help"]
