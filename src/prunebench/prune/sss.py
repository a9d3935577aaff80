"""Sparse Structure Selection (Huang & Wang, ECCV 2018) on residual blocks.

Works on both zoo ResNet families (ImageNet layout and the CIFAR option-A nets):
they share the gate naming (`<block>.gate.weight`), the reshaping shortcut's name
(`<block>.downsample`) and the stage layout (blocks per stage, first-residual flags).

Every residual branch gets a scalar gate λ_b (block = x + λ_b·F_b(x)); the large
model is trained with an L1 penalty γ Σ|λ_b| on the gates, optimised by the
paper's accelerated proximal gradient (APG) in its momentum form:

    z  = λ′ − η ∇G(λ′)                 (G: the data loss; λ′ the look-ahead point the net uses)
    λ  = S_{ηγ}(z)                     (soft threshold: exact zeros)
    v  = λ − λ′ + μ v
    λ′ = λ + μ v

Gates are owned by the `GateAPG` callback: after every optimizer step it overwrites
whatever SGD did to them, so SGD's momentum and weight decay never act on gates
(the L1 term is their only regulariser).  At every epoch end and at the end of
training the gates hold the proximal iterate λ itself, so checkpoints and
evaluations see the exact zeros.

Pruning removes the blocks whose gate is exactly 0 (a stage's first block keeps its
projection or option-A shortcut), folds the surviving gates into the branch's last BN, and
returns a physically shallower net without gates that computes the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError, SpecError
from prunebench.models import CifarResNetSpec, ModelSpec, ResNetSpec, attached_spec, variant
from prunebench.prune.activations import Timer
from prunebench.prune.base import PruneMethod, PruneResult
from prunebench.prune.registry import register
from prunebench.prune.surgery import build_loaded
from prunebench.train import Callback, TrainContext

TARGETS = ("resnet41", "resnet32", "resnet26")
# the supported families -> their spec fields with one entry per residual block
PER_BLOCK: dict[type[ModelSpec], tuple[str, ...]] = {
    ResNetSpec: ("inner", "selections"),
    CifarResNetSpec: ("block_widths",),
}
GatedSpec = ResNetSpec | CifarResNetSpec


@dataclass(frozen=True)
class SSSOptions:
    """penalty: γ of the L1 term on the gates; momentum: the APG μ.

    keep_blocks: after training, zero the smallest gates until this many residual blocks remain.
    variant: `resnet41` / `resnet32` / `resnet26`: keep the largest gates per stage to hit that layout.
    With neither, the blocks whose gates the training drove to exactly zero are removed.
    A layout must come from exact zeros, as in the paper (each layout its own penalty): a
    `keep_blocks`/`variant` that would drop a block whose gate is not zero is refused, unless
    `forced`, which drops them anyway, fine-tunes the changed net and records it as forced.
    finetune: give the pruned net a fine-tune stage (the paper's result is the pruned net itself).
    """

    penalty: float = 0.01
    momentum: float = 0.9
    keep_blocks: int | None = None
    variant: str | None = None
    forced: bool = False
    finetune: bool = False

    def validate(self) -> None:
        if self.penalty < 0 or not 0 <= self.momentum < 1:
            raise ConfigError("sss: penalty must be >= 0 and momentum in [0, 1)")
        if self.keep_blocks is not None and self.variant is not None:
            raise ConfigError("sss: give at most one of keep_blocks and variant")
        if self.keep_blocks is not None and self.keep_blocks < 0:
            raise ConfigError("sss: keep_blocks must be >= 0")
        if self.variant is not None and self.variant not in TARGETS:
            raise ConfigError(f"sss: unknown variant {self.variant!r}; known: {', '.join(TARGETS)}")


def soft_threshold(z: torch.Tensor, t: float) -> torch.Tensor:
    return torch.sign(z) * torch.clamp(z.abs() - t, min=0.0)


def gates(model: nn.Module) -> dict[str, nn.Parameter]:
    """Block path -> its gate parameter, in forward order."""
    blocks = [blk for blk, _ in _resnet_spec(attached_spec(model)).block_names()]
    gated = [blk for blk in blocks if hasattr(model.get_submodule(blk), "gate")]
    found = {blk: model.get_parameter(f"{blk}.gate.weight") for blk in gated}
    if not found:
        raise SpecError("SSS needs a gated ResNet (build the large model from `prepare_large`)")
    return found


class GateAPG(Callback):
    """The APG update of the gates after every SGD step (see the module docstring)."""

    def __init__(self, penalty: float, momentum: float) -> None:
        self.penalty, self.momentum = penalty, momentum
        self.params: list[nn.Parameter] = []
        self.v = torch.zeros(0)
        self.prox = torch.zeros(0)
        self._next = torch.zeros(0)

    def on_train_start(self, ctx: TrainContext) -> None:
        self.params = list(gates(ctx.model).values())
        if self.v.numel() != len(self.params):
            self.v = torch.zeros(len(self.params), dtype=torch.float64)
            self.prox = self._values().double()

    def _values(self) -> torch.Tensor:
        return torch.stack([p.detach().reshape(()) for p in self.params]).cpu()

    def _lr(self, ctx: TrainContext) -> float:
        first = self.params[0]
        return next(g["lr"] for g in ctx.optimizer.param_groups if any(p is first for p in g["params"]))

    def before_step(self, ctx: TrainContext) -> None:
        lr = self._lr(ctx)
        look = self._values().double()
        grad = torch.stack(
            [p.grad.detach().reshape(()).cpu() if p.grad is not None else torch.zeros(()) for p in self.params]
        ).double()
        self.prox = soft_threshold(look - lr * grad, lr * self.penalty)
        self.v = self.prox - look + self.momentum * self.v
        self._next = self.prox + self.momentum * self.v

    def after_step(self, ctx: TrainContext) -> None:
        self._write(self._next)

    def on_epoch_end(self, ctx: TrainContext) -> None:
        self._write(self.prox)

    def on_train_end(self, ctx: TrainContext) -> None:
        self._write(self.prox)

    def _write(self, values: torch.Tensor) -> None:
        with torch.no_grad():
            for p, v in zip(self.params, values.tolist(), strict=True):
                p.fill_(v)

    def state_dict(self) -> dict[str, Any]:
        return {"v": self.v.clone(), "prox": self.prox.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.v, self.prox = state["v"].double(), state["prox"].double()


def _resnet_spec(spec: Any) -> GatedSpec:
    if type(spec) not in PER_BLOCK:
        families = ", ".join(repr(cls.family) for cls in PER_BLOCK)
        raise SpecError(f"SSS works on the zoo's ResNets (families {families}), not {getattr(spec, 'family', spec)!r}")
    return spec


def _stages(spec: GatedSpec) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in spec.blocks]
    for blk, stage in spec.block_names():
        out[stage].append(blk)
    return out


def _has_shortcut(model: nn.Module, blk: str) -> bool:
    """Whether the block's shortcut reshapes (projection or option-A), so it survives its branch."""
    return hasattr(model.get_submodule(blk), "downsample")


def _choose(model: nn.Module, values: dict[str, float], opts: SSSOptions) -> dict[str, bool]:
    """Block -> kept, from the exact zeros, a block count, or a named layout."""
    spec = _resnet_spec(attached_spec(model))
    if opts.variant is None and opts.keep_blocks is None:
        return {blk: v != 0.0 for blk, v in values.items()}
    order = sorted(values, key=lambda b: (-abs(values[b]), list(values).index(b)))  # ties: earlier block first
    if opts.keep_blocks is not None:
        # a stage without a reshaping shortcut must keep a block: its largest gate goes first
        forced = [max(names, key=lambda b: abs(values[b])) for s, names in enumerate(_stages(spec))
                  if names and spec.first_residual[s] and not _has_shortcut(model, names[0])]  # fmt: skip
        if not len(forced) <= opts.keep_blocks <= len(values):
            raise ConfigError(f"sss: keep_blocks must be between {len(forced)} and {len(values)} for this model")
        top = set(forced + [b for b in order if b not in forced][: opts.keep_blocks - len(forced)])
        return {blk: blk in top for blk in values}
    assert opts.variant is not None  # the two cases above returned
    target = _resnet_spec(variant(opts.variant, num_classes=spec.num_classes, in_channels=spec.in_channels,
                                  input_size=spec.input_size))  # fmt: skip
    if len(target.blocks) != len(spec.blocks):
        raise SpecError(f"{opts.variant} has {len(target.blocks)} stages, the model {len(spec.blocks)}")
    keep: dict[str, bool] = {}
    for s, blocks in enumerate(_stages(spec)):
        first_kept = bool(target.first_residual[s])
        want = target.blocks[s] - (1 if first_kept else 0)  # residual blocks besides the first
        first: str | None = blocks[0]
        rest = blocks[1:]
        if not spec.first_residual[s]:
            first, rest = None, blocks
        if first is not None:
            keep[first] = first_kept
        elif first_kept:
            raise SpecError(f"{opts.variant}: stage {s + 1} keeps its first block, the model has already lost it")
        if want > len(rest):
            raise SpecError(f"{opts.variant}: stage {s + 1} needs {want} more blocks, the model has {len(rest)}")
        top = set(sorted(rest, key=lambda b: (-abs(values[b]), rest.index(b)))[:want])
        keep.update({b: b in top for b in rest})
    return keep


def guard_stages(model: nn.Module, keep: dict[str, bool]) -> list[str]:
    """A stage without a reshaping shortcut cannot be emptied: keep its first block (gate 0 → identity)."""
    notes = []
    spec = _resnet_spec(attached_spec(model))
    for s, names in enumerate(_stages(spec)):
        if names and spec.first_residual[s] and not any(keep[b] for b in names):
            if not _has_shortcut(model, names[0]):
                keep[names[0]] = True
                notes.append(f"stage {s + 1} has no shortcut to keep: {names[0]} kept (its gate is folded in)")
    return notes


def remove_blocks(model: nn.Module, keep: dict[str, bool]) -> nn.Module:
    """The shallower net without gates: survivors' weights copied, their gates folded into the last BN."""
    spec = _resnet_spec(attached_spec(model))
    blocks, firsts = [], []
    fields = [f for f in PER_BLOCK[type(spec)] if getattr(spec, f)]  # an empty field (no selections) stays so
    per_block: dict[str, list[Any]] = {f: [] for f in fields}
    mapping: dict[str, str] = {}  # old module prefix -> new
    index = {blk: k for k, (blk, _) in enumerate(spec.block_names())}
    for s, names in enumerate(_stages(spec)):
        first_res = spec.first_residual[s]
        if not first_res:  # an earlier removal left a shortcut-only unit: it stays
            mapping[f"layer{s + 1}.0."] = f"layer{s + 1}.0."
        if first_res and not keep[names[0]] and _has_shortcut(model, names[0]):
            first_res = False  # the shortcut stays as a shortcut-only unit
            mapping[f"{names[0]}.downsample."] = f"layer{s + 1}.0.downsample."
        offset = 0 if first_res else 1
        survivors = [b for b in names if keep[b]]
        if not survivors and first_res:
            raise SpecError(f"SSS would empty stage {s + 1}, which has no shortcut to keep; keep one of its blocks")
        for j, blk in enumerate(survivors):
            mapping[f"{blk}."] = f"layer{s + 1}.{j + offset}."
            for f in fields:
                per_block[f].append(getattr(spec, f)[index[blk]])
        blocks.append(len(survivors))
        firsts.append(first_res)
    new_spec = spec.replace(blocks=tuple(blocks), first_residual=tuple(firsts), gates=False,
                            **{f: tuple(v) for f, v in per_block.items()})  # fmt: skip
    state = {}
    folded = _folded(model, [b for b, k in keep.items() if k])
    for key, value in model.state_dict().items():
        new_key = None if ".gate." in key else _rename(key, mapping)
        if new_key is not None:
            state[new_key] = folded[key] if key in folded else value.clone()
    return build_loaded(new_spec, state, model)


def _rename(key: str, mapping: dict[str, str]) -> str | None:
    """New state key of an old one; None for tensors of removed blocks."""
    for old, new in mapping.items():
        if key.startswith(old):
            return new + key[len(old):]
    if key.startswith("layer"):
        return None
    return key


def _folded(model: nn.Module, kept: list[str]) -> dict[str, torch.Tensor]:
    """gate·(γ x̂ + β) = (gate·γ) x̂ + gate·β: the gate moves into the branch's last BN."""
    out = {}
    for blk in kept:
        block = model.get_submodule(blk)
        if not hasattr(block, "gate"):
            continue
        bn = "bn3" if hasattr(block, "conv3") else "bn2"
        g = block.get_parameter("gate.weight").detach().reshape(())
        for t in ("weight", "bias"):
            out[f"{blk}.{bn}.{t}"] = getattr(block, bn).get_parameter(t).detach() * g
    return out


@register
class SSS(PruneMethod):
    name = "sss"
    description = "Sparse Structure Selection: L1-penalised residual-block gates (APG), zero-gate blocks removed"
    Options = SSSOptions
    large_training_kind = "gated"

    def variants(self) -> list[str]:
        return list(TARGETS)

    def prepare_large(self, spec: ModelSpec, opts: SSSOptions) -> ModelSpec:
        return _resnet_spec(spec).replace(gates=True)

    def large_training(self, opts: SSSOptions, spec: Any) -> list[Any]:
        return [GateAPG(opts.penalty, opts.momentum)]

    def finetune(self, opts: SSSOptions, base: Any) -> Any | None:
        return base if opts.finetune or opts.forced else None  # a forced layout changed the function

    def prune(self, model: nn.Module, splits: Any, opts: SSSOptions, *, seed: int = 0) -> PruneResult:
        timer = Timer()
        with timer.phase("all", "selection"):
            values = {blk: float(p.detach()) for blk, p in gates(model).items()}
            keep = _choose(model, values, opts)
            guard = guard_stages(model, keep)
            live = [b for b, k in keep.items() if not k and values[b] != 0.0]
            if live and not opts.forced:
                worst = max(live, key=lambda b: abs(values[b]))
                raise ConfigError(
                    f"sss: {opts.variant or f'keep_blocks {opts.keep_blocks}'} would drop {len(live)} block(s) whose "
                    f"gates are not zero (largest |gate| {abs(values[worst]):.3g} at {worst}): raise the penalty so the "
                    "training zeroes them, or set forced = true (fine-tuned, reported as forced)"
                )
        with timer.phase("all", "surgery"):
            pruned = remove_blocks(model, keep)
        layout = _resnet_spec(attached_spec(pruned))
        info = {
            "method": self.name,
            "penalty": opts.penalty,
            "target": opts.variant or (f"{opts.keep_blocks} blocks" if opts.keep_blocks is not None else "zero gates"),
            "gates": values,
            "removed": [b for b, k in keep.items() if not k],
            "forced": live,  # removed although their gates were not zero (only with `forced`)
            "blocks": list(layout.blocks),
            "first_residual": list(layout.first_residual),
            "timings": timer.record(),
            "notes": ["surviving gates folded into the last BN of their branch; the pruned net has no gates", *guard,
                      *([f"FORCED: {len(live)} block(s) with non-zero gates dropped, then fine-tuned: not an SSS result"]
                        if live else [])],
        }
        return PruneResult(model=pruned, info=info)
