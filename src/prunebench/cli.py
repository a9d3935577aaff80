"""The `prunebench` command: a thin shell over the Python API.

Each subcommand lives in `prunebench.commands.<name>` and defines
`add_arguments(parser)` and `run(args) -> int`. Errors derived from
`PrunebenchError` are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from prunebench import __version__
from prunebench.errors import PrunebenchError

COMMANDS: dict[str, str] = {
    "data": "inspect and fetch data sets",
    "arch": "show a named architecture: widths, params, FLOPs, latency, Scratch-B budget",
    "train": "train (or resume) a model into a checkpoint folder",
    "eval": "evaluate a checkpoint folder",
    "prune": "prune a checkpoint with a registered method",
    "finetune": "fine-tune a pruned checkpoint into a run folder",
    "scratch": "train a pruned checkpoint's architecture from scratch (Scratch-E or Scratch-B budget)",
    "run": "run an experiment preset: all arms x seeds, then report",
    "report": "write the report of an experiment folder",
    "demo": "the README's main job on Fashion-MNIST",
}


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get one line (plus a pointer to --help), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prunebench",
        description="Is pruning worth it? Prune, fine-tune and compare with Scratch-E / Scratch-B controls.",
    )
    parser.add_argument("--version", action="version", version=f"prunebench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(f"prunebench.commands.{name}")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except PrunebenchError as e:
        print(f"prunebench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prunebench {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `prunebench arch --list | head`
        sys.stderr.close()
        return 0
    except OSError as e:  # a disk or file-system failure nothing above turned into a message: still one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"prunebench {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
