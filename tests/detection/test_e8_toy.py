"""E8 end to end at toy scale: classification backbones -> Faster R-CNN on a real-format VOC folder."""

import pytest

pytest.importorskip("torchvision")
pytest.importorskip("defusedxml")

from prunebench.experiment import Store, load_preset  # noqa: E402
from prunebench.experiment.runner import run_experiment  # noqa: E402
from prunebench.report import write_report  # noqa: E402
from tests.detection.toy_voc import write_toy_voc  # noqa: E402

PRESET = """
name = "e8-toy"
seeds = [0]
[data]
name = "digits"
val_size = 0
[model]
variant = "resnet34"
width_mult = 0.125
[[methods]]
name = "l1norm"
label = "resnet34-half"
options = { ratio = 0.5 }
[arms]
unpruned = true
finetuned = true
[recipes.large]
epochs = 3
lr = 0.1
batch_size = 64
[recipes.finetune]
epochs = 1
lr = 0.01
[budget]
cap = 1.5
[detection]
data = "voc2007"
arms = ["unpruned", "prune_c", "prune_d"]
stages = 3
frozen_stages = 0
frozen_bn = false
min_size = 96
max_size = 96
anchor_sizes = [16, 32, 64]
rpn_batch = 64
box_batch = 64
representation = 256
warmup_iters = 30
[detection.recipe]
epochs = 10
lr = 0.03
milestones = [9]
batch_size = 4
[detection.finetune]
epochs = 3
lr = 0.01
"""


@pytest.fixture(scope="module")
def e8_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e8")
    write_toy_voc(root / "data")
    (root / "e8-toy.toml").write_text(PRESET)
    preset = load_preset(root / "e8-toy.toml")
    out = root / "exp"
    run_experiment(preset, out, data_dir=str(root / "data"))
    return out


def test_every_arm_detects_well_above_chance(e8_run):
    store = Store.open(e8_run)
    try:
        rows = store.rows()
    finally:
        store.close()
    det = {r["arm"]: r["info"] for r in rows if (r.get("info") or {}).get("task") == "detection"}
    assert set(det) == {"det_unpruned", "det_prune_c", "det_prune_d"}
    maps = {arm: info["map11"] for arm, info in det.items()}
    print("toy VOC07 mAP (11-point):", {k: round(v, 3) for k, v in maps.items()})
    # chance (boxes anywhere, any class) is near 0: a detector that has not learnt scores 0.00-0.02 here;
    # this run reached about 0.71 (unpruned), 0.62 (Prune-C), 0.64 (Prune-D)
    assert all(v > 0.4 for v in maps.values()), maps
    assert set(det["det_unpruned"]["per_class"]) >= {"aeroplane", "bicycle", "bird"}


def test_report_has_the_map_table(e8_run):
    write_report(e8_run)
    md = (e8_run / "report.md").read_text()
    assert "det_" not in md.split("## Detection transfer")[0]  # the classification tables skip detection rows
    assert "## Detection transfer" in md
    line = next(s for s in md.splitlines() if s.startswith("| e8-toy | resnet34-half |"))
    assert line.count("(n=1)") == 3  # Unpruned, Prune-C, Prune-D
