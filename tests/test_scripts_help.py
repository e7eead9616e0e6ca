"""Every runnable script under scripts/ parses its arguments, so `--help`
prints help and exits instead of running the benchmark and overwriting its
committed results (scripts/teacher_prefixes.py once did)."""

from __future__ import annotations

from pathlib import Path

import pytest

SCRIPTS = sorted(p for p in (Path(__file__).resolve().parents[1] / "scripts").glob("*.py") if '__name__ == "__main__"' in p.read_text())


def test_there_are_scripts():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_its_arguments(script):
    assert "ArgumentParser(" in script.read_text(), f"{script.name} runs without parsing argv: `--help` would run it"
