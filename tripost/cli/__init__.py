"""The `tripost` command: thin verbs over the library.

Each verb lives in its own module with `register(subparsers)`; the module's
handler returns an exit code. A `TripostError` anywhere becomes one line on
stderr and exit code 2: the user sees what is wrong, never a traceback wall.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from tripost import __version__
from tripost.errors import TripostError

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


def main(argv: list[str] | None = None) -> int:
    # Nothing is fetched from a model hub that the user did not name (docs/design.md).
    from tripost.student.spec import hub_offline_by_default

    hub_offline_by_default()
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except TripostError as e:
        print(f"tripost {args.verb}: error: {e}", file=sys.stderr)
        return e.exit_code
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
        # permission, a read-only disk) after the verb's own checks passed:
        # still the user's path, still one line. Other OS errors are bugs.
        if e.filename is None:
            raise
        print(f"tripost {args.verb}: error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
