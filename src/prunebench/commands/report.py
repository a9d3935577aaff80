"""`prunebench report DIR`: (re)write the report of an experiment folder."""

from __future__ import annotations

import argparse



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="an experiment folder written by `prunebench run` (holds prunebench.sqlite)")
    parser.add_argument(
        "--failures", action="store_true",
        help="print each failed stage (kind, folder) with the error and traceback recorded in the store; writes nothing",
    )  # fmt: skip
    parser.epilog = "Writes report.md, report.html (self-contained), report.tex, PNG plots and results.csv/json into DIR."


def run(args: argparse.Namespace) -> int:
    from prunebench.report import write_report  # scipy + matplotlib: only when a report is written

    if args.failures:
        from prunebench.report.failures import format_failures

        print(format_failures(args.dir))
        return 0
    print(f"report: {write_report(args.dir)}")
    return 0
