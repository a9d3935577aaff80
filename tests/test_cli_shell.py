"""The CLI shell: every subcommand has --help, and bad input is one line, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from prunebench.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: prunebench " + command)
    assert len(out.splitlines()) > 3


def test_top_level_help_lists_every_subcommand() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "prunebench.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in COMMANDS:
        assert command in proc.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "info", "no-such-dataset"],
        ["arch", "no-such-net", "--dataset", "fashion-mnist"],
        ["prune", "--method", "no-such-method", "--checkpoint", "/nonexistent", "--out", "/tmp/x"],
        ["eval", "/nonexistent-checkpoint", "--dataset", "digits"],
        ["run", "/nonexistent/preset.toml"],
    ],
)
def test_bad_input_is_one_line_error(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "prunebench.cli", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
