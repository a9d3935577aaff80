"""The model zoo: typed width specs -> `nn.Module`, named variants, channel groups."""

from torch import nn

from prunebench.models.builder import BuilderSpec, builder_ref, resolve_builder
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
    "BuilderSpec",
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
    "builder_ref",
    "describe_variant",
    "list_variants",
    "resolve_builder",
    "spec_from_dict",
    "spec_from_json",
    "spec_of",
    "variant",
]
