"""Shared test setup: offline, a persistent model cache, a tiny model.

Nothing may come from a model hub (docs/design.md), so the hub is switched off for
every test. `TRIPOST_HOME` defaults to a folder under .pytest_cache (git
ignores it): the embedded SmolLM2's one-time GGUF conversion (~20 s) then
happens once per checkout, not once per run. Tests that need an empty cache
make their own with monkeypatch. Every default here yields to a value the
caller already set in the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Set at import, before any test module imports transformers or huggingface_hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRIPOST_HOME", str(ROOT / ".pytest_cache" / "tripost-home"))
# Passive OpenMP waiting, as tripost/__init__.py sets it, but here it must be
# set before any test module imports torch (libgomp reads it when it loads).
# With the default spinning policy and anything else on the CPU, a 20-token
# sample from the real student took 45 s instead of 1.6 s on 2 cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


if os.environ.get("TRIPOST_TINY_MODEL"):
    # A borrowed GPU machine (scripts/gpu_check.sh) has no embedded student
    # (98 MB, over what a call carries): the tiny models built there take the
    # prepared tiny model's copy of its tokenizer.
    from tripost.student import embedded as _embedded

    try:
        _embedded.find_embedded_gguf()
    except Exception:  # noqa: BLE001 - missing for any reason: use the prepared copy
        _embedded.embedded_tokenizer_dir = lambda: Path(os.environ["TRIPOST_TINY_MODEL"])


@pytest.fixture(scope="session")
def tripost_home() -> Path:
    home = Path(os.environ["TRIPOST_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny-model tests: their matrices are
    far too small to split across threads, and on a busy 2-core machine
    OpenMP's spin-waiting makes two threads 10x slower than one. Restored
    afterwards for the rest of the session."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tripost_home: Path) -> Path:
    """A tiny random Llama with the real SmolLM2 tokenizer; load it as `hf:PATH`.
    Read-only: a test that changes model files should build its own."""
    from tripost.student.tiny import build_tiny_model

    if os.environ.get("TRIPOST_TINY_MODEL"):
        return Path(os.environ["TRIPOST_TINY_MODEL"])  # prepared elsewhere (scripts/gpu_check.sh)
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def embedded_dir(tripost_home: Path) -> Path:
    """The converted embedded SmolLM2 (converted on first use, then cached)."""
    from tripost.student.embedded import embedded_model_dir

    return embedded_model_dir()


@pytest.fixture
def simulate(monkeypatch):
    """`simulate("avx2" | "avx512_bf16" | "amx" | "cuda")`: every `auto`
    decision below, in this process and in the CLI subprocesses a test starts,
    sees that kind of machine (tripost.student.hardware.SIMULATED), whatever
    machine the suite runs on. Tests that check what `auto` picks use it;
    tests of logic pin their precision instead."""
    from tripost.student.hardware import SIMULATE_ENV

    def use(name: str) -> None:
        monkeypatch.setenv(SIMULATE_ENV, name)

    return use


@pytest.fixture
def fp32_machine(simulate):
    """An AVX2-only CPU: `auto` means fp32 weights and no autocast, as the
    tests that compare `auto` runs against fp32 expectations assume."""
    simulate("avx2")


@pytest.fixture
def random_lora():
    """`random_lora(spec, folder)`: a LoRA adapter for `spec` whose B matrices
    are random (a fresh one starts at zero and changes nothing), saved to
    `folder`: an adapter that visibly changes the student's output."""

    def save(spec: str, folder: Path) -> Path:
        import torch

        from tripost.student import load_student

        student = load_student(spec, precision="fp32").attach_lora()
        with torch.no_grad():
            for name, p in student.model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.5)
        return student.save_adapter(folder)

    return save
