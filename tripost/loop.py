"""The TriPosT iterations: [iteration 0] -> for t = 1..T: collect -> buffer -> train -> eval.

    RUN/config.json, machine.json, state.json, base/, it0/ .. itT/{collect,buffer,train,eval,gap}/,
    report.md, plots/, logs/: every path is named in tripost/layout.py (RunLayout).

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
from dataclasses import replace
from pathlib import Path
from typing import Any

from tripost.buffer import build_buffer, preference_pairs, rationale_examples, save_buffer, save_preference_buffer, to_dataset
from tripost.config import config_hash, flatten, write_config
from tripost.errors import TripostError, clip
from tripost.evaluate import JournalMismatch, evaluate, journal_path
from tripost.fileio import FolderLock, LOCK_FILE, atomic_write_json
from tripost.gap import gap_for_run
from tripost.layout import RunLayout, SKIPPED
from tripost.log import read_log
from tripost.report import LoopTracker, write_report
from tripost.runconfig import LEGACY_VALUES, RunConfig
from tripost.sources.collect import collect_to
from tripost.student import load_student
from tripost.student.hardware import ComputeProfile, compute_profile, machine_card, pinned
from tripost.student.load import is_trained_weights
from tripost.student.remote import load_remote_student
from tripost.tasks import select_problems
from tripost.tasks.base import Problem
from tripost.teachers import make_teacher
from tripost.train import OBJECTIVES, is_trained, load_buffer_dataset


def check_device(device: str | None) -> None:
    """`train.device` (None: CUDA when there is one) names a device this
    machine has: found before the run starts, not when iteration 0's
    training begins."""
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


def added_defaults(old: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any],
                   legacy: dict[str, Any] | None = None) -> list[str] | None:
    """The keys `new` has and `old` lacks, when every one of them is at its
    default (or at the value a run made before it existed ran with, `legacy`)
    and all shared keys agree; None when the configs really differ."""
    o, n, d, lg = flatten(old), flatten(new), flatten(defaults), legacy or {}
    if set(o) - set(n) or any(json.dumps(o[k], sort_keys=True) != json.dumps(n[k], sort_keys=True) for k in o):
        return None
    added = sorted(set(n) - set(o))
    if any(k not in d or (n[k] != d[k] and (k not in lg or n[k] != lg[k])) for k in added):
        return None
    return added


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, the recorded value, this command's value) of every key the
    two configs set differently, sorted by key. A key the recorded config lacks
    (made before the key existed) counts at the value that run ran with: its
    LEGACY_VALUES one where this config's would resolve otherwise
    (RunConfig.legacy_overrides), else the key's default."""
    o, n, d = flatten(old), flatten(new), flatten(RunConfig.defaults())
    absent = sorted(k for k in set(n) - set(o) if k in d)
    changed = {x.split("=")[0] for x in RunConfig.from_dict(new).legacy_overrides(absent)} if absent else set()
    o = {**{k: LEGACY_VALUES[k] if k in changed else d[k] for k in absent}, **o}
    return [(k, o[k], n[k]) for k in sorted(set(o) & set(n)) if json.dumps(o[k], sort_keys=True) != json.dumps(n[k], sort_keys=True)]


def resume_overrides(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The `KEY=VALUE` overrides that give this command the recorded config
    back (for a run begun before a default changed): one per differing key."""
    return [f"{k}={json.dumps(v)}" for k, v, _ in config_differences(old, new)]


class Run:
    """One run folder and its stages. `config`: a `RunConfig`, or a dict with
    every key (a run folder's config.json read back), checked here."""

    def __init__(self, out: str | Path, config: RunConfig | dict[str, Any], progress: bool = True, log=None):
        self.out = Path(out)
        self.layout = RunLayout(self.out)
        self.cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
        self.progress = progress
        self.say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.hash = self.cfg.hash
        self.state_path = self.layout.state
        self._teacher = None
        self._checked = False

    # ---------------------------------------------------------------- state ---
    def check(self) -> None:
        """Everything a stage will need that can be known now: the config
        (`RunConfig.check`), the device, the problems. It reads nothing in the
        run folder, so `run` does it before it locks or writes the folder."""
        if self._checked:
            return
        self.cfg.check()
        check_device(self.cfg.train.device)
        train = self.train_problems()
        if not train:
            raise TripostError("no training problems: tasks.data holds none of the train split for tasks.families")
        if not self.eval_problems():
            raise TripostError("no evaluation problems: tasks.data holds none of the test split for tasks.families and tasks.eval_subsets")
        if self.cfg.loop.iteration0 and not any(p.rationale for p in train):
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
        cfg_path = self.layout.config
        config = self.cfg.to_dict()
        if cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            if config_hash(old) != self.hash:
                added = added_defaults(old, config, RunConfig.defaults(), LEGACY_VALUES)
                legacy = self.cfg.legacy_overrides(added) if added else []
                if added is not None and not legacy:
                    # A run made by an older tripost: the keys added since are at
                    # their defaults, so the run is the same run.
                    flat = flatten(config)
                    self.say(f"note: {self.out} was made before these config keys existed; resuming with "
                             f"{', '.join(f'{k}={json.dumps(flat[k])}' for k in added)}")
                elif self._untouched():
                    self.say(f"note: {self.out} holds only the config of a run that wrote nothing else; starting it over with this config")
                elif legacy:
                    # Resumed at today's default, it would train otherwise than it began.
                    raise TripostError(f"{self.out} was made before {', '.join(o.split('=')[0] for o in legacy)} existed and ran as "
                                       f"{' '.join(legacy)} does, which this command's default would change; resume it with "
                                       f"{' '.join(legacy)}, or use a new --out")
                else:
                    diffs = config_differences(old, config)
                    shown = "; ".join(f"{k}: {clip(a, 40)} there, {clip(b, 40)} here" for k, a, b in diffs[:6]) + ("; ..." if len(diffs) > 6 else "")
                    raise TripostError(f"{self.out} holds a run with a different config ({shown}); use a new --out, or resume it with "
                                       f"its own values: {' '.join(resume_overrides(old, config))}")
        write_config(config, self.out)

    def _untouched(self) -> bool:
        """No stage wrote anything here (a first stage that failed before its
        first output, e.g. a student that would not load, or one that failed
        after creating its folders and an empty log): only config.json,
        machine.json, the lock, a state.json without finished stages, and
        folders and files that are empty."""
        for f in self.out.rglob("*"):
            if f.is_dir() or f in (self.layout.config, self.layout.machine, self.out / LOCK_FILE):
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

        path = self.layout.machine
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
        tc = self.cfg.tasks
        # Family by family, then shuffled with the salt (tripost.tasks.select).
        return select_problems(list(tc.families), split=split, subsets=(subset,), n=n, preset=tc.preset, seed=self.cfg.seed,
                               data=tc.data or None, shuffle_salt=salt)

    def train_problems(self) -> list[Problem]:
        return self.problems("train", "seen", self.cfg.tasks.n_train, "train")

    def eval_problems(self) -> list[Problem]:
        out: list[Problem] = []
        for subset in self.cfg.tasks.eval_subsets:
            out += self.problems("test", subset, self.cfg.tasks.n_eval, f"eval-{subset}")
        return out

    # --------------------------------------------------------------- stages ---
    def it(self, t: int) -> Path:
        return self.layout.it(t).root

    def adapter(self, t: int) -> str | None:
        """The student's adapter after iteration t: its own, or, when that
        iteration had nothing to train on, the latest one before it."""

        for i in range(t, -1, -1):
            path = self.layout.it(i).train
            if is_trained_weights(path):
                return str(path)
        return None

    def trained(self, t: int) -> bool:
        return is_trained(self.layout.it(t).train) or self.layout.it(t).train_skipped.exists()

    def teacher(self):
        if self._teacher is None:
            # With teacher.batch, the batches sent are recorded here, so a killed run resumes them.
            self._teacher = make_teacher(self.cfg.teacher.spec, **self.cfg.teacher_options().teacher_kwargs(), batch_log=self.layout.batch_log)
        return self._teacher

    def train_config(self, adapter: str | None):
        # Iteration 0's weights: what the self-improvement rounds start from (DPO's `start` reference).
        return self.cfg.train_config(adapter, self.progress, start_adapter=self.adapter(0))

    def stage_gold_sft(self) -> dict[str, Any]:
        # The trainer loads torch and transformers (~7 s), so it is imported here, not with the module.
        from tripost.train import train_sft

        # Rationales only, no verdict (tripost.buffer.rationale_examples).
        examples = rationale_examples(self.train_problems())
        cfg = replace(self.train_config(None), objective="sft")  # iteration 0 learns the format from gold: SFT whatever the later objective
        if self.cfg.loop.iteration0_epochs:
            # Learning the format from gold rationales can need more passes
            # than the later iterations (0 = train.epochs).
            cfg = replace(cfg, epochs=float(self.cfg.loop.iteration0_epochs))
        res = train_sft(cfg, to_dataset(examples), self.layout.it(0).train)
        return {"examples": len(examples), "steps": res.steps, "final_loss": res.final_loss, "tokens": res.tokens}

    def open_student(self, adapter: str | None) -> Any:
        """The student with `adapter` (None: the base) for sampling and
        scoring: loaded here, or, with `student.engine`, the engine's base
        model with the adapter loaded there by path (so the engine must see
        the run folder: the same machine or a shared file system)."""
        s = self.cfg.student
        if not s.engine:
            return load_student(s.spec, precision=s.sample_precision, adapter=adapter)

        student = load_remote_student(s.spec, s.engine, s.engine_model or s.spec)
        return student.use_adapter(adapter) if adapter else student

    def stage_collect(self, t: int) -> dict[str, Any]:
        folder = self.layout.it(t)
        source = self.cfg.data_source()
        summary = collect_to(source, self.cfg.collect_settings(), self.train_problems(), folder.log, folder.collect_json,
                             open_student=lambda: self.open_student(self.adapter(t - 1)),
                             teacher=self.teacher() if source.needs_teacher else None,
                             iteration=t, seed=self.cfg.seed, config_hash=self.hash, progress=self.progress).to_dict()
        if summary["stopped_early"]:
            self.say(f"[it{t}/collect] note: {summary['stopped_early']}")
        return {k: summary[k] for k in ("usable", "by_kind", "chosen_correct", "teacher_calls", "cost_usd", "unpriced") if k in summary}

    def stage_buffer(self, t: int) -> dict[str, Any]:
        bc = self.cfg.buffer_config(t)
        folder = self.layout.it(t)
        records = [r for i in range(1, t + 1) for r in read_log(self.layout.it(i).log)]
        if self.cfg.train.objective == "dpo":
            # RLHF-sharpening trains on the student's own (best, worst) pairs of this round.
            pairs, stats = preference_pairs([r for r in records if r.iteration == t], bc)
            if not pairs:
                raise TripostError(f"iteration {t}: no preference pairs (every problem's samples were alike); see {folder.log}")
            save_preference_buffer(pairs, stats, folder.buffer)
            return {"examples": len(pairs), "by_kind": stats.by_kind_after}
        examples, stats = build_buffer(records, bc, pool=[p.to_dict() for p in self.train_problems()])
        if not examples and self.cfg.collect.source != "teacher":
            # Teacher-free data can honestly be empty (no sample was right):
            # the iteration then trains nothing and keeps the last adapter.
            stats.notes.append("empty buffer: this iteration trains nothing")
            folder.buffer.mkdir(parents=True, exist_ok=True)
            atomic_write_json(folder.buffer_stats, stats.to_dict(), sort_keys=True, ensure_ascii=True)
            return {"examples": 0, "by_kind": stats.by_kind_after}
        if not examples:
            raise TripostError(f"iteration {t}: the buffer is empty (no usable trajectories); see {folder.collect_json}")
        save_buffer(examples, stats, folder.buffer)
        return {"examples": len(examples), "by_kind": stats.by_kind_after}

    def stage_train(self, t: int) -> dict[str, Any]:
        folder = self.layout.it(t)
        if not folder.buffer_dataset.exists():
            folder.train.mkdir(parents=True, exist_ok=True)
            atomic_write_json(folder.train_skipped, {"reason": "empty buffer", "adapter": self.adapter(t - 1)}, indent=None, ensure_ascii=True)
            self.say(f"[it{t}/train] nothing to train on (empty buffer): keeping {self.adapter(t - 1) or 'the base student'}")
            return {"steps": 0, "final_loss": None, "tokens": 0, "skipped": True}
        cfg = self.train_config(self.adapter(t - 1))
        objective = OBJECTIVES.get(cfg.objective)
        return objective.record(objective.train(cfg, load_buffer_dataset(folder.buffer), folder.train))

    def stage_eval(self, folder: Path, adapter: str | None) -> dict[str, Any]:
        student = self.open_student(adapter)
        # Every generate call is journalled beside eval.json, so a killed run
        # resumes its evaluation where it stopped (tripost/evaluate/journal.py).
        journal = journal_path(folder / "eval.json")
        try:
            res = evaluate(student, self.eval_problems(), self.cfg.eval_config(self.progress), journal=journal)
        except JournalMismatch as e:  # from an evaluation this run no longer makes (its weights were trained again)
            self.say(f"note: [{folder.parent.name}/{folder.name}] starting over: {e}")
            journal.unlink(missing_ok=True)
            res = evaluate(student, self.eval_problems(), self.cfg.eval_config(self.progress), journal=journal)
        res.save(folder / "eval.json")
        journal.unlink(missing_ok=True)
        m = res.metrics["total"]
        return {"first_accuracy": m["first_accuracy"], "final_accuracy": m["final_accuracy"]}

    def stage_gap(self, folder: Path, adapter: str | None) -> dict[str, Any]:
        g = self.cfg.gap
        student = self.open_student(adapter)
        problems = self.eval_problems()[: g.n_problems]
        teacher = self.teacher() if g.verifier == "teacher" else None
        m = gap_for_run(student, problems, self.cfg.gap_config(self.progress), teacher=teacher, out=folder / "gap.json")["metrics"]
        return {"gap": m["gap"]["mean"], "relative_gap": m["relative_gap"]["mean"], "acc_all": m["acc_all"]["mean"]}

    def _gap(self, name: str, folder: Path, adapter: str | None) -> None:
        if self.cfg.gap.enabled and self.cfg.gap.n_problems > 0:
            self._stage(f"{name}/gap", (folder / "gap.json").exists(), lambda: self.stage_gap(folder, adapter))

    # ------------------------------------------------------------------ run ---
    def run(self) -> dict[str, Any]:
        # A run that cannot start says so before the folder exists.
        self.check()
        # One writer per run folder: a second `tripost run` on it is refused
        # before anything is read or written (the lock dies with its process).
        with FolderLock(self.out, "tripost run"):
            self.prepare()
            with pinned(self.machine_profile()):
                # The loop's numbers to train.report_to: one tracker run per invocation, iteration t as step t.
                tracker = LoopTracker(self.out, self.cfg.to_dict(), say=self.say)
                try:
                    return self._run_stages(tracker)
                finally:
                    tracker.close()

    def _run_stages(self, tracker: Any) -> dict[str, Any]:
        T = self.cfg.loop.iterations
        if self.cfg.student.eval_base:
            base = self.layout.base
            self._stage("base/eval", base.eval_json.exists(), lambda: self.stage_eval(base.eval, None))
            tracker.log("base")
        if self.cfg.loop.iteration0:
            it0 = self.layout.it(0)
            self._stage("it0/train", is_trained(it0.train), self.stage_gold_sft)
            self._stage("it0/eval", it0.eval_json.exists(), lambda: self.stage_eval(it0.eval, self.adapter(0)))
            self._gap("it0", it0.gap, self.adapter(0))
            tracker.log("it0")
        for t in range(1, T + 1):
            it = self.layout.it(t)
            self._stage(f"it{t}/collect", it.collect_json.exists(), lambda t=t: self.stage_collect(t))
            self._stage(f"it{t}/buffer", it.buffer_stats.exists(), lambda t=t: self.stage_buffer(t))
            self._stage(f"it{t}/train", self.trained(t), lambda t=t: self.stage_train(t))
            if self.cfg.eval.every_iteration or t == T:
                self._stage(f"it{t}/eval", it.eval_json.exists(), lambda t=t, it=it: self.stage_eval(it.eval, self.adapter(t)))
                self._gap(f"it{t}", it.gap, self.adapter(t))
            tracker.log(f"it{t}")

        report = write_report(self.out)
        self.say(f"report: {report}")
        return self.state()


def run_loop(out: str | Path, config_path: str | None = None, overrides: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """`tripost run` as a function."""
    return Run(out, RunConfig.load(config_path, overrides), progress=progress).run()


__all__ = ["SKIPPED", "Run", "added_defaults", "check_device", "config_differences", "resume_overrides", "run_loop"]
