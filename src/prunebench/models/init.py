"""Initialisation conventions (docs/protocol.md §3, docs/methods.md §1.6) as explicit spec fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from torch import nn

from prunebench.errors import SpecError
from prunebench.models.spec import ModelSpec

InitMode = Literal["fan_out", "fan_in"]
INIT_MODES: tuple[InitMode, ...] = get_args(InitMode)


@dataclass(frozen=True, kw_only=True)
class InitSpec(ModelSpec):
    """Base of the zoo families: adds the init scheme and the BN gamma init.

    init: He normal over "fan_out" (reference default) or "fan_in"
        (pytorch-classification VGG); bn_gamma: initial BN scale (0.5 in the
        slimming and L1-VGG models, 1.0 elsewhere).
    """

    bn_gamma: float = 1.0
    init: InitMode = "fan_out"

    def validate(self) -> None:
        super().validate()
        if self.init not in INIT_MODES:
            raise SpecError(f"{self.label}: init must be one of {', '.join(INIT_MODES)}, got {self.init!r}")

    def finish(self, model: nn.Module) -> nn.Module:
        """Initialise `model` by this spec's conventions and attach the spec."""
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode=self.init, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.constant_(m.weight, self.bn_gamma)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
        model.spec = self  # type: ignore[assignment]
        return model
