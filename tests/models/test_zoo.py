"""The zoo: every named variant builds, runs, round-trips, and has the published size."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from prunebench.errors import SpecError
from prunebench.models import (
    ChannelSelection,
    CifarResNetSpec,
    DenseNetSpec,
    Gate,
    PreResNetSpec,
    ResNetSpec,
    VGGSpec,
    build_model,
    list_variants,
    spec_from_dict,
    spec_from_json,
    spec_of,
    variant,
)
from prunebench.models.variants import RESNET50_2X_READ, describe_variant

IMAGENET = {
    "vgg11-slim-imagenet", "vgg16-imagenet", "vgg16-bn-imagenet", "thinet-conv", "thinet-gap", "thinet-tiny",
    "vgg16-5x", "resnet34", "resnet34-a", "resnet34-b", "resnet50", "thinet-30", "thinet-50", "thinet-70",
    "resnet50-2x", "resnet41", "resnet32", "resnet26",
}
CIFAR = sorted(set(list_variants()) - IMAGENET)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta(spec):  # type: ignore[no-untyped-def]
    """Build without allocating or initialising real weights (fast, any size)."""
    with torch.device("meta"):
        return build_model(spec)


def test_every_issue_variant_is_listed() -> None:
    wanted = {
        "vgg16-a", "resnet56-a", "resnet56-b", "resnet110-a", "resnet110-b", "resnet34-a", "resnet34-b",
        "thinet-conv", "thinet-gap", "thinet-tiny", "thinet-30", "thinet-50", "thinet-70", "vgg16-5x",
        "resnet50-2x", "resnet41", "resnet32", "resnet26", "vgg11", "vgg13", "vgg16", "vgg19", "resnet56",
        "preresnet164", "densenet40", "resnet50", "resnet34", "densenet-bc-100", "densenet100-basic-c0.5",
        "preresnet110-bottleneck12", "preresnet110-basic18", "resnet50-cifar", "vgg16-l1",
    }
    assert wanted <= set(list_variants())
    assert all(describe_variant(n) for n in list_variants())
    with pytest.raises(SpecError, match="unknown architecture"):
        variant("resnet57")


@pytest.mark.parametrize("name", CIFAR)
def test_cifar_variant_runs_and_round_trips(name: str) -> None:
    spec = variant(name)
    model = build_model(spec).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert spec_of(model) == spec
    assert spec_from_json(spec.to_json()) == spec
    assert spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize("name", sorted(IMAGENET))
def test_imagenet_variant_shapes_and_round_trips(name: str) -> None:
    spec = variant(name, input_size=224)
    assert spec.num_classes == 1000
    model = _meta(spec)
    assert model(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, 1000)
    assert spec_from_json(spec.to_json()) == spec
    assert spec_of(model) == spec  # selection indices stay real on meta: they come from the spec
    small = variant(name, input_size=64, num_classes=7, width_mult=0.125)
    assert build_model(small).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_resnet50_and_resnet50_2x_run_at_64px() -> None:
    for name in ("resnet50", "resnet50-2x"):
        spec = variant(name, input_size=64)
        model = build_model(spec).eval()
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
        assert spec_of(model) == spec


@pytest.mark.parametrize(
    ("name", "params", "rel"),
    [
        ("resnet56", 0.85e6, 0.01),
        ("resnet110", 1.7e6, 0.02),
        ("preresnet164", 1.7e6, 0.01),
        ("densenet40", 1.06e6, 0.01),
        ("densenet-bc-100", 0.8e6, 0.05),
        ("vgg16-l1", 15.0e6, 0.01),
        ("vgg19", 20.0e6, 0.01),
    ],
)
def test_cifar_published_parameter_counts(name: str, params: float, rel: float) -> None:
    assert _params(_meta(variant(name))) == pytest.approx(params, rel=rel)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("resnet50", 25_557_032),
        ("resnet34", 21_797_672),
        ("vgg16-imagenet", 138_357_544),
        ("vgg16-bn-imagenet", 138_365_992),
    ],
)
def test_imagenet_parameter_counts_equal_torchvision(name: str, params: int) -> None:
    assert _params(_meta(variant(name, input_size=224))) == params


# The L1-norm targets, resolved by hand from docs/methods.md §2.4-§2.5 (keep = floor(C(1-p)); skip lists).
L1_WIDTHS = {
    "resnet56-a": [14] * 7 + [16, 14] + [32] + [28] * 8 + [64] + [57] * 7 + [64],
    "resnet56-b": [6] * 7 + [16, 16] + [32] + [22] * 6 + [32, 22] + [64] + [57] * 7 + [64],
    "resnet110-a": [8] * 17 + [16] + [32] * 18 + [64] * 18,
    "resnet110-b": [8] * 17 + [16] + [32] + [19] * 17 + [64] + [44] * 17,
    "resnet34-a": [64, 44, 44, 128, 89, 89, 128, 256, 179, 179, 179, 179, 256, 512, 512, 512],
    "resnet34-b": [64, 32, 32, 128, 51, 51, 128, 256, 153, 153, 153, 153, 256, 512, 512, 512],
}


@pytest.mark.parametrize("name", sorted(L1_WIDTHS))
def test_l1_variants_have_the_exact_widths(name: str) -> None:
    spec = variant(name, input_size=224 if name.startswith("resnet34") else 32)
    widths = [w[-1] for w in spec.widths()] if isinstance(spec, ResNetSpec) else spec.widths()
    assert widths == L1_WIDTHS[name]


def test_vgg16_a_cfg() -> None:
    a = variant("vgg16-a")
    assert a.widths() == [32, 64, "M", 128, 128, "M", 256, 256, 256, "M", 256, 256, 256, "M", 256, 256, 256, 512]
    assert a.head == variant("vgg16-l1").head == "fc-bn"


@pytest.mark.parametrize(("name", "r"), [("thinet-30", 3), ("thinet-50", 5), ("thinet-70", 7)])
def test_thinet_resnet_widths_are_floor_c_r(name: str, r: int) -> None:
    spec = variant(name, input_size=224)
    assert isinstance(spec, ResNetSpec) and spec.projection_bias
    stages = [c for c, n in zip((64, 128, 256, 512), spec.blocks) for _ in range(n)]
    assert [list(w) for w in spec.inner] == [[c * r // 10] * 2 for c in stages]
    assert spec.inner[0] == {3: (19, 19), 5: (32, 32), 7: (44, 44)}[r]


def test_resnet50_2x_selection_ships_as_package_data() -> None:
    spec = variant("resnet50-2x", input_size=224)
    assert [w[0] for w in spec.widths()] == list(RESNET50_2X_READ)
    assert spec.widths()[0] == [35, 64, 55] and spec.widths()[-1] == [1147, 512, 440]
    assert all(len(s) == n for s, n in zip(spec.selections, RESNET50_2X_READ, strict=True))
    sel = build_model(variant("resnet50-2x", input_size=32)).layer1[0].select
    assert isinstance(sel, ChannelSelection) and "select.indices" not in dict(sel.named_parameters())
    assert sel.indices.tolist() == list(spec.selections[0])


def test_sss_variants_keep_projection_only_stages() -> None:
    r26 = variant("resnet26", input_size=224)
    assert sum(r26.blocks) * 3 + 2 == 26
    model = build_model(variant("resnet26", input_size=32))
    assert not hasattr(model.layer1[0], "conv1") and hasattr(model.layer1[0], "downsample")
    assert len(model.layer2) == 3 and len(model.layer4) == 1
    gated = build_model(variant("resnet41", input_size=32).replace(gates=True)).eval()
    gates = [m for m in gated.modules() if isinstance(m, Gate)]
    assert len(gates) == 13
    x = torch.randn(1, 3, 32, 32)
    before = gated(x)
    with torch.no_grad():
        gates[-1].weight.zero_()
    assert not torch.allclose(gated(x), before)
    assert spec_of(gated).gates


def test_small_inputs_work_or_say_why() -> None:
    for name in ("vgg16", "resnet20", "preresnet164", "densenet40"):
        spec = variant(name, in_channels=1, input_size=28, num_classes=10, width_mult=0.25)
        assert build_model(spec).eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    fashion = SimpleNamespace(num_classes=10, in_channels=1, input_size=28)
    assert variant("resnet20", fashion) == variant("resnet20", in_channels=1, input_size=28)
    assert build_model(variant("resnet50", fashion, width_mult=0.125)).eval()(torch.randn(1, 1, 28, 28)).shape == (1, 10)
    digits = variant("resnet20", in_channels=1, input_size=8, width_mult=0.5)
    assert build_model(digits).eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(SpecError, match=r"vgg16 needs input >= 16 px: 4 max-pools reduce 8 px to 0"):
        variant("vgg16", in_channels=1, input_size=8)
    with pytest.raises(SpecError, match="needs input >= 4 px"):
        variant("densenet40", input_size=3)


def test_head_pooling_modules_follow_the_reference_counting_split() -> None:
    vgg = build_model(variant("vgg16"))
    assert not any(isinstance(m, nn.AvgPool2d | nn.AdaptiveAvgPool2d) for m in vgg.modules())
    resnet = build_model(variant("resnet20"))
    assert isinstance(resnet.avgpool, nn.AvgPool2d) and resnet.avgpool.kernel_size == 8
    assert isinstance(build_model(variant("resnet20", input_size=28)).avgpool.kernel_size, int)
    assert isinstance(_meta(variant("resnet50", input_size=224)).avgpool, nn.AdaptiveAvgPool2d)
    dense = build_model(variant("densenet40"))
    assert [type(m) for m in dense.modules() if isinstance(m, nn.AvgPool2d | nn.AdaptiveAvgPool2d)] == [nn.AvgPool2d]


def test_init_conventions_are_spec_fields() -> None:
    torch.manual_seed(0)
    slim = build_model(variant("vgg19", width_mult=0.25))
    assert torch.all(slim.features[1].weight == 0.5) and slim.features[0].bias is None
    unstructured = build_model(variant("vgg19-bn-unstructured", width_mult=0.25))
    assert torch.all(unstructured.features[1].weight == 1.0) and torch.all(unstructured.features[0].bias == 0)
    w = unstructured.features[3].weight  # 16 -> 16 conv: fan-in = fan-out, so compare a narrowing layer
    assert w.std().item() == pytest.approx((2 / (16 * 9)) ** 0.5, rel=0.1)
    fan_in = build_model(VGGSpec(cfg=(256, 8), init="fan_in")).features[3].weight.std().item()
    fan_out = build_model(VGGSpec(cfg=(256, 8), init="fan_out")).features[3].weight.std().item()
    assert fan_in == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.05)
    assert fan_out == pytest.approx((2 / (8 * 9)) ** 0.5, rel=0.1)
    slim_vgg11 = build_model(variant("vgg11-slim-imagenet", input_size=32))
    assert torch.all(slim_vgg11.classifier[1].weight == 0.5)


def test_scaled_multiplies_prunable_widths_only() -> None:
    spec = variant("vgg16-l1")
    half = spec.scaled(0.5)
    assert half.widths() == [v if v == "M" else v // 2 for v in spec.widths()]
    assert half.num_classes == spec.num_classes
    assert variant("resnet20").scaled(0.01).block_widths == (1,) * 9
    inner = variant("preresnet164").scaled(0.5, inner_only=True)
    assert inner.planes == (16, 32, 64) and inner.inner[0] == (8, 8)
    assert variant("resnet56", width_mult=0.5).planes == (8, 16, 32)
    halved_2x = variant("resnet50-2x", input_size=224).scaled(0.5)  # new full widths: selections reset to all
    assert halved_2x.selections == ((),) * 16 and halved_2x.inner[0] == (32, 28)


def test_groups_follow_the_methods_contract() -> None:
    r56 = variant("resnet56").groups()
    assert len(r56) == 27 and all(g.name.endswith(".conv1") and g.kind == "out" for g in r56)
    assert [g.stage for g in r56] == [0] * 9 + [1] * 9 + [2] * 9
    vgg = variant("vgg16").groups()
    assert vgg[-1].consumers == ("classifier.0",) and vgg[-1].members[-1] == ("classifier.0.weight", 1, 1)
    flat = variant("vgg16-imagenet", input_size=224).groups()
    assert flat[-1].members[-1] == ("classifier.0.weight", 1, 49) and flat[-1].stage == 4
    slim = variant("vgg11-slim-imagenet", input_size=224).groups()
    assert [g.name for g in slim[-2:]] == ["classifier.0", "classifier.3"] and slim[-1].bn == "classifier.4"
    pre = variant("preresnet164").groups()
    assert len(pre) == 54 * 3 + 1 and pre[0].kind == "select" and pre[0].bn == "layer1.0.bn1"
    assert pre[-1].name == "select" and pre[-1].consumers == ("fc",)
    dense = variant("densenet40").groups()
    assert len(dense) == 36 + 2 + 1 and all(g.kind == "select" for g in dense)
    assert [g.size for g in dense] == variant("densenet40").widths()
    r2x = variant("resnet50-2x", input_size=224).groups()
    assert sum(g.kind == "select" for g in r2x) == 16 and sum(g.kind == "out" for g in r2x) == 32
    assert variant("resnet34", input_size=224).groups()[-1].stage == 3


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: CifarResNetSpec(blocks=(1, 1, 1), block_widths=(16, -1, 64)), "positive integers"),
        (lambda: CifarResNetSpec(blocks=(1, 1, 1), block_widths=(16, 32)), "3 blocks need 3 widths"),
        (lambda: CifarResNetSpec(blocks=(1, 1), planes=(32, 16), block_widths=(8, 8)), "can only widen"),
        (lambda: VGGSpec(cfg=(64, "M", 0)), "positive integers"),
        (lambda: VGGSpec(cfg=(64,), head="fc-bn"), "exactly one hidden width"),
        (lambda: VGGSpec(cfg=(64,), init="xavier"), "init must be one of"),
        (lambda: PreResNetSpec.uniform("bottleneck", 2).replace(inner=((4, 4),) * 5 + ((4,),)), "2 inner width"),
        (lambda: DenseNetSpec.uniform((2, 2)).replace(selections=((99,),) + ((),) * 5), "increasing indices"),
        (
            lambda: ResNetSpec.uniform("basic", (1, 1), planes=(8, 8)).replace(block="bottleneck"),
            "need 2 inner entries",
        ),
        (lambda: ResNetSpec.uniform("basic", (1, 1)), "one entry per stage"),
        (lambda: ResNetSpec.uniform("basic", (0, 1), planes=(8, 8)), "has no blocks"),
        (lambda: CifarResNetSpec(blocks=(1, 0, 1), block_widths=(8, 8)), "stage 2 has no blocks"),
        (lambda: CifarResNetSpec.uniform(1, first_residual=(False, True, True)), "stage 1 has no shortcut to keep"),
        (lambda: CifarResNetSpec.uniform(1, first_residual=(True, False)), "one entry per stage"),
        (lambda: CifarResNetSpec.uniform(1).replace(blocks=(1, -1, 1)), "integers >= 0"),
    ],
)
def test_invalid_specs_raise_clear_errors(make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match=match):
        make()


def test_spec_from_dict_rejects_bad_documents() -> None:
    with pytest.raises(SpecError, match="unknown model family"):
        spec_from_dict({"family": "mlp"})
    with pytest.raises(SpecError, match="unknown keys: depth"):
        spec_from_dict({**variant("resnet20").to_dict(), "depth": 20})
    with pytest.raises(SpecError, match="not valid JSON"):
        spec_from_json("{")
    with pytest.raises(SpecError, match="not a prunebench zoo model"):
        spec_of(nn.Linear(2, 2))


def test_option_a_shortcut_subsampling_is_a_spec_option() -> None:
    torch.manual_seed(0)
    avg = build_model(variant("resnet20", input_size=15)).eval()
    strided = build_model(variant("resnet20", input_size=15).replace(shortcut="stride")).eval()
    strided.load_state_dict(avg.state_dict())  # same weights: only the parameter-free shortcut differs
    x = torch.randn(2, 3, 15, 15)  # odd sizes: both subsamplings must match the strided conv (8, then 4 px)
    assert avg(x).shape == strided(x).shape == (2, 10)
    assert not torch.allclose(avg(x), strided(x))
    assert spec_of(strided).shortcut == "stride"


def test_cifar_resnet_sss_fields_leave_old_specs_alone() -> None:
    spec = variant("resnet56")
    assert spec.first_residual == (True,) * 3 and not spec.gates
    old = spec.to_dict()
    assert "gates" not in old and "first_residual" not in old  # same JSON, same run identities as before
    assert spec_from_dict(old) == spec
    assert spec_from_dict({**old, "first_residual": [True] * 3, "gates": False}) == spec
    gated = spec.replace(gates=True, blocks=(9, 4, 0), first_residual=(True, False, False), block_widths=(16,) * 13)
    assert spec_from_json(gated.to_json()) == gated
    assert json.loads(gated.to_json())["first_residual"] == [True, False, False]
    assert [b for b, _ in gated.block_names()][9:] == ["layer2.1", "layer2.2", "layer2.3", "layer2.4"]


def test_cifar_resnet_gates_and_shortcut_only_stages() -> None:
    torch.manual_seed(0)
    spec = variant("resnet20", width_mult=0.5).replace(gates=True)
    model = build_model(spec).eval()
    assert [k for k in model.state_dict() if "gate" in k] == [f"{b}.gate.weight" for b, _ in spec.block_names()]
    assert spec_of(model) == spec
    x = torch.randn(2, 3, 32, 32)
    before = model(x)
    with torch.no_grad():
        model.layer3[2].gate.weight.zero_()
    assert not torch.allclose(model(x), before)
    # stage 3 reduced to its option-A shortcut: subsample + zero-pad, no parameters
    short = spec.replace(blocks=(3, 3, 0), first_residual=(True, True, False), block_widths=(8,) * 6)
    net = build_model(short).eval()
    assert not list(net.layer3.parameters()) and net.fc.in_features == 32
    assert net(x).shape == (2, 10) and spec_of(net) == short
    feats = torch.rand(1, 16, 8, 8)
    out = net.layer3(feats)
    torch.testing.assert_close(out[:, :16], torch.nn.functional.avg_pool2d(feats, 2))
    assert out.shape == (1, 32, 4, 4) and not out[:, 16:].any()
