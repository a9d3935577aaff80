"""The loop: results and files of a run, model selection, skip-if-done, failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from trainkit import digits, tiny_model

from prunebench.errors import ConfigError, PrunebenchError
from prunebench.train import Callback, Recipe, TrainContext, TrainResult, evaluate, load_model, train
from prunebench.train.checkpoint import read_torch_state
from prunebench.train.speed import cpu_has_bf16

FP32 = Recipe(epochs=3, lr=0.1, precision="fp32")


def test_run_writes_result_metrics_and_checkpoints(tmp_path: Path) -> None:
    splits = digits()
    result = train(tiny_model(), splits, FP32, tmp_path, seed=0, test_every_epoch=True, progress=False)

    assert TrainResult.load(tmp_path) == result
    assert json.loads((tmp_path / "result.json").read_text())["epochs"] == 3
    assert result.steps == 3 * 8 and result.images_seen == 3 * 500  # 500 images, batch 64: 8 steps/epoch
    assert result.precision == "fp32" and result.device == "cpu"

    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "seconds"]

    val = [h["val_acc"] for h in result.history]
    assert result.final_val_acc == val[-1] and result.best_val_acc == max(val)
    assert result.best_epoch == val.index(max(val))
    assert result.best_test_acc_compat == max(h["test_acc"] for h in result.history)

    final, _, _ = load_model(tmp_path / "final")
    best, _, best_meta = load_model(tmp_path / "best")
    assert best_meta is not None and best_meta["epoch"] == result.best_epoch
    assert evaluate(final, splits.test_x, splits.test_y, info=splits.info) == result.test_acc
    assert evaluate(best, splits.test_x, splits.test_y, info=splits.info) == result.test_acc_best_val
    assert evaluate(best, splits.val_x, splits.val_y, info=splits.info) == result.best_val_acc


def test_finished_run_is_not_retrained(tmp_path: Path) -> None:
    first = train(tiny_model(), digits(), FP32, tmp_path, seed=0, progress=False)
    stamp = (tmp_path / "result.json").stat().st_mtime_ns

    class Boom(Callback):
        def on_train_start(self, ctx: TrainContext) -> None:
            raise AssertionError("a finished run was retrained")

    fresh = tiny_model(seed=9)
    again = train(fresh, digits(), FP32, tmp_path, seed=0, callbacks=[Boom()], progress=False)
    assert again == first and (tmp_path / "result.json").stat().st_mtime_ns == stamp
    final, _, _ = load_model(tmp_path / "final")  # the caller's model now holds the trained weights
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in final.state_dict().items())
    with pytest.raises(ConfigError, match="different recipe"):  # never someone else's result
        train(tiny_model(), digits(), FP32.replace(epochs=4), tmp_path, seed=0, progress=False)


def test_without_validation_split_best_is_final(tmp_path: Path) -> None:
    splits = digits(val_size=0)
    result = train(tiny_model(), splits, Recipe(epochs=1, lr=0.1, precision="fp32"), tmp_path, seed=0, progress=False)
    assert result.best_val_acc is None and result.final_val_acc is None
    assert result.test_acc is not None and result.test_acc_best_val == result.test_acc
    weights = [(tmp_path / d / "weights.safetensors").read_bytes() for d in ("best", "final")]
    assert weights[0] == weights[1]
    assert "val_acc" not in result.history[0]


class _PoisonAt(Callback):
    """Make the weights non-finite during epoch 1."""

    def after_step(self, ctx: TrainContext) -> None:
        if ctx.epoch == 1:
            with torch.no_grad():
                ctx.model.classifier[0].weight.fill_(float("nan"))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    expected = r"loss became nan at epoch 1 step 9; last good checkpoint kept in .*state"
    with pytest.raises(PrunebenchError, match=expected):
        train(tiny_model(), digits(), FP32, tmp_path, seed=0, callbacks=[_PoisonAt()], progress=False)
    assert not (tmp_path / "result.json").exists()
    assert read_torch_state(tmp_path / "state" / "train_state.pt")["next_epoch"] == 1
    kept, _, _ = load_model(tmp_path / "state")
    assert all(torch.isfinite(p).all() for p in kept.parameters())


def test_resume_with_different_recipe_is_refused(tmp_path: Path) -> None:
    class InterruptInEpoch1(Callback):
        def on_epoch_end(self, ctx: TrainContext) -> None:
            if ctx.epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), digits(), FP32, tmp_path, seed=0, callbacks=[InterruptInEpoch1()], progress=False)
    before = (tmp_path / "state" / "train_state.pt").read_bytes()
    with pytest.raises(ConfigError, match="different recipe"):
        train(tiny_model(), digits(), FP32.replace(lr=0.05), tmp_path, seed=0, progress=False)
    with pytest.raises(ConfigError, match="different seed"):
        train(tiny_model(), digits(), FP32, tmp_path, seed=1, progress=False)
    assert (tmp_path / "state" / "train_state.pt").read_bytes() == before


def test_auto_precision_uses_bf16_where_supported(tmp_path: Path) -> None:
    result = train(tiny_model(), digits(), Recipe(epochs=1, lr=0.1), tmp_path, seed=0, progress=False)
    assert result.precision == ("bf16" if cpu_has_bf16() else "fp32")
    assert result.test_acc is not None and 0.0 <= result.test_acc <= 1.0
    final, _, _ = load_model(tmp_path / "final")
    assert all(p.dtype == torch.float32 for p in final.parameters())  # autocast never changes the stored weights


def test_progress_bar_only_when_asked_or_on_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = Recipe(epochs=1, lr=0.1, precision="fp32")
    train(tiny_model(), digits(), recipe, tmp_path / "auto", seed=0)  # stderr is not a terminal under pytest
    err = capsys.readouterr().err
    assert err.startswith("[auto] epoch 1/1") and err.count("\n") == 1 and "step" not in err  # a plain line, no bar
    train(tiny_model(), digits(), recipe, tmp_path / "forced", seed=0, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "step" in err
