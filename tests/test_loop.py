"""`tripost run` end to end on the tiny model with the scripted teacher; kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from tripost.student.load import is_full_weights


@pytest.fixture
def tiny(tiny_model_dir):
    return tiny_model_dir


def run_cmd(model, out, *extra):
    return [sys.executable, "-m", "tripost", "run", "--out", str(out), "--no-progress",
            f"student.spec=hf:{model}", "tasks.n_train=6", "tasks.n_eval=3", "train.epochs=1", "train.precision=fp32",
            "collect.max_new_tokens=24", "collect.samples_per_problem=1", "eval.max_new_tokens=24", "eval.max_turns=1",
            "eval.n_bootstrap=50", "loop.iterations=1", "gap.n_problems=2", "gap.samples=2", "gap.max_new_tokens=16", *extra]


def env(tmp_path):
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRIPOST_HOME": str(tmp_path / "home")}


def test_run_end_to_end_then_resume_after_kill(tmp_path, tiny):
    out = tmp_path / "run"
    # Kill the run once iteration 0's adapter exists, mid-way through the loop.
    proc = subprocess.Popen(run_cmd(tiny, out), env=env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not (out / "it0" / "train" / "train_metrics.json").exists():
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "report.md").exists()
    # A journal another evaluation left where iteration 1's will be: the run starts that one over.
    stale = out / "it1" / "eval" / "eval.journal.jsonl"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text(json.dumps({"schema": "tripost.eval-journal/1", "fingerprint": {"problems": "other"}}) + "\n")

    done = subprocess.run(run_cmd(tiny, out), env=env(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[it0/train] done earlier, skipped" in done.stderr
    assert "note: [it1/eval] starting over:" in done.stderr and "was written by a different evaluation" in done.stderr
    assert not list(out.rglob("*.journal.jsonl"))  # each evaluation's journal goes once its result is written

    for t in (0, 1):
        adapter = out / f"it{t}" / "train"
        # On a CPU, train.mode auto fully fine-tunes a student this small;
        # iteration 1 continues from iteration 0's weights.
        assert is_full_weights(adapter), adapter
        setup = json.loads((adapter / "train_metrics.json").read_text())["setup"]
        assert setup["mode"] == "full" and setup["packing"] is True
        if t == 1:
            assert any("as the weights it continues from" in r and "it0" in r for r in setup["reasons"])
        ev = json.loads((out / f"it{t}" / "eval" / "eval.json").read_text())
        assert ev["metrics"]["total"]["n"] == 6  # 3 seen + 3 unseen held-out test problems
        assert set(ev["problems"]["splits"]) == {"test"}
    log = [json.loads(line) for line in (out / "it1" / "collect" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and all(r["problem"]["split"] == "train" for r in log)
    assert (out / "it1" / "buffer" / "stats.json").exists()
    for t in (0, 1):
        gap = json.loads((out / f"it{t}" / "gap" / "gap.json").read_text())
        assert gap["metrics"]["problems"] == 2 and gap["config"]["verifier"] == "self"
    report = (out / "report.md").read_text()
    assert "## Accuracy" in report and "| it1 | total |" in report
    assert "## Generation-verification gap" in report and "| it1 | self / quantile | 2 x 2 |" in report
    for png in ("accuracy", "self_improvement", "buffer", "teacher"):
        assert (out / "plots" / f"{png}.png").stat().st_size > 1000
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["student"]["spec"] == f"hf:{tiny}" and cfg["seed"] == 0

    # A finished run re-run skips everything; a different config is refused.
    again = subprocess.run(run_cmd(tiny, out), env=env(tmp_path), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "[it1/eval] done earlier, skipped" in again.stderr
    other = subprocess.run(run_cmd(tiny, out, "seed=1"), env=env(tmp_path), capture_output=True, text=True, timeout=600)
    assert other.returncode == 2 and "different config" in other.stderr and len(other.stderr.strip().splitlines()) == 1


def test_report_on_a_non_run_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tripost", "report", str(tmp_path)], capture_output=True, text=True, env=env(tmp_path))
    assert r.returncode == 2 and "not a run folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1
