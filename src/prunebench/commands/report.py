"""`prunebench report DIR`: (re)write the report of an experiment folder."""

from __future__ import annotations

import argparse

from prunebench.report import write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="an experiment folder written by `prunebench run` (holds prunebench.sqlite)")
    parser.epilog = "Writes report.md, report.tex, PNG plots and results.csv/json into DIR."


def run(args: argparse.Namespace) -> int:
    print(f"report: {write_report(args.dir)}")
    return 0
