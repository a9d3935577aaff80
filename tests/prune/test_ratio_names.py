"""One option name with one meaning for the pruning amount: `ratio`, the fraction removed, for every
method with an amount; the old names (percent, keep_rate, keep_ratio) are aliases, converted exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunebench.cli import main
from prunebench.data import load
from prunebench.errors import ConfigError
from prunebench.experiment.identity import non_default
from prunebench.experiment.resolve import callback_fingerprint
from prunebench.models import CifarResNetSpec, VGGSpec
from prunebench.prune import get_method
from prunebench.train import save_model, seed_everything

SPEC = VGGSpec(cfg=(16, "M", 32, 32, "M", 64), in_channels=1, input_size=8)
AMOUNT = ["l1norm", "slimming", "sfp", "thinet", "regression", "magnitude"]


@pytest.mark.parametrize("name", AMOUNT)
def test_every_method_with_an_amount_calls_it_ratio(name: str) -> None:
    opts = get_method(name).parse_options({"ratio": 0.3})
    assert opts.ratio == 0.3


@pytest.mark.parametrize(
    ("name", "old", "value", "ratio"),
    [("magnitude", "percent", 0.9, 0.9), ("sfp", "keep_rate", 0.9, 0.1), ("sfp", "keep_rate", 0.7, 0.3),
     ("thinet", "keep_ratio", 0.75, 0.25), ("regression", "keep_ratio", 0.3, 0.7)],
)  # fmt: skip
def test_old_names_are_converted_exactly(name: str, old: str, value: float, ratio: float) -> None:
    method = get_method(name)
    assert method.parse_options({old: value}) == method.parse_options({"ratio": ratio})
    with pytest.raises(ConfigError, match="not both"):
        method.parse_options({old: value, "ratio": ratio})
    with pytest.raises(ConfigError, match=f"option {old}: expected"):
        method.parse_options({old: "half"})


def test_same_ratio_removes_the_same_share_of_each_layer_for_l1norm_and_thinet() -> None:
    """Before, thinet's ratio was the share kept: --ratio 0.3 left 0.48x the parameters with l1norm, 0.14x with thinet."""
    seed_everything(0)
    model = SPEC.build()
    splits = load("digits", val_size=0, train_subset=300)
    kept = {}
    for name in ("l1norm", "thinet"):
        method = get_method(name)
        opts = method.parse_options({"ratio": 0.3, **({"images": 20, "locations": 3, "prune_last": True} if name == "thinet" else {})})
        kept[name] = method.prune(model, splits, opts).model.spec.cfg
    assert kept["l1norm"] == kept["thinet"] == (11, "M", 22, 22, "M", 44)  # int(C * 0.7)


def test_sfp_identities_do_not_move_with_the_rename() -> None:
    """keep_rate = 0.7 (old default) and ratio = 0.3 (new default) are the same run: no identity changes."""
    method = get_method("sfp")
    old, new = method.parse_options({"keep_rate": 0.7}), method.parse_options({})
    assert non_default(old) == non_default(new) == {}
    spec = CifarResNetSpec.uniform(1, planes=(8, 16, 32), in_channels=1, input_size=8)
    (cb,) = method.large_training(new, spec)
    assert callback_fingerprint([cb]) == [{"type": "SoftFilterCallback", "settings": {"keep_rate": 0.7, "layers": "all"}}]


def test_cli_ratio_works_for_magnitude(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed_everything(0)
    large = save_model(tmp_path / "large", SPEC.build())
    out = tmp_path / "pruned"
    assert main(["prune", "--method", "magnitude", "--ratio", "0.9", "--checkpoint", str(large), "--out", str(out)]) == 0
    info = json.loads((out / "prune_info.json").read_text())
    assert info["options"]["ratio"] == 0.9
    assert info["info"]["density"] == pytest.approx(0.1, abs=0.01)
    assert main(["prune", "--method", "sfp", "--ratio", "0.5", "--checkpoint", str(large), "--out", str(tmp_path / "s"),
                 "--option", "layers=[\"features.0\"]"]) == 0  # fmt: skip
    sfp = json.loads((tmp_path / "s" / "prune_info.json").read_text())
    assert sfp["kept"] == {"features.0": sfp["kept"]["features.0"]} and len(sfp["kept"]["features.0"]) == 8
