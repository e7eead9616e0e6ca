"""Every default written once (docs/design.md; issue 30).

The settings sections (the dataclasses declared with `option()`:
tripost/sources/settings.py's `[collect]`, tripost/teachers/options.py's
`[teacher]`) are the single source of a setting's default. A library config
(every `@dataclass` named `*Config` in tripost/) that holds the same setting
takes the section's default through `tripost.settings.view`, under its own
name or the section's. This test reads them all and fails when one key has
two defaults: a library call and `tripost collect` / `tripost run` would
then do different things with nobody asking for it.

A method whose own default truly differs declares it once, in an override
table beside the section (`OVERRIDES` in tripost/sources/settings.py); the
fields below in `ALLOWED` are different things that happen to share a name.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tripost.settings import default_of

ROOT = Path(__file__).resolve().parents[1] / "tripost"

# Fields that share a name with a section key or another config's field but
# are a different setting, each with why. A stale entry (the field is gone, or
# agrees now) fails `test_the_allow_list_is_current`.
ALLOWED: dict[str, str] = {
    # The teacher's sampling temperature ("auto": greedy where the model takes
    # one), not the student's (collect.temperature).
    "TeacherOptions.temperature": "the teacher's temperature, not the student's",
    # Examples per optimiser step, not problems per sampling batch.
    "TrainConfig.batch_size": "training examples per step, not prompts per sampling batch",
    # The generation-verification gap is a measurement with its own section
    # ([gap] in a run, `tripost gap`): its student samples are not the
    # collection's.
    "GapConfig.temperature": "the gap measurement's sampling, not the collection's",
    "GapConfig.top_p": "the gap measurement's sampling, not the collection's",
    "GapConfig.max_new_tokens": "the gap measurement's token budget, not the collection's",
    # Best-of-N scores its candidates 8 at a time, the verifiers 16 prompts at
    # a time; a different batch can change bf16 scores and so sharpen's picks
    # (README, "Reproducibility"), so neither moves to the other's.
    "SharpenConfig.score_batch_size": "best-of-N candidates scored together, not verification prompts",
    # Verification runs inside a stage (gap, self_verified) that shows its own
    # progress bar; the stages default to showing theirs.
    "VerifyConfig.progress": "an inner step under another stage's bar",
    # The run config's tables (tripost.runconfig) where they differ from the
    # library config of the same name.
    "TeacherSection.temperature": "the teacher's temperature, not the student's (TeacherOptions' own field)",
    "TeacherSection.spec": "the teacher, not the student (student.spec)",
    # TOML has no null: the run's 0 is the library's None (no decay).
    "BufferSection.decay": "0 in a TOML table is the library's None (no decay)",
    # The run's switch (auto: gold unless the source is label-free), resolved
    # into BufferConfig's bool by RunConfig.include_gold.
    "BufferSection.include_gold": "auto/on/off, resolved per source into BufferConfig's bool",
    # The same for dedupe: a run resolves auto per source (RunConfig.dedupe);
    # BufferConfig, `tripost buffer`'s, dedupes unless told not to.
    "BufferSection.dedupe": "auto/on/off, resolved per source into BufferConfig's bool",
    # And for the closing verdict (RunConfig.verdict): off for the label-free sources.
    "BufferSection.verdict": "auto/on/off, resolved per source into BufferConfig's bool",
    # The run's per-iteration gap probe is sized down from `tripost gap`'s
    # measurement and uses the student's own verdict (runconfig.GapSection).
    "GapSection.samples": "the run's probe (4 samples), not `tripost gap`'s measurement (8)",
    "GapSection.verifier": "the run's probe asks the student itself, `tripost gap` its multiple-choice verdict",
}


def _decorated_dataclass(node: ast.ClassDef) -> bool:
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if (isinstance(target, ast.Name) and target.id == "dataclass") or (isinstance(target, ast.Attribute) and target.attr == "dataclass"):
            return True
    return False


def _uses_option(node: ast.ClassDef) -> bool:
    return any(isinstance(s, ast.AnnAssign) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Name)
               and s.value.func.id == "option" for s in node.body)


def _module_name(path: Path) -> str:
    parts = ("tripost", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _discover() -> tuple[dict[str, type], dict[str, type]]:
    """(settings sections, library configs) by class name, found by reading
    the source: a section is a dataclass whose fields are `option(...)`s, a
    library config a dataclass named *Config."""
    sections: dict[str, type] = {}
    configs: dict[str, type] = {}
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if not (isinstance(node, ast.ClassDef) and _decorated_dataclass(node)):
                continue
            if _uses_option(node):
                sections[node.name] = getattr(importlib.import_module(_module_name(path)), node.name)
            elif node.name.endswith("Config"):
                configs[node.name] = getattr(importlib.import_module(_module_name(path)), node.name)
    return sections, configs


SECTIONS, CONFIGS = _discover()


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _entries() -> dict[str, list[tuple[str, Any]]]:
    """Every default by the key it is a default of: a section's field, a
    library field by its own name, a view by the section key it holds
    (an overridden view is checked against its override instead)."""
    keys: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for cname, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            keys[f.name].append((f"{cname}.{f.name}", _default(f)))
    for cname, cls in CONFIGS.items():
        for f in dataclasses.fields(cls):
            if "section" in f.metadata:
                if f.metadata["override"] is None:
                    keys[f.metadata["key"]].append((f"{cname}.{f.name}", _default(f)))
            elif dataclasses.is_dataclass(_default(f)):
                continue  # a config made of sections (RunConfig): its sections are read above
            elif _default(f) is not dataclasses.MISSING:
                keys[f.name].append((f"{cname}.{f.name}", _default(f)))
    return keys


def test_every_config_and_section_is_read():
    """The search finds what it should (else the tests below pass on nothing)."""
    assert {"CollectSettings", "TeacherOptions"} <= set(SECTIONS)
    assert {"CollectConfig", "GuidedConfig", "SelfVerifyConfig", "SharpenConfig", "VerifyConfig", "GapConfig", "EvalConfig",
            "BufferConfig"} <= set(CONFIGS)
    assert "TrainConfig" in SECTIONS  # its fields carry their help (tripost.settings.option), as a section's


def test_one_default_per_key():
    bad = []
    for key, entries in sorted(_entries().items()):
        kept = [(who, value) for who, value in entries if who not in ALLOWED]
        if len({repr(v) for _, v in kept}) > 1:
            bad.append(f"{key}: " + ", ".join(f"{who}={value!r}" for who, value in kept))
    assert not bad, "one key, two defaults (take the section's with tripost.settings.view, or say why in ALLOWED):\n" + "\n".join(bad)


def test_the_allow_list_is_current():
    """Each allowed field exists and does differ from another default of its key."""
    entries = _entries()
    for who in ALLOWED:
        cname, _, name = who.partition(".")
        cls = {**SECTIONS, **CONFIGS}[cname]
        assert name in {f.name for f in dataclasses.fields(cls)}, f"{who} is gone: drop it from ALLOWED"
        same_key = next(e for e in entries.values() if any(w == who for w, _ in e))
        mine = next(v for w, v in same_key if w == who)
        assert any(repr(v) != repr(mine) for w, v in same_key if w != who), f"{who} agrees now: drop it from ALLOWED"


def test_views_take_the_sections_default():
    """A view's default is its section's, or the override it names, and an
    override is one of the tables declared beside the section."""
    from tripost.sources.settings import OVERRIDES

    views = 0
    for cname, cls in CONFIGS.items():
        for f in dataclasses.fields(cls):
            if "section" not in f.metadata:
                continue
            views += 1
            section, key, override = f.metadata["section"], f.metadata["key"], f.metadata["override"]
            assert section in SECTIONS.values(), f"{cname}.{f.name} views {section}, which is not a settings section"
            if override is None:
                assert _default(f) == default_of(section, key), f"{cname}.{f.name}"
            else:
                assert any(override is t for t in OVERRIDES.values()), f"{cname}.{f.name}: an override not declared in OVERRIDES"
                assert _default(f) == override[key], f"{cname}.{f.name}"
    assert views >= 20


def test_overrides_name_section_keys_and_do_differ():
    from tripost.sources.settings import OVERRIDES, CollectSettings

    for method, table in OVERRIDES.items():
        for key, value in table.items():
            assert key in {f.name for f in dataclasses.fields(CollectSettings)}, f"{method}: {key} is not a [collect] key"
            assert value != default_of(CollectSettings, key), f"{method}: {key}={value!r} is the section's default; drop it"
        dataclasses.replace(CollectSettings(), **table).check(lambda k: f"collect.{k}")  # a usable setting


def test_samples_per_problem_and_concurrency_have_one_default_each():
    """The two the issue counted: 2 and 8 everywhere a library call starts
    (sharpen's best-of-N N = 8 is its declared override)."""
    from tripost.sources.guided import GuidedConfig
    from tripost.sources.selfverify import SelfVerifyConfig
    from tripost.sources.settings import SHARPEN_DEFAULTS, CollectSettings
    from tripost.sources.teacher import CollectConfig
    from tripost.sharpen import SharpenConfig
    from tripost.teachers import make_teacher
    from tripost.teachers.options import TeacherOptions
    from tripost.teachers.requester import Requester
    from tripost.teachers.sdk import SDKChat

    n = CollectSettings().samples_per_problem
    assert CollectConfig().samples_per_problem == GuidedConfig().samples_per_round == SelfVerifyConfig().samples == n
    assert SharpenConfig().samples == SHARPEN_DEFAULTS["samples_per_problem"]
    k = TeacherOptions().concurrency
    assert CollectConfig().teacher_concurrency == k
    assert inspect.signature(make_teacher).parameters["concurrency"].default == k
    assert inspect.signature(SDKChat.__init__).parameters["max_concurrency"].default == k

    class Bare:  # a backend that declares no bound of its own
        name, model, endpoint = "fake", "m", ""

    assert Requester(Bare()).concurrency == k  # type: ignore[arg-type]


@pytest.mark.parametrize("source", ["teacher", "rejection", "guided", "self_verified", "demo", "sharpen"])
def test_a_config_built_in_code_is_the_one_the_cli_builds(source):
    """`XConfig()` equals the config `tripost collect --source X` builds from
    the default settings, except where a declared override says otherwise."""
    from tripost.sources import make_source
    from tripost.sources.settings import OVERRIDES, CollectSettings
    from tripost.teachers.options import TeacherOptions

    built = make_source(CollectSettings(source=source), TeacherOptions().concurrency).config
    in_code = type(built)()
    differ = {f.name for f in dataclasses.fields(built) if getattr(built, f.name) != getattr(in_code, f.name)}
    overridden = {f.name for f in dataclasses.fields(built) if f.metadata.get("key") in OVERRIDES.get(source, {})}
    assert differ == overridden
