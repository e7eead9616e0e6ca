"""scripts/bench_learning.py's own logic: which overrides may act on the
TriPosT run alone, and which finished stages --reuse may link."""

import importlib.util
import json
from pathlib import Path

import pytest

from tripost.errors import TripostError
from tripost.loop import resolve_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bl():
    spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "scripts" / "bench_learning.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def configs(bl, extra=()):
    common = bl.base_overrides(bl.SIZES["quick"], "fp32", 0, "smollm2-135m") + list(extra)
    tri = resolve_config(None, common)
    rej = resolve_config(None, common + ["student.eval_base=false", "collect.source=rejection", "buffer.include_gold=false",
                                         "eval.every_iteration=false"])
    return tri, rej


def old_bench(bl, tmp_path, extra=()):
    """An earlier benchmark folder: finished base, it0 and rejection."""
    src = tmp_path / "old"
    tri, rej = configs(bl, extra)
    for folder, cfg in ((src / "tripost", tri), (src / "rejection", rej)):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(cfg))
    for name in ("base/eval", "it0/train", "it0/eval", "it1/eval"):
        (src / "tripost" / name).mkdir(parents=True)
    stages = {"base/eval": {"seconds": 5.0}, "it0/train": {"seconds": 7.0}, "it1/train": {"seconds": 9.0}}
    (src / "tripost" / "state.json").write_text(json.dumps({"stages": stages}))
    return src


def test_tripost_set_takes_only_keys_that_act_from_iteration_1(bl):
    bl.check_tripost_set(["buffer.ratio=[3,1,1]", "collect.temperature=0.5", "train.revised_attempt_weight=0"])
    with pytest.raises(TripostError, match="use --set"):
        bl.check_tripost_set(["train.feedback_weight=3"])  # iteration 0 trains with it too
    with pytest.raises(TripostError, match="use --set"):
        bl.check_tripost_set(["train.revised_attempt_weight_x=0"])


def test_reuse_links_base_it0_and_an_identical_rejection_run(bl, tmp_path):
    src = old_bench(bl, tmp_path)
    tri, rej = configs(bl)
    tri_variant = resolve_config(None, [*bl.base_overrides(bl.SIZES["quick"], "fp32", 0, "smollm2-135m"), "buffer.ratio=[3,1,1]"])
    out = tmp_path / "new"
    linked = bl.reuse_finished(src, out, tri_variant, rej, lambda m: None)
    assert linked == ["tripost/base", "tripost/it0", "rejection"]
    assert (out / "tripost" / "it0").is_symlink() and (out / "tripost" / "it0" / "train").is_dir()
    assert not (out / "tripost" / "it1").exists()  # the iterations the variant changes are its own
    stages = json.loads((out / "tripost" / "state.json").read_text())["stages"]
    assert stages == {"base/eval": {"seconds": 5.0}, "it0/train": {"seconds": 7.0}}


def test_reuse_takes_a_variant_that_masks_revised_attempts(bl, tmp_path):
    src = old_bench(bl, tmp_path)
    tri, rej = configs(bl)
    base = bl.base_overrides(bl.SIZES["quick"], "fp32", 0, "smollm2-135m")
    variant = resolve_config(None, [*base, "buffer.ratio=[3,1,1]", "train.revised_attempt_weight=0"])
    assert variant["train"]["revised_attempt_weight"] == 0
    linked = bl.reuse_finished(src, tmp_path / "new", variant, rej, lambda m: None)
    assert linked == ["tripost/base", "tripost/it0", "rejection"]


def test_reuse_refuses_a_run_that_differs_before_iteration_1(bl, tmp_path):
    src = old_bench(bl, tmp_path)
    tri, rej = configs(bl, ["train.feedback_weight=3"])
    with pytest.raises(TripostError, match="nothing reused"):
        bl.reuse_finished(src, tmp_path / "new", tri, rej, lambda m: None)
    assert not (tmp_path / "new").exists()


def test_reuse_keeps_rejection_when_its_config_differs(bl, tmp_path):
    src = old_bench(bl, tmp_path)
    tri, rej = configs(bl)
    rej["collect"]["temperature"] = 0.3
    assert bl.reuse_finished(src, tmp_path / "new", tri, rej, lambda m: None) == ["tripost/base", "tripost/it0"]
    assert not (tmp_path / "new" / "rejection").exists()
