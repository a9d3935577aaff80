"""Preset validation: every error names the file and the key path."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from kit import tiny_preset

from prunebench.errors import ConfigError
from prunebench.experiment import load_preset, parse_preset
from prunebench.experiment.preset import preset_dir

MINIMAL = tiny_preset(
    "t", seeds=(0, 1), quiet=False, test_subset=None, arms=("unpruned", "finetuned", "scratch_e"),
    large=("epochs = 4", "lr = 0.1", "milestone_fractions = [0.5, 0.75]"), finetune=("epochs = 1", "lr = 0.001"),
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.toml"
    path.write_text(text)
    return path


def test_minimal_preset_is_typed(tmp_path: Path) -> None:
    p = load_preset(_write(tmp_path, MINIMAL))
    assert p.seeds == (0, 1)
    assert p.large.milestones == (2, 3)  # fractions resolved to epochs
    assert p.finetune.milestones == () and p.finetune.batch_size == p.large.batch_size
    assert p.arms == ("unpruned", "finetuned", "scratch_e")
    assert p.methods[0].parsed.ratio == 0.5 and p.methods[0].label == "l1norm"
    assert p.with_seeds(4).seeds == (0, 1, 2, 3) and p.with_seeds(1).seeds == (0,)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("[data]", "[data]\nshuffle = true"), "x.toml: data.shuffle: unknown key"),
        (("epochs = 4", 'epochs = "four"'), 'x.toml: recipes.large.epochs: expected an integer, got "four"'),
        (("ratio = 0.5", 'ratio = "a"'), "x.toml: methods[0].options: method 'l1norm': option ratio: expected float"),
        (("ratio = 0.5", "ratio = 0.5, bogus = 1"), "x.toml: methods[0].options.bogus: unknown option of 'l1norm'; known: mask_form, ratio"),
        (("ratio = 0.5", "ratio = 1.5"), "x.toml: methods[0].options: method 'l1norm': ratio must be in [0, 1)"),
        (('name = "l1norm"', 'name = "nope"'), "x.toml: methods[0].name: unknown pruning method 'nope'"),
        (("lr = 0.1", "lr = 0.1\nmomentum = 1.5"), "x.toml: recipes.large: recipe: momentum must be in [0, 1)"),
        (("lr = 0.1", 'lr = 0.1\nprecision = "fp8"'), "x.toml: recipes.large: recipe: precision must be one of"),
        (("seeds = [0, 1]", "seeds = [0, -1]"), "x.toml: seeds[1]: must be in [0, 4294967295], got -1"),
        (("scratch_e = true", "scratch_e = 1"), "x.toml: arms.scratch_e: expected true or false, got 1"),
        (('variant = "vgg11"\n', ""), "x.toml: model.variant: missing required key"),
        (('name = "t"', 'name = "t"\ncolour = 1'), "x.toml: colour: unknown key"),
        (("[arms]", "colour = 1\n[arms]"), "x.toml: methods[0].colour: unknown key"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = _write(tmp_path, MINIMAL.replace(*edit))
    with pytest.raises(ConfigError) as err:
        load_preset(path)
    assert str(err.value).startswith(str(path).replace("x.toml", "")) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_bare_name_loads_a_shipped_preset_and_unknown_names_list_them() -> None:
    assert load_preset("demo-quick").file == "presets/demo-quick.toml"
    with pytest.raises(ConfigError, match="shipped: .*demo-quick"):
        load_preset("no-such-preset")


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="x.toml: not valid TOML"):
        load_preset(_write(tmp_path, "name = "))


def test_repo_presets_folder_is_the_packaged_one() -> None:
    repo = Path(__file__).resolve().parents[2] / "presets"
    assert sorted(p.name for p in repo.glob("*.toml")) == sorted(p.name for p in preset_dir().glob("*.toml"))
    assert all(parse_preset(tomllib.loads(p.read_text()), p.name) for p in repo.glob("*.toml"))
