"""Atomic writes: a file or folder appears whole or not at all.

Results, caches and markers are read back as "this step finished"; a crash
half-way through a plain write would leave something that looks finished and
is not. Everything here writes into a temporary sibling (same folder, hence
same file system) and renames it into place with `os.replace`, which is
atomic on POSIX and Windows. Readers see the old content or the new, never a
mixture. Temporary names start with a dot, so globs and listings skip them.

A full disk (ENOSPC, or a quota: EDQUOT) is one `TripostError` naming the
path and the space left there (`no_space`), never a half-written file.

This is a base module: it imports nothing of tripost but tripost.errors.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tripost.errors import TripostError

__all__ = ["DISK_FULL", "LOCK_FILE", "FolderLock", "atomic_directory", "atomic_write_json", "atomic_write_text",
           "no_space", "replace_directory"]

LOCK_FILE = ".tripost.lock"  # in a run folder (or a collect --out) while one process writes it

# Folders made by mkdtemp are private (0700); a cache folder is shared like any
# other, so it gets the usual permissions before it is renamed into place.
DIR_MODE = 0o755

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # the errors a write gets from a full disk or an exhausted quota


def _size(n: float) -> str:
    """A byte count as people read it."""
    units = ("bytes", "KB", "MB", "GB", "TB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:.0f} bytes" if i == 0 else f"{n:.1f} {units[i]}"


def no_space(path: str | Path) -> TripostError:
    """The one line for a write to `path` that found the disk full: the path,
    the space left on its file system (`shutil.disk_usage`) and what to do.
    The writers that raise it leave what they had written whole."""
    probe = Path(path).absolute()
    while not probe.is_dir() and probe.parent != probe:
        probe = probe.parent
    try:
        free = f"{_size(shutil.disk_usage(probe).free)} free in {probe}"
    except OSError:
        free = f"free space in {probe} unknown"
    return TripostError(f"{path}: no space left on the device ({free}); free some space and run the same command again "
                        f"(what was written before is kept)")


def _temp_sibling(path: Path) -> Path:
    # pid and thread: two writers of one path never share a temporary file.
    return path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")


def _write_via_sibling(path: str | Path, write: Callable[[Path], Any]) -> Path:
    path = Path(path)
    tmp = _temp_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise no_space(path) from None
        raise
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically; returns the path. The parent folder must exist."""
    return _write_via_sibling(path, lambda tmp: tmp.write_text(text, encoding=encoding))


# The heading of a benchmark page's hand-written section (what the figures
# mean, on which machine), below the tables a script writes.
READING_HEADING = "\n## Reading"


def atomic_write_page(path: str | Path, text: str, keep_from: str = READING_HEADING) -> Path:
    """Write the Markdown page `text` to `path` atomically, keeping what the
    page already holds from its first `keep_from` on: a benchmark script that
    writes its tables again leaves the hand-written Reading under them (to be
    brought up to date by hand). The parent folder is made if missing."""
    target = Path(path)
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    kept = old[old.index(keep_from):] if keep_from in old else ""
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(target, (text if text.endswith("\n") or not kept else text + "\n") + kept)


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2, ensure_ascii: bool = False, sort_keys: bool = False,
                      default: Callable[[Any], Any] | None = None) -> Path:
    """`obj` as JSON plus a final newline, written atomically (UTF-8)."""
    text = json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys, default=default) + "\n"
    return atomic_write_text(path, text)


def replace_directory(staged: str | Path, target: str | Path) -> None:
    """Rename the finished folder `staged` to `target`, replacing a folder of
    that name (moved aside first, then removed), so `target` is only ever
    whole or absent."""
    staged, target = Path(staged), Path(target)
    if target.exists():
        old = staged.with_name(staged.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, target)


@contextmanager
def atomic_directory(target: str | Path, *, keep_existing: Callable[[Path], bool] = lambda p: True) -> Iterator[Path]:
    """Build a folder in a temporary sibling (yielded) and rename it to
    `target` when the block ends without an error; on an error the sibling
    is removed and the error raised.

    When `target` exists by then (another process finished the same work
    first, or a stale folder is in the way), it is kept if
    `keep_existing(target)` says it is complete, and replaced otherwise.
    A full disk is `no_space(target)`, the sibling removed."""
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(tmp, DIR_MODE)
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError:
            if keep_existing(target):
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise no_space(target) from None
        raise


class FolderLock:
    """One writer per folder: an exclusive `flock` on FOLDER/.tripost.lock,
    taken before anything is written and held until `release` (or the
    process ends: the kernel drops the lock with the process, so a killed
    run leaves no stale lock to clear). The file says who holds it, for the
    one-line refusal a second writer gets. Where `fcntl` does not exist
    (Windows) the lock is a no-op."""

    def __init__(self, folder: str | Path, what: str):
        self.path = Path(folder) / LOCK_FILE
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        try:
            import fcntl
        except ImportError:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise TripostError(f"{self.path.parent} is being written by {holder[:160]}; wait for it to finish (or stop it), "
                               f"or use another folder") from None
        os.ftruncate(fd, 0)
        try:
            os.write(fd, f"{self.what} (pid {os.getpid()})\n".encode())
        except OSError as e:
            os.close(fd)
            if e.errno in DISK_FULL:
                raise no_space(self.path) from None
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

