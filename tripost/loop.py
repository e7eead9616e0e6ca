"""The TriPosT iterations: [iteration 0] -> for t = 1..T: collect -> buffer -> train -> eval.

    RUN/config.json              the resolved config (defaults < TOML < overrides)
    RUN/machine.json             the machine card and the number format the run chose when it started
    RUN/state.json               stages finished, with their seconds
    RUN/it0/train/               SFT on gold rationales: the student learns the format
    RUN/it0/eval/eval.json       (and the untrained student as `base` in RUN/base/eval/ when enabled)
    RUN/itT/collect/log.jsonl    trajectories collected with the iteration T-1 student
    RUN/itT/buffer/              the replay buffer over the logs of it1..itT (retention applies)
    RUN/itT/train/               the adapter, continued from iteration T-1's
    RUN/itT/eval/eval.json       test-time self-improvement on held-out test problems
    RUN/itT/gap/gap.json         the student's generation-verification gap (gap.enabled)
    RUN/report.md, RUN/plots/    tripost.report
    RUN/logs/                    the loop's numbers, iteration t as step t (train.report_to=tensorboard; tripost.report.LoopTracker)
    RUN/teacher-batches.json     the provider batches sent (teacher.batch), so a rerun resumes them

Every stage writes its outputs in the run folder and is skipped when it has
finished, so re-running the same command after an interruption resumes: a
half-done collection resumes from its log, a half-done training from its last
checkpoint. Resuming with a different config is refused (the run folder would
no longer say how it was made). The number format `auto` picks (bf16 or fp32,
tripost.student.hardware) is decided once, when the run starts, and kept in
machine.json: every stage and every resume runs with that decision, on this
machine or another, so one run folder never mixes two formats.

Iteration 0 is SFT on gold rationales as in TriPosT (Yu et al. 2024, Section 3:
the model is first fine-tuned on the task's rationales so it can produce the
format at all), the rationales alone with no feedback line, as the authors'
baseline rationale files are; each later iteration continues from the
previous adapter and trains on its own new data (buffer.keep_last=1).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from tripost.buffer import BufferConfig, build_buffer, preference_pairs, save_buffer, save_preference_buffer
from tripost.evaluate import EvalConfig
from tripost.gap import GapConfig
from tripost.config import check_types, config_hash, flatten, load_config, switch, write_config
from tripost.errors import TripostError, clip
from tripost.fileio import LOCK_FILE, FolderLock, atomic_write_json
from tripost.log import check_resumable, read_log
from tripost.tasks import PRESETS, SUBSETS, get_task, select_problems
from tripost.tasks.base import Problem
from tripost.settings import from_section, section_defaults
from tripost.sources import Job, make_source
from tripost.sources.settings import CollectSettings
from tripost.teachers import check_teacher_spec, make_teacher
from tripost.teachers.options import TeacherOptions


def _train_defaults() -> dict[str, Any]:
    from tripost.train import TrainConfig

    skip = {"student", "adapter", "progress", "system", "seed"}  # the run seed is used
    out = {}
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        value = getattr(TrainConfig(), f.name)
        out[f.name] = "" if value is None else value
    return out


SKIPPED = "skipped.json"  # written in itT/train when there was nothing to train on
MACHINE_FILE = "machine.json"  # the machine card and the run's number-format decision (Run.machine_profile)


def default_config() -> dict[str, Any]:
    """Built-in defaults: the embedded student, the scripted teacher, the small
    preset, sized for a 2-core CPU. TOML has no null: 0 or "" mean "unset"."""
    train = _train_defaults()
    train.update(epochs=3.0, batch_size=8, save_steps=50, logging_steps=2)
    return {
        "seed": 0,
        # engine: "" samples in this process; a completions URL (vLLM with --enable-lora, `tripost serve-student`)
        # samples there, the base as engine_model ("": the spec) and each iteration's LoRA adapter loaded by path.
        "student": {"spec": "smollm2-135m", "sample_precision": "auto", "eval_base": False, "engine": "", "engine_model": ""},
        "tasks": {"families": ["arithmetic"], "preset": "small", "n_train": 48, "n_eval": 24, "eval_subsets": ["seen", "unseen"], "data": ""},
        # The LLM teacher's options, defaults and help in tripost/teachers/options.py (as the --teacher-* flags).
        "teacher": {"spec": "scripted", **TeacherOptions.config_defaults()},
        "loop": {"iterations": 1, "iteration0": True, "iteration0_epochs": 0.0},
        # Where the training data comes from and how: defaults and help in tripost/sources/settings.py (as `tripost collect`'s flags).
        "collect": section_defaults(CollectSettings),
        # keep_last 1: each iteration trains on its own new data (the authors'); 0 keeps every iteration's.
        # include_gold auto: gold examples for the sources that use the gold answers anyway (teacher, demo,
        # rejection), none for the label-free ones (GOLD_FREE_SOURCES); true / false force it.
        # turns: single (the authors' one example per edit) or whole (one example per transcript).
        "buffer": {"ratio": [1.5, 1.0, 1.0], "difficulty_mode": "plain", "bucket_cap": 0.5, "keep_last": 1, "decay": 0.0,
                   "max_chars": 4000, "dedupe": True, "include_gold": "auto", "turns": BufferConfig.turns},
        "train": train,
        # The generation-verification gap (Song et al. 2024, tripost.gap) of the
        # student after each evaluated iteration, on the first `n_problems`
        # held-out problems: does training widen the student's own gap?
        # A probe, sized down from `tripost gap`'s defaults (GapConfig): 8
        # problems x 4 samples, the student's own verdict, the run's token budget.
        "gap": {"enabled": True, "n_problems": 8, "samples": 4, "verifier": "self", "filter": GapConfig.filter, "quantile": GapConfig.quantile,
                "threshold": GapConfig.threshold, "max_new_tokens": EvalConfig.max_new_tokens},
        # Defaults shared with `tripost eval` (EvalConfig).
        "eval": {"every_iteration": True, "max_turns": EvalConfig.max_turns, "turns": EvalConfig.turns, "max_new_tokens": EvalConfig.max_new_tokens,
                 "batch_size": EvalConfig.batch_size, "n_bootstrap": EvalConfig.n_bootstrap},
    }


def resolve_config(path: str | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Defaults < TOML < overrides, type-checked and value-checked: a config a
    stage would reject is rejected here, before a run folder is touched."""
    cfg = load_config(default_config(), path, overrides)
    check_config(cfg)
    return cfg


def check_config(cfg: dict[str, Any]) -> None:
    """Every value a stage will read, checked now (types were checked by
    `load_config`): each stage's config object is built once here with the same
    function the stage uses, so its own checks run before the first stage."""
    from tripost.student.load import PRECISIONS
    from tripost.student.spec import parse_spec

    check_types(cfg, default_config())  # again: a config made in code skipped load_config
    if cfg["loop"]["iterations"] < 0:
        raise TripostError("loop.iterations must be >= 0")
    if cfg["loop"]["iteration0_epochs"] < 0:
        raise TripostError("loop.iteration0_epochs must be >= 0 (0: train.epochs)")
    tc = cfg["tasks"]
    if not tc["families"]:
        raise TripostError("tasks.families is empty")
    for fam in tc["families"]:
        get_task(fam)
    if tc["preset"] not in PRESETS:
        raise TripostError(f"unknown tasks.preset {clip(tc['preset'])}; choose from {', '.join(PRESETS)}")
    for name in ("n_train", "n_eval"):
        if tc[name] < 1:
            raise TripostError(f"tasks.{name} must be at least 1")
    if not tc["eval_subsets"] or any(s not in SUBSETS for s in tc["eval_subsets"]):
        raise TripostError(f"tasks.eval_subsets must name one or more of {', '.join(SUBSETS)}")
    if not isinstance(tc["data"], str):
        raise TripostError("tasks.data must be a file name (a string), or \"\" for generated problems")
    parse_spec(cfg["student"]["spec"])
    if cfg["student"]["sample_precision"] not in PRECISIONS:
        raise TripostError(f"unknown student.sample_precision {clip(cfg['student']['sample_precision'])}; choose from {', '.join(PRECISIONS)}")
    check_engine(cfg)
    teacher_options(cfg)
    data_source(cfg)
    check_teaching(cfg)
    c = cfg["collect"]
    if c["source"] == "self_verified" and c["verify_mode"] == "reweight" and not cfg["train"]["use_example_weight"]:
        # The verifier's score is the records' weight, and training reads weights only under this key:
        # without it the reweight mode would train every sample at weight 1, unfiltered.
        raise TripostError("collect.source=self_verified with collect.verify_mode=reweight needs train.use_example_weight=true "
                           "(the verifier's score is the example weight)")
    buffer_config(cfg, 1)
    train = train_config(cfg, None, progress=False)
    if train.objective == "dpo":
        c = cfg["collect"]
        # RLHF-sharpening's pairs are the sharpen source's best and worst samples (tripost.train_dpo).
        if c["source"] != "sharpen" or c["samples_per_problem"] < 2:
            raise TripostError(f"train.objective=dpo trains on the sharpen source's (best, worst) pairs: set collect.source=sharpen and "
                               f"collect.samples_per_problem of 2 or more (now {c['source']}, {c['samples_per_problem']})")
    if cfg["loop"]["iteration0_epochs"]:
        replace(train, epochs=float(cfg["loop"]["iteration0_epochs"]))
    eval_config(cfg, progress=False)
    if cfg["gap"]["enabled"]:
        GapConfig.from_dict(gap_config(cfg, progress=False))


# Each stage's config object, built from the run config in one place: the
# stage uses it, and `check_config` builds it once up front.


def collect_settings(cfg: dict[str, Any]) -> CollectSettings:
    return from_section(CollectSettings, cfg["collect"]).check(lambda key: f"collect.{key}")


def data_source(cfg: dict[str, Any]):
    """The registered source `collect.source` names (tripost.sources), built
    from the `[collect]` section."""
    return make_source(collect_settings(cfg), teacher_concurrency=cfg["teacher"]["concurrency"])


def check_engine(cfg: dict[str, Any]) -> None:
    """`student.engine`: a URL, and a run whose students an engine can serve:
    the base, and LoRA adapters it loads by path (full trained weights would
    need a new server every iteration)."""
    engine = cfg["student"]["engine"]
    if not engine:
        return
    if not isinstance(engine, str) or not engine.startswith(("http://", "https://")):
        raise TripostError(f"student.engine must be the engine's base URL, e.g. http://127.0.0.1:8000/v1, not {clip(engine)}")
    trains = cfg["loop"]["iteration0"] or cfg["loop"]["iterations"] > 0
    if trains and cfg["train"]["mode"] != "lora":
        raise TripostError(f"student.engine serves each iteration's student as a LoRA adapter it loads by name, so it needs "
                           f"train.mode=\"lora\" (not {cfg['train']['mode']!r}): full trained weights cannot be loaded into a running engine")


def teacher_options(cfg: dict[str, Any]) -> TeacherOptions:
    return TeacherOptions.from_config(cfg["teacher"])


def check_teaching(cfg: dict[str, Any]) -> None:
    """`teacher.spec` parses (no client is built, no key read: a spec typo was
    found when iteration 1's collect began, after iteration 0 had trained and
    evaluated), and the teacher can do what `collect.source` asks of it for
    every family of `tasks.families`. The scripted teacher improves an attempt
    by continuing the family's own step-checked rationale
    (tripost.teachers.scripted, `Task.continue_rationale`); a family without a
    step checker (`scripted = False`: qa) has none, and the first wrong attempt
    ended the collect stage with "the scripted teacher cannot improve ...".
    The sources that ask for improvements: teacher, and guided with
    teacher edits (guided's interactive strategy asks for feedback only, and
    demo skips such families with a note)."""
    kind, _ = check_teacher_spec(cfg["teacher"]["spec"], batch=cfg["teacher"]["batch"])
    c = cfg["collect"]
    improves = c["source"] == "teacher" or (c["source"] == "guided" and c["guided_teacher_edits"])
    if kind != "scripted" or not improves or cfg["loop"]["iterations"] < 1:
        return
    unchecked = [f for f in cfg["tasks"]["families"] if not get_task(f).scripted]
    if unchecked:
        raise TripostError(f"the scripted teacher cannot improve {', '.join(unchecked)} problems (no step checker to continue a rationale "
                           f"from): set teacher.spec to an LLM teacher (e.g. openai:gpt-6-luna), or collect.source to one that needs "
                           f"no teacher (rejection, sharpen, self_verified)")


def check_device(device: str) -> None:
    """`train.device` ("": CUDA when there is one) names a device this machine
    has: found before the run starts, not when iteration 0's training begins."""
    if not device:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise TripostError(f"train.device {clip(device)} is not a device torch knows (cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TripostError(f"train.device={device}, but this torch has no CUDA device (install a CUDA build of torch, or set train.device=cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TripostError(f"train.device={device}, but this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0")
        return
    backend = torch.backends.mps if dev.type == "mps" else getattr(torch, dev.type, None)
    if backend is None or not getattr(backend, "is_available", lambda: False)():
        raise TripostError(f"train.device={device}, but this machine (or this build of torch) has no {dev.type} device")


# Sources that learn without labels: their buffers hold no gold example unless
# buffer.include_gold says so (the GSI authors train without the original data,
# include_original_data=false; sharpening and self-verification are label-free
# by definition). The teacher, demo and rejection sources use the gold answers.
GOLD_FREE_SOURCES = ("sharpen", "self_verified", "guided")


def include_gold(cfg: dict[str, Any]) -> bool:
    """buffer.include_gold resolved: auto means gold unless the source is label-free."""
    v = switch("buffer.include_gold", cfg["buffer"]["include_gold"])
    return v == "on" or (v == "auto" and cfg["collect"]["source"] not in GOLD_FREE_SOURCES)


def buffer_config(cfg: dict[str, Any], t: int) -> BufferConfig:
    b = cfg["buffer"]
    return BufferConfig(ratio=tuple(b["ratio"]), max_chars=b["max_chars"], dedupe=b["dedupe"], difficulty_mode=b["difficulty_mode"],
                        bucket_cap=b["bucket_cap"], keep_last=b["keep_last"] or None, decay=b["decay"] or None,
                        include_gold=include_gold(cfg), turns=b["turns"], seed=cfg["seed"] + t)


def train_config(cfg: dict[str, Any], adapter: str | None, progress: bool):
    from tripost.train import TrainConfig

    d = {k: (None if v == "" else v) for k, v in cfg["train"].items()}
    return TrainConfig.from_dict({**d, "student": cfg["student"]["spec"], "adapter": adapter, "progress": progress, "seed": cfg["seed"]})


def eval_config(cfg: dict[str, Any], progress: bool) -> EvalConfig:
    e = cfg["eval"]
    return EvalConfig(max_turns=e["max_turns"], turns=e["turns"], max_new_tokens=e["max_new_tokens"], batch_size=e["batch_size"],
                      n_bootstrap=e["n_bootstrap"], seed=cfg["seed"], progress=progress)


def gap_config(cfg: dict[str, Any], progress: bool) -> dict[str, Any]:
    g = cfg["gap"]
    out = {k: g[k] for k in ("samples", "verifier", "filter", "quantile", "threshold", "max_new_tokens")}
    out.update(seed=cfg["seed"], teacher=cfg["teacher"]["spec"], n_bootstrap=cfg["eval"]["n_bootstrap"],
               batch_size=cfg["eval"]["batch_size"], progress=progress)
    return out


def _added_defaults(old: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any]) -> list[str] | None:
    """The keys `new` has and `old` lacks, when every one of them is at its
    default and all shared keys agree; None when the configs really differ."""
    o, n, d = flatten(old), flatten(new), flatten(defaults)
    if set(o) - set(n) or any(json.dumps(o[k], sort_keys=True) != json.dumps(n[k], sort_keys=True) for k in o):
        return None
    added = sorted(set(n) - set(o))
    if any(k not in d or n[k] != d[k] for k in added):
        return None
    return added


class Run:
    """One run folder and its stages."""

    def __init__(self, out: str | Path, config: dict[str, Any], progress: bool = True, log=None):
        self.out = Path(out)
        self.cfg = config
        self.progress = progress
        self.say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.hash = config_hash(config)
        self.state_path = self.out / "state.json"
        self._teacher = None
        self._checked = False

    # ---------------------------------------------------------------- state ---
    def check(self) -> None:
        """Everything a stage will need that can be known now: the config
        (`check_config`), the device, the problems. It reads nothing in the
        run folder, so `run` does it before it locks or writes the folder."""
        if self._checked:
            return
        check_config(self.cfg)
        check_device(self.cfg["train"]["device"])
        train = self.train_problems()
        if not train:
            raise TripostError("no training problems: tasks.data holds none of the train split for tasks.families")
        if not self.eval_problems():
            raise TripostError("no evaluation problems: tasks.data holds none of the test split for tasks.families and tasks.eval_subsets")
        if self.cfg["loop"]["iteration0"] and not any(p.rationale for p in train):
            # Iteration 0 is SFT on gold rationales (stage_gold_sft): with none it
            # failed after loading the student, "no training examples left".
            raise TripostError("loop.iteration0 trains on the training problems' gold rationales, and none has one (tasks.data rows "
                               "without a 'rationale' field); add rationales, or set loop.iteration0=false")
        self._checked = True

    def prepare(self) -> None:
        """Check everything a stage will need (`check`), then write config.json:
        a run whose config, problems or machine are wrong writes nothing, so
        the corrected command is not refused as "a different config"."""
        self.check()
        cfg_path = self.out / "config.json"
        if cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            if config_hash(old) != self.hash:
                added = _added_defaults(old, self.cfg, default_config())
                if added is not None:
                    # A run made by an older tripost: the keys added since are at
                    # their defaults, so the run is the same run.
                    self.say(f"note: {self.out} was made before these config keys existed; resuming with their defaults: {', '.join(added)}")
                elif self._untouched():
                    self.say(f"note: {self.out} holds only the config of a run that wrote nothing else; starting it over with this config")
                else:
                    raise TripostError(f"{self.out} holds a run with a different config; use a new --out (or the same config to resume)")
        write_config(self.cfg, self.out)

    def _untouched(self) -> bool:
        """No stage wrote anything here (a first stage that failed before its
        first output, e.g. a student that would not load, or one that failed
        after creating its folders and an empty log): only config.json,
        machine.json, the lock, a state.json without finished stages, and
        folders and files that are empty."""
        for f in self.out.rglob("*"):
            if f.is_dir() or f in (self.out / "config.json", self.out / MACHINE_FILE, self.out / LOCK_FILE):
                continue
            if f == self.state_path and not self.state()["stages"]:
                continue
            if f.is_file() and not f.is_symlink() and f.stat().st_size == 0:
                continue
            return False
        return True

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else {"stages": {}}

    def _mark(self, stage: str, info: dict[str, Any]) -> None:
        st = self.state()
        st["stages"][stage] = info
        atomic_write_json(self.state_path, st, ensure_ascii=True)

    def _stage(self, name: str, done: bool, fn) -> None:
        if done:
            self.say(f"[{name}] done earlier, skipped")
            return
        self.say(f"[{name}] ...")
        t0 = time.perf_counter()
        info = fn() or {}
        seconds = round(time.perf_counter() - t0, 1)
        self._mark(name, {"seconds": seconds, **info})
        self.say(f"[{name}] finished in {seconds}s")

    def machine_profile(self) -> Any:
        """The run's number-format decision: made and written to machine.json
        (with the machine card) when the run starts, read back on every
        resume, so every stage of one run uses one format."""
        from tripost.student.hardware import ComputeProfile, compute_profile, machine_card

        path = self.out / MACHINE_FILE
        if path.exists():
            try:
                recorded = ComputeProfile.from_dict(json.loads(path.read_text())["compute_profile"])
            except (ValueError, KeyError, TypeError) as e:
                raise TripostError(f"{path}: not a machine card ({type(e).__name__}); restore it, or delete it to let this machine decide again") from None
            now = compute_profile(recorded.device) if recorded.device == "cpu" else recorded
            if now.bf16 != recorded.bf16:
                self.say(f"note: this run chose {'bf16' if recorded.bf16 else 'fp32'} when it started ({path}); "
                         f"resuming with it, although this machine would choose {'bf16' if now.bf16 else 'fp32'}")
            return recorded
        card = machine_card()
        atomic_write_json(path, card, ensure_ascii=True)
        return ComputeProfile.from_dict(card["compute_profile"])

    # ------------------------------------------------------------- problems ---
    def problems(self, split: str, subset: str, n: int, salt: str) -> list[Problem]:
        tc = self.cfg["tasks"]
        # Family by family, then shuffled with the salt (tripost.tasks.select).
        return select_problems(tc["families"], split=split, subsets=(subset,), n=n, preset=tc["preset"], seed=self.cfg["seed"],
                               data=tc["data"] or None, shuffle_salt=salt)

    def train_problems(self) -> list[Problem]:
        return self.problems("train", "seen", self.cfg["tasks"]["n_train"], "train")

    def eval_problems(self) -> list[Problem]:
        out: list[Problem] = []
        for subset in self.cfg["tasks"]["eval_subsets"]:
            out += self.problems("test", subset, self.cfg["tasks"]["n_eval"], f"eval-{subset}")
        return out

    # --------------------------------------------------------------- stages ---
    def it(self, t: int) -> Path:
        return self.out / f"it{t}"

    def adapter(self, t: int) -> str | None:
        """The student's adapter after iteration t: its own, or, when that
        iteration had nothing to train on, the latest one before it."""
        from tripost.student.load import is_trained_weights

        for i in range(t, -1, -1):
            path = self.it(i) / "train"
            if is_trained_weights(path):
                return str(path)
        return None

    def trained(self, t: int) -> bool:
        from tripost.train import is_trained

        return is_trained(self.it(t) / "train") or (self.it(t) / "train" / SKIPPED).exists()

    def teacher(self):
        if self._teacher is None:
            from tripost.teachers.batch import BATCH_LOG_FILE

            # With teacher.batch, the batches sent are recorded here, so a killed run resumes them.
            self._teacher = make_teacher(self.cfg["teacher"]["spec"], **teacher_options(self.cfg).teacher_kwargs(),
                                         batch_log=self.out / BATCH_LOG_FILE)
        return self._teacher

    def train_config(self, adapter: str | None):
        return train_config(self.cfg, adapter, self.progress)

    def stage_gold_sft(self) -> dict[str, Any]:
        from tripost.buffer import rationale_examples, to_dataset
        from tripost.train import train_sft

        # Rationales only, no verdict (tripost.buffer.rationale_examples).
        examples = rationale_examples(self.train_problems())
        cfg = replace(self.train_config(None), objective="sft")  # iteration 0 learns the format from gold: SFT whatever the later objective
        if self.cfg["loop"]["iteration0_epochs"]:
            # Learning the format from gold rationales can need more passes
            # than the later iterations (0 = train.epochs).
            cfg = replace(cfg, epochs=float(self.cfg["loop"]["iteration0_epochs"]))
        res = train_sft(cfg, to_dataset(examples), self.it(0) / "train")
        return {"examples": len(examples), "steps": res.steps, "final_loss": res.final_loss, "tokens": res.tokens}

    def open_student(self, adapter: str | None) -> Any:
        """The student with `adapter` (None: the base) for sampling and
        scoring: loaded here, or, with `student.engine`, the engine's base
        model with the adapter loaded there by path (so the engine must see
        the run folder: the same machine or a shared file system)."""
        s = self.cfg["student"]
        if not s["engine"]:
            from tripost.student import load_student

            return load_student(s["spec"], precision=s["sample_precision"], adapter=adapter)
        from tripost.student.remote import load_remote_student

        student = load_remote_student(s["spec"], s["engine"], s["engine_model"] or s["spec"])
        return student.use_adapter(adapter) if adapter else student

    def stage_collect(self, t: int) -> dict[str, Any]:
        folder = self.it(t) / "collect"
        check_resumable(folder / "log.jsonl")
        source = data_source(self.cfg)
        student = None
        info: dict[str, Any] = {}
        if getattr(source, "needs_student", True):
            student = self.open_student(self.adapter(t - 1))
            info = collect_settings(self.cfg).student_info(student, self.cfg["seed"])
        job = Job(self.train_problems(), folder / "log.jsonl", iteration=t, seed=self.cfg["seed"], config_hash=self.hash,
                  student_info=info, progress=self.progress)
        summary = source.collect(job, student, self.teacher() if source.needs_teacher else None).to_dict()
        atomic_write_json(folder / "collect.json", summary, sort_keys=True, ensure_ascii=True)
        if summary["stopped_early"]:
            self.say(f"[it{t}/collect] note: {summary['stopped_early']}")
        return {k: summary[k] for k in ("usable", "by_kind", "chosen_correct", "teacher_calls", "cost_usd", "unpriced") if k in summary}

    def stage_buffer(self, t: int) -> dict[str, Any]:
        bc = buffer_config(self.cfg, t)
        records = [r for i in range(1, t + 1) for r in read_log(self.it(i) / "collect" / "log.jsonl")]
        if self.cfg["train"]["objective"] == "dpo":
            # RLHF-sharpening trains on the student's own (best, worst) pairs of this round (tripost.train_dpo).
            pairs, stats = preference_pairs([r for r in records if r.iteration == t], bc)
            if not pairs:
                raise TripostError(f"iteration {t}: no preference pairs (every problem's samples were alike); see {self.it(t) / 'collect' / 'log.jsonl'}")
            save_preference_buffer(pairs, stats, self.it(t) / "buffer")
            return {"examples": len(pairs), "by_kind": stats.by_kind_after}
        examples, stats = build_buffer(records, bc, pool=[p.to_dict() for p in self.train_problems()])
        if not examples and self.cfg["collect"]["source"] != "teacher":
            # Teacher-free data can honestly be empty (no sample was right):
            # the iteration then trains nothing and keeps the last adapter.
            stats.notes.append("empty buffer: this iteration trains nothing")
            folder = self.it(t) / "buffer"
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(folder / "stats.json", stats.to_dict(), sort_keys=True, ensure_ascii=True)
            return {"examples": 0, "by_kind": stats.by_kind_after}
        if not examples:
            raise TripostError(f"iteration {t}: the buffer is empty (no usable trajectories); see {self.it(t) / 'collect' / 'collect.json'}")
        save_buffer(examples, stats, self.it(t) / "buffer")
        return {"examples": len(examples), "by_kind": stats.by_kind_after}

    def stage_train(self, t: int) -> dict[str, Any]:
        from tripost.train import load_buffer_dataset, train_sft

        if not (self.it(t) / "buffer" / "dataset").exists():
            folder = self.it(t) / "train"
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(folder / SKIPPED, {"reason": "empty buffer", "adapter": self.adapter(t - 1)}, indent=None, ensure_ascii=True)
            self.say(f"[it{t}/train] nothing to train on (empty buffer): keeping {self.adapter(t - 1) or 'the base student'}")
            return {"steps": 0, "final_loss": None, "tokens": 0, "skipped": True}
        cfg = self.train_config(self.adapter(t - 1))
        if cfg.objective == "dpo":
            from tripost.train_dpo import train_dpo

            m = train_dpo(cfg, load_buffer_dataset(self.it(t) / "buffer"), self.it(t) / "train")
            return {"steps": m["steps"], "final_loss": m["final_loss"], "tokens": m["tokens"], "pairs": m["pairs"]}
        res = train_sft(cfg, load_buffer_dataset(self.it(t) / "buffer"), self.it(t) / "train")
        return {"steps": res.steps, "final_loss": res.final_loss, "tokens": res.tokens}

    def stage_eval(self, folder: Path, adapter: str | None) -> dict[str, Any]:
        from tripost.evaluate import evaluate

        student = self.open_student(adapter)
        res = evaluate(student, self.eval_problems(), eval_config(self.cfg, self.progress))
        res.save(folder / "eval.json")
        m = res.metrics["total"]
        return {"first_accuracy": m["first_accuracy"], "final_accuracy": m["final_accuracy"]}

    def stage_gap(self, folder: Path, adapter: str | None) -> dict[str, Any]:
        from tripost.gap import gap_for_run

        g = self.cfg["gap"]
        student = self.open_student(adapter)
        problems = self.eval_problems()[: g["n_problems"]]
        cfg = gap_config(self.cfg, self.progress)
        teacher = self.teacher() if g["verifier"] == "teacher" else None
        m = gap_for_run(student, problems, cfg, teacher=teacher, out=folder / "gap.json")["metrics"]
        return {"gap": m["gap"]["mean"], "relative_gap": m["relative_gap"]["mean"], "acc_all": m["acc_all"]["mean"]}

    def _gap(self, name: str, folder: Path, adapter: str | None) -> None:
        if self.cfg["gap"]["enabled"] and self.cfg["gap"]["n_problems"] > 0:
            self._stage(f"{name}/gap", (folder / "gap.json").exists(), lambda: self.stage_gap(folder, adapter))

    # ------------------------------------------------------------------ run ---
    def run(self) -> dict[str, Any]:
        from tripost.student.hardware import pinned

        # A run that cannot start says so before the folder exists.
        self.check()
        # One writer per run folder: a second `tripost run` on it is refused
        # before anything is read or written (the lock dies with its process).
        with FolderLock(self.out, "tripost run"):
            self.prepare()
            with pinned(self.machine_profile()):
                from tripost.report import LoopTracker

                # The loop's numbers to train.report_to: one tracker run per invocation, iteration t as step t.
                tracker = LoopTracker(self.out, self.cfg, say=self.say)
                try:
                    return self._run_stages(tracker)
                finally:
                    tracker.close()

    def _run_stages(self, tracker: Any) -> dict[str, Any]:
        from tripost.train import is_trained

        T = self.cfg["loop"]["iterations"]
        if self.cfg["student"]["eval_base"]:
            base = self.out / "base" / "eval"
            self._stage("base/eval", (base / "eval.json").exists(), lambda: self.stage_eval(base, None))
            tracker.log("base")
        if self.cfg["loop"]["iteration0"]:
            self._stage("it0/train", is_trained(self.it(0) / "train"), self.stage_gold_sft)
            self._stage("it0/eval", (self.it(0) / "eval" / "eval.json").exists(), lambda: self.stage_eval(self.it(0) / "eval", self.adapter(0)))
            self._gap("it0", self.it(0) / "gap", self.adapter(0))
            tracker.log("it0")
        for t in range(1, T + 1):
            self._stage(f"it{t}/collect", (self.it(t) / "collect" / "collect.json").exists(), lambda t=t: self.stage_collect(t))
            self._stage(f"it{t}/buffer", (self.it(t) / "buffer" / "stats.json").exists(), lambda t=t: self.stage_buffer(t))
            self._stage(f"it{t}/train", self.trained(t), lambda t=t: self.stage_train(t))
            if self.cfg["eval"]["every_iteration"] or t == T:
                self._stage(f"it{t}/eval", (self.it(t) / "eval" / "eval.json").exists(), lambda t=t: self.stage_eval(self.it(t) / "eval", self.adapter(t)))
                self._gap(f"it{t}", self.it(t) / "gap", self.adapter(t))
            tracker.log(f"it{t}")
        from tripost.report import write_report

        report = write_report(self.out)
        self.say(f"report: {report}")
        return self.state()


def run_loop(out: str | Path, config_path: str | None = None, overrides: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """`tripost run` as a function."""
    return Run(out, resolve_config(config_path, overrides), progress=progress).run()


