"""`prunebench arch`, run in-process: JSON keys and values, --list, errors."""

from __future__ import annotations

import json
import re

import pytest

from prunebench.cli import main
from prunebench.commands.arch import IMAGENET, _dataset_shape
from prunebench.data import dataset_info
from prunebench.measure import count_flops, count_params
from prunebench.models import list_variants, variant

KEYS = {"name", "dataset", "params", "flops", "flops_dispatch", "latency_ms", "widths"}
BASE_KEYS = {"base_params", "base_flops", "flops_ratio", "scratch_b_epochs", "scratch_b_milestones"}


def arch_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["arch", *argv, "--json", "--repeats", "1"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_without_base(capsys: pytest.CaptureFixture[str]) -> None:
    out = arch_json(capsys, "resnet20", "--dataset", "digits")
    assert set(out) == KEYS
    model = variant("resnet20", dataset_info("digits")).build()
    assert out["params"]["total"] == count_params(model).total
    assert out["flops"]["flops"] == count_flops(model).flops
    assert out["flops"]["input_shape"] == [1, 8, 8] and out["flops"]["mode"] == "reference"
    assert out["flops_dispatch"]["flops"] == 2 * out["flops_dispatch"]["macs"] == 2 * out["flops"]["macs"]
    assert out["latency_ms"]["batch_size"] == 1 and out["latency_ms"]["median"] > 0
    lat = out["latency_ms"]
    assert lat["cell"] == f"{lat['median']:.3f} ± {lat['iqr']:.3f} ms (IQR)" + (" noisy" if lat["noisy"] else "")
    assert out["widths"] == [16] * 3 + [32] * 3 + [64] * 3


def test_json_with_base_gives_scratch_b_budget(capsys: pytest.CaptureFixture[str]) -> None:
    out = arch_json(capsys, "resnet56-b", "--dataset", "cifar10", "--base", "resnet56")
    assert set(out) == KEYS | BASE_KEYS
    ratio = out["base_flops"]["flops"] / out["flops"]["flops"]
    assert out["flops_ratio"] == pytest.approx(ratio) and ratio > 1
    e = int(160 * ratio)
    assert out["scratch_b_epochs"] == e and out["scratch_b_milestones"] == [e // 2, 3 * e // 4]
    assert out["base_params"]["total"] > out["params"]["total"]
    shorter = arch_json(capsys, "resnet56-b", "--dataset", "cifar10", "--base", "resnet56", "--epochs", "20")
    assert shorter["scratch_b_epochs"] == int(20 * ratio)


def test_text_output_names_modes_and_budget(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["arch", "resnet56", "--dataset", "digits", "--base", "resnet20", "--repeats", "1"]) == 2
    assert "fewer FLOPs" in capsys.readouterr().err
    assert main(["arch", "resnet56-a", "--dataset", "digits", "--base", "resnet56", "--repeats", "1"]) == 0
    text = capsys.readouterr().out
    assert "[reference, counter" in text and "[dispatch, counter" in text
    assert "Scratch-B" in text and "batch 1" in text
    assert re.search(r"latency +\d+\.\d{3} ± \d+\.\d{3} ms \(IQR\)( noisy)? over \d+ blocks", text)  # Latency.cell()


def test_list_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["arch", "--list"]) == 0
    listed = capsys.readouterr().out.split("\n")
    assert [line.split()[0] for line in listed if line] == list_variants()
    assert main(["arch", "no-such-net"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--list" in err
    assert main(["arch", "resnet20", "--epochs", "10"]) == 2
    assert "--base" in capsys.readouterr().err
    assert main(["arch"]) == 2


def test_imagenet_shape_is_known() -> None:
    assert _dataset_shape("imagenet") == IMAGENET == ("imagenet", 1000, 3, 224)
    assert _dataset_shape("cifar100").num_classes == 100
