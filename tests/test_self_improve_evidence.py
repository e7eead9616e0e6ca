"""scripts/self_improve_evidence.py on logs the real sources write (self-verified)
and on hand-made sharpen and guided records: the share trained right against
the samples, the pick on mixed problems against chance, the verifier's
ranking, DPO's pairs, guided's plain-round coverage."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tripost.config import write_config
from tripost.layout import RunLayout
from tripost.log import LogRecord, LogWriter
from tripost.runconfig import RunConfig
from tripost.sources.selfverify import SelfVerifyConfig, self_verified_collect
from tripost.tasks.base import Problem

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("self_improve_evidence", ROOT / "scripts" / "self_improve_evidence.py")
sie = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = sie  # its dataclasses look their module up there
spec.loader.exec_module(sie)

PROBLEM = Problem(id="p0", family="arithmetic", question="2 + 3 =", answer="5", rationale="(1) 2 + 3 = 5.\n(Final response) So the answer is 5.",
                  difficulty="1", subset="seen", split="train")
SCORES = {5: 0.2, 6: 0.9, 7: 0.6}  # the verifier believes the wrong answers


def attempt(x: int) -> str:
    return f"(1) 2 + 3 = {x}.\n(Final response) So the answer is {x}."


def self_verified(runs: Path, method: str, **kw) -> None:
    """One problem, samples 5 6 5 7 (two right), scored by their answers, through the real source."""
    sampler = lambda problems, n, seed: [[attempt(x) for x in (5, 6, 5, 7)] for _ in problems]  # noqa: E731
    scorer = lambda q, attempts, texts: ([SCORES[int(a.rsplit(" ", 1)[1].rstrip("."))] for a in attempts], [{}] * len(attempts))  # noqa: E731
    self_verified_collect([PROBLEM], sampler, scorer, RunLayout(runs / "arithmetic" / method).it(1).log,
                          SelfVerifyConfig(samples=4, iteration=1, **kw), progress=False)


def test_a_verifier_that_believes_the_wrong_answers_trains_them_and_ranks_right_below_wrong(tmp_path):
    self_verified(tmp_path, "self-verified-filter", mode="filter", filter="quantile", quantile=0.5)
    self_verified(tmp_path, "self-verified-reweight", mode="reweight")
    f, w = (sie.run_rows(tmp_path / "arithmetic" / m, "arithmetic", m)[0] for m in ("self-verified-filter", "self-verified-reweight"))
    assert (f["groups"], f["samples"], f["samples_right"], f["solved"]) == (1, 4, 0.5, 1.0)
    assert (f["trained"], f["trained_right"], f["mixed"], f["mixed_picked_right"], f["mixed_chance"]) == (2, 0.0, 1, 0.0, 0.5)
    assert (f["verifier_ranks_right_higher"], f["verifier_pairs"]) == (0.0, 4)  # 0.2 < 0.9 and 0.6, twice
    assert f["mean_score_right"] == pytest.approx(0.2) and f["mean_score_wrong"] == pytest.approx(0.75)
    assert f["trained_per_problem"] == {"all right": None, "mixed": 2.0, "all wrong": None}
    # Reweighted: every sample trains, the right ones at 0.2 / 1.9 of the mass each.
    assert w["trained"] == 4 and w["trained_right"] == pytest.approx(0.4 / 1.9) and w["mixed_chance"] == pytest.approx(0.5)
    # Scores 0.2, 0.2, 0.9, 0.6 normalised to mean 1: weights from 0.2 * 4 / 1.9 to 0.9 * 4 / 1.9.
    assert w["weight_range"] == pytest.approx([round(0.8 / 1.9, 4), round(3.6 / 1.9, 4)])


def record(key: str, right: bool, kind: str = "direct", **kw) -> LogRecord:
    answer = 5 if right else 6
    return LogRecord(key=key, problem=PROBLEM.to_dict(), kind=kind, turns=[{"rationale": attempt(answer), "feedback": None, "source": "student"}],
                     final_correct=right, stop_reason="x", iteration=1, **kw)


def write(runs: Path, method: str, records: list[LogRecord]) -> Path:
    folder = runs / "arithmetic" / method
    with LogWriter(RunLayout(folder).it(1).log) as w:
        for r in records:
            w.write(r)
    return folder


def test_a_run_whose_buffer_deduped_trains_a_problems_repeated_sample_once(tmp_path):
    """Samples 5 6 5 7: with buffer.dedupe on (the default before it became auto), the second 5 is the
    first's text, and the buffer drops it; the figures count what the buffer kept."""
    self_verified(tmp_path, "self-verified-reweight", mode="reweight")
    folder = tmp_path / "arithmetic" / "self-verified-reweight"
    (kept,) = sie.run_rows(folder, "arithmetic", "self-verified-reweight")
    write_config(RunConfig.load(None, ["collect.source=self_verified", "buffer.dedupe=true"]).to_dict(), folder)
    (deduped,) = sie.run_rows(folder, "arithmetic", "self-verified-reweight")
    assert (kept["trained"], deduped["trained"]) == (4, 3)
    assert kept["trained_right"] == pytest.approx(0.4 / 1.9) and deduped["trained_right"] == pytest.approx(0.2 / 1.7)
    # A run begun before a key was added (here buffer.verdict) is read with that key at its default.
    old = RunConfig.load(None, ["collect.source=self_verified", "buffer.dedupe=true"]).to_dict()
    del old["buffer"]["verdict"]
    write_config(old, folder)
    assert sie.run_rows(folder, "arithmetic", "self-verified-reweight")[0]["trained"] == 3


def test_a_sharpen_pick_is_read_against_its_own_samples_and_dpo_against_its_pairs(tmp_path):
    picks = [record(f"p{i}#sharpen@it1", right, source="sharpen", checked=False, student={"sharpen": {"samples": 4, "correct_samples": c}},
                    rejected={"answer": rej, "rationale": attempt(int(rej))})
             for i, (right, c, rej) in enumerate([(True, 1, "6"), (False, 1, "5"), (True, 4, "5"), (False, 0, "7")])]
    # Four samples alike (all right): no pair, so nothing DPO trains; SFT-sharpening trains the pick.
    picks.append(record("p4#sharpen@it1", True, source="sharpen", checked=False, student={"sharpen": {"samples": 4, "correct_samples": 4}}))
    (r,) = sie.run_rows(write(tmp_path, "sharpen-dpo", picks), "arithmetic", "sharpen-dpo")
    assert (r["samples"], r["samples_right"], r["solved"], r["trained"], r["trained_right"]) == (20, 10 / 20, 0.8, 4, 0.5)
    # Mixed: the first two (one right sample of four each); the pick is right once, chance 1/4.
    assert (r["mixed"], r["mixed_picked_right"], r["mixed_chance"]) == (2, 0.5, 0.25)
    assert r["dpo_pairs"] == {"chosen right, rejected wrong": 1, "chosen wrong, rejected right": 1, "both right or both wrong": 2}
    (plain,) = sie.run_rows(write(tmp_path, "sharpen", picks), "arithmetic", "sharpen")
    assert "dpo_pairs" not in plain and (plain["trained"], plain["trained_right"]) == (5, 0.6)  # the pick alone, each problem's


def test_guided_counts_what_the_plain_round_solved_and_what_guidance_added(tmp_path):
    recs = [record("p0#g0s0@it1", False, "failed", source="rejection"), record("p0#g1-rationales0@it1", True, source="guided",
                                                                             guide={"strategy": "rationale", "round": 1})]
    (r,) = sie.run_rows(write(tmp_path, "guided", recs), "arithmetic", "guided")
    assert (r["groups"], r["solved_plain_round"], r["solved"], r["trained"], r["trained_right"], r["trained_steps_right"]) == (1, 0.0, 1.0, 1, 1.0, 1.0)
    # GSI's brute-force baseline: its extra rounds are unguided too (no guide), and still not the plain round.
    recs = [record("p0#g0s0@it1", False, "failed", source="rejection"), record("p0#g1-resamples0@it1", True, source="rejection")]
    (r,) = sie.run_rows(write(tmp_path, "guided-resample", recs), "arithmetic", "guided-resample")
    assert (r["solved_plain_round"], r["solved"]) == (0.0, 1.0) and "after the unguided rounds 100.0%" in sie.notes(r)


def test_the_command_writes_its_figures_keeps_a_reading_and_refuses_an_empty_folder(tmp_path, capsys):
    self_verified(tmp_path / "runs", "self-verified-filter", mode="filter", filter="quantile", quantile=0.5)
    md = tmp_path / "e.md"
    md.write_text("# old\n\n## Reading\n\nWhat it means.\n")
    assert sie.main(["--runs", str(tmp_path / "runs"), "--md", str(md), "--json", str(tmp_path / "e.json")]) == 0
    assert md.read_text().endswith("## Reading\n\nWhat it means.\n") and "| arithmetic | self-verified-filter | 1 |" in md.read_text()
    assert json.loads((tmp_path / "e.json").read_text())["rows"][0]["verifier_pairs"] == 4
    # No collect.json: the collection has not finished, and the row says so.
    assert json.loads((tmp_path / "e.json").read_text())["rows"][0]["finished"] is False and "collecting: its records so far" in md.read_text()
    RunLayout(tmp_path / "runs" / "arithmetic" / "self-verified-filter").it(1).collect_json.write_text("{}")
    assert sie.main(["--runs", str(tmp_path / "runs"), "--md", str(md), "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["rows"][0]["finished"] is True and "collecting" not in md.read_text()
    # A second training seed's folder (campaign.label_free_dir: METHOD-seed1) is read as the same method, its rows marked.
    self_verified(tmp_path / "runs", "self-verified-filter-seed1", mode="filter", filter="quantile", quantile=0.5)
    assert sie.main(["--runs", str(tmp_path / "runs"), "--md", str(md), "--json", str(tmp_path / "e.json")]) == 0
    rows = json.loads((tmp_path / "e.json").read_text())["rows"]
    assert [(r["method"], r["seed"]) for r in rows] == [("self-verified-filter", 0), ("self-verified-filter", 1)]
    assert "| arithmetic | self-verified-filter (seed 1) | 1 |" in md.read_text()
    # A self-verified collection that has begun with no record yet: its row, with no score to show.
    empty = RunLayout(tmp_path / "runs" / "word_sorting" / "self-verified-reweight").it(1).log
    empty.parent.mkdir(parents=True)
    empty.write_text("")
    assert sie.main(["--runs", str(tmp_path / "runs"), "--md", str(md)]) == 0
    assert "| word_sorting | self-verified-reweight | 1 | 0 | 0 |" in md.read_text() and "mean score right —, wrong —" in md.read_text()
    capsys.readouterr()
    assert sie.main(["--runs", str(tmp_path / "nothing")]) == 2
    (tmp_path / "empty").mkdir()
    assert sie.main(["--runs", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("self_improve_evidence: error: ") for line in err)


def test_keep_published_keeps_a_lost_folder_s_rows_and_names_each_folder(tmp_path, capsys):
    """--keep-published: the rows --json holds of runs --runs has no folder of
    stay, naming the folder they were read from (rows written before rows
    named it: the --runs of the command that wrote them); a run read again
    replaces its published rows."""
    old = {"command": "x.py --runs /gone/selfimprove --json e.json",
           "rows": [{"task": "arithmetic", "method": "sharpen", "iteration": 1, "seed": 0, "groups": 4, "samples": 16, "samples_right": 0.5,
                     "solved": 0.5, "trained": 4, "trained_right": 0.5, "trained_steps_right": 0.5, "mixed": 2, "mixed_picked_right": 0.5,
                     "mixed_chance": 0.5, "finished": True},
                    {"task": "arithmetic", "method": "self-verified-filter", "iteration": 1, "seed": 0, "groups": 0, "samples": 0,
                     "samples_right": None, "solved": None, "trained": 0, "trained_right": None, "trained_steps_right": None, "mixed": 0,
                     "mixed_picked_right": None, "mixed_chance": None, "finished": True}]}
    (tmp_path / "e.json").write_text(json.dumps(old))
    self_verified(tmp_path / "runs", "self-verified-filter", mode="filter", filter="quantile", quantile=0.5)
    md = tmp_path / "e.md"
    assert sie.main(["--runs", str(tmp_path / "runs"), "--md", str(md), "--json", str(tmp_path / "e.json"), "--keep-published"]) == 0
    rows = json.loads((tmp_path / "e.json").read_text())["rows"]
    assert [(r["method"], r["runs"]) for r in rows] == [("sharpen", "/gone/selfimprove"), ("self-verified-filter", str(tmp_path / "runs"))]
    assert rows[1]["samples"] > 0  # read again, not the published row
    assert "`/gone/selfimprove`: arithmetic sharpen;" in md.read_text()
    capsys.readouterr()
    assert sie.main(["--runs", str(tmp_path / "runs"), "--keep-published"]) == 2
    assert capsys.readouterr().err.strip() == "self_improve_evidence: error: --keep-published keeps the rows of --json; name it"
