"""Data-parallel training: `accelerate launch` with two CPU processes trains
exactly what one process trains on the same global batch.

Why `--multi_gpu` and not `--cpu`: accelerate 1.x's `launch --cpu
--num_processes 2` starts ONE process (its several-CPU-process launcher is
MPI with a hostfile); `--multi_gpu` on a machine where no GPU is visible
(CUDA_VISIBLE_DEVICES="") starts two processes through torchrun, which then
train on the CPU over gloo. tripost warns about the first case
(`_warn_single_cpu_launch`); the 2 in train_metrics.json's `processes` shows
the second really ran two.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytest.importorskip("datasets")

from tripost.buffer import BufferStats, Example, save_buffer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Each run, started afresh, imports torch and transformers (~10 s a process
# on 2 cores); the training itself takes about a second.
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _buffer(folder: Path) -> Path:
    """12 examples of several lengths, so length grouping has something to sort."""
    ex = []
    for i in range(12):
        a, b = i, 3 * i + 1
        steps = "\n".join(f"({k + 1}) {a} + {b} = {a + b}." for k in range(1 + i % 3))
        comp = f"{steps}\n(Final response) So the answer is {a + b}.\nFeedback: Step (1) is correct. The final response is also correct."
        ex.append(Example(prompt=f"What is {a} + {b}?", completion=comp, kind="direct", family="arithmetic", difficulty="1",
                          subset="seen", problem_id=f"p{i}", iteration=0, n_edits=0))
    save_buffer(ex, BufferStats(), folder)
    return folder


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT))
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    env.pop("LOCAL_RANK", None)
    return env


def _run(cmd: list[str], cwd: Path) -> str:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"{' '.join(cmd[:6])} ... failed after {time.perf_counter() - t0:.0f} s:\n{done.stderr[-3000:]}"
    return done.stdout


def test_two_processes_train_what_one_does_on_the_same_global_batch(tiny_model_dir, tmp_path):
    buf = _buffer(tmp_path / "buf")
    # Plain SGD without clipping: the update is lr x gradient, so a gradient
    # off by the number of processes (DDP averages; the loss is normalised
    # over the whole step) would show in the weights; AdamW would hide it.
    # Padded, length-grouped batches (the GPU path): the sampler must group by
    # the global batch for the two processes to see what one process sees.
    overrides = ["mode=lora", "lora_dropout=0.0", "optim=sgd", "max_grad_norm=0.0", "learning_rate=2.0", "warmup=0.0",
                 "logging_steps=1", "save_steps=100", "packing=off", "group_by_length=true", "progress=false",
                 # fp32 throughout, named: `auto` would autocast bf16 on a bf16-capable CPU, and this compares sums.
                 "mixed_precision=no"]
    flags = ["--student", f"hf:{tiny_model_dir}", "--buffer", str(buf), "--precision", "fp32", "--max-steps", "3", "--json"]
    one, two = tmp_path / "one", tmp_path / "two"
    # The same global batch: 1 process x 4 examples, and 2 processes x 2.
    _run([sys.executable, "-m", "tripost", "train", *overrides, "batch_size=4", "--out", str(one), *flags], tmp_path)
    out = _run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
                "-m", "tripost", "train", *overrides, "batch_size=2", "--out", str(two), *flags], tmp_path)
    assert len([line for line in out.splitlines() if line.startswith("{\"")]) == 1  # one JSON summary, from rank 0

    m1 = json.loads((one / "train_metrics.json").read_text())
    m2 = json.loads((two / "train_metrics.json").read_text())
    assert (m1["processes"], m2["processes"]) == (1, 2)
    # Token counts are summed over the processes: the same examples were trained.
    assert m2["tokens"] == m1["tokens"] and m2["weighted_tokens"] == m1["weighted_tokens"] and m2["steps"] == m1["steps"] == 3
    # Tolerance. What differs between the runs is only where sums are taken:
    # each process sums Σ w·CE over its 2 examples and the weight total is
    # gathered, DDP all-reduces (averages) the gradients, which the loss
    # scales back up; one process sums all 4 at once. Same seed, same example
    # order, same global batch, fp32, no dropout: the results differ by float
    # rounding alone (measured ~1e-7 relative in the loss, ~1e-7 in the
    # weights). 1e-4 leaves room for other CPUs' kernels, and is still far
    # below what a wrong normalisation (a factor of 2) or a different data
    # order would give.
    for a, b in zip(m1["loss_curve"], m2["loss_curve"], strict=True):
        assert a["step"] == b["step"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    from safetensors.torch import load_file

    w1, w2 = load_file(str(one / "adapter_model.safetensors")), load_file(str(two / "adapter_model.safetensors"))
    assert set(w1) == set(w2)
    moved = False
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
        moved |= "lora_B" in k and bool(w1[k].abs().max() > 1e-3)
    assert moved  # the steps changed the adapter, so the comparison means something
