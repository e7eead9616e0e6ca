"""Every `auto` decision on every kind of machine, on any machine.

The suite runs on whatever CPU CI lands on (AVX2-only, AVX512-BF16 or AMX
so far); what `auto` picks must be tested for each of them, and for a CUDA
device, wherever it runs. `simulate` (conftest) sets
TRIPOST_SIMULATE_PROFILE, which every decision reads; the bf16 and fp32
paths themselves run for real on the tiny model here, even where bf16 is
emulated (tiny sizes keep that cheap).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")

from tripost.errors import TripostError  # noqa: E402
from tripost.student import hardware  # noqa: E402
from tripost.student.hardware import SIMULATED, ComputeProfile, compute_profile, machine_card, pinned  # noqa: E402
from tripost.student.load import load_student, resolve_precision  # noqa: E402
from tripost.train import COMPILE_MIN_TOKENS, TrainConfig, resolve_setup, train_sft  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# What each kind of machine gets, decision by decision:
# (sampling precision, train mode, base precision, autocast, packing, activation checkpointing,
#  compile for a long run, compile for a short run).
EXPECTED = {
    "avx2": ("fp32", "full", "fp32", "no", True, False, False, False),
    "avx512_bf16": ("bf16", "full", "fp32", "bf16", True, False, True, False),
    "amx": ("bf16", "full", "fp32", "bf16", True, False, True, False),
    "cuda": ("bf16", "lora", "nf4", "bf16", False, True, False, False),
}


def test_every_simulated_kind_has_its_expectations():
    assert set(EXPECTED) == set(SIMULATED)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_auto_decisions_for_each_kind_of_machine(kind, simulate, tiny_model_dir):
    simulate(kind)
    sample, mode, precision, autocast, packing, ckpt, compile_long, compile_short = EXPECTED[kind]
    device = SIMULATED[kind].device
    assert compute_profile().device == device and compute_profile(device).simulated == kind
    assert resolve_precision("auto") == sample
    assert resolve_precision("fp32") == "fp32"  # an explicit precision is never second-guessed
    cfg = TrainConfig(student=f"hf:{tiny_model_dir}")
    s = resolve_setup(cfg, device=device, planned_tokens=COMPILE_MIN_TOKENS)
    assert (s.mode, s.precision, s.autocast, s.packing, s.gradient_checkpointing, s.compile) == (
        mode, precision, autocast, packing, ckpt, compile_long)
    assert resolve_setup(cfg, device=device, planned_tokens=COMPILE_MIN_TOKENS - 1).compile is compile_short
    assert s.reasons[0] == SIMULATED[kind].reason  # the decision says which machine it saw


def test_simulation_reaches_cli_subprocesses(tiny_model_dir, simulate):
    # A CLI test runs `tripost` in a subprocess: the seam is the environment.
    simulate("amx")
    code = "from tripost.student.load import resolve_precision; print(resolve_precision('auto'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "bf16", out.stderr[-2000:]


def test_an_unknown_simulated_kind_is_one_line(simulate):
    simulate("quantum")
    with pytest.raises(TripostError, match="unknown TRIPOST_SIMULATE_PROFILE 'quantum'; choose from avx2, avx512_bf16, amx, cuda"):
        compute_profile()


# ------------------------------------------------------- the real decision ---


@pytest.mark.parametrize("torch_says, flags, want", [
    ({"amx_bf16"}, set(), True),  # torch's own check wins over the flags
    (set(), {"avx512_bf16"}, False),  # torch's kernels would not use them: emulated, fp32
    (None, {"avx2", "avx512_bf16"}, True),  # a torch that cannot say: the flags decide
    (None, {"avx2"}, False),
])
def test_bf16_is_decided_by_what_the_hardware_is_never_by_a_timing(monkeypatch, torch_says, flags, want):
    monkeypatch.delenv(hardware.SIMULATE_ENV, raising=False)
    monkeypatch.setattr(hardware, "torch_bf16_flags", lambda: torch_says)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)

    def no_timing(*a, **k):
        raise AssertionError("the number format must not depend on a timed matmul (load changes it)")

    monkeypatch.setattr(hardware, "matmul_gflops", no_timing)
    hardware._real_cpu_profile.cache_clear()
    try:
        p = compute_profile("cpu")
        assert p.bf16 is want and p.simulated is None
        assert ("bf16" if want else "fp32") in p.reason and (("torch" in p.reason) == (torch_says is not None))
        assert compute_profile("cpu") is p  # decided once per process
    finally:
        hardware._real_cpu_profile.cache_clear()


def test_cuda_asked_without_cuda_is_one_line(monkeypatch):
    monkeypatch.delenv(hardware.SIMULATE_ENV, raising=False)
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TripostError, match="no CUDA device") as e:
        compute_profile("cuda")
    assert "\n" not in str(e.value)


def test_a_pinned_profile_wins_over_the_machine_and_the_simulation(simulate):
    simulate("avx2")
    recorded = ComputeProfile("cpu", True, "recorded by the run folder: bf16", ("amx_bf16",))
    with pinned(recorded):
        assert compute_profile() is recorded and resolve_precision("auto") == "bf16"
        assert compute_profile("cuda" if False else "cpu") is recorded
    assert resolve_precision("auto") == "fp32"  # unpinned again
    assert ComputeProfile.from_dict(json.loads(json.dumps(recorded.to_dict()))) == recorded


def test_the_machine_card_says_what_the_issue_asks(simulate):
    simulate("avx512_bf16")
    card = machine_card(matmul_n=64)
    assert {"cpu", "flags", "cpus", "torch_threads", "torch", "device", "compute_profile", "fp32_gflops", "bf16_gflops"} <= card.keys()
    assert card["fp32_gflops"] > 0 and card["bf16_gflops"] > 0 and isinstance(card["flags"], list)
    assert card["compute_profile"]["simulated"] == "avx512_bf16"
    assert "number format" in hardware.describe_card(card)
    assert machine_card(measure=False)["fp32_gflops"] is None


# --------------------------------------- both number formats, every machine ---


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_sampling_and_scoring_run_in_both_formats(tiny_model_dir, precision, dtype):
    from tripost.student import SamplingParams, build_prompt, sequence_logprobs

    s = load_student(f"hf:{tiny_model_dir}", precision=precision)
    assert s.model.dtype == dtype and s.describe()["precision"] == precision
    prompts = [build_prompt(s.tokenizer, q) for q in ("What is 2 + 3?", "Sort: pear apple")]
    params = SamplingParams(n=2, temperature=0.9, max_new_tokens=6, seed=5)
    first = s.sample(prompts, params)
    assert first == s.sample(prompts, params)  # the same call on the same machine: the same text, in either format
    assert s.greedy(prompts, max_new_tokens=6) == s.greedy(prompts, max_new_tokens=6)
    scores = sequence_logprobs(s, prompts, ["5", "apple pear"])
    assert all(math.isfinite(x.sum) and x.n_tokens >= 1 for x in scores)


def _examples(n=8):
    rows = [("What is 2 + 3?", "(1) 2 + 3 = 5.\n(Final response) So the answer is 5."),
            ("Sort the words: b a", "(1) a < b.\n(Final response) So the answer is a b.")]
    return datasets.Dataset.from_dict({"prompt": [rows[i % 2][0] for i in range(n)], "completion": [rows[i % 2][1] for i in range(n)],
                                       "weight": [1.0] * n})


@pytest.mark.parametrize("mixed", ["no", "bf16"])
def test_training_runs_with_and_without_bf16_autocast(tiny_model_dir, tmp_path, mixed):
    # bf16 autocast on a CPU, named, so it runs here even where auto would not pick it.
    cfg = TrainConfig(student=f"hf:{tiny_model_dir}", mode="full", precision="fp32", mixed_precision=mixed, batch_size=4,
                      learning_rate=1e-3, warmup=0.0, max_steps=4, logging_steps=1, save_steps=100, progress=False, compile="off")
    res = train_sft(cfg, _examples(), tmp_path / "out")
    losses = [p["loss"] for p in res.loss_curve]
    assert res.steps == 4 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]  # it learns in either format
    setup = json.loads((tmp_path / "out" / "train_metrics.json").read_text()).get("setup") or {}
    if setup:
        assert setup.get("autocast") == mixed


# ------------------------------------------------- one decision per run folder ---


def _run(out, model, *extra):
    from tripost.loop import run_loop

    # The base student's evaluation only: the cheapest run that samples.
    return run_loop(out, overrides=[f"student.spec=hf:{model}", "student.eval_base=true", "loop.iteration0=false", "loop.iterations=0",
                                    "tasks.n_train=2", "tasks.n_eval=1", "eval.max_new_tokens=4", "eval.max_turns=1", "eval.n_bootstrap=20",
                                    "gap.enabled=false", *extra], progress=False)


def test_a_run_records_its_machine_and_keeps_its_number_format_on_resume(tiny_model_dir, tmp_path, simulate, capsys):
    simulate("amx")
    out = tmp_path / "run"
    _run(out, tiny_model_dir)
    card = json.loads((out / "machine.json").read_text())
    assert card["compute_profile"]["bf16"] is True and card["fp32_gflops"] > 0 and "flags" in card
    ev = json.loads((out / "base" / "eval" / "eval.json").read_text())
    assert ev["student"]["precision"] == "bf16" and ev["config"]["batch_size"] >= 1  # what made the numbers is recorded
    assert "number format: simulated CPU with amx_bf16" in (out / "report.md").read_text()

    # The same run resumed on an AVX2-only machine keeps bf16, and says so.
    (out / "base" / "eval" / "eval.json").unlink()
    simulate("avx2")
    capsys.readouterr()
    _run(out, tiny_model_dir)
    assert "this run chose bf16 when it started" in capsys.readouterr().err
    assert json.loads((out / "base" / "eval" / "eval.json").read_text())["student"]["precision"] == "bf16"
    assert resolve_precision("auto") == "fp32"  # the pin ends with the run


def test_a_folder_holding_only_config_and_machine_card_is_untouched(tiny_model_dir, tmp_path, simulate):
    from tripost.layout import MACHINE as MACHINE_FILE

    simulate("avx2")
    out = tmp_path / "run"
    _run(out, tiny_model_dir)
    for p in sorted(out.rglob("*"), reverse=True):
        if p.is_file() and p.name not in ("config.json", MACHINE_FILE):
            p.unlink()
    _run(out, tiny_model_dir, "seed=3")  # a different config over a folder where no stage wrote anything: allowed
    assert json.loads((out / "config.json").read_text())["seed"] == 3
