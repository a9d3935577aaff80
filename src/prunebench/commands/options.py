"""Options several subcommands share, so that each is spelled and explained the same everywhere."""

from __future__ import annotations

import argparse

DATA_DIR_HELP = (
    "folder holding the data files, searched first (then $PRUNEBENCH_DATA, then the user cache "
    "~/.cache/prunebench; Fashion-MNIST also the Debian package's folder)"
)


def add_data_dir(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--data-dir DIR`: the same option, with the same meaning, in every command that loads data."""
    parser.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)


THREADS_HELP = (
    "torch CPU threads per process, fixed for the whole run: results are bit-reproducible only for "
    "a fixed count (default: $PRUNEBENCH_THREADS or $OMP_NUM_THREADS if set, else chosen from the "
    "cores other jobs leave free and re-checked between epochs)"
)


def add_threads(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--threads N`: pin the thread count (train/threads.py says why it adapts otherwise)."""
    parser.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
