"""A user model through a preset (`[model] builder =`), the example script, and what a preset refuses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prunebench.errors import ConfigError
from prunebench.experiment import load_preset, run_experiment
from prunebench.report import write_report

ROOT = Path(__file__).resolve().parents[2]
PRESET = """
name = "user-resnet"
seeds = [0, 1]
[data]
name = "digits"
val_size = 0
train_subset = 192
test_subset = 100
[model]
builder = "user_models:resnet18_like"
kwargs = {{ width = 4 }}
[[methods]]
name = "{method}"
label = "{method}-30%"
options = {{ ratio = 0.3 }}
[arms]
unpruned = true
pruned_no_ft = true
finetuned = true
scratch_e = true
scratch_b = true
{extra}
[recipes.large]
epochs = 1
lr = 0.05
precision = "fp32"
[recipes.finetune]
epochs = 1
lr = 0.005
"""


def write(tmp_path: Path, method: str = "l1norm", extra: str = "") -> Path:
    path = tmp_path / "user.toml"
    path.write_text(textwrap.dedent(PRESET.format(method=method, extra=extra)))
    return path


def test_every_arm_through_a_preset(tmp_path: Path) -> None:
    preset = load_preset(write(tmp_path, "slimming"))
    run_experiment(preset, tmp_path / "exp", progress=False, say=lambda _: None)
    report = write_report(tmp_path / "exp").read_text()
    for arm in ("Unpruned", "Fine-tuned", "Scratch-E", "Scratch-B"):
        assert f"| {arm} |" in report
    assert "user_models:resnet18_like" in report and "dispatch counter" in report


@pytest.mark.parametrize(
    ("method", "extra", "error"),
    [("thinet", "", "cannot prune a user model"), ("l1norm", "guided_scratch = true", "not available for a user model")],
)
def test_preset_refuses_what_a_user_model_cannot_run(tmp_path: Path, method: str, extra: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_preset(write(tmp_path, method, extra))


def test_builder_and_variant_do_not_mix(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("[model]\n", '[model]\nvariant = "vgg11"\n'))
    with pytest.raises(ConfigError, match="model.variant"):
        load_preset(path)


def test_example_script_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "prune_your_model.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # one thread, as the rest of the suite (cores are shared)
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Scratch-B" in done.stdout and "__main__:build_model" in done.stdout
