"""tripost.runconfig: the run's config as one typed value, and tripost.layout:
every path of a run folder named once."""

from __future__ import annotations

import json

import pytest

from tripost.errors import TripostError
from tripost.layout import RunLayout
from tripost.runconfig import RUN_TRAIN_DEFAULTS, RunConfig, key_help


def test_sections_are_typed_and_round_trip():
    cfg = RunConfig.load(None, ["collect.samples_per_problem=3", "tasks.families=[\"arithmetic\", \"word_sorting\"]", "seed=7",
                                "train.epochs=1", "teacher.concurrency=2"])
    assert cfg.collect.samples_per_problem == 3 and cfg.seed == 7 and cfg.train.epochs == 1 and cfg.teacher.concurrency == 2
    assert list(cfg.tasks.families) == ["arithmetic", "word_sorting"]
    d = cfg.to_dict()
    assert d["tasks"]["families"] == ["arithmetic", "word_sorting"] and d["train"]["epochs"] == 1
    again = RunConfig.from_dict(json.loads(json.dumps(d)))  # a run folder's config.json read back
    assert again.to_dict() == d and again.hash == cfg.hash
    # The train section is TrainConfig's fields with the run's own sizes, minus what the run sets itself.
    assert all(RunConfig.defaults()["train"][k] == v for k, v in RUN_TRAIN_DEFAULTS.items())
    assert not {"student", "adapter", "progress", "seed"} & set(d["train"])
    assert cfg.train_config("some/adapter", progress=True).adapter == "some/adapter"


def test_bad_keys_types_and_values_are_one_line_each():
    with pytest.raises(TripostError, match="unknown config key 'collect.sample'"):
        RunConfig.load(None, ["collect.sample=3"])
    with pytest.raises(TripostError, match="'loop.iterations' must be a whole number"):
        RunConfig.load(None, ["loop.iterations=two"])
    with pytest.raises(TripostError, match="loop.iterations must be >= 0"):
        RunConfig.load(None, ["loop.iterations=-1"])
    d = RunConfig.defaults()
    del d["gap"]["samples"]
    with pytest.raises(TripostError, match="config lacks gap.samples"):
        RunConfig.from_dict(d)


def test_stage_configs_come_from_the_sections():
    cfg = RunConfig.load(None, ["buffer.keep_last=0", "buffer.decay=0.5", "eval.max_turns=1", "gap.samples=2"])
    b = cfg.buffer_config(3)
    assert b.keep_last is None and b.decay == 0.5 and b.seed == cfg.seed + 3  # TOML's 0 is the library's None
    assert cfg.eval_config(progress=False).max_turns == 1
    assert cfg.gap_config(progress=False)["samples"] == 2
    assert cfg.teacher_options().concurrency == cfg.teacher.concurrency


def test_keys_lists_every_key_with_its_default(capsys):
    from tripost.cli import main

    text = key_help()
    for section, table in RunConfig.defaults().items():
        if isinstance(table, dict):
            assert f"[{section}]" in text
            for key in table:
                assert f"\n{key} = " in text, f"{section}.{key}"
    assert main(["run", "--keys"]) == 0
    assert "samples_per_problem = 2  # attempts sampled per problem" in capsys.readouterr().out
    assert main(["run"]) == 2  # a run needs --out
    assert "needs --out" in capsys.readouterr().err


def test_the_layout_names_the_run_folder(tmp_path):
    lay = RunLayout(tmp_path)
    assert lay.config == tmp_path / "config.json" and lay.it(2).eval_json == tmp_path / "it2" / "eval" / "eval.json"
    assert lay.it(1).log == tmp_path / "it1" / "collect" / "log.jsonl" and lay.base.eval_json == tmp_path / "base" / "eval" / "eval.json"
    for t in (0, 2, 10):
        lay.it(t).root.mkdir()
    (tmp_path / "it3").write_text("not a folder")
    (tmp_path / "itx").mkdir()
    assert lay.iterations() == [0, 2, 10]


@pytest.mark.parametrize("source, setting, expected", [
    ("teacher", None, True), ("rejection", None, True), ("demo", None, True),  # TriPosT drops a text it already has
    ("self_verified", None, False), ("guided", None, False), ("sharpen", None, False),  # repeated samples are the signal
    ("self_verified", "true", True), ("self_verified", "on", True), ("teacher", "off", False), ("teacher", "false", False),
])
def test_dedupe_auto_keeps_a_label_free_sources_repeated_samples(source, setting, expected):
    overrides = [f"collect.source={source}"] + ([f"buffer.dedupe={setting}"] if setting else [])
    assert RunConfig.load(None, overrides).buffer_config(1).dedupe is expected


@pytest.mark.parametrize("overrides, expected", [
    (["collect.source=teacher"], True), (["collect.source=rejection"], True), (["collect.source=demo"], True),  # TriPosT's verdict
    (["collect.source=guided"], False), (["collect.source=sharpen"], False), (["collect.source=self_verified"], False),  # GSI: the rationale
    (["collect.source=guided", "collect.guided_teacher_edits=true"], True),  # edits teach feedback: the right ones keep theirs
    (["collect.source=guided", "buffer.verdict=on"], True), (["collect.source=teacher", "buffer.verdict=off"], False),
])
def test_verdict_auto_trains_a_label_free_sources_attempt_alone(overrides, expected):
    assert RunConfig.load(None, overrides).buffer_config(1).verdict is expected
