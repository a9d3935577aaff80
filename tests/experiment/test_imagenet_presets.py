"""Every ImageNet preset runs end to end (`prunebench run`) on a tiny ImageNet-layout folder of real
JPEGs: the preset's methods, arms and budget policy, with tiny recipes, width and crop (`--set`)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("torchvision")

from imagefolder_toy import write_toy_imagenet  # noqa: E402

from prunebench.cli import main  # noqa: E402
from prunebench.experiment import load_preset  # noqa: E402

# 2 classes, 32-px crops of 36-px images, 1/16 width, a 2-epoch schedule with the step milestone.
TOY = [
    "data.classes=2", "data.input_size=32", "data.val_size=2", "data.test_subset=4", "model.width_mult=0.0625",
    "recipes.large.epochs=2", "recipes.large.milestones=[1]", "recipes.large.batch_size=8",
    "recipes.finetune.epochs=1",
]  # fmt: skip
# Named channel targets are full-width architectures: at 1/16 width the same method prunes by ratio.
# (one ratio a method, so that each stays its own pruning run)
RATIO = {
    "e1-l1-imagenet-resnet34": "{{ ratio = {r} }}",
    "e2-thinet-imagenet-vgg16": "{{ ratio = {r}, images = 4, locations = 2, finetune_between = 1 }}",
    "e3-regression-imagenet-resnet50": "{{ ratio = {r}, images = 4, locations = 2 }}",
}
ARMS = {"unpruned", "finetuned", "scratch_e", "scratch_b"}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_imagenet(tmp_path_factory.mktemp("imagenet"), classes=2, train=4, val=2, size=36)


def _run(preset: str, toy: Path, out: Path, extra: list[str]) -> int:
    sets = [*TOY, *extra]
    n = len(load_preset(preset).methods)
    sets += [f"methods[{i}].options={RATIO[preset].format(r=0.3 + 0.2 * i)}" for i in range(n) if preset in RATIO]
    return main(["run", preset, "--data-dir", str(toy), "--out", str(out), *[a for s in sets for a in ("--set", s)]])


def _arms(out: Path) -> dict[str, set[str]]:
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    arms: dict[str, set[str]] = {}
    for r in rows:
        arms.setdefault(r["method"], set()).add(r["arm"])
    return arms


@pytest.mark.parametrize("preset", [
    "e1-l1-imagenet-resnet34", "e2-thinet-imagenet-vgg16", "e3-regression-imagenet-resnet50",
    "e4-slimming-imagenet-vgg11", "e6-magnitude-imagenet-vgg16",
])  # fmt: skip
def test_preset_runs_every_arm(preset: str, toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRUNEBENCH_LOADER_WORKERS", "0")
    assert _run(preset, toy, tmp_path, []) == 0
    arms = _arms(tmp_path)
    assert set(arms) == {m.label for m in load_preset(preset).methods}
    assert all(ARMS <= a for a in arms.values()), arms


def test_sss_layouts_come_from_exact_zeros_or_are_refused(toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PRUNEBENCH_LOADER_WORKERS", "0")
    preset = "e5-sss-imagenet-resnet50"
    # A weak penalty leaves the gates non-zero: the named layouts are refused, in one line each.
    assert _run(preset, toy, tmp_path / "weak", []) == 2
    assert "gates are not zero" in capsys.readouterr().err
    # A penalty that zeroes the gates within the schedule: every layout is an SSS result, all arms run.
    strong = [f"methods[{i}].options.penalty=50.0" for i in range(3)]
    assert _run(preset, toy, tmp_path / "strong", strong) == 0
    arms = _arms(tmp_path / "strong")
    assert set(arms) == {"resnet41", "resnet32", "resnet26"} and all(ARMS <= a for a in arms.values())
