"""tripost.registry: names listed without importing, imported on first use,
an unknown name one error that lists the known ones."""

from __future__ import annotations

import sys

import pytest

from tripost.errors import TripostError
from tripost.registry import Registry


def test_lookup_is_lazy_and_cached():
    reg = Registry("thing", {"json": "json:dumps", "ghost": "tripost_no_such_module:x"})
    assert reg.names == ("json", "ghost") and list(reg) == ["json", "ghost"] and len(reg) == 2 and "json" in reg
    assert reg["ghost"] == "tripost_no_such_module:x"  # the entry, nothing imported
    assert "tripost_no_such_module" not in sys.modules
    import json

    assert reg.get("json") is json.dumps and reg.get("json") is reg.get("json")


def test_unknown_name_lists_the_known_ones():
    reg = Registry("data source", {"teacher": "json:dumps", "demo": "json:loads"})
    with pytest.raises(TripostError, match=r"unknown data source 'techer'; choose from teacher, demo"):
        reg.get("techer")
    with pytest.raises(TripostError, match="choose from teacher, demo"):
        reg["x"]
    assert reg.check("demo") == "demo"


def test_entries_must_name_module_and_attribute():
    with pytest.raises(ValueError, match="not 'module:attribute'"):
        Registry("thing", {"a": "json.dumps"})


def test_the_task_registry_is_one():
    from tripost.tasks import FAMILIES, get_task
    from tripost.tasks.registry import TASKS

    assert FAMILIES == TASKS.names and "arithmetic" in FAMILIES
    assert get_task("arithmetic") is get_task("arithmetic")
    with pytest.raises(TripostError, match="unknown task family 'nope'; choose from arithmetic"):
        get_task("nope")


def test_your_own_entry_can_be_registered_and_removed():
    reg = Registry("thing", {"json": "json:dumps"})
    reg["loads"] = "json:loads"
    import json

    assert reg.get("loads") is json.loads and reg.names == ("json", "loads")
    reg["loads"] = "json:dumps"  # replaced: looked up again
    assert reg.get("loads") is json.dumps
    del reg["loads"]
    assert "loads" not in reg
    with pytest.raises(ValueError, match="not 'module:attribute'"):
        reg["bad"] = "json"


def test_get_with_a_default_is_a_mapping_get():
    reg = Registry("thing", {"json": "json:dumps"})
    assert reg.get("nope", None) is None and reg.get("nope", 3) == 3


def test_the_teacher_backends_are_one_table():
    import inspect

    from tripost.teachers import BACKENDS, SPECS, TEACHERS, check_teacher_spec

    assert TEACHERS.names == tuple(BACKENDS) and len(SPECS) == len(BACKENDS)
    for kind, backend in BACKENDS.items():
        assert callable(TEACHERS.get(kind).from_spec), kind
        assert check_teacher_spec(backend.example) == (kind, backend.example.partition(":")[2])
        assert "**options" in str(inspect.signature(TEACHERS.get(kind).from_spec)), kind  # takes every option, uses its own
    with pytest.raises(TripostError, match="needs a model, e.g. openai:gpt-6-luna"):
        check_teacher_spec("openai:")
    with pytest.raises(TripostError, match="unknown teacher spec 'scripted:x'"):
        check_teacher_spec("scripted:x")
