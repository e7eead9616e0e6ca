"""A flag means one thing in every verb (issue 30, item 5): the shared flags
come from one function each (tripost/cli/_io.py) or from the settings section
they set, so their help says the same in every verb that has them; every
verb's --help works; the removed spellings are one line naming the new."""

from __future__ import annotations

import argparse
import re

import pytest

from tripost import cli


def _verbs(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every verb and sub-verb (`sharpen eval`) with its parser."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[(*prefix, name)] = sub
                out.update(_verbs(sub, (*prefix, name)))
    return out


VERBS = _verbs(cli.build_parser())


def _meaning(text: str) -> str:
    """What a flag is, without its default and the verb's own remarks."""
    return re.split(r" \(|;|,|:", text, maxsplit=1)[0].strip()


def _helps(flag: str) -> dict[str, str]:
    out = {}
    for verb, parser in VERBS.items():
        for action in parser._actions:
            if flag in action.option_strings and action.help != argparse.SUPPRESS:
                out[" ".join(verb)] = action.help
    return out


@pytest.mark.parametrize("verb", sorted(" ".join(v) for v in VERBS))
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([*verb.split(), "--help"])
    assert e.value.code == 0 and "usage: tripost" in capsys.readouterr().out


# The flags several verbs share, and the verbs that must have each.
SHARED = {
    "--n": {"collect", "sample", "eval", "gap", "sharpen eval", "tasks sample"},
    "--task": {"collect", "sample", "eval", "gap", "sharpen eval", "teach"},
    "--subset": {"collect", "sample", "eval", "gap", "sharpen eval", "tasks sample"},
    "--data": {"collect", "sample", "eval", "gap", "sharpen eval", "tasks sample"},
    "--preset": {"collect", "sample", "eval", "gap", "sharpen eval", "tasks sample"},
    "--samples": {"collect", "sample", "gap"},
    "--temperature": {"collect", "sample", "gap", "sharpen eval"},
    "--top-p": {"collect", "sample", "gap", "sharpen eval"},
    "--max-new-tokens": {"collect", "sample", "eval", "gap", "sharpen eval"},
    "--batch-size": {"sample", "eval", "gap", "sharpen eval"},
    "--teacher": {"collect", "teach", "gap"},
    "--bootstrap": {"eval", "gap", "sharpen eval"},
}


@pytest.mark.parametrize("flag", sorted(SHARED))
def test_a_shared_flag_means_one_thing_in_every_verb(flag):
    helps = _helps(flag)
    assert SHARED[flag] <= set(helps), f"{flag} is missing from {sorted(SHARED[flag] - set(helps))}"
    meanings = {verb: _meaning(text) for verb, text in helps.items()}
    assert len(set(meanings.values())) == 1, f"{flag} means different things: {meanings}"


def test_n_is_problems_per_family_and_subset_everywhere():
    assert {_meaning(h) for h in _helps("--n").values()} == {"problems per family and subset"}
    assert {_meaning(h) for h in _helps("--batch-size").values()} == {"sequences the student decodes together"}


def test_collect_batch_size_is_one_line_naming_its_flag(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["collect", "--task", "arithmetic", "--out", "x", "--batch-size", "4"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "--problems-per-call" in err and err.startswith("tripost collect: error:")


def test_problems_per_call_is_the_collect_batch_size_key():
    from tripost.cli import collect_cmd

    args = cli.build_parser().parse_args(["collect", "--task", "arithmetic", "--out", "x", "--problems-per-call", "3"])
    assert collect_cmd.collect_settings(args).batch_size == 3


def test_the_verbs_select_problems_alike():
    """The same flags give the same problems in every verb (the train split
    where collect's is fixed)."""
    from tripost.cli._io import problems_from_args

    parse = cli.build_parser().parse_args
    common = ["--task", "arithmetic", "--n", "3", "--subset", "unseen", "--seed", "4"]
    ids = {verb: [p.id for p in problems_from_args(parse([*verb.split(), *common, *extra]))]
           for verb, extra in (("collect", ["--out", "x"]), ("sample", []), ("eval", ["--split", "train", "--allow-train"]),
                               ("gap", ["--split", "train", "--allow-train"]), ("sharpen eval", ["--split", "train", "--allow-train"]))}
    assert len({tuple(v) for v in ids.values()}) == 1 and len(ids["collect"]) == 3
    tasks = problems_from_args(parse(["tasks", "sample", "arithmetic", "--n", "3", "--subset", "unseen", "--seed", "4"]))
    assert [p.id for p in tasks] == ids["collect"]
