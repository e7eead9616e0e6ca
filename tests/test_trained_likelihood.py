"""scripts/trained_likelihood.py: bad input is one error line (the scoring itself runs a model: the campaign's runs)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("trained_likelihood", Path(__file__).resolve().parents[1] / "scripts" / "trained_likelihood.py")
tl = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(tl)


def test_a_run_without_the_weights_it_started_from_is_one_line(tmp_path, capsys):
    assert tl.main(["--run", str(tmp_path / "nothing")]) == 2
    assert tl.main(["--run", str(tmp_path), "--iteration", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("trained_likelihood: error: ") for line in err)
    assert "no weights for iteration 1 to start from" in err[0]


def test_the_table_gives_the_wrong_answers_share_of_the_loss():
    row = {"run": "/x/sharpen", "iteration": 1, "right": {"examples": 3, "tokens": 30, "mean_token_nll": 0.01},
           "wrong": {"examples": 1, "tokens": 10, "mean_token_nll": 0.09}, "wrong_share_of_examples": 0.25, "wrong_share_of_loss": 0.75}
    assert "| x/sharpen | 1 | 3 | 1 | 0.010 | 0.090 | 25.0% | 75.0% |" in tl.table([row])


def test_the_table_splits_the_loss_by_the_source_of_each_sample():
    row = {"run": "/x/guided", "iteration": 1, "right": {"examples": 4, "tokens": 40, "mean_token_nll": 0.02},
           "wrong": {"examples": 0, "tokens": 0, "mean_token_nll": None}, "wrong_share_of_examples": 0.0, "wrong_share_of_loss": 0.0,
           "by_source": {"guided": {"examples": 1, "tokens": 10, "mean_token_nll": 0.05, "share_of_loss": 0.625},
                         "rejection": {"examples": 3, "tokens": 30, "mean_token_nll": 0.01, "share_of_loss": 0.375}}}
    text = tl.table([row])
    assert "| x/guided | 1 | 4 | 0 | 0.020 | — | 0.0% | 0.0% |" in text
    assert "| x/guided | 1 | guided | 1 | 0.050 | 62.5% |" in text and "| x/guided | 1 | rejection | 3 | 0.010 | 37.5% |" in text
