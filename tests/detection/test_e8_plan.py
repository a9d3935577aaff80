"""The E8 preset plans every arm of Table 7 through the ordinary stage graph, and its table is checked."""

import pytest

from prunebench.errors import ConfigError
from prunebench.experiment import expand, load_preset
from prunebench.experiment.resolve import check_runnable


def test_e8_is_runnable_and_plans_every_detection_arm():
    preset = load_preset("e8-detection-voc-resnet34")
    check_runnable(preset)  # no longer a stub
    plan = expand(preset)
    by_id = plan.by_id()
    links = {(m, arm, by_id[sid].seed): by_id[sid] for m, arm, sid, _ in plan.links}
    for label in ("resnet34-a", "resnet34-b"):
        for seed in preset.seeds:
            sources = {arm: by_id[links[(label, arm, seed)].upstream["backbone"]].kind
                       for arm in ("det_unpruned", "det_prune_c", "det_scratch_e", "det_scratch_b")}  # fmt: skip
            assert sources == {"det_unpruned": "train_large", "det_prune_c": "finetune",
                               "det_scratch_e": "scratch_e", "det_scratch_b": "scratch_b"}  # fmt: skip
            prune_d = links[(label, "det_prune_d", seed)]
            assert prune_d.kind == "det_prune" and prune_d.upstream["detector"] == links[(label, "det_unpruned", seed)].id
            assert prune_d.config["options"] == {"variant": label}
    # the unpruned detector is one stage per seed, shared by both backbones' Prune-D
    assert sum(s.kind == "det_train" and s.config["source"] == "unpruned" for s in plan.stages) == len(preset.seeds)


def _write(tmp_path, detection: str, arms: str = "unpruned = true\nfinetuned = true") -> str:
    f = tmp_path / "p.toml"
    f.write_text(f"""name = "p"
seeds = [0]
[data]
name = "digits"
[model]
variant = "resnet34"
width_mult = 0.125
[[methods]]
name = "l1norm"
options = {{ ratio = 0.5 }}
[arms]
{arms}
[recipes.large]
epochs = 1
lr = 0.1
[recipes.finetune]
epochs = 1
lr = 0.01
{detection}""")
    return str(f)


@pytest.mark.parametrize("table,msg", [
    ('[detection]\narms = ["scratch_e"]\n[detection.recipe]\nepochs = 1\nlr = 0.01', "switch arms.scratch_e on"),
    ('[detection]\narms = ["prune_x"]\n[detection.recipe]\nepochs = 1\nlr = 0.01', "detection.arms"),
    ('[detection]\narms = ["unpruned"]\nanchors = 3\n[detection.recipe]\nepochs = 1\nlr = 0.01', "anchors"),
    ('[detection]\narms = ["unpruned"]\ndata = "voc2099"\n[detection.recipe]\nepochs = 1\nlr = 0.01', "detection.data"),
    ('[detection]\narms = ["unpruned"]\n[detection.recipe]\nepochs = 1\nlr = -1', "detection.recipe"),
])  # fmt: skip
def test_bad_detection_tables_are_refused(tmp_path, table, msg):
    with pytest.raises(ConfigError, match=msg):
        load_preset(_write(tmp_path, table))
