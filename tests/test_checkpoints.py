"""Issue 32, item 5: checkpoints are whole or absent, and SIGTERM is Ctrl-C.

A SIGTERM during a checkpoint save left checkpoint-N with a config and a
half-written weights file, and every rerun died on it ("Can't find a valid
checkpoint"; a torn model.safetensors: SafetensorError). Now a checkpoint is
written under OUT/checkpoints/.saving and renamed into place when complete,
a resume takes the newest whole checkpoint and removes newer torn ones with
one line, and SIGTERM ends a verb with one line and exit code 143."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from tripost.train import STAGING_DIR, checkpoint_problem, find_checkpoint, last_checkpoint

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------- checkpoint files only ---


def _safetensors(path: Path, n: int = 4) -> None:
    """A valid .safetensors file of one float32 tensor of `n` values."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4 * n))


def _torch_file(path: Path) -> None:
    """What torch.save writes: a zip archive."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")


def _checkpoint(root: Path, step: int, *, state: bool = True) -> Path:
    """A checkpoint as the Trainer writes it (full weights), complete unless `state` is off."""
    ck = root / f"checkpoint-{step}"
    ck.mkdir(parents=True)
    (ck / "config.json").write_text("{}")
    (ck / "generation_config.json").write_text("{}")
    _safetensors(ck / "model.safetensors", n=64)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        _torch_file(ck / name)
    if state:
        (ck / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ck


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_the_newest_whole_checkpoint_wins_and_the_torn_ones_are_named(tmp_path, capsys):
    root = tmp_path / "checkpoints"
    _checkpoint(root, 2)
    _cut(_checkpoint(root, 3) / "model.safetensors")  # a torn weights file
    # The state of issue 32.5: killed while the weights were written.
    four = _checkpoint(root, 4, state=False)
    (four / "model.safetensors").unlink()
    (four / ".tmpa1b2c3").write_bytes(b"\0" * 1000)
    _cut(_checkpoint(root, 5) / "optimizer.pt")
    (root / STAGING_DIR / "checkpoint-6").mkdir(parents=True)  # a save cut short: never looked at
    (root / "runs").mkdir()

    path, skipped = find_checkpoint(root)
    assert path == str(root / "checkpoint-2")
    assert [name for name, _ in skipped] == ["checkpoint-5", "checkpoint-4", "checkpoint-3"]
    why = dict(skipped)
    assert why["checkpoint-5"] == "optimizer.pt is cut short"
    assert why["checkpoint-4"].startswith("no trainer_state.json")
    assert why["checkpoint-3"].startswith("model.safetensors is cut short")

    # Resuming says so in one line and removes the torn ones.
    assert last_checkpoint(root) == str(root / "checkpoint-2")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("tripost train: removed incomplete checkpoint-5 (optimizer.pt is cut short); checkpoint-4 (no trainer_state.json")
    assert err[0].endswith("; resuming from checkpoint-2")
    assert sorted(p.name for p in root.iterdir()) == [STAGING_DIR, "checkpoint-2", "runs"]
    assert last_checkpoint(root) == str(root / "checkpoint-2") and capsys.readouterr().err == ""

    # Nothing whole: training starts over, and says so.
    (root / "checkpoint-2" / "trainer_state.json").write_text('{"global_st')
    assert last_checkpoint(root) is None
    assert capsys.readouterr().err.strip() == ("tripost train: removed incomplete checkpoint-2 (trainer_state.json does not "
                                               "read (JSONDecodeError)); starting from step 0")
    assert find_checkpoint(tmp_path / "nowhere") == (None, [])


def test_what_makes_a_checkpoint_whole(tmp_path):
    ck = _checkpoint(tmp_path, 1)
    assert checkpoint_problem(ck) is None
    (ck / "model.safetensors").write_bytes(b"")
    assert checkpoint_problem(ck) == "model.safetensors is cut short (0 bytes)"
    (ck / "model.safetensors").write_bytes((10**9).to_bytes(8, "little") + b"{}")
    assert checkpoint_problem(ck).startswith("model.safetensors is cut short (its header alone")
    (ck / "model.safetensors").write_bytes((2).to_bytes(8, "little") + b"{{")
    assert checkpoint_problem(ck) == "model.safetensors does not read (JSONDecodeError)"
    _safetensors(ck / "model.safetensors")
    with (ck / "model.safetensors").open("ab") as f:
        f.write(b"\0")  # one byte too many is no whole file either
    assert checkpoint_problem(ck) == "model.safetensors is not what its header says (89 bytes, 88 expected)"
    (ck / "model.safetensors").unlink()
    assert checkpoint_problem(ck) == "no weights"
    # Sharded weights: every shard the index names must be there, and whole.
    (ck / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}))
    _safetensors(ck / "model-1.safetensors")
    assert checkpoint_problem(ck) == "model.safetensors.index.json names model-2.safetensors, which is not there"
    _safetensors(ck / "model-2.safetensors")
    assert checkpoint_problem(ck) is None
    # A LoRA checkpoint: the adapter is the weights.
    lora = _checkpoint(tmp_path, 2)
    (lora / "model.safetensors").rename(lora / "adapter_model.safetensors")
    assert checkpoint_problem(lora) is None
    _cut(lora / "adapter_model.safetensors")
    assert checkpoint_problem(lora).startswith("adapter_model.safetensors is cut short")


# ------------------------------------------------ training on the tiny model ---

ATTEMPT = "(1) 2 + 3 = 6.\n(Final response) So the answer is 6."
TRAJECTORY = "\n".join([ATTEMPT, 'Feedback: In step (1) the part "2 + 3 = 6" is incorrect. This is because 2 + 3 = 5.',
                        "Updated Answer: (1) 2 + 3 = 5.\n(Final response) So the answer is 5.",
                        "Feedback: Step (1) is correct. The final response is also correct."])


class _Crash(Exception):
    pass


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("torch")
    from tripost.student.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _cfg(tiny, **kw):
    from tripost.train import TrainConfig

    base = dict(student=f"hf:{tiny}", mode="lora", precision="fp32", batch_size=2, learning_rate=1e-2, warmup=0.0,
                lora_dropout=0.1, logging_steps=1, progress=False, group_by_length=True, mixed_precision="no",
                max_steps=6, save_steps=2, keep_checkpoints=True)
    base.update(kw)
    return TrainConfig(**base)


def _buffer(n=8):
    import datasets

    rows = [("What is 2 + 3?", TRAJECTORY), ("Sort the words: b a", "(1) a comes before b.\n(Final response) So the answer is a b.")]
    rows = [rows[i % 2] for i in range(n)]
    return datasets.Dataset.from_dict({"prompt": [r[0] for r in rows], "completion": [r[1] for r in rows]})


def _crash_after_save(step: int):
    from transformers import TrainerCallback

    class CrashAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == step:
                raise _Crash()

    return CrashAfterSave()


@pytest.fixture(scope="module")
def straight(tiny, tmp_path_factory):
    """The adapter of a run never interrupted."""
    from safetensors.torch import load_file

    from tripost.train import train_sft

    out = tmp_path_factory.mktemp("straight")
    assert train_sft(_cfg(tiny), _buffer(), out).resumed_from is None
    return load_file(str(out / "adapter_model.safetensors"))


def _same_weights(out: Path, straight: dict) -> None:
    import torch
    from safetensors.torch import load_file

    got = load_file(str(out / "adapter_model.safetensors"))
    assert got.keys() == straight.keys()
    for k in got:  # same data order, dropout masks and optimizer state as one straight run
        torch.testing.assert_close(got[k], straight[k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("tear", ["state", "weights"])
def test_a_torn_newest_checkpoint_is_skipped_with_one_line(tiny, straight, tmp_path, capsys, tear):
    from tripost.train import train_sft

    out = tmp_path / "run"
    with pytest.raises(_Crash):
        train_sft(_cfg(tiny), _buffer(), out, callbacks=[_crash_after_save(4)])
    four = out / "checkpoints" / "checkpoint-4"
    assert checkpoint_problem(four) is None and checkpoint_problem(out / "checkpoints" / "checkpoint-2") is None
    if tear == "state":  # killed before the trainer state was written
        (four / "trainer_state.json").unlink()
        (four / ".tmpx9y8z7").write_bytes(b"\0" * 4096)
    else:  # the weights file torn
        _cut(four / "adapter_model.safetensors")
    capsys.readouterr()

    res = train_sft(_cfg(tiny), _buffer(), out)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tripost train:")]
    assert len(err) == 1 and err[0].startswith("tripost train: removed incomplete checkpoint-4 (")
    assert err[0].endswith("; resuming from checkpoint-2")
    assert res.resumed_from == str(out / "checkpoints" / "checkpoint-2") and res.steps == 6
    _same_weights(out, straight)
    # The steps after it were saved again, whole; no staging folder is left.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-4", "checkpoint-6"]
    assert checkpoint_problem(four) is None


def test_a_save_cut_short_leaves_no_checkpoint_behind(tiny, straight, tmp_path, capsys, monkeypatch):
    """Killed inside a save (here: an exception after the weights and the
    optimizer, before the RNG states and the trainer state): checkpoint-4
    does not exist, its parts are in the staging folder, and the rerun
    resumes from checkpoint-2 without a word and clears them."""
    from tripost.train import train_sft, trainer_class

    cls = trainer_class()
    original = cls._save_rng_state

    def cut_short(self, output_dir):
        if self.state.global_step == 4:
            raise _Crash()
        return original(self, output_dir)

    out = tmp_path / "run"
    monkeypatch.setattr(cls, "_save_rng_state", cut_short)
    with pytest.raises(_Crash):
        train_sft(_cfg(tiny), _buffer(), out)
    monkeypatch.undo()
    checkpoints = out / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [STAGING_DIR, "checkpoint-2"]
    staged = checkpoints / STAGING_DIR / "checkpoint-4"
    assert (staged / "adapter_model.safetensors").is_file() and not (staged / "trainer_state.json").exists()
    capsys.readouterr()

    res = train_sft(_cfg(tiny), _buffer(), out)
    assert "tripost train:" not in capsys.readouterr().err
    assert res.resumed_from == str(checkpoints / "checkpoint-2") and res.steps == 6
    _same_weights(out, straight)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-4", "checkpoint-6"]


# ------------------------------------------------------------------ SIGTERM ---


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRIPOST_HOME": str(tmp_path / "home")}


# A verb whose handler first checks that a worker it forks still dies of
# SIGTERM at once, then signals itself and waits.
_SIGNAL_SELF = textwrap.dedent("""
    import os, signal, sys, time
    import tripost.cli.tasks_cmd as verb

    def handler(args):
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(ready_w, b"1")  # past the fork: a signal now is not lost
            time.sleep(30)
            os._exit(0)
        os.read(ready_r, 1)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        print("child", os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, flush=True)
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        time.sleep(30)
        return 0

    for name in dir(verb):
        if name.startswith("cmd_"):
            setattr(verb, name, handler)
    from tripost.cli import main
    raise SystemExit(main(["tasks", "list"]))
""")


@pytest.mark.parametrize("sig, code, word", [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_sigterm_ends_a_verb_with_one_line_as_ctrl_c_does(tmp_path, sig, code, word):
    # A suite started in the background (`cmd &` in a script) inherits SIGINT
    # ignored, and Python then installs no Ctrl-C handler: give the child the
    # default disposition, as a terminal's foreground job has.
    r = subprocess.run([sys.executable, "-c", _SIGNAL_SELF, sig], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                       timeout=120, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert r.returncode == code, r.stderr[-2000:]
    assert r.stderr == f"tripost tasks: {word}\n"
    assert r.stdout == "child True\n"


def test_sigterm_to_tripost_train_is_one_line_and_the_rerun_resumes(tmp_path, tiny):
    """A SIGTERM at any moment of a run that saves a checkpoint every step
    (so it lands in a save as often as not): one line, exit code 143, and
    the rerun resumes from a whole checkpoint without a word about a torn one."""
    from tripost.buffer import BufferStats, Example, save_buffer

    ex = [Example(prompt="What is 2 + 3?", completion=TRAJECTORY, kind="improvement", family="arithmetic", difficulty="1",
                  subset="seen", problem_id="p1", iteration=1, n_edits=1)] * 4
    save_buffer(ex, BufferStats(), tmp_path / "buf")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tripost", "train", "--student", f"hf:{tiny}", "--buffer", str(tmp_path / "buf"), "--out", str(out),
           "--precision", "fp32", "max_steps=30", "save_steps=1", "batch_size=2", "progress=false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not (out / "checkpoints" / "checkpoint-3").exists():
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be stopped: " + proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "tripost train: terminated" and err.count("tripost train:") == 1
    assert not (out / "train_metrics.json").exists()

    again = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "incomplete" not in again.stderr
    assert "resumed from " in again.stdout and "/checkpoint-" in again.stdout
    assert (out / "train_metrics.json").is_file() and not (out / "checkpoints").exists()
