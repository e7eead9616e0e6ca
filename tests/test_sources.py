"""Data sources behind one interface (tripost.sources): the registry, the
settings shared by the run config and `tripost collect`, the resumable batch
loop, and the record property that tells the buffer what was checked."""

from __future__ import annotations

import argparse
import json
import sys
import types

import pytest

from tripost.buffer import examples_from_records
from tripost.cli import collect_cmd, main
from tripost.errors import TripostError
from tripost.log import LogRecord
from tripost.runconfig import RunConfig
from tripost.settings import from_args, section_defaults
from tripost.sources import SOURCE_NAMES, SOURCES, Job, make_source, source_class
from tripost.sources.base import record_key, sample_seed, sampled_batches
from tripost.sources.settings import CollectSettings
from tripost.tasks import get_task, sample_problems


def test_every_registered_source_has_the_interface():
    for name in SOURCE_NAMES:
        src = make_source(CollectSettings(source=name), teacher_concurrency=3)
        assert src.name == name
        assert isinstance(src.needs_teacher, bool)
        assert callable(src.collect)
    assert make_source(CollectSettings(source="teacher"), 3).config.teacher_concurrency == 3
    guided = CollectSettings(source="guided", guided_strategy="interactive")
    assert make_source(guided, 1).needs_teacher and not make_source(CollectSettings(source="guided"), 1).needs_teacher


def test_an_unknown_source_is_one_line_listing_the_names():
    with pytest.raises(TripostError, match=r"^unknown data source 'star'; choose from teacher, rejection, sharpen, guided, self_verified, demo$"):
        source_class("star")
    with pytest.raises(TripostError, match=r"unknown collect.source 'star'; choose from teacher, rejection, sharpen, guided, self_verified, demo"):
        RunConfig.load(None, ["collect.source=star"])


def test_a_new_source_is_one_registration(monkeypatch):
    """What docs/design.md promises: a class with the interface and one line in SOURCES."""
    module = types.ModuleType("tripost_test_echo_source")

    class EchoSource:
        name = "echo"
        needs_teacher = False

        def __init__(self, samples: int):
            self.samples = samples

        @classmethod
        def from_settings(cls, s, teacher_concurrency=0):
            return cls(s.samples_per_problem)

        def collect(self, job, student, teacher):
            raise NotImplementedError

    module.EchoSource = EchoSource
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(SOURCES, "echo", f"{module.__name__}:EchoSource")
    assert make_source(CollectSettings(samples_per_problem=5), 1).name == "teacher"
    assert source_class("echo") is EchoSource
    assert make_source(types.SimpleNamespace(source="echo", samples_per_problem=5), 1).samples == 5


def test_the_run_config_and_the_collect_flags_share_their_defaults(tmp_path):
    assert RunConfig.defaults()["collect"] == section_defaults(CollectSettings)
    parser = argparse.ArgumentParser()
    collect_cmd.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["collect", "--task", "arithmetic", "--out", str(tmp_path / "c")])
    assert from_args(CollectSettings, args) == CollectSettings()
    # The settings of a run are the source's settings: one builder for both.
    assert RunConfig.load(None, ["collect.samples_per_problem=3"]).data_source().config.samples_per_problem == 3
    assert collect_cmd.collect_settings(parser.parse_args(["collect", "--task", "arithmetic", "--out", "x", "--samples", "3"])).samples_per_problem == 3


@pytest.mark.parametrize("override,flags,run_error,cli_error", [
    ("collect.samples_per_problem=0", ["--samples", "0"], "collect.samples_per_problem must be at least 1, not 0",
     "--samples must be at least 1, not 0"),
    ("collect.top_p=1.5", ["--top-p", "1.5"], "collect.top_p must be in (0, 1], not 1.5", "--top-p must be in (0, 1], not 1.5"),
    ("collect.max_edits=-1", ["--max-edits", "-1"], "collect.max_edits must be 0 or more, not -1", "--max-edits must be 0 or more, not -1"),
])
def test_a_wrong_setting_is_named_the_way_it_was_set(tmp_path, capsys, override, flags, run_error, cli_error):
    with pytest.raises(TripostError) as e:
        RunConfig.load(None, [override])
    assert str(e.value) == run_error
    assert main(["collect", "--task", "arithmetic", "--n", "1", "--out", str(tmp_path / "c"), *flags]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert err == [f"tripost collect: error: {cli_error}"]
    assert not (tmp_path / "c").exists()


def test_a_setting_of_another_source_is_refused(tmp_path, capsys):
    argv = ["collect", "--task", "arithmetic", "--n", "1", "--out", str(tmp_path / "c")]
    assert main([*argv, "--reward", "logprob"]) == 2
    assert "--reward goes with --source sharpen" in capsys.readouterr().err
    assert main([*argv, "--source", "rejection", "--guided", "answer"]) == 2
    assert "--guided goes with --source guided, not --source rejection" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------- the batch loop ---


@pytest.fixture()
def problems():
    return sample_problems(get_task("arithmetic"), n=5, seed=3)


def test_sampled_batches_resamples_a_half_logged_batch_whole(problems):
    calls = []

    def sampler(batch, n, seed):
        calls.append(([p.id for p in batch], seed))
        return [[f"{p.id}/{s}/{seed}" for s in range(n)] for p in batch]

    # Problem 0 fully logged, problem 1 half: the first batch (0, 1) is sampled
    # whole with the seed of the whole batch, and only the missing keys come back.
    done = {record_key(problems[0], 0, s, 1) for s in range(2)} | {record_key(problems[1], 0, 0, 1)}
    batches = list(sampled_batches(problems, sampler, done.__contains__, samples=2, batch_size=2, passes=1, iteration=1, seed=7))
    first = batches[0]
    assert calls[0] == ([problems[0].id, problems[1].id], sample_seed(7, 1, 0, [problems[0].id, problems[1].id]))
    assert first.skipped == 1 and [(p.id, s) for p, s, _, _ in first.todo] == [(problems[1].id, 1)]
    assert [len(b.problems) for b in batches] == [2, 2, 1] and [b.last_in_pass for b in batches] == [False, False, True]
    # A fully logged batch is not sampled at all.
    calls.clear()
    everything = {record_key(p, 0, s, 1) for p in problems for s in range(2)}
    assert all(not b.todo for b in sampled_batches(problems, sampler, everything.__contains__, samples=2, batch_size=2, passes=1,
                                                    iteration=1, seed=7))
    assert calls == []


def test_sampled_batches_stops_when_asked(problems):
    seen = []
    gen = sampled_batches(problems, lambda b, n, s: [["x"] * n for _ in b], lambda k: False, samples=1, batch_size=1, passes=3,
                          iteration=0, seed=0, stop=lambda: len(seen) >= 2)
    for batch in gen:
        seen.append(batch)
    assert len(seen) == 2


# ------------------------------------------------ what a record carries ---


def record(**kw):
    base = {"key": "k", "problem": {"question": "(1 + 2) =", "id": "p", "rationale": ""}, "kind": "direct",
            "turns": [{"rationale": "(1) 1 + 2 = 3.\n(Final response) So the answer is 3.", "feedback": None}],
            "final_correct": False, "stop_reason": "best of 4 by logprob"}
    return LogRecord.from_dict({**base, **kw})


def test_checked_is_a_record_property_the_buffer_reads():
    # An unchecked record is kept although wrong, whatever its source says it is.
    kept, dropped = examples_from_records([record(source="rejection", checked=False)], include_gold=False)
    assert len(kept) == 1 and not dropped
    kept, dropped = examples_from_records([record(source="rejection")], include_gold=False)
    assert not kept and dropped["not correct"] == 1
    # A sharpen record from before the flag existed reads as unchecked.
    assert record(source="sharpen").checked is False
    assert record(source="sharpen", checked=True).checked is True
    with pytest.raises(ValueError, match="'checked' must be true or false"):
        LogRecord.from_dict({**json.loads(record().to_json()), "checked": "no"})


def test_a_job_carries_what_every_source_needs(tmp_path, problems):
    job = Job(problems, tmp_path / "log.jsonl", iteration=2, seed=5, config_hash="h")
    src = make_source(CollectSettings(source="rejection"), 1)
    cfg = src.job_config(job)
    assert (cfg.iteration, cfg.seed, cfg.config_hash) == (2, 5, "h") and src.job_params(job).seed == 5
