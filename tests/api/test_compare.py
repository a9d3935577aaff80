"""Two user models (a functional CNN, a ResNet-18-like net with residual sums) through `compare` with
L1-norm and slimming: every arm, both seeds, statistics and the report, on a digits subset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import prunebench as pb
from prunebench.errors import PrunebenchError
from user_models import functional_cnn, resnet18_like

ARMS = {"unpruned", "pruned_no_ft", "finetuned", "scratch_e", "scratch_b"}
SMALL = dict(data="digits", seeds=2, epochs=1, train_subset=192, test_subset=100, batch_size=64, amount=0.3)


@pytest.mark.parametrize(
    ("build", "kwargs", "method"),
    [(functional_cnn, {"width": 8}, "l1norm"), (functional_cnn, {"width": 8}, "slimming"),
     (resnet18_like, {"width": 4}, "l1norm"), (resnet18_like, {"width": 4}, "slimming")],
)  # fmt: skip
def test_every_arm_of_a_user_model(build, kwargs: dict, method: str, tmp_path: Path) -> None:
    result = pb.compare(build, method=method, kwargs=kwargs, example_input=torch.zeros(1, 1, 8, 8), out=tmp_path, **SMALL)
    rows = result.results()
    assert {(r["arm"], r["seed"]) for r in rows} == {(a, s) for a in ARMS for s in (0, 1)}
    by_arm = {r["arm"]: r for r in rows if r["seed"] == 0}
    assert by_arm["finetuned"]["params_total"] < by_arm["unpruned"]["params_total"]
    # the pruned architecture is the same in every arm that trains it
    assert by_arm["scratch_e"]["params_total"] == by_arm["finetuned"]["params_total"] == by_arm["scratch_b"]["params_total"]
    assert all(r["flops_mode"].startswith("dispatch") for r in rows)  # user models: the dispatcher counter
    assert by_arm["scratch_b"]["epochs"] >= by_arm["scratch_e"]["epochs"]  # the FLOPs budget stretches it
    assert by_arm["finetuned"]["flops_ratio"] > 1
    table = result.table()
    assert f"{build.__module__}:{build.__name__}" in table and "(n=2)" in table
    report = result.report.read_text()
    assert "Scratch-B" in report and "dispatch counter" in report and "vs fine-tuned" in report


def test_compare_refuses_what_it_cannot_rebuild(tmp_path: Path) -> None:
    with pytest.raises(PrunebenchError, match="example_input"):
        pb.compare(functional_cnn, example_input=torch.zeros(1, 3, 32, 32), out=tmp_path)
    with pytest.raises(Exception, match="module-level function"):
        pb.compare(lambda: functional_cnn(), out=tmp_path)
