"""Device and precision detection."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunebench.errors import ConfigError
from prunebench.train import Recipe, resolve_speed
from prunebench.train import speed


def _cpuinfo(tmp_path: Path, flags: str) -> str:
    path = tmp_path / f"cpuinfo-{abs(hash(flags))}"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\n")
    return str(path)


def test_cpu_bf16_flags(tmp_path: Path) -> None:
    assert speed.cpu_has_bf16(_cpuinfo(tmp_path, "avx512f avx512_bf16")) is True
    assert speed.cpu_has_bf16(_cpuinfo(tmp_path, "amx_tile amx_bf16")) is True
    assert speed.cpu_has_bf16(_cpuinfo(tmp_path, "avx2 avx512f")) is False
    assert speed.cpu_has_bf16(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_follows_hardware(monkeypatch: pytest.MonkeyPatch, has_bf16: bool) -> None:
    monkeypatch.setattr(speed, "cpu_has_bf16", lambda: has_bf16)
    s = resolve_speed(Recipe(epochs=1, lr=0.1), "cpu")
    assert (s.bf16, s.channels_last, s.precision) == (has_bf16, has_bf16, "bf16" if has_bf16 else "fp32")


def test_forced_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed, "cpu_has_bf16", lambda: True)
    fp32 = resolve_speed(Recipe(epochs=1, lr=0.1, precision="fp32"), "cpu")
    assert not fp32.bf16 and not fp32.channels_last
    bf16_plain = resolve_speed(Recipe(epochs=1, lr=0.1, precision="bf16", channels_last=False), "cpu")
    assert bf16_plain.bf16 and not bf16_plain.channels_last
    with bf16_plain.autocast():
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.bfloat16
    with fp32.autocast():
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.float32


def test_bad_devices() -> None:
    with pytest.raises(ConfigError):
        speed.resolve_device("warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            speed.resolve_device("cuda")
