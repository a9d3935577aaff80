"""The model zoo: typed width specs -> `nn.Module`, named variants, channel groups."""

from torch import nn

from prunebench.models.densenet import DenseNetSpec
from prunebench.models.init import InitSpec
from prunebench.models.layers import ChannelSelection, Gate
from prunebench.models.preresnet import PreResNetSpec
from prunebench.models.resnet_cifar import CifarResNetSpec
from prunebench.models.resnet_imagenet import ResNetSpec
from prunebench.models.spec import ChannelGroup, ModelSpec, attached_spec, spec_from_dict, spec_from_json, spec_of
from prunebench.models.variants import describe_variant, list_variants, variant
from prunebench.models.vgg import VGGSpec


def build_model(spec: ModelSpec) -> nn.Module:
    """Build a zoo model from its spec (`model.spec` is set)."""
    return spec.build()


__all__ = [
    "ChannelGroup",
    "ChannelSelection",
    "CifarResNetSpec",
    "DenseNetSpec",
    "Gate",
    "InitSpec",
    "ModelSpec",
    "PreResNetSpec",
    "ResNetSpec",
    "VGGSpec",
    "attached_spec",
    "build_model",
    "describe_variant",
    "list_variants",
    "spec_from_dict",
    "spec_from_json",
    "spec_of",
    "variant",
]
