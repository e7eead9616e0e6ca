"""scripts/compare_learning_runs.py: the same run whatever its folder and timings, a moved number is not."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare_learning_runs", ROOT / "scripts" / "compare_learning_runs.py")
cmp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cmp)


def _run(root: Path, acc: float, latency: float) -> Path:
    (root / "runs" / "tripost" / "it1" / "collect").mkdir(parents=True)
    rec = {"id": "p1#0", "student": {"adapter": str(root / "runs" / "tripost" / "it0" / "train")},
           "teacher_calls": [{"kind": "feedback", "latency_s": latency}]}
    (root / "runs" / "tripost" / "it1" / "collect" / "log.jsonl").write_text(json.dumps(rec) + "\n")
    table = root / "table.json"
    table.write_text(json.dumps({"rows": [{"method": "tripost-t1", "final_acc": acc, "wall_s": latency * 1000}]}))
    return table


def test_same_run_in_other_folders_with_other_timings(tmp_path, capsys):
    b, a = _run(tmp_path / "b", 0.25, 0.1), _run(tmp_path / "a", 0.25, 0.3)
    out = tmp_path / "same.json"
    assert cmp.main(["--before", str(b), "--before-runs", str(tmp_path / "b" / "runs"), "--after", str(a),
                     "--after-runs", str(tmp_path / "a" / "runs"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["summary"]["identical"] is True


def test_a_moved_number_is_not_the_same_run(tmp_path, capsys):
    b, a = _run(tmp_path / "b", 0.25, 0.1), _run(tmp_path / "a", 0.5, 0.1)
    assert cmp.main(["--before", str(b), "--before-runs", str(tmp_path / "b" / "runs"), "--after", str(a),
                     "--after-runs", str(tmp_path / "a" / "runs")]) == 1
    assert "identical: False" in capsys.readouterr().out
