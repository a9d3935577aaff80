"""`prunebench report DIR`."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.cli import main
from prunebench.experiment import Store
from prunebench.experiment.graph import Stage


def test_report_command_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store.open(tmp_path)
    preset = {"seeds": [0, 1], "data": {"name": "digits", "val_size": 200}, "model": {"variant": "vgg11", "width_mult": 0.5}}
    store.add_experiment("cli", "x.toml", preset)
    for seed, acc in enumerate((0.8, 0.9)):
        sid = f"s{seed}".ljust(64, "0")
        store.add_stages("cli", [Stage(sid, "train_large", seed, {}, {}, {}, ("m",))], [("m", "unpruned", sid, "unpruned")])
        store.add_result(sid, "unpruned", seed, primary_acc=acc)
        store.mark_done(sid)
    store.close()
    assert main(["report", str(tmp_path)]) == 0
    assert f"report: {tmp_path / 'report.md'}" in capsys.readouterr().out
    report = (tmp_path / "report.md").read_text()
    assert "| digits | vgg11 x0.5 | m | 85.00 ± 7.07 (n=2) | – | – | – |" in report
    assert "Primary number: best-on-validation test accuracy" in report


def test_report_of_a_non_experiment_folder_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prunebench report: error:") and err.count("\n") == 1
