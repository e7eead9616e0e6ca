"""scripts/campaign.py's bookkeeping, on hand-written files (no model runs):
the curve read from the evaluations, the iteration-0 rule, what is published."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("campaign", ROOT / "scripts" / "campaign.py")
campaign = importlib.util.module_from_spec(spec)
spec.loader.exec_module(campaign)


def _eval(path: Path, acc: float, n: int = 300) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = {"n": n, "first_accuracy": acc, "ci": {"first_accuracy": [max(0.0, acc - 0.05), min(1.0, acc + 0.05)]}}
    path.write_text(json.dumps({"metrics": {"total": m, "seen": {**m, "first_accuracy": acc + 0.1}, "unseen": {**m, "first_accuracy": acc - 0.1}},
                                "student": {"precision": "bf16"}, "config": {"batch_size": 64}}))


def test_the_curve_the_iteration0_rule_and_the_published_files(tmp_path):
    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "abc123" * 6, "started": "now", "docs": str(docs)})
    campaign.write_json(d / "measure.json", {"machine": {"cpu": "X", "flags": ["avx2"]}, "train_tokens_per_s": 100.0,
                                             "sample_tokens_per_s": 200.0, "train_tokens_per_example": 170.0})
    assert [s["done"] for s in campaign.competence_stages(d)][:2] == [False, False]
    for n, acc in ((400, 0.12), (800, 0.31), (1600, 0.38)):
        _eval(campaign.chunk_dir(d, n // campaign.CHUNK) / "eval.json", acc)
    rows = campaign.curve(d)
    assert [r["gold_examples"] for r in rows] == [400, 800, 1600] and rows[1]["ci"] == [0.26, 0.36]
    assert campaign.iteration0(rows)["gold_examples"] == 800  # the smallest at >= 30%
    assert campaign.iteration0(rows[:1])["gold_examples"] == 400  # none reached it: the best
    campaign.publish(d, docs)
    data = json.loads((docs / "learning.json").read_text())
    assert data["sft_gold_curve"][2]["first_acc"] == 0.38 and data["meta"]["machine"]["cpu"] == "X" and data["iteration0"]["gold_examples"] == 800
    md = (docs / "learning.md").read_text()
    assert "| 800 | 31.0% | [26.0, 36.0] |" in md and "the smallest at >= 30%" in md
    stages = campaign.plan(d, json.loads((d / "measure.json").read_text()))
    assert len(stages) == 8 + 4 and all(s["projected_s"] > 0 for s in stages)
    assert sum(s["kind"] == "eval" for s in stages) == len(campaign.CURVE)


def test_a_curve_still_running_says_so(tmp_path):
    d, docs = tmp_path / "c", tmp_path / "docs"
    campaign.write_json(d / "campaign.json", {"commit": "0" * 40, "started": "now", "docs": str(docs)})
    _eval(campaign.chunk_dir(d, 1) / "eval.json", 0.107)
    campaign.publish(d, docs)
    assert "the best so far: none of the 1 of 4 checkpoints evaluated reached 30%" in (docs / "learning.md").read_text()
