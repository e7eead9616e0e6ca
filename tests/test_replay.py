"""Offline replay of the shipped interaction log: zero teacher requests, zero sampling."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tripost.log import read_log

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "replay").glob("*.jsonl"))

# Run the CLI with every way to reach a teacher or a model cut off: importing
# a teacher backend, an LLM SDK, transformers or peft (no model can generate
# without them) fails, and so does opening any network connection.
GUARD = """
import socket, sys
class Block:
    BLOCKED = ("tripost.teachers.scripted", "tripost.teachers.prompted", "tripost.teachers.openai_chat",
               "tripost.teachers.anthropic_chat", "tripost.teachers.hf_chat", "tripost.teachers.replay",
               "openai", "anthropic", "transformers", "peft")
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in self.BLOCKED):
            raise ImportError(f"replay must not import {name}")
        return None
sys.meta_path.insert(0, Block())
def no_net(*a, **k):
    raise OSError("replay must not open a connection")
socket.socket.connect = no_net
from tripost.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_log_ships_and_is_small_and_valid():
    assert SHIPPED, "replay/ ships no log"
    assert sum(p.stat().st_size for p in SHIPPED) <= 2 * 1024 * 1024
    for path in SHIPPED:
        records = list(read_log(path))
        assert records and {r.kind for r in records} <= {"improvement", "direct", "failed"}
        assert all(r.teacher_calls and r.student for r in records)


@pytest.mark.parametrize("verb", ["replay", "buffer"])
def test_replay_makes_no_teacher_or_generation_calls(tmp_path, verb):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", GUARD, verb, *map(str, SHIPPED), "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    if verb == "replay":
        assert summary["teacher_calls"] == 0 and summary["generation_calls"] == 0
        assert summary["examples"] > 0
        buf = out / "buffer"
    else:
        buf = out
    import datasets

    ds = datasets.load_from_disk(str(buf / "dataset"))
    assert ds.num_rows > 0 and set(ds["kind"]) <= {"improvement", "direct", "gold"}


def test_corrupt_line_in_a_log_is_named_and_skippable(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = SHIPPED[0].read_text().splitlines()[:3]
    log.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    r = subprocess.run([sys.executable, "-m", "tripost", "buffer", str(log), "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert r.returncode == 2 and f"{log}:2: corrupt log line" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "tripost", "buffer", str(log), "--out", str(tmp_path / "b"), "--skip-bad-lines"], capture_output=True, text=True)
    assert r.returncode == 0 and "skipped 1 corrupt log line" in r.stderr


def test_replay_trains_from_the_rebuilt_buffer(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "tripost", "replay", str(SHIPPED[0]), "--out", str(out), "--json", "--train",
                        "--student", f"hf:{tiny_model_dir}", "--precision", "fp32", "--epochs", "1", "--ratio", "1:0:1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["teacher_calls"] == 0 and summary["train"]["steps"] > 0
    from tripost.student.load import is_trained_weights

    assert is_trained_weights(out / "train")
