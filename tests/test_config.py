"""TOML config with command-line overrides; typos are errors, not silence."""

import pytest

from tripost.config import apply_override, config_hash, load_config, parse_value
from tripost.errors import TripostError

DEFAULTS = {"seed": 0, "train": {"epochs": 1, "lr": 2e-4}, "teacher": {"spec": "scripted"}, "buffer": {"ratio": [1.5, 1, 1]}}


def test_precedence_defaults_file_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('seed = 3\n[train]\nepochs = 2\n')
    cfg = load_config(DEFAULTS, f, ["train.lr=0.001", "teacher.spec=openai:gpt-4o-mini", "buffer.ratio=[1, 1, 0]"])
    assert cfg == {"seed": 3, "train": {"epochs": 2, "lr": 0.001}, "teacher": {"spec": "openai:gpt-4o-mini"}, "buffer": {"ratio": [1, 1, 0]}}
    assert DEFAULTS["train"]["epochs"] == 1  # defaults untouched


def test_values_parse_as_toml_or_string():
    assert parse_value("3") == 3 and parse_value("true") is True and parse_value("1.5") == 1.5
    assert parse_value("hf:/models/x") == "hf:/models/x"
    assert parse_value('"3"') == "3"


@pytest.mark.parametrize("item, needle", [
    ("train.epoch=2", "unknown config key 'train.epoch'"),
    ("trian.epochs=2", "unknown config section 'trian'"),
    ("train", "not KEY=VALUE"),
])
def test_typos_are_clear_errors(item, needle):
    with pytest.raises(TripostError, match=needle):
        apply_override({}, item, DEFAULTS)


def test_unknown_key_in_file_and_bad_toml(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[train]\nepoch = 2\n")
    with pytest.raises(TripostError, match="unknown config key 'train.epoch'"):
        load_config(DEFAULTS, f)
    f.write_text("[train\n")
    with pytest.raises(TripostError, match="c.toml"):
        load_config(DEFAULTS, f)
    with pytest.raises(TripostError, match="not found"):
        load_config(DEFAULTS, tmp_path / "none.toml")


def test_hash_changes_with_config():
    a = load_config(DEFAULTS)
    b = load_config(DEFAULTS, overrides=["seed=1"])
    assert config_hash(a) == config_hash(load_config(DEFAULTS)) != config_hash(b)


def test_a_run_made_before_new_config_keys_resumes(tmp_path):
    import json

    from tripost.loop import Run
    from tripost.runconfig import RunConfig

    cfg = RunConfig.load(None, ["tasks.n_train=4"]).to_dict()
    out = tmp_path / "run"
    out.mkdir()
    old = json.loads(json.dumps(cfg))
    del old["gap"]  # as written by a tripost without the gap stage
    (out / "config.json").write_text(json.dumps(old))
    notes = []
    Run(out, cfg, progress=False, log=notes.append).prepare()
    assert notes and "gap.enabled" in notes[0]
    # A changed value is still a different run (once a stage has finished there).
    old["tasks"]["n_train"] = 5
    (out / "config.json").write_text(json.dumps(old))
    (out / "state.json").write_text(json.dumps({"stages": {"it0/train": {"seconds": 1.0}}}))
    with pytest.raises(TripostError, match="different config") as e:
        Run(out, cfg, progress=False, log=notes.append).prepare()
    # The refusal names what differs and the overrides that resume the run as it was recorded.
    assert "tasks.n_train: 5 there, 4 here" in str(e.value) and str(e.value).endswith("resume it with its own values: tasks.n_train=5")
    again = RunConfig.load(None, ["tasks.n_train=4", "tasks.n_train=5"]).to_dict()
    Run(out, {**again, "gap": cfg["gap"]}, progress=False, log=notes.append).prepare()  # with them, the same run


def test_a_run_made_before_a_key_whose_default_changes_it_resumes_only_as_it_ran(tmp_path):
    """buffer.verdict came after runs had been made, and its default (auto) leaves a guided
    run's verdict off where that run had it on: resuming at the default would train its later
    iterations otherwise than its first, so the run asks for the value it ran with."""
    import json

    from tripost.loop import Run
    from tripost.runconfig import RunConfig

    def made_before(out, overrides):
        old = RunConfig.load(None, ["tasks.n_train=4", *overrides]).to_dict()
        del old["buffer"]["verdict"]
        out.mkdir()
        (out / "config.json").write_text(json.dumps(old))
        (out / "state.json").write_text(json.dumps({"stages": {"it0/train": {"seconds": 1.0}}}))

    def prepare(out, overrides):
        notes = []
        Run(out, RunConfig.load(None, ["tasks.n_train=4", *overrides]).to_dict(), progress=False, log=notes.append).prepare()
        return notes

    guided = tmp_path / "guided"
    made_before(guided, ["collect.source=guided"])
    with pytest.raises(TripostError, match="made before buffer.verdict existed") as e:
        prepare(guided, ["collect.source=guided"])
    assert str(e.value).endswith('resume it with buffer.verdict="on", or use a new --out')
    with pytest.raises(TripostError, match="different config \\(buffer.verdict: 'on' there, 'off' here\\)") as e:
        prepare(guided, ["collect.source=guided", "buffer.verdict=off"])
    assert str(e.value).endswith('its own values: buffer.verdict="on"')
    notes = prepare(guided, ["collect.source=guided", "buffer.verdict=on"])
    assert 'buffer.verdict="on"' in notes[0] and json.loads((guided / "config.json").read_text())["buffer"]["verdict"] == "on"
    # A teacher run had the verdict then and has it at auto now: the same run, resumed at the default.
    teacher = tmp_path / "teacher"
    made_before(teacher, [])
    assert 'buffer.verdict="auto"' in prepare(teacher, [])[0]
    made_before(teacher2 := tmp_path / "teacher2", [])
    with pytest.raises(TripostError, match="different config") as e:  # and asks only for what differs
        prepare(teacher2, ["seed=1"])
    assert str(e.value).endswith("its own values: seed=0")
    # A guided folder where nothing was made yet starts over with today's default.
    fresh = tmp_path / "fresh"
    made_before(fresh, ["collect.source=guided"])
    (fresh / "state.json").unlink()
    assert "starting it over" in prepare(fresh, ["collect.source=guided"])[0]
