"""`prunebench --help` (and every subcommand's help) must not import scipy or matplotlib: they cost
about a second and only the report needs them."""

from __future__ import annotations

import subprocess
import sys

from prunebench.cli import COMMANDS

CHECK = """
import sys
from prunebench import cli
for argv in {argvs!r}:
    try:
        cli.main(argv)
    except SystemExit:
        pass
print("HEAVY:" + ",".join(m for m in ("scipy", "matplotlib", "sklearn") if m in sys.modules))
"""


def test_help_imports_neither_scipy_nor_matplotlib() -> None:
    argvs = [["--help"], *([name, "--help"] for name in COMMANDS)]
    out = subprocess.run([sys.executable, "-c", CHECK.format(argvs=argvs)], capture_output=True, text=True,
                         timeout=120, check=True).stdout  # fmt: skip
    assert "usage: prunebench" in out
    assert out.strip().splitlines()[-1] == "HEAVY:"
