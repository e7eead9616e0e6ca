"""The loop's numbers reach `train.report_to` (issue 29, item 8): one
tracker run per `tripost run`, iteration t at step t, with accuracy and its
interval, the self-improvement rates, the teacher's calls and cost, the
buffer's composition, the training and the generation-verification gap.
Read back from tensorboard's event files, written offline."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import types
from pathlib import Path

import pytest

from tripost.report import iteration_metrics

HAS_TENSORBOARD = any(importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorboardX"))


def overrides(tiny: Path, report_to: str) -> list[str]:
    return [f"student.spec=hf:{tiny}", "tasks.n_train=4", "tasks.n_eval=2", 'tasks.eval_subsets=["seen"]', "train.epochs=1",
            "train.precision=fp32", "collect.max_new_tokens=8", "collect.samples_per_problem=1", "eval.max_new_tokens=8",
            "eval.max_turns=1", "eval.n_bootstrap=20", "loop.iterations=1", "gap.n_problems=1", "gap.samples=2", "gap.max_new_tokens=8",
            f"train.report_to={report_to}"]


def run(tiny: Path, out: Path, report_to: str, said: list[str] | None = None) -> None:
    from tripost.loop import Run
    from tripost.runconfig import RunConfig

    Run(out, RunConfig.load(None, overrides(tiny, report_to)).to_dict(), progress=False, log=(said.append if said is not None else lambda m: None)).run()


def events(path: Path) -> list[tuple[int, str, float]]:
    """(step, tag, value) of every scalar in a tensorboard event file: TFRecord
    frames (length, its CRC, the Event protobuf, its CRC), read here so the
    test needs no tensorboard server."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event
    except ImportError:
        from tensorboardX.proto.event_pb2 import Event
    data, i, out = path.read_bytes(), 0, []
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        event = Event()
        event.ParseFromString(data[i + 12:i + 12 + n])
        i += 12 + n + 4
        out += [(event.step, v.tag, v.simple_value) for v in event.summary.value if v.HasField("simple_value")]
    return out


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="needs tensorboard or tensorboardX (pip install tensorboardX)")
def test_a_run_logs_its_loop_numbers_to_tensorboard_one_tracker_run_per_invocation(tiny_model_dir, tmp_path, one_torch_thread):
    out = tmp_path / "run"
    run(tiny_model_dir, out, "tensorboard")
    files = sorted((out / "logs").glob("events.out.tfevents.*"))
    assert len(files) == 1  # one tracker run for the one `tripost run`
    got = {(step, tag): value for step, tag, value in events(files[0])}
    assert {step for step, _ in got} == {0, 1}  # iterations as steps

    ev = json.loads((out / "it1" / "eval" / "eval.json").read_text())["metrics"]["total"]
    assert got[(1, "eval/total/final_accuracy")] == pytest.approx(ev["final_accuracy"])
    low, high = got[(1, "eval/total/final_accuracy_low")], got[(1, "eval/total/final_accuracy_high")]
    assert low <= ev["final_accuracy"] <= high and high > low  # Wilson's interval, never empty at 0/n
    for step in (0, 1):
        for tag in ("eval/total/first_accuracy", "eval/total/revised_rate", "eval/total/fix_rate", "eval/seen/final_accuracy",
                    "train/final_loss", "gap/acc_all"):
            assert (step, tag) in got, (step, tag)
    collect = json.loads((out / "it1" / "collect" / "collect.json").read_text())
    assert got[(1, "teacher/calls")] == collect["teacher_calls"] > 0 and got[(1, "teacher/cost_usd")] == 0.0
    kinds = json.loads((out / "it1" / "buffer" / "stats.json").read_text())["by_kind_after"]
    assert got[(1, "buffer/examples")] == sum(kinds.values())
    assert got[(1, "buffer/improvement_share")] == pytest.approx(kinds["improvement"] / sum(kinds.values()))
    assert (0, "teacher/calls") not in got  # iteration 0 asks no teacher
    # Each training's own loss curve still goes where the trainer puts it.
    assert list((out / "it1" / "train" / "logs").glob("events.out.tfevents.*"))

    # A second invocation (a resume with nothing left to do) is its own tracker run with the whole run again.
    run(tiny_model_dir, out, "tensorboard")
    files = sorted((out / "logs").glob("events.out.tfevents.*"))
    assert len(files) == 2
    again = {(step, tag): value for step, tag, value in events(files[-1])}
    assert again.keys() == got.keys() and again[(1, "eval/total/final_accuracy")] == got[(1, "eval/total/final_accuracy")]


def fake_tracker(name: str, calls: list) -> types.ModuleType:
    """A stand-in module for wandb or trackio that records what it is asked."""
    module = types.ModuleType(name)
    module.__spec__ = importlib.util.spec_from_loader(name, loader=None)

    class FakeRun:
        def define_metric(self, *a, **kw):
            calls.append(("define_metric", a, kw))

        def log(self, metrics, **kw):
            calls.append(("log", dict(metrics), kw))

        def finish(self):
            calls.append(("finish",))

    def init(**kw):
        calls.append(("init", kw))
        return FakeRun()

    module.init = init
    module.log = lambda metrics, **kw: calls.append(("log", dict(metrics), kw))
    module.finish = lambda: calls.append(("finish",))
    module.util = types.SimpleNamespace(generate_id=lambda: "abc123")
    return module


@pytest.mark.parametrize("name", ["wandb", "trackio"])
def test_wandb_and_trackio_get_one_run_with_iterations_as_steps(tmp_path, monkeypatch, name):
    """The calls the loop makes, on a run folder's files (no training): one
    tracker run, opened (with the config) when the loop starts and reopened
    by its id or name for each iteration's numbers, closed in between so the
    trainer's own runs never mix with it. (The packages are not installed
    here; these are their documented calls.)"""
    from tripost.runconfig import RunConfig
    from tripost.report import LoopTracker

    calls: list = []
    monkeypatch.setitem(sys.modules, name, fake_tracker(name, calls))
    out = tmp_path / "run"
    for t, acc in ((0, 0.25), (1, 0.5)):
        folder = out / f"it{t}" / "eval"
        folder.mkdir(parents=True)
        (folder / "eval.json").write_text(json.dumps({"metrics": {"total": {
            "n": 4, "first_accuracy": acc, "final_accuracy": acc, "counts": {"first_correct": int(4 * acc), "final_correct": int(4 * acc)}}}}))
    cfg = RunConfig.defaults()
    cfg["train"]["report_to"] = name
    tracker = LoopTracker(out, cfg, say=lambda m: None)
    tracker.log("it0")
    tracker.log("it1")
    tracker.close()
    inits = [c[1] for c in calls if c[0] == "init"]
    assert len(inits) == 3 and [c[0] for c in calls].count("finish") == 3  # the start, then one per iteration, each closed
    assert all(i["name"] == "run" and i["project"] == "tripost" for i in inits)
    assert inits[0]["config"]["train.report_to"] == name and "config" not in inits[1]
    logs = [c for c in calls if c[0] == "log"]
    assert [m["eval/total/final_accuracy"] for _, m, _ in logs] == [0.25, 0.5]
    if name == "wandb":  # one id throughout; the iteration is the charts' x-axis
        assert {i["id"] for i in inits} == {"abc123"} and all(i["resume"] == "allow" and i["reinit"] == "create_new" for i in inits)
        assert [m["iteration"] for _, m, _ in logs] == [0, 1] and ("define_metric", ("*",), {"step_metric": "iteration"}) in calls
    else:
        assert [i.get("resume") for i in inits] == [None, "must", "must"] and [kw["step"] for _, _, kw in logs] == [0, 1]


def test_iteration_metrics_keep_unknown_costs_unknown():
    row = {"collect": {"teacher_calls": 3, "cost_usd": 0.0, "unpriced": ["some-model"], "usable": 2, "by_kind": {"improvement": 2}},
           "buffer": {"by_kind_after": {"improvement": 2, "direct": 2, "gold": 0}}, "eval": None, "train": None,
           "gap": {"metrics": {"gap": {"mean": 0.1, "ci": [0.0, 0.2]}}}}
    m = iteration_metrics(row)
    assert m["teacher/calls"] == 3 and "teacher/cost_usd" not in m  # unpriced: unknown, not 0
    assert m["buffer/direct_share"] == 0.5 and m["buffer/examples"] == 4
    assert (m["gap/gap"], m["gap/gap_low"], m["gap/gap_high"]) == (0.1, 0.0, 0.2)


def test_trackers_without_loop_numbers_say_so_once(tmp_path, monkeypatch):
    from tripost.runconfig import RunConfig
    from tripost.report import LoopTracker

    monkeypatch.setitem(sys.modules, "dvclive", fake_tracker("dvclive", []))
    cfg = RunConfig.defaults()
    cfg["train"]["report_to"] = "dvclive"
    said: list[str] = []
    tracker = LoopTracker(tmp_path, cfg, say=said.append)
    tracker.log("it0")
    tracker.close()
    assert len(said) == 1 and "receives the training loss only" in said[0]
