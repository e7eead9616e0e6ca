"""Issue 20, items 6, 7 and 8: a wrong config value, a wrong --out; issue 32,
items 7-9: what the stages would find later (a teacher spec, a teacher that
cannot teach the families, a device), found first; a folder of empty files
that takes the corrected command; a TOML value nested 5,000 deep; huge values
quoted clipped.

Each is one error line naming what is wrong and a non-zero exit, found before
anything is written: a run folder is never left holding a config that cannot
run (so the corrected command is not refused), and an existing result is not
overwritten by accident. Drives the real `tripost` CLI in-process
(`tripost.cli.main`: any traceback would fail the test) on the tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tripost.cli import main
from tripost.errors import TripostError
from tripost.loop import Run
from tripost.runconfig import RunConfig

SHIPPED = Path(__file__).resolve().parent.parent / "replay" / "smollm2-135m-scripted.jsonl"


def one_error_line(capsys, verb: str) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line]
    assert len(err) == 1, err
    assert err[0].startswith(f"tripost {verb}: error: "), err
    return err[0]


# ----------------------------------------------------- item 6: config types ---

TOML_CASES = [
    ('[loop]\niterations = "abc"\n', "'loop.iterations' must be a whole number"),
    ("train = 5\n", "'train' is a section"),
    ('[tasks]\nfamilies = "arithmetic"\n', "'tasks.families' must be a list of strings"),
    ("[collect]\ntemperature = [1]\n", "'collect.temperature' must be a number"),
    ("[buffer]\ndedupe = 1\n", "buffer.dedupe must be one of auto, on, off (or true/false), got 1"),
    ('[train]\nepochs = "two"\n', "'train.epochs' must be a number"),
]


@pytest.mark.parametrize("toml, needle", TOML_CASES)
def test_run_config_file_type_errors_are_one_line(tmp_path, capsys, toml, needle):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(out)]) == 2
    assert needle in one_error_line(capsys, "run")
    assert not out.exists()


def test_non_utf8_config_file_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b'[tasks]\npreset = "sm\xffall"\n')
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "not UTF-8" in one_error_line(capsys, "run")
    assert main(["train", "--buffer", str(tmp_path), "--out", str(tmp_path / "t"), "--config", str(cfg)]) == 2
    assert "not UTF-8" in one_error_line(capsys, "train")


@pytest.mark.parametrize("override, needle", [
    ("loop=3", "'loop' is a config section"),
    ('train.epochs="two"', "'train.epochs' must be a number"),
    ("train.epochs=two", "'train.epochs' must be a number"),
    ("loop.iterations=1.5", "'loop.iterations' must be a whole number"),
    ("train.mode=bogus", "unknown train mode 'bogus'"),
    ("collect.batch_size=0", "batch_size must be at least 1"),
    ("eval.max_turns=-1", "max_turns must be >= 0"),
    ("student.sample_precision=fp64", "student.sample_precision"),
    ("tasks.eval_subsets=[\"hard\"]", "tasks.eval_subsets"),
])
def test_run_override_errors_are_one_line_before_anything_is_written(tmp_path, capsys, override, needle):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), override]) == 2
    assert needle in one_error_line(capsys, "run")
    assert not out.exists()


@pytest.mark.parametrize("override", ['epochs="two"', 'train.epochs="two"', "max_steps=1.5", "target_modules=q_proj"])
def test_train_config_type_errors_name_the_key(tmp_path, capsys, override):
    out = tmp_path / "adapter"
    assert main(["train", "--buffer", str(tmp_path / "no-buffer"), "--out", str(out), override]) == 2
    key = override.partition("=")[0].removeprefix("train.")
    assert f"'train.{key}' must be" in one_error_line(capsys, "train")
    assert not out.exists()


# --------------------------------------- item 7: a failed start writes nothing ---


def test_a_rejected_config_does_not_poison_the_run_folder(tmp_path, capsys, tiny_model_dir):
    out = tmp_path / "run"
    base = [f"student.spec=hf:{tiny_model_dir}", "tasks.n_train=2", "tasks.n_eval=1"]
    assert main(["run", "--out", str(out), *base, 'train.epochs="two"']) == 2
    one_error_line(capsys, "run")
    assert not (out / "config.json").exists()
    # The corrected command starts the run (its first step: checking and writing the config).
    fixed = RunConfig.load(None, [*base, "train.epochs=1"]).to_dict()
    Run(out, fixed, progress=False, log=lambda _: None).prepare()
    assert json.loads((out / "config.json").read_text()) == json.loads(json.dumps(fixed))


def test_a_config_made_in_code_is_checked_before_it_is_written(tmp_path):
    cfg = RunConfig.load(None, ["tasks.n_train=2"]).to_dict()
    cfg["train"]["epochs"] = "two"
    with pytest.raises(TripostError, match="'train.epochs' must be a number"):
        Run(tmp_path / "run", cfg, progress=False).prepare()
    assert not (tmp_path / "run").exists()


def test_a_run_folder_with_nothing_but_its_config_takes_a_corrected_config(tmp_path):
    # A first stage that failed before writing anything (a student that would
    # not load, ...) left only config.json: nothing was made with that config.
    out = tmp_path / "run"
    Run(out, RunConfig.load(None, ["tasks.n_train=2", "seed=1"]).to_dict(), progress=False).prepare()
    notes: list[str] = []
    fixed = RunConfig.load(None, ["tasks.n_train=2", "seed=2"]).to_dict()
    Run(out, fixed, progress=False, log=notes.append).prepare()
    assert json.loads((out / "config.json").read_text())["seed"] == 2 and "starting it over" in notes[0]
    # Once a stage wrote something, a different config is a different run
    # (empty folders and files are nothing: see the item 7 tests of issue 32).
    (out / "it1" / "collect").mkdir(parents=True)
    (out / "it1" / "collect" / "log.jsonl").write_text("{}\n")
    with pytest.raises(TripostError, match="different config"):
        Run(out, RunConfig.load(None, ["tasks.n_train=2", "seed=3"]).to_dict(), progress=False).prepare()


# ----------------------------------------------------------- item 8: --out ---


@pytest.fixture(scope="module")
def buffer_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("buffer")
    assert main(["buffer", str(SHIPPED), "--out", str(out), "--json"]) == 0
    return out


def _verb_args(verb: str, out: Path, tiny: Path, buffer: Path) -> list[str]:
    return {
        "buffer": ["buffer", str(SHIPPED), "--out", str(out)],
        "replay": ["replay", str(SHIPPED), "--out", str(out)],
        "collect": ["collect", "--student", f"hf:{tiny}", "--task", "arithmetic", "--n", "2", "--max-new-tokens", "4", "--out", str(out)],
        "run": ["run", "--out", str(out), f"student.spec=hf:{tiny}", "tasks.n_train=2", "tasks.n_eval=1"],
        "train": ["train", "--buffer", str(buffer), "--out", str(out), f"student=hf:{tiny}"],
    }[verb]


def _unwritable(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o500)
        return ro / "out"
    # root may write anywhere a permission bit guards; sysfs refuses new folders even to root.
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no folder here that refuses root")
    return Path("/sys/tripost-hardening-out")


VERBS = ("buffer", "replay", "collect", "run", "train")


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("where", ["an existing file", "inside a file", "unwritable"])
def test_out_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, tiny_model_dir, buffer_dir, verb, where):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me\n")
    out = {"an existing file": a_file, "inside a file": a_file / "sub", "unwritable": _unwritable(tmp_path)}[where]
    capsys.readouterr()
    assert main(_verb_args(verb, out, tiny_model_dir, buffer_dir)) == 2
    line = one_error_line(capsys, verb)
    assert str(a_file) in line or str(out) in line
    assert a_file.read_text() == "keep me\n"


def _eval_args(tiny: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--student", f"hf:{tiny}", "--task", "arithmetic", "--subset", "seen", "--n", "1", "--max-turns", "0",
            "--max-new-tokens", "4", "--bootstrap", "10", "--no-progress", "--json", "--out", str(out), *extra]


def test_eval_does_not_overwrite_a_result_without_force(tmp_path, capsys, tiny_model_dir):
    out = tmp_path / "eval.json"
    out.write_text("an earlier result\n")
    assert main(_eval_args(tiny_model_dir, out)) == 2
    assert "already exists" in one_error_line(capsys, "eval") and out.read_text() == "an earlier result\n"
    assert main(_eval_args(tiny_model_dir, out, "--force")) == 0
    assert json.loads(out.read_text())["metrics"]["total"]["n"] == 1
    capsys.readouterr()
    # Its transcripts are a result too.
    out.unlink()
    assert main(_eval_args(tiny_model_dir, out)) == 2
    assert "transcripts" in one_error_line(capsys, "eval") and not out.exists()


# ------------------------- issue 32, item 7: what can fail is found before anything is written ---


def qa_file(tmp_path: Path, rationale: bool = False) -> Path:
    """qa rows marked train and test (so both splits have some), with or without gold rationales."""
    rows = [{"question": f"What is {i} + {i + 3}?", "answer": str(2 * i + 3), "split": "train" if i % 2 else "test",
             **({"rationale": f"(1) {i} + {i + 3} = {2 * i + 3}.\n(Final response) So the answer is {2 * i + 3}."} if rationale else {})}
            for i in range(8)]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _qa_run(tmp_path: Path, *extra: str, rationale: bool = False) -> list[str]:
    return ['tasks.families=["qa"]', f"tasks.data={qa_file(tmp_path, rationale)}", 'tasks.eval_subsets=["seen"]',
            "tasks.n_train=2", "tasks.n_eval=1", *extra]


@pytest.mark.parametrize("overrides, needle", [
    # The case: the scripted teacher asked to improve qa attempts (it failed in it1/collect).
    (("loop.iteration0=false",), "the scripted teacher cannot improve qa problems"),
    (("loop.iteration0=false", "collect.source=guided", "collect.guided_teacher_edits=true"), "the scripted teacher cannot improve qa"),
    # A spec typo (found when it1/collect began, after iteration 0 had trained and evaluated).
    (("loop.iteration0=false", "teacher.spec=nonsense"), "unknown teacher spec 'nonsense'"),
    (("loop.iteration0=false", "teacher.spec=openai:"), "teacher spec 'openai:' needs a model"),
    # Iteration 0 trains on gold rationales: rows without any failed after the student loaded.
    (("collect.source=rejection",), "loop.iteration0 trains on the training problems' gold rationales, and none has one"),
])
def test_a_run_that_cannot_get_through_its_stages_is_refused_before_anything_is_written(tmp_path, capsys, overrides, needle):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *_qa_run(tmp_path, *overrides)]) == 2
    assert needle in one_error_line(capsys, "run")
    assert not out.exists()


def test_teachers_and_sources_that_can_work_on_qa_pass_the_checks(tmp_path, monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)  # the spec is checked without a client: no key needed
    for extra in (["collect.source=rejection"], ["teacher.spec=openai:gpt-4o-mini"], ["collect.source=guided", "collect.guided_strategy=interactive"],
                  ["collect.source=demo"], ["loop.iterations=0"]):
        Run(tmp_path / "never", RunConfig.load(None, _qa_run(tmp_path, "loop.iteration0=false", *extra)).to_dict(), progress=False).check()
    Run(tmp_path / "never", RunConfig.load(None, _qa_run(tmp_path, "collect.source=rejection", rationale=True)).to_dict(), progress=False).check()
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("device, needle", [
    ("cuda:99", "train.device=cuda:99, but this"),  # no CUDA here, or not 100 devices: the same refusal either way
    ("cuda:x", "train.device 'cuda:x' is not a device torch knows"),
    ("bogus", "train.device 'bogus' is not a device torch knows"),
])
def test_a_training_device_this_machine_lacks_is_refused_before_anything_is_written(tmp_path, capsys, device, needle):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "tasks.n_train=2", "tasks.n_eval=1", f"train.device={device}"]) == 2
    assert needle in one_error_line(capsys, "run")
    assert not out.exists()


def test_cuda_asked_for_without_cuda_is_one_line_up_front(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "tasks.n_train=2", "tasks.n_eval=1", "train.device=cuda"]) == 2
    assert "train.device=cuda, but this torch has no CUDA device" in one_error_line(capsys, "run")
    assert not out.exists()


def test_a_folder_a_failed_first_stage_left_takes_the_corrected_command(tmp_path):
    # What `tripost run` with qa data and the scripted teacher left when it1/collect
    # failed (listed in the issue): the config, the machine card, the lock, an empty
    # stage folder and an empty log. Nothing in it was made with that config.
    out = tmp_path / "run"
    Run(out, RunConfig.load(None, ["tasks.n_train=2", "seed=1"]).to_dict(), progress=False).prepare()
    (out / "machine.json").write_text("{}\n")
    (out / ".tripost.lock").write_text("tripost run (pid 1)\n")
    (out / "it1" / "collect").mkdir(parents=True)
    (out / "it1" / "collect" / "log.jsonl").write_bytes(b"")
    (out / "it1" / "buffer").mkdir()
    notes: list[str] = []
    Run(out, RunConfig.load(None, ["tasks.n_train=2", "seed=2"]).to_dict(), progress=False, log=notes.append).prepare()
    assert json.loads((out / "config.json").read_text())["seed"] == 2 and "starting it over" in notes[0]
    # One byte anywhere is something a stage made with the old config.
    (out / "it1" / "collect" / "log.jsonl").write_bytes(b"\n")
    with pytest.raises(TripostError, match="different config"):
        Run(out, RunConfig.load(None, ["tasks.n_train=2", "seed=3"]).to_dict(), progress=False).prepare()


# ---------------------------------------------- issue 32, item 8: a TOML value nested 5,000 deep ---


@pytest.mark.parametrize("value", ["{a = " * 5000 + "1" + "}" * 5000, "[" * 5000 + "1" + "]" * 5000, "[" * 40 + "]" * 40],
                         ids=["table", "array", "array-40"])
def test_a_deeply_nested_toml_value_is_one_line(tmp_path, capsys, value):
    out = tmp_path / "run"
    cfg = tmp_path / "deep.toml"
    cfg.write_text(f"[train]\nlora_r = {value}\n")
    assert main(["run", "--config", str(cfg), "--out", str(out)]) == 2
    assert f"config file {cfg}: a value nests tables or arrays more than 16 deep" in one_error_line(capsys, "run")
    assert main(["run", "--out", str(out), f"train.lora_r={value}"]) == 2
    assert "override 'train.lora_r=" in one_error_line(capsys, "run")
    assert main(["train", "--buffer", str(tmp_path), "--out", str(out), "--config", str(cfg)]) == 2
    assert "more than 16 deep" in one_error_line(capsys, "train")
    assert not out.exists()


# -------------------------------------------- issue 32, item 9: errors clip the values they quote ---

HUGE = "x" * 5_000_000  # the was 50 MB; any size shows whether a message quotes it whole


@pytest.mark.parametrize("override", [
    f"student.spec={HUGE}", f"student.spec=hf:{HUGE}", f'tasks.families=["{HUGE}"]', f"tasks.data={HUGE}", f"tasks.data=/tmp/{'d/' * 3000}x.jsonl",
    f"teacher.spec={HUGE}", f"train.epochs={HUGE}", f"{HUGE}=1", f"train.{HUGE}=1", HUGE, f"train.device={HUGE}",
    f"train.mixed_precision={HUGE}",  # raised in tripost.train: bounded by TripostError itself
], ids=["student.spec", "student.spec-hf", "tasks.families", "tasks.data", "tasks.data-deep-path", "teacher.spec", "train.epochs",
        "key", "section-key", "not-key-value", "train.device", "train.mixed_precision"])
def test_an_error_quotes_a_huge_value_clipped(tmp_path, capsys, override):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "tasks.n_train=2", "tasks.n_eval=1", override]) == 2
    line = one_error_line(capsys, "run")
    assert len(line) < 2_100, line[:300]
    # Clipped where it is quoted; only tripost.train's own message leans on TripostError's bound.
    assert ("characters left out" in line) == override.startswith("train.mixed_precision="), line[:300]
    assert not out.exists()


def test_a_tripost_error_bounds_its_own_message():
    message = str(TripostError(f"unknown thing {'y' * 1_000_000}; choose from a, b"))
    assert len(message) < 2_100 and message.startswith("unknown thing yyy") and message.endswith("; choose from a, b")
    assert "characters left out" in message


def test_a_deeply_nested_data_line_or_price_file_is_one_line(tmp_path, capsys):
    """The same hostile nesting in a --data line and a prices file: one line, no RecursionError."""
    data = tmp_path / "deep.jsonl"
    data.write_text("[" * 200_000 + "]" * 200_000 + "\n")
    assert main(["tasks", "sample", "qa", "--data", str(data), "--n", "1"]) == 2
    assert "nested too deeply to read" in one_error_line(capsys, "tasks")
    prices = tmp_path / "prices.json"
    prices.write_text("[" * 200_000 + "]" * 200_000)
    from tripost.teachers.usage import load_prices

    with pytest.raises(TripostError, match="nested too deeply to read"):
        load_prices(prices)
