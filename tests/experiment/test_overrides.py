"""`prunebench run PRESET --set KEY=VALUE` overrides any preset key, validated exactly like the file,
and `--print-config` prints the effective preset as TOML that loads back to the same experiment."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from prunebench.cli import main
from prunebench.errors import ConfigError
from prunebench.experiment import expand, load_preset
from prunebench.experiment.overrides import apply_overrides, parse_value, to_toml
from prunebench.experiment.preset import preset_dir


def test_values_are_toml_and_bare_text_is_a_string() -> None:
    assert parse_value("10") == 10 and parse_value("0.05") == 0.05 and parse_value("true") is True
    assert parse_value("[0, 1]") == [0, 1] and parse_value("{ ratio = 0.5 }") == {"ratio": 0.5}
    assert parse_value("cifar10") == "cifar10" and parse_value('"10"') == "10"


def test_overrides_reach_any_key_and_create_missing_tables() -> None:
    raw = {"recipes": {"large": {"epochs": 4}}, "methods": [{"name": "l1norm"}, {"name": "slimming"}]}
    got = apply_overrides(raw, ["recipes.large.epochs=10", "methods[1].options.ratio=0.3", "budget.cap=2",
                                "methods.0.label=first", "recipes.large.epochs=12"], "p.toml")  # fmt: skip
    assert got == {
        "recipes": {"large": {"epochs": 12}}, "budget": {"cap": 2},
        "methods": [{"name": "l1norm", "label": "first"}, {"name": "slimming", "options": {"ratio": 0.3}}],
    }  # fmt: skip
    assert raw["recipes"]["large"]["epochs"] == 4  # the document itself is left alone
    for bad, words in [("methods[2].label=x", "methods is a list of 2"), ("recipes.large.epochs.x=1", "not a table"),
                       ("noequals", "KEY=VALUE"), ("a..b=1", "not a key path")]:  # fmt: skip
        with pytest.raises(ConfigError, match=words):
            apply_overrides(raw, [bad], "p.toml")


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err.strip()


@pytest.mark.parametrize(
    "key, value, toml",
    [("recipes.large.epochs", "ten", '"ten"'), ("recipes.large.epoch", "10", "10"), ("arms.scratch_b", "1", "1")],
)
def test_an_override_gets_the_error_the_file_would_get(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, toml: str
) -> None:
    raw = tomllib.loads((preset_dir() / "demo.toml").read_text())
    table, _, leaf = key.rpartition(".")
    node = raw
    for part in table.split("."):
        node = node[part]
    node[leaf] = tomllib.loads(f"v = {toml}")["v"]
    written = tmp_path / "demo.toml"
    written.write_text(to_toml(raw))
    from_file = _error(capsys, ["run", str(written), "--dry-run"])
    from_set = _error(capsys, ["run", "demo", "--set", f"{key}={value}", "--dry-run"])
    assert from_set.startswith("prunebench run: error: presets/demo.toml: " + key)
    assert from_set.split("demo.toml: ", 1)[1] == from_file.split("demo.toml: ", 1)[1]


def test_an_override_changes_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "demo-quick", "--set", "recipes.large.epochs=5", "--seeds", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "recipe: 5 epochs, lr 0.05, LR x0.1 at epochs 3, batch 64" in out  # 0.67 x 5 -> epoch 3


def test_print_config_is_the_effective_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "demo", "--set", "recipes.large.epochs=8", "--set", "methods[0].options.ratio=0.3", "--seeds", "2"]
    assert main([*argv, "--print-config"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# effective preset: presets/demo.toml with --set recipes.large.epochs=8")
    doc = tomllib.loads(text)
    assert doc["recipes"]["large"]["epochs"] == 8 and doc["seeds"] == [0, 1]
    assert doc["methods"][0]["options"]["ratio"] == 0.3
    written = tmp_path / "effective.toml"
    written.write_text(text)
    ours = load_preset("demo", ["recipes.large.epochs=8", "methods[0].options.ratio=0.3"]).with_seeds(2)
    back = load_preset(written)
    assert [s.id for s in expand(back).stages] == [s.id for s in expand(ours).stages]
    # an invalid override is refused before anything is printed
    assert main(["run", "demo", "--set", "seeds=[]", "--print-config"]) == 2
    captured = capsys.readouterr()
    assert not captured.out and "seeds: expected a non-empty list" in captured.err


def test_every_shipped_preset_round_trips_through_the_toml_writer() -> None:
    for path in sorted(preset_dir().glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        assert tomllib.loads(to_toml(raw)) == raw, path.name
