"""scripts/learning_evidence.py on hand-made transcripts: the verdict rates,
the step located against the task's step checker, the last-step baseline,
what the second turn did."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("learning_evidence", ROOT / "scripts" / "learning_evidence.py")
le = importlib.util.module_from_spec(spec)
spec.loader.exec_module(le)

Q, GOLD = "((5 + 5) - (7 + 1)) =", "2"
RIGHT = ('(1) This equation can be written as "(A - B)", where A = (5 + 5) and B = (7 + 1).\n(2) Let\'s calculate A = (5 + 5) = 10.\n'
         "(3) Let's calculate B = (7 + 1) = 8.\n(4) Then, the final equation is (A - B) = (10 - 8) = 2.\n(Final response) So the answer is 2.")
WRONG_LAST = RIGHT.replace("= 2.", "= 4.").replace("answer is 2", "answer is 4")  # first error: step 4
WRONG_EARLY = RIGHT.replace("= 10.", "= 11.")  # first error: step 2 (the answer stays 2 only in its text)
BLAME_4 = 'Step (1) to step (3) are correct. In step (4) the part "(10 - 8)" is incorrect. This is because 10 - 8 = 2.'
BLAME_2 = 'Step (1) is correct. In step (2) the part "(5 + 5)" is incorrect. This is because 5 + 5 = 10.'
OK = "Step (1) to step (4) are correct. The final response is also correct."


def rec(first: str, feedback: str, right: bool, verdict: bool | None, claim: int | None, then: tuple[str, bool] | None = None) -> dict:
    text = f"{first}\nFeedback: {feedback}" + (f"\nUpdated Answer: {RIGHT if then[1] else first}" if then else "")
    answers = ["2" if right else "4"] + ([then[0]] if then else [])
    correct = [right] + ([then[1]] if then else [])
    return {"question": Q, "gold": GOLD, "subset": "seen", "text": text, "first_correct": right, "verdicts": [verdict] + [None] * bool(then),
            "claimed_errors": [claim] + [None] * bool(then), "answers": answers, "correct": correct}


def test_a_verdict_that_ignores_the_truth_scores_fifty_percent_and_its_located_steps_are_read_against_the_checker():
    recs = [rec(RIGHT, OK, True, True, None), rec(RIGHT, BLAME_4, True, False, 4, ("2", True)),
            rec(WRONG_LAST, BLAME_4, False, False, 4, ("2", True)), rec(WRONG_LAST, BLAME_4, False, False, 4, ("4", False)),
            rec(WRONG_EARLY, BLAME_4, False, False, 4, ("5", False)), rec(WRONG_EARLY, OK, False, True, None)]
    r = le.verifier_row("arithmetic", "m", recs, "seen")
    assert (r["first_right"], r["first_wrong"], r["verdict_given"]) == (2, 4, 1.0)
    assert r["right_called_correct"] == 0.5 and r["wrong_called_wrong"] == 0.75 and r["balanced_accuracy"] == 0.625
    # Step 4 is the first error of two of the three blamed wrong attempts; every blame names the last step.
    assert r["located_n"] == 3 and abs(r["located_first_error"] - 2 / 3) < 1e-9
    assert r["blames_last_step"] == 1.0 and abs(r["first_error_at_last_step"] - 2 / 3) < 1e-9
    assert r["turn2_after_called_wrong"] == {"fixed": 1, "same answer": 1, "another wrong answer": 1}
    # A student that never writes a verdict has no rates, not zeros.
    silent = le.verifier_row("arithmetic", "m", [{**x, "verdicts": [None], "claimed_errors": [None]} for x in recs[:2]])
    assert silent["verdict_given"] == 0.0 and silent["right_called_correct"] is None and silent["balanced_accuracy"] is None


def test_error_kinds_count_the_checkers_reason_once_per_kind():
    recs = [rec(WRONG_LAST, BLAME_4, False, False, 4), rec(WRONG_LAST, BLAME_4, False, False, 4), rec(RIGHT, OK, True, True, None)]
    (kind,) = le.error_kinds("arithmetic", recs)
    assert kind["count"] == 2 and kind["of"] == 2 and "N" in kind["kind"] and not any(ch.isdigit() for ch in kind["kind"])


def test_the_markdown_keeps_its_reading(tmp_path):
    md = tmp_path / "e.md"
    md.write_text("# old tables\n\n## Reading\n\nWhat the figures mean.\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    assert le.main(["--docs", str(docs), "--md", str(md), "--json", str(tmp_path / "e.json")]) == 0  # no comparisons there: empty tables
    text = md.read_text()
    assert text.startswith("# Why the learning comparisons") and text.endswith("## Reading\n\nWhat the figures mean.\n")
    assert json.loads((tmp_path / "e.json").read_text())["verifier"] == []
