"""`train --method`, `finetune CKPT` and `scratch CKPT --budget E|B` from the command line, and the
options they refuse because they would do nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunebench.cli import main

DATA = ["--dataset", "fashion-mnist", "--train-subset", "100", "--val-size", "0"]


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    large, out = root / "large", root / "pruned"
    assert main(["train", "--arch", "vgg11", "--width-mult", "0.125", *DATA, "--epochs", "1",
                 "--method", "slimming", "--option", "lam=0.001", "--out", str(large)]) == 0  # fmt: skip
    assert json.loads((large / "config.json").read_text())["method"]["name"] == "slimming"
    assert main(["prune", "--method", "slimming", "--ratio", "0.3", "--checkpoint", str(large), "--out", str(out)]) == 0
    return out


def test_finetune_and_both_scratch_budgets(pruned: Path, tmp_path: Path) -> None:
    assert main(["finetune", str(pruned), *DATA, "--epochs", "1", "--lr", "0.01", "--out", str(tmp_path / "ft")]) == 0
    assert (tmp_path / "ft" / "result.json").is_file()
    for budget in ("E", "B"):
        assert main(["scratch", str(pruned), "--budget", budget, *DATA, "--epochs", "2", "--out", str(tmp_path / budget)]) == 0
    epochs = {b: json.loads((tmp_path / b / "config.json").read_text())["recipe"]["epochs"] for b in ("E", "B")}
    assert epochs["E"] == 2 and epochs["B"] > 2  # stretched by the FLOPs ratio
    assert json.loads((tmp_path / "B" / "config.json").read_text())["flops_ratio"] > 1


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["train", "--arch", "vgg11", *DATA, "--epochs", "1", "--method", "slimming", "--option", "ratio=0.3"], "prune-time option"),
        (["train", "--arch", "vgg11", *DATA, "--epochs", "1", "--method", "l1norm"], "trained plainly"),
        (["scratch", "PRUNED", "--budget", "E", "--large", "x", *DATA, "--epochs", "1"], "--budget B only"),
        (["prune", "--method", "slimming", "--ratio", "0.3", "--option", "lam=1e-4", "--checkpoint", "PRUNED", "--out", "OUT"], "large-model training"),
    ],
)  # fmt: skip
def test_options_that_would_do_nothing_are_refused(argv: list[str], error: str, pruned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(pruned) if a == "PRUNED" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main([*argv, *([] if argv[0] == "prune" else ["--out", str(tmp_path / "run")])]) == 2
    assert error in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


def test_a_user_model_from_the_command_line(tmp_path: Path) -> None:
    digits = ["--dataset", "digits", "--train-subset", "100"]
    large, pruned, scratch = tmp_path / "large", tmp_path / "pruned", tmp_path / "scratch"
    assert main(["train", "--builder", "user_models:resnet18_like", "--kwargs", '{"width": 4}', *digits,
                 "--epochs", "1", "--out", str(large)]) == 0  # fmt: skip
    assert json.loads((large / "final" / "spec.json").read_text())["builder"] == "user_models:resnet18_like"
    assert main(["prune", "--method", "l1norm", "--ratio", "0.5", "--checkpoint", str(large), "--out", str(pruned)]) == 0
    record = json.loads((pruned / "spec.json").read_text())["pruning"]
    assert ["fc", "in"] in [op[:2] for op in record]  # the residual width reaching the classifier was pruned
    assert main(["scratch", str(pruned), "--budget", "B", *digits, "--epochs", "1", "--out", str(scratch)]) == 0
    assert json.loads((scratch / "config.json").read_text())["recipe"]["epochs"] > 1
