"""Data sources behind one interface (tripost.sources): the registry, the
settings shared by the run config and `tripost collect`, the collection
loop every sampling source runs on (tripost.sources.template), and the record property that tells the buffer what was checked."""

from __future__ import annotations

import argparse
import json
import sys
import types

import pytest

from tripost.buffer import examples_from_records
from tripost.cli import collect_cmd, main
from tripost.errors import TripostError
from tripost.log import LogRecord, LogWriter, read_log
from tripost.runconfig import RunConfig
from tripost.settings import from_args, section_defaults
from tripost.sources import SOURCE_NAMES, SOURCES, Job, make_source, source_class
from tripost.sources.base import SourceResult, record_key, sample_seed
from tripost.sources.settings import CollectSettings
from tripost.sources.template import CollectionLoop
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


# ------------------------------------------ the collection template ---


@pytest.fixture()
def problems():
    return sample_problems(get_task("arithmetic"), n=5, seed=3)


class EchoLoop(CollectionLoop):
    """The smallest source on the template: a record per sampled text, usable when it ends in an even digit."""

    name = "echo"

    def __init__(self, problems, log_path, sampler, **kw):
        super().__init__(problems, log_path, SourceResult(log_path=str(log_path)), progress=False, **kw)
        self.sampler = sampler

    def make_records(self, batch):
        return [echo_record(key, text) for p, s, key, text in batch.attempts()]


def echo_record(key, text):
    usable = int(text[-1]) % 2 == 0
    return LogRecord(key=key, problem={"question": "q", "id": key.split("#")[0]}, kind="direct" if usable else "failed",
                     turns=[{"rationale": text, "feedback": None}], final_correct=usable, stop_reason="even" if usable else "odd")


def test_the_loop_resamples_a_half_logged_batch_whole_and_counts_what_the_log_held(problems, tmp_path):
    calls = []

    def sampler(batch, n, seed):
        calls.append(([p.id for p in batch], seed))
        return [[f"{p.id}/{s}/{seed % 10}" for s in range(n)] for p in batch]

    # Problem 0 fully logged, problem 1 half: the first batch (0, 1) is sampled
    # whole with the seed of the whole batch, and only the missing keys are written.
    log = tmp_path / "log.jsonl"
    first_seed = sample_seed(7, 1, 0, [problems[0].id, problems[1].id])
    held = [(problems[0], 0), (problems[0], 1), (problems[1], 0)]
    with LogWriter(log) as w:
        for p, s in held:
            w.write(echo_record(record_key(p, 0, s, 1), f"{p.id}/{s}/{first_seed % 10}"))
    res = EchoLoop(problems, log, sampler, samples=2, batch_size=2, iteration=1, seed=7).run()
    assert calls[0] == ([problems[0].id, problems[1].id], first_seed) and [len(c[0]) for c in calls] == [2, 2, 1]
    keys = [r.key for r in read_log(log)]
    assert len(keys) == len(set(keys)) == 10 and keys[3] == record_key(problems[1], 0, 1, 1)
    # The summary is the collection's: the records the log held count too.
    assert (res.records_written, res.records_skipped, res.passes) == (7, 3, 1)
    assert res.usable == res.by_kind.get("direct", 0) and sum(res.by_kind.values()) == 10
    assert res.stop_reasons == {k: n for k, n in (("even", res.usable), ("odd", 10 - res.usable)) if n}
    # A fully logged collection samples nothing and reports the same.
    calls.clear()
    again = EchoLoop(problems, log, sampler, samples=2, batch_size=2, iteration=1, seed=7).run()
    assert calls == [] and (again.records_written, again.records_skipped) == (0, 10)
    assert (again.by_kind, again.usable, again.stop_reasons) == (res.by_kind, res.usable, res.stop_reasons)


def test_the_loop_stops_at_its_target_and_says_why_it_fell_short(problems, tmp_path):
    even = lambda batch, n, seed: [["x0"] * n for _ in batch]  # noqa: E731
    res = EchoLoop(problems, tmp_path / "a.jsonl", even, batch_size=1, passes=3, target=2).run()
    assert (res.records_written, res.passes, res.stopped_early) == (2, 1, None)
    odd = lambda batch, n, seed: [["x1"] * n for _ in batch]  # noqa: E731
    res = EchoLoop(problems, tmp_path / "b.jsonl", odd, batch_size=2, passes=2, target=3).run()
    assert res.records_written == 10 and res.stopped_early == "only 0 usable trajectories after 2 pass(es); target was 3"
    res = EchoLoop(problems, tmp_path / "c.jsonl", odd, batch_size=2, min_usable=1).run()
    assert res.stopped_early == "only 0 usable trajectories (minimum 1)"
    with pytest.raises(TripostError, match="^echo: no problems$"):
        EchoLoop([], tmp_path / "d.jsonl", odd)


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
