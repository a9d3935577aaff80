"""Every shipped preset validates and expands (dry run) to the stage graph it should."""

from __future__ import annotations

import tomllib

import pytest

from prunebench.experiment import expand, format_plan, list_presets, load_preset, parse_preset

# preset -> {stage kind: count}; the large models of methods that train them alike are shared
EXPECTED = {
    "e1-l1-cifar10-vgg16": {"train_large": 5, "prune": 5, "finetune": 5, "scratch_e": 5, "scratch_b": 5},
    "e1-l1-cifar10-resnet56": {"train_large": 5, "prune": 10, "finetune": 10, "scratch_e": 10, "scratch_b": 10},
    "e1-l1-cifar10-resnet110": {"train_large": 5, "prune": 10, "finetune": 10, "scratch_e": 10, "scratch_b": 10},
    "e1-l1-imagenet-resnet34": {"train_large": 1, "prune": 2, "finetune": 2, "scratch_e": 2, "scratch_b": 2},
    "e2-thinet-imagenet-vgg16": {"train_large": 1, "prune": 3, "finetune": 3, "scratch_e": 3, "scratch_b": 3},
    "e2-thinet-imagenet-resnet50": {"train_large": 1, "prune": 3, "finetune": 3, "scratch_e": 3, "scratch_b": 3},
    "e3-regression-imagenet-vgg16": {"train_large": 1, "prune": 1, "finetune": 1, "scratch_e": 1, "scratch_b": 1},
    "e3-regression-imagenet-resnet50": {"train_large": 1, "prune": 1, "finetune": 1, "scratch_e": 1, "scratch_b": 1},
    **{
        f"e4-slimming-{ds}-{net}": {"train_large": 10, "prune": n, "finetune": n, "scratch_e": n, "scratch_b": n}
        for ds in ("cifar10", "cifar100")
        for net, n in (("vgg19", 5), ("preresnet164", 10), ("densenet40", 10))
    },
    "e4-slimming-imagenet-vgg11": {"train_large": 2, "prune": 1, "finetune": 1, "scratch_e": 1, "scratch_b": 1},
    # each layout its own penalty: one gated large model each, plus the plain one
    "e5-sss-imagenet-resnet50": {"train_large": 4, "prune": 3, "scratch_e": 3, "scratch_b": 3},
    **{
        f"e6-magnitude-{ds}-{net}": {"train_large": 5, "prune": 10, "finetune": 10, "scratch_e": 10, "scratch_b": 10}
        for ds in ("cifar10", "cifar100")
        for net in ("vgg19", "preresnet110", "densenet100")
    },
    **{
        f"e6-magnitude-imagenet-{net}": {"train_large": 1, "prune": 2, "finetune": 2, "scratch_e": 2, "scratch_b": 2}
        for net in ("vgg16", "resnet50")
    },
    **{
        f"e7-sfp-cifar10-{net}": {"train_large": 10, "prune": 5, "scratch_e": 5, "scratch_b": 5}
        for net in ("resnet20", "resnet32", "resnet56", "resnet110")
    },
    # 3 seeds; per seed one unpruned detector shared by both backbones' Prune-D, 3 transfers per backbone
    "e8-detection-voc-resnet34": {"train_large": 3, "prune": 6, "finetune": 6, "scratch_e": 6, "scratch_b": 6,
                                  "det_train": 21, "det_prune": 6},  # fmt: skip
    **{
        f"e9-uniform-cifar10-{net}": {"train_large": 5, "prune": 20, "scratch_e": 20, "uniform_scratch": 20}
        for net in ("vgg19", "preresnet164", "densenet40")
    },
    "e7-sfp-pretrained-cifar10-resnet56": {"train_large": 5, "soft_train": 5, "prune": 5, "scratch_e": 5, "scratch_b": 5},
    "e9-uniform-sparse-cifar10-vgg19": {
        "train_large": 5, "prune": 10, "finetune": 10, "scratch_e": 10, "uniform_sparse_scratch": 10, "guided_sparse_scratch": 10,
    },  # fmt: skip
    "e10-guided-cifar100-vgg19": {"train_large": 5, "prune": 15, "scratch_e": 15, "uniform_scratch": 15, "guided_scratch": 15},
    # + the CIFAR-10 VGG-16 source's large model and pruning run per seed
    "e10-transferred-cifar100-vgg19": {
        "train_large": 10, "prune": 20, "scratch_e": 15, "uniform_scratch": 15, "guided_scratch": 15,
        "transferred_guided_scratch": 15,
    },  # fmt: skip
    **{
        # one-shot at 5 matched sparsities + Han-style iterative; IMP rounds 2-5 per ticket LR (round 1 = one-shot 20%)
        f"e11-lottery-unstructured-cifar10-{net}": {
            "train_large": 5, "prune": 30, "winning_ticket": 100, "random_ticket": 100, "imp_prune": 40,
        }  # fmt: skip
        for net in ("vgg16", "resnet50")
    },
    "e12-lottery-structured-cifar10-vgg16": {"train_large": 5, "prune": 5, "winning_ticket": 10, "random_ticket": 10},
    "e12-lottery-structured-cifar10-resnet56": {"train_large": 5, "prune": 10, "winning_ticket": 20, "random_ticket": 20},
    "e12-lottery-structured-cifar10-resnet110": {"train_large": 5, "prune": 10, "winning_ticket": 20, "random_ticket": 20},
    **{
        f"e13-aggressive-cifar10-{net}": {"train_large": 5, "prune": 10, "finetune": 10, "scratch_e": 10, "scratch_b": 10}
        for net in ("vgg19-slimming", "vgg16-l1", "vgg19-magnitude")
    },
    "e14-weights-cifar10-vgg16": {"train_large": 2, "prune": 2, "finetune": 2, "scratch_e": 2},
}


def test_every_experiment_of_the_inventory_has_a_preset() -> None:
    shipped = set(list_presets())
    assert set(EXPECTED) <= shipped
    assert {name.split("-")[0] for name in EXPECTED} == {f"e{i}" for i in range(1, 15)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_full_scale_preset_expands_to_its_graph(name: str) -> None:
    plan = expand(load_preset(name))
    counts: dict[str, int] = {}
    for s in plan.stages:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    assert counts == EXPECTED[name]
    ids = [s.id for s in plan.stages]
    assert len(set(ids)) == len(ids)
    seen: set[str] = set()
    for s in plan.stages:  # upstream first, and every scratch-type stage is seed-paired with its pruning run
        assert set(s.upstream.values()) <= seen
        seen.add(s.id)
        for role, up in s.upstream.items():
            assert plan.by_id()[up].seed == s.seed, (role, s.kind)


def test_stub_presets_say_so_in_the_dry_run() -> None:
    # no shipped preset is a stub any more (E8 runs): a copy of one declared unsupported
    with open(load_preset("e1-l1-imagenet-resnet34").file, "rb") as f:
        raw = {**tomllib.load(f), "unsupported": "detection transfer is not here"}
    text = format_plan(expand(parse_preset(raw, "stub.toml")))
    assert "not supported yet: detection transfer" in text and "[not supported yet]" in text


def _preset(methods: str, arms: str = "unpruned = true\nscratch_e = true") -> object:
    text = f"""
name = "g"
seeds = [0, 1, 2]
[data]
name = "fashion-mnist"
[model]
variant = "vgg11"
width_mult = 0.125
{methods}
[arms]
{arms}
[recipes.large]
epochs = 4
lr = 0.1
[recipes.finetune]
epochs = 1
lr = 0.001
"""
    return parse_preset(tomllib.loads(text), "g.toml")


def test_plain_large_model_is_shared_between_methods() -> None:
    plan = expand(_preset('[[methods]]\nname = "l1norm"\noptions = {ratio = 0.5}\n[[methods]]\nname = "magnitude"\noptions = {percent = 0.5}'))
    large = [s for s in plan.stages if s.kind == "train_large"]
    assert len(large) == 3 and all(s.methods == ("l1norm", "magnitude") for s in large)
    assert sum(s.kind == "prune" for s in plan.stages) == 6
    # the report finds the shared model under both methods
    assert {(m, a) for m, a, sid, _ in plan.links if sid == large[0].id} == {("l1norm", "unpruned"), ("magnitude", "unpruned")}


def test_large_training_decides_sharing_not_prune_options() -> None:
    same_lam = expand(_preset(
        '[[methods]]\nname = "slimming"\nlabel = "a"\noptions = {ratio = 0.3, lam = 1e-4}\n'
        '[[methods]]\nname = "slimming"\nlabel = "b"\noptions = {ratio = 0.6, lam = 1e-4}'))  # fmt: skip
    other_lam = expand(_preset(
        '[[methods]]\nname = "slimming"\nlabel = "a"\noptions = {ratio = 0.3, lam = 1e-4}\n'
        '[[methods]]\nname = "slimming"\nlabel = "b"\noptions = {ratio = 0.3, lam = 1e-5}'))  # fmt: skip
    assert sum(s.kind == "train_large" for s in same_lam.stages) == 3
    assert sum(s.kind == "train_large" for s in other_lam.stages) == 6


def test_split_hash_enters_every_identity() -> None:
    p = _preset('[[methods]]\nname = "l1norm"\noptions = {ratio = 0.5}')
    dry, real = expand(p), expand(p, split_hash="abc")
    assert len(dry.stages) == len(real.stages) and not {s.id for s in dry.stages} & {s.id for s in real.stages}


def test_plain_baseline_of_a_penalised_method_is_the_plain_methods_large_model() -> None:
    both = '[[methods]]\nname = "slimming"\noptions = {ratio = 0.5}\n[[methods]]\nname = "l1norm"\noptions = {ratio = 0.5}'
    plan = expand(_preset(both, "unpruned = true\nunpruned_plain = true\nscratch_e = true"))
    assert sum(s.kind == "train_large" for s in plan.stages) == 6  # sparsity-trained + plain, per seed
    plain = {sid for m, arm, sid, _ in plan.links if arm == "unpruned_plain"}
    l1_large = {sid for m, arm, sid, _ in plan.links if (m, arm) == ("l1norm", "unpruned")}
    assert plain == l1_large and len(plain) == 3
    assert all(res == "unpruned" for _, arm, _, res in plan.links if arm == "unpruned_plain")
    assert not any(m == "l1norm" and arm == "unpruned_plain" for m, arm, _, _ in plan.links)  # plain already
