"""The `tripost` command: thin verbs over the library.

Each verb (or pair of related verbs) lives in its own module with
`register(subparsers)`; the module's handler returns an exit code. A
`TripostError` anywhere becomes one line on stderr and exit code 2: the user
sees what is wrong, never a traceback wall.
Ctrl-C is one line ("interrupted") and exit code 130; SIGTERM (a scheduler, a
container stop, `kill`) unwinds the same way, says "terminated" and exits
143 (128 + 15, what a shell reports for a process SIGTERM ended).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import warnings

from tripost import __version__
from tripost.errors import TripostError, clip
from tripost.fileio import DISK_FULL, no_space
from tripost.student.spec import hub_offline_by_default

# Verb modules, in the order `tripost --help` lists them.
VERB_MODULES = [
    "tripost.cli.tasks_cmd",
    "tripost.cli.teach_cmd",
    "tripost.cli.sample_cmd",
    "tripost.cli.collect_cmd",
    "tripost.cli.train_cmd",
    "tripost.cli.buffer_cmd",
    "tripost.cli.eval_cmd",
    "tripost.cli.sharpen_cmd",
    "tripost.cli.gap_cmd",
    "tripost.cli.serve_cmd",
    "tripost.cli.run_cmd",
    "tripost.cli.export_cmd",
    "tripost.cli.machine_cmd",
]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus a pointer to --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tripost",
        description="Teach small language models to correct themselves (TriPosT).",
    )
    parser.add_argument("--version", action="version", version=f"tripost {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True
    for name in VERB_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _quiet_libraries() -> None:
    """Keep the terminal for our own output: upstream deprecation notices
    (transformers 5 renames) and bitsandbytes' note that it could not fetch an
    optional CPU kernel from a hub (we never fetch from a hub) are noise here."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as Ctrl-C
    does: `finally` blocks run, files are closed, and the run ends with one
    line instead of dying mid-write without a word."""


TERMINATED_EXIT = 143  # 128 + SIGTERM, as a shell reports a process the signal ended


def _catch_sigterm() -> object | None:
    """Turn SIGTERM into `Terminated` in this process (not in a child it
    forks, which still dies of it at once); the previous handler, to restore,
    or None when none was installed (not the main thread, or someone else
    handles SIGTERM already)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (AttributeError, ValueError):
        return None
    if previous != signal.SIG_DFL:
        return None
    pid = os.getpid()

    def on_sigterm(signum: int, frame: object) -> None:
        # A second SIGTERM ends the process at once, as the default does.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if os.getpid() != pid:  # a forked worker: die as it would have
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    return previous


def main(argv: list[str] | None = None) -> int:
    previous = _catch_sigterm()
    try:
        return _main(argv)
    except Terminated:  # before a verb was chosen (while the parser loads)
        print("tripost: terminated", file=sys.stderr)
        return TERMINATED_EXIT
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    # Nothing is fetched from a model hub that the user did not name (docs/design.md).
    hub_offline_by_default()
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except TripostError as e:
        print(f"tripost {args.verb}: error: {e}", file=sys.stderr)
        return e.exit_code
    except Terminated:
        print(f"tripost {args.verb}: terminated", file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:
        print(f"tripost {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `tripost tasks sample ... | head` closes stdout early: not an error.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except OSError as e:
        # A path the file system refused (a file where a folder must be, no
        # permission, a read-only disk, a full one) after the verb's own
        # checks passed: still the user's path, still one line. The writers
        # of tripost's own files name a full disk themselves (fileio.no_space);
        # this is for a library's write. Other OS errors are bugs.

        if e.errno in DISK_FULL:
            message = str(no_space(e.filename)) if e.filename else "no space left on the device; free some space and run the same command again"
        elif e.filename is not None:
            message = f"{clip(str(e.filename), 300, str)}: {e.strerror or e}"
        else:
            raise
        print(f"tripost {args.verb}: error: {message}", file=sys.stderr)
        return 2
