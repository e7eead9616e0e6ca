"""Issue 32, item 8: a full disk in `collect` and `buffer`.

Both ended in a chained `OSError: [Errno 28]` traceback, and `buffer` left a
0-byte `dataset/state.json` that `train` then could not read. Now each is one
line naming the path and the space left, the log keeps every record written
before the disk filled (whole lines only), the buffer leaves no dataset
folder, and the same command, once there is room, finishes the work.

The disk is real where this process may mount one: a 16 KB tmpfs (root).
Elsewhere the same room is kept by a budget on `os.write`, the call the log
writer makes, and `datasets` is made to fail as the full tmpfs made it (a
0-byte state.json, then ENOSPC): the CLI runs in-process, so both see it.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tripost.cli import main
from tripost.log import read_log

ROOM = 16 * 1024  # the small disk: the lock, config.json and about three records of the collection below
BIG = 4 * 1024 * 1024  # room enough for everything here


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """`.path`, a folder on a disk of ROOM bytes; `.resize(n)` gives it n."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={ROOM}", "tmpfs", str(folder)],
                                                   capture_output=True).returncode == 0
    budget = {"left": ROOM // 2}  # what os.write may still write: a real disk also holds config.json
    if not mounted:
        import datasets

        real_write, real_save = os.write, datasets.Dataset.save_to_disk

        def write(fd: int, data) -> int:
            n = min(len(data), budget["left"])
            if n == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget["left"] -= n
            return real_write(fd, bytes(data[:n]))

        def save_to_disk(self, path, *args, **kw):
            if budget["left"] < BIG // 4:  # a buffer's dataset needs more than the small disk has
                Path(path).mkdir(parents=True, exist_ok=True)
                (Path(path) / "state.json").write_bytes(b"")  # what the full tmpfs left
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_save(self, path, *args, **kw)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(datasets.Dataset, "save_to_disk", save_to_disk)

    def resize(size: int) -> None:
        if mounted:
            subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)
        else:
            budget["left"] = size // 2

    yield SimpleNamespace(path=folder, resize=resize)
    if mounted:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def one_error_line(capsys, verb: str) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line and not line.startswith(("collect", "Loading", "Saving"))]
    assert len(err) == 1 and err[0].startswith(f"tripost {verb}: error: "), err
    return err[0]


def collect_args(tiny: Path, out: Path) -> list[str]:
    return ["collect", "--student", f"hf:{tiny}", "--task", "arithmetic", "--n", "8", "--samples", "1", "--max-new-tokens", "8",
            "--out", str(out)]


def test_collect_on_a_full_disk_is_one_line_and_keeps_every_record(capsys, small_disk, tiny_model_dir, one_torch_thread):
    out = small_disk.path / "collect"
    assert main(collect_args(tiny_model_dir, out)) == 2
    line = one_error_line(capsys, "collect")
    assert line.startswith(f"tripost collect: error: {out / 'log.jsonl'}: no space left on the device (") and " free in " in line, line
    log = out / "log.jsonl"
    kept = log.read_bytes()
    assert kept.endswith(b"\n"), "a record that did not fit is cut off: the log holds whole lines"
    first = [r.key for r in read_log(log)]
    assert 1 <= len(first) < 8, first  # some records fitted, not all
    # With room again, the same command resumes: the records already there are
    # kept as they were and not collected again.
    small_disk.resize(BIG)
    assert main(collect_args(tiny_model_dir, out)) == 0
    assert f"({len(first)} already there)" in capsys.readouterr().out
    assert log.read_bytes().startswith(kept)
    keys = [r.key for r in read_log(log)]
    assert len(keys) == len(set(keys)) == 8 and keys[: len(first)] == first


def test_buffer_on_a_full_disk_is_one_line_and_leaves_no_dataset(tmp_path, capsys, small_disk, tiny_model_dir, one_torch_thread):
    small_disk.resize(BIG)  # the log is collected with room, then the disk is small again
    log = tmp_path / "collected" / "log.jsonl"
    assert main(collect_args(tiny_model_dir, log.parent)) == 0
    capsys.readouterr()
    small_disk.resize(ROOM)
    out = small_disk.path / "buffer"
    assert main(["buffer", str(log), "--out", str(out)]) == 2
    line = one_error_line(capsys, "buffer")
    assert line.startswith(f"tripost buffer: error: {out / 'dataset'}: no space left on the device (") and " free in " in line, line
    # No dataset folder (it had a 0-byte state.json), no half-built one, no stats: not a finished buffer.
    assert sorted(p.name for p in out.iterdir()) == []
    small_disk.resize(BIG)
    assert main(["buffer", str(log), "--out", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    from tripost.train import load_buffer_dataset

    assert len(load_buffer_dataset(out)) == sum(stats["by_kind_after"].values()) > 0
