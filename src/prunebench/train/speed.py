"""Device and precision detection: which speed switches a recipe turns on here.

bf16 autocast + channels_last roughly double CPU training throughput on CPUs with
native bf16 (avx512_bf16 / amx_bf16) but can be slower elsewhere, so "auto" only
enables them where the hardware supports bf16.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ContextManager

import torch

from prunebench.errors import ConfigError
from prunebench.train.recipe import Recipe

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class SpeedSettings:
    """The switches one run uses; `precision` is what gets recorded."""

    device: torch.device
    bf16: bool
    channels_last: bool
    compile: bool

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def autocast(self) -> ContextManager[object]:
        """Context for forward passes: bf16 autocast when on, else a no-op."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)


@lru_cache(maxsize=4)
def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU advertises native bf16 instructions (Linux only; False elsewhere)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return any(f in flags for f in _CPU_BF16_FLAGS)
    return False


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None` picks CUDA when available, else the CPU; an unusable device is a ConfigError."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported (use cpu, cuda or cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ConfigError(f"device {device!r}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    return dev


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def resolve_speed(recipe: Recipe, device: str | torch.device | None = None) -> SpeedSettings:
    """Turn the recipe's "auto" switches into concrete ones for `device`."""
    dev = resolve_device(device)
    bf16 = bf16_supported(dev) if recipe.precision == "auto" else recipe.precision == "bf16"
    channels_last = bf16 if recipe.channels_last == "auto" else bool(recipe.channels_last)
    return SpeedSettings(device=dev, bf16=bf16, channels_last=channels_last, compile=recipe.compile)
