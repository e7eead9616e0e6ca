"""Issue 20, items 3 and 9: a schema-invalid log record is a `file:line:` error
like corrupt JSON, and the error only offers flags the verb has.

Drives the real `tripost` CLI (in-process through `tripost.cli.main`, and once
as a subprocess to see the whole stderr) on the shipped log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tripost.cli import build_parser, main
from tripost.errors import InputError
from tripost.log import SKIP_HINT, read_log

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "replay" / "smollm2-135m-scripted.jsonl"


def good_lines() -> list[str]:
    return SHIPPED.read_text().splitlines()[:3]


def _mutate(fn):
    d = json.loads(good_lines()[0])
    fn(d)
    return d


def _drop_question(d):
    del d["problem"]["question"]


def _set(path, value):
    def fn(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return fn


# (case, the record that replaces line 2, what the message must name)
BAD_RECORDS = [
    ("no question", lambda: _mutate(_drop_question), "'problem' has no 'question'"),
    ("problem a string", lambda: _mutate(_set(["problem"], "what is 2+2?")), "'problem' must be an object"),
    ("rationale null", lambda: _mutate(_set(["turns", 0, "rationale"], None)), "'rationale' must be a string, not null"),
    ("turn a string", lambda: _mutate(_set(["turns", 0], "(1) x")), "'turns[0]' must be an object"),
    ("iteration a string", lambda: _mutate(_set(["iteration"], "1")), "'iteration' must be a whole number"),
    ("final_correct a string", lambda: _mutate(_set(["final_correct"], "yes")), "'final_correct' must be true or false"),
    ("question a number", lambda: _mutate(_set(["problem", "question"], 7)), "'question' must be a string"),
    ("direct without turns", lambda: _mutate(lambda d: d.update(kind="direct", turns=[])), "needs at least one turn"),
    ("an array", lambda: [1, 2], "must be a JSON object"),
]


def write_log(path: Path, bad) -> Path:
    lines = good_lines()
    path.write_text("\n".join([lines[0], json.dumps(bad), *lines[1:]]) + "\n")
    return path


@pytest.mark.parametrize("case, make, needle", BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
def test_schema_invalid_record_is_named_by_file_and_line(tmp_path, case, make, needle):
    log = write_log(tmp_path / "log.jsonl", make())
    with pytest.raises(InputError) as err:
        list(read_log(log))
    assert str(err.value).startswith(f"{log}:2: corrupt log line") and needle in str(err.value)


@pytest.mark.parametrize("verb", ["buffer", "replay"])
@pytest.mark.parametrize("case, make, needle", BAD_RECORDS[:4], ids=[c[0] for c in BAD_RECORDS[:4]])
def test_buffer_and_replay_give_one_line_then_skip_it(tmp_path, capsys, verb, case, make, needle):
    log = write_log(tmp_path / "log.jsonl", make())
    out = tmp_path / "out"
    assert main([verb, str(log), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tripost {verb}: error: {log}:2: corrupt log line") and needle in err[0]
    assert "--skip-bad-lines" in err[0]  # these verbs have the flag
    assert not out.exists()  # nothing written
    assert main([verb, str(log), "--out", str(out), "--skip-bad-lines", "--json"]) == 0
    assert f"skipped 1 corrupt log line(s): {log}:2" in capsys.readouterr().err


def test_no_traceback_from_a_subprocess(tmp_path):
    log = write_log(tmp_path / "log.jsonl", _mutate(_set(["turns", 0, "rationale"], None)))
    r = subprocess.run([sys.executable, "-m", "tripost", "replay", str(log), "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"tripost replay: error: {log}:2: corrupt log line (turns[0] field 'rationale' "
                                             f"must be a string, not null); {SKIP_HINT}"]


# ------------------------------------------------- item 9: flags that exist ---


def verb_flags(verb: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    return {s for a in sub.choices[verb]._actions for s in a.option_strings}


def assert_only_real_flags(verb: str, message: str) -> None:
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", message))
    assert named <= verb_flags(verb), f"{verb} has no {named - verb_flags(verb)}: {message}"


def corrupt_log(path: Path) -> Path:
    lines = good_lines()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([lines[0], "{broken", *lines[1:]]) + "\n")
    return path


def test_collect_on_a_corrupt_log_names_no_missing_flag(tmp_path, tiny_model_dir, capsys):
    run = tmp_path / "run"
    log = corrupt_log(run / "log.jsonl")
    rc = main(["collect", "--student", f"hf:{tiny_model_dir}", "--task", "arithmetic", "--n", "2", "--max-new-tokens", "4", "--out", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"{log}:2: corrupt log line" in err[0] and "repair or delete this line" in err[0]
    assert_only_real_flags("collect", err[0])


def test_run_on_a_corrupt_log_names_no_missing_flag(tmp_path, tiny_model_dir, capsys):
    run = tmp_path / "run"
    log = corrupt_log(run / "it1" / "collect" / "log.jsonl")
    rc = main(["run", "--out", str(run), "--no-progress", f"student.spec=hf:{tiny_model_dir}", "loop.iteration0=false",
               "gap.enabled=false", "tasks.n_train=2", "collect.max_new_tokens=4"])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[")]
    assert rc == 2 and len(err) == 1 and f"{log}:2: corrupt log line" in err[0]
    assert_only_real_flags("run", err[0])
